//! `chronicle bench fleet`: a population of patients at real cadence through one `chronicle
//! serve` as deployed (alert engine and trend rollups in the same process).
//!
//! Every patient wears a CGM sending one reading every 5 minutes, the phases spread evenly so
//! the load is steady from the first second; a share also has a finger-stick meter and a share
//! a blood-pressure cuff, each used twice a day. They are registered in bulk
//! ([`Store::register_population`]) and relayed by `--connections` registered gateways
//! ([`relay`](super::relay)), as phones and hubs relay real devices. A few probe patients raise
//! alarms timed from publish to the alert stream ([`alarms`](super::alarms)).
//!
//! Phases, against one private PostgreSQL:
//! 0. warm-up for `--warm-up-minutes` (default one CGM period), not measured: every patient's
//!    first reading of the run starts a rollup day and is evaluated without a held window,
//!    which a running node does once a day and once per start;
//! 1. steady state for `--steady-minutes`: readings/s sent and stored, ingest lag (the
//!    server's metrics), alert-evaluation lag (age of the oldest queued follow-up of the alert
//!    engine, sampled every second), probe alarm latency, CPU, memory, database growth;
//! 2. catch-up (Mosquitto only): the server is stopped (SIGTERM) for `--catch-up-minutes`
//!    while the gateways keep publishing into the ingest's persistent session, then started
//!    again; the time until the backlog is stored, the probes' alarm latency meanwhile, and the
//!    readings lost over the whole run.

use super::alarms::{AlarmProbes, AlarmSchedule, AlarmTimes};
use super::fleet::quantile;
use super::probe::{self, CpuSample, CpuUse, Machine, MetricsSample};
use super::relay::{GatewayPlan, Relay, RelayedDevice};
use super::server::ServerUnderTest;
use super::{BenchReport, RunHeader, open_store, run_and_publish};
use crate::cli::{BenchBroker, BenchFleetArgs, DatabaseSettings};
use anyhow::{Context, bail};
use chronicle_domain::{DeviceKind, GatewayId};
use chronicle_embedded::{Mosquitto, PrivatePostgres};
use chronicle_storage::population::{PopulationDevice, PopulationPlan};
use chronicle_storage::{GatewayCredentials, Store};

use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The goals.
const GOAL_ALARM_P99_MS: f64 = 250.0;
const GOAL_EVALUATION_LAG_P99_SECONDS: f64 = 1.0;
const GOAL_PEAK_RSS_BYTES: u64 = 1 << 30;
const GOAL_DRAIN_SECONDS: f64 = 120.0;

/// A CGM's cadence.
const CGM_PERIOD: Duration = Duration::from_secs(5 * 60);
/// Meters and cuffs are used twice a day.
const CHECK_PERIOD: Duration = Duration::from_secs(12 * 60 * 60);
/// How long the steady state waits for an alarm's event before counting it missed.
const STEADY_ALARM_PATIENCE: Duration = Duration::from_secs(10);
/// The alert engine counts as current again once its oldest queued follow-up is this young.
const EVALUATION_CURRENT_SECONDS: f64 = 1.0;
/// How often the alert engine's queue is sampled, and the drain checked.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How long the gateways may take to have their last readings acknowledged, and the ingest
/// to store them, once publishing stops.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn run(database: &DatabaseSettings, args: &BenchFleetArgs) -> anyhow::Result<()> {
    if args.catch_up_minutes > 0.0 && args.broker == BenchBroker::Embedded {
        bail!(
            "the catch-up phase needs --broker mosquitto (the embedded broker stops with the \
             server); use --catch-up-minutes 0 to run the steady state alone"
        );
    }
    if args.ingest_processes > 1
        && (args.broker == BenchBroker::Embedded || args.catch_up_minutes > 0.0)
    {
        bail!(
            "several ingest processes need --broker mosquitto (one shared subscription) and \
             --catch-up-minutes 0"
        );
    }
    run_and_publish(
        "fleet",
        database,
        &args.run,
        async |machine, work, postgres| measure(args, machine, work, postgres).await,
        |run, measured| Report::new(args, run, measured),
    )
    .await
}

/// Everything measured, before it is turned into a report.
struct Measured {
    population: Population,
    registration_seconds: f64,
    steady: Steady,
    catch_up: Option<CatchUp>,
    totals: Totals,
}

/// Who was registered.
#[derive(Debug, Clone, Copy, Serialize)]
struct Population {
    patients: u64,
    cgms: u64,
    meters: u64,
    cuffs: u64,
    /// Readings the population sends in a day.
    readings_per_day: u64,
}

#[derive(Debug, Serialize)]
struct Steady {
    seconds: f64,
    /// What the population's cadence asks for.
    expected_readings_per_second: f64,
    /// Acknowledged by the broker.
    sent_readings_per_second: f64,
    /// Counted in the database.
    stored_readings_per_second: f64,
    /// Message arrival at the ingest to its batch's commit (`chronicle_ingest_lag_seconds`).
    ingest_lag_mean_ms: f64,
    /// The same, upper bound of the histogram bucket holding the 99th percentile.
    ingest_lag_p99_ms: Option<f64>,
    evaluation_lag: LagFigures,
    alarms: AlarmFigures,
    cpu: CpuUse,
    /// VmHWM of `chronicle serve` at the end of the steady state (of every process together
    /// when scaled out).
    server_peak_rss_bytes: u64,
    /// Messages each ingest process received (one entry when one process does everything).
    messages_by_ingest_process: Vec<f64>,
    database_growth_bytes: i64,
    /// Readings stored during the steady state (probes included), the growth's denominator.
    readings_stored: i64,
    database_bytes_per_reading: f64,
    /// Bytes per reading times the population's readings per day.
    projected_bytes_per_day: f64,
}

#[derive(Debug, Serialize)]
struct CatchUp {
    outage_seconds: f64,
    /// Readings sent while the server was down (queued by the broker for the ingest).
    backlog_readings: u64,
    /// From starting the server again until `/readyz` answered.
    restart_seconds: f64,
    /// From starting the server again until the database held every reading sent until a
    /// second before; `None` if that did not happen within `--timeout-seconds`.
    drain_seconds: Option<f64>,
    /// From starting the server again until the alert engine's oldest queued follow-up was
    /// at most a second old; `None` if not within `--timeout-seconds`.
    evaluation_current_seconds: Option<f64>,
    /// Probe alarms raised from the restart until the alert engine was current again, each
    /// timed however late its event came (up to `--timeout-seconds`).
    alarms: AlarmFigures,
    evaluation_lag: LagFigures,
    ingest_lag_p99_ms: Option<f64>,
    cpu: CpuUse,
    /// VmHWM of the restarted server at the end of the run.
    server_peak_rss_bytes: u64,
}

/// Over the whole run, once publishing stopped and the last readings were stored.
#[derive(Debug, Serialize)]
struct Totals {
    sent: u64,
    stored: u64,
    /// sent − stored, never negative; must be 0.
    lost: u64,
}

/// Ages of the alert engine's oldest queued follow-up, sampled every second, in seconds.
#[derive(Debug, Default, Serialize)]
struct LagFigures {
    samples: usize,
    p50_seconds: f64,
    p99_seconds: f64,
    max_seconds: f64,
}

#[derive(Debug, Default, Serialize)]
struct AlarmFigures {
    alarms: usize,
    /// Alarms whose event never arrived.
    missed: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl From<&AlarmTimes> for AlarmFigures {
    fn from(times: &AlarmTimes) -> AlarmFigures {
        let ms = |q| quantile(&times.latencies, q).map_or(0.0, |d| d.as_secs_f64() * 1e3);
        AlarmFigures {
            alarms: times.latencies.len() + times.missed,
            missed: times.missed,
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            max_ms: ms(1.0),
        }
    }
}

impl LagFigures {
    fn from_samples(mut seconds: Vec<f64>) -> LagFigures {
        seconds.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let rank = (q * seconds.len() as f64).ceil() as usize;
            seconds
                .get(rank.clamp(1, seconds.len().max(1)) - 1)
                .copied()
                .unwrap_or(0.0)
        };
        LagFigures {
            samples: seconds.len(),
            p50_seconds: at(0.5),
            p99_seconds: at(0.99),
            max_seconds: at(1.0),
        }
    }
}

/// Samples the alert engine's lag every second until finished.
struct LagSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<anyhow::Result<Vec<f64>>>,
}

impl LagSampler {
    fn start(store: &Store) -> LagSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let store = store.clone();
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut ticker = tokio::time::interval(SAMPLE_EVERY);
            while !stopped.load(Ordering::Relaxed) {
                ticker.tick().await;
                samples.push(
                    store
                        .oldest_followup_age_seconds(chronicle_alerts::CONSUMER)
                        .await?,
                );
            }
            Ok(samples)
        });
        LagSampler { stop, task }
    }

    async fn finish(self) -> anyhow::Result<LagFigures> {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.task.await.context("the lag sampler failed")??;
        Ok(LagFigures::from_samples(samples))
    }
}

/// The population's readings stored so far: every reading but the probes'.
async fn population_stored(store: &Store, probe_devices: &[&str]) -> anyhow::Result<u64> {
    let all = store.count_all_readings().await?;
    let probes = store.count_glucose_readings(probe_devices).await?;
    Ok(u64::try_from(all - probes).unwrap_or(0))
}

/// The `chronicle serve` processes under test: one that does everything, or ingest-only
/// processes on a shared subscription beside one doing the follow-up work and HTTP.
struct Deployment {
    ingest: Vec<ServerUnderTest>,
    followup: Option<ServerUnderTest>,
}

impl Deployment {
    async fn start(
        args: &BenchFleetArgs,
        url: &str,
        work: &Path,
        broker: Option<&Mosquitto>,
    ) -> anyhow::Result<Deployment> {
        let serve_args = &args.run.serve_args;
        if args.ingest_processes <= 1 {
            let server = ServerUnderTest::start(url, work, broker, serve_args).await?;
            return Ok(Deployment {
                ingest: vec![server],
                followup: None,
            });
        }
        let followup = ServerUnderTest::start_logging_to(
            url,
            work,
            None,
            &[serve_args.as_slice(), &["--ingest".into(), "false".into()]].concat(),
            "followup.log",
        )
        .await?;
        let mut ingest = Vec::new();
        for i in 0..args.ingest_processes {
            let own = [
                "--followup-work".to_owned(),
                "false".to_owned(),
                "--mqtt-shared-group".to_owned(),
                "fleet".to_owned(),
                "--mqtt-client-id".to_owned(),
                format!("chronicle-ingest-{i}"),
            ];
            ingest.push(
                ServerUnderTest::start_logging_to(
                    url,
                    work,
                    broker,
                    &[serve_args.as_slice(), &own].concat(),
                    &format!("ingest-{i}.log"),
                )
                .await?,
            );
        }
        Ok(Deployment {
            ingest,
            followup: Some(followup),
        })
    }

    /// The process that ingests alone, or the first of several.
    fn first_ingest(&self) -> anyhow::Result<&ServerUnderTest> {
        self.ingest.first().context("no ingest process")
    }

    /// Where the probes follow the alert stream: the process doing the follow-up work.
    fn http_addr(&self) -> anyhow::Result<std::net::SocketAddr> {
        Ok(match &self.followup {
            Some(server) => server.http_addr(),
            None => self.first_ingest()?.http_addr(),
        })
    }

    fn pids(&self) -> Vec<u32> {
        self.ingest
            .iter()
            .chain(&self.followup)
            .map(ServerUnderTest::pid)
            .collect()
    }

    /// Peak RSS of every process together.
    fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        self.pids().into_iter().map(probe::peak_rss_bytes).sum()
    }

    fn log_tail(&self) -> String {
        self.ingest
            .iter()
            .chain(&self.followup)
            .map(ServerUnderTest::log_tail)
            .collect::<Vec<_>>()
            .join("\n---\n")
    }

    /// Every ingest process's metrics.
    async fn ingest_metrics(&self) -> anyhow::Result<Vec<MetricsSample>> {
        let mut samples = Vec::with_capacity(self.ingest.len());
        for server in &self.ingest {
            samples.push(MetricsSample::parse(&server.metrics().await?));
        }
        Ok(samples)
    }

    async fn terminate(self) -> anyhow::Result<()> {
        for server in self.ingest.into_iter().chain(self.followup) {
            let status = server.terminate().await?;
            if !status.success() {
                tracing::warn!(%status, "chronicle serve did not exit cleanly");
            }
        }
        Ok(())
    }
}

async fn measure(
    args: &BenchFleetArgs,
    machine: &Machine,
    work: &Path,
    postgres: &PrivatePostgres,
) -> anyhow::Result<Measured> {
    let url = postgres.database_url();
    let store = open_store(&url).await?;
    let postmaster = probe::postmaster_pid(&work.join("postgres"));

    println!(
        "registering {} patients in bulk, relayed by {} gateways",
        args.patients, args.connections
    );
    let registering = Instant::now();
    let mut gateways = Vec::new();
    for _ in 0..args.connections {
        let (_, credentials) = store
            .create_gateway(None, Some("fleet benchmark"), &[])
            .await?;
        gateways.push(credentials);
    }
    let gateway_ids: Vec<GatewayId> = gateways.iter().map(|g| g.id.clone()).collect();
    let devices = store
        .register_population(&PopulationPlan {
            patients: args.patients,
            meter_percent: args.meter_percent,
            cuff_percent: args.cuff_percent,
            gateways: &gateway_ids,
            name_prefix: "Fleet patient",
        })
        .await
        .context("bulk registration failed")?;
    let registration_seconds = registering.elapsed().as_secs_f64();
    let population = population_of(args.patients, &devices);
    println!(
        "registered {} devices in {registration_seconds:.1} s",
        devices.len()
    );
    let probes = AlarmProbes::register(&store, args.probes as usize).await?;
    let probe_devices = probes.device_ids();
    let plans = gateway_plans(&gateways, devices, args.patients);

    let broker = match args.broker {
        // No limit on the ingest's queue: the outage must lose nothing.
        BenchBroker::Mosquitto => Some(
            Mosquitto::start_with_queue_limit(0)
                .await
                .context("cannot start Mosquitto for the benchmark")?,
        ),
        BenchBroker::Embedded => None,
    };
    let deployment = Deployment::start(args, &url, work, broker.as_ref()).await?;
    let mqtt_port = deployment.first_ingest()?.mqtt_port();
    let interval = Duration::from_millis(args.probe_interval_ms);
    let cpus = machine.cpus;

    let relay = Relay::start(mqtt_port, plans, tokio::time::Instant::now());
    // 0. Warm-up, not measured.
    let warm_up = Duration::from_secs_f64(60.0 * args.warm_up_minutes);
    if !warm_up.is_zero() {
        println!(
            "phase 0: warm-up for {} min (every patient's first reading of the run, not measured)",
            args.warm_up_minutes
        );
        tokio::time::sleep(warm_up).await;
    }

    // 1. Steady state.
    let steady_duration = Duration::from_secs_f64(60.0 * args.steady_minutes);
    println!(
        "phase 1: steady state for {} min ({:.0} readings/s expected)",
        args.steady_minutes,
        population.readings_per_day as f64 / 86_400.0
    );
    let steady = async {
        // The ingest's own metrics are the first ingest process's (a shared subscription
        // splits the load evenly); CPU and memory are every process's.
        let server = deployment.first_ingest()?;
        let metrics_before = MetricsSample::parse(&server.metrics().await?);
        let ingest_before = deployment.ingest_metrics().await?;
        let cpu_before = CpuSample::take(&deployment.pids(), postmaster);
        let size_before = store.database_size_bytes().await?;
        let all_before = store.count_all_readings().await?;
        let stored_before = population_stored(&store, &probe_devices).await?;
        let sent_before = relay.acknowledged();
        let started = Instant::now();
        let sampler = LagSampler::start(&store);
        let alarms = usize::try_from(steady_duration.as_millis() / interval.as_millis().max(1))
            .unwrap_or(usize::MAX)
            .max(1);
        let schedule = AlarmSchedule {
            interval,
            alarms,
            stop: Arc::default(),
            patience: STEADY_ALARM_PATIENCE,
        };
        let times = probes
            .run(deployment.http_addr()?, mqtt_port, &schedule)
            .await?;
        let evaluation_lag = sampler.finish().await?;
        let elapsed = started.elapsed();
        let sent_after = relay.acknowledged();
        let stored_after = population_stored(&store, &probe_devices).await?;
        let all_after = store.count_all_readings().await?;
        let size_after = store.database_size_bytes().await?;
        let cpu = cpu_before.until(
            &CpuSample::take(&deployment.pids(), postmaster),
            elapsed,
            cpus,
        );
        let metrics_after = MetricsSample::parse(&server.metrics().await?);
        let messages_by_ingest_process = ingest_before
            .iter()
            .zip(deployment.ingest_metrics().await?)
            .map(|(before, after)| before.messages_until(&after))
            .collect();
        let batches = metrics_before.batches_until(&metrics_after, elapsed);
        let seconds = elapsed.as_secs_f64();
        let readings_stored = all_after - all_before;
        let growth = size_after - size_before;
        let per_reading = if readings_stored > 0 {
            growth as f64 / readings_stored as f64
        } else {
            0.0
        };
        anyhow::Ok(Steady {
            seconds,
            expected_readings_per_second: population.readings_per_day as f64 / 86_400.0,
            sent_readings_per_second: (sent_after - sent_before) as f64 / seconds,
            stored_readings_per_second: stored_after.saturating_sub(stored_before) as f64 / seconds,
            ingest_lag_mean_ms: batches.mean_lag_ms,
            ingest_lag_p99_ms: metrics_before
                .quantile_until(&metrics_after, "chronicle_ingest_lag_seconds", 0.99)
                .map(|s| s * 1e3),
            evaluation_lag,
            alarms: AlarmFigures::from(&times),
            cpu,
            server_peak_rss_bytes: deployment.peak_rss_bytes()?,
            messages_by_ingest_process,
            database_growth_bytes: growth,
            readings_stored,
            database_bytes_per_reading: per_reading,
            projected_bytes_per_day: per_reading * population.readings_per_day as f64,
        })
    }
    .await;
    let steady = match steady {
        Ok(steady) => steady,
        Err(error) => {
            let log = deployment.log_tail();
            return Err(error.context(format!("server log:\n{log}")));
        }
    };
    print_progress_steady(&steady);

    // 2. Catch-up (one process that does everything).
    let (catch_up, deployment) = match &broker {
        Some(broker) if args.catch_up_minutes > 0.0 && deployment.followup.is_none() => {
            let server = deployment.ingest.into_iter().next().context("no server")?;
            let (catch_up, server) = catch_up(
                args,
                &store,
                &url,
                work,
                broker,
                server,
                &relay,
                &probes,
                &probe_devices,
                postmaster,
                cpus,
            )
            .await?;
            (
                Some(catch_up),
                Deployment {
                    ingest: vec![server],
                    followup: None,
                },
            )
        }
        _ => (None, deployment),
    };

    // Publishing stops; every reading acknowledged by the broker must end up stored.
    println!("stopping the gateways and counting what was stored");
    let counters = relay.stop(SETTLE_TIMEOUT).await?;
    let sent = counters.acknowledged.load(Ordering::Relaxed);
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut stored = population_stored(&store, &probe_devices).await?;
    while stored < sent && Instant::now() < deadline {
        tokio::time::sleep(SAMPLE_EVERY).await;
        stored = population_stored(&store, &probe_devices).await?;
    }
    deployment.terminate().await?;
    store.close().await;
    drop(broker);
    Ok(Measured {
        population,
        registration_seconds,
        steady,
        catch_up,
        totals: Totals {
            sent,
            stored,
            lost: sent.saturating_sub(stored),
        },
    })
}

/// Phase 2: stops the server while the gateways keep publishing, starts it again and waits for
/// the backlog to be stored. Returns the figures and the restarted server.
#[allow(clippy::too_many_arguments)]
async fn catch_up(
    args: &BenchFleetArgs,
    store: &Store,
    url: &str,
    work: &Path,
    broker: &Mosquitto,
    server: ServerUnderTest,
    relay: &Relay,
    probes: &AlarmProbes,
    probe_devices: &[&str],
    postmaster: Option<u32>,
    cpus: usize,
) -> anyhow::Result<(CatchUp, ServerUnderTest)> {
    let outage = Duration::from_secs_f64(60.0 * args.catch_up_minutes);
    println!(
        "phase 2: the server stops for {} min while the gateways keep publishing",
        args.catch_up_minutes
    );
    let stopping = Instant::now();
    let status = server.terminate().await?;
    if !status.success() {
        tracing::warn!(%status, "chronicle serve did not exit cleanly on SIGTERM");
    }
    tokio::time::sleep(outage.saturating_sub(stopping.elapsed())).await;
    let outage_seconds = stopping.elapsed().as_secs_f64();
    let stored_at_restart = population_stored(store, probe_devices).await?;
    let sent_at_restart = relay.acknowledged();
    println!(
        "restarting the server with {} readings queued",
        sent_at_restart.saturating_sub(stored_at_restart)
    );

    let restarting = Instant::now();
    let server = ServerUnderTest::start_logging_to(
        url,
        work,
        Some(broker),
        &args.run.serve_args,
        "server-restarted.log",
    )
    .await?;
    let restart_seconds = restarting.elapsed().as_secs_f64();
    let cpu_before = CpuSample::take(&[server.pid()], postmaster);
    let metrics_before = MetricsSample::parse(&server.metrics().await?);
    let sampler = LagSampler::start(store);
    let stop_alarms = Arc::new(AtomicBool::new(false));
    let schedule = AlarmSchedule {
        interval: Duration::from_millis(args.probe_interval_ms),
        alarms: usize::MAX,
        stop: Arc::clone(&stop_alarms),
        // Alarms raised while the backlog is evaluated are timed however late they are.
        patience: Duration::from_secs(args.timeout_seconds),
    };
    // Drained once the database holds everything sent until a second earlier: the backlog is
    // stored and the live readings are as current as in the steady state.
    let timeout = Duration::from_secs(args.timeout_seconds);
    let drain = async {
        let mut sent_a_second_ago = sent_at_restart;
        let drained = loop {
            tokio::time::sleep(SAMPLE_EVERY).await;
            let sent_now = relay.acknowledged();
            let stored = population_stored(store, probe_devices).await?;
            if stored >= sent_a_second_ago.max(sent_at_restart) {
                break Some(restarting.elapsed().as_secs_f64());
            }
            if restarting.elapsed() > timeout {
                break None;
            }
            sent_a_second_ago = sent_now;
        };
        // The alert engine works through the backlog's follow-ups after the ingest stored
        // them: alarms keep being raised until it is current again.
        let evaluated = loop {
            if store
                .oldest_followup_age_seconds(chronicle_alerts::CONSUMER)
                .await?
                <= EVALUATION_CURRENT_SECONDS
            {
                break Some(restarting.elapsed().as_secs_f64());
            }
            if restarting.elapsed() > timeout {
                break None;
            }
            tokio::time::sleep(SAMPLE_EVERY).await;
        };
        stop_alarms.store(true, Ordering::Relaxed);
        anyhow::Ok((drained, evaluated))
    };
    let (drained, times) = tokio::join!(
        drain,
        probes.run(server.http_addr(), broker.port(), &schedule)
    );
    let result = async {
        let (drain_seconds, evaluation_current_seconds) = drained?;
        let times = times?;
        let evaluation_lag = sampler.finish().await?;
        let elapsed = restarting.elapsed();
        let cpu = cpu_before.until(&CpuSample::take(&[server.pid()], postmaster), elapsed, cpus);
        let metrics_after = MetricsSample::parse(&server.metrics().await?);
        anyhow::Ok(CatchUp {
            outage_seconds,
            backlog_readings: sent_at_restart.saturating_sub(stored_at_restart),
            restart_seconds,
            drain_seconds,
            evaluation_current_seconds,
            alarms: AlarmFigures::from(&times),
            evaluation_lag,
            ingest_lag_p99_ms: metrics_before
                .quantile_until(&metrics_after, "chronicle_ingest_lag_seconds", 0.99)
                .map(|s| s * 1e3),
            cpu,
            server_peak_rss_bytes: probe::peak_rss_bytes(server.pid())?,
        })
    }
    .await;
    match result {
        Ok(catch_up) => Ok((catch_up, server)),
        Err(error) => {
            let log = server.log_tail();
            Err(error.context(format!("restarted server's log:\n{log}")))
        }
    }
}

fn print_progress_steady(steady: &Steady) {
    println!(
        "steady state: {:.0} readings/s sent, {:.0} stored; alarms p99 {:.0} ms",
        steady.sent_readings_per_second, steady.stored_readings_per_second, steady.alarms.p99_ms
    );
}

fn population_of(patients: u64, devices: &[PopulationDevice]) -> Population {
    let count = |kind| devices.iter().filter(|d| d.kind == kind).count() as u64;
    let (cgms, meters, cuffs) = (
        count(DeviceKind::Cgm),
        count(DeviceKind::Meter),
        count(DeviceKind::Bp),
    );
    let per_day = |period: Duration| 86_400 / period.as_secs().max(1);
    Population {
        patients,
        cgms,
        meters,
        cuffs,
        readings_per_day: cgms * per_day(CGM_PERIOD) + (meters + cuffs) * per_day(CHECK_PERIOD),
    }
}

/// The gateways' devices, each with its cadence and its place in it: CGM phases spread evenly
/// over 5 minutes by patient number, meter and cuff phases spread over 12 hours (scrambled, so
/// a patient's checks do not line up with their CGM).
fn gateway_plans(
    gateways: &[GatewayCredentials],
    devices: Vec<PopulationDevice>,
    patients: u64,
) -> Vec<GatewayPlan> {
    let mut plans: Vec<GatewayPlan> = gateways
        .iter()
        .map(|g| GatewayPlan {
            gateway_id: g.id.as_str().to_owned(),
            secret: g.secret.clone(),
            devices: Vec::new(),
        })
        .collect();
    let patients = patients.max(1) as f64;
    for device in devices {
        let n = device.patient_number;
        let (period, place, level) = match device.kind {
            DeviceKind::Cgm | DeviceKind::Uploader => {
                (CGM_PERIOD, n as f64 / patients, 100 + (n % 60) as u16)
            }
            DeviceKind::Meter => (
                CHECK_PERIOD,
                (n.wrapping_mul(7919) % 10_007) as f64 / 10_007.0,
                110,
            ),
            DeviceKind::Bp => (
                CHECK_PERIOD,
                (n.wrapping_mul(104_729) % 10_009) as f64 / 10_009.0,
                118 + (n % 15) as u16,
            ),
        };
        if let Some(plan) = plans.get_mut(device.gateway) {
            plan.devices.push(RelayedDevice {
                device_id: device.device_id.as_str().to_owned(),
                kind: device.kind,
                period,
                phase: period.mul_f64(place),
                level,
            });
        }
    }
    plans
}

/// The results, as printed and as written with --json.
#[derive(Debug, Serialize)]
struct Report {
    #[serde(flatten)]
    run: RunHeader,
    settings: Settings,
    population: Population,
    registration_seconds: f64,
    steady: Steady,
    catch_up: Option<CatchUp>,
    totals: Totals,
    goals: Vec<Goal>,
}

#[derive(Debug, Serialize)]
struct Settings {
    broker: &'static str,
    patients: u64,
    meter_percent: u8,
    cuff_percent: u8,
    connections: u32,
    probes: u32,
    probe_interval_ms: u64,
    warm_up_minutes: f64,
    steady_minutes: f64,
    catch_up_minutes: f64,
    /// Ingest processes; above 1, beside one process doing the follow-up work.
    ingest_processes: u32,
    serve_args: Vec<String>,
}

/// One of the goals and whether this run met it (`None`: not measured).
#[derive(Debug, Serialize)]
struct Goal {
    goal: String,
    measured: String,
    met: Option<bool>,
}

impl Report {
    fn new(args: &BenchFleetArgs, run: RunHeader, measured: Measured) -> Report {
        let goals = goals(&measured);
        Report {
            run,
            settings: Settings {
                broker: args.broker.name(),
                patients: args.patients,
                meter_percent: args.meter_percent,
                cuff_percent: args.cuff_percent,
                connections: args.connections,
                probes: args.probes,
                probe_interval_ms: args.probe_interval_ms,
                warm_up_minutes: args.warm_up_minutes,
                steady_minutes: args.steady_minutes,
                catch_up_minutes: args.catch_up_minutes,
                ingest_processes: args.ingest_processes,
                serve_args: args.run.serve_args.clone(),
            },
            population: measured.population,
            registration_seconds: measured.registration_seconds,
            steady: measured.steady,
            catch_up: measured.catch_up,
            totals: measured.totals,
            goals,
        }
    }
}

impl BenchReport for Report {
    fn text(&self) -> String {
        let p = &self.population;
        let s = &self.steady;
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        let gib = |bytes: f64| bytes / (1024.0 * 1024.0 * 1024.0);
        let mut out = self.run.title("fleet");
        out += &format!(
            "broker: {}, {} gateway connections; {}\n\n",
            self.settings.broker,
            self.settings.connections,
            match self.settings.ingest_processes {
                1 => "one chronicle serve doing everything".to_owned(),
                n => format!(
                    "{n} ingest-only chronicle serve processes on one shared subscription \
                     and one doing the follow-up work and HTTP (figures of the first ingest \
                     process for the ingest lag; CPU and RSS of all together)"
                ),
            }
        );
        out += &format!(
            "population: {} patients: {} CGMs (every 5 min), {} meters and {} cuffs (twice a day); \
             {} readings/day\nregistered in bulk in {:.1} s\n\n",
            p.patients, p.cgms, p.meters, p.cuffs, p.readings_per_day, self.registration_seconds
        );
        out += &format!(
            "steady state, {:.0} s after a warm-up of {} min:\n\
             \x20 readings/s: {:.1} expected, {:.1} sent, {:.1} stored\n\
             \x20 ingest lag (arrival → commit): mean {:.1} ms, p99 {}\n\
             \x20 alert-evaluation lag (oldest queued follow-up, {} samples): p50 {:.2} s, p99 {:.2} s, max {:.2} s\n\
             \x20 publish → alert on the stream, {} alarms ({} missed): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
             \x20 server peak RSS: {:.1} MiB\n\
             \x20 CPU-seconds: bench {:.1}, server {:.1}, postgres {:.1}, other {:.1} (machine {:.0} % busy)\n\
             \x20 database growth: {:.1} MiB for {} readings = {:.0} bytes/reading; \
             projected {:.1} GiB/day at {} patients\n\n",
            s.seconds,
            self.settings.warm_up_minutes,
            s.expected_readings_per_second,
            s.sent_readings_per_second,
            s.stored_readings_per_second,
            s.ingest_lag_mean_ms,
            milliseconds(s.ingest_lag_p99_ms),
            s.evaluation_lag.samples,
            s.evaluation_lag.p50_seconds,
            s.evaluation_lag.p99_seconds,
            s.evaluation_lag.max_seconds,
            s.alarms.alarms,
            s.alarms.missed,
            s.alarms.p50_ms,
            s.alarms.p99_ms,
            s.alarms.max_ms,
            mib(s.server_peak_rss_bytes),
            s.cpu.bench_seconds,
            s.cpu.server_seconds,
            s.cpu.postgres_seconds,
            s.cpu.other_seconds,
            s.cpu.machine_busy_percent,
            s.database_growth_bytes as f64 / (1024.0 * 1024.0),
            s.readings_stored,
            s.database_bytes_per_reading,
            gib(s.projected_bytes_per_day),
            p.patients
        );
        if s.messages_by_ingest_process.len() > 1 {
            let split: Vec<String> = s
                .messages_by_ingest_process
                .iter()
                .map(|m| format!("{m:.0}"))
                .collect();
            out += &format!(
                "  messages received by each ingest process: {}\n",
                split.join(", ")
            );
        }
        match &self.catch_up {
            Some(c) => {
                out += &format!(
                    "catch-up after a {:.0} s outage ({} readings queued):\n\
                     \x20 server ready again in {:.1} s; drained (stored = sent a second earlier) {}\n\
                     \x20 alert engine current again (oldest follow-up <= 1 s old) {}\n\
                     \x20 publish → alert while draining, {} alarms ({} missed): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
                     \x20 alert-evaluation lag while draining: p50 {:.2} s, p99 {:.2} s, max {:.2} s; ingest lag p99 {}\n\
                     \x20 CPU-seconds: bench {:.1}, server {:.1}, postgres {:.1}, other {:.1} (machine {:.0} % busy)\n\
                     \x20 restarted server peak RSS: {:.1} MiB\n\n",
                    c.outage_seconds,
                    c.backlog_readings,
                    c.restart_seconds,
                    match c.drain_seconds {
                        Some(seconds) => format!("{seconds:.1} s after the restart"),
                        None => "NOT within the timeout".to_owned(),
                    },
                    match c.evaluation_current_seconds {
                        Some(seconds) => format!("{seconds:.1} s after the restart"),
                        None => "NOT within the timeout".to_owned(),
                    },
                    c.alarms.alarms,
                    c.alarms.missed,
                    c.alarms.p50_ms,
                    c.alarms.p99_ms,
                    c.alarms.max_ms,
                    c.evaluation_lag.p50_seconds,
                    c.evaluation_lag.p99_seconds,
                    c.evaluation_lag.max_seconds,
                    milliseconds(c.ingest_lag_p99_ms),
                    c.cpu.bench_seconds,
                    c.cpu.server_seconds,
                    c.cpu.postgres_seconds,
                    c.cpu.other_seconds,
                    c.cpu.machine_busy_percent,
                    mib(c.server_peak_rss_bytes)
                );
            }
            None => out += "catch-up: not run\n\n",
        }
        out += &format!(
            "whole run: {} readings sent (acknowledged by the broker), {} stored, {} lost\n\n",
            self.totals.sent, self.totals.stored, self.totals.lost
        );
        for goal in &self.goals {
            let verdict = match goal.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "not measured",
            };
            out += &format!("goal {}: {} ({verdict})\n", goal.goal, goal.measured);
        }
        out + "\n"
    }
}

fn milliseconds(value: Option<f64>) -> String {
    match value {
        Some(ms) if ms.is_finite() => format!("≤ {ms:.1} ms"),
        Some(_) => "above the histogram's largest bucket".to_owned(),
        None => "-".to_owned(),
    }
}

fn goals(measured: &Measured) -> Vec<Goal> {
    let s = &measured.steady;
    let peak_rss = measured
        .catch_up
        .as_ref()
        .map_or(s.server_peak_rss_bytes, |c| {
            c.server_peak_rss_bytes.max(s.server_peak_rss_bytes)
        });
    let mut goals = vec![
        Goal {
            goal: format!("publish → alert p99 <= {GOAL_ALARM_P99_MS:.0} ms (steady state)"),
            measured: format!("{:.1} ms, {} missed", s.alarms.p99_ms, s.alarms.missed),
            met: Some(
                s.alarms.p99_ms <= GOAL_ALARM_P99_MS && s.alarms.missed == 0 && s.alarms.alarms > 0,
            ),
        },
        Goal {
            goal: format!(
                "alert-evaluation lag p99 <= {GOAL_EVALUATION_LAG_P99_SECONDS:.0} s (steady state)"
            ),
            measured: format!("{:.2} s", s.evaluation_lag.p99_seconds),
            met: Some(s.evaluation_lag.p99_seconds <= GOAL_EVALUATION_LAG_P99_SECONDS),
        },
        Goal {
            goal: "server peak RSS <= 1 GiB".to_owned(),
            measured: format!("{:.1} MiB", peak_rss as f64 / (1024.0 * 1024.0)),
            met: Some(peak_rss <= GOAL_PEAK_RSS_BYTES),
        },
    ];
    let drain = measured.catch_up.as_ref().and_then(|c| c.drain_seconds);
    goals.push(Goal {
        goal: format!("catch-up drained <= {GOAL_DRAIN_SECONDS:.0} s with 0 lost"),
        measured: match (&measured.catch_up, drain) {
            (None, _) => "not run".to_owned(),
            (Some(_), Some(seconds)) => {
                format!("{seconds:.1} s, {} lost", measured.totals.lost)
            }
            (Some(_), None) => format!("not drained, {} lost", measured.totals.lost),
        },
        met: measured
            .catch_up
            .as_ref()
            .map(|_| drain.is_some_and(|s| s <= GOAL_DRAIN_SECONDS) && measured.totals.lost == 0),
    });
    goals
}

//! `chronicle bench alerts` lives in [`alerts`], `chronicle bench trends` in [`trends`],
//! `chronicle bench fleet` in [`fleet_scale`]; the rest of this file is `chronicle bench
//! ingest`.
//!
//! `chronicle bench ingest`: ingest throughput and latency end to end, next to ceilings
//! measured in the same run on the same machine, so the figures can be judged without knowing
//! the hardware. `docs/benchmarks.md` records a run and explains each figure.
//!
//! Phases, all against one private PostgreSQL in a fresh directory:
//! 1. broker-only ceiling: the embedded broker with a subscriber that stores nothing
//!    ([`stand_in`]), the devices sending one reading per message;
//! 2. the same devices and messages through `chronicle serve` (a child process);
//! 3. batch messages through the same server;
//! 4. raw COPY ceiling: the readings of phase 3 written with `COPY` into the same table of a
//!    fresh database, in chunks of one batch message each, on as many connections at once as
//!    the server commits batches at once.

mod alarms;
mod alerts;
mod fleet;
mod fleet_scale;
mod probe;
mod push;
mod relay;
mod server;
mod stand_in;
mod trends;
mod workload;

use crate::cli::{BenchBroker, BenchCommand, BenchIngestArgs, BenchRunArgs, DatabaseSettings};
use anyhow::Context;
use chronicle_domain::DeviceKind;
use chronicle_embedded::{Mosquitto, PrivatePostgres, PrivatePostgresConfig};
use chronicle_storage::{
    DeviceCredentials, GlucoseCopy, NewPatient, ReadingRow, Store, StoreSettings, TimescaleSettings,
};
use fleet::{DevicePlan, Fleet, FleetOptions, FleetRun};
use probe::{BatchProfile, CpuSample, CpuUse, Machine, MetricsSample};
use serde::Serialize;
use server::ServerUnderTest;
use stand_in::StandIn;
use std::path::Path;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The light-load phase: few devices with one message in flight each, so publish-to-ack is the
/// path's own latency (batch linger, commit, broker hops) rather than queueing behind the
/// thousands of messages the saturating phases keep in flight.
const LIGHT_DEVICES: usize = 20;
const LIGHT_MESSAGES: usize = 50;

/// The target: each end-to-end figure at least this share of its ceiling.
const TARGET_RATIO: f64 = 0.5;

pub async fn run(database: &DatabaseSettings, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest(args) => ingest(database, &args).await,
        BenchCommand::Alerts(args) => alerts::run(database, &args).await,
        BenchCommand::Trends(args) => trends::run(database, &args).await,
        BenchCommand::Fleet(args) => fleet_scale::run(database, &args).await,
    }
}

async fn ingest(database: &DatabaseSettings, args: &BenchIngestArgs) -> anyhow::Result<()> {
    run_and_publish(
        "ingest",
        database,
        &args.run,
        async |machine, work, postgres| phases(args, database, machine, work, postgres).await,
        |run, phases| Report::new(args, run, phases),
    )
    .await
}

/// Who ran a benchmark, when and on what machine: the head of every report (flattened into
/// its JSON).
#[derive(Debug, Serialize)]
struct RunHeader {
    command: String,
    date: String,
    machine: Machine,
}

impl RunHeader {
    /// The report's first lines: which benchmark, when, and the machine.
    fn title(&self, benchmark: &str) -> String {
        let m = &self.machine;
        format!(
            "\nChronicle {benchmark} benchmark, {}\nmachine: {}, {} CPUs, {:.1} GiB RAM, Linux {}\n",
            self.date, m.cpu_model, m.cpus, m.memory_gib, m.kernel
        )
    }
}

/// Runs `measure` against a private PostgreSQL cluster in a fresh directory under /tmp
/// (database `chronicle_bench_<bench>`), then stops the cluster. With `keep` the directory
/// (cluster and logs) stays and its path is printed. The run's header is taken before
/// `measure` starts, which is given the machine it runs on.
async fn on_private_postgres<T>(
    bench: &str,
    database: &DatabaseSettings,
    run_args: &BenchRunArgs,
    measure: impl AsyncFnOnce(&Machine, &Path, &PrivatePostgres) -> anyhow::Result<T>,
) -> anyhow::Result<(RunHeader, T, Option<String>)> {
    let run = RunHeader {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        machine: Machine::probe(),
    };
    if database.url.is_some() {
        tracing::info!("--database-url is not used: the benchmark runs its own PostgreSQL");
    }
    let work = traversable_tempdir()?;
    println!(
        "chronicle bench {bench}: private PostgreSQL and logs in {}",
        work.path().display()
    );
    let mut postgres = PrivatePostgres::start(PrivatePostgresConfig {
        data_dir: work.path().to_path_buf(),
        port: None,
        bin_dir: database.postgres_bin_dir.clone(),
        database: format!("chronicle_bench_{bench}"),
        statement_statistics: run_args.statements,
    })
    .await
    .context("cannot start the private PostgreSQL for the benchmark")?;
    let result = measure(&run.machine, work.path(), &postgres).await;
    // Read before PostgreSQL stops; a failure is reported after it stopped.
    let statement_table = match (&result, run_args.statements) {
        (Ok(_), true) => Some(
            costliest_statements(&postgres.database_url())
                .await
                .context("cannot read pg_stat_statements"),
        ),
        _ => None,
    };
    if let Err(e) = postgres.stop().await {
        tracing::error!(error = %e, "could not stop the benchmark's PostgreSQL cleanly");
    }
    if run_args.keep {
        println!("kept {}", work.keep().display());
    } else if result.is_err() {
        println!("(the logs are gone with the temporary directory; run with --keep to keep them)");
    }
    let measured = result?;
    Ok((run, measured, statement_table.transpose()?))
}

/// How many statements `--statements` lists.
const COSTLIEST_STATEMENTS: i64 = 15;

/// The statements that took the most of PostgreSQL's time since it started, as a table.
async fn costliest_statements(url: &str) -> anyhow::Result<String> {
    let store = open_store(url).await?;
    let costs = store.costliest_statements(COSTLIEST_STATEMENTS).await;
    store.close().await;
    let mut table = format!(
        "\nPostgreSQL statements by total time over the run (pg_stat_statements)\n\
         {:>8} {:>10} {:>10}  statement\n",
        "calls", "ms", "rows"
    );
    for cost in costs? {
        let shown: String = cost.statement.chars().take(100).collect();
        table.push_str(&format!(
            "{:>8} {:>10.1} {:>10}  {shown}\n",
            cost.calls, cost.total_ms, cost.rows
        ));
    }
    Ok(table)
}

/// A benchmark's report: its JSON form and the text printed at the end of the run.
trait BenchReport: Serialize {
    fn text(&self) -> String;
}

/// The frame of every benchmark: `measure` on a private PostgreSQL ([`on_private_postgres`]),
/// the report made from the run's header and what was measured, then [`publish`]ed as the
/// shared run arguments ask.
async fn run_and_publish<T, R: BenchReport>(
    bench: &str,
    database: &DatabaseSettings,
    run_args: &BenchRunArgs,
    measure: impl AsyncFnOnce(&Machine, &Path, &PrivatePostgres) -> anyhow::Result<T>,
    report: impl FnOnce(RunHeader, T) -> R,
) -> anyhow::Result<()> {
    let (run, measured, statements) =
        on_private_postgres(bench, database, run_args, measure).await?;
    let report = report(run, measured);
    publish(&report, &report.text(), run_args.json.as_deref())?;
    if let Some(table) = statements {
        print!("{table}");
    }
    Ok(())
}

/// Prints a benchmark's report and, when asked, writes it as JSON.
fn publish(report: &impl Serialize, text: &str, json: Option<&Path>) -> anyhow::Result<()> {
    print!("{text}");
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(report)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("JSON written to {}", path.display());
    }
    Ok(())
}

/// Everything measured, before it is turned into a report.
struct Phases {
    broker_only: Phase,
    broker_light: Phase,
    single: Phase,
    light: Phase,
    batch: Phase,
    copy: Phase,
    server_peak_rss_bytes: u64,
    server_peak_rss_single_bytes: u64,
}

async fn phases(
    args: &BenchIngestArgs,
    database: &DatabaseSettings,
    machine: &Machine,
    work: &Path,
    postgres: &PrivatePostgres,
) -> anyhow::Result<Phases> {
    let devices = args.devices as usize;
    let per_device = args.messages_per_device as usize;
    let readings_per_batch = args.readings_per_batch as usize;
    let timeout = Duration::from_secs(args.timeout_seconds);
    let postmaster = probe::postmaster_pid(&work.join("postgres"));
    let cpus = machine.cpus;

    let store = open_store(&postgres.database_url()).await?;
    let single_devices = provision(&store, devices).await?;
    let batch_devices = provision(&store, args.batch_devices as usize).await?;
    let warm_up_device = provision(&store, 1).await?;
    let light_devices = provision(&store, LIGHT_DEVICES).await?;

    let base = workload::base_time();
    let singles = workload::single_messages(base, per_device);
    let light_messages = workload::single_messages(base, LIGHT_MESSAGES);
    let single_plans = || plans(&single_devices, |_| singles.clone(), 1);
    let batch_split = workload::spread(args.batch_messages as usize, batch_devices.len());
    let batch_payloads: Vec<Vec<Vec<u8>>> = batch_split
        .iter()
        .map(|&count| workload::batch_messages(base, count, readings_per_batch))
        .collect();
    let warm_up = || {
        let count = (args.window as usize).min(per_device);
        plans(&warm_up_device, |_| singles[..count].to_vec(), 1)
    };
    let mut options = FleetOptions {
        port: 0,
        window: args.window as usize,
        expect_stored: false,
        timeout,
    };

    // 1. Broker-only ceiling.
    println!(
        "phase 1/5: broker-only ceiling ({devices} devices × {per_device} messages, {} broker)",
        args.broker.name()
    );
    let ceiling_broker = start_mosquitto(args.broker).await?;
    let stand_in = match &ceiling_broker {
        Some(mosquitto) => StandIn::connect(mosquitto.port()).await?,
        None => StandIn::start().await?,
    };
    options.port = stand_in.port();
    Fleet::connect(warm_up(), &options).await?.run().await?;
    let fleet = Fleet::connect(single_plans(), &options).await?;
    let before = CpuSample::take(&[], postmaster);
    let run = fleet.run().await.context("broker-only ceiling")?;
    let cpu = before.until(&CpuSample::take(&[], postmaster), run.elapsed, cpus);
    let broker_only = Phase::from_fleet(&run, cpu, None);
    let light_options = FleetOptions {
        window: 1,
        ..options.clone()
    };
    let fleet = Fleet::connect(
        plans(&light_devices, |_| light_messages.clone(), 1),
        &light_options,
    )
    .await?;
    let before = CpuSample::take(&[], postmaster);
    let run = fleet.run().await.context("broker-only light load")?;
    let cpu = before.until(&CpuSample::take(&[], postmaster), run.elapsed, cpus);
    let broker_light = Phase::from_fleet(&run, cpu, None);
    drop(stand_in);
    drop(ceiling_broker);

    // 2 and 3. The server, end to end.
    println!("phase 2/5: one reading per message through chronicle serve");
    let server_broker = start_mosquitto(args.broker).await?;
    let server = ServerUnderTest::start(
        &postgres.database_url(),
        work,
        server_broker.as_ref(),
        &args.run.serve_args,
    )
    .await?;
    let measured = async {
        options.port = server.mqtt_port();
        options.expect_stored = true;
        Fleet::connect(warm_up(), &options).await?.run().await?;

        let fleet = Fleet::connect(single_plans(), &options).await?;
        let (metrics, cpu) = sample(&server, postmaster).await?;
        let run = fleet
            .run()
            .await
            .context("one reading per message, end to end")?;
        let single = measured_phase(&server, postmaster, &run, metrics, cpu, cpus).await?;
        check_stored(&store, &single_devices, devices * per_device).await?;

        println!(
            "phase 3/5: latency at light load ({LIGHT_DEVICES} devices, one message in flight each)"
        );
        let light_options = FleetOptions {
            window: 1,
            ..options.clone()
        };
        let fleet = Fleet::connect(
            plans(&light_devices, |_| light_messages.clone(), 1),
            &light_options,
        )
        .await?;
        let (metrics, cpu) = sample(&server, postmaster).await?;
        let run = fleet.run().await.context("light load, end to end")?;
        let light = measured_phase(&server, postmaster, &run, metrics, cpu, cpus).await?;
        check_stored(&store, &light_devices, LIGHT_DEVICES * LIGHT_MESSAGES).await?;
        // Before the batch phase, whose large messages dominate the final peak.
        let peak_single = probe::peak_rss_bytes(server.pid())?;

        println!(
            "phase 4/5: {} batch messages of {readings_per_batch} readings through chronicle serve",
            args.batch_messages
        );
        let batch_plans = plans(
            &batch_devices,
            |i| batch_payloads[i].clone(),
            readings_per_batch,
        );
        let fleet = Fleet::connect(batch_plans, &options).await?;
        let (metrics, cpu) = sample(&server, postmaster).await?;
        let run = fleet.run().await.context("batch messages, end to end")?;
        let batch = measured_phase(&server, postmaster, &run, metrics, cpu, cpus).await?;
        check_stored(&store, &batch_devices, run.readings).await?;
        anyhow::Ok((single, light, batch, peak_single))
    }
    .await;
    let peak = probe::peak_rss_bytes(server.pid());
    let log_tail = server.log_tail();
    let (single, light, batch, peak_single) =
        measured.with_context(|| format!("server log:\n{log_tail}"))?;
    let status = server.terminate().await?;
    if !status.success() {
        tracing::warn!(%status, "chronicle serve did not exit cleanly");
    }
    store.close().await;

    // 4. Raw COPY ceiling, into a fresh database of the same PostgreSQL.
    println!("phase 5/5: raw COPY ceiling");
    let copy = copy_ceiling(
        database,
        work,
        &batch_payloads,
        postmaster,
        cpus,
        args.copy_connections as usize,
    )
    .await?;

    Ok(Phases {
        broker_only,
        broker_light,
        single,
        light,
        batch,
        copy,
        server_peak_rss_bytes: peak?,
        server_peak_rss_single_bytes: peak_single,
    })
}

/// Mosquitto for a phase, when the benchmark runs against it; `None` for the embedded broker.
async fn start_mosquitto(broker: BenchBroker) -> anyhow::Result<Option<Mosquitto>> {
    match broker {
        BenchBroker::Embedded => Ok(None),
        BenchBroker::Mosquitto => Ok(Some(
            Mosquitto::start()
                .await
                .context("cannot start Mosquitto for the benchmark")?,
        )),
    }
}

/// Writes the readings of the batch phase with one COPY per batch message, on
/// `copy_connections` connections at once, as the ingest commits that many batches at once.
async fn copy_ceiling(
    database: &DatabaseSettings,
    work: &Path,
    batch_payloads: &[Vec<Vec<u8>>],
    postmaster: Option<u32>,
    cpus: usize,
    copy_connections: usize,
) -> anyhow::Result<Phase> {
    // A second handle on the running cluster: it only creates the database, and leaves the
    // server to the first handle.
    let copy_postgres = PrivatePostgres::start(PrivatePostgresConfig {
        data_dir: work.to_path_buf(),
        port: None,
        bin_dir: database.postgres_bin_dir.clone(),
        database: "chronicle_bench_copy".to_owned(),
        // The cluster runs already, started by the benchmark's own handle.
        statement_statistics: false,
    })
    .await
    .context("cannot create the database for the COPY ceiling")?;
    let store = open_store(&copy_postgres.database_url()).await?;
    let devices = provision(&store, batch_payloads.len()).await?;

    let ids: Vec<&str> = devices.iter().map(|d| d.credentials.id.as_str()).collect();
    let registered = store.devices_for_ingest(&ids).await?;
    let mut chunks = Vec::new();
    for (device, payloads) in devices.iter().zip(batch_payloads) {
        let device_key = registered
            .get(device.credentials.id.as_str())
            .map(|d| d.key)
            .context("a provisioned device is missing from the registry")?;
        for payload in payloads {
            let readings = workload::decode_readings(payload)?;
            let rows: Vec<ReadingRow<'_>> = readings
                .iter()
                .map(|reading| ReadingRow {
                    device_key,
                    patient_id: device.patient_id,
                    reading,
                })
                .collect();
            chunks.push(GlucoseCopy::encode(&rows, chrono::Utc::now()));
        }
    }
    let expected: u64 = chunks.iter().map(GlucoseCopy::rows).sum();

    // As many COPY streams at once as the server commits batches at once, each writing its
    // share of the chunks one after another.
    let connections = copy_connections.max(1);
    let mut streams: Vec<Vec<GlucoseCopy>> = vec![Vec::new(); connections];
    let messages = chunks.len();
    for (i, chunk) in chunks.into_iter().enumerate() {
        streams[i % connections].push(chunk);
    }
    let before = CpuSample::take(&[], postmaster);
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for stream in streams {
        let store = store.clone();
        running.spawn(async move {
            let mut written = 0;
            for chunk in &stream {
                written += store.copy_glucose(chunk).await?;
            }
            anyhow::Ok(written)
        });
    }
    let mut written = 0;
    while let Some(done) = running.join_next().await {
        written += done.context("a COPY stream failed")??;
    }
    let elapsed = started.elapsed();
    let cpu = before.until(&CpuSample::take(&[], postmaster), elapsed, cpus);
    anyhow::ensure!(
        written == expected,
        "COPY reported {written} rows written, expected {expected}"
    );
    check_stored(&store, &devices, expected as usize).await?;
    store.close().await;
    let rows = usize::try_from(expected)?;
    Ok(Phase {
        messages,
        readings: rows,
        seconds: elapsed.as_secs_f64(),
        readings_per_second: rate(rows, elapsed),
        latency: None,
        cpu,
        server: None,
    })
}

/// Metrics and CPU before a measured phase.
async fn sample(
    server: &ServerUnderTest,
    postmaster: Option<u32>,
) -> anyhow::Result<(MetricsSample, CpuSample)> {
    let metrics = MetricsSample::parse(&server.metrics().await?);
    Ok((metrics, CpuSample::take(&[server.pid()], postmaster)))
}

/// A measured end-to-end phase, with the server's view from its metrics.
async fn measured_phase(
    server: &ServerUnderTest,
    postmaster: Option<u32>,
    run: &FleetRun,
    metrics_before: MetricsSample,
    cpu_before: CpuSample,
    cpus: usize,
) -> anyhow::Result<Phase> {
    let cpu_after = CpuSample::take(&[server.pid()], postmaster);
    let metrics_after = MetricsSample::parse(&server.metrics().await?);
    anyhow::ensure!(
        run.bad_acks == 0,
        "{} of {} acks were not \"all stored\"; first: {}",
        run.bad_acks,
        run.messages,
        run.first_bad_ack.as_deref().unwrap_or("?")
    );
    let profile = metrics_before.batches_until(&metrics_after, run.elapsed);
    let cpu = cpu_before.until(&cpu_after, run.elapsed, cpus);
    Ok(Phase::from_fleet(run, cpu, Some(profile)))
}

/// Fails unless the table holds exactly `expected` readings of these devices.
async fn check_stored(
    store: &Store,
    devices: &[BenchDevice],
    expected: usize,
) -> anyhow::Result<()> {
    let ids: Vec<&str> = devices.iter().map(|d| d.credentials.id.as_str()).collect();
    let count = store.count_glucose_readings(&ids).await?;
    anyhow::ensure!(
        usize::try_from(count).ok() == Some(expected),
        "glucose_readings holds {count} readings of the benchmark's devices, expected {expected}"
    );
    Ok(())
}

/// Connects to a database of the private PostgreSQL and brings its schema up to date, as
/// `serve` would (with TimescaleDB when available, so the COPY table matches the server's).
async fn open_store(url: &str) -> anyhow::Result<Store> {
    let store = Store::connect_lazy(&StoreSettings {
        url: url.to_owned(),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(30),
    })?;
    store.migrate().await.context("database migration failed")?;
    store
        .apply_timescale(&TimescaleSettings::default())
        .await
        .context("cannot apply the TimescaleDB settings")?;
    Ok(store)
}

/// A benchmark CGM and the patient wearing it.
pub(crate) struct BenchDevice {
    pub patient_id: Uuid,
    pub credentials: DeviceCredentials,
}

/// Registers `count` CGMs, each worn by a patient of its own as CGMs are: the alert engine
/// and the rollups then see as many patients as devices, as in a clinic, rather than one
/// patient whose every evaluation covers the whole run's readings.
async fn provision(store: &Store, count: usize) -> anyhow::Result<Vec<BenchDevice>> {
    let mut devices = Vec::with_capacity(count);
    for i in 0..count {
        let patient = store
            .create_patient(&NewPatient {
                display_name: format!("Benchmark {i}"),
                time_zone: "UTC".to_owned(),
            })
            .await?;
        let (_, credentials) = store
            .create_device(patient.id, DeviceKind::Cgm, Some("benchmark"))
            .await?;
        devices.push(BenchDevice {
            patient_id: patient.id,
            credentials,
        });
    }
    Ok(devices)
}

/// One plan per device, device `i` sending `payloads(i)`.
pub(crate) fn plans(
    devices: &[BenchDevice],
    payloads: impl Fn(usize) -> Vec<Vec<u8>>,
    readings_per_message: usize,
) -> Vec<DevicePlan> {
    devices
        .iter()
        .enumerate()
        .map(|(i, d)| DevicePlan {
            device_id: d.credentials.id.as_str().to_owned(),
            secret: d.credentials.secret.clone(),
            payloads: payloads(i),
            readings_per_message,
        })
        .collect()
}

/// A temporary directory under /tmp that the `postgres` account can enter (PostgreSQL runs as
/// that account when the benchmark runs as root).
fn traversable_tempdir() -> anyhow::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("chronicle-bench-")
        .tempdir_in("/tmp")
        .context("cannot create a temporary directory in /tmp")?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

fn rate(readings: usize, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        0.0
    } else {
        readings as f64 / elapsed.as_secs_f64()
    }
}

/// One measured phase.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// Messages sent (for COPY: COPY statements).
    pub messages: usize,
    pub readings: usize,
    /// First publish to last ack (for COPY: first COPY sent to last one finished).
    pub seconds: f64,
    pub readings_per_second: f64,
    /// Publish-to-ack latency per message.
    pub latency: Option<Latency>,
    pub cpu: CpuUse,
    /// The server's batches, from its /metrics.
    pub server: Option<BatchProfile>,
}

/// Publish-to-ack times, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Phase {
    fn from_fleet(run: &FleetRun, cpu: CpuUse, server: Option<BatchProfile>) -> Phase {
        let ms = |q| fleet::quantile(&run.latencies, q).map_or(0.0, |d| d.as_secs_f64() * 1e3);
        Phase {
            messages: run.messages,
            readings: run.readings,
            seconds: run.elapsed.as_secs_f64(),
            readings_per_second: rate(run.readings, run.elapsed),
            latency: (!run.latencies.is_empty()).then(|| Latency {
                p50_ms: ms(0.5),
                p99_ms: ms(0.99),
                max_ms: ms(1.0),
            }),
            cpu,
            server,
        }
    }
}

/// The results, as printed and as written with --json.
#[derive(Debug, Serialize)]
struct Report {
    #[serde(flatten)]
    run: RunHeader,
    settings: Settings,
    single_end_to_end: Phase,
    single_light_load: Phase,
    broker_only_light_load: Phase,
    broker_only_ceiling: Phase,
    batch_end_to_end: Phase,
    copy_ceiling: Phase,
    /// Peak resident memory of `chronicle serve` over the whole run (VmHWM before SIGTERM).
    server_peak_rss_bytes: u64,
    /// The same, read after the one-reading phases, before the batch phase.
    server_peak_rss_single_bytes: u64,
    ratios: Ratios,
}

#[derive(Debug, Serialize)]
struct Settings {
    broker: &'static str,
    devices: u32,
    messages_per_device: u32,
    window: u32,
    batch_devices: u32,
    batch_messages: u32,
    readings_per_batch: u32,
    copy_connections: u32,
    serve_args: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Ratios {
    target: f64,
    single_vs_broker_only: f64,
    single_target_met: bool,
    batch_vs_copy: f64,
    batch_target_met: bool,
}

impl Report {
    fn new(args: &BenchIngestArgs, run: RunHeader, phases: Phases) -> Report {
        let ratio = |a: &Phase, b: &Phase| {
            if b.readings_per_second > 0.0 {
                a.readings_per_second / b.readings_per_second
            } else {
                0.0
            }
        };
        let single = ratio(&phases.single, &phases.broker_only);
        let batch = ratio(&phases.batch, &phases.copy);
        Report {
            run,
            settings: Settings {
                broker: args.broker.name(),
                devices: args.devices,
                messages_per_device: args.messages_per_device,
                window: args.window,
                batch_devices: args.batch_devices,
                batch_messages: args.batch_messages,
                readings_per_batch: args.readings_per_batch,
                copy_connections: args.copy_connections,
                serve_args: args.run.serve_args.clone(),
            },
            single_end_to_end: phases.single,
            single_light_load: phases.light,
            broker_only_light_load: phases.broker_light,
            broker_only_ceiling: phases.broker_only,
            batch_end_to_end: phases.batch,
            copy_ceiling: phases.copy,
            server_peak_rss_bytes: phases.server_peak_rss_bytes,
            server_peak_rss_single_bytes: phases.server_peak_rss_single_bytes,
            ratios: Ratios {
                target: TARGET_RATIO,
                single_vs_broker_only: single,
                single_target_met: single >= TARGET_RATIO,
                batch_vs_copy: batch,
                batch_target_met: batch >= TARGET_RATIO,
            },
        }
    }
}

/// The shortest one-reading phase whose ratio a single pause of the machine does not decide.
const STEADY_PHASE_SECONDS: f64 = 3.0;

impl BenchReport for Report {
    /// The human-readable summary.
    fn text(&self) -> String {
        let s = &self.settings;
        let rows = [
            (
                format!("one reading/message, end to end ({} devices)", s.devices),
                &self.single_end_to_end,
            ),
            (
                "  ceiling: broker only, same messages".to_owned(),
                &self.broker_only_ceiling,
            ),
            (
                format!("one reading/message, light load ({LIGHT_DEVICES} devices, 1 in flight)"),
                &self.single_light_load,
            ),
            (
                "  broker only, same light load".to_owned(),
                &self.broker_only_light_load,
            ),
            (
                format!(
                    "{} readings/message, end to end ({} devices)",
                    s.readings_per_batch, s.batch_devices
                ),
                &self.batch_end_to_end,
            ),
            (
                format!(
                    "  ceiling: raw COPY, {} rows per COPY, {} at once",
                    s.readings_per_batch, s.copy_connections
                ),
                &self.copy_ceiling,
            ),
        ];
        let mut out = String::new();
        out += &self.run.title("ingest");
        out += &format!("broker: {}\n\n", s.broker);
        out += &format!(
            "{:<56} {:>8} {:>9} {:>7} {:>11} {:>8} {:>8}\n",
            "phase", "messages", "readings", "seconds", "readings/s", "p50 ms", "p99 ms"
        );
        for (name, phase) in &rows {
            let (p50, p99) = match &phase.latency {
                Some(l) => (format!("{:.1}", l.p50_ms), format!("{:.1}", l.p99_ms)),
                None => ("-".to_owned(), "-".to_owned()),
            };
            out += &format!(
                "{:<56} {:>8} {:>9} {:>7.2} {:>11.0} {:>8} {:>8}\n",
                name,
                phase.messages,
                phase.readings,
                phase.seconds,
                phase.readings_per_second,
                p50,
                p99
            );
        }
        out += &format!(
            "\nserver peak memory (VmHWM): {:.1} MiB after the one-reading phases, \
             {:.1} MiB at the end\n\n",
            self.server_peak_rss_single_bytes as f64 / (1024.0 * 1024.0),
            self.server_peak_rss_bytes as f64 / (1024.0 * 1024.0)
        );
        let verdict = |met: bool| if met { "met" } else { "MISSED" };
        let r = &self.ratios;
        out += &format!(
            "one reading/message vs broker-only ceiling: {:.0} % (target >= {:.0} %: {})\n",
            100.0 * r.single_vs_broker_only,
            100.0 * r.target,
            verdict(r.single_target_met)
        );
        out += &format!(
            "batched vs raw COPY ceiling:                {:.0} % (target >= {:.0} %: {})\n\n",
            100.0 * r.batch_vs_copy,
            100.0 * r.target,
            verdict(r.batch_target_met)
        );
        let shortest = self
            .broker_only_ceiling
            .seconds
            .min(self.single_end_to_end.seconds);
        if shortest < STEADY_PHASE_SECONDS {
            // A pause of the machine of a tenth of a second moves a ratio of sub-second
            // phases by many points; the figures meant for docs/benchmarks.md need longer ones.
            let longer = (f64::from(s.messages_per_device) * STEADY_PHASE_SECONDS
                / shortest.max(0.01))
            .ceil();
            out += &format!(
                "note: a one-reading phase took {shortest:.2} s, too short for a steady ratio; \
                 for figures to compare, repeat with --messages-per-device {longer:.0} or more\n\n"
            );
        }
        out += &format!(
            "{:<56} {:>7} {:>7} {:>7} {:>9} {:>7}\n",
            "CPU-seconds during the phase", "busy %", "bench", "server", "postgres", "other"
        );
        for (name, phase) in &rows {
            let c = &phase.cpu;
            out += &format!(
                "{:<56} {:>7.0} {:>7.2} {:>7.2} {:>9.2} {:>7.2}\n",
                name,
                c.machine_busy_percent,
                c.bench_seconds,
                c.server_seconds,
                c.postgres_seconds,
                c.other_seconds
            );
        }
        out += &format!(
            "\n{:<56} {:>7} {:>9} {:>9} {:>9} {:>8} {:>7}\n",
            "server batches (/metrics)",
            "batches",
            "msgs/tx",
            "rdgs/tx",
            "commit ms",
            "busy %",
            "lag ms"
        );
        for (name, phase) in &rows {
            if let Some(b) = &phase.server {
                out += &format!(
                    "{:<56} {:>7} {:>9.1} {:>9.1} {:>9.2} {:>8.0} {:>7.1}\n",
                    name,
                    b.batches,
                    b.mean_messages_per_batch,
                    b.mean_readings_per_batch,
                    b.mean_commit_ms,
                    b.commit_busy_percent,
                    b.mean_lag_ms
                );
            }
        }
        out
    }
}

//! `chronicle bench alerts`: how long a reading that raises an alarm takes from its publish
//! to the alert event on a care team member's live stream, while the server ingests (and
//! evaluates) background readings at a tenth of the ingest capacity measured in the same run.
//!
//! Phases, against one private PostgreSQL and one `chronicle serve` (a child process):
//! 1. capacity: background devices (one patient each) send one-reading messages as fast as
//!    their acks allow (the `bench ingest` fleet), with the alert engine evaluating every
//!    patient they touch, as deployed;
//! 2. latency: the same devices send live, in-range readings paced at 10 % of that capacity,
//!    while a probe CGM sends, every `--probe-interval-ms`, a clear reading followed by a very
//!    low one. Each very low re-triggers the probe patient's alert; the time from the publish
//!    to that event arriving on an SSE stream (`GET /v1/alerts/stream`, as a clinician of the
//!    patient's care team) is the latency. The same clinician has a Web Push channel to a push
//!    service the benchmark runs on loopback ([`super::push`]): the time from the publish to
//!    the push request's arrival there is the push latency.

use super::alarms::{AlarmProbes, AlarmSchedule, AlarmTimes, connect_device};
use super::fleet::{self, Fleet, FleetOptions, TOPIC_PREFIX};
use super::push::PushReceiver;
use super::server::ServerUnderTest;
use super::{
    BenchDevice, BenchReport, RunHeader, open_store, plans, provision, run_and_publish,
    start_mosquitto, workload,
};
use crate::cli::{BenchAlertsArgs, DatabaseSettings};
use anyhow::{Context, bail};
use chronicle_domain::topics::readings_topic;
use chronicle_embedded::PrivatePostgres;
use chronicle_storage::{DeviceCredentials, Store};
use chrono::{SecondsFormat, Utc};
use rumqttc::QoS;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The issue's goal for the 99th percentile.
const GOAL_P99_MS: f64 = 250.0;
/// The goal for the 99th percentile of publish → push delivered.
const PUSH_GOAL_P99_MS: f64 = 1000.0;
/// The share of the measured capacity the latency phase runs at.
const LOAD_SHARE: f64 = 0.1;

pub async fn run(database: &DatabaseSettings, args: &BenchAlertsArgs) -> anyhow::Result<()> {
    run_and_publish(
        "alerts",
        database,
        &args.run,
        async |_, work, postgres| measure(args, work, postgres).await,
        |run, measured: Measured| Report {
            run,
            broker: args.broker.name(),
            devices: args.devices,
            goal_p99_ms: GOAL_P99_MS,
            goal_met: measured.p99_ms <= GOAL_P99_MS,
            push_goal_p99_ms: PUSH_GOAL_P99_MS,
            push_goal_met: measured.push.missed == 0 && measured.push.p99_ms <= PUSH_GOAL_P99_MS,
            measured,
        },
    )
    .await
}

/// What the run measured.
#[derive(Debug, Serialize)]
struct Measured {
    /// Phase 1: one-reading messages per second, end to end, with alert evaluation running.
    capacity_readings_per_second: f64,
    /// Phase 2: the background rate asked for, and the rate sent.
    background_target_per_second: f64,
    background_sent_per_second: f64,
    probes: usize,
    /// Probes whose event never arrived.
    missed: usize,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Publish → the push request's arrival at the push service, for the same alarms.
    push: Latencies,
    /// From the server's metrics over the whole run: patients evaluated, evaluation rounds
    /// (batches), and their mean duration.
    evaluations: f64,
    evaluation_batches: f64,
    mean_batch_ms: f64,
}

/// Timed alarms on one path.
#[derive(Debug, Serialize)]
struct Latencies {
    /// Alarms timed.
    count: usize,
    /// Alarms that never arrived.
    missed: usize,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl From<&AlarmTimes> for Latencies {
    fn from(times: &AlarmTimes) -> Latencies {
        let ms = |q| fleet::quantile(&times.latencies, q).map_or(0.0, |d| d.as_secs_f64() * 1e3);
        Latencies {
            count: times.latencies.len(),
            missed: times.missed,
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            max_ms: ms(1.0),
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    #[serde(flatten)]
    run: RunHeader,
    broker: &'static str,
    devices: u32,
    goal_p99_ms: f64,
    goal_met: bool,
    push_goal_p99_ms: f64,
    push_goal_met: bool,
    measured: Measured,
}

impl BenchReport for Report {
    fn text(&self) -> String {
        let m = &self.measured;
        self.run.title("alert latency")
            + &format!(
                "broker: {}\n\n\
             ingest capacity (one reading/message, {} devices, alerts evaluated): {:.0} readings/s\n\
             background load at {:.0} % of it: {:.1} readings/s asked, {:.1} sent\n\
             publish → alert on the stream, {} probes ({} missed): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
             publish → push delivered (Web Push, encrypted, to a push service on loopback), {} pushes ({} missed): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
             alert engine over the run: {:.0} patients evaluated in {:.0} batches, {:.1} ms per batch on average\n\
             goal p99 <= {:.0} ms: {}\n\
             push goal p99 <= {:.0} ms: {}\n\n",
                self.broker,
                self.devices,
                m.capacity_readings_per_second,
                LOAD_SHARE * 100.0,
                m.background_target_per_second,
                m.background_sent_per_second,
                m.probes,
                m.missed,
                m.p50_ms,
                m.p90_ms,
                m.p99_ms,
                m.max_ms,
                m.push.count,
                m.push.missed,
                m.push.p50_ms,
                m.push.p90_ms,
                m.push.p99_ms,
                m.push.max_ms,
                m.evaluations,
                m.evaluation_batches,
                m.mean_batch_ms,
                self.goal_p99_ms,
                if self.goal_met { "met" } else { "MISSED" },
                self.push_goal_p99_ms,
                if self.push_goal_met { "met" } else { "MISSED" }
            )
    }
}

async fn measure(
    args: &BenchAlertsArgs,
    work: &std::path::Path,
    postgres: &PrivatePostgres,
) -> anyhow::Result<Measured> {
    let store = open_store(&postgres.database_url()).await?;
    let background = provision(&store, args.devices as usize).await?;
    let probes = AlarmProbes::register(&store, 1).await?;
    let push = PushReceiver::start().await?;
    let push_channel = push.subscribe(&store, probes.clinician()).await?;

    let broker = start_mosquitto(args.broker).await?;
    // The push service is on loopback: the operator's allow-list lets the server reach it.
    let mut serve_args = args.run.serve_args.clone();
    serve_args.extend(["--webhook-allow".to_owned(), "127.0.0.1".to_owned()]);
    let server =
        ServerUnderTest::start(&postgres.database_url(), work, broker.as_ref(), &serve_args)
            .await?;
    let measured = async {
        let port = server.mqtt_port();
        println!(
            "phase 1/2: ingest capacity ({} devices × {} messages, alerts evaluated)",
            args.devices, args.capacity_messages
        );
        let base = workload::base_time();
        let messages = workload::single_messages(base, args.capacity_messages as usize);
        let plans = plans(&background, |_| messages.clone(), 1);
        let options = FleetOptions {
            port,
            window: 20,
            expect_stored: true,
            timeout: Duration::from_secs(args.timeout_seconds),
        };
        let run = Fleet::connect(plans, &options).await?.run().await?;
        anyhow::ensure!(run.bad_acks == 0, "bad acks: {:?}", run.first_bad_ack);
        let capacity = run.readings as f64 / run.elapsed.as_secs_f64().max(1e-9);
        wait_for_alert_queue(&store, Duration::from_secs(args.timeout_seconds)).await?;

        let target = capacity * LOAD_SHARE;
        println!(
            "phase 2/2: {} probes, one every {} ms, over {target:.0} background readings/s",
            args.probes, args.probe_interval_ms
        );
        let (sent, times) = latency(
            &server,
            &background,
            &probes,
            target,
            args.probes as usize,
            Duration::from_millis(args.probe_interval_ms),
        )
        .await?;
        let pushed = push
            .times(
                &store,
                probes.clinician(),
                push_channel,
                &times.raised,
                Duration::from_secs(30),
            )
            .await?;
        let stream = Latencies::from(&times);
        anyhow::Ok(Measured {
            capacity_readings_per_second: capacity,
            background_target_per_second: target,
            background_sent_per_second: sent,
            probes: stream.count + stream.missed,
            missed: stream.missed,
            p50_ms: stream.p50_ms,
            p90_ms: stream.p90_ms,
            p99_ms: stream.p99_ms,
            max_ms: stream.max_ms,
            push: Latencies::from(&pushed),
            evaluations: 0.0,
            evaluation_batches: 0.0,
            mean_batch_ms: 0.0,
        })
    }
    .await;
    let measured = match (measured, server.metrics().await) {
        (Ok(mut m), Ok(text)) => {
            let value = |name: &str| -> f64 {
                text.lines()
                    .filter(|l| l.starts_with(name))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum()
            };
            m.evaluations = value("chronicle_alerts_evaluations_total");
            m.evaluation_batches = value("chronicle_alerts_evaluation_seconds_count");
            let seconds = value("chronicle_alerts_evaluation_seconds_sum");
            m.mean_batch_ms = if m.evaluation_batches > 0.0 {
                1e3 * seconds / m.evaluation_batches
            } else {
                0.0
            };
            Ok(m)
        }
        (other, _) => other,
    };
    let log_tail = server.log_tail();
    let status = server.terminate().await?;
    if !status.success() {
        tracing::warn!(%status, "chronicle serve did not exit cleanly");
    }
    store.close().await;
    drop(broker);
    measured.with_context(|| format!("server log:\n{log_tail}"))
}

async fn wait_for_alert_queue(store: &Store, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while store.pending_followups(chronicle_alerts::CONSUMER).await? > 0 {
        if Instant::now() > deadline {
            bail!(
                "the alert engine did not catch up within {} s",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Phase 2. Returns the background rate sent and the probe's timed alarms.
async fn latency(
    server: &ServerUnderTest,
    background: &[BenchDevice],
    probes: &AlarmProbes,
    rate: f64,
    alarms: usize,
    interval: Duration,
) -> anyhow::Result<(f64, AlarmTimes)> {
    let port = server.mqtt_port();
    let duration = interval * u32::try_from(alarms).unwrap_or(u32::MAX) + Duration::from_secs(2);
    let per_device = if rate > 0.0 {
        Duration::from_secs_f64(background.len() as f64 / rate)
    } else {
        duration
    };
    let mut senders = Vec::new();
    for device in background {
        senders.push(tokio::spawn(paced(
            port,
            device.credentials.clone(),
            per_device,
            duration,
        )));
    }
    let schedule = AlarmSchedule {
        interval,
        alarms,
        stop: Arc::default(),
        patience: Duration::from_secs(10),
    };
    let times = probes.run(server.http_addr(), port, &schedule).await?;
    let mut background_sent = 0;
    for sender in senders {
        background_sent += sender.await.context("background device")??;
    }
    Ok((background_sent as f64 / duration.as_secs_f64(), times))
}

/// A background device sending a live, steady, in-range reading every `every` for `duration`;
/// returns how many it sent.
async fn paced(
    port: u16,
    device: DeviceCredentials,
    every: Duration,
    duration: Duration,
) -> anyhow::Result<usize> {
    let client = connect_device(port, &device, "paced").await?;
    let topic = readings_topic(TOPIC_PREFIX, device.id.as_str());
    // Spread the devices' first readings over the interval.
    tokio::time::sleep(every.mul_f64(rand::random::<f64>())).await;
    let end = Instant::now() + duration;
    let mut ticker = tokio::time::interval(every);
    let mut count = 0;
    while Instant::now() < end {
        ticker.tick().await;
        // A steady patient: readings a fraction of a second apart make any change a steep
        // trend (mg/dL per minute), so the value stays put and no rule fires.
        let payload = format!(
            r#"{{"type":"glucose","value":120,"unit":"mg/dL","measured_at":"{}"}}"#,
            Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
        );
        client
            .publish(&topic, QoS::AtLeastOnce, false, payload)
            .await
            .context("publish")?;
        count += 1;
    }
    Ok(count)
}

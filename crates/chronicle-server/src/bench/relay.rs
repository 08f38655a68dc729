//! A fleet of patients' devices at real cadence, multiplexed over a few MQTT connections as
//! registered gateways relay them (docs/protocol.md, "Gateways"), for `chronicle bench fleet`.
//!
//! Each gateway keeps its devices in a queue ordered by when each is next due and publishes
//! every reading at its time, with QoS 1 and no wait for the server's ack: a device at real
//! cadence sends one reading and goes back to sleep. A reading counts as sent when the broker
//! has acknowledged it (PUBACK), which for QoS 1 means the broker holds it for the ingest.

use super::fleet::TOPIC_PREFIX;
use anyhow::Context;
use chronicle_domain::DeviceKind;
use chronicle_domain::topics::readings_topic;
use chrono::{SecondsFormat, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Longest a gateway sleeps before looking at the stop flag again.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// One device behind a gateway and its cadence.
#[derive(Debug, Clone)]
pub struct RelayedDevice {
    pub device_id: String,
    pub kind: DeviceKind,
    /// Time between two readings.
    pub period: Duration,
    /// When, after the start, its first reading is due (its place in the period).
    pub phase: Duration,
    /// The steady value it reports (glucose mg/dL, or systolic mmHg for a cuff).
    pub level: u16,
}

/// A gateway's MQTT login and the devices it relays.
pub struct GatewayPlan {
    pub gateway_id: String,
    pub secret: String,
    pub devices: Vec<RelayedDevice>,
}

/// Counters shared by the gateways.
#[derive(Debug, Default)]
pub struct RelayCounters {
    /// Readings handed to the MQTT clients.
    pub published: AtomicU64,
    /// Readings the broker acknowledged (PUBACK).
    pub acknowledged: AtomicU64,
    /// Publishes that could not be handed over (the connection's queue closed).
    pub failed: AtomicU64,
}

/// The running gateways.
pub struct Relay {
    pub counters: Arc<RelayCounters>,
    stop: Arc<AtomicBool>,
    gateways: JoinSet<anyhow::Result<()>>,
}

impl Relay {
    /// Connects every gateway to the broker on `port` and starts publishing, each device's
    /// first reading at `start + phase`.
    pub fn start(port: u16, plans: Vec<GatewayPlan>, start: Instant) -> Relay {
        let counters = Arc::new(RelayCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut gateways = JoinSet::new();
        for plan in plans {
            gateways.spawn(run_gateway(
                port,
                plan,
                start,
                Arc::clone(&counters),
                Arc::clone(&stop),
            ));
        }
        Relay {
            counters,
            stop,
            gateways,
        }
    }

    /// Readings the broker has acknowledged so far.
    pub fn acknowledged(&self) -> u64 {
        self.counters.acknowledged.load(Ordering::Relaxed)
    }

    /// Stops publishing, waits until the broker has acknowledged every reading handed over
    /// (at most `timeout`), and disconnects.
    pub async fn stop(mut self, timeout: Duration) -> anyhow::Result<Arc<RelayCounters>> {
        self.stop.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + timeout;
        while let Some(done) = tokio::time::timeout_at(deadline, self.gateways.join_next())
            .await
            .context("the gateways did not finish in time")?
        {
            done.context("a gateway task failed")??;
        }
        Ok(self.counters)
    }
}

async fn run_gateway(
    port: u16,
    plan: GatewayPlan,
    start: Instant,
    counters: Arc<RelayCounters>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let mut options = MqttOptions::new(&plan.gateway_id, "127.0.0.1", port);
    options
        .set_credentials(&plan.gateway_id, &plan.secret)
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(options, 4096);
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    // This gateway's own acknowledgements, to know when all of its readings are in.
    let acknowledged_here = Arc::new(AtomicU64::new(0));
    let ack_counters = Arc::clone(&counters);
    let acks_here = Arc::clone(&acknowledged_here);
    let connection = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    ack_counters.acknowledged.fetch_add(1, Ordering::Relaxed);
                    acks_here.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                Ok(_) => {}
                Err(rumqttc::ConnectionError::RequestsDone) => break,
                Err(error) => {
                    // The broker went away for a moment; rumqttc reconnects on the next poll
                    // and resends what was in flight.
                    tracing::warn!(%error, "gateway connection lost; reconnecting");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });

    // Next due time and device index, earliest first.
    let mut due: BinaryHeap<Reverse<(Instant, usize)>> = plan
        .devices
        .iter()
        .enumerate()
        .map(|(i, device)| Reverse((start + device.phase, i)))
        .collect();
    let mut published_here = 0_u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(&Reverse((at, i))) = due.peek() else {
            break;
        };
        let now = Instant::now();
        if at > now {
            tokio::time::sleep_until(at.min(now + STOP_CHECK)).await;
            continue;
        }
        due.pop();
        let device = &plan.devices[i];
        due.push(Reverse((at + device.period, i)));
        let topic = readings_topic(TOPIC_PREFIX, &device.device_id);
        match client
            .publish(topic, QoS::AtLeastOnce, false, payload(device))
            .await
        {
            Ok(()) => {
                published_here += 1;
                counters.published.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    // Every reading handed over is acknowledged before the gateway leaves, so "sent" is what
    // the broker holds.
    while acknowledged_here.load(Ordering::Relaxed) < published_here && !connection.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
    Ok(())
}

/// One live reading of the device, measured now.
fn payload(device: &RelayedDevice) -> String {
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    match device.kind {
        // A steady patient in range: no rule fires, so alert events come from the probes alone.
        DeviceKind::Cgm | DeviceKind::Meter | DeviceKind::Uploader => format!(
            r#"{{"type":"glucose","value":{},"unit":"mg/dL","measured_at":"{now}"}}"#,
            device.level
        ),
        DeviceKind::Bp => format!(
            r#"{{"type":"blood_pressure","systolic":{},"diastolic":{},"pulse":68,"measured_at":"{now}"}}"#,
            device.level,
            device.level.saturating_sub(45)
        ),
    }
}

//! The benchmark's devices: one MQTT connection each, publishing with QoS 1 as fast as their
//! acks allow within a window, and timing each message from publish to ack.
//!
//! The ack is what the server publishes on the device's acks topic after the batch holding the
//! message committed, so publish-to-ack is publish-to-commit plus the ack's way back through
//! the broker.

use anyhow::{Context, bail};
use chronicle_domain::sync::lock;
use chronicle_domain::topics::{acks_topic, readings_topic};
use chronicle_domain::wire::Ack;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, Packet, QoS};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// The protocol's topic prefix (the server runs with its default).
pub const TOPIC_PREFIX: &str = chronicle_domain::topics::DEFAULT_TOPIC_PREFIX;

/// One device and what it sends.
pub struct DevicePlan {
    pub device_id: String,
    /// MQTT password; the username is the device id.
    pub secret: String,
    /// The messages, in order; message `i` must carry `"message_id":"i"`.
    pub payloads: Vec<Vec<u8>>,
    /// Readings in each message, which a correct ack reports as stored.
    pub readings_per_message: usize,
}

/// How the devices behave.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub port: u16,
    /// Messages a device may have sent without their ack.
    pub window: usize,
    /// Whether acks must report every reading stored (the real server); a stand-in that
    /// stores nothing says 0.
    pub expect_stored: bool,
    /// The phase fails if the last ack has not arrived by then.
    pub timeout: Duration,
}

/// What a phase measured.
#[derive(Debug, Clone)]
pub struct FleetRun {
    /// First publish to last ack.
    pub elapsed: Duration,
    pub messages: usize,
    pub readings: usize,
    /// Publish-to-ack time of every message, sorted.
    pub latencies: Vec<Duration>,
    /// Acks that did not say what was expected, with the first one described.
    pub bad_acks: usize,
    pub first_bad_ack: Option<String>,
}

/// A device's shared state: when each message went out, and its free window slots.
struct Tracker {
    sent: Mutex<Vec<Option<Instant>>>,
    window: Semaphore,
}

/// What one device's ack loop saw.
struct DeviceOutcome {
    latencies: Vec<Duration>,
    last_ack: Instant,
    bad_acks: usize,
    first_bad_ack: Option<String>,
}

/// Devices connected and subscribed, ready to start.
pub struct Fleet {
    devices: Vec<(DevicePlan, AsyncClient, EventLoop)>,
    options: FleetOptions,
}

impl Fleet {
    /// Connects every device (in parallel) and subscribes it to its acks, so that no
    /// connection set-up falls inside the measured time.
    pub async fn connect(plans: Vec<DevicePlan>, options: &FleetOptions) -> anyhow::Result<Fleet> {
        let mut connecting = JoinSet::new();
        for plan in plans {
            let port = options.port;
            connecting.spawn(async move {
                let (client, eventloop) = connect(port, &plan.device_id, &plan.secret).await?;
                anyhow::Ok((plan, client, eventloop))
            });
        }
        let mut devices = Vec::new();
        while let Some(joined) = connecting.join_next().await {
            devices.push(joined.context("a device task failed")??);
        }
        Ok(Fleet {
            devices,
            options: options.clone(),
        })
    }

    /// Lets every device publish at once and waits for every ack.
    pub async fn run(self) -> anyhow::Result<FleetRun> {
        run(self.devices, &self.options).await
    }
}

async fn run(
    connected: Vec<(DevicePlan, AsyncClient, EventLoop)>,
    options: &FleetOptions,
) -> anyhow::Result<FleetRun> {
    let messages: usize = connected.iter().map(|(p, _, _)| p.payloads.len()).sum();
    let readings: usize = connected
        .iter()
        .map(|(p, _, _)| p.payloads.len() * p.readings_per_message)
        .sum();

    let (start_tx, start_rx) = watch::channel(false);
    let acked = Arc::new(AtomicUsize::new(0));
    let mut pollers = JoinSet::new();
    let mut publishers = JoinSet::new();
    for (plan, client, eventloop) in connected {
        let tracker = Arc::new(Tracker {
            sent: Mutex::new(vec![None; plan.payloads.len()]),
            window: Semaphore::new(options.window),
        });
        let expected = options.expect_stored.then_some(plan.readings_per_message);
        pollers.spawn(collect_acks(
            eventloop,
            tracker.clone(),
            plan.payloads.len(),
            expected,
            acked.clone(),
        ));
        let topic = readings_topic(TOPIC_PREFIX, &plan.device_id);
        publishers.spawn(publish_all(
            client,
            topic,
            plan.payloads,
            tracker,
            start_rx.clone(),
        ));
    }

    let started = Instant::now();
    start_tx
        .send(true)
        .context("every device stopped before the start")?;
    let finish = async {
        let mut outcomes = Vec::new();
        while let Some(joined) = pollers.join_next().await {
            outcomes.push(joined.context("a device task failed")??);
        }
        while let Some(joined) = publishers.join_next().await {
            joined.context("a device task failed")??;
        }
        anyhow::Ok(outcomes)
    };
    let outcomes = match tokio::time::timeout(options.timeout, finish).await {
        Ok(outcomes) => outcomes?,
        Err(_) => bail!(
            "timed out after {} s with {} of {messages} messages acknowledged",
            options.timeout.as_secs(),
            acked.load(Ordering::Relaxed)
        ),
    };

    let last_ack = outcomes.iter().map(|o| o.last_ack).max().unwrap_or(started);
    let mut latencies: Vec<Duration> = outcomes
        .iter()
        .flat_map(|o| o.latencies.iter().copied())
        .collect();
    latencies.sort_unstable();
    Ok(FleetRun {
        elapsed: last_ack.saturating_duration_since(started),
        messages,
        readings,
        latencies,
        bad_acks: outcomes.iter().map(|o| o.bad_acks).sum(),
        first_bad_ack: outcomes.into_iter().find_map(|o| o.first_bad_ack),
    })
}

/// Connects as the device, subscribes to its acks, and returns once the broker confirmed both.
async fn connect(
    port: u16,
    device_id: &str,
    secret: &str,
) -> anyhow::Result<(AsyncClient, EventLoop)> {
    let mut options = MqttOptions::new(device_id, "127.0.0.1", port);
    options
        .set_credentials(device_id, secret)
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(32 * 1024 * 1024, 32 * 1024 * 1024);
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    // Acks are small packets sent one after another: without this, Nagle's algorithm holds
    // each behind the peer's delayed TCP ACK (up to 40 ms a hop).
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let acks = acks_topic(TOPIC_PREFIX, device_id);
    let handshake = async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    if ack.code != ConnectReturnCode::Success {
                        bail!("the broker refused {device_id}: {:?}", ack.code);
                    }
                    client.try_subscribe(&acks, QoS::AtLeastOnce)?;
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => bail!("{device_id} could not connect: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), handshake)
        .await
        .with_context(|| format!("{device_id}: no CONNACK/SUBACK within 30 s"))??;
    Ok((client, eventloop))
}

/// Publishes every message, each once a window slot is free.
async fn publish_all(
    client: AsyncClient,
    topic: String,
    payloads: Vec<Vec<u8>>,
    tracker: Arc<Tracker>,
    mut start: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    start
        .wait_for(|go| *go)
        .await
        .context("the benchmark stopped before the start")?;
    for (index, payload) in payloads.into_iter().enumerate() {
        tracker
            .window
            .acquire()
            .await
            .context("window closed")?
            .forget();
        if let Some(slot) = lock(&tracker.sent).get_mut(index) {
            *slot = Some(Instant::now());
        }
        client
            .publish(&topic, QoS::AtLeastOnce, false, payload)
            .await
            .context("cannot publish")?;
    }
    Ok(())
}

/// Polls the device's connection, matches each ack to its message, and frees its window slot.
/// Ends once every message has its ack.
async fn collect_acks(
    mut eventloop: EventLoop,
    tracker: Arc<Tracker>,
    total: usize,
    expected_stored: Option<usize>,
    acked: Arc<AtomicUsize>,
) -> anyhow::Result<DeviceOutcome> {
    let mut outcome = DeviceOutcome {
        latencies: Vec::with_capacity(total),
        last_ack: Instant::now(),
        bad_acks: 0,
        first_bad_ack: None,
    };
    let mut answered = 0;
    while answered < total {
        let event = eventloop
            .poll()
            .await
            .context("a device lost its MQTT connection")?;
        let Event::Incoming(Packet::Publish(publish)) = event else {
            continue;
        };
        let now = Instant::now();
        let ack: Ack = match serde_json::from_slice(&publish.payload) {
            Ok(ack) => ack,
            Err(e) => {
                outcome.record_bad(format!("unreadable ack: {e}"));
                continue;
            }
        };
        let index = ack
            .message_id
            .as_deref()
            .and_then(|id| id.parse::<usize>().ok());
        let sent = index.and_then(|i| lock(&tracker.sent).get_mut(i).and_then(Option::take));
        let Some(sent) = sent else {
            outcome.record_bad(format!("ack for no message in flight: {ack:?}"));
            continue;
        };
        outcome.latencies.push(now.saturating_duration_since(sent));
        outcome.last_ack = now;
        if let Some(expected) = expected_stored
            && (ack.stored != expected || ack.duplicates != 0 || ack.rejected != 0)
        {
            outcome.record_bad(format!("expected {expected} stored, got {ack:?}"));
        }
        answered += 1;
        acked.fetch_add(1, Ordering::Relaxed);
        tracker.window.add_permits(1);
    }
    // The connection closes when the event loop is dropped here; a plain close is routine
    // for the broker.
    Ok(outcome)
}

impl DeviceOutcome {
    fn record_bad(&mut self, description: String) {
        self.bad_acks += 1;
        self.first_bad_ack.get_or_insert(description);
    }
}

/// The `q`-th quantile (0..=1) by nearest rank of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&sorted, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(quantile(&sorted, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(quantile(&sorted, 1.0), Some(Duration::from_millis(100)));
        assert_eq!(quantile(&[], 0.5), None);
    }
}

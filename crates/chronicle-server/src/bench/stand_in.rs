//! The broker-only ceiling: the broker as `chronicle serve` runs it, with the ingest replaced by
//! something that stores nothing and answers at once. On the embedded broker that is a message
//! sink answering each message as soon as it arrives; on Mosquitto, a subscriber that
//! subscribes and acknowledges exactly as the ingest does (persistent session, manual PUBACKs,
//! then an ack published to the device). Either way the devices see the same exchange and
//! their code is the same in both phases; what the end-to-end phase loses against this is
//! what batching, validation and storage cost.

use crate::bench::fleet::TOPIC_PREFIX;
use anyhow::{Context, bail};
use chronicle_broker::{
    Authority, AuthorityError, Broker, BrokerMetrics, BrokerSettings, Listener, MessageSink,
    Principal,
};
use chronicle_domain::topics::{acks_topic, all_readings_filter};
use chronicle_domain::wire::Ack;
use chronicle_domain::{DeviceId, Publisher};
use chronicle_ingest::batcher::IngestClosed;
use chronicle_ingest::mqtt::device_id_from_topic;
use chronicle_ingest::{IncomingMessage, MessageOutcome};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use serde::Deserialize;
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The defaults of `chronicle serve` that shape the broker and the ingest's connection
/// (`--mqtt-max-packet-bytes`, `--mqtt-inflight`).
const MAX_PACKET_BYTES: usize = 16 * 1024 * 1024;
const INFLIGHT: u16 = 1000;

/// A running broker with the stand-in ingest on it.
pub struct StandIn {
    /// Stops the embedded broker, when the stand-in runs one.
    broker: Option<CancellationToken>,
    port: u16,
    tasks: Vec<JoinHandle<()>>,
}

/// Every device id is a device, whatever its password: the ceiling measures the broker, not
/// the registry.
struct Trusting;

impl Authority for Trusting {
    async fn authenticate(
        &self,
        username: &str,
        _password: &str,
    ) -> Result<Option<Principal>, AuthorityError> {
        Ok(DeviceId::parse(username).ok().map(|id| Principal {
            identity: Publisher::Device(id),
            relays: HashSet::new(),
        }))
    }

    async fn principal(&self, identity: &Publisher) -> Result<Option<Principal>, AuthorityError> {
        Ok(Some(Principal {
            identity: identity.clone(),
            relays: HashSet::new(),
        }))
    }
}

/// Answers every message at once, saying nothing was stored.
struct Answering;

impl MessageSink for Answering {
    async fn submit(
        &self,
        message: IncomingMessage,
    ) -> Result<oneshot::Receiver<MessageOutcome>, IngestClosed> {
        let (reply, outcome) = oneshot::channel();
        let _ = reply.send(MessageOutcome {
            device_id: message.device_id,
            ack: empty_ack(&message.payload),
        });
        Ok(outcome)
    }
}

impl StandIn {
    /// Starts the embedded broker, as `chronicle serve` configures it, on a free port.
    pub async fn start() -> anyhow::Result<StandIn> {
        let tcp = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot listen for the broker-only ceiling")?;
        let port = tcp.local_addr()?.port();
        let shutdown = CancellationToken::new();
        let broker = Broker::start(
            BrokerSettings {
                topic_prefix: TOPIC_PREFIX.to_owned(),
                max_packet_bytes: MAX_PACKET_BYTES,
                inflight_in: usize::from(INFLIGHT),
                inflight_out: usize::from(INFLIGHT),
                ..BrokerSettings::default()
            },
            vec![Listener { tcp, tls: None }],
            Trusting,
            Answering,
            BrokerMetrics::default(),
            shutdown.clone(),
        )
        .context("cannot start the broker for the broker-only ceiling")?;
        let task = tokio::spawn(broker.join(Duration::from_secs(5)));
        Ok(StandIn {
            broker: Some(shutdown),
            port,
            tasks: vec![task],
        })
    }

    /// Connects the subscriber to a broker already listening on `port`.
    pub async fn connect(port: u16) -> anyhow::Result<StandIn> {
        let mut options = MqttOptions::new("chronicle-bench-stand-in", "127.0.0.1", port);
        options
            .set_credentials("chronicle-bench", "stand-in")
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
            .set_inflight(INFLIGHT);
        let (client, mut eventloop) = AsyncClient::new(options, 4096);
        // Acks are small packets sent one after another: without this, Nagle's algorithm holds
        // each behind the peer's delayed TCP ACK (up to 40 ms a hop).
        let mut network = eventloop.network_options();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let filter = all_readings_filter(TOPIC_PREFIX);
        let subscribed = async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        client.try_subscribe(&filter, QoS::AtLeastOnce)?;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => return anyhow::Ok(()),
                    Ok(_) => {}
                    Err(e) => bail!("the stand-in subscriber could not connect: {e}"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), subscribed)
            .await
            .context("the stand-in subscriber got no CONNACK/SUBACK within 10 s")??;

        // As in the ingest, one task polls and another acknowledges, so the event loop is
        // never blocked by a full request channel.
        let (tx, rx) = mpsc::unbounded_channel();
        let poller = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        if tx.send(publish).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "stand-in subscriber lost its connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        let acknowledger = tokio::spawn(acknowledge(client, rx));
        Ok(StandIn {
            broker: None,
            port,
            tasks: vec![poller, acknowledger],
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(broker) = &self.broker {
            broker.cancel();
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The only field of a message the stand-in reads: the id its ack must echo.
#[derive(Deserialize)]
struct MessageId {
    message_id: Option<String>,
}

/// PUBACK at once, then answer the device with an ack that says nothing was stored.
async fn acknowledge(client: AsyncClient, mut queue: mpsc::UnboundedReceiver<Publish>) {
    while let Some(publish) = queue.recv().await {
        if let Err(e) = client.ack(&publish).await {
            tracing::warn!(error = %e, "stand-in could not acknowledge a message");
        }
        let Some(device_id) = device_id_from_topic(TOPIC_PREFIX, &publish.topic) else {
            continue;
        };
        let body = match serde_json::to_vec(&empty_ack(&publish.payload)) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(error = %e, "stand-in could not encode an ack");
                continue;
            }
        };
        let topic = acks_topic(TOPIC_PREFIX, device_id);
        if let Err(e) = client.publish(topic, QoS::AtLeastOnce, false, body).await {
            tracing::warn!(error = %e, "stand-in could not publish an ack");
        }
    }
}

/// The ack of a message that stored nothing, echoing its `message_id`.
fn empty_ack(payload: &[u8]) -> Ack {
    Ack {
        message_id: serde_json::from_slice::<MessageId>(payload)
            .ok()
            .and_then(|m| m.message_id),
        stored: 0,
        duplicates: 0,
        rejected: 0,
        rejections: Vec::new(),
        redelivered: false,
    }
}

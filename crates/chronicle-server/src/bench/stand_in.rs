//! The broker-only ceiling: the embedded broker with the server's settings, and in place of
//! the ingest a subscriber that stores nothing. It subscribes and acknowledges exactly as the
//! ingest does (persistent session, manual PUBACKs, then an ack published to the device) but
//! at once, without a database, so the devices see the same exchange and their code is the
//! same in both phases. What the end-to-end phase loses against this is what batching,
//! validation and storage cost.

use crate::bench::fleet::TOPIC_PREFIX;
use anyhow::{Context, bail};
use chronicle_domain::wire::Ack;
use chronicle_embedded::{EmbeddedBroker, EmbeddedBrokerConfig};
use chronicle_ingest::mqtt::{ack_topic, device_id_from_topic};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The defaults of `chronicle serve` that shape the broker and the ingest's connection
/// (`--mqtt-max-packet-bytes`, `--mqtt-inflight`).
const MAX_PACKET_BYTES: usize = 16 * 1024 * 1024;
const INFLIGHT: u16 = 1000;

/// A running broker with the stand-in subscriber on it.
pub struct StandIn {
    /// The embedded broker, when the stand-in runs one (rumqttd cannot be stopped; it idles
    /// on its threads until the process exits).
    _broker: Option<EmbeddedBroker>,
    port: u16,
    tasks: Vec<JoinHandle<()>>,
}

impl StandIn {
    /// Starts the broker on `port`, accepting every client, and connects the subscriber.
    pub async fn start(port: u16) -> anyhow::Result<StandIn> {
        let broker = EmbeddedBroker::start(
            EmbeddedBrokerConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], port)),
                max_payload_bytes: MAX_PACKET_BYTES,
                max_inflight: usize::from(INFLIGHT),
                max_connections: 10_000,
            },
            |_client_id: String, _username: String, _password: String| async { true },
        )
        .context("cannot start the broker for the broker-only ceiling")?;
        let mut stand_in = StandIn::connect(port).await?;
        stand_in._broker = Some(broker);
        Ok(stand_in)
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
        let filter = format!("{TOPIC_PREFIX}/devices/+/readings");
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
            _broker: None,
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
        let message_id = serde_json::from_slice::<MessageId>(&publish.payload)
            .ok()
            .and_then(|m| m.message_id);
        let ack = Ack {
            message_id,
            stored: 0,
            duplicates: 0,
            rejected: 0,
            rejections: Vec::new(),
        };
        let body = match serde_json::to_vec(&ack) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(error = %e, "stand-in could not encode an ack");
                continue;
            }
        };
        let topic = ack_topic(TOPIC_PREFIX, device_id);
        if let Err(e) = client.publish(topic, QoS::AtLeastOnce, false, body).await {
            tracing::warn!(error = %e, "stand-in could not publish an ack");
        }
    }
}

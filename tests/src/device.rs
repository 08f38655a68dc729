//! A device for tests: a real MQTT client that publishes readings and collects its acks.

use anyhow::{Context, bail};
use chronicle_domain::topics;
use chronicle_domain::wire::Ack;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub struct TestDevice {
    client: AsyncClient,
    acks: mpsc::UnboundedReceiver<Ack>,
    device_id: String,
    poller: JoinHandle<()>,
    link: watch::Receiver<Link>,
}

/// The state of a test device's connection, as its poller last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Connected,
    /// The connection ended (the broker dropped it, or it failed).
    Lost,
    /// A reconnection was answered with this refusal.
    Refused(ConnectReturnCode),
}

impl TestDevice {
    /// Connects as `device_id` (with its secret on the embedded broker; anonymous on
    /// Mosquitto) and subscribes to its acks. Fails if the broker refuses the connection.
    pub async fn connect(
        port: u16,
        device_id: &str,
        secret: Option<&str>,
    ) -> anyhow::Result<TestDevice> {
        let client_id = format!("{device_id}.{}", uuid::Uuid::new_v4().simple());
        Self::connect_as(port, device_id, &client_id, secret, true).await
    }

    /// Connects as soon as the broker lets the device in: an external broker learns a new
    /// device's credentials when Chronicle has rewritten its files and it reloaded them.
    pub async fn connect_when_allowed(
        port: u16,
        device_id: &str,
        secret: &str,
    ) -> anyhow::Result<TestDevice> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            match Self::connect(port, device_id, Some(secret)).await {
                Ok(device) => return Ok(device),
                Err(error) if tokio::time::Instant::now() > deadline => {
                    return Err(error.context("the broker never let the device in"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub async fn connect_as(
        port: u16,
        device_id: &str,
        client_id: &str,
        secret: Option<&str>,
        clean_session: bool,
    ) -> anyhow::Result<TestDevice> {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(clean_session)
            .set_max_packet_size(32 * 1024 * 1024, 32 * 1024 * 1024)
            .set_inflight(1000);
        if let Some(secret) = secret {
            options.set_credentials(device_id, secret);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 10_000);
        // Acks are small packets sent one after another: without this, Nagle's algorithm holds
        // each behind the peer's delayed TCP ACK (up to 40 ms a hop).
        let mut network = eventloop.network_options();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        // Wait for CONNACK and SUBACK before handing the device out.
        let acks_topic = topics::acks_topic(topics::DEFAULT_TOPIC_PREFIX, device_id);
        loop {
            match tokio::time::timeout(Duration::from_secs(10), eventloop.poll()).await {
                Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                    if ack.code != ConnectReturnCode::Success {
                        bail!("broker refused the connection: {:?}", ack.code);
                    }
                    client.try_subscribe(&acks_topic, QoS::AtLeastOnce)?;
                }
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => bail!("MQTT connection failed: {e}"),
                Err(_) => bail!("no CONNACK/SUBACK within 10 s"),
            }
        }
        let (tx, acks) = mpsc::unbounded_channel();
        let (link_tx, link) = watch::channel(Link::Connected);
        let poller = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if let Ok(ack) = serde_json::from_slice::<Ack>(&p.payload) {
                            let _ = tx.send(ack);
                        }
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = link_tx.send(Link::Connected);
                    }
                    Ok(_) => {}
                    Err(error) => {
                        let state = match error {
                            rumqttc::ConnectionError::ConnectionRefused(code) => {
                                Link::Refused(code)
                            }
                            _ => Link::Lost,
                        };
                        let _ = link_tx.send(state);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(TestDevice {
            client,
            acks,
            device_id: device_id.to_owned(),
            poller,
            link,
        })
    }

    /// Waits until the broker has dropped this connection and refused a reconnection (the
    /// device keeps trying, as real devices do); fails after `timeout`.
    pub async fn refused_within(&mut self, timeout: Duration) -> anyhow::Result<ConnectReturnCode> {
        let refused = async {
            self.link
                .wait_for(|state| matches!(state, Link::Refused(_)))
                .await
                .map(|state| *state)
        };
        let outcome = tokio::time::timeout(timeout, refused).await;
        match outcome {
            Ok(Ok(Link::Refused(code))) => Ok(code),
            Ok(Ok(_)) => bail!("unreachable: the wait ended without a refusal"),
            Ok(Err(_)) => bail!("the device's poller stopped"),
            Err(_) => bail!(
                "still {:?} after {timeout:?}: the broker did not drop and refuse the device",
                self.link()
            ),
        }
    }

    /// The connection's state now.
    pub fn link(&self) -> Link {
        *self.link.borrow()
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Publishes to this device's readings topic with QoS 1.
    pub async fn publish(&self, payload: impl Into<Vec<u8>>) -> anyhow::Result<()> {
        let topic = format!("chronicle/v1/devices/{}/readings", self.device_id);
        self.publish_to(&topic, payload).await
    }

    pub async fn publish_to(&self, topic: &str, payload: impl Into<Vec<u8>>) -> anyhow::Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await?;
        Ok(())
    }

    /// The next ack, or an error after `timeout`.
    pub async fn next_ack(&mut self, timeout: Duration) -> anyhow::Result<Ack> {
        tokio::time::timeout(timeout, self.acks.recv())
            .await
            .context("no ack in time")?
            .context("ack channel closed")
    }

    /// Publishes and waits for the answer.
    pub async fn send(&mut self, payload: impl Into<Vec<u8>>) -> anyhow::Result<Ack> {
        self.publish(payload).await?;
        self.next_ack(Duration::from_secs(30)).await
    }

    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.poller.abort();
    }
}

impl Drop for TestDevice {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

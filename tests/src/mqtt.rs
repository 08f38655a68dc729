//! A raw MQTT client for tests that try what a hostile or a relaying client would: subscribe
//! to any filter, publish on any topic, and record everything the broker sends back.

use anyhow::{Context, bail};
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS, SubscribeReasonCode,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// What the broker sent this client.
#[derive(Debug, Default)]
struct Seen {
    /// Every PUBLISH received: topic and payload.
    messages: Vec<(String, Vec<u8>)>,
    pubacks: usize,
}

pub struct RawClient {
    client: AsyncClient,
    /// Per topic, how many of its messages `next_on` handed out already.
    taken: std::collections::HashMap<String, usize>,
    seen: Arc<Mutex<Seen>>,
    changed: watch::Receiver<u64>,
    subacks: mpsc::UnboundedReceiver<Vec<SubscribeReasonCode>>,
    poller: JoinHandle<()>,
}

impl RawClient {
    /// Connects with these credentials and client id; fails if the broker refuses.
    pub async fn connect(
        port: u16,
        client_id: &str,
        username: &str,
        password: &str,
    ) -> anyhow::Result<RawClient> {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options
            .set_credentials(username, password)
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true);
        let (client, mut eventloop) = AsyncClient::new(options, 1000);
        match tokio::time::timeout(Duration::from_secs(10), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                if ack.code != ConnectReturnCode::Success {
                    bail!("broker refused the connection: {:?}", ack.code);
                }
            }
            Ok(Ok(other)) => bail!("expected CONNACK, got {other:?}"),
            Ok(Err(e)) => bail!("MQTT connection failed: {e}"),
            Err(_) => bail!("no CONNACK within 10 s"),
        }
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (changes, changed) = watch::channel(0u64);
        let (subacks_tx, subacks) = mpsc::unbounded_channel();
        let recorded = seen.clone();
        let poller = tokio::spawn(async move {
            loop {
                let event = eventloop.poll().await;
                match event {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if let Ok(mut seen) = recorded.lock() {
                            seen.messages.push((p.topic.clone(), p.payload.to_vec()));
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        if let Ok(mut seen) = recorded.lock() {
                            seen.pubacks += 1;
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(suback))) => {
                        let _ = subacks_tx.send(suback.return_codes);
                    }
                    Ok(_) => {}
                    // The broker dropped us: stay down (a test asks what happened next).
                    Err(_) => return,
                }
                changes.send_modify(|n| *n += 1);
            }
        });
        Ok(RawClient {
            client,
            taken: Default::default(),
            seen,
            changed,
            subacks,
            poller,
        })
    }

    /// Subscribes to `filter` at QoS 1 and returns the broker's answer.
    pub async fn subscribe(&mut self, filter: &str) -> anyhow::Result<SubscribeReasonCode> {
        self.client.subscribe(filter, QoS::AtLeastOnce).await?;
        let codes = tokio::time::timeout(Duration::from_secs(10), self.subacks.recv())
            .await
            .context("no SUBACK within 10 s")?
            .context("connection lost before SUBACK")?;
        codes.into_iter().next().context("empty SUBACK")
    }

    /// Publishes at QoS 1 and waits for the broker's PUBACK.
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
    ) -> anyhow::Result<()> {
        let before = self.pubacks();
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await?;
        let seen = self.seen.clone();
        let acked = self
            .changed
            .wait_for(|_| seen.lock().map(|s| s.pubacks > before).unwrap_or(false));
        tokio::time::timeout(Duration::from_secs(20), acked)
            .await
            .context("no PUBACK within 20 s")?
            .context("connection lost before PUBACK")?;
        Ok(())
    }

    /// PUBACKs received so far.
    pub fn pubacks(&self) -> usize {
        self.seen.lock().map(|s| s.pubacks).unwrap_or(0)
    }

    /// Every message received so far.
    pub fn received(&self) -> Vec<(String, Vec<u8>)> {
        self.seen
            .lock()
            .map(|s| s.messages.clone())
            .unwrap_or_default()
    }

    /// The next message on `topic` not handed out before (waiting for it if need be).
    pub async fn next_on(&mut self, topic: &str, timeout: Duration) -> anyhow::Result<Vec<u8>> {
        let index = self.taken.get(topic).copied().unwrap_or(0);
        let seen = self.seen.clone();
        let arrived = self.changed.wait_for(|_| {
            seen.lock()
                .map(|s| s.messages.iter().filter(|(t, _)| t == topic).count() > index)
                .unwrap_or(false)
        });
        tokio::time::timeout(timeout, arrived)
            .await
            .with_context(|| format!("nothing on {topic} within {timeout:?}"))?
            .context("connection lost")?;
        self.taken.insert(topic.to_owned(), index + 1);
        self.received()
            .into_iter()
            .filter(|(t, _)| t == topic)
            .nth(index)
            .map(|(_, payload)| payload)
            .context("message vanished")
    }

    /// Whether the connection is still up.
    pub fn is_connected(&self) -> bool {
        !self.poller.is_finished()
    }
}

impl Drop for RawClient {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

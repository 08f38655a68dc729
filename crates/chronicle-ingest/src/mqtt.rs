//! The MQTT front door (`docs/protocol.md`).
//!
//! Devices publish with QoS 1 to `{prefix}/devices/{device_id}/readings`. This client
//! subscribes on a persistent session (fixed client id, `clean_session = false`) so messages
//! published while it was down are delivered when it returns, optionally inside a shared
//! subscription group so several servers split the load. Each message is acknowledged to the
//! broker only after the batch holding it committed, in receive order; then the outcome is
//! published to `{prefix}/devices/{device_id}/acks`.
//!
//! The event loop is polled by one task and never blocked on acknowledgements: a second task
//! (the acknowledger) waits for outcomes and sends acks through the client, as rumqttc asks.
//!
//! Device acks go at QoS 1 while fewer than a window of them wait for the broker's PUBACK, and
//! at QoS 0 beyond (a device that misses one resends and hears "duplicate"). Otherwise a full
//! window stops rumqttc from sending anything, the PUBACKs of committed messages included,
//! until the broker's answers arrive; and those wait behind every message the broker already
//! sent, which after an outage may be its whole queue (Mosquitto before 2.0.14 releases up to
//! `max_inflight_messages` queued messages for each PUBACK). Memory would then grow with the
//! backlog instead of the batcher's bound.

use crate::batcher::IngestHandle;
use crate::metrics::IngestMetrics;
use crate::pipeline::{BrokerAuthorization, IncomingMessage, MessageOutcome};
use chronicle_domain::topics::{acks_topic, all_readings_filter};
use chrono::Utc;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, Publish, QoS};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// How the ingest reaches its broker.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    /// Fixed, so the broker keeps this subscriber's session (and its queued messages) while
    /// the server restarts. Two servers must not share one client id.
    pub client_id: String,
    /// Username and password, when the broker asks for them.
    pub credentials: Option<(String, String)>,
    /// Subscribe as `$share/<group>/...` so the servers of one group split the messages.
    pub shared_group: Option<String>,
    /// Topic prefix, `chronicle/v1` by default.
    pub topic_prefix: String,
    pub keep_alive: Duration,
    /// Largest packet accepted or sent. Must be at least the broker's payload limit, or an
    /// oversized message would break the connection instead of being refused with a reason.
    pub max_packet_bytes: usize,
    /// Unacknowledged QoS 1 acks this client may have outstanding towards the broker.
    pub outgoing_inflight: u16,
    /// TLS towards the broker (an mqtts:// URL).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl MqttSettings {
    /// The filter this client subscribes to.
    pub fn subscription(&self) -> String {
        let filter = all_readings_filter(&self.topic_prefix);
        match &self.shared_group {
            Some(group) => format!("$share/{group}/{filter}"),
            None => filter,
        }
    }
}

/// Whether the front door is connected to its broker (for readiness).
#[derive(Debug, Clone, Default)]
pub struct BrokerStatus(Arc<AtomicBool>);

impl BrokerStatus {
    pub fn is_connected(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Records whether the front door (or the embedded broker) is up.
    pub fn set(&self, connected: bool, metrics: &IngestMetrics) {
        self.0.store(connected, Ordering::Relaxed);
        metrics.broker_connected.set(i64::from(connected));
    }
}

/// The device a readings topic names, or `None` for any other topic.
pub fn device_id_from_topic<'t>(prefix: &str, topic: &'t str) -> Option<&'t str> {
    topic
        .strip_prefix(prefix)?
        .strip_prefix("/devices/")?
        .strip_suffix("/readings")
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

/// A received message waiting to be acknowledged, in receive order.
struct PendingAck {
    packet: ReceivedPacket,
    /// The [`ConnectionEpoch`] it arrived on.
    connection: u64,
    /// Its outcome, to wait for and answer the device with before acknowledging; `None` for a
    /// message on a topic we do not serve, acknowledged at once so it is not redelivered
    /// forever.
    outcome: Option<oneshot::Receiver<MessageOutcome>>,
}

/// What acknowledging a received PUBLISH needs: its packet id and QoS, not its topic and
/// payload (which would keep the network read buffer they were cut from alive).
#[derive(Debug, Clone, Copy)]
struct ReceivedPacket {
    pkid: u16,
    qos: QoS,
}

impl ReceivedPacket {
    fn of(publish: &Publish) -> ReceivedPacket {
        ReceivedPacket {
            pkid: publish.pkid,
            qos: publish.qos,
        }
    }

    /// A stand-in PUBLISH for `AsyncClient::ack`, which reads only these two fields.
    fn to_publish(self) -> Publish {
        let mut publish = Publish::new("", self.qos, Vec::new());
        publish.pkid = self.pkid;
        publish
    }
}

/// Device acks sent at QoS 1 and not yet confirmed by the broker, so the acknowledger never
/// fills rumqttc's outgoing window (see the module documentation). Counted up before the
/// publish is handed to rumqttc and down once its PUBACK was seen, so it is never below
/// rumqttc's own count.
#[derive(Debug, Clone)]
struct UnconfirmedAcks {
    count: Arc<AtomicUsize>,
    /// Acks at QoS 1 allowed at once: one below rumqttc's window, which is then never full.
    limit: usize,
}

impl UnconfirmedAcks {
    fn new(outgoing_inflight: u16) -> UnconfirmedAcks {
        UnconfirmedAcks {
            count: Arc::default(),
            limit: usize::from(outgoing_inflight).saturating_sub(1),
        }
    }

    /// QoS 1 if the window has room (taking a place in it), else QoS 0.
    fn reserve(&self) -> QoS {
        let taken = self
            .count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.limit).then_some(n + 1)
            });
        match taken {
            Ok(_) => QoS::AtLeastOnce,
            Err(_) => QoS::AtMostOnce,
        }
    }

    /// Frees a place: the broker confirmed an ack, or a publish never reached rumqttc.
    fn release(&self) {
        let _ = self
            .count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }
}

/// Counts connections, so a PUBACK is only sent on the connection that delivered the message.
/// After a reconnect the broker redelivers unacknowledged messages and may reuse their packet
/// ids for new ones; acknowledging an old packet id could then acknowledge a new message
/// before it is committed. The redelivered copy is acknowledged in its own turn.
#[derive(Debug, Clone, Default)]
struct ConnectionEpoch(Arc<AtomicU64>);

impl ConnectionEpoch {
    fn current(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    fn next(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs the front door until `shutdown`, then stops taking messages, waits until everything
/// taken was committed and acknowledged, and disconnects.
pub async fn run(
    settings: MqttSettings,
    ingest: IngestHandle,
    status: BrokerStatus,
    shutdown: CancellationToken,
) {
    let metrics = ingest.pipeline().metrics().clone();
    let mut options = MqttOptions::new(&settings.client_id, &settings.host, settings.port);
    options
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(settings.keep_alive)
        .set_max_packet_size(settings.max_packet_bytes, settings.max_packet_bytes)
        .set_inflight(settings.outgoing_inflight);
    if let Some((username, password)) = &settings.credentials {
        options.set_credentials(username, password);
    }
    if let Some(tls) = &settings.tls {
        options.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls.clone()),
        ));
    }
    let (client, mut eventloop) = AsyncClient::new(options, 4096);
    // Acks are small packets sent one after another: without this, Nagle's algorithm holds
    // each behind the peer's delayed TCP ACK (up to 40 ms a hop).
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let epoch = ConnectionEpoch::default();
    let unconfirmed = UnconfirmedAcks::new(settings.outgoing_inflight);
    let mut acknowledger = tokio::spawn(acknowledge(
        client.clone(),
        ack_rx,
        settings.topic_prefix.clone(),
        epoch.clone(),
        unconfirmed.clone(),
        metrics.clone(),
    ));

    // Both are dropped when shutdown starts: the batcher then drains, and the acknowledger
    // ends once it has acknowledged everything queued before.
    let mut taking: Option<(IngestHandle, mpsc::UnboundedSender<PendingAck>)> =
        Some((ingest, ack_tx));
    let mut acknowledged_all = false;
    let mut reconnect_delay = Duration::from_millis(250);

    loop {
        tokio::select! {
            () = shutdown.cancelled(), if taking.is_some() => {
                tracing::info!("MQTT ingest: no longer taking messages; finishing those in hand");
                taking = None;
            }
            _ = &mut acknowledger, if taking.is_none() && !acknowledged_all => {
                acknowledged_all = true;
                if client.try_disconnect().is_err() {
                    break;
                }
            }
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    // While shutting down, a new message is left unacknowledged: the broker
                    // keeps it for this session and delivers it again.
                    let Some((ingest, ack_tx)) = &taking else { continue };
                    let outcome = match device_id_from_topic(&settings.topic_prefix, &publish.topic) {
                        Some(device_id) => {
                            tracing::debug!(
                                device_id,
                                packet_id = publish.pkid,
                                bytes = publish.payload.len(),
                                "message received"
                            );
                            let message = IncomingMessage {
                                device_id: device_id.to_owned(),
                                payload: publish.payload.clone(),
                                received_at: Utc::now(),
                                // An external broker does not tell subscribers who published;
                                // its ACL (docs/security.md) checked the topic.
                                authorization: BrokerAuthorization::NotReported,
                                redelivered: publish.dup,
                            };
                            match ingest.submit(message).await {
                                Ok(outcome) => Some(outcome),
                                Err(_) => continue,
                            }
                        }
                        None => {
                            tracing::warn!(topic = %publish.topic, "message on a topic the ingest does not serve; discarded");
                            None
                        }
                    };
                    let pending = PendingAck {
                        packet: ReceivedPacket::of(&publish),
                        connection: epoch.current(),
                        outcome,
                    };
                    if ack_tx.send(pending).is_err() {
                        tracing::error!("MQTT acknowledger stopped early; messages stay unacknowledged");
                    }
                }
                Ok(Event::Incoming(Packet::ConnAck(connack))) => {
                    epoch.next();
                    status.set(true, &metrics);
                    reconnect_delay = Duration::from_millis(250);
                    tracing::info!(
                        broker = %format!("{}:{}", settings.host, settings.port),
                        session_present = connack.session_present,
                        "MQTT ingest connected"
                    );
                    // Subscribing again on a resumed session is harmless and covers brokers
                    // that dropped the session.
                    if let Err(error) = client.try_subscribe(settings.subscription(), QoS::AtLeastOnce) {
                        tracing::error!(%error, "could not subscribe to device readings");
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => unconfirmed.release(),
                Ok(Event::Incoming(Packet::SubAck(suback))) => {
                    tracing::info!(filter = %settings.subscription(), codes = ?suback.return_codes, "subscribed to device readings");
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    status.set(false, &metrics);
                    if acknowledged_all {
                        flush_until_closed(&mut eventloop).await;
                        break;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    status.set(false, &metrics);
                    if acknowledged_all {
                        break;
                    }
                    tracing::warn!(%error, retry_in_ms = reconnect_delay.as_millis() as u64, "MQTT connection lost; reconnecting");
                    tokio::select! {
                        () = tokio::time::sleep(reconnect_delay) => {}
                        () = shutdown.cancelled(), if taking.is_some() => { taking = None; }
                    }
                    reconnect_delay = (reconnect_delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
    status.set(false, &metrics);
    tracing::info!("MQTT ingest stopped");
}

/// The DISCONNECT event comes when the packet is queued, not written: keep polling until the
/// broker closes the connection, so the acks queued before it reach the broker too.
async fn flush_until_closed(eventloop: &mut rumqttc::EventLoop) {
    let flushed = async { while eventloop.poll().await.is_ok() {} };
    if tokio::time::timeout(Duration::from_secs(5), flushed)
        .await
        .is_err()
    {
        tracing::warn!("the broker did not close the connection within 5 s of DISCONNECT");
    }
}

/// Acknowledges messages in receive order once their batch committed, and answers devices.
async fn acknowledge(
    client: AsyncClient,
    mut queue: mpsc::UnboundedReceiver<PendingAck>,
    topic_prefix: String,
    epoch: ConnectionEpoch,
    unconfirmed: UnconfirmedAcks,
    metrics: IngestMetrics,
) {
    while let Some(PendingAck {
        packet,
        connection,
        outcome,
    }) = queue.recv().await
    {
        if let Some(outcome) = outcome {
            // An outcome that never comes means the batch was abandoned at shutdown: the
            // message must stay unacknowledged so the broker delivers it again.
            let Ok(outcome) = outcome.await else { continue };
            // The device's ack goes out before the broker's PUBACK (the client sends them in
            // this order): a crash between the two leaves the message unacknowledged, so the
            // broker delivers it again and the device hears once more (a duplicate), never
            // not at all.
            answer_device(&client, &topic_prefix, &outcome, &unconfirmed, &metrics).await;
        }
        if connection != epoch.current() {
            // Delivered on a connection that is gone: the broker redelivers it on the
            // current one, where that copy (a duplicate now) is acknowledged.
            tracing::debug!("not acknowledging a message from a previous connection");
        } else if let Err(error) = client.ack(&packet.to_publish()).await {
            tracing::warn!(%error, "could not acknowledge a message; the broker will redeliver it and it will count as a duplicate");
        }
    }
}

/// Publishes a message's outcome on its device's acks topic.
async fn answer_device(
    client: &AsyncClient,
    topic_prefix: &str,
    outcome: &MessageOutcome,
    unconfirmed: &UnconfirmedAcks,
    metrics: &IngestMetrics,
) {
    let body = match serde_json::to_vec(&outcome.ack) {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "could not encode an ack");
            return;
        }
    };
    let qos = unconfirmed.reserve();
    if qos == QoS::AtMostOnce {
        metrics.device_acks_at_most_once.inc();
    }
    let topic = acks_topic(topic_prefix, &outcome.device_id);
    match client.publish(topic, qos, false, body).await {
        Ok(()) => tracing::debug!(
            device_id = %outcome.device_id,
            message_id = outcome.ack.message_id.as_deref().unwrap_or(""),
            ?qos,
            "ack published"
        ),
        Err(error) => {
            if qos == QoS::AtLeastOnce {
                unconfirmed.release();
            }
            tracing::warn!(%error, device_id = %outcome.device_id, "could not publish the ack to the device")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_topics() {
        let p = "chronicle/v1";
        assert_eq!(
            device_id_from_topic(p, "chronicle/v1/devices/dev_1/readings"),
            Some("dev_1")
        );
        assert_eq!(
            device_id_from_topic(p, "chronicle/v1/devices//readings"),
            None
        );
        assert_eq!(
            device_id_from_topic(p, "chronicle/v1/devices/a/b/readings"),
            None
        );
        assert_eq!(
            device_id_from_topic(p, "chronicle/v1/devices/dev_1/acks"),
            None
        );
        assert_eq!(
            device_id_from_topic(p, "other/devices/dev_1/readings"),
            None
        );
    }

    #[test]
    fn device_acks_fall_back_to_qos0_only_while_the_window_is_full() {
        let unconfirmed = UnconfirmedAcks::new(3);
        assert_eq!(unconfirmed.reserve(), QoS::AtLeastOnce);
        assert_eq!(unconfirmed.reserve(), QoS::AtLeastOnce);
        // rumqttc's window of 3 keeps one place free, so it never stops sending PUBACKs.
        assert_eq!(unconfirmed.reserve(), QoS::AtMostOnce);
        unconfirmed.release();
        assert_eq!(unconfirmed.reserve(), QoS::AtLeastOnce);
        unconfirmed.release();
        unconfirmed.release();
        // A PUBACK for an ack from before a restart of the count does not underflow it.
        unconfirmed.release();
        assert_eq!(unconfirmed.reserve(), QoS::AtLeastOnce);
        assert_eq!(unconfirmed.reserve(), QoS::AtLeastOnce);
        assert_eq!(unconfirmed.reserve(), QoS::AtMostOnce);
    }

    #[test]
    fn shared_subscription_filter() {
        let mut s = MqttSettings {
            host: "localhost".into(),
            port: 1883,
            client_id: "chronicle-ingest".into(),
            credentials: None,
            shared_group: None,
            topic_prefix: "chronicle/v1".into(),
            keep_alive: Duration::from_secs(30),
            max_packet_bytes: 1 << 20,
            outgoing_inflight: 100,
            tls: None,
        };
        assert_eq!(s.subscription(), "chronicle/v1/devices/+/readings");
        s.shared_group = Some("ingest".into());
        assert_eq!(
            s.subscription(),
            "$share/ingest/chronicle/v1/devices/+/readings"
        );
    }
}

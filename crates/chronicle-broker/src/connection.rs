//! One client connection: the CONNECT handshake, then three tasks.
//!
//! - The **reader** (this function's loop) decodes packets, authorizes every PUBLISH and
//!   SUBSCRIBE against the connection's principal, and hands readings to the ingest.
//! - The **acker** waits for each message's outcome in receive order, then sends the PUBACK
//!   (so a message is acknowledged only once its readings are committed) and routes the ack
//!   to whoever subscribed to the device's acks topic.
//! - The **writer** owns the socket's write half: it writes packets, keeps the window of QoS 1
//!   acks the client has not acknowledged yet, and flushes once per burst.

use crate::rules::{self, Principal};
use crate::sessions::{Delivery, Outbound, SharedPrincipal, read};
use crate::{Authority, Context, MessageSink};
use bytes::{Bytes, BytesMut};
use chronicle_domain::Publisher;
use chronicle_domain::topics;
use chronicle_ingest::{BrokerAuthorization, IncomingMessage, MessageOutcome};
use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use rumqttc::mqttbytes::v4::{
    Codec, ConnAck, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, Publish, SubAck,
    SubscribeReasonCode, UnsubAck,
};
use rumqttc::mqttbytes::{self, Protocol, QoS};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

/// Outbound packets a connection's writer may have waiting before routed acks are dropped.
const OUTBOX_CAPACITY: usize = 4096;
/// How long a closing connection's writer may take to flush what it holds.
const WRITER_FLUSH: Duration = Duration::from_secs(5);

/// Why a connection was refused at CONNECT, for logs and metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ConnectRefusal {
    ProtocolVersion,
    Will,
    NoCredentials,
    BadCredentials,
    ClientId,
    Unavailable,
}

impl ConnectRefusal {
    pub fn label(self) -> &'static str {
        match self {
            ConnectRefusal::ProtocolVersion => "protocol_version",
            ConnectRefusal::Will => "will",
            ConnectRefusal::NoCredentials => "no_credentials",
            ConnectRefusal::BadCredentials => "bad_credentials",
            ConnectRefusal::ClientId => "client_id",
            ConnectRefusal::Unavailable => "unavailable",
        }
    }

    fn code(self) -> ConnectReturnCode {
        match self {
            ConnectRefusal::ProtocolVersion => ConnectReturnCode::RefusedProtocolVersion,
            ConnectRefusal::Will => ConnectReturnCode::NotAuthorized,
            ConnectRefusal::NoCredentials | ConnectRefusal::BadCredentials => {
                ConnectReturnCode::BadUserNamePassword
            }
            ConnectRefusal::ClientId => ConnectReturnCode::BadClientId,
            ConnectRefusal::Unavailable => ConnectReturnCode::ServiceUnavailable,
        }
    }
}

/// rumqttc's MQTT 3.1.1 codec, which first makes sure a CONNECT asks for 3.1.1: its decoder
/// would read an MQTT 5 CONNECT's properties as a client id.
struct PacketCodec {
    inner: Codec,
    connected: bool,
}

#[derive(Debug, thiserror::Error)]
enum CodecError {
    #[error("the client asked for MQTT protocol level {0}; this broker speaks 3.1.1 (level 4)")]
    ProtocolLevel(u8),
    #[error(transparent)]
    Mqtt(#[from] mqttbytes::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Decoder for PacketCodec {
    type Item = Packet;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        if !self.connected && src.first().is_some_and(|b| b >> 4 == 1) {
            // CONNECT: fixed header, then the protocol name (2-byte length + "MQTT") and level.
            let length_bytes = src[1..].iter().take(4).position(|b| b & 0x80 == 0);
            if let Some(n) = length_bytes {
                let level_at = 1 + n + 1 + 6;
                if let Some(&level) = src.get(level_at)
                    && level != 4
                {
                    return Err(CodecError::ProtocolLevel(level));
                }
            }
        }
        Ok(self.inner.decode(src)?)
    }
}

impl Encoder<Packet> for PacketCodec {
    type Error = CodecError;

    fn encode(&mut self, packet: Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(self.inner.encode(packet, dst)?)
    }
}

/// A message handed to the ingest, waiting for its outcome to be acknowledged.
struct InFlight {
    pkid: u16,
    qos: QoS,
    device_id: String,
    /// Refused by the broker: recorded by the ingest, but no ack goes to the device's topic.
    refused: bool,
    outcome: oneshot::Receiver<MessageOutcome>,
    /// Held until the PUBACK is sent: bounds the messages a connection has in flight.
    _permit: OwnedSemaphorePermit,
}

/// Serves one client until it leaves, is dropped (revoked, taken over, misbehaving) or the
/// broker shuts down.
pub(crate) async fn serve<IO, A, S>(io: IO, peer: SocketAddr, ctx: Arc<Context<A, S>>)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
    A: Authority,
    S: MessageSink,
{
    let max = ctx.settings.max_packet_bytes;
    let codec = || PacketCodec {
        inner: Codec {
            max_incoming_size: max,
            max_outgoing_size: max,
        },
        connected: false,
    };
    let (read_half, write_half) = tokio::io::split(io);
    let mut reader = FramedRead::new(read_half, codec());
    let mut writer = FramedWrite::new(write_half, codec());

    let connect = match tokio::time::timeout(ctx.settings.connect_timeout, reader.next()).await {
        Ok(Some(Ok(Packet::Connect(connect)))) => connect,
        Ok(Some(Err(CodecError::ProtocolLevel(level)))) => {
            tracing::info!(%peer, level, "MQTT connection refused: not MQTT 3.1.1");
            refuse(&mut writer, &ctx, ConnectRefusal::ProtocolVersion).await;
            return;
        }
        Ok(Some(Ok(other))) => {
            tracing::info!(%peer, packet = ?other, "MQTT connection closed: the first packet was not CONNECT");
            return;
        }
        Ok(Some(Err(error))) => {
            tracing::info!(%peer, %error, "MQTT connection closed: unreadable CONNECT");
            return;
        }
        Ok(None) => return,
        Err(_) => {
            tracing::info!(%peer, "MQTT connection closed: no CONNECT in time");
            return;
        }
    };
    reader.decoder_mut().connected = true;

    let announcements_before = ctx.sessions.announcements.load(Ordering::SeqCst);
    let principal = match admit(&connect, &ctx).await {
        Ok(principal) => principal,
        Err(refusal) => {
            let username = connect.login.as_ref().map(|l| l.username.as_str());
            tracing::info!(%peer, client_id = %connect.client_id, username, reason = refusal.label(), "MQTT connection refused");
            refuse(&mut writer, &ctx, refusal).await;
            return;
        }
    };
    let identity = principal.identity.clone();
    let client_id = if connect.client_id.is_empty() {
        // An empty client id with a clean session gets one of the identity's own.
        format!(
            "{identity}{}{}",
            rules::CLIENT_ID_SEPARATOR,
            crate::random_suffix()
        )
    } else {
        connect.client_id.clone()
    };

    let span =
        tracing::info_span!("mqtt_connection", %peer, client_id = %client_id, identity = %identity);
    async move {
        let (outbox, inbox) = mpsc::channel(OUTBOX_CAPACITY);
        let kick = CancellationToken::new();
        let attachment = ctx.sessions.attach(
            &client_id,
            principal,
            connect.clean_session,
            outbox.clone(),
            kick.clone(),
        );
        if ctx.sessions.announcements.load(Ordering::SeqCst) != announcements_before {
            // The registry changed while this client authenticated: check it again, as the
            // announcement may have been handled before this session existed.
            ctx.recheck(identity.clone());
        }
        ctx.metrics.connections.inc();
        tracing::info!(
            session_present = attachment.session_present,
            keep_alive = connect.keep_alive,
            "MQTT client connected"
        );

        let connack = Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Success,
            attachment.session_present,
        ));
        // Both tasks end with this connection's task: dropped by force (the shutdown grace
        // is over), it takes them along, and with the writer the socket, so the client sees
        // the connection close instead of a socket nobody reads.
        let writer_task = AbortOnDropHandle::new(tokio::spawn(
            write(
                writer,
                inbox,
                connack,
                attachment.queued,
                ctx.settings.inflight_out,
            )
            .in_current_span(),
        ));
        let (in_flight_tx, in_flight_rx) = mpsc::unbounded_channel();
        let acker_task = AbortOnDropHandle::new(tokio::spawn(
            acknowledge(in_flight_rx, outbox.clone(), ctx.clone()).in_current_span(),
        ));

        let ended = read_packets(
            &mut reader,
            &ctx,
            &attachment.principal,
            &client_id,
            attachment.connection,
            &outbox,
            &in_flight_tx,
            &kick,
            keep_alive_limit(connect.keep_alive),
        )
        .await;
        tracing::info!(reason = ended, "MQTT client disconnected");

        // Whatever was taken is still committed and acknowledged (unless the socket is gone).
        drop(in_flight_tx);
        let _ = acker_task.await;
        // Nobody routes acks to this connection any more; the writer finishes what it holds
        // and hands back what the client never acknowledged, for a persistent session to keep.
        ctx.sessions.release(&client_id, attachment.connection);
        drop(outbox);
        let unacknowledged = match tokio::time::timeout(WRITER_FLUSH, writer_task).await {
            Ok(Ok(unacknowledged)) => unacknowledged,
            // A client that stopped reading: its socket is full; give up on it.
            _ => Vec::new(),
        };
        ctx.sessions.keep(&client_id, unacknowledged);
        ctx.metrics.connections.dec();
    }
    .instrument(span)
    .await;
}

/// Checks a CONNECT: protocol, will, credentials, client id. Returns the principal.
async fn admit<A: Authority, S: MessageSink>(
    connect: &rumqttc::mqttbytes::v4::Connect,
    ctx: &Context<A, S>,
) -> Result<Principal, ConnectRefusal> {
    if connect.protocol != Protocol::V4 {
        return Err(ConnectRefusal::ProtocolVersion);
    }
    if ctx.shutdown.is_cancelled() {
        return Err(ConnectRefusal::Unavailable);
    }
    // A will would be published on the client's behalf when it vanishes; Chronicle has no
    // topic for it, so a client asking for one is refused rather than silently ignored.
    if connect.last_will.is_some() {
        return Err(ConnectRefusal::Will);
    }
    let Some(login) = &connect.login else {
        return Err(ConnectRefusal::NoCredentials);
    };
    let principal = match tokio::time::timeout(
        Duration::from_secs(10),
        ctx.authority.authenticate(&login.username, &login.password),
    )
    .await
    {
        Ok(Ok(Some(principal))) => principal,
        Ok(Ok(None)) => return Err(ConnectRefusal::BadCredentials),
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot check MQTT credentials");
            return Err(ConnectRefusal::Unavailable);
        }
        Err(_) => {
            tracing::warn!("checking MQTT credentials took over 10 s");
            return Err(ConnectRefusal::Unavailable);
        }
    };
    let client_id_ok = if connect.client_id.is_empty() {
        connect.clean_session
    } else {
        rules::client_id_allowed(&principal.identity, &connect.client_id)
    };
    if !client_id_ok {
        return Err(ConnectRefusal::ClientId);
    }
    Ok(principal)
}

async fn refuse<W, A, S>(writer: &mut W, ctx: &Context<A, S>, refusal: ConnectRefusal)
where
    W: futures_util::Sink<Packet, Error = CodecError> + Unpin,
    A: Authority,
    S: MessageSink,
{
    ctx.metrics.refused_connection(refusal);
    let _ = writer
        .send(Packet::ConnAck(ConnAck::new(refusal.code(), false)))
        .await;
}

/// How long a client may stay silent: one and a half keep-alive intervals (MQTT 3.1.1
/// §3.1.2.10); none when it asked for no keep-alive.
fn keep_alive_limit(keep_alive_seconds: u16) -> Option<Duration> {
    (keep_alive_seconds > 0).then(|| Duration::from_millis(u64::from(keep_alive_seconds) * 1500))
}

/// Reads and handles packets until the connection ends; returns why it ended.
#[allow(clippy::too_many_arguments)]
async fn read_packets<R, A, S>(
    reader: &mut FramedRead<R, PacketCodec>,
    ctx: &Arc<Context<A, S>>,
    principal: &SharedPrincipal,
    client_id: &str,
    connection: u64,
    outbox: &mpsc::Sender<Outbound>,
    in_flight: &mpsc::UnboundedSender<InFlight>,
    kick: &CancellationToken,
    keep_alive: Option<Duration>,
) -> &'static str
where
    R: AsyncRead + Unpin,
    A: Authority,
    S: MessageSink,
{
    let window = Arc::new(Semaphore::new(ctx.settings.inflight_in.max(1)));
    let prefix = ctx.settings.topic_prefix.as_str();
    let mut refusals = 0u32;
    let publisher = read(principal).identity.clone();
    loop {
        let next = async {
            match keep_alive {
                Some(limit) => tokio::time::timeout(limit, reader.next()).await.ok(),
                None => Some(reader.next().await),
            }
        };
        let packet = tokio::select! {
            () = kick.cancelled() => return "dropped by the broker (revoked, taken over, or shutting down)",
            () = ctx.shutdown.cancelled() => return "the broker is shutting down",
            packet = next => packet,
        };
        let packet = match packet {
            None => return "keep-alive expired",
            Some(None) => return "closed by the client",
            Some(Some(Err(error))) => {
                tracing::info!(%error, "unreadable MQTT packet");
                return "protocol error";
            }
            Some(Some(Ok(packet))) => packet,
        };
        match packet {
            Packet::Publish(publish) => {
                // Wait for room in this connection's window: a client that publishes faster
                // than the database commits is slowed down here, by TCP.
                let permit = tokio::select! {
                    permit = window.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => return "broker closing",
                    },
                    () = kick.cancelled() => return "dropped by the broker",
                };
                let verdict = authorize_publish(prefix, &publish.topic, principal, &publisher);
                let (device_id, authorization) = match verdict {
                    PublishVerdict::Allowed(device) => {
                        tracing::debug!(
                            device_id = %device,
                            packet_id = publish.pkid,
                            bytes = publish.payload.len(),
                            "message received"
                        );
                        (device, BrokerAuthorization::Allowed(publisher.clone()))
                    }
                    PublishVerdict::OtherDevice(device, detail) => {
                        refusals += 1;
                        ctx.metrics.refused_message("publish_other_device");
                        tracing::warn!(topic = %publish.topic, "publish refused: {detail}");
                        (
                            device,
                            BrokerAuthorization::Refused(publisher.clone(), detail),
                        )
                    }
                    PublishVerdict::NotATopic => {
                        refusals += 1;
                        ctx.metrics.refused_message("publish_topic");
                        tracing::warn!(topic = %publish.topic, "publish refused: not a readings topic this broker serves");
                        if publish.qos != QoS::AtMostOnce
                            && outbox
                                .send(Outbound::Packet(ack_packet(&publish)))
                                .await
                                .is_err()
                        {
                            return "writer gone";
                        }
                        if refusals >= ctx.settings.refusals_before_disconnect {
                            return "too many refused requests";
                        }
                        continue;
                    }
                };
                let refused = matches!(authorization, BrokerAuthorization::Refused(..));
                let message = IncomingMessage {
                    device_id: device_id.clone(),
                    payload: publish.payload.clone(),
                    received_at: Utc::now(),
                    authorization,
                    redelivered: publish.dup,
                };
                let outcome = match ctx.sink.submit(message).await {
                    Ok(outcome) => outcome,
                    Err(_) => return "the ingest is shutting down",
                };
                let _ = in_flight.send(InFlight {
                    pkid: publish.pkid,
                    qos: publish.qos,
                    device_id,
                    refused,
                    outcome,
                    _permit: permit,
                });
                if refusals >= ctx.settings.refusals_before_disconnect {
                    return "too many refused requests";
                }
            }
            Packet::Subscribe(subscribe) => {
                let mut codes = Vec::with_capacity(subscribe.filters.len());
                for filter in &subscribe.filters {
                    let device = topics::acks_topic_device(prefix, &filter.path)
                        .filter(|d| read(principal).relays(d))
                        .and_then(|d| chronicle_domain::DeviceId::parse(d).ok());
                    match device {
                        Some(device) => {
                            let qos = filter.qos.min_with(QoS::AtLeastOnce);
                            ctx.sessions.subscribe(client_id, connection, device, qos);
                            codes.push(SubscribeReasonCode::Success(qos));
                        }
                        None => {
                            refusals += 1;
                            ctx.metrics.refused_message("subscribe");
                            tracing::warn!(filter = %filter.path, "subscription refused: only the acks topics of the devices this identity publishes for");
                            codes.push(SubscribeReasonCode::Failure);
                        }
                    }
                }
                let suback = Packet::SubAck(SubAck::new(subscribe.pkid, codes));
                if outbox.send(Outbound::Packet(suback)).await.is_err() {
                    return "writer gone";
                }
                if refusals >= ctx.settings.refusals_before_disconnect {
                    return "too many refused requests";
                }
            }
            Packet::Unsubscribe(unsubscribe) => {
                for topic in &unsubscribe.topics {
                    if let Some(device) = topics::acks_topic_device(prefix, topic)
                        .and_then(|d| chronicle_domain::DeviceId::parse(d).ok())
                    {
                        ctx.sessions.unsubscribe(client_id, &device);
                    }
                }
                let unsuback = Packet::UnsubAck(UnsubAck::new(unsubscribe.pkid));
                if outbox.send(Outbound::Packet(unsuback)).await.is_err() {
                    return "writer gone";
                }
            }
            Packet::PubAck(puback) => {
                if outbox
                    .send(Outbound::Acknowledged(puback.pkid))
                    .await
                    .is_err()
                {
                    return "writer gone";
                }
            }
            Packet::PubRel(pubrel) => {
                let pubcomp = Packet::PubComp(PubComp::new(pubrel.pkid));
                if outbox.send(Outbound::Packet(pubcomp)).await.is_err() {
                    return "writer gone";
                }
            }
            Packet::PingReq => {
                if outbox
                    .send(Outbound::Packet(Packet::PingResp))
                    .await
                    .is_err()
                {
                    return "writer gone";
                }
            }
            Packet::Disconnect => return "DISCONNECT",
            // This broker never publishes at QoS 2, so it expects no PUBREC or PUBCOMP.
            Packet::PubRec(_) | Packet::PubComp(_) => {}
            Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp => return "protocol error: a packet only a server sends",
        }
    }
}

enum PublishVerdict {
    Allowed(String),
    /// A readings topic of a device this identity does not relay, with the refusal's detail.
    OtherDevice(String, String),
    /// Not a readings topic at all (acks, `$SYS`, anything else).
    NotATopic,
}

fn authorize_publish(
    prefix: &str,
    topic: &str,
    principal: &SharedPrincipal,
    publisher: &Publisher,
) -> PublishVerdict {
    match topics::readings_topic_device(prefix, topic) {
        None => PublishVerdict::NotATopic,
        Some(device) if read(principal).relays(device) => {
            PublishVerdict::Allowed(device.to_owned())
        }
        Some(device) => {
            let detail = match publisher {
                Publisher::Device(own) => {
                    format!("device {own} may publish only its own readings, not device {device}'s")
                }
                Publisher::Gateway(gateway) => {
                    format!("gateway {gateway} does not relay device {device}")
                }
            };
            PublishVerdict::OtherDevice(device.to_owned(), detail)
        }
    }
}

/// What answers a publish at its QoS: PUBACK for QoS 1, PUBREC for QoS 2 (the client then
/// releases it with PUBREL, answered with PUBCOMP).
fn ack_packet(publish: &Publish) -> Packet {
    match publish.qos {
        QoS::ExactlyOnce => Packet::PubRec(PubRec::new(publish.pkid)),
        _ => Packet::PubAck(PubAck::new(publish.pkid)),
    }
}

/// Acknowledges messages in receive order once committed, and routes their acks.
async fn acknowledge<A: Authority, S: MessageSink>(
    mut queue: mpsc::UnboundedReceiver<InFlight>,
    outbox: mpsc::Sender<Outbound>,
    ctx: Arc<Context<A, S>>,
) {
    while let Some(message) = queue.recv().await {
        // No outcome: the batch was abandoned at shutdown and nothing was committed. The
        // client keeps the message unacknowledged and sends it again.
        let Ok(outcome) = message.outcome.await else {
            continue;
        };
        // The device's ack is routed before the PUBACK: should the process die between the
        // two, the client still holds the message and sends it again (answered as a
        // duplicate), so a device always hears the outcome of a message it was told arrived.
        if !message.refused {
            match serde_json::to_vec(&outcome.ack) {
                Ok(body) => {
                    let topic: Arc<str> = Arc::from(topics::acks_topic(
                        &ctx.settings.topic_prefix,
                        &message.device_id,
                    ));
                    let dropped =
                        ctx.sessions
                            .deliver(&message.device_id, &topic, &Bytes::from(body));
                    let delivered = dropped.full == 0;
                    ctx.metrics.acks_dropped(dropped);
                    tracing::debug!(
                        device_id = %message.device_id,
                        message_id = outcome.ack.message_id.as_deref().unwrap_or(""),
                        delivered,
                        "ack published"
                    );
                }
                Err(error) => tracing::error!(%error, "could not encode an ack"),
            }
        }
        if message.qos != QoS::AtMostOnce {
            let ack = match message.qos {
                QoS::ExactlyOnce => Packet::PubRec(PubRec::new(message.pkid)),
                _ => Packet::PubAck(PubAck::new(message.pkid)),
            };
            // The client may be gone; its messages are committed either way.
            let _ = outbox.send(Outbound::Packet(ack)).await;
        }
    }
}

/// Writes packets until the outbox closes or the socket fails; returns the deliveries the
/// client did not acknowledge (sent or still waiting), for its session to keep.
async fn write<W>(
    mut writer: FramedWrite<W, PacketCodec>,
    mut inbox: mpsc::Receiver<Outbound>,
    connack: Packet,
    queued: Vec<Delivery>,
    window: usize,
) -> Vec<Delivery>
where
    W: AsyncWrite + Unpin,
{
    let mut state = OutgoingWindow::new(window);
    if writer.feed(connack).await.is_err() {
        return queued;
    }
    for delivery in queued {
        if let Some(packet) = state.offer(delivery)
            && writer.feed(packet).await.is_err()
        {
            return state.unacknowledged();
        }
    }
    if writer.flush().await.is_err() {
        return state.unacknowledged();
    }
    while let Some(first) = inbox.recv().await {
        let mut next = Some(first);
        // Write everything that is ready, then flush once: one syscall for a burst of acks.
        while let Some(outbound) = next {
            let packets = match outbound {
                Outbound::Packet(packet) => vec![packet],
                Outbound::Deliver(delivery) => state.offer(delivery).into_iter().collect(),
                Outbound::Acknowledged(pkid) => state.acknowledged(pkid),
            };
            for packet in packets {
                if writer.feed(packet).await.is_err() {
                    return state.unacknowledged();
                }
            }
            next = inbox.try_recv().ok();
        }
        if writer.flush().await.is_err() {
            return state.unacknowledged();
        }
    }
    state.unacknowledged()
}

/// The QoS 1 publishes sent to the client and not yet acknowledged, and those waiting for room.
struct OutgoingWindow {
    limit: usize,
    next_pkid: u16,
    sent: HashMap<u16, Delivery>,
    waiting: VecDeque<Delivery>,
}

impl OutgoingWindow {
    fn new(limit: usize) -> Self {
        OutgoingWindow {
            limit: limit.clamp(1, 65_000),
            next_pkid: 0,
            sent: HashMap::new(),
            waiting: VecDeque::new(),
        }
    }

    /// The packet to send now for `delivery`, or `None` if it waits for room.
    fn offer(&mut self, delivery: Delivery) -> Option<Packet> {
        if delivery.qos == QoS::AtMostOnce {
            return Some(publish_packet(&delivery, 0));
        }
        if self.sent.len() >= self.limit {
            self.waiting.push_back(delivery);
            return None;
        }
        Some(self.send(delivery))
    }

    fn send(&mut self, delivery: Delivery) -> Packet {
        loop {
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !self.sent.contains_key(&self.next_pkid) {
                break;
            }
        }
        let packet = publish_packet(&delivery, self.next_pkid);
        self.sent.insert(self.next_pkid, delivery);
        packet
    }

    /// The client acknowledged `pkid`: the packets that now fit in the window.
    fn acknowledged(&mut self, pkid: u16) -> Vec<Packet> {
        self.sent.remove(&pkid);
        let mut packets = Vec::new();
        while self.sent.len() < self.limit {
            let Some(delivery) = self.waiting.pop_front() else {
                break;
            };
            packets.push(self.send(delivery));
        }
        packets
    }

    fn unacknowledged(self) -> Vec<Delivery> {
        let mut sent: Vec<(u16, Delivery)> = self.sent.into_iter().collect();
        sent.sort_by_key(|(pkid, _)| *pkid);
        sent.into_iter()
            .map(|(_, d)| d)
            .chain(self.waiting)
            .collect()
    }
}

fn publish_packet(delivery: &Delivery, pkid: u16) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos: delivery.qos,
        retain: false,
        topic: delivery.topic.to_string(),
        pkid,
        payload: delivery.payload.clone(),
    })
}

/// The lower of two QoS levels.
trait MinQos {
    fn min_with(self, other: QoS) -> QoS;
}

impl MinQos for QoS {
    fn min_with(self, other: QoS) -> QoS {
        if (self as u8) <= (other as u8) {
            self
        } else {
            other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(n: u8) -> Delivery {
        Delivery {
            topic: Arc::from("t"),
            payload: Bytes::from(vec![n]),
            qos: QoS::AtLeastOnce,
        }
    }

    #[test]
    fn the_window_holds_back_what_does_not_fit_and_returns_the_unacknowledged() {
        let mut window = OutgoingWindow::new(2);
        assert!(window.offer(delivery(1)).is_some());
        assert!(window.offer(delivery(2)).is_some());
        assert!(window.offer(delivery(3)).is_none());
        let freed = window.acknowledged(1);
        assert_eq!(freed.len(), 1);
        let rest: Vec<u8> = window
            .unacknowledged()
            .iter()
            .map(|d| d.payload[0])
            .collect();
        assert_eq!(rest, vec![2, 3]);
    }

    #[test]
    fn connect_codec_refuses_other_protocol_levels() {
        let mut codec = PacketCodec {
            inner: Codec {
                max_incoming_size: 1024,
                max_outgoing_size: 1024,
            },
            connected: false,
        };
        // An MQTT 5 CONNECT header: type 1, length 16, "MQTT", level 5.
        let mut v5 = BytesMut::from(&[0x10, 16, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60][..]);
        assert!(matches!(
            codec.decode(&mut v5),
            Err(CodecError::ProtocolLevel(5))
        ));
        assert_eq!(
            QoS::ExactlyOnce.min_with(QoS::AtLeastOnce),
            QoS::AtLeastOnce
        );
        assert_eq!(QoS::AtMostOnce.min_with(QoS::AtLeastOnce), QoS::AtMostOnce);
    }
}

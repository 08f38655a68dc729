//! Simulated devices on MQTT (`docs/protocol.md`): connections, publishing, and acks matched
//! to the messages they answer.
//!
//! Each connection ("link") has two tasks, as rumqttc asks: a **poller** that only polls the
//! event loop (connects and reconnects, subscribes to the acks topics, hands each ack to the
//! [`Ledger`]) and a **publisher** that only publishes. A link serves one device (client id,
//! username = device id, password = its secret) or, for a registered gateway, every device
//! the gateway relays (client id and username = the gateway id): like a phone app relaying
//! for its meters, it publishes on each of its devices' readings topics and reads their acks,
//! which is all the broker lets it do.
//!
//! A device keeps every message until its ack arrives. Sessions are clean, so after a
//! reconnection (or a takeover by another connection with the same client id) the acks of
//! messages in flight may be lost: the publisher resends every unanswered message sent before
//! the reconnection, and the ledger accepts that their readings come back as duplicates.

use crate::faults::FaultKind;
use crate::ledger::{Entry, Expected, Ledger, MessageKey, Reconciliation};
use chronicle_domain::topics;
use chronicle_domain::wire::Ack;
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeFilter,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Largest MQTT packet a simulated device sends or accepts: above the server's message limit
/// (so an oversized message is refused with a reason) and below the broker's packet limit.
pub const MAX_PACKET_BYTES: usize = 32 * 1024 * 1024;

/// Where the broker is.
#[derive(Debug, Clone)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    /// The protocol's topic prefix, `chronicle/v1` unless the server was told otherwise.
    pub topic_prefix: String,
}

impl Broker {
    /// The topic a device publishes its readings to.
    pub fn readings_topic(&self, device_id: &str) -> String {
        topics::readings_topic(&self.topic_prefix, device_id)
    }

    /// The topic Chronicle answers a device on.
    pub fn acks_topic(&self, device_id: &str) -> String {
        topics::acks_topic(&self.topic_prefix, device_id)
    }
}

/// A registered device's MQTT identity.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCredentials {
    pub device_id: String,
    /// The MQTT password (`chronicle device add` shows it once).
    pub secret: String,
}

impl std::fmt::Debug for DeviceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCredentials")
            .field("device_id", &self.device_id)
            .field("secret", &"***")
            .finish()
    }
}

/// A registered gateway's MQTT identity and the devices it relays (`chronicle gateway add`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayCredentials {
    pub gateway_id: String,
    /// The MQTT password (shown once when the gateway is registered).
    pub secret: String,
    /// Ids of the devices it relays.
    pub devices: Vec<String>,
}

impl std::fmt::Debug for GatewayCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayCredentials")
            .field("gateway_id", &self.gateway_id)
            .field("secret", &"***")
            .field("devices", &self.devices.len())
            .finish()
    }
}

/// How the fleet connects.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Messages a device may have sent without their ack.
    pub window: usize,
    /// How long connecting may take before the fleet gives up.
    pub connect_timeout: Duration,
    /// Connections being set up at once.
    pub connect_concurrency: usize,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            window: 20,
            connect_timeout: Duration::from_secs(60),
            connect_concurrency: 64,
        }
    }
}

#[derive(Debug, Error)]
pub enum NetError {
    #[error("the fleet has no devices")]
    NoDevices,
    #[error("connection {client_id} failed: {reason}")]
    Connect { client_id: String, reason: String },
    #[error("connection {0} did not come up within the connect timeout")]
    ConnectTimeout(String),
    #[error("the connection of device {0} is closed")]
    Closed(String),
}

/// A message for a device to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Index of the device in the fleet.
    pub device: usize,
    pub message_id: Option<String>,
    pub payload: Vec<u8>,
    pub expected: Expected,
    pub fault: Option<FaultKind>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LinkState {
    Connecting,
    /// Connected and subscribed, in this connection epoch.
    Ready(u64),
    Down,
    Failed(String),
}

enum Control {
    Takeover(oneshot::Sender<Result<(), NetError>>),
    Stop,
}

struct Link {
    client_id: String,
    jobs: mpsc::UnboundedSender<MessageKey>,
    control: mpsc::UnboundedSender<Control>,
    state: watch::Receiver<LinkState>,
    tasks: Vec<JoinHandle<()>>,
}

struct FleetDevice {
    id: String,
    link: usize,
    window: Arc<Semaphore>,
}

#[derive(Debug, Default)]
struct Counters {
    reconnections: AtomicU64,
    takeovers: AtomicU64,
}

/// Everything a link's tasks share with the fleet.
struct Shared {
    broker: Broker,
    ledger: Arc<Ledger>,
    windows: Vec<Arc<Semaphore>>,
    topics: Vec<String>,
    answered: Arc<Notify>,
    counters: Counters,
}

/// Connected devices, ready to send.
pub struct Fleet {
    devices: Vec<FleetDevice>,
    links: Vec<Link>,
    shared: Arc<Shared>,
}

impl Fleet {
    /// Connects every device (each link subscribed to its devices' acks) and returns once all
    /// are ready, or fails if any connection is refused. A device that one of `gateways`
    /// relays is served by that gateway's connection; every other device connects as itself.
    pub async fn connect(
        broker: Broker,
        devices: &[DeviceCredentials],
        gateways: &[GatewayCredentials],
        options: &FleetOptions,
    ) -> Result<Fleet, NetError> {
        if devices.is_empty() {
            return Err(NetError::NoDevices);
        }
        // Each link's identity (id, secret) and the fleet indexes of its devices.
        let position: HashMap<&str, usize> = devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.device_id.as_str(), i))
            .collect();
        let mut link_of: Vec<Option<usize>> = vec![None; devices.len()];
        let mut identities: Vec<(&str, &str, Vec<usize>)> = Vec::new();
        for gateway in gateways {
            let members: Vec<usize> = gateway
                .devices
                .iter()
                .filter_map(|d| position.get(d.as_str()).copied())
                .filter(|i| link_of[*i].is_none())
                .collect();
            if members.is_empty() {
                continue;
            }
            for i in &members {
                link_of[*i] = Some(identities.len());
            }
            identities.push((&gateway.gateway_id, &gateway.secret, members));
        }
        for (i, d) in devices.iter().enumerate() {
            if link_of[i].is_none() {
                link_of[i] = Some(identities.len());
                identities.push((&d.device_id, &d.secret, vec![i]));
            }
        }
        let window = options.window.max(1);
        let fleet_devices: Vec<FleetDevice> = devices
            .iter()
            .zip(&link_of)
            .map(|(d, link)| FleetDevice {
                id: d.device_id.clone(),
                link: link.unwrap_or_default(),
                window: Arc::new(Semaphore::new(window)),
            })
            .collect();
        let shared = Arc::new(Shared {
            topics: devices
                .iter()
                .map(|d| broker.readings_topic(&d.device_id))
                .collect(),
            broker,
            ledger: Arc::new(Ledger::new()),
            windows: fleet_devices.iter().map(|d| d.window.clone()).collect(),
            answered: Arc::new(Notify::new()),
            counters: Counters::default(),
        });
        let gate = Arc::new(Semaphore::new(options.connect_concurrency.max(1)));
        let mut links = Vec::with_capacity(identities.len());
        for (link, (identity, secret, members)) in identities.into_iter().enumerate() {
            // The broker binds client ids to identities: the client id is the identity.
            let client_id = identity.to_owned();
            let mut mqtt = MqttOptions::new(&client_id, &shared.broker.host, shared.broker.port);
            mqtt.set_credentials(identity, secret)
                .set_keep_alive(Duration::from_secs(30))
                .set_clean_session(true)
                .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
                .set_inflight(u16::try_from(window.clamp(10, 1000)).unwrap_or(1000));
            let acks: HashMap<String, usize> = members
                .iter()
                .map(|d| (shared.broker.acks_topic(&devices[*d].device_id), *d))
                .collect();
            let (client, eventloop) = new_client(&mqtt);
            let (client_tx, client_rx) = watch::channel(client);
            let (state_tx, state_rx) = watch::channel(LinkState::Connecting);
            let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
            let (control_tx, control_rx) = mpsc::unbounded_channel();
            let poller = tokio::spawn(poll_link(PollLink {
                eventloop,
                options: mqtt,
                client: client_tx,
                state: state_tx,
                control: control_rx,
                acks,
                shared: shared.clone(),
                gate: gate.clone(),
                connect_timeout: options.connect_timeout,
            }));
            let publisher = tokio::spawn(publish_link(
                link,
                jobs_rx,
                client_rx,
                state_rx.clone(),
                shared.clone(),
            ));
            links.push(Link {
                client_id,
                jobs: jobs_tx,
                control: control_tx,
                state: state_rx,
                tasks: vec![poller, publisher],
            });
        }
        let fleet = Fleet {
            devices: fleet_devices,
            links,
            shared,
        };
        let deadline = tokio::time::Instant::now() + options.connect_timeout;
        for link in &fleet.links {
            let mut state = link.state.clone();
            let ready = tokio::time::timeout_at(
                deadline,
                state.wait_for(|s| matches!(s, LinkState::Ready(_) | LinkState::Failed(_))),
            )
            .await;
            match ready {
                Ok(Ok(s)) => {
                    if let LinkState::Failed(reason) = &*s {
                        let error = NetError::Connect {
                            client_id: link.client_id.clone(),
                            reason: reason.clone(),
                        };
                        drop(s);
                        fleet.close().await;
                        return Err(error);
                    }
                }
                Ok(Err(_)) | Err(_) => {
                    let error = NetError::ConnectTimeout(link.client_id.clone());
                    fleet.close().await;
                    return Err(error);
                }
            }
        }
        Ok(fleet)
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Number of connections.
    pub fn connections(&self) -> usize {
        self.links.len()
    }

    /// The device id of fleet device `device`.
    pub fn device_id(&self, device: usize) -> &str {
        self.devices.get(device).map_or("", |d| d.id.as_str())
    }

    pub fn ledger(&self) -> &Ledger {
        &self.shared.ledger
    }

    /// Sends the message if its device has a free window slot; otherwise hands it back.
    pub fn try_send(&self, message: Outgoing) -> Result<MessageKey, Box<Outgoing>> {
        let Some(device) = self.devices.get(message.device) else {
            return Err(Box::new(message));
        };
        match device.window.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(_) => return Err(Box::new(message)),
        }
        Ok(self.enqueue(message))
    }

    /// Sends the message once its device has a free window slot.
    pub async fn send(&self, message: Outgoing) -> Result<MessageKey, NetError> {
        let Some(device) = self.devices.get(message.device) else {
            return Err(NetError::Closed(format!("#{}", message.device)));
        };
        device
            .window
            .acquire()
            .await
            .map_err(|_| NetError::Closed(device.id.clone()))?
            .forget();
        Ok(self.enqueue(message))
    }

    fn enqueue(&self, message: Outgoing) -> MessageKey {
        let link = self.devices.get(message.device).map_or(0, |d| d.link);
        let key = self.shared.ledger.register(Entry {
            device: message.device,
            link,
            message_id: message.message_id,
            expected: message.expected,
            fault: message.fault,
            payload: message.payload,
        });
        if let Some(link) = self.links.get(link) {
            // A closed link leaves the message unanswered, which the reconciliation reports.
            let _ = link.jobs.send(key);
        }
        key
    }

    /// Whether a message the server answers without an id is in flight on `device`'s
    /// connection.
    pub fn idless_in_flight(&self, device: usize) -> bool {
        let Some(link) = self.devices.get(device).map(|d| d.link) else {
            return false;
        };
        let members: Vec<usize> = self
            .devices
            .iter()
            .enumerate()
            .filter(|(_, d)| d.link == link)
            .map(|(i, _)| i)
            .collect();
        self.shared.ledger.idless_in_flight(&members)
    }

    /// Waits until an ack frees a window slot somewhere (or a short while passed).
    pub async fn answered(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.shared.answered.notified()).await;
    }

    /// A second connection with `device`'s client id takes over its link's session; the
    /// device continues on it and resends what was not acknowledged.
    pub async fn takeover(&self, device: usize) -> Result<(), NetError> {
        let device = self
            .devices
            .get(device)
            .ok_or_else(|| NetError::Closed(format!("#{device}")))?;
        let link = self
            .links
            .get(device.link)
            .ok_or_else(|| NetError::Closed(device.id.clone()))?;
        let (done_tx, done_rx) = oneshot::channel();
        link.control
            .send(Control::Takeover(done_tx))
            .map_err(|_| NetError::Closed(device.id.clone()))?;
        done_rx
            .await
            .map_err(|_| NetError::Closed(device.id.clone()))?
    }

    /// Waits until every message is answered, for at most `timeout`. Returns whether all were.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.shared.ledger.all_answered() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// The reconciliation of everything sent so far.
    pub fn reconcile(&self) -> Reconciliation {
        let c = &self.shared.counters;
        self.shared.ledger.reconcile(
            c.reconnections.load(Ordering::Relaxed),
            c.takeovers.load(Ordering::Relaxed),
        )
    }

    /// Reconnections so far (after a broken connection or a takeover).
    pub fn reconnections(&self) -> u64 {
        self.shared.counters.reconnections.load(Ordering::Relaxed)
    }

    /// Disconnects every link and waits for their tasks.
    pub async fn close(&self) {
        for link in &self.links {
            let _ = link.control.send(Control::Stop);
        }
        for link in &self.links {
            for task in &link.tasks {
                if !task.is_finished() {
                    // The publisher ends when its job channel closes; give the poller a
                    // moment to send DISCONNECT.
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while !task.is_finished() {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    })
                    .await;
                }
                task.abort();
            }
        }
    }
}

fn new_client(options: &MqttOptions) -> (AsyncClient, EventLoop) {
    let (client, mut eventloop) = AsyncClient::new(options.clone(), 1024);
    // Messages and acks are small packets sent one after another: without this, Nagle's
    // algorithm holds each behind the peer's delayed TCP ACK (up to 40 ms a hop).
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    (client, eventloop)
}

fn filters<'a>(topics: impl Iterator<Item = &'a String>) -> Vec<SubscribeFilter> {
    topics
        .map(|t| SubscribeFilter::new(t.clone(), QoS::AtLeastOnce))
        .collect()
}

struct PollLink {
    eventloop: EventLoop,
    options: MqttOptions,
    client: watch::Sender<AsyncClient>,
    state: watch::Sender<LinkState>,
    control: mpsc::UnboundedReceiver<Control>,
    /// Acks topic → fleet device.
    acks: HashMap<String, usize>,
    shared: Arc<Shared>,
    gate: Arc<Semaphore>,
    connect_timeout: Duration,
}

/// How long a link keeps trying while the broker refuses its credentials at first: an
/// external broker learns newly registered devices and gateways from Chronicle a moment
/// after they are registered.
const NEW_CREDENTIALS_GRACE: Duration = Duration::from_secs(15);

/// Whether a refusal is one of credentials (the broker may not know them yet).
fn refused_credentials(code: ConnectReturnCode) -> bool {
    matches!(
        code,
        ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword
    )
}

/// The poller: polls the event loop, never publishes.
async fn poll_link(mut p: PollLink) {
    let started = tokio::time::Instant::now();
    let mut epoch = 0u64;
    let mut ever_ready = false;
    let mut failures = 0u32;
    let mut backoff = Duration::from_millis(100);
    let mut gate = p.gate.clone().acquire_owned().await.ok();
    let client_id = p.options.client_id();
    loop {
        tokio::select! {
            control = p.control.recv() => match control {
                None | Some(Control::Stop) => {
                    let _ = p.client.borrow().try_disconnect();
                    // Let the DISCONNECT out before the connection is dropped.
                    let _ = tokio::time::timeout(Duration::from_millis(200), p.eventloop.poll()).await;
                    break;
                }
                Some(Control::Takeover(done)) => {
                    let (client, mut eventloop) = new_client(&p.options);
                    let handshake = tokio::time::timeout(
                        p.connect_timeout,
                        connect_and_subscribe(&client, &mut eventloop, &p.acks),
                    )
                    .await
                    .unwrap_or_else(|_| Err(format!("no CONNACK/SUBACK within {:?}", p.connect_timeout)));
                    match handshake {
                        Ok(()) => {
                            p.eventloop = eventloop;
                            epoch += 1;
                            p.client.send_replace(client);
                            p.shared.counters.takeovers.fetch_add(1, Ordering::Relaxed);
                            p.shared.counters.reconnections.fetch_add(1, Ordering::Relaxed);
                            p.state.send_replace(LinkState::Ready(epoch));
                            let _ = done.send(Ok(()));
                        }
                        Err(reason) => {
                            let _ = done.send(Err(NetError::Connect { client_id: client_id.clone(), reason }));
                        }
                    }
                }
            },
            event = p.eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    if ack.code != ConnectReturnCode::Success {
                        if !ever_ready && refused_credentials(ack.code) && started.elapsed() < NEW_CREDENTIALS_GRACE {
                            p.state.send_replace(LinkState::Down);
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(1));
                            continue;
                        }
                        p.state.send_replace(LinkState::Failed(format!("refused: {:?}", ack.code)));
                        if !ever_ready { break; }
                        continue;
                    }
                    epoch += 1;
                    let subscribe = filters(p.acks.keys());
                    // try_: the poller must never wait on the client's request channel.
                    if let Err(e) = p.client.borrow().try_subscribe_many(subscribe) {
                        tracing::warn!(client_id, error = %e, "cannot subscribe to the acks topics");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if ever_ready {
                        p.shared.counters.reconnections.fetch_add(1, Ordering::Relaxed);
                    }
                    ever_ready = true;
                    failures = 0;
                    backoff = Duration::from_millis(100);
                    gate = None;
                    p.state.send_replace(LinkState::Ready(epoch));
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let Some(device) = p.acks.get(publish.topic.as_str()).copied() else { continue };
                    match serde_json::from_slice::<Ack>(&publish.payload) {
                        Ok(ack) => {
                            if let Some(freed) = p.shared.ledger.on_ack(device, &ack) {
                                if let Some(window) = p.shared.windows.get(freed) {
                                    window.add_permits(1);
                                }
                                p.shared.answered.notify_one();
                            }
                        }
                        Err(e) => tracing::warn!(client_id, error = %e, "unreadable ack"),
                    }
                }
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(code))
                    if !ever_ready && refused_credentials(code) && started.elapsed() < NEW_CREDENTIALS_GRACE =>
                {
                    p.state.send_replace(LinkState::Down);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    failures += 1;
                    if !ever_ready && (failures >= 5 || matches!(e, rumqttc::ConnectionError::ConnectionRefused(_))) {
                        p.state.send_replace(LinkState::Failed(e.to_string()));
                        break;
                    }
                    if ever_ready && failures == 1 {
                        tracing::info!(client_id, error = %e, "connection lost; reconnecting");
                    }
                    p.state.send_replace(LinkState::Down);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            },
        }
    }
    drop(gate);
}

/// Polls a fresh connection until it is connected and subscribed.
async fn connect_and_subscribe(
    client: &AsyncClient,
    eventloop: &mut EventLoop,
    acks: &HashMap<String, usize>,
) -> Result<(), String> {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                if ack.code != ConnectReturnCode::Success {
                    return Err(format!("refused: {:?}", ack.code));
                }
                client
                    .try_subscribe_many(filters(acks.keys()))
                    .map_err(|e| e.to_string())?;
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The publisher: sends each message once the link is ready, and after a reconnection
/// resends what was not answered.
async fn publish_link(
    link: usize,
    mut jobs: mpsc::UnboundedReceiver<MessageKey>,
    client: watch::Receiver<AsyncClient>,
    mut state: watch::Receiver<LinkState>,
    shared: Arc<Shared>,
) {
    let mut resent_through: Option<u64> = None;
    loop {
        let epoch = loop {
            let current = state.borrow_and_update().clone();
            match current {
                LinkState::Ready(epoch) => break epoch,
                LinkState::Failed(_) => return,
                LinkState::Connecting | LinkState::Down => {}
            }
            if state.changed().await.is_err() {
                return;
            }
        };
        match resent_through {
            None => resent_through = Some(epoch),
            Some(done) if epoch > done => {
                for key in shared.ledger.to_resend(link, epoch) {
                    publish(&shared, &client, key, epoch).await;
                }
                resent_through = Some(epoch);
            }
            Some(_) => {}
        }
        tokio::select! {
            job = jobs.recv() => match job {
                Some(key) => publish(&shared, &client, key, epoch).await,
                None => return,
            },
            changed = state.changed() => if changed.is_err() { return },
        }
    }
}

async fn publish(
    shared: &Shared,
    client: &watch::Receiver<AsyncClient>,
    key: MessageKey,
    epoch: u64,
) {
    let Some((device, payload)) = shared.ledger.mark_sent(key, epoch) else {
        return;
    };
    let Some(topic) = shared.topics.get(device) else {
        return;
    };
    let client = client.borrow().clone();
    // An error means the connection was replaced; the message is resent once it is back.
    let _ = client
        .publish(topic.as_str(), QoS::AtLeastOnce, false, payload)
        .await;
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("devices", &self.devices.len())
            .field("connections", &self.links.len())
            .field("broker", &self.shared.broker)
            .finish()
    }
}

//! Chronicle's embedded MQTT broker: the default way devices reach Chronicle.
//!
//! It is an MQTT 3.1.1 server built for one job, the device protocol of `docs/protocol.md`,
//! and it enforces the device channel's rules itself:
//!
//! - **Authentication** of every CONNECT by an [`Authority`] (the registry): a device or a
//!   gateway with its secret. Client ids are bound to identities ([`rules::client_id_allowed`]),
//!   so nobody takes over another identity's session.
//! - **Authorization** of every PUBLISH and SUBSCRIBE ([`rules`]): a device publishes only to
//!   its own readings topic and reads only its own acks; a gateway only those of the devices it
//!   relays. No wildcards, no other topic, no `$SYS`.
//! - **Revocation reaches open connections**: [`Broker::device_changed`] and
//!   [`Broker::identity_changed`] (fed by the registry's announcements) re-check the identities
//!   concerned and drop their connections, or update what a gateway relays, at once.
//!
//! There is no subscriber in between: a reading goes straight from the device's connection to
//! the ingest ([`MessageSink`]), the PUBACK waits for the commit, and the ack is routed to the
//! subscribers of the device's acks topic. So the broker keeps no queue of readings, a message
//! is never acknowledged before it is stored, and nothing bounds throughput but the database.
//! Sockets run without Nagle's delay; each connection's window is configurable.
//!
//! - [`rules`]: the policy, as pure functions.
//! - `sessions`: sessions, subscriptions, connected principals, routing of acks.
//! - `connection`: one client connection (reader, acker, writer).
//! - [`tls`]: certificates from PEM files into a TLS acceptor.

mod connection;
pub mod rules;
mod sessions;
pub mod tls;

use chronicle_domain::{DeviceId, Publisher};
use chronicle_ingest::batcher::IngestClosed;
use chronicle_ingest::{IncomingMessage, IngestHandle, MessageOutcome};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rand::Rng;
pub use rules::Principal;
use sessions::Sessions;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// An error from the [`Authority`] (the registry could not be asked).
pub type AuthorityError = Box<dyn std::error::Error + Send + Sync>;

/// Who may connect, and what they may relay: the registry, for the broker.
pub trait Authority: Send + Sync + 'static {
    /// The principal whose secret `password` is, or `None`.
    fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> impl Future<Output = Result<Option<Principal>, AuthorityError>> + Send;

    /// The identity's principal as it stands now; `None` once it may no longer connect
    /// (revoked, erased).
    fn principal(
        &self,
        identity: &Publisher,
    ) -> impl Future<Output = Result<Option<Principal>, AuthorityError>> + Send;
}

/// Where the broker hands readings: the ingest, which answers each message after its commit.
pub trait MessageSink: Send + Sync + 'static {
    fn submit(
        &self,
        message: IncomingMessage,
    ) -> impl Future<Output = Result<oneshot::Receiver<MessageOutcome>, IngestClosed>> + Send;
}

impl MessageSink for IngestHandle {
    fn submit(
        &self,
        message: IncomingMessage,
    ) -> impl Future<Output = Result<oneshot::Receiver<MessageOutcome>, IngestClosed>> + Send {
        IngestHandle::submit(self, message)
    }
}

/// How the broker behaves.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// The protocol's topic prefix, `chronicle/v1` unless configured otherwise.
    pub topic_prefix: String,
    /// Largest packet accepted or sent; a bigger one closes the connection (MQTT has no other
    /// way to refuse it).
    pub max_packet_bytes: usize,
    /// Connections at once; more are closed at once, so a flood cannot exhaust memory.
    pub max_connections: usize,
    /// Messages one connection may have waiting for their commit; when full, the broker
    /// stops reading that connection (TCP slows the client down).
    pub inflight_in: usize,
    /// QoS 1 acks sent to one client and not yet acknowledged by it.
    pub inflight_out: usize,
    /// Acks kept per session beyond that window, or while a persistent session's client is away.
    pub queued_out: usize,
    /// Time from TCP connect to CONNECT.
    pub connect_timeout: Duration,
    /// How long a persistent session outlives its client.
    pub session_expiry: Duration,
    /// Refused publishes or subscriptions after which a connection is dropped: a device that
    /// keeps trying other devices' topics is not a device that merely misbehaved once.
    pub refusals_before_disconnect: u32,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        BrokerSettings {
            topic_prefix: chronicle_domain::topics::DEFAULT_TOPIC_PREFIX.to_owned(),
            max_packet_bytes: 16 * 1024 * 1024,
            max_connections: 100_000,
            inflight_in: 1000,
            inflight_out: 1000,
            queued_out: 1000,
            connect_timeout: Duration::from_secs(10),
            session_expiry: Duration::from_secs(24 * 3600),
            refusals_before_disconnect: 10,
        }
    }
}

/// A listener the broker serves: an already bound socket, with TLS or without.
pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<TlsAcceptor>,
}

/// Where the broker listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    pub addr: SocketAddr,
    pub tls: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The broker's Prometheus metrics.
#[derive(Clone, Debug, Default)]
pub struct BrokerMetrics {
    connections: Gauge,
    connections_refused: Family<ReasonLabel, Counter>,
    requests_refused: Family<ReasonLabel, Counter>,
    acks_dropped: Counter,
    identities_dropped: Counter,
}

impl BrokerMetrics {
    pub fn register(registry: &mut Registry) -> BrokerMetrics {
        let metrics = BrokerMetrics::default();
        let r = registry.sub_registry_with_prefix("chronicle_broker");
        chronicle_domain::register_metrics!(r, metrics, {
            connections: "Client connections open",
            connections_refused: "CONNECTs refused, by reason",
            requests_refused: "Publishes and subscriptions refused by authorization, by kind",
            acks_dropped: "Acks not delivered because a client's queue was full",
            identities_dropped: "Identities whose connections were dropped after a registry change",
        });
        metrics
    }

    fn refused_connection(&self, refusal: connection::ConnectRefusal) {
        self.connections_refused
            .get_or_create(&ReasonLabel {
                reason: refusal.label(),
            })
            .inc();
    }

    fn refused_message(&self, reason: &'static str) {
        self.requests_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    fn acks_dropped(&self, dropped: sessions::Dropped) {
        self.acks_dropped.inc_by(dropped.full + dropped.overflow);
    }
}

/// What every connection shares.
struct Context<A, S> {
    settings: BrokerSettings,
    authority: A,
    sink: S,
    sessions: Sessions,
    metrics: BrokerMetrics,
    /// Cancelled when the broker stops: connections stop reading, acknowledge what they hold,
    /// and close.
    shutdown: CancellationToken,
    /// Cancelled when the shutdown grace is over: connections still open are dropped.
    force: CancellationToken,
    registry: mpsc::UnboundedSender<RegistryWork>,
}

impl<A, S> Context<A, S> {
    fn recheck(&self, identity: Publisher) {
        let _ = self.registry.send(RegistryWork::Identity(identity));
    }
}

/// A registry change the broker acts on.
enum RegistryWork {
    Device(DeviceId),
    Identity(Publisher),
    All,
}

/// The running broker.
pub struct Broker {
    addrs: Vec<ListenAddr>,
    changes: RegistryChanges,
    tasks: JoinSet<()>,
    /// The token that stops the broker (the context's `shutdown`).
    shutdown: CancellationToken,
    /// Drops every connection still open (the context's `force`).
    force: CancellationToken,
}

/// Tells a running broker that the registry changed; cheap to clone.
#[derive(Clone)]
pub struct RegistryChanges {
    work: mpsc::UnboundedSender<RegistryWork>,
    /// The sessions' count of announcements (see `Sessions::announcements`).
    announcements: Arc<std::sync::atomic::AtomicU64>,
}

impl RegistryChanges {
    /// A device changed in the registry (revoked, erased, new secret, attached to or taken off
    /// a gateway): its own connections and the gateways relaying it are checked again.
    pub fn device_changed(&self, device: DeviceId) {
        self.announcements.fetch_add(1, Ordering::SeqCst);
        let _ = self.work.send(RegistryWork::Device(device));
    }

    /// A device or gateway changed in the registry: it is checked again.
    pub fn identity_changed(&self, identity: Publisher) {
        self.announcements.fetch_add(1, Ordering::SeqCst);
        let _ = self.work.send(RegistryWork::Identity(identity));
    }

    /// Announcements may have been missed: every connected identity is checked again.
    pub fn recheck_all(&self) {
        self.announcements.fetch_add(1, Ordering::SeqCst);
        let _ = self.work.send(RegistryWork::All);
    }
}

impl Broker {
    /// Starts serving `listeners` until `shutdown` is cancelled.
    pub fn start<A: Authority, S: MessageSink>(
        settings: BrokerSettings,
        listeners: Vec<Listener>,
        authority: A,
        sink: S,
        metrics: BrokerMetrics,
        shutdown: CancellationToken,
    ) -> std::io::Result<Broker> {
        let (registry, registry_rx) = mpsc::unbounded_channel();
        let ctx = Arc::new(Context {
            sessions: Sessions::new(settings.queued_out, settings.session_expiry),
            settings,
            authority,
            sink,
            metrics,
            shutdown: shutdown.clone(),
            force: CancellationToken::new(),
            registry: registry.clone(),
        });
        let mut addrs = Vec::with_capacity(listeners.len());
        let mut tasks = JoinSet::new();
        let connections = Arc::new(Semaphore::new(ctx.settings.max_connections.max(1)));
        let clients = tokio_util::task::TaskTracker::new();
        for listener in listeners {
            addrs.push(ListenAddr {
                addr: listener.tcp.local_addr()?,
                tls: listener.tls.is_some(),
            });
            tasks.spawn(accept(
                listener,
                ctx.clone(),
                connections.clone(),
                clients.clone(),
            ));
        }
        tasks.spawn(apply_registry_changes(registry_rx, ctx.clone()));
        tasks.spawn(expire_sessions(ctx.clone()));
        // Waits for the clients after shutdown, so `join` returns once every connection has
        // acknowledged what it took.
        let stopping = shutdown.clone();
        tasks.spawn(async move {
            stopping.cancelled().await;
            clients.close();
            clients.wait().await;
        });
        Ok(Broker {
            addrs,
            changes: RegistryChanges {
                work: registry,
                announcements: ctx.sessions.announcements.clone(),
            },
            tasks,
            shutdown,
            force: ctx.force.clone(),
        })
    }

    /// Where the broker listens (with the ports the system chose for port 0).
    pub fn addrs(&self) -> &[ListenAddr] {
        &self.addrs
    }

    /// The handle to tell the broker about registry changes.
    pub fn registry_changes(&self) -> RegistryChanges {
        self.changes.clone()
    }

    /// Waits for `shutdown`, then until the broker stopped and every connection acknowledged
    /// what it took, or `grace` passed since. (The grace counts from the shutdown, so this
    /// may be awaited from the start; counted from the call, a broker awaited at once would
    /// drop its connections `grace` after it started.)
    pub async fn join(mut self, grace: Duration) {
        self.shutdown.cancelled().await;
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(
                "MQTT connections did not finish within the shutdown grace; closing them"
            );
            self.force.cancel();
            while self.tasks.join_next().await.is_some() {}
        }
    }
}

async fn accept<A: Authority, S: MessageSink>(
    listener: Listener,
    ctx: Arc<Context<A, S>>,
    connections: Arc<Semaphore>,
    clients: tokio_util::task::TaskTracker,
) {
    let Listener { tcp, tls } = listener;
    loop {
        let (stream, peer) = tokio::select! {
            () = ctx.shutdown.cancelled() => return,
            accepted = tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(%error, "cannot accept an MQTT connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "MQTT connection refused: too many connections");
            continue;
        };
        // Acks are small packets: without this, Nagle's algorithm holds each behind the
        // client's delayed TCP ACK (up to 40 ms).
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot disable Nagle's algorithm");
        }
        let ctx = ctx.clone();
        let tls = tls.clone();
        clients.spawn(async move {
            let _permit = permit;
            let force = ctx.force.clone();
            let serve = async move {
                match tls {
                    None => connection::serve(stream, peer, ctx).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(
                            ctx.settings.connect_timeout,
                            acceptor.accept(stream),
                        )
                        .await
                        {
                            Ok(Ok(stream)) => connection::serve(stream, peer, ctx).await,
                            Ok(Err(error)) => {
                                tracing::info!(%peer, %error, "MQTT TLS handshake failed");
                            }
                            Err(_) => tracing::info!(%peer, "MQTT TLS handshake timed out"),
                        }
                    }
                }
            };
            tokio::select! {
                () = serve => {}
                () = force.cancelled() => {}
            }
        });
    }
}

/// Re-checks identities when the registry changes, one change at a time.
async fn apply_registry_changes<A: Authority, S: MessageSink>(
    mut work: mpsc::UnboundedReceiver<RegistryWork>,
    ctx: Arc<Context<A, S>>,
) {
    loop {
        let item = tokio::select! {
            () = ctx.shutdown.cancelled() => return,
            item = work.recv() => match item {
                Some(item) => item,
                None => return,
            },
        };
        let identities = match item {
            RegistryWork::Device(device) => ctx.sessions.affected_by_device(&device),
            RegistryWork::Identity(identity) => {
                if ctx.sessions.has_identity(&identity) {
                    vec![identity]
                } else {
                    Vec::new()
                }
            }
            RegistryWork::All => ctx.sessions.identities(),
        };
        for identity in identities {
            let mut backoff = Duration::from_millis(100);
            loop {
                match ctx.authority.principal(&identity).await {
                    Ok(principal) => {
                        if principal.is_none() {
                            tracing::info!(%identity, "identity revoked or erased: dropping its MQTT connections");
                            ctx.metrics.identities_dropped.inc();
                        }
                        ctx.sessions.apply(&identity, principal);
                        break;
                    }
                    Err(error) => {
                        // A revocation must still take effect: keep asking until the registry
                        // answers.
                        tracing::warn!(%identity, %error, "cannot re-check an MQTT identity; retrying");
                        tokio::select! {
                            () = ctx.shutdown.cancelled() => return,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
    }
}

async fn expire_sessions<A: Authority, S: MessageSink>(ctx: Arc<Context<A, S>>) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            () = ctx.shutdown.cancelled() => return,
            _ = every.tick() => {
                let expired = ctx.sessions.expire();
                if expired > 0 {
                    tracing::debug!(expired, "persistent MQTT sessions expired");
                }
            }
        }
    }
}

/// Twelve random characters of a-z and 0-9, for client ids the broker assigns.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..12)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    use std::collections::HashSet;

    /// Lets every device in; the test publishes nothing.
    struct Anyone;

    impl Authority for Anyone {
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

        async fn principal(
            &self,
            identity: &Publisher,
        ) -> Result<Option<Principal>, AuthorityError> {
            Ok(Some(Principal {
                identity: identity.clone(),
                relays: HashSet::new(),
            }))
        }
    }

    struct Unanswered;

    impl MessageSink for Unanswered {
        async fn submit(
            &self,
            _message: IncomingMessage,
        ) -> Result<oneshot::Receiver<MessageOutcome>, IngestClosed> {
            Err(IngestClosed)
        }
    }

    /// A broker whose `join` is awaited from its start (as a benchmark's stand-in does) keeps
    /// its connections past the grace: the grace counts from the shutdown.
    #[tokio::test]
    async fn the_shutdown_grace_counts_from_the_shutdown() {
        let tcp = TcpListener::bind(("127.0.0.1", 0)).await.expect("listen");
        let port = tcp.local_addr().expect("address").port();
        let shutdown = CancellationToken::new();
        let broker = Broker::start(
            BrokerSettings::default(),
            vec![Listener { tcp, tls: None }],
            Anyone,
            Unanswered,
            BrokerMetrics::default(),
            shutdown.clone(),
        )
        .expect("broker");
        let grace = Duration::from_millis(200);
        let joined = tokio::spawn(broker.join(grace));

        let device = "dev_0123456789ab";
        let mut options = MqttOptions::new(device, "127.0.0.1", port);
        options.set_credentials(device, "secret");
        let (client, mut events) = AsyncClient::new(options, 10);
        let acked = async |events: &mut rumqttc::EventLoop, subscribed: bool| loop {
            match events.poll().await.expect("connected") {
                Event::Incoming(Packet::ConnAck(_)) if !subscribed => return,
                Event::Incoming(Packet::SubAck(_)) if subscribed => return,
                _ => {}
            }
        };
        tokio::time::timeout(Duration::from_secs(5), acked(&mut events, false))
            .await
            .expect("CONNACK");
        tokio::time::sleep(grace * 3).await;
        let acks = chronicle_domain::topics::acks_topic(
            chronicle_domain::topics::DEFAULT_TOPIC_PREFIX,
            device,
        );
        client
            .subscribe(acks, QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        tokio::time::timeout(Duration::from_secs(5), acked(&mut events, true))
            .await
            .expect("the connection is still served after the grace");
        assert!(!joined.is_finished());

        shutdown.cancel();
        tokio::time::timeout(grace * 10, joined)
            .await
            .expect("stopped within the grace after the shutdown")
            .expect("join");
    }
}

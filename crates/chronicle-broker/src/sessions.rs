//! The broker's shared state: sessions by client id, their subscriptions to acks topics, the
//! principals of connected identities, and the routing of an ack to whoever may read it.
//!
//! One mutex guards it all; every operation under it is a few map look-ups, and nothing awaits
//! while holding it (deliveries to connections are `try_send`s).

use crate::rules::Principal;
use bytes::Bytes;
use chronicle_domain::sync::{lock, write};
use chronicle_domain::{DeviceId, GatewayId, Publisher};
use rumqttc::QoS;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the router hands a connection's writer.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A packet to write as it is (CONNACK, PUBACK, SUBACK, PINGRESP…).
    Packet(rumqttc::Packet),
    /// An ack for a subscribed device, to publish at the subscription's QoS.
    Deliver(Delivery),
    /// The client acknowledged one of our QoS 1 publishes.
    Acknowledged(u16),
}

/// An ack on its way to a subscriber.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub topic: Arc<str>,
    pub payload: Bytes,
    pub qos: QoS,
}

/// A connected identity's principal, shared by its connections and updated in place when the
/// registry changes (a device attached to or taken off a gateway).
pub(crate) type SharedPrincipal = Arc<RwLock<Principal>>;

/// The connection a session is attached to.
struct Attached {
    connection: u64,
    outbox: mpsc::Sender<Outbound>,
    kick: CancellationToken,
}

struct Session {
    identity: Publisher,
    /// Kept after the client leaves (MQTT `clean_session = 0`), with its subscriptions and the
    /// acks that arrive meanwhile.
    persistent: bool,
    /// Acks topics subscribed to, by device, with the QoS granted.
    subscriptions: HashMap<DeviceId, QoS>,
    attached: Option<Attached>,
    /// Acks waiting for a persistent session's client to come back.
    queued: VecDeque<Delivery>,
    detached_at: Option<Instant>,
}

struct IdentityEntry {
    principal: SharedPrincipal,
    /// Client ids of this identity's sessions (attached or kept).
    sessions: HashSet<String>,
}

#[derive(Default)]
struct Table {
    sessions: HashMap<String, Session>,
    /// For each device, the client ids subscribed to its acks.
    subscribers: HashMap<DeviceId, HashSet<String>>,
    identities: HashMap<Publisher, IdentityEntry>,
    /// For each device, the gateways with sessions here that relay it: which principals to
    /// re-check when the device changes.
    relayed_by: HashMap<DeviceId, HashSet<GatewayId>>,
    next_connection: u64,
}

/// Counts of what the router dropped, for metrics.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Dropped {
    /// Acks not delivered because a connection's queue was full.
    pub full: u64,
    /// Acks dropped from a kept session's queue (the oldest, when it overflowed).
    pub overflow: u64,
}

/// The result of attaching a connection to its session.
pub(crate) struct Attachment {
    pub connection: u64,
    pub session_present: bool,
    /// Acks kept for a persistent session while its client was away, to send now.
    pub queued: Vec<Delivery>,
    pub principal: SharedPrincipal,
}

pub(crate) struct Sessions {
    table: Mutex<Table>,
    /// Acks kept per session (waiting for a client that is away, or beyond its window).
    max_queued: usize,
    /// How long a persistent session outlives its client.
    expiry: Duration,
    /// Bumped by every registry announcement heard: a connection that authenticated before
    /// an announcement and attached after it re-checks its identity.
    pub announcements: Arc<std::sync::atomic::AtomicU64>,
}

impl Sessions {
    pub fn new(max_queued: usize, expiry: Duration) -> Sessions {
        Sessions {
            table: Mutex::new(Table::default()),
            max_queued: max_queued.max(1),
            expiry,
            announcements: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        lock(&self.table)
    }

    /// Attaches a new connection to the session `client_id`, taking it over from a connection
    /// of the same identity if one holds it (the MQTT rule), or starting it afresh.
    pub fn attach(
        &self,
        client_id: &str,
        principal: Principal,
        clean_session: bool,
        outbox: mpsc::Sender<Outbound>,
        kick: CancellationToken,
    ) -> Attachment {
        let mut table = self.lock();
        table.next_connection += 1;
        let connection = table.next_connection;
        let identity = principal.identity.clone();

        let mut session_present = false;
        let mut queued = Vec::new();
        let keep_old = match table.sessions.get_mut(client_id) {
            Some(old) if old.identity == identity => {
                if let Some(previous) = old.attached.take() {
                    previous.kick.cancel();
                }
                if clean_session || !old.persistent {
                    false
                } else {
                    session_present = true;
                    queued = old.queued.drain(..).collect();
                    true
                }
            }
            // Client ids are bound to identities, so another identity never holds this one;
            // should it ever, its session is not handed over.
            Some(other) => {
                if let Some(previous) = other.attached.take() {
                    previous.kick.cancel();
                }
                false
            }
            None => false,
        };
        if !keep_old {
            remove_session(&mut table, client_id);
        }
        let attached = Attached {
            connection,
            outbox,
            kick,
        };
        match table.sessions.get_mut(client_id) {
            Some(session) => {
                session.attached = Some(attached);
                session.persistent = !clean_session;
                session.detached_at = None;
            }
            None => {
                table.sessions.insert(
                    client_id.to_owned(),
                    Session {
                        identity: identity.clone(),
                        persistent: !clean_session,
                        subscriptions: HashMap::new(),
                        attached: Some(attached),
                        queued: VecDeque::new(),
                        detached_at: None,
                    },
                );
            }
        }
        let principal = set_principal(&mut table, principal);
        if let Some(entry) = table.identities.get_mut(&identity) {
            entry.sessions.insert(client_id.to_owned());
        }
        Attachment {
            connection,
            session_present,
            queued,
            principal,
        }
    }

    /// The connection `connection` of `client_id` is ending: nothing is routed to it any
    /// more. A persistent session stays, collecting acks until its client returns; a clean one
    /// goes.
    pub fn release(&self, client_id: &str, connection: u64) {
        let mut table = self.lock();
        let Some(session) = table.sessions.get_mut(client_id) else {
            return;
        };
        if session.attached.as_ref().map(|a| a.connection) != Some(connection) {
            // Taken over by a newer connection already.
            return;
        }
        session.attached = None;
        if session.persistent {
            session.detached_at = Some(Instant::now());
        } else {
            remove_session(&mut table, client_id);
        }
    }

    /// Gives a persistent session that is still waiting for its client the acks its last
    /// connection sent but never saw acknowledged, ahead of those queued since.
    pub fn keep(&self, client_id: &str, unacknowledged: Vec<Delivery>) {
        let mut table = self.lock();
        let max_queued = self.max_queued;
        let Some(session) = table.sessions.get_mut(client_id) else {
            return;
        };
        if session.attached.is_some() || !session.persistent {
            return;
        }
        for delivery in unacknowledged.into_iter().rev() {
            session.queued.push_front(delivery);
        }
        session.queued.truncate(max_queued);
    }

    /// Records a subscription of `client_id` (attached as `connection`) to `device`'s acks.
    pub fn subscribe(&self, client_id: &str, connection: u64, device: DeviceId, qos: QoS) {
        let mut table = self.lock();
        let Some(session) = table.sessions.get_mut(client_id) else {
            return;
        };
        if session.attached.as_ref().map(|a| a.connection) != Some(connection) {
            return;
        }
        session.subscriptions.insert(device.clone(), qos);
        table
            .subscribers
            .entry(device)
            .or_default()
            .insert(client_id.to_owned());
    }

    pub fn unsubscribe(&self, client_id: &str, device: &DeviceId) {
        let mut table = self.lock();
        if let Some(session) = table.sessions.get_mut(client_id) {
            session.subscriptions.remove(device);
        }
        remove_subscriber(&mut table, device, client_id);
    }

    /// Hands an ack for `device` to every session subscribed to its acks topic: at once to an
    /// attached connection, or into a kept session's queue.
    pub fn deliver(&self, device: &str, topic: &Arc<str>, payload: &Bytes) -> Dropped {
        let mut dropped = Dropped::default();
        let Ok(device) = DeviceId::parse(device) else {
            return dropped;
        };
        let mut table = self.lock();
        let Table {
            sessions,
            subscribers,
            ..
        } = &mut *table;
        let Some(subscribers) = subscribers.get(&device) else {
            return dropped;
        };
        let max_queued = self.max_queued;
        for client_id in subscribers {
            let Some(session) = sessions.get_mut(client_id) else {
                continue;
            };
            let Some(qos) = session.subscriptions.get(&device).copied() else {
                continue;
            };
            let delivery = Delivery {
                topic: topic.clone(),
                payload: payload.clone(),
                qos,
            };
            match &session.attached {
                Some(attached) => {
                    if attached
                        .outbox
                        .try_send(Outbound::Deliver(delivery))
                        .is_err()
                    {
                        dropped.full += 1;
                    }
                }
                None => {
                    if session.queued.len() >= max_queued {
                        session.queued.pop_front();
                        dropped.overflow += 1;
                    }
                    session.queued.push_back(delivery);
                }
            }
        }
        dropped
    }

    /// The identity's principal changed (`Some`) or it may no longer connect (`None`): its
    /// connections are dropped and its sessions forgotten, or its principal is updated and
    /// subscriptions to devices it no longer relays are removed.
    pub fn apply(&self, identity: &Publisher, principal: Option<Principal>) {
        let mut table = self.lock();
        let Some(entry) = table.identities.get(identity) else {
            return;
        };
        let client_ids: Vec<String> = entry.sessions.iter().cloned().collect();
        match principal {
            None => {
                for client_id in &client_ids {
                    if let Some(attached) = table
                        .sessions
                        .get_mut(client_id)
                        .and_then(|s| s.attached.take())
                    {
                        attached.kick.cancel();
                    }
                    remove_session(&mut table, client_id);
                }
                forget_identity(&mut table, identity);
            }
            Some(principal) => {
                for client_id in &client_ids {
                    let lost: Vec<DeviceId> = table
                        .sessions
                        .get(client_id)
                        .map(|s| {
                            s.subscriptions
                                .keys()
                                .filter(|d| !principal.relays(d.as_str()))
                                .cloned()
                                .collect()
                        })
                        .unwrap_or_default();
                    for device in lost {
                        if let Some(session) = table.sessions.get_mut(client_id) {
                            session.subscriptions.remove(&device);
                        }
                        remove_subscriber(&mut table, &device, client_id);
                    }
                }
                set_principal(&mut table, principal);
            }
        }
    }

    /// Identities to re-check when `device` changes: the device itself if it has sessions,
    /// and every gateway with sessions that relays it.
    pub fn affected_by_device(&self, device: &DeviceId) -> Vec<Publisher> {
        let table = self.lock();
        let mut affected = Vec::new();
        let own = Publisher::Device(device.clone());
        if table.identities.contains_key(&own) {
            affected.push(own);
        }
        if let Some(gateways) = table.relayed_by.get(device) {
            affected.extend(gateways.iter().cloned().map(Publisher::Gateway));
        }
        affected
    }

    /// Whether the identity has sessions here.
    pub fn has_identity(&self, identity: &Publisher) -> bool {
        self.lock().identities.contains_key(identity)
    }

    /// Every identity with sessions here.
    pub fn identities(&self) -> Vec<Publisher> {
        self.lock().identities.keys().cloned().collect()
    }

    /// Connections currently attached.
    #[cfg(test)]
    pub fn attached(&self) -> usize {
        self.lock()
            .sessions
            .values()
            .filter(|s| s.attached.is_some())
            .count()
    }

    /// Forgets persistent sessions whose client has been away longer than the expiry.
    pub fn expire(&self) -> usize {
        let mut table = self.lock();
        let expiry = self.expiry;
        let expired: Vec<String> = table
            .sessions
            .iter()
            .filter(|(_, s)| s.detached_at.is_some_and(|at| at.elapsed() > expiry))
            .map(|(id, _)| id.clone())
            .collect();
        for client_id in &expired {
            remove_session(&mut table, client_id);
        }
        expired.len()
    }
}

/// Stores the identity's principal, shared by its connections, and returns it.
fn set_principal(table: &mut Table, principal: Principal) -> SharedPrincipal {
    let identity = principal.identity.clone();
    if let Publisher::Gateway(gateway) = &identity {
        let previous: HashSet<DeviceId> = table
            .identities
            .get(&identity)
            .map(|e| read(&e.principal).relays.clone())
            .unwrap_or_default();
        for gone in previous.difference(&principal.relays) {
            if let Some(gateways) = table.relayed_by.get_mut(gone) {
                gateways.remove(gateway);
                if gateways.is_empty() {
                    table.relayed_by.remove(gone);
                }
            }
        }
        for device in &principal.relays {
            table
                .relayed_by
                .entry(device.clone())
                .or_default()
                .insert(gateway.clone());
        }
    }
    match table.identities.get(&identity) {
        Some(entry) => {
            *write(&entry.principal) = principal;
            entry.principal.clone()
        }
        None => {
            let shared = Arc::new(RwLock::new(principal));
            table.identities.insert(
                identity,
                IdentityEntry {
                    principal: shared.clone(),
                    sessions: HashSet::new(),
                },
            );
            shared
        }
    }
}

/// Reads a shared principal; a writer that panicked left a whole value behind.
pub(crate) fn read(principal: &SharedPrincipal) -> std::sync::RwLockReadGuard<'_, Principal> {
    chronicle_domain::sync::read(principal)
}

fn remove_session(table: &mut Table, client_id: &str) {
    let Some(session) = table.sessions.remove(client_id) else {
        return;
    };
    for device in session.subscriptions.keys() {
        remove_subscriber(table, device, client_id);
    }
    let forget = match table.identities.get_mut(&session.identity) {
        Some(entry) => {
            entry.sessions.remove(client_id);
            entry.sessions.is_empty()
        }
        None => false,
    };
    if forget {
        forget_identity(table, &session.identity);
    }
}

fn forget_identity(table: &mut Table, identity: &Publisher) {
    let Some(entry) = table.identities.remove(identity) else {
        return;
    };
    if let Publisher::Gateway(gateway) = identity {
        for device in &read(&entry.principal).relays {
            if let Some(gateways) = table.relayed_by.get_mut(device) {
                gateways.remove(gateway);
                if gateways.is_empty() {
                    table.relayed_by.remove(device);
                }
            }
        }
    }
}

fn remove_subscriber(table: &mut Table, device: &DeviceId, client_id: &str) {
    if let Some(subscribers) = table.subscribers.get_mut(device) {
        subscribers.remove(client_id);
        if subscribers.is_empty() {
            table.subscribers.remove(device);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: &str) -> DeviceId {
        DeviceId::parse(id).expect("device id")
    }

    fn principal_of(id: &str) -> Principal {
        Principal {
            identity: Publisher::Device(device(id)),
            relays: HashSet::new(),
        }
    }

    fn gateway(relays: &[&str]) -> Principal {
        Principal {
            identity: Publisher::Gateway(GatewayId::parse("gw_k3v9q2m8x1ab").expect("gateway")),
            relays: relays.iter().map(|d| device(d)).collect(),
        }
    }

    #[test]
    fn acks_reach_subscribers_and_wait_for_persistent_sessions() {
        let sessions = Sessions::new(10, Duration::from_secs(60));
        let (tx, mut rx) = mpsc::channel(10);
        let a = sessions.attach(
            "dev_a",
            principal_of("dev_a"),
            false,
            tx,
            CancellationToken::new(),
        );
        sessions.subscribe("dev_a", a.connection, device("dev_a"), QoS::AtLeastOnce);
        let topic: Arc<str> = Arc::from("chronicle/v1/devices/dev_a/acks");
        sessions.deliver("dev_a", &topic, &Bytes::from_static(b"1"));
        assert!(matches!(rx.try_recv(), Ok(Outbound::Deliver(_))));
        sessions.deliver("dev_b", &topic, &Bytes::from_static(b"x"));
        assert!(rx.try_recv().is_err(), "nobody reads dev_b's acks");

        sessions.release("dev_a", a.connection);
        sessions.deliver("dev_a", &topic, &Bytes::from_static(b"2"));
        let (tx, _rx) = mpsc::channel(10);
        let again = sessions.attach(
            "dev_a",
            principal_of("dev_a"),
            false,
            tx,
            CancellationToken::new(),
        );
        assert!(again.session_present);
        assert_eq!(again.queued.len(), 1);
    }

    #[test]
    fn a_new_connection_takes_over_the_session_and_clean_sessions_go() {
        let sessions = Sessions::new(10, Duration::from_secs(60));
        let (tx, _rx) = mpsc::channel(10);
        let first_kick = CancellationToken::new();
        let first = sessions.attach(
            "dev_a",
            principal_of("dev_a"),
            true,
            tx.clone(),
            first_kick.clone(),
        );
        sessions.subscribe("dev_a", first.connection, device("dev_a"), QoS::AtLeastOnce);
        let second = sessions.attach(
            "dev_a",
            principal_of("dev_a"),
            true,
            tx,
            CancellationToken::new(),
        );
        assert!(first_kick.is_cancelled());
        assert!(!second.session_present);
        // The old connection's end does not disturb the new one.
        sessions.release("dev_a", first.connection);
        assert_eq!(sessions.attached(), 1);
        sessions.release("dev_a", second.connection);
        assert_eq!(sessions.attached(), 0);
        assert!(sessions.identities().is_empty());
    }

    #[test]
    fn revocation_kicks_and_relay_changes_drop_subscriptions() {
        let sessions = Sessions::new(10, Duration::from_secs(60));
        let (tx, _rx) = mpsc::channel(10);
        let kick = CancellationToken::new();
        let g = gateway(&["dev_a", "dev_b"]);
        let identity = g.identity.clone();
        let attached = sessions.attach("gw_k3v9q2m8x1ab", g, false, tx, kick.clone());
        sessions.subscribe(
            "gw_k3v9q2m8x1ab",
            attached.connection,
            device("dev_a"),
            QoS::AtLeastOnce,
        );
        sessions.subscribe(
            "gw_k3v9q2m8x1ab",
            attached.connection,
            device("dev_b"),
            QoS::AtLeastOnce,
        );
        assert_eq!(
            sessions.affected_by_device(&device("dev_b")),
            vec![identity.clone()]
        );

        sessions.apply(&identity, Some(gateway(&["dev_a"])));
        assert!(!read(&attached.principal).relays("dev_b"));
        assert!(sessions.affected_by_device(&device("dev_b")).is_empty());
        let topic: Arc<str> = Arc::from("t");
        sessions.release("gw_k3v9q2m8x1ab", attached.connection);
        sessions.deliver("dev_b", &topic, &Bytes::new());
        sessions.deliver("dev_a", &topic, &Bytes::new());

        sessions.apply(&identity, None);
        assert!(sessions.identities().is_empty());
        let (tx, _rx) = mpsc::channel(10);
        let back = sessions.attach(
            "gw_k3v9q2m8x1ab",
            gateway(&["dev_a"]),
            false,
            tx,
            CancellationToken::new(),
        );
        assert!(
            !back.session_present,
            "a revoked identity's sessions are forgotten"
        );
    }
}

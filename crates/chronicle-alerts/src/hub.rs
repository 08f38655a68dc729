//! The live fan-out of alert events in one process. The hub LISTENs for the NOTIFY every
//! event-writing commit sends (from any server), reads the new events in id order and
//! broadcasts them to this process's streams. It also polls, so a notification lost while
//! its connection was re-established delays an event by a second at most.
//!
//! The hub hands events to everyone; whoever passes one to a user asks the gate first.

use chronicle_storage::alerts::{AlertEvent, AlertEventListener};
use chronicle_storage::{StorageError, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Events a slow stream may fall behind by before it has to catch up from the database.
const CAPACITY: usize = 4096;
/// How often the hub looks for events even without a notification.
const POLL: Duration = Duration::from_secs(1);
/// Events read per query.
const BATCH: i64 = 500;

/// The handle streams subscribe through. Cheap to clone.
#[derive(Clone)]
pub struct AlertHub {
    inner: Arc<Inner>,
}

struct Inner {
    events: broadcast::Sender<Arc<AlertEvent>>,
    /// The id of the newest event broadcast.
    position: watch::Sender<i64>,
    /// Woken when new events arrive (the webhook dispatcher waits on it).
    arrived: Notify,
    store: Store,
}

impl AlertHub {
    /// New events from now on. Events are broadcast in increasing id order.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AlertEvent>> {
        self.inner.events.subscribe()
    }

    /// The id of the newest event broadcast so far.
    pub fn position(&self) -> i64 {
        *self.inner.position.borrow()
    }

    /// Waits until new events arrive.
    pub async fn arrived(&self) {
        self.inner.arrived.notified().await;
    }

    /// Events after `after_id` straight from the database (a stream resuming with
    /// `Last-Event-ID`, or catching up after falling behind), oldest first.
    pub async fn events_after(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<AlertEvent>, StorageError> {
        self.inner.store.alert_events_after(after_id, limit).await
    }
}

/// Starts the hub.
pub fn spawn(store: Store, shutdown: CancellationToken) -> (AlertHub, JoinHandle<()>) {
    let hub = AlertHub {
        inner: Arc::new(Inner {
            events: broadcast::channel(CAPACITY).0,
            position: watch::Sender::new(0),
            arrived: Notify::new(),
            store: store.clone(),
        }),
    };
    let task = tokio::spawn(run(hub.clone(), store, shutdown));
    (hub, task)
}

async fn run(hub: AlertHub, store: Store, shutdown: CancellationToken) {
    // Start listening before reading the position, so nothing committed in between is missed.
    let mut listener = listen(&store).await;
    let mut last = loop {
        match store.last_alert_event_id().await {
            Ok(id) => break id,
            Err(error) => {
                tracing::warn!(%error, "alert hub cannot read the event position; retrying");
                tokio::select! {
                    () = tokio::time::sleep(POLL) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        }
    };
    hub.inner.position.send_replace(last);
    loop {
        if let Err(error) = forward(&hub, &store, &mut last).await {
            tracing::warn!(%error, "alert hub cannot read new events; retrying");
        }
        tokio::select! {
            notified = next(&mut listener) => {
                if let Err(error) = notified {
                    tracing::warn!(%error, "alert event notifications interrupted; polling until they resume");
                    listener = None;
                }
            }
            () = tokio::time::sleep(POLL) => {
                if listener.is_none() {
                    listener = listen(&store).await;
                }
            }
            () = shutdown.cancelled() => break,
        }
    }
    tracing::debug!("alert hub stopped");
}

async fn listen(store: &Store) -> Option<AlertEventListener> {
    match store.listen_alert_events().await {
        Ok(listener) => Some(listener),
        Err(error) => {
            tracing::warn!(%error, "cannot LISTEN for alert events; polling");
            None
        }
    }
}

async fn next(listener: &mut Option<AlertEventListener>) -> Result<(), StorageError> {
    match listener {
        Some(l) => l.next().await,
        None => std::future::pending().await,
    }
}

/// Broadcasts every event after `last`, advancing it.
async fn forward(hub: &AlertHub, store: &Store, last: &mut i64) -> Result<(), StorageError> {
    loop {
        let events = store.alert_events_after(*last, BATCH).await?;
        let Some(newest) = events.last().map(|e| e.id) else {
            return Ok(());
        };
        for event in events {
            // No subscriber is fine: the events stay in the database.
            let _ = hub.inner.events.send(Arc::new(event));
        }
        *last = newest;
        hub.inner.position.send_replace(newest);
        hub.inner.arrived.notify_waiters();
    }
}

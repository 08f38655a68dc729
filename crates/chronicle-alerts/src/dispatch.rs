//! The delivery loop organizations' webhooks and users' own channels share: lease due
//! deliveries from the database, send each in a task of its own, at most one per destination
//! at a time (so a destination's deliveries go in order) and at most [`MAX_IN_FLIGHT`] in all,
//! each attempt bounded by its own timeout, so a slow or failing receiver holds up only its
//! own deliveries. New events wake the loop at once; retries come due by time.

use crate::hub::AlertHub;
use chronicle_storage::StorageError;
use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Deliveries in flight at most, across destinations.
pub const MAX_IN_FLIGHT: usize = 32;
/// How often to look for due deliveries without a new event (retries come due by time).
const POLL: Duration = Duration::from_millis(500);

/// A queue of deliveries in the database.
pub trait DeliveryQueue: Clone + Send + Sync + 'static {
    type Due: Send + 'static;
    /// What the log calls these deliveries.
    const WHAT: &'static str;
    /// The destination a delivery goes to (a webhook, a channel).
    fn destination(due: &Self::Due) -> Uuid;
    /// Leases up to `room` due deliveries, none to `busy` destinations.
    fn lease(
        &self,
        room: i64,
        busy: &[Uuid],
    ) -> impl Future<Output = Result<Vec<Self::Due>, StorageError>> + Send;
    /// One attempt, recorded (an error: not recorded, retried after its lease).
    fn deliver(&self, due: Self::Due) -> impl Future<Output = Result<(), StorageError>> + Send;
}

/// How long a lease lasts for attempts that take at most `timeout`: longer than the longest
/// attempt, so no delivery is sent twice at once.
pub fn lease_for(timeout: Duration) -> chrono::Duration {
    chrono::Duration::from_std(timeout * 2 + Duration::from_secs(5))
        .unwrap_or(chrono::Duration::seconds(60))
}

/// Runs `queue` until shutdown.
pub async fn run<Q: DeliveryQueue>(queue: Q, hub: AlertHub, shutdown: CancellationToken) {
    let mut running: JoinSet<Uuid> = JoinSet::new();
    let mut busy: HashSet<Uuid> = HashSet::new();
    loop {
        while let Some(done) = running.try_join_next() {
            if let Ok(destination) = done {
                busy.remove(&destination);
            }
        }
        let room = MAX_IN_FLIGHT.saturating_sub(running.len());
        let leased = if room == 0 {
            Vec::new()
        } else {
            let busy_now: Vec<Uuid> = busy.iter().copied().collect();
            match queue.lease(room as i64, &busy_now).await {
                Ok(due) => due,
                Err(error) => {
                    tracing::warn!(%error, what = Q::WHAT, "cannot lease deliveries; retrying");
                    Vec::new()
                }
            }
        };
        for due in leased {
            let destination = Q::destination(&due);
            busy.insert(destination);
            let queue = queue.clone();
            running.spawn(async move {
                if let Err(error) = queue.deliver(due).await {
                    tracing::warn!(%error, what = Q::WHAT, "delivery not recorded; retried after its lease");
                }
                destination
            });
        }
        tokio::select! {
            () = hub.arrived() => {}
            () = tokio::time::sleep(POLL) => {}
            Some(done) = running.join_next(), if !running.is_empty() => {
                if let Ok(destination) = done {
                    busy.remove(&destination);
                }
            }
            () = shutdown.cancelled() => break,
        }
    }
    running.abort_all();
    tracing::debug!(what = Q::WHAT, "dispatcher stopped");
}

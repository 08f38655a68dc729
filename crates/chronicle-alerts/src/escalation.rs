//! The escalation worker: every second, queues the escalation steps and reminder rounds that
//! came due for urgent alerts nobody has acknowledged (`Store::escalate_due`; the policies
//! are `chronicle_domain::alerts::escalation`). Every server runs it; each alert is leased
//! by one at a time.

use chronicle_storage::Store;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often to look: a step due at 10:00:00 goes out by 10:00:01.
const INTERVAL: Duration = Duration::from_secs(1);
/// Alerts looked at per transaction.
const BATCH: i64 = 100;

/// Runs until shutdown.
pub async fn run(store: Store, shutdown: CancellationToken) {
    loop {
        loop {
            match store.escalate_due(BATCH).await {
                Ok(n) if n as i64 == BATCH => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "escalation round failed; trying again next tick");
                    break;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(INTERVAL) => {}
            () = shutdown.cancelled() => break,
        }
    }
    tracing::debug!("escalation worker stopped");
}

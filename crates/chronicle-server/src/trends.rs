//! The trends follow-up consumer's loop: recompute the day rollups new readings made stale
//! (`Store::refresh_trends`), at once after each commit of this server's ingest and on a poll
//! for work queued by other servers or by zone and targets changes.

use chronicle_storage::Store;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often to look for work nobody signalled (other servers' ingests, rebuilds).
const POLL: Duration = Duration::from_secs(1);
/// Follow-up items (and rebuilds) taken per round.
const BATCH: i64 = 200;

pub async fn run(store: Store, mut enqueued: watch::Receiver<u64>, shutdown: CancellationToken) {
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut signalled = true;
    loop {
        while !shutdown.is_cancelled() {
            match store.refresh_trends(BATCH).await {
                Ok(report) if report.is_idle() => break,
                Ok(report) => tracing::debug!(
                    followups = report.followups,
                    rebuilds = report.rebuilds,
                    days = report.days,
                    "trend rollups updated"
                ),
                Err(e) => {
                    // The work stays queued; readers compute the stale days from raw readings
                    // meanwhile, so nothing is wrong, only slower.
                    tracing::warn!(error = %e, "trend rollups failed; retrying at the next poll");
                    break;
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = enqueued.changed(), if signalled => {
                // The ingest is gone (shutting down): poll only.
                signalled = changed.is_ok();
            }
            _ = poll.tick() => {}
        }
    }
}

//! The trends follow-up consumer's loop: recompute the day rollups new readings made stale
//! (`Store::refresh_trends`), soon after each commit of this server's ingest and on a poll
//! for work queued by other servers or by zone and targets changes.
//!
//! Rounds start at most once per [`SETTLE`]: the commits of that time join one round, so a
//! busy patient-day is recomputed once rather than once per commit, and the ingest and the
//! alert engine keep the CPU; while the rounds hold no current reading (a backlog draining)
//! they are spaced further, and while this process's ingest works through a backlog they
//! take at most half of the time. Reads stay exact meanwhile: they compute the days still
//! queued from the raw readings.

use chronicle_storage::{IngestBacklog, Store};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often to look for work nobody signalled (other servers' ingests, rebuilds).
const POLL: Duration = Duration::from_secs(1);
/// Follow-up items (and rebuilds) taken per round.
const BATCH: i64 = 200;
/// The least time between the starts of two rounds.
const SETTLE: Duration = Duration::from_secs(1);
/// The least pause after a round of the same run that held no current reading, or while this
/// process's ingest works through a backlog; the pause is as long as the round took if that
/// is longer. The rollups (which readers do not wait for) leave the ingest the database.
const BACKLOG_SPACING: Duration = Duration::from_millis(500);

pub async fn run(
    store: Store,
    mut enqueued: watch::Receiver<u64>,
    backlog: IngestBacklog,
    shutdown: CancellationToken,
) {
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut signalled = true;
    let mut last_round: Option<tokio::time::Instant> = None;
    loop {
        if let Some(last) = last_round {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep_until(last + SETTLE) => {}
            }
        }
        last_round = Some(tokio::time::Instant::now());
        loop {
            // A round in hand is dropped at shutdown: its transactions roll back and its
            // claim stays queued (claims complete only after the rollups commit).
            let started = tokio::time::Instant::now();
            let round = tokio::select! {
                () = shutdown.cancelled() => return,
                round = store.refresh_trends(BATCH) => round,
            };
            match round {
                Ok(report) if report.is_idle() => break,
                Ok(report) => {
                    tracing::debug!(
                        followups = report.followups,
                        rebuilds = report.rebuilds,
                        days = report.days,
                        current = report.current,
                        "trend rollups updated"
                    );
                    if report.followups > 0 && (!report.current || backlog.draining()) {
                        let pause = BACKLOG_SPACING.max(started.elapsed());
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = tokio::time::sleep(pause) => {}
                        }
                    }
                }
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

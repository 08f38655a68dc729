//! The rules that depend on the clock rather than on a new reading: `no_data` (a device
//! silent too long) and automatic resolution. Every server runs it; the per-patient lock
//! and the idempotent evaluation make running it twice harmless.

use crate::engine::{Scope, evaluate_measured};
use crate::metrics::AlertMetrics;
use crate::windows::ReadingWindows;
use chronicle_storage::{StorageError, Store};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs the time checks every `interval` until shutdown.
pub async fn run(
    store: Store,
    interval: Duration,
    metrics: AlertMetrics,
    shutdown: CancellationToken,
) {
    loop {
        // A tick in hand is dropped at shutdown, like the engine's rounds.
        let ticked = tokio::select! {
            () = shutdown.cancelled() => break,
            ticked = tick(&store, &metrics) => ticked,
        };
        if let Err(error) = ticked {
            tracing::warn!(%error, "alert time checks failed; trying again next tick");
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => break,
        }
    }
    tracing::debug!("alert scheduler stopped");
}

/// One round: every patient whose alerts may have changed with the time.
pub async fn tick(store: &Store, metrics: &AlertMetrics) -> Result<usize, StorageError> {
    let patients = store.patients_due_for_time_checks().await?;
    let batch: Vec<(uuid::Uuid, Scope)> =
        patients.iter().map(|p| (*p, Scope::time_only())).collect();
    for chunk in batch.chunks(100) {
        // Time checks read no readings, so they hold no windows.
        evaluate_measured(store, &ReadingWindows::new(0), chunk, metrics).await?;
    }
    Ok(patients.len())
}

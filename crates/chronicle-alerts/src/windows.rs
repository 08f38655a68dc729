//! Each patient's recent readings as this process last evaluated them, so that the next
//! evaluation reads from the database only the newly stored readings instead of the rules'
//! whole lookback (`chronicle_domain::alerts::window`).
//!
//! Held windows are exact only while nobody else evaluated the patient: with several servers
//! another one may have claimed some of the patient's follow-up work, and its readings are
//! not in this process's windows. Every evaluation for new readings raises the patient's
//! generation in the database under the patient's lock
//! ([`next_generations`](chronicle_storage::alerts::AlertEvaluation::next_generations)); a
//! window is used only when it belongs to the generation just before the new one, and is
//! rebuilt from stored data otherwise (at start, after another server's evaluation, after a
//! failed one). The most recently evaluated patients are kept, up to a capacity.

use chronicle_domain::alerts::rules::{GlucosePoint, PressurePoint};
use chronicle_domain::alerts::window::{GLUCOSE_KEEP, PRESSURE_KEEP, ReadingWindow};
use chronicle_storage::Store;
use chronicle_storage::records::Erasure;
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One patient's windows, and the evaluation generation they are exact for.
#[derive(Debug, Default)]
pub(crate) struct PatientWindows {
    generation: i64,
    pub(crate) glucose: ReadingWindow<GlucosePoint>,
    pub(crate) pressure: ReadingWindow<PressurePoint>,
}

/// The windows of the patients this process evaluated most recently.
#[derive(Debug)]
pub struct ReadingWindows {
    /// `None`: keep none (every evaluation reads the whole lookback).
    held: Option<Mutex<LruCache<Uuid, PatientWindows>>>,
}

impl ReadingWindows {
    /// Keeps the windows of up to `patients` patients; 0 keeps none.
    pub fn new(patients: usize) -> ReadingWindows {
        ReadingWindows {
            held: NonZeroUsize::new(patients).map(|n| Mutex::new(LruCache::new(n))),
        }
    }

    /// How many patients' windows are held.
    pub fn len(&self) -> usize {
        self.held.as_ref().map_or(0, |held| lock(held).len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes out the patient's windows for an evaluation whose new generation is
    /// `generation`: the held ones if nobody evaluated the patient since they were put back,
    /// empty ones (to be filled from stored data) otherwise.
    pub(crate) fn take(&self, patient_id: Uuid, generation: Option<i64>) -> PatientWindows {
        let held = self
            .held
            .as_ref()
            .and_then(|held| lock(held).pop(&patient_id));
        match (held, generation) {
            (Some(windows), Some(new)) if windows.generation == new - 1 => windows,
            _ => PatientWindows::default(),
        }
    }

    /// Drops what is held of an erased patient.
    pub fn forget(&self, patient_id: Uuid) {
        if let Some(held) = &self.held {
            lock(held).pop(&patient_id);
        }
    }

    /// Drops everything held (erasures may have been missed).
    pub fn forget_all(&self) {
        if let Some(held) = &self.held {
            lock(held).clear();
        }
    }

    /// Puts the windows back after the evaluation of `generation` committed, trimmed to what
    /// the next evaluation may need.
    pub(crate) fn put(&self, patient_id: Uuid, generation: i64, mut windows: PatientWindows) {
        let Some(held) = &self.held else {
            return;
        };
        windows.generation = generation;
        windows.glucose.trim(GLUCOSE_KEEP);
        windows.pressure.trim(PRESSURE_KEEP);
        lock(held).put(patient_id, windows);
    }
}

/// The cache's lock; a panic while holding it leaves nothing half-written (each call takes or
/// puts one entry), so a poisoned lock is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Drops an erased patient's windows as soon as any server announces the erasure, and all
/// of them whenever announcements may have been missed, until shutdown.
pub(crate) async fn forget_erased(
    store: Store,
    windows: Arc<ReadingWindows>,
    shutdown: CancellationToken,
) {
    let mut erasures = store.erasure_listener();
    loop {
        let erasure = tokio::select! {
            () = shutdown.cancelled() => return,
            erasure = erasures.next() => erasure,
        };
        match erasure {
            Erasure::Patient(patient_id) => windows.forget(patient_id),
            Erasure::Missed => windows.forget_all(),
        }
    }
}

//! Readings this process's ingest stored, handed to its own alert engine in memory, so that an
//! evaluation need not read back from the database what the process wrote a moment before.
//!
//! The ingest numbers its writes. Each write's follow-up rows name this process (`writer`)
//! and the write's number; when the write's statement has committed, the ingest hands the
//! readings it stored here as the rules take them (exactly as the database returns them:
//! the statement's own `now()` gives their receipt). An evaluation of a patient takes what was
//! handed for them since its last evaluation, and may trust that to be complete only when
//! - every write whose follow-up work it evaluates was handed over ([`Handed::writes_handed`]:
//!   a write whose statement committed but whose readings are not here yet, or whose outcome
//!   is unknown, is not),
//! - nothing handed since the patient's last evaluation was dropped ([`Handed::generation`]:
//!   readings wait here at most [`PENDING_LIMIT`] in all; beyond, all are dropped at once),
//! - and no follow-up work of another writer waits
//!   ([`crate::alerts::AlertEvaluation::work_of_other_writers_queued`]): readings another
//!   process (or a tool with its own connection) stored are only in the database.
//!
//! Otherwise the evaluation reads the stored readings as it always did. Either way the
//! handed readings are merged too: they are stored readings, so merging them is idempotent.

use chronicle_domain::alerts::rules::{GlucosePoint, PressurePoint};
use chronicle_domain::sync::lock;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Most readings handed over and not yet taken, over all patients. Taken within a round
/// normally; an engine that fell behind (a backlog drained after an outage) or that does not
/// evaluate the patients this process stores (another server claims their work) would
/// otherwise let them pile up.
pub const PENDING_LIMIT: usize = 100_000;
/// How many of the latest writes are remembered as handed over. Follow-up work of an older
/// write (a backlog) is evaluated from the database.
const HANDED_WRITES_KEPT: usize = 65_536;

/// The hand-over between one process's ingest and its alert engine (cheap to clone).
#[derive(Debug, Clone)]
pub struct ReadingHandoff {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    writer: Uuid,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_write: u64,
    /// The writes whose readings were handed over, the latest [`HANDED_WRITES_KEPT`].
    handed: HashSet<u64>,
    handed_order: VecDeque<u64>,
    pending: HashMap<Uuid, HandedReadings>,
    pending_readings: usize,
    /// Raised whenever handed readings were dropped before being taken.
    generation: u64,
}

impl State {
    /// Drops every reading that waits, and with them what says a write was handed over.
    fn drop_all(&mut self) {
        self.pending.clear();
        self.pending_readings = 0;
        self.handed.clear();
        self.handed_order.clear();
        self.generation += 1;
    }
}

/// One patient's readings handed over, not yet taken.
#[derive(Debug, Default)]
pub struct HandedReadings {
    pub glucose: Vec<GlucosePoint>,
    pub pressure: Vec<PressurePoint>,
}

impl HandedReadings {
    fn len(&self) -> usize {
        self.glucose.len() + self.pressure.len()
    }
}

/// What an evaluation takes for one patient.
#[derive(Debug, Default)]
pub struct Handed {
    pub readings: HandedReadings,
    /// Whether every write the evaluation named was handed over.
    pub writes_handed: bool,
    /// Equal to the generation of the patient's previous take only if nothing handed over
    /// since was dropped.
    pub generation: u64,
}

/// A stored reading of one patient, as handed over.
#[derive(Debug)]
pub enum HandedPoint {
    Glucose(GlucosePoint),
    Pressure(PressurePoint),
}

impl Default for ReadingHandoff {
    fn default() -> Self {
        ReadingHandoff::new()
    }
}

impl ReadingHandoff {
    pub fn new() -> ReadingHandoff {
        ReadingHandoff {
            shared: Arc::new(Shared {
                writer: Uuid::new_v4(),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// This process as its follow-up rows name it.
    pub fn writer(&self) -> Uuid {
        self.shared.writer
    }

    /// The number of a write about to be made (the batch write asks).
    pub fn next_write(&self) -> u64 {
        let mut state = lock(&self.shared.state);
        state.next_write += 1;
        state.next_write
    }

    /// The readings `write` stored, after its statement committed (the batch write hands
    /// them over).
    pub fn hand_over(&self, write: u64, stored: impl IntoIterator<Item = (Uuid, HandedPoint)>) {
        let mut state = lock(&self.shared.state);
        let state = &mut *state;
        for (patient, point) in stored {
            if state.pending_readings >= PENDING_LIMIT {
                tracing::debug!(
                    readings = state.pending_readings,
                    "readings handed to the alert engine dropped: it reads them back"
                );
                state.drop_all();
                // This write's readings are not all here: it does not count as handed.
                return;
            }
            let readings = state.pending.entry(patient).or_default();
            match point {
                HandedPoint::Glucose(p) => readings.glucose.push(p),
                HandedPoint::Pressure(p) => readings.pressure.push(p),
            }
            state.pending_readings += 1;
        }
        if state.handed_order.len() >= HANDED_WRITES_KEPT
            && let Some(oldest) = state.handed_order.pop_front()
        {
            state.handed.remove(&oldest);
        }
        state.handed.insert(write);
        state.handed_order.push_back(write);
    }

    /// Takes what was handed over for `patient`, and whether each of `writes` was.
    pub fn take(&self, patient: Uuid, writes: &[u64]) -> Handed {
        let mut state = lock(&self.shared.state);
        let readings = state.pending.remove(&patient).unwrap_or_default();
        state.pending_readings -= readings.len();
        Handed {
            readings,
            writes_handed: writes.iter().all(|w| state.handed.contains(w)),
            generation: state.generation,
        }
    }

    /// Drops everything that waits, and what says which writes were handed over: erasures
    /// may have been missed, or a write may have stored readings that were not handed over.
    pub fn forget_all(&self) {
        let mut state = lock(&self.shared.state);
        state.drop_all();
    }

    /// Drops what waits for an erased patient.
    pub fn forget(&self, patient: Uuid) {
        let mut state = lock(&self.shared.state);
        if let Some(readings) = state.pending.remove(&patient) {
            state.pending_readings -= readings.len();
        }
    }
}

/// A time as PostgreSQL stores it: whole microseconds, cut toward 2000-01-01 as the driver
/// encodes it.
pub(crate) fn as_stored(at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let epoch = DateTime::from_timestamp(946_684_800, 0)?;
    let micros = (at - epoch).num_microseconds()?;
    epoch.checked_add_signed(TimeDelta::microseconds(micros))
}

/// The receipt the reading tables keep for a reading measured at `measured_at` (as stored)
/// and stored by a statement that began at `stored_at`: whole seconds after measurement,
/// rounded half away from zero (`received_after_seconds` in the schema).
pub(crate) fn stored_receipt(
    measured_at: DateTime<Utc>,
    stored_at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let micros = (stored_at - measured_at).num_microseconds()?;
    let half = if micros < 0 { -500_000 } else { 500_000 };
    let seconds = ((micros + half) / 1_000_000).clamp(i64::from(i32::MIN), i64::from(i32::MAX));
    measured_at.checked_add_signed(TimeDelta::seconds(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronicle_domain::GlucoseSource;

    fn point(second: i64) -> HandedPoint {
        let at = DateTime::from_timestamp(second, 0).expect("time");
        HandedPoint::Glucose(GlucosePoint {
            device_id: "cgm".into(),
            measured_at: at,
            received_at: at,
            value_mg_dl: 100.0,
            source: GlucoseSource::Cgm,
            flag: None,
        })
    }

    #[test]
    fn a_patient_takes_what_was_handed_once_and_learns_which_writes_were() {
        let handoff = ReadingHandoff::new();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let first = handoff.next_write();
        let second = handoff.next_write();
        handoff.hand_over(first, [(a, point(10)), (b, point(10)), (a, point(20))]);
        let taken = handoff.take(a, &[first]);
        assert_eq!(taken.readings.glucose.len(), 2);
        assert!(taken.writes_handed);
        // The second write committed but is not handed over yet.
        assert!(!handoff.take(b, &[first, second]).writes_handed);
        assert!(handoff.take(a, &[]).readings.glucose.is_empty());
        handoff.forget(b);
        assert_eq!(lock(&handoff.shared.state).pending_readings, 0);
    }

    #[test]
    fn readings_beyond_the_limit_are_all_dropped_and_the_generation_says_so() {
        let handoff = ReadingHandoff::new();
        let patient = Uuid::from_u128(1);
        let before = handoff.take(patient, &[]).generation;
        let first = handoff.next_write();
        handoff.hand_over(
            first,
            (0..PENDING_LIMIT as i64).map(|s| (patient, point(s))),
        );
        let overflowing = handoff.next_write();
        handoff.hand_over(overflowing, [(patient, point(-1))]);
        let taken = handoff.take(patient, &[first]);
        assert!(taken.readings.glucose.is_empty());
        assert_ne!(taken.generation, before);
        assert!(!taken.writes_handed, "nothing is remembered as handed");
        assert!(!handoff.take(patient, &[overflowing]).writes_handed);
    }

    #[test]
    fn stored_times_are_whole_microseconds_and_receipts_whole_seconds() {
        let at = DateTime::parse_from_rfc3339("2026-12-07T10:00:00.123456789Z")
            .expect("time")
            .with_timezone(&Utc);
        let stored = as_stored(at).expect("in range");
        assert_eq!(stored.timestamp_subsec_nanos(), 123_456_000);
        let old = DateTime::parse_from_rfc3339("1999-12-31T23:59:59.5000005Z")
            .expect("time")
            .with_timezone(&Utc);
        // Before 2000 the driver cuts toward 2000.
        assert_eq!(
            as_stored(old).expect("in range").timestamp_subsec_nanos(),
            500_001_000
        );
        let half = stored + TimeDelta::milliseconds(2_500);
        assert_eq!(
            stored_receipt(stored, half),
            Some(stored + TimeDelta::seconds(3))
        );
        let early = stored - TimeDelta::milliseconds(2_500);
        assert_eq!(
            stored_receipt(stored, early),
            Some(stored - TimeDelta::seconds(3))
        );
    }
}

//! Each patient's recent readings as this process last evaluated them, so that the next
//! evaluation reads from the database only the newly stored readings instead of the rules'
//! whole lookback (`chronicle_domain::alerts::window`).
//!
//! Held windows are exact only while nobody else evaluated the patient: with several servers
//! another one may have claimed some of the patient's follow-up work, and its readings are
//! not in this process's windows. Every evaluation for new readings records, under the
//! patient's lock, which engine evaluated the patient last
//! ([`take_over_patients`](chronicle_storage::alerts::AlertEvaluation::take_over_patients):
//! a write only when that changes). A window is used only when this engine was the last, and
//! only if it was put back by the evaluation that took it out last in this process (two
//! evaluations of one patient here may overlap between one's commit and its putting back);
//! otherwise it is rebuilt from stored data (at start, after another server's evaluation,
//! after a failed one). The most recently evaluated patients are kept, up to a capacity.
//!
//! Between evaluations a window is held compact ([`HeldWindows`]): a glucose reading in 16
//! bytes and each device id once, instead of about 110 bytes a reading as the rules take it.
//! A patient with a 5-minute CGM then costs about 1 KB, so one process holds the windows of a
//! million patients in about 1 GB, and every evaluation reads only the new readings.

use chronicle_domain::alerts::rules::{GlucosePoint, PressurePoint};
use chronicle_domain::alerts::window::{GLUCOSE_KEEP, PRESSURE_KEEP, ReadingWindow};
use chronicle_domain::sync::lock;
use chronicle_domain::{GlucoseFlag, GlucoseSource};
use chronicle_storage::records::Erasure;
use chronicle_storage::{FinishedWrites, Store};
use chrono::{DateTime, Duration, Utc};
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One patient's windows, as an evaluation uses them.
#[derive(Debug, Default)]
pub(crate) struct PatientWindows {
    pub(crate) glucose: ReadingWindow<GlucosePoint>,
    pub(crate) pressure: ReadingWindow<PressurePoint>,
    /// The glucose readings the evaluation that put the windows back evaluated.
    pub(crate) glucose_evaluated: Option<Evaluated>,
}

/// The glucose readings one committed evaluation evaluated: every stored one measured from
/// `from` on that a transaction in `finished` stored. Its read returned them all (it began
/// after those transactions finished, and read from `from` or earlier) and its rules judged
/// each with the whole lookback before it. An engine that is behind its queue reads ahead of
/// it: the follow-up work for readings such an evaluation covered is already done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Evaluated {
    pub(crate) finished: Arc<FinishedWrites>,
    pub(crate) from: DateTime<Utc>,
}

impl Evaluated {
    /// Whether the readings transaction `written_by` stored, measured from `first` on, were
    /// evaluated.
    pub(crate) fn covers(&self, written_by: i64, first: DateTime<Utc>) -> bool {
        first >= self.from && self.finished.include(written_by)
    }
}

/// The windows of the patients this process evaluated most recently.
#[derive(Debug)]
pub struct ReadingWindows {
    /// This engine, as the database records which engine evaluated a patient last.
    engine: Uuid,
    /// `None`: keep none (every evaluation reads the whole lookback).
    held: Option<Mutex<LruCache<Uuid, HeldPatient>>>,
    /// The ticket of the next [`ReadingWindows::take`].
    next_ticket: AtomicU64,
}

/// What is kept of one patient: the ticket of the last evaluation that took the windows out,
/// and the windows that evaluation put back (none while it runs).
#[derive(Debug)]
struct HeldPatient {
    ticket: u64,
    windows: Option<HeldWindows>,
}

/// The claim of one evaluation on a patient's windows: only the evaluation that took them out
/// last may put them back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowTicket(u64);

impl ReadingWindows {
    /// Keeps the windows of up to `patients` patients; 0 keeps none.
    pub fn new(patients: usize) -> ReadingWindows {
        ReadingWindows {
            engine: Uuid::new_v4(),
            held: NonZeroUsize::new(patients).map(|n| Mutex::new(LruCache::new(n))),
            next_ticket: AtomicU64::new(0),
        }
    }

    /// This engine's identity, recorded with the patients it evaluates.
    pub fn engine(&self) -> Uuid {
        self.engine
    }

    /// How many patients' windows are held (walks them all: for tests).
    pub fn len(&self) -> usize {
        self.held.as_ref().map_or(0, |held| {
            lock(held)
                .iter()
                .filter(|(_, patient)| patient.windows.is_some())
                .count()
        })
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes out the patient's windows for an evaluation that holds the patient's lock:
    /// the held ones if this engine `evaluated_last` (nobody else evaluated the patient since
    /// they were put back), empty ones (to be filled from stored data) otherwise. Only the
    /// returned ticket may put them back.
    pub(crate) fn take(
        &self,
        patient_id: Uuid,
        evaluated_last: bool,
    ) -> (WindowTicket, PatientWindows) {
        let ticket = WindowTicket(self.next_ticket.fetch_add(1, Ordering::Relaxed));
        let Some(held) = &self.held else {
            return (ticket, PatientWindows::default());
        };
        let taking = HeldPatient {
            ticket: ticket.0,
            windows: None,
        };
        let previous = lock(held).put(patient_id, taking).and_then(|p| p.windows);
        let windows = match previous {
            Some(windows) if evaluated_last => windows.expand().unwrap_or_default(),
            _ => PatientWindows::default(),
        };
        (ticket, windows)
    }

    /// What the evaluation that put the patient's windows back evaluated (`None` while an
    /// evaluation has them out, or when none is held). True whatever happened since: another
    /// engine evaluating the patient adds evaluations, it does not undo that one.
    pub(crate) fn evaluated(&self, patient_id: Uuid) -> Option<Evaluated> {
        let held = self.held.as_ref()?;
        lock(held)
            .peek(&patient_id)?
            .windows
            .as_ref()?
            .glucose_evaluated
            .clone()
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

    /// Puts the windows back after the evaluation that took them out with `ticket`
    /// committed, trimmed to what the next evaluation may need. Nothing is held if another
    /// evaluation took the patient's windows out since (it started after this one's commit
    /// and before this: these windows lack what it evaluates), or the patient was forgotten.
    pub(crate) fn put(&self, patient_id: Uuid, ticket: WindowTicket, mut windows: PatientWindows) {
        let Some(held) = &self.held else {
            return;
        };
        windows.glucose.trim(GLUCOSE_KEEP);
        windows.pressure.trim(PRESSURE_KEEP);
        // A window that does not fit the compact form is not held: the next evaluation
        // reads the lookback from the database. Compacted before taking the lock, which every
        // evaluation takes.
        let compact = HeldWindows::compact(windows);
        if let Some(patient) = lock(held).get_mut(&patient_id)
            && patient.ticket == ticket.0
        {
            patient.windows = compact;
        }
    }
}

/// A patient's windows as held between evaluations.
#[derive(Debug)]
struct HeldWindows {
    /// The ids of the devices of the held readings, each once.
    devices: Box<[Box<str>]>,
    glucose_from: Option<DateTime<Utc>>,
    glucose: Box<[HeldGlucose]>,
    pressure_from: Option<DateTime<Utc>>,
    pressure: Box<[HeldPressure]>,
    glucose_evaluated: Option<Evaluated>,
}

/// A held glucose reading: exactly a stored one (thousandths of mg/dL, receipt in whole
/// seconds after measurement, as the reading tables keep them).
#[derive(Debug, Clone, Copy)]
struct HeldGlucose {
    measured_at_us: i64,
    received_after_s: i32,
    /// Bits 0-19 the value in thousandths of mg/dL, 20-21 the source, 22-23 the flag, 24-31
    /// the device's index in [`HeldWindows::devices`].
    packed: u32,
}

/// A held blood-pressure reading.
#[derive(Debug, Clone, Copy)]
struct HeldPressure {
    measured_at_us: i64,
    received_after_s: i32,
    systolic: u16,
    diastolic: u16,
    device: u8,
}

const VALUE_BITS: u32 = 20;

impl HeldWindows {
    /// The compact form of `windows`; `None` when a reading does not fit it exactly.
    fn compact(windows: PatientWindows) -> Option<HeldWindows> {
        let mut devices: Vec<Box<str>> = Vec::new();
        let (glucose_from, glucose) = windows.glucose.into_parts();
        let (pressure_from, pressure) = windows.pressure.into_parts();
        let glucose_evaluated = windows.glucose_evaluated;
        let glucose = glucose
            .iter()
            .map(|point| {
                let (measured_at_us, received_after_s) =
                    held_times(point.measured_at, point.received_at)?;
                let milli = (point.value_mg_dl * 1000.0).round();
                if !(0.0..f64::from(1u32 << VALUE_BITS)).contains(&milli) {
                    return None;
                }
                let milli = milli as u32;
                if (f64::from(milli) / 1000.0).to_bits() != point.value_mg_dl.to_bits() {
                    return None;
                }
                let source = u32::from(point.source.code());
                let flag = u32::from(GlucoseFlag::code(point.flag));
                let device = device_index(&mut devices, &point.device_id)?;
                Some(HeldGlucose {
                    measured_at_us,
                    received_after_s,
                    packed: milli
                        | source << VALUE_BITS
                        | flag << (VALUE_BITS + 2)
                        | u32::from(device) << 24,
                })
            })
            .collect::<Option<Box<[_]>>>()?;
        let pressure = pressure
            .iter()
            .map(|point| {
                let (measured_at_us, received_after_s) =
                    held_times(point.measured_at, point.received_at)?;
                Some(HeldPressure {
                    measured_at_us,
                    received_after_s,
                    systolic: point.systolic,
                    diastolic: point.diastolic,
                    device: device_index(&mut devices, &point.device_id)?,
                })
            })
            .collect::<Option<Box<[_]>>>()?;
        Some(HeldWindows {
            devices: devices.into_boxed_slice(),
            glucose_from,
            glucose,
            pressure_from,
            pressure,
            glucose_evaluated,
        })
    }

    /// The windows as an evaluation uses them (`None` only if the held form is damaged).
    fn expand(self) -> Option<PatientWindows> {
        let device = |index: u32| -> Option<String> {
            self.devices
                .get(usize::try_from(index).ok()?)
                .map(|id| id.to_string())
        };
        let glucose = self
            .glucose
            .iter()
            .map(|held| {
                let (measured_at, received_at) =
                    point_times(held.measured_at_us, held.received_after_s)?;
                let source = GlucoseSource::from_code(((held.packed >> VALUE_BITS) & 3) as u8)?;
                let flag = GlucoseFlag::from_code(((held.packed >> (VALUE_BITS + 2)) & 3) as u8)?;
                Some(GlucosePoint {
                    device_id: device(held.packed >> 24)?,
                    measured_at,
                    received_at,
                    value_mg_dl: f64::from(held.packed & ((1 << VALUE_BITS) - 1)) / 1000.0,
                    source,
                    flag,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let pressure = self
            .pressure
            .iter()
            .map(|held| {
                let (measured_at, received_at) =
                    point_times(held.measured_at_us, held.received_after_s)?;
                Some(PressurePoint {
                    device_id: device(u32::from(held.device))?,
                    measured_at,
                    received_at,
                    systolic: held.systolic,
                    diastolic: held.diastolic,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(PatientWindows {
            glucose: ReadingWindow::from_parts(self.glucose_from, glucose),
            pressure: ReadingWindow::from_parts(self.pressure_from, pressure),
            glucose_evaluated: self.glucose_evaluated,
        })
    }
}

/// A reading's measurement (microseconds) and receipt (whole seconds after it), if exact.
fn held_times(measured_at: DateTime<Utc>, received_at: DateTime<Utc>) -> Option<(i64, i32)> {
    let measured_at_us = measured_at.timestamp_micros();
    let received_after_s = i32::try_from((received_at - measured_at).num_seconds()).ok()?;
    let exact = point_times(measured_at_us, received_after_s) == Some((measured_at, received_at));
    exact.then_some((measured_at_us, received_after_s))
}

fn point_times(
    measured_at_us: i64,
    received_after_s: i32,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let measured_at = DateTime::from_timestamp_micros(measured_at_us)?;
    let received_at = measured_at.checked_add_signed(Duration::seconds(received_after_s.into()))?;
    Some((measured_at, received_at))
}

/// The index of `device_id` among the held devices, added if new; `None` past 256 devices.
fn device_index(devices: &mut Vec<Box<str>>, device_id: &str) -> Option<u8> {
    let index = match devices.iter().position(|held| **held == *device_id) {
        Some(index) => index,
        None => {
            devices.push(device_id.into());
            devices.len() - 1
        }
    };
    u8::try_from(index).ok()
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0)
            .single()
            .unwrap_or_default()
            + Duration::minutes(minute)
    }

    fn glucose(device: &str, minute: i64, value_mg_dl: f64) -> GlucosePoint {
        GlucosePoint {
            device_id: device.to_string(),
            measured_at: at(minute),
            received_at: at(minute) + Duration::seconds(7),
            value_mg_dl,
            source: GlucoseSource::Cgm,
            flag: None,
        }
    }

    fn windows_of(glucose: Vec<GlucosePoint>, pressure: Vec<PressurePoint>) -> PatientWindows {
        PatientWindows {
            glucose: ReadingWindow::from_parts(Some(at(-180)), glucose),
            pressure: ReadingWindow::from_parts(Some(at(-12_000)), pressure),
            glucose_evaluated: Some(Evaluated {
                finished: Arc::new(FinishedWrites::parse("5:9:7").expect("a snapshot")),
                from: at(-1),
            }),
        }
    }

    /// A window as its parts, to compare.
    type Parts<P> = (Option<DateTime<Utc>>, Vec<P>);

    fn parts(
        windows: PatientWindows,
    ) -> (Parts<GlucosePoint>, Parts<PressurePoint>, Option<Evaluated>) {
        (
            windows.glucose.into_parts(),
            windows.pressure.into_parts(),
            windows.glucose_evaluated,
        )
    }

    #[test]
    fn a_held_window_comes_back_exactly_as_it_was_put() {
        let mut meter = glucose("meter-1", 3, 5.6 * 18.016);
        meter.source = GlucoseSource::Meter;
        meter.value_mg_dl = 100.889;
        let mut lo = glucose("cgm-1", 5, 40.0);
        lo.flag = Some(GlucoseFlag::Lo);
        let mut lab = glucose("lab", 6, 999.999);
        lab.source = GlucoseSource::Lab;
        lab.flag = Some(GlucoseFlag::Hi);
        lab.received_at = lab.measured_at + Duration::days(40);
        let readings = vec![
            glucose("cgm-1", 0, 101.5),
            meter,
            lo,
            lab,
            glucose("cgm-1", 10, 0.001),
        ];
        let pressure = vec![PressurePoint {
            device_id: "cuff".to_string(),
            measured_at: at(-2_000),
            received_at: at(-2_000) - Duration::seconds(3),
            systolic: 142,
            diastolic: 91,
        }];
        let expected = parts(windows_of(readings.clone(), pressure.clone()));

        let windows = ReadingWindows::new(10);
        let patient = Uuid::from_u128(1);
        let (ticket, _) = windows.take(patient, false);
        assert_eq!(windows.evaluated(patient), None, "out for an evaluation");
        windows.put(
            patient,
            ticket,
            windows_of(readings.clone(), pressure.clone()),
        );
        assert_eq!(windows.len(), 1);
        assert_eq!(
            windows.evaluated(patient),
            windows_of(readings, pressure).glucose_evaluated,
            "what the evaluation that put them back evaluated"
        );
        let (_, back) = windows.take(patient, true);
        assert_eq!(parts(back), expected);
        assert!(windows.is_empty(), "taking a window takes it out");
    }

    /// Puts `windows` back as an evaluation that took the patient out does.
    fn hold(windows: &ReadingWindows, patient: Uuid, held: PatientWindows) {
        let (ticket, _) = windows.take(patient, false);
        windows.put(patient, ticket, held);
    }

    #[test]
    fn a_window_is_not_used_after_another_engine_evaluated_the_patient() {
        let windows = ReadingWindows::new(10);
        let patient = Uuid::from_u128(1);
        hold(
            &windows,
            patient,
            windows_of(vec![glucose("cgm", 0, 120.0)], Vec::new()),
        );
        let (_, back) = windows.take(patient, false);
        assert_eq!(back.glucose.covered_from(), None);
        assert!(back.glucose.is_empty());
    }

    #[test]
    fn only_the_evaluation_that_took_a_window_out_last_puts_it_back() {
        let windows = ReadingWindows::new(10);
        let patient = Uuid::from_u128(1);
        let (first, _) = windows.take(patient, true);
        // The first evaluation committed, and a second one took the patient out before the
        // first put its windows back: they lack what the second evaluates.
        let (second, _) = windows.take(patient, true);
        windows.put(
            patient,
            first,
            windows_of(vec![glucose("cgm", 0, 120.0)], Vec::new()),
        );
        assert!(windows.is_empty(), "the overtaken evaluation's windows");
        let both = vec![glucose("cgm", 0, 120.0), glucose("cgm", 5, 118.0)];
        windows.put(patient, second, windows_of(both.clone(), Vec::new()));
        let (_, back) = windows.take(patient, true);
        assert_eq!(back.glucose.into_parts().1, both);

        // Nor after the patient was forgotten (erased) meanwhile.
        let (ticket, _) = windows.take(patient, true);
        windows.forget(patient);
        windows.put(patient, ticket, windows_of(both, Vec::new()));
        assert!(windows.is_empty(), "an erased patient's windows");
    }

    #[test]
    fn a_reading_that_does_not_fit_exactly_is_not_held() {
        let mut finer_value = glucose("cgm", 0, 120.0001);
        let mut finer_receipt = glucose("cgm", 5, 120.0);
        finer_receipt.received_at += Duration::milliseconds(1);
        let too_high = glucose("cgm", 10, 1_048.576);
        for point in [finer_value.clone(), finer_receipt, too_high] {
            let windows = ReadingWindows::new(10);
            hold(
                &windows,
                Uuid::from_u128(1),
                windows_of(vec![point.clone()], Vec::new()),
            );
            assert!(windows.is_empty(), "{point:?} was held");
        }
        // Microseconds of measurement are kept exactly.
        finer_value.value_mg_dl = 120.0;
        finer_value.measured_at += Duration::microseconds(17);
        finer_value.received_at = finer_value.measured_at + Duration::seconds(2);
        let windows = ReadingWindows::new(10);
        hold(
            &windows,
            Uuid::from_u128(1),
            windows_of(vec![finer_value.clone()], Vec::new()),
        );
        let (_, glucose) = windows
            .take(Uuid::from_u128(1), true)
            .1
            .glucose
            .into_parts();
        assert_eq!(glucose, vec![finer_value]);
    }

    #[test]
    fn a_held_glucose_reading_takes_16_bytes() {
        assert_eq!(std::mem::size_of::<HeldGlucose>(), 16);
        assert!(std::mem::size_of::<GlucosePoint>() >= 64);
    }

    /// The resident memory one held patient costs: a 5-minute CGM's 3 h 15 min (40 readings),
    /// for 200,000 patients. Measured from the process's RSS, so it runs alone and only when
    /// asked (docs/benchmarks.md): `cargo test --release -p chronicle-alerts --lib
    /// memory_per_held_patient -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement of the process's RSS; run alone"]
    fn memory_per_held_patient() {
        fn resident_bytes() -> u64 {
            let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
            let pages = statm
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok());
            pages.unwrap_or(0) * 4096
        }
        const PATIENTS: u32 = 200_000;
        let before = resident_bytes();
        let windows = ReadingWindows::new(PATIENTS as usize);
        for patient in 0..PATIENTS {
            let device = format!("dev_bench_c{patient:07}");
            let readings = (0..40)
                .map(|i| glucose(&device, 5 * i, 100.0 + i as f64))
                .collect();
            hold(
                &windows,
                Uuid::from_u128(patient.into()),
                windows_of(readings, Vec::new()),
            );
        }
        assert_eq!(windows.len(), PATIENTS as usize);
        let each = (resident_bytes() - before) / u64::from(PATIENTS);
        println!("{each} bytes of RSS a held patient (40 CGM readings)");
        assert!(each <= 1024, "{each} bytes a held patient");
    }
}

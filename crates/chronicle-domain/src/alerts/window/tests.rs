//! Evaluation from a window held between evaluations gives what evaluation from all stored
//! data gives, whatever order, lateness and redelivery the readings arrive with.

use super::*;
use crate::alerts::rules::{glucose_timelines, pressure_timelines, revealed_silences};
use crate::alerts::thresholds::AlertThresholds;
use crate::reading::GlucoseSource;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("time")
}

/// One generated reading: which kind and device, when it was measured, how late it arrives,
/// its value, and whether the broker delivers it a second time.
#[derive(Debug, Clone)]
struct Arrival {
    glucose: Option<GlucosePoint>,
    pressure: Option<PressurePoint>,
    received_at: DateTime<Utc>,
    redelivered_after: Option<Duration>,
}

fn delay() -> impl Strategy<Value = Duration> {
    prop_oneof![
        8 => (0i64..30).prop_map(Duration::seconds),
        2 => (1i64..60).prop_map(Duration::minutes),
        1 => (1i64..30).prop_map(Duration::hours),
        1 => (1i64..12).prop_map(Duration::days),
    ]
}

/// A CGM every 5 minutes (with holes), a meter now and then, and a cuff a few times a day,
/// over `days` days, values wandering through every range the rules judge.
fn series() -> impl Strategy<Value = Vec<Arrival>> {
    let cgm = proptest::collection::vec(
        (
            40.0f64..350.0,
            any::<bool>(),
            delay(),
            proptest::option::weighted(0.05, delay()),
        ),
        50..400,
    );
    let meter = proptest::collection::vec((0i64..2000, 30.0f64..400.0, delay()), 0..8);
    let cuff =
        proptest::collection::vec((0i64..14 * 24 * 60, 70u16..200, 40u16..125, delay()), 0..20);
    (cgm, meter, cuff).prop_map(|(cgm, meter, cuff)| {
        let mut out = Vec::new();
        let mut value = 120.0;
        for (i, (target, hole, delay, again)) in cgm.into_iter().enumerate() {
            // A random walk that sometimes jumps, so falls, lows and highs all occur.
            value = (value * 0.7 + target * 0.3).clamp(39.0, 401.0);
            if hole {
                continue;
            }
            let measured_at = t0() + Duration::minutes(5 * i as i64);
            out.push(Arrival {
                glucose: Some(GlucosePoint {
                    device_id: "cgm".to_owned(),
                    measured_at,
                    received_at: measured_at + delay,
                    value_mg_dl: value.round(),
                    source: GlucoseSource::Cgm,
                    flag: None,
                }),
                pressure: None,
                received_at: measured_at + delay,
                redelivered_after: again,
            });
        }
        for (minute, value, delay) in meter {
            let measured_at = t0() + Duration::minutes(minute);
            out.push(Arrival {
                glucose: Some(GlucosePoint {
                    device_id: "meter".to_owned(),
                    measured_at,
                    received_at: measured_at + delay,
                    value_mg_dl: value.round(),
                    source: GlucoseSource::Meter,
                    flag: None,
                }),
                pressure: None,
                received_at: measured_at + delay,
                redelivered_after: None,
            });
        }
        for (minute, systolic, diastolic, delay) in cuff {
            let measured_at = t0() + Duration::minutes(minute);
            out.push(Arrival {
                glucose: None,
                pressure: Some(PressurePoint {
                    device_id: "cuff".to_owned(),
                    measured_at,
                    received_at: measured_at + delay,
                    systolic,
                    diastolic: diastolic.min(systolic - 10),
                }),
                received_at: measured_at + delay,
                redelivered_after: None,
            });
        }
        out
    })
}

/// The stored readings measured from `from` on, as the database returns them.
fn stored_since<P: WindowPoint>(
    stored: &BTreeMap<(DateTime<Utc>, String), P>,
    from: DateTime<Utc>,
) -> Vec<P> {
    stored
        .range((from, String::new())..)
        .map(|(_, p)| p.clone())
        .collect()
}

/// The engine's steps for one kind in one evaluation: read what the window asks for, merge
/// it, evaluate the lookback from the window, trim. Returns the slice evaluated.
fn evaluate_from_window<P: WindowPoint>(
    window: &mut ReadingWindow<P>,
    stored: &BTreeMap<(DateTime<Utc>, String), P>,
    new_from: DateTime<Utc>,
    lookback: Duration,
) -> Vec<P> {
    let read_from = window.read_from(new_from, lookback);
    window.merge(read_from, stored_since(stored, read_from));
    window.since(new_from - lookback).to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Readings arrive in batches of what was received in the same minute (late ones long
    /// after their neighbours, some twice); now and then the patient's evaluation moves to
    /// another process, which starts from an empty window. After every batch, the rules
    /// judge the window's slice exactly as they judge the stored readings.
    #[test]
    fn a_window_evaluates_like_the_stored_readings(
        arrivals in series(),
        moves in proptest::collection::vec(0usize..400, 0..4),
    ) {
        let thresholds = AlertThresholds::default();
        let mut deliveries: Vec<(DateTime<Utc>, Arrival)> = Vec::new();
        for a in arrivals {
            if let Some(after) = a.redelivered_after {
                deliveries.push((a.received_at + after, a.clone()));
            }
            deliveries.push((a.received_at, a));
        }
        deliveries.sort_by_key(|(at, _)| *at);
        let mut batches: BTreeMap<i64, Vec<Arrival>> = BTreeMap::new();
        for (at, a) in deliveries {
            batches.entry(at.timestamp() / 60).or_default().push(a);
        }

        let mut glucose_stored = BTreeMap::new();
        let mut pressure_stored = BTreeMap::new();
        let mut glucose_window = ReadingWindow::default();
        let mut pressure_window = ReadingWindow::default();
        for (step, batch) in batches.into_values().enumerate() {
            if moves.contains(&step) {
                glucose_window = ReadingWindow::default();
                pressure_window = ReadingWindow::default();
            }
            // The ingest stores each reading once (dedup on device and time).
            let mut glucose_from = None;
            let mut pressure_from = None;
            for a in batch {
                if let Some(g) = a.glucose {
                    let key = (g.measured_at, g.device_id.clone());
                    let measured_at = g.measured_at;
                    if let std::collections::btree_map::Entry::Vacant(slot) = glucose_stored.entry(key) {
                        slot.insert(g);
                        glucose_from = Some(glucose_from.map_or(measured_at, |f: DateTime<Utc>| f.min(measured_at)));
                    }
                }
                if let Some(p) = a.pressure {
                    let key = (p.measured_at, p.device_id.clone());
                    let measured_at = p.measured_at;
                    if let std::collections::btree_map::Entry::Vacant(slot) = pressure_stored.entry(key) {
                        slot.insert(p);
                        pressure_from = Some(pressure_from.map_or(measured_at, |f: DateTime<Utc>| f.min(measured_at)));
                    }
                }
            }
            let glucose = match glucose_from {
                Some(from) => {
                    let windowed = evaluate_from_window(&mut glucose_window, &glucose_stored, from, GLUCOSE_LOOKBACK);
                    let stored = stored_since(&glucose_stored, from - GLUCOSE_LOOKBACK);
                    prop_assert_eq!(&windowed, &stored);
                    prop_assert_eq!(
                        glucose_timelines(&windowed, &thresholds),
                        glucose_timelines(&stored, &thresholds)
                    );
                    windowed
                }
                None => Vec::new(),
            };
            let pressure = match pressure_from {
                Some(from) => {
                    let windowed = evaluate_from_window(&mut pressure_window, &pressure_stored, from, PRESSURE_LOOKBACK);
                    let stored = stored_since(&pressure_stored, from - PRESSURE_LOOKBACK);
                    prop_assert_eq!(&windowed, &stored);
                    prop_assert_eq!(
                        pressure_timelines(&windowed, &thresholds),
                        pressure_timelines(&stored, &thresholds)
                    );
                    windowed
                }
                None => Vec::new(),
            };
            let stored_glucose = glucose_from.map_or_else(Vec::new, |from| stored_since(&glucose_stored, from - GLUCOSE_LOOKBACK));
            let stored_pressure = pressure_from.map_or_else(Vec::new, |from| stored_since(&pressure_stored, from - PRESSURE_LOOKBACK));
            prop_assert_eq!(
                revealed_silences(&glucose, &pressure, &thresholds),
                revealed_silences(&stored_glucose, &stored_pressure, &thresholds)
            );
            glucose_window.trim(GLUCOSE_KEEP);
            pressure_window.trim(PRESSURE_KEEP);
            prop_assert!(glucose_window.len() <= glucose_stored.len());
        }
    }
}

#[test]
fn a_window_that_covers_the_lookback_reads_only_the_new_readings() {
    let point = |minute: i64| GlucosePoint {
        device_id: "cgm".to_owned(),
        measured_at: t0() + Duration::minutes(minute),
        received_at: t0() + Duration::minutes(minute),
        value_mg_dl: 100.0,
        source: GlucoseSource::Cgm,
        flag: None,
    };
    let mut window = ReadingWindow::default();
    let first = t0() + Duration::hours(5);
    assert_eq!(
        window.read_from(first, GLUCOSE_LOOKBACK),
        first - GLUCOSE_LOOKBACK
    );
    // Rebuilt from the stored day so far.
    window.merge(t0(), (0..=300).step_by(5).map(point).collect());
    let next = first + Duration::minutes(5);
    assert_eq!(
        window.read_from(next, GLUCOSE_LOOKBACK),
        first,
        "only the new reading, from the newest held on"
    );
    window.merge(first, vec![point(300), point(305)]);
    window.trim(GLUCOSE_KEEP);
    assert_eq!(
        window.covered_from(),
        Some(t0() + Duration::minutes(305) - GLUCOSE_KEEP)
    );
    assert_eq!(
        window.len(),
        40,
        "3 hours 15 minutes of a 5-minute CGM, both ends included"
    );
    // A reading from before what it keeps sends the engine back to the database.
    let late = t0() + Duration::minutes(30);
    assert_eq!(
        window.read_from(late, GLUCOSE_LOOKBACK),
        late - GLUCOSE_LOOKBACK
    );
}

/// A reading stored after the window was filled but evaluated later than a newer one (its
/// follow-up work in another claim) is in the window when the newer one is evaluated: the
/// rules never judge a slice with a stored reading missing from its middle.
#[test]
fn a_reading_stored_before_the_one_evaluated_is_read_even_if_its_own_work_waits() {
    let point = |minute: i64, value_mg_dl: f64| GlucosePoint {
        device_id: "cgm".to_owned(),
        measured_at: t0() + Duration::minutes(minute),
        received_at: t0() + Duration::minutes(minute),
        value_mg_dl,
        source: GlucoseSource::Cgm,
        flag: None,
    };
    let mut stored: BTreeMap<(DateTime<Utc>, String), GlucosePoint> = (0..=300)
        .step_by(5)
        .map(|minute| point(minute, 100.0))
        .map(|p| ((p.measured_at, p.device_id.clone()), p))
        .collect();
    let mut window = ReadingWindow::default();
    evaluate_from_window(
        &mut window,
        &stored,
        t0() + Duration::minutes(300),
        GLUCOSE_LOOKBACK,
    );
    // Two readings stored in order; only the later one's work is evaluated now.
    for p in [point(305, 95.0), point(310, 50.0)] {
        stored.insert((p.measured_at, p.device_id.clone()), p);
    }
    let new_from = t0() + Duration::minutes(310);
    let evaluated = evaluate_from_window(&mut window, &stored, new_from, GLUCOSE_LOOKBACK);
    assert_eq!(
        evaluated,
        stored_since(&stored, new_from - GLUCOSE_LOOKBACK),
        "the window's slice is the stored one, the reading at 305 included"
    );
}

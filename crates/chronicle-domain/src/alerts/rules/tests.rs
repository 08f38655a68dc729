//! Every rule at and around its boundaries, table-driven.

use super::*;
use crate::targets::TargetPreset;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("time")
}

fn at(minute: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(minute)
}

/// A live reading of `device` at `minute`.
fn g(device: &str, source: GlucoseSource, minute: i64, value: f64) -> GlucosePoint {
    GlucosePoint {
        device_id: device.to_owned(),
        measured_at: at(minute),
        received_at: at(minute) + Duration::seconds(2),
        value_mg_dl: value,
        source,
        flag: None,
    }
}

/// CGM readings every 5 minutes from minute 0.
fn cgm(values: &[f64]) -> Vec<GlucosePoint> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| g("cgm", GlucoseSource::Cgm, 5 * i as i64, *v))
        .collect()
}

fn meter(value: f64) -> GlucosePoint {
    g("meter", GlucoseSource::Meter, 0, value)
}

fn timeline(points: &[GlucosePoint], rule: RuleId, t: &AlertThresholds) -> Timeline {
    glucose_timelines(points, t)
        .into_iter()
        .find(|tl| tl.rule == rule)
        .expect("rule")
}

/// The marks as text: `H` (holds, with severity initial), `.` (clear), one per mark.
fn marks(tl: &Timeline) -> String {
    tl.marks
        .iter()
        .map(|m| match m {
            Mark::Holds(f) => match f.severity {
                Severity::Urgent => 'U',
                Severity::Warning => 'W',
                Severity::Info => 'I',
            },
            Mark::Clear(_) => '.',
        })
        .collect()
}

fn standard() -> AlertThresholds {
    AlertThresholds::default()
}

#[test]
fn glucose_rules_at_their_boundaries() {
    let s = standard();
    let pregnancy = AlertThresholds::preset(TargetPreset::Pregnancy);
    let twelve_high = [251.0; 12];
    let eleven_high = [251.0; 11];
    let mut hi = vec![200.0, 200.0];
    hi.push(400.0);
    let mut hi_points = cgm(&hi);
    hi_points[2].flag = Some(GlucoseFlag::Hi);
    let mut lo_points = cgm(&[80.0]);
    lo_points[0].flag = Some(GlucoseFlag::Lo);
    lo_points[0].value_mg_dl = GlucoseFlag::LO_MG_DL;
    // (what, points, rule, thresholds, expected marks)
    let cases: Vec<(&str, Vec<GlucosePoint>, RuleId, &AlertThresholds, &str)> = vec![
        (
            "53.9 is very low",
            cgm(&[53.9]),
            RuleId::GlucoseVeryLow,
            &s,
            "U",
        ),
        ("54 is not", cgm(&[54.0]), RuleId::GlucoseVeryLow, &s, "."),
        (
            "a CGM LO is very low",
            lo_points,
            RuleId::GlucoseVeryLow,
            &s,
            "U",
        ),
        (
            "a meter reading counts",
            vec![meter(50.0)],
            RuleId::GlucoseVeryLow,
            &s,
            "U",
        ),
        (
            "three CGM readings below 70 over 15 min",
            cgm(&[69.9, 69.9, 69.9, 69.9]),
            RuleId::GlucoseLow,
            &s,
            "WW",
        ),
        (
            "two are not yet",
            cgm(&[65.0, 65.0]),
            RuleId::GlucoseLow,
            &s,
            "",
        ),
        (
            "70 clears",
            cgm(&[65.0, 65.0, 65.0, 70.0]),
            RuleId::GlucoseLow,
            &s,
            "W.",
        ),
        (
            "one meter reading below 70",
            vec![meter(69.9)],
            RuleId::GlucoseLow,
            &s,
            "W",
        ),
        (
            "a meter reading of 70 is clear",
            vec![meter(70.0)],
            RuleId::GlucoseLow,
            &s,
            ".",
        ),
        (
            "pregnancy: low starts at 63",
            cgm(&[65.0, 65.0, 65.0, 62.9, 62.9, 62.9]),
            RuleId::GlucoseLow,
            &pregnancy,
            "...W",
        ),
        (
            "above 250 for 60 min (12 readings over 55 min)",
            cgm(&twelve_high),
            RuleId::GlucoseVeryHigh,
            &s,
            "W",
        ),
        (
            "55 minutes is not yet",
            cgm(&eleven_high),
            RuleId::GlucoseVeryHigh,
            &s,
            "",
        ),
        (
            "250 is not very high",
            cgm(&[250.0; 13]),
            RuleId::GlucoseVeryHigh,
            &s,
            ".............",
        ),
        (
            "a CGM HI is urgent at once",
            hi_points,
            RuleId::GlucoseVeryHigh,
            &s,
            "..U",
        ),
        (
            "a meter reading above 400 is urgent",
            vec![meter(400.1)],
            RuleId::GlucoseVeryHigh,
            &s,
            "U",
        ),
        (
            "400 is not",
            vec![meter(400.0)],
            RuleId::GlucoseVeryHigh,
            &s,
            "",
        ),
        (
            "a meter reading of 250 clears",
            vec![meter(250.0)],
            RuleId::GlucoseVeryHigh,
            &s,
            ".",
        ),
        (
            "falling 3.1 mg/dL per minute over three readings",
            cgm(&[131.0, 115.0, 100.0]),
            RuleId::GlucoseRapidFall,
            &s,
            "W",
        ),
        (
            "3.0 per minute is not faster than 3",
            cgm(&[130.0, 115.0, 100.0]),
            RuleId::GlucoseRapidFall,
            &s,
            ".",
        ),
        (
            "one steep step between steady readings is not a rapid fall",
            cgm(&[120.0, 120.0, 92.0, 92.0]),
            RuleId::GlucoseRapidFall,
            &s,
            "..",
        ),
        (
            "a meter reading never makes a trend",
            vec![meter(60.0)],
            RuleId::GlucoseRapidFall,
            &s,
            "",
        ),
        (
            "falling 2 per minute from 100: 60 at the last reading, 20 in 20 min",
            cgm(&[100.0, 90.0, 80.0, 70.0, 60.0]),
            RuleId::GlucosePredictedLow,
            &s,
            "W",
        ),
        (
            "falling 1 per minute from 100: 60 forecast, clear",
            cgm(&[100.0, 95.0, 90.0, 85.0, 80.0]),
            RuleId::GlucosePredictedLow,
            &s,
            ".",
        ),
        (
            "too short for a forecast",
            cgm(&[100.0, 90.0, 80.0, 70.0]),
            RuleId::GlucosePredictedLow,
            &s,
            "",
        ),
    ];
    for (what, points, rule, thresholds, expected) in cases {
        assert_eq!(
            marks(&timeline(&points, rule, thresholds)),
            expected,
            "{what}"
        );
    }
}

#[test]
fn holes_break_runs_and_trends() {
    let s = standard();
    // 65 at 0, 5, then a 20-minute hole, then 25, 30: no three consecutive readings.
    let points = vec![
        g("cgm", GlucoseSource::Cgm, 0, 65.0),
        g("cgm", GlucoseSource::Cgm, 5, 65.0),
        g("cgm", GlucoseSource::Cgm, 25, 65.0),
        g("cgm", GlucoseSource::Cgm, 30, 65.0),
    ];
    assert_eq!(marks(&timeline(&points, RuleId::GlucoseLow, &s)), "");
    let falling = vec![
        g("cgm", GlucoseSource::Cgm, 0, 200.0),
        g("cgm", GlucoseSource::Cgm, 20, 130.0),
        g("cgm", GlucoseSource::Cgm, 25, 100.0),
    ];
    assert_eq!(marks(&timeline(&falling, RuleId::GlucoseRapidFall, &s)), "");
    // Two devices' readings are separate series.
    let two = vec![
        g("a", GlucoseSource::Cgm, 0, 65.0),
        g("b", GlucoseSource::Cgm, 5, 65.0),
        g("a", GlucoseSource::Cgm, 10, 65.0),
    ];
    assert_eq!(marks(&timeline(&two, RuleId::GlucoseLow, &s)), "");
}

#[test]
fn predicted_low_is_forecast_at_late_readings_too_but_never_across_a_hole() {
    let s = standard();
    let mut points = cgm(&[100.0, 90.0, 80.0, 70.0, 60.0]);
    for p in points.iter_mut() {
        p.received_at = p.measured_at + Duration::hours(6);
    }
    // A backlog: the forecast is made at the reading, from the readings before it (what
    // becomes of it, a historical event, is the lifecycle's business).
    let tl = timeline(&points, RuleId::GlucosePredictedLow, &s);
    assert_eq!(marks(&tl), "W");
    assert!(tl.episodes(s.late_after())[0].first_live.is_none());
    // A 20-minute hole in the window: no forecast across it.
    let mut holed = cgm(&[100.0, 95.0, 90.0, 85.0, 80.0, 75.0, 70.0, 65.0, 60.0]);
    holed.drain(4..7);
    assert_eq!(
        marks(&timeline(&holed, RuleId::GlucosePredictedLow, &s)),
        ""
    );
}

#[test]
fn late_data_reveals_silences_that_no_live_alert_saw() {
    let s = standard();
    let reading = |minute: i64, late: bool| GlucosePoint {
        received_at: at(minute)
            + if late {
                Duration::days(1)
            } else {
                Duration::seconds(2)
            },
        ..g("cgm", GlucoseSource::Cgm, minute, 120.0)
    };
    // (what, readings, silences revealed at)
    type Case<'a> = (&'a str, Vec<GlucosePoint>, Vec<DateTime<Utc>>);
    let cases: Vec<Case> = vec![
        (
            "a 40-minute hole in a backlog",
            vec![reading(0, true), reading(40, true)],
            vec![at(30)],
        ),
        (
            "30 minutes is not silent",
            vec![reading(0, true), reading(30, true)],
            vec![],
        ),
        (
            "a hole ended by a live reading was seen live",
            vec![reading(0, true), reading(40, false)],
            vec![],
        ),
    ];
    for (what, points, expected) in cases {
        let found: Vec<DateTime<Utc>> = revealed_silences(&points, &[], &s)
            .into_iter()
            .map(|(category, f)| {
                assert_eq!(category, DataCategory::Glucose);
                assert_eq!(f.evidence.last_reading_at, Some(at(0)));
                f.at
            })
            .collect();
        assert_eq!(found, expected, "{what}");
    }
    let cuff = |day: i64| PressurePoint {
        received_at: at(day * 1440) + Duration::days(10),
        ..bp(day * 1440, 120, 80)
    };
    assert_eq!(
        revealed_silences(&[], &[cuff(0), cuff(4)], &s).len(),
        1,
        "a cuff silent for 4 days"
    );
}

#[test]
fn arrival_order_does_not_matter() {
    let s = standard();
    let points = cgm(&[120.0, 100.0, 80.0, 65.0, 60.0, 52.0, 60.0, 75.0, 90.0]);
    let mut reversed = points.clone();
    reversed.reverse();
    for (a, b) in glucose_timelines(&points, &s)
        .into_iter()
        .zip(glucose_timelines(&reversed, &s))
    {
        assert_eq!(a, b, "{}", a.rule);
    }
}

fn bp(minute: i64, systolic: u16, diastolic: u16) -> PressurePoint {
    PressurePoint {
        device_id: "cuff".into(),
        measured_at: at(minute),
        received_at: at(minute),
        systolic,
        diastolic,
    }
}

fn bp_marks(points: &[PressurePoint], rule: RuleId) -> String {
    marks(
        &pressure_timelines(points, &standard())
            .into_iter()
            .find(|tl| tl.rule == rule)
            .expect("rule"),
    )
}

#[test]
fn blood_pressure_rules_at_their_boundaries() {
    let twice_a_day = |n: usize, s: u16, d: u16| -> Vec<PressurePoint> {
        (0..n).map(|i| bp(12 * 60 * i as i64, s, d)).collect()
    };
    // (what, points, rule, expected marks)
    let cases: Vec<(&str, Vec<PressurePoint>, RuleId, String)> = vec![
        (
            "181 systolic is a crisis",
            vec![bp(0, 181, 80)],
            RuleId::BpCrisis,
            "U".into(),
        ),
        (
            "180/120 is not",
            vec![bp(0, 180, 120)],
            RuleId::BpCrisis,
            ".".into(),
        ),
        (
            "121 diastolic is",
            vec![bp(0, 150, 121)],
            RuleId::BpCrisis,
            "U".into(),
        ),
        (
            "89 systolic is low",
            vec![bp(0, 89, 70)],
            RuleId::BpLow,
            "W".into(),
        ),
        (
            "59 diastolic is low",
            vec![bp(0, 100, 59)],
            RuleId::BpLow,
            "W".into(),
        ),
        (
            "90/60 is not",
            vec![bp(0, 90, 60)],
            RuleId::BpLow,
            ".".into(),
        ),
        (
            "12 readings averaging 135 systolic",
            twice_a_day(12, 135, 80),
            RuleId::BpStage2Trend,
            "I".into(),
        ),
        (
            "or 85 diastolic",
            twice_a_day(12, 120, 85),
            RuleId::BpStage2Trend,
            "I".into(),
        ),
        (
            "134/84 is below stage 2 at home",
            twice_a_day(12, 134, 84),
            RuleId::BpStage2Trend,
            ".".into(),
        ),
        (
            "11 readings are too few",
            twice_a_day(11, 150, 95),
            RuleId::BpStage2Trend,
            String::new(),
        ),
        (
            "readings older than 7 days leave the mean",
            // 12 high readings, then 14 normal ones: the mean drops below 135/85 once fewer
            // than 7 of the 14 readings in the window are high.
            twice_a_day(12, 150, 95)
                .into_iter()
                .chain((12..26).map(|i| bp(12 * 60 * i, 120, 75)))
                .collect(),
            RuleId::BpStage2Trend,
            format!("{}{}", "I".repeat(8), ".".repeat(7)),
        ),
    ];
    for (what, points, rule, expected) in cases {
        assert_eq!(bp_marks(&points, rule), expected, "{what}");
    }
}

#[test]
fn episodes_split_on_clears_and_know_what_was_live() {
    let s = standard();
    let mut points = cgm(&[50.0, 50.0, 60.0, 50.0, 50.0]);
    // The first two readings arrived an hour late (a backfill).
    for p in &mut points[..2] {
        p.received_at = p.measured_at + Duration::hours(1);
    }
    let tl = timeline(&points, RuleId::GlucoseVeryLow, &s);
    let episodes = tl.episodes(s.late_after());
    assert_eq!(episodes.len(), 2);
    assert_eq!(episodes[0].started_at(), at(0));
    assert_eq!(episodes[0].first_live, None, "only late data: historical");
    assert_eq!(episodes[0].cleared_at, Some(at(10)));
    assert_eq!(episodes[1].first_live.as_ref().map(|f| f.at), Some(at(15)));
    assert_eq!(
        (episodes[1].last_hold_at, episodes[1].cleared_at),
        (at(20), None)
    );
    assert_eq!(tl.clear_since(at(0)), None, "held again after the clear");
    assert_eq!(tl.clear_since(at(20)), None);
    assert_eq!(tl.last_hold_at(), Some(at(20)));
}

#[test]
fn silence_per_device_kind() {
    let s = standard();
    let now = at(0);
    let device = |id: &str, kind, ago: Duration| DeviceActivity {
        device_id: id.into(),
        kind,
        last_measured_at: now - ago,
    };
    let quiet = silent_devices(
        &[
            device("cgm-ok", DeviceKind::Cgm, Duration::minutes(29)),
            device(
                "cuff-ok",
                DeviceKind::Bp,
                Duration::days(3) - Duration::seconds(1),
            ),
        ],
        &s,
        now,
    );
    assert_eq!(quiet.get(&DataCategory::Glucose), Some(&None));
    assert_eq!(quiet.get(&DataCategory::BloodPressure), Some(&None));
    let silent = silent_devices(
        &[
            device("cgm-old", DeviceKind::Cgm, Duration::minutes(45)),
            device("cgm-new", DeviceKind::Cgm, Duration::minutes(30)),
            device("meter", DeviceKind::Meter, Duration::days(1)),
        ],
        &s,
        now,
    );
    let finding = silent[&DataCategory::Glucose].as_ref().expect("silent");
    assert_eq!(finding.device_id, "cgm-new", "the most recently silenced");
    assert_eq!(
        finding.at, now,
        "silent from 30 minutes after its last reading"
    );
    assert_eq!(
        finding.evidence.last_reading_at,
        Some(now - Duration::minutes(30))
    );
    assert!(!silent.contains_key(&DataCategory::BloodPressure));
}

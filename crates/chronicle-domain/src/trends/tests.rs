//! Hand-computed fixtures for every metric, and a property test that day-by-day totals equal a
//! direct computation over the whole window.

use super::blood_pressure::{BpPoint, home_category, home_protocol};
use super::calendar::{DayBounds, TrendWindow, micros};
use super::glucose::{CGM_SLOT_US, GlucoseBand, GlucosePoint, GlucoseTotals, milli_mg_dl};
use super::*;
use crate::reading::GlucoseSource;
use crate::targets::{GlucoseTargets, TargetPreset};
use crate::units::GlucoseUnit;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("valid instant")
        .with_timezone(&Utc)
}

fn date(text: &str) -> NaiveDate {
    text.parse().expect("valid date")
}

fn cgm(at: DateTime<Utc>, mg_dl: f64) -> GlucosePoint {
    GlucosePoint {
        at,
        mg_dl,
        source: GlucoseSource::Cgm,
    }
}

const MIN: i64 = 60_000_000;

fn standard() -> GlucoseTargets {
    GlucoseTargets::standard()
}

/// One UTC day computed from `points`.
fn utc_day(day: &str, points: &[GlucosePoint]) -> GlucoseDay {
    glucose_day(
        &DayBounds::of(Tz::UTC, date(day)),
        points,
        None,
        &standard(),
    )
}

#[test]
fn band_boundaries_are_exact_in_mg_dl() {
    use GlucoseBand::*;
    for (value, band) in [
        (53.9, VeryLow),
        (54.0, Low),
        (69.9, Low),
        (70.0, InRange),
        (180.0, InRange),
        (180.1, High),
        (250.0, High),
        (250.1, VeryHigh),
        (40.0, VeryLow),
        (400.0, VeryHigh),
    ] {
        assert_eq!(GlucoseBand::of(value), band, "{value} mg/dL");
    }
}

#[test]
fn mmol_values_are_converted_before_classifying() {
    use GlucoseBand::*;
    // 3.0 mmol/L is 54.05 mg/dL: low, not very low; 3.9 is 70.26: in range (a classifier
    // working in mmol/L with 3.9 as "70" would agree here, but not at 70 mg/dL itself, which
    // is 3.8855 mmol/L); 10.0 is 180.16: high; 13.9 is 250.42: very high.
    for (mmol, band) in [
        (2.9, VeryLow),
        (3.0, Low),
        (3.8, Low),
        (3.9, InRange),
        (10.0, High),
        (13.8, High),
        (13.9, VeryHigh),
    ] {
        assert_eq!(
            GlucoseBand::of(GlucoseUnit::MmolL.to_mg_dl(mmol)),
            band,
            "{mmol} mmol/L"
        );
    }
    // A day of mmol/L readings: every value weighs as its mg/dL equivalent.
    let start = t("2026-03-02T10:00:00Z");
    let points: Vec<GlucosePoint> = [3.0, 5.5, 10.0, 14.0]
        .iter()
        .enumerate()
        .map(|(i, mmol)| {
            cgm(
                start + Duration::minutes(5 * i as i64),
                GlucoseUnit::MmolL.to_mg_dl(*mmol),
            )
        })
        .collect();
    let day = utc_day("2026-03-02", &points);
    // 5 minutes each, the last one 15 (no next reading).
    assert_eq!(day.totals.band_us, [0, 5 * MIN, 5 * MIN, 5 * MIN, 15 * MIN]);
    let window = TrendWindow::new(
        Tz::UTC,
        date("2026-03-02"),
        date("2026-03-02"),
        None,
        t("2026-03-03T00:00:00Z"),
    );
    let summary = glucose_summary(&day.totals, &window);
    let mean_mmol = (3.0 + 5.5 + 10.0 + 14.0) / 4.0;
    let mean = summary.mean_mg_dl.expect("mean");
    assert!(
        (GlucoseUnit::MmolL.from_mg_dl(mean) - mean_mmol).abs() < 1e-4,
        "{mean}"
    );
}

#[test]
fn readings_exactly_at_the_boundaries() {
    // 54, 70, 180 and 250 mg/dL, 5 minutes each, then 250.1 for the capped 15 minutes.
    let start = t("2026-03-02T08:00:00Z");
    let values = [54.0, 70.0, 180.0, 250.0, 250.1];
    let points: Vec<GlucosePoint> = values
        .iter()
        .enumerate()
        .map(|(i, v)| cgm(start + Duration::minutes(5 * i as i64), *v))
        .collect();
    let day = utc_day("2026-03-02", &points);
    // very low, low, in range, high, very high
    assert_eq!(
        day.totals.band_us,
        [0, 5 * MIN, 10 * MIN, 5 * MIN, 15 * MIN]
    );
    // Standard targets: 70–180 inclusive is in target.
    assert_eq!(day.totals.target_us, [5 * MIN, 10 * MIN, 20 * MIN]);
    let window = TrendWindow::new(
        Tz::UTC,
        date("2026-03-02"),
        date("2026-03-02"),
        None,
        t("2026-03-03T00:00:00Z"),
    );
    let s = glucose_summary(&day.totals, &window);
    let p = s.band_percent.expect("percents");
    assert_eq!(
        p.map(|x| (x * 1e6).round() / 1e6),
        [0.0, 14.285714, 28.571429, 14.285714, 42.857143]
    );
    assert_eq!(s.totals.readings, 5);
    // mean 160.82, sample SD by hand: deviations² sum / 4.
    let mean = values.iter().sum::<f64>() / 5.0;
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
    assert!((s.mean_mg_dl.expect("mean") - mean).abs() < 1e-9);
    assert!((s.sd_mg_dl.expect("sd") - sd).abs() < 1e-9);
    assert!((s.cv_percent.expect("cv") - sd / mean * 100.0).abs() < 1e-9);
    assert!((s.gmi_percent.expect("gmi") - (3.31 + 0.02392 * mean)).abs() < 1e-12);
}

#[test]
fn gaps_count_as_no_data() {
    // Readings at :00 :05 :10, silence, then :60 :65. The :10 reading stands for its capped
    // 15 minutes; the 35 minutes after are no data.
    let start = t("2026-03-02T12:00:00Z");
    let points: Vec<GlucosePoint> = [(0, 100.0), (5, 60.0), (10, 200.0), (60, 100.0), (65, 50.0)]
        .iter()
        .map(|(m, v)| cgm(start + Duration::minutes(*m), *v))
        .collect();
    let day = utc_day("2026-03-02", &points);
    assert_eq!(
        day.totals.band_us,
        [15 * MIN, 5 * MIN, 10 * MIN, 15 * MIN, 0]
    );
    assert_eq!(day.totals.data_us(), 45 * MIN);
    assert_eq!(day.totals.readings, 5);
    assert_eq!(day.totals.cgm_slots, 5);
    let durations: Vec<i64> = day.samples.iter().map(|s| s.duration_us / MIN).collect();
    assert_eq!(durations, [5, 5, 15, 5, 15]);
    // Time percentages are of the covered 45 minutes, not of the day.
    let window = TrendWindow::new(
        Tz::UTC,
        date("2026-03-02"),
        date("2026-03-02"),
        None,
        t("2026-03-03T00:00:00Z"),
    );
    let s = glucose_summary(&day.totals, &window);
    assert_eq!(
        s.percent_of(GlucoseBand::InRange),
        Some(10.0 / 45.0 * 100.0)
    );
    // 5 of 288 slots.
    assert_eq!(s.cgm_active_percent, Some(5.0 / 288.0 * 100.0));
    assert_eq!(
        s.insufficient,
        [
            Insufficiency::FewerThan14Days,
            Insufficiency::CgmActiveBelow70Percent
        ]
    );
}

#[test]
fn one_reading() {
    let day = utc_day("2026-03-02", &[cgm(t("2026-03-02T09:00:00Z"), 123.0)]);
    let window = TrendWindow::new(
        Tz::UTC,
        date("2026-03-02"),
        date("2026-03-02"),
        None,
        t("2026-03-03T00:00:00Z"),
    );
    let s = glucose_summary(&day.totals, &window);
    assert_eq!(s.mean_mg_dl, Some(123.0));
    assert_eq!(s.sd_mg_dl, None);
    assert_eq!(s.cv_percent, None);
    assert_eq!(s.gmi_percent, Some(3.31 + 0.02392 * 123.0));
    assert_eq!(s.band_percent, Some([0.0, 0.0, 100.0, 0.0, 0.0]));
    assert_eq!(s.data_minutes, 15.0);
    let trend = glucose_trend(&window, &[day], 60);
    assert_eq!(trend.agp[9].readings, 1);
    assert_eq!(trend.agp[9].percentiles, Some([123.0; 5]));
    assert!(trend.episodes.is_empty());
}

#[test]
fn no_readings() {
    let window = TrendWindow::ending_on(
        Tz::UTC,
        date("2026-03-14"),
        14,
        None,
        t("2026-03-15T00:00:00Z"),
    );
    let trend = glucose_trend(&window, &[], 15);
    let s = &trend.summary;
    assert_eq!(
        (s.mean_mg_dl, s.sd_mg_dl, s.band_percent),
        (None, None, None)
    );
    assert_eq!(s.cgm_active_percent, Some(0.0));
    assert_eq!(s.calendar_days, 14);
    assert_eq!(s.insufficient, [Insufficiency::CgmActiveBelow70Percent]);
    assert_eq!(trend.daily.len(), 14);
    assert!(
        trend
            .agp
            .iter()
            .all(|b| b.readings == 0 && b.percentiles.is_none())
    );
}

#[test]
fn all_readings_out_of_range() {
    let start = t("2026-03-02T00:00:00Z");
    let points: Vec<GlucosePoint> = (0..288)
        .map(|i| {
            cgm(
                start + Duration::minutes(5 * i),
                if i % 2 == 0 { 45.0 } else { 40.0 },
            )
        })
        .collect();
    let day = utc_day("2026-03-02", &points);
    let window = TrendWindow::new(
        Tz::UTC,
        date("2026-03-02"),
        date("2026-03-02"),
        None,
        t("2026-03-03T00:00:00Z"),
    );
    let s = glucose_summary(&day.totals, &window);
    assert_eq!(s.band_percent, Some([100.0, 0.0, 0.0, 0.0, 0.0]));
    assert_eq!(s.target_percent, Some([100.0, 0.0, 0.0]));
    assert_eq!(s.cgm_active_percent, Some(100.0));
    // The last reading's 15 minutes end at midnight: 23:55 + 5 minutes lie in the day.
    assert_eq!(day.totals.data_us(), 1440 * MIN);
    // One 24-hour hypo (very low and low), prolonged, nadir the first 40.
    let trend = glucose_trend(&window, &[day], 15);
    let kinds: Vec<EpisodeKind> = trend.episodes.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EpisodeKind::Low, EpisodeKind::VeryLow]);
    let e = &trend.episodes[0];
    assert_eq!((e.start, e.end), (start, t("2026-03-03T00:00:00Z")));
    assert!(e.prolonged);
    assert_eq!(
        (e.extreme_mg_dl, e.extreme_at),
        (40.0, start + Duration::minutes(5))
    );
}

#[test]
fn durations_are_split_at_midnight_and_need_the_neighbour_days() {
    // 23:55 and 00:05: the first reading stands for 5 minutes in each day; the second for 15.
    let points = [
        cgm(t("2026-03-02T23:55:00Z"), 60.0),
        cgm(t("2026-03-03T00:05:00Z"), 100.0),
    ];
    let first = utc_day("2026-03-02", &points);
    let second = utc_day("2026-03-03", &points);
    assert_eq!(first.totals.band_us, [0, 5 * MIN, 0, 0, 0]);
    assert_eq!(second.totals.band_us, [0, 5 * MIN, 15 * MIN, 0, 0]);
    assert_eq!((first.totals.readings, second.totals.readings), (1, 1));
    assert_eq!(first.samples[0].duration_us, 10 * MIN);
}

#[test]
fn a_daylight_saving_day_in_the_patients_zone() {
    let berlin = Tz::Europe__Berlin;
    // Spring forward: 2026-03-29 has 23 hours (02:00 becomes 03:00); autumn: 2026-10-25 has 25.
    let spring = DayBounds::of(berlin, date("2026-03-29"));
    let autumn = DayBounds::of(berlin, date("2026-10-25"));
    assert_eq!(spring.length_us(), 23 * 60 * MIN);
    assert_eq!(autumn.length_us(), 25 * 60 * MIN);
    assert_eq!(spring.start, t("2026-03-28T23:00:00Z"));
    assert_eq!(autumn.end, t("2026-10-25T23:00:00Z"));

    for (day, hours) in [(spring, 23), (autumn, 25)] {
        let readings = hours * 12;
        let points: Vec<GlucosePoint> = (0..readings)
            .map(|i| cgm(day.start + Duration::minutes(5 * i), 100.0 + (i % 3) as f64))
            .collect();
        let computed = glucose_day(&day, &points, None, &standard());
        assert_eq!(computed.totals.readings, readings);
        assert_eq!(computed.totals.cgm_slots, readings);
        assert_eq!(computed.totals.data_us(), hours * 60 * MIN);
        let window = TrendWindow::new(berlin, day.date, day.date, None, day.end);
        let trend = glucose_trend(&window, &[computed], 60);
        assert_eq!(
            trend.summary.cgm_active_percent,
            Some(100.0),
            "{hours} h day"
        );
        assert_eq!(trend.daily[0].1.observed_minutes, (hours * 60) as f64);
        // Local hour 02: skipped in spring, lived twice in autumn.
        let two_am = trend.agp[2].readings;
        assert_eq!(two_am, if hours == 23 { 0 } else { 24 }, "{hours} h day");
        assert_eq!(trend.agp[3].readings, 12);
    }
    // A reading at local 23:50 on the 28th belongs to the 28th, one at 00:10 to the 29th.
    assert_eq!(
        local_date(berlin, t("2026-03-28T22:50:00Z")),
        date("2026-03-28")
    );
    assert_eq!(
        local_date(berlin, t("2026-03-28T23:10:00Z")),
        date("2026-03-29")
    );
}

#[test]
fn fourteen_days_at_seventy_percent_are_sufficient() {
    let last = date("2026-03-14");
    let window = TrendWindow::ending_on(Tz::UTC, last, 14, None, t("2026-03-15T00:00:00Z"));
    let slots_per_day = 288;
    let totals = GlucoseTotals {
        cgm_slots: (slots_per_day * 14 * 7 + 9) / 10,
        ..GlucoseTotals::default()
    };
    assert!(glucose_summary(&totals, &window).sufficient());
    let fewer = GlucoseTotals {
        cgm_slots: totals.cgm_slots - 1,
        ..totals
    };
    assert_eq!(
        glucose_summary(&fewer, &window).insufficient,
        [Insufficiency::CgmActiveBelow70Percent]
    );
    let short = TrendWindow::ending_on(Tz::UTC, last, 13, None, t("2026-03-15T00:00:00Z"));
    assert_eq!(
        glucose_summary(&totals, &short).insufficient,
        [Insufficiency::FewerThan14Days]
    );
    // Today counts as a calendar day; CGM activity is judged on the time elapsed so far.
    let today = TrendWindow::ending_on(Tz::UTC, last, 14, None, t("2026-03-14T12:00:00Z"));
    assert_eq!(today.calendar_days(), 14);
    assert_eq!(today.total_observed_us(), (13 * 24 + 12) * 60 * MIN);
}

#[test]
fn a_floor_hides_everything_before_it() {
    let points = [
        cgm(t("2026-03-02T09:55:00Z"), 40.0),
        cgm(t("2026-03-02T10:00:00Z"), 100.0),
        cgm(t("2026-03-02T10:05:00Z"), 100.0),
    ];
    let floor = Some(t("2026-03-02T10:00:00Z"));
    let day = glucose_day(
        &DayBounds::of(Tz::UTC, date("2026-03-02")),
        &points,
        floor,
        &standard(),
    );
    assert_eq!(day.totals.readings, 2);
    assert_eq!(day.totals.band_us, [0, 0, 20 * MIN, 0, 0]);
    let window = TrendWindow::new(
        Tz::UTC,
        date("2026-03-01"),
        date("2026-03-03"),
        floor,
        t("2026-03-04T00:00:00Z"),
    );
    assert_eq!(window.first_date(), date("2026-03-02"));
    assert!(window.clips(&window.days[0]));
    assert!(!window.clips(&window.days[1]));
    assert_eq!(window.total_observed_us(), (14 + 24) * 60 * MIN);
}

#[test]
fn episodes_need_fifteen_minutes_beyond_and_fifteen_back() {
    let start = t("2026-03-02T03:00:00Z");
    let series = |values: &[(i64, f64)]| -> Vec<Sample> {
        let points: Vec<GlucosePoint> = values
            .iter()
            .map(|(m, v)| cgm(start + Duration::minutes(*m), *v))
            .collect();
        utc_day("2026-03-02", &points).samples
    };
    let until = t("2026-03-03T00:00:00Z");
    // 10 minutes low: no episode.
    let short = series(&[
        (0, 100.0),
        (5, 65.0),
        (10, 65.0),
        (15, 100.0),
        (20, 100.0),
        (25, 100.0),
        (30, 100.0),
    ]);
    assert!(episodes(&short, until).is_empty());
    // 20 minutes low, 10 back in range, 15 low, then 15 in range: one episode of 45 minutes.
    let values: Vec<(i64, f64)> = [
        100.0, 65.0, 60.0, 52.0, 66.0, 100.0, 100.0, 68.0, 64.0, 69.0, 100.0, 100.0, 100.0, 100.0,
    ]
    .iter()
    .enumerate()
    .map(|(i, v)| (5 * i as i64, *v))
    .collect();
    let found = episodes(&series(&values), until);
    let lows: Vec<&Episode> = found
        .iter()
        .filter(|e| e.kind == EpisodeKind::Low)
        .collect();
    assert_eq!(lows.len(), 1, "{found:?}");
    assert_eq!(
        (lows[0].start, lows[0].end),
        (start + Duration::minutes(5), start + Duration::minutes(50))
    );
    assert_eq!(
        (lows[0].extreme_mg_dl, lows[0].extreme_at),
        (52.0, start + Duration::minutes(15))
    );
    assert!(!lows[0].prolonged);
    // 5 minutes below 54 is no level-2 episode.
    assert!(found.iter().all(|e| e.kind != EpisodeKind::VeryLow));
    // A gap ends an episode: 20 minutes high, 40 minutes of silence, 20 minutes high.
    let gapped = series(&[
        (0, 200.0),
        (5, 210.0),
        (10, 220.0),
        (15, 215.0),
        (60, 230.0),
        (65, 240.0),
        (70, 235.0),
        (75, 190.0),
    ]);
    let highs: Vec<Episode> = episodes(&gapped, until)
        .into_iter()
        .filter(|e| e.kind == EpisodeKind::High)
        .collect();
    assert_eq!(highs.len(), 2);
    assert_eq!(highs[0].end, start + Duration::minutes(30));
    assert_eq!(
        (highs[1].extreme_mg_dl, highs[1].end),
        (240.0, start + Duration::minutes(90))
    );
}

#[test]
fn blood_pressure_categories_use_home_thresholds_and_the_higher_wins() {
    use BpCategory::*;
    for ((s, d), category) in [
        ((119.9, 79.9), Normal),
        ((120.0, 70.0), Elevated),
        ((129.9, 79.0), Elevated),
        ((130.0, 70.0), Stage1),
        ((118.0, 80.0), Stage1),
        ((134.9, 84.9), Stage1),
        ((135.0, 70.0), Stage2),
        ((125.0, 85.0), Stage2),
        ((180.0, 120.0), Stage2),
        ((181.0, 90.0), Crisis),
        ((150.0, 121.0), Crisis),
    ] {
        assert_eq!(home_category(s, d), category, "{s}/{d}");
    }
}

fn bp(at: &str, systolic: i64, diastolic: i64, pulse: Option<i64>) -> BpPoint {
    BpPoint {
        at: t(at),
        systolic,
        diastolic,
        pulse,
    }
}

#[test]
fn blood_pressure_summary_by_hand() {
    let zone = Tz::Europe__Berlin;
    // Berlin is UTC+1 in March: 06:30Z is 07:30 local (morning), 20:00Z is 21:00 (evening),
    // 13:00Z is 14:00 (neither).
    let points = [
        bp("2026-03-02T06:30:00Z", 128, 82, Some(70)),
        bp("2026-03-02T06:31:00Z", 124, 80, Some(68)),
        bp("2026-03-02T13:00:00Z", 140, 90, None),
        bp("2026-03-02T20:00:00Z", 136, 86, Some(72)),
    ];
    let window = TrendWindow::new(
        zone,
        date("2026-03-02"),
        date("2026-03-02"),
        None,
        t("2026-03-03T00:00:00Z"),
    );
    let day = bp_day(&window.days[0], &points, None, zone);
    let trend = bp_trend(&window, &[day]);
    let s = &trend.summary;
    assert_eq!(s.totals.readings, 4);
    assert_eq!(s.mean_systolic, Some(132.0));
    assert_eq!(s.mean_diastolic, Some(84.5));
    assert_eq!(s.morning, Some((126.0, 81.0)));
    assert_eq!(s.evening, Some((136.0, 86.0)));
    // SD of 128, 124, 140, 136: mean 132, squares 16+64+64+16 = 160, /3.
    assert!((s.sd_systolic.expect("sd") - (160.0f64 / 3.0).sqrt()).abs() < 1e-12);
    assert_eq!(s.category, Some(BpCategory::Stage1));
    assert_eq!(s.at_or_above_130_80_percent, Some(100.0));
    assert_eq!(s.at_or_above_135_85_percent, Some(50.0));
    assert_eq!(s.mean_pulse, Some(70.0));
    assert!(!s.low);
    assert!(trend.home_protocol.is_none());
}

#[test]
fn the_seven_day_home_protocol_discards_day_one() {
    let zone = Tz::UTC;
    let first = date("2026-03-01");
    let mut points = Vec::new();
    for day in 0..8 {
        let d = first + Duration::days(day);
        // Day 1 (the 1st) runs high and is discarded; the 8th misses its evening reading.
        let (s, dia) = if day == 0 {
            (170, 100)
        } else {
            (130 + day, 80)
        };
        points.push(BpPoint {
            at: d.and_hms_opt(7, 0, 0).expect("time").and_utc(),
            systolic: s,
            diastolic: dia,
            pulse: None,
        });
        if day < 7 {
            points.push(BpPoint {
                at: d.and_hms_opt(20, 0, 0).expect("time").and_utc(),
                systolic: s + 2,
                diastolic: dia,
                pulse: None,
            });
        }
    }
    let window = TrendWindow::new(
        zone,
        first,
        date("2026-03-08"),
        None,
        t("2026-03-09T00:00:00Z"),
    );
    let days: Vec<BpDay> = window
        .days
        .iter()
        .map(|d| bp_day(d, &points, None, zone))
        .collect();
    let protocol = home_protocol(&days).expect("a complete run");
    assert_eq!(protocol.discarded_day, date("2026-03-01"));
    assert_eq!(
        (protocol.first_day, protocol.last_day),
        (date("2026-03-02"), date("2026-03-07"))
    );
    assert_eq!(
        (protocol.morning.readings, protocol.evening.readings),
        (6, 6)
    );
    // Mornings 131..136 (mean 133.5), evenings 2 higher (135.5): overall 134.5 / 80.
    assert_eq!(protocol.mean_systolic, 134.5);
    assert_eq!(protocol.mean_diastolic, 80.0);
    assert_eq!(protocol.category, BpCategory::Stage1);
    assert!(home_protocol(&days[..6]).is_none());
}

#[test]
fn panel_flags_follow_the_patients_targets() {
    let start = t("2026-03-02T00:00:00Z");
    // 288 readings: 6 below 54 (2.1 %), 10 more below 70, the rest in range.
    let points: Vec<GlucosePoint> = (0..288)
        .map(|i| {
            let v = if i < 6 {
                50.0
            } else if i < 16 {
                65.0
            } else {
                120.0
            };
            cgm(start + Duration::minutes(5 * i), v)
        })
        .collect();
    let day = utc_day("2026-03-02", &points);
    let window = TrendWindow::new(
        Tz::UTC,
        date("2026-03-02"),
        date("2026-03-02"),
        None,
        t("2026-03-03T00:00:00Z"),
    );
    let s = glucose_summary(&day.totals, &window);
    let standard = GlucoseTargets::standard();
    let facts = PanelFacts {
        targets: &standard,
        glucose: Some(&s),
        previous_glucose: None,
        blood_pressure: None,
        latest_glucose_at: Some(t("2026-03-02T23:55:00Z")),
        open_alerts: 0,
        open_urgent_alerts: 0,
        now: t("2026-03-03T00:00:00Z"),
    };
    assert_eq!(
        panel_flags(&facts),
        [PanelFlag::Below54, PanelFlag::BelowRange]
    );
    // Silent for 9 hours: flagged.
    let later = PanelFacts {
        now: t("2026-03-03T09:00:00Z"),
        ..facts
    };
    assert!(panel_flags(&later).contains(&PanelFlag::NoRecentData));
    // A patient with no data at all.
    let empty = glucose_summary(&GlucoseTotals::default(), &window);
    let nothing = PanelFacts {
        glucose: Some(&empty),
        latest_glucose_at: None,
        ..facts
    };
    assert_eq!(panel_flags(&nothing), [PanelFlag::NoData]);
    // Open alerts: an urgent one comes first; acknowledged ones are not counted as open.
    let alarmed = PanelFacts {
        open_alerts: 2,
        open_urgent_alerts: 1,
        ..facts
    };
    assert_eq!(
        panel_flags(&alarmed),
        [
            PanelFlag::UrgentAlert,
            PanelFlag::Below54,
            PanelFlag::BelowRange,
            PanelFlag::OpenAlert
        ]
    );
    let urgent_only = PanelFacts {
        open_alerts: 1,
        open_urgent_alerts: 1,
        ..facts
    };
    assert!(!panel_flags(&urgent_only).contains(&PanelFlag::OpenAlert));
    // Risk: the most severe flag outweighs all others together.
    assert!(risk_score(&[PanelFlag::UrgentAlert]) > risk_score(&PanelFlag::ALL[1..]));
    assert!(risk_score(&[PanelFlag::Below54]) > risk_score(&PanelFlag::ALL[2..]));
    // A time in range that fell from 95 % to 75 % is flagged even though above the 70 % goal.
    let good: Vec<GlucosePoint> = (0..288)
        .map(|i| cgm(start + Duration::minutes(5 * i), 120.0))
        .collect();
    let good_day = utc_day("2026-03-02", &good);
    let mut previous = glucose_summary(&good_day.totals, &window);
    previous.target_percent = Some([0.0, 95.0, 5.0]);
    let mut current = previous.clone();
    current.target_percent = Some([0.0, 75.0, 25.0]);
    let dropped = PanelFacts {
        glucose: Some(&current),
        previous_glucose: Some(&previous),
        ..facts
    };
    assert_eq!(panel_flags(&dropped), [PanelFlag::TirDropped]);
    let older = GlucoseTargets::preset(TargetPreset::OlderHighRisk);
    current.target_percent = Some([2.0, 60.0, 38.0]);
    let older_facts = PanelFacts {
        targets: &older,
        glucose: Some(&current),
        previous_glucose: None,
        ..facts
    };
    // 2 % below range breaks the older patient's 1 % limit; 60 % in range meets their 50 %.
    assert_eq!(panel_flags(&older_facts), [PanelFlag::BelowRange]);
}

/// Totals over the whole window computed directly, reading by reading: the reference the
/// day-by-day computation must equal.
fn direct_totals(
    points: &[GlucosePoint],
    window: &TrendWindow,
    targets: &GlucoseTargets,
) -> GlucoseTotals {
    let from = micros(window.start());
    let to = micros(window.end());
    let usable: Vec<&GlucosePoint> = points.iter().filter(|p| micros(p.at) >= from).collect();
    let mut totals = GlucoseTotals::default();
    let mut slots = std::collections::BTreeSet::new();
    let mut days = std::collections::BTreeSet::new();
    let mut cgm_days = std::collections::BTreeSet::new();
    for (i, p) in usable.iter().enumerate() {
        let at = micros(p.at);
        let cap = duration_cap_us(p.source);
        let end = usable
            .get(i + 1)
            .map_or(at + cap, |n| micros(n.at).min(at + cap));
        let covered = (end.min(to) - at.max(from)).max(0);
        let band = GlucoseBand::ALL
            .iter()
            .position(|b| *b == GlucoseBand::of(p.mg_dl))
            .expect("band");
        totals.band_us[band] += covered;
        let target = if p.mg_dl < targets.range_low_mg_dl {
            0
        } else if p.mg_dl <= targets.range_high_mg_dl {
            1
        } else {
            2
        };
        totals.target_us[target] += covered;
        if at >= to {
            continue;
        }
        totals.readings += 1;
        let milli = milli_mg_dl(p.mg_dl);
        totals.sum_milli += milli;
        totals.sum_sq_milli += i128::from(milli) * i128::from(milli);
        days.insert(local_date(window.zone, p.at));
        match p.source {
            GlucoseSource::Cgm => {
                totals.cgm_readings += 1;
                slots.insert(at.div_euclid(CGM_SLOT_US));
                cgm_days.insert(local_date(window.zone, p.at));
            }
            GlucoseSource::Meter => totals.meter_readings += 1,
            GlucoseSource::Lab => totals.lab_readings += 1,
        }
    }
    totals.cgm_slots = slots.len() as i64;
    totals.days_with_data = days.len() as i64;
    totals.days_with_cgm = cgm_days.len() as i64;
    totals
}

const ZONES: [Tz; 5] = [
    Tz::UTC,
    Tz::Europe__Berlin,
    Tz::America__New_York,
    Tz::Asia__Kathmandu,
    Tz::Australia__Lord_Howe,
];

fn arbitrary_points() -> impl Strategy<Value = Vec<GlucosePoint>> {
    // Around the 2026 European spring change; steps from 0 (a tie) to 40 minutes, in whole
    // seconds or microseconds; values on and around the band boundaries.
    let value = prop_oneof![
        prop::sample::select(vec![
            53.9, 54.0, 69.9, 70.0, 180.0, 180.1, 250.0, 250.1, 40.0, 400.0
        ]),
        (2.0f64..25.0).prop_map(|mmol| GlucoseUnit::MmolL.to_mg_dl((mmol * 10.0).round() / 10.0)),
        (20u32..600).prop_map(f64::from),
    ];
    let source = prop::sample::select(vec![
        GlucoseSource::Cgm,
        GlucoseSource::Cgm,
        GlucoseSource::Meter,
        GlucoseSource::Lab,
    ]);
    prop::collection::vec((0i64..2_400_000_000, any::<bool>(), value, source), 0..400).prop_map(
        |steps| {
            let mut at = micros(t("2026-03-27T20:00:00Z"));
            steps
                .into_iter()
                .map(|(step, round, mg_dl, source)| {
                    at += if round {
                        step / 1_000_000 * 1_000_000
                    } else {
                        step / 7
                    };
                    GlucosePoint {
                        at: super::calendar::from_micros(at),
                        mg_dl,
                        source,
                    }
                })
                .collect()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Day by day (each day from the readings around it, as the rollups are computed) equals
    /// the whole window at once, with and without a floor; the samples survive encoding.
    #[test]
    fn days_sum_to_the_window(
        points in arbitrary_points(),
        zone in prop::sample::select(ZONES.to_vec()),
        floor_minutes in prop::option::of(0i64..6000),
        pregnancy in any::<bool>(),
    ) {
        let targets = GlucoseTargets::preset(if pregnancy { TargetPreset::Pregnancy } else { TargetPreset::Standard });
        let base = t("2026-03-27T20:00:00Z");
        let floor = floor_minutes.map(|m| base + Duration::minutes(m));
        let window = TrendWindow::new(zone, date("2026-03-27"), date("2026-04-01"), floor, t("2026-04-03T00:00:00Z"));
        let days: Vec<GlucoseDay> = window.days.iter().map(|d| {
            let near: Vec<GlucosePoint> = points
                .iter()
                .filter(|p| micros(p.at) >= micros(d.start) - MAX_DURATION_CAP_US
                    && micros(p.at) <= micros(d.end) + MAX_DURATION_CAP_US)
                .copied()
                .collect();
            glucose_day(d, &near, floor, &targets)
        }).collect();
        prop_assert_eq!(sum_totals(&days), direct_totals(&points, &window, &targets));
        for day in &days {
            prop_assert_eq!(samples::decode(&samples::encode(&day.samples)), Ok(day.samples.clone()));
        }
        // Episodes from the days' samples equal episodes from the whole series at once.
        let usable: Vec<&GlucosePoint> = points.iter().filter(|p| p.at >= window.start()).collect();
        let direct: Vec<Sample> = usable
            .iter()
            .enumerate()
            .filter(|(_, p)| p.at < window.end())
            .map(|(i, p)| {
                let cap = duration_cap_us(p.source);
                let duration = usable.get(i + 1).map_or(cap, |n| (micros(n.at) - micros(p.at)).min(cap));
                Sample { at: p.at, mg_dl: p.mg_dl, duration_us: duration }
            })
            .collect();
        let trend = glucose_trend(&window, &days, 15);
        prop_assert_eq!(trend.episodes, episodes(&direct, window.end()));
        let readings: usize = trend.agp.iter().map(|b| b.readings).sum();
        prop_assert_eq!(readings as i64, trend.summary.totals.readings);
    }
}

/// The readings of `points` a rollup of `day` loads to continue it: from the start of the
/// slot of the day's latest reading on (the tail), and after it up to a cap beyond the day.
fn tail_and_new(
    day: &GlucoseDay,
    bounds: &DayBounds,
    points: &[GlucosePoint],
) -> Option<(Vec<GlucosePoint>, Vec<GlucosePoint>)> {
    let latest = day.samples.last()?.at;
    let tail = points
        .iter()
        .filter(|p| p.at >= cgm_slot_start(latest) && p.at <= latest)
        .copied()
        .collect();
    let new = points
        .iter()
        .filter(|p| p.at > latest && micros(p.at) <= micros(bounds.end) + MAX_DURATION_CAP_US)
        .copied()
        .collect();
    Some((tail, new))
}

#[test]
fn a_day_continued_with_later_readings_equals_the_day_computed_again() {
    let bounds = DayBounds::of(Tz::UTC, date("2026-03-02"));
    let start = t("2026-03-02T06:00:00Z");
    // A CGM every 5 minutes, a finger stick in the same slot as a CGM reading, lows and highs.
    let mut points: Vec<GlucosePoint> = (0..60)
        .map(|i| {
            cgm(
                start + Duration::minutes(5 * i),
                [65.0, 120.0, 190.0, 260.0][i as usize % 4],
            )
        })
        .collect();
    points.push(GlucosePoint {
        at: start + Duration::minutes(151),
        mg_dl: 50.0,
        source: GlucoseSource::Meter,
    });
    points.sort_by_key(|p| p.at);
    for split in 1..points.len() {
        let before = glucose_day(&bounds, &points[..split], None, &standard());
        let (tail, new) = tail_and_new(&before, &bounds, &points).expect("readings");
        let continued = continue_glucose_day(&before, &bounds, &tail, &new, &standard())
            .expect("continues: every reading is hours before midnight");
        assert_eq!(
            continued,
            glucose_day(&bounds, &points, None, &standard()),
            "split {split}"
        );
    }
}

#[test]
fn a_day_is_not_continued_across_the_reach_of_midnight() {
    let bounds = DayBounds::of(Tz::UTC, date("2026-03-02"));
    let points = [
        cgm(t("2026-03-02T23:30:00Z"), 100.0),
        cgm(t("2026-03-02T23:50:00Z"), 100.0),
    ];
    let before = glucose_day(&bounds, &points[..1], None, &standard());
    let (tail, new) = tail_and_new(&before, &bounds, &points).expect("readings");
    assert_eq!(
        continue_glucose_day(&before, &bounds, &tail, &new, &standard()),
        None
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Wherever a day can be continued with the readings after its latest, continuing it
    /// gives exactly the day computed from all the readings.
    #[test]
    fn continuing_a_day_equals_computing_it_again(
        points in arbitrary_points(),
        zone in prop::sample::select(ZONES.to_vec()),
        split in 0usize..400,
        pregnancy in any::<bool>(),
    ) {
        let targets = GlucoseTargets::preset(if pregnancy { TargetPreset::Pregnancy } else { TargetPreset::Standard });
        let split = split.min(points.len());
        let window = TrendWindow::new(zone, date("2026-03-27"), date("2026-04-01"), None, t("2026-04-03T00:00:00Z"));
        for bounds in &window.days {
            let before = glucose_day(bounds, &points[..split], None, &targets);
            let Some((tail, new)) = tail_and_new(&before, bounds, &points) else {
                continue;
            };
            if let Some(continued) = continue_glucose_day(&before, bounds, &tail, &new, &targets) {
                prop_assert_eq!(continued, glucose_day(bounds, &points, None, &targets));
            }
        }
    }
}

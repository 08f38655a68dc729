//! The oracle: a small, independent check of the default alert rules
//! (`alerts-contract`, `docs/simulator.md`) on the readings a scenario emitted.
//!
//! It is deliberately not the alert engine's code. For each rule every reading gets a level:
//! **clear**, **near** (within a safety margin of the threshold), **fires** (past it) or
//! **strong** (well past it, so any reasonable implementation of the rule fires). A run of
//! consecutive non-clear readings is an episode. An episode that reaches *strong* is an
//! expected alert, its window running from the episode's first near reading to its last
//! firing one; an episode that only comes *near* or only just *fires* is ambiguous, and a
//! scenario whose readings hold an ambiguous episode is rejected (the simulator tries another
//! variant), so "exactly these alerts and no others" is a claim tests can check.

use crate::reading::SimReading;
use chronicle_domain::DeviceKind;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// A rule's default thresholds, as the contract states them.
pub mod rules {
    pub const GLUCOSE_VERY_LOW: &str = "glucose_very_low";
    pub const GLUCOSE_LOW: &str = "glucose_low";
    pub const GLUCOSE_PREDICTED_LOW: &str = "glucose_predicted_low";
    pub const GLUCOSE_VERY_HIGH: &str = "glucose_very_high";
    pub const GLUCOSE_RAPID_FALL: &str = "glucose_rapid_fall";
    pub const BP_CRISIS: &str = "bp_crisis";
    pub const BP_LOW: &str = "bp_low";
    pub const BP_STAGE2_TREND: &str = "bp_stage2_trend";
    pub const NO_DATA: &str = "no_data";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Clear,
    Near,
    Fires,
    Strong,
}

/// An alert the readings must raise.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Firing {
    pub rule: &'static str,
    pub severity: &'static str,
    /// Index of the device (in the patient's list) whose readings raise it.
    pub device: usize,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// The first reading (or, for `no_data`, the instant) past the threshold.
    pub first_trigger: DateTime<Utc>,
}

/// An episode too close to a threshold to say whether the rule fires.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ambiguity {
    pub rule: &'static str,
    pub device: usize,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Assessment {
    pub firings: Vec<Firing>,
    pub ambiguities: Vec<Ambiguity>,
}

impl Assessment {
    /// The rules that fire.
    pub fn rules(&self) -> Vec<&'static str> {
        let mut rules: Vec<_> = self.firings.iter().map(|f| f.rule).collect();
        rules.sort_unstable();
        rules.dedup();
        rules
    }
}

#[derive(Debug, Clone, Copy)]
struct Glucose {
    at: DateTime<Utc>,
    mg_dl: f64,
}

#[derive(Debug, Clone, Copy)]
struct Pressure {
    at: DateTime<Utc>,
    systolic: f64,
    diastolic: f64,
}

/// Readings more than this apart are not consecutive CGM readings.
const CONSECUTIVE: Duration = Duration::minutes(10);

/// Assesses every device's readings against every rule.
pub fn assess(readings: &[SimReading]) -> Assessment {
    let mut by_device: BTreeMap<usize, (DeviceKind, Vec<&SimReading>)> = BTreeMap::new();
    for r in readings {
        by_device
            .entry(r.device())
            .or_insert_with(|| (r.device_kind(), Vec::new()))
            .1
            .push(r);
    }
    let mut out = Assessment::default();
    for (device, (kind, mut list)) in by_device {
        list.sort_by_key(|r| r.measured_at_utc());
        // Only measurements say a device is sending, as on the server (`no_data`).
        let times: Vec<DateTime<Utc>> = list
            .iter()
            .filter(|r| r.is_measurement())
            .map(|r| r.measured_at_utc())
            .collect();
        match kind {
            DeviceKind::Cgm | DeviceKind::Meter | DeviceKind::Uploader => {
                let g: Vec<Glucose> = list
                    .iter()
                    .filter_map(|r| {
                        Some(Glucose {
                            at: r.measured_at_utc(),
                            mg_dl: r.glucose_mg_dl()?,
                        })
                    })
                    .collect();
                glucose_rules(&mut out, device, kind != DeviceKind::Meter, &g);
            }
            DeviceKind::Bp => {
                let p: Vec<Pressure> = list
                    .iter()
                    .filter_map(|r| match r {
                        SimReading::BloodPressure(b) => Some(Pressure {
                            at: b.measured_at.with_timezone(&Utc),
                            systolic: f64::from(b.systolic),
                            diastolic: f64::from(b.diastolic),
                        }),
                        SimReading::Glucose(_) | SimReading::Treatment(_) => None,
                    })
                    .collect();
                pressure_rules(&mut out, device, &p);
            }
        }
        no_data(&mut out, device, kind, &times);
    }
    out.firings.sort_by_key(|f| (f.first_trigger, f.rule));
    out
}

/// Turns per-reading levels into firings and ambiguities.
fn episodes(
    out: &mut Assessment,
    rule: &'static str,
    severity: &'static str,
    device: usize,
    levels: &[(DateTime<Utc>, Level)],
) {
    let mut i = 0;
    while i < levels.len() {
        if levels[i].1 == Level::Clear {
            i += 1;
            continue;
        }
        let start = i;
        while i < levels.len() && levels[i].1 != Level::Clear {
            i += 1;
        }
        let run = &levels[start..i];
        let top = run.iter().map(|(_, l)| *l).max().unwrap_or(Level::Clear);
        if top == Level::Strong {
            let firing: Vec<_> = run.iter().filter(|(_, l)| *l >= Level::Fires).collect();
            out.firings.push(Firing {
                rule,
                severity,
                device,
                not_before: run[0].0,
                not_after: firing.last().map_or(run[0].0, |(t, _)| *t),
                first_trigger: firing.first().map_or(run[0].0, |(t, _)| *t),
            });
        } else {
            out.ambiguities.push(Ambiguity {
                rule,
                device,
                at: run[0].0,
            });
        }
    }
}

fn level(fires: bool, strong: bool, near: bool) -> Level {
    if strong && fires {
        Level::Strong
    } else if fires {
        Level::Fires
    } else if near {
        Level::Near
    } else {
        Level::Clear
    }
}

/// Length of the run of consecutive readings ending at each index that satisfy `cond`.
fn runs(g: &[Glucose], cgm: bool, cond: impl Fn(&Glucose) -> bool) -> Vec<usize> {
    let mut out = Vec::with_capacity(g.len());
    for (i, x) in g.iter().enumerate() {
        let previous = if i > 0 && (!cgm || x.at - g[i - 1].at <= CONSECUTIVE) {
            out[i - 1]
        } else {
            0
        };
        out.push(if cond(x) { previous + 1 } else { 0 });
    }
    out
}

fn glucose_rules(out: &mut Assessment, device: usize, cgm: bool, g: &[Glucose]) {
    use rules::*;
    // Below 54 mg/dL ("LO" is stored at 40).
    let very_low: Vec<_> = g
        .iter()
        .map(|x| (x.at, level(x.mg_dl < 54.0, x.mg_dl <= 50.0, x.mg_dl < 60.0)))
        .collect();
    episodes(out, GLUCOSE_VERY_LOW, "urgent", device, &very_low);

    // Below 70: three consecutive CGM readings, or one meter reading.
    let low: Vec<_> = if cgm {
        let below = runs(g, true, |x| x.mg_dl < 70.0);
        let deep = runs(g, true, |x| x.mg_dl <= 67.0);
        g.iter()
            .enumerate()
            .map(|(i, x)| {
                (
                    x.at,
                    level(below[i] >= 3, below[i] >= 4 && deep[i] >= 3, x.mg_dl < 75.0),
                )
            })
            .collect()
    } else {
        g.iter()
            .map(|x| (x.at, level(x.mg_dl < 70.0, x.mg_dl <= 65.0, x.mg_dl < 78.0)))
            .collect()
    };
    episodes(out, GLUCOSE_LOW, "warning", device, &low);

    if cgm {
        // A straight line through the last 30 minutes, 20 minutes ahead.
        let predicted: Vec<_> = g
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let p = projection(g, i).unwrap_or(f64::INFINITY);
                (x.at, level(p < 55.0, p <= 45.0, p < 70.0))
            })
            .collect();
        episodes(out, GLUCOSE_PREDICTED_LOW, "warning", device, &predicted);

        // Falling faster than 3 mg/dL per minute between consecutive readings.
        let rates: Vec<f64> = g
            .iter()
            .enumerate()
            .map(|(i, x)| {
                if i == 0 || x.at - g[i - 1].at > CONSECUTIVE {
                    return 0.0;
                }
                let minutes = (x.at - g[i - 1].at).num_seconds() as f64 / 60.0;
                (g[i - 1].mg_dl - x.mg_dl) / minutes.max(1.0)
            })
            .collect();
        let fall: Vec<_> = g
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let strong = i >= 2 && rates[i - 2..=i].iter().all(|r| *r >= 3.5);
                (x.at, level(rates[i] > 3.0, strong, rates[i] > 2.2))
            })
            .collect();
        episodes(out, GLUCOSE_RAPID_FALL, "warning", device, &fall);
    }

    // Above 250 for 60 minutes (warning); CGM only, a meter cannot show "sustained".
    let above = runs(g, cgm, |x| x.mg_dl > 250.0);
    let sustained: Vec<_> = g
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let since = if above[i] > 0 {
                x.at - g[i + 1 - above[i]].at
            } else {
                Duration::zero()
            };
            let fires = cgm && since >= Duration::minutes(60);
            let strong = since >= Duration::minutes(75);
            (x.at, level(fires, strong, x.mg_dl > 235.0))
        })
        .collect();
    episodes(out, GLUCOSE_VERY_HIGH, "warning", device, &sustained);
    // Above 400 ("HI" is stored at 400 and counts).
    let extreme: Vec<_> = g
        .iter()
        .map(|x| {
            (
                x.at,
                level(x.mg_dl >= 400.0, x.mg_dl >= 400.0, x.mg_dl > 370.0),
            )
        })
        .collect();
    episodes(out, GLUCOSE_VERY_HIGH, "urgent", device, &extreme);
}

/// The value a least-squares line through the readings of the last 30 minutes reaches 20
/// minutes after reading `i`, if there are enough recent readings (at least four over at
/// least 15 minutes, none more than 10 minutes apart).
fn projection(g: &[Glucose], i: usize) -> Option<f64> {
    let t = g[i].at;
    let mut first = i;
    while first > 0 && t - g[first - 1].at <= Duration::minutes(30) {
        if g[first].at - g[first - 1].at > CONSECUTIVE {
            break;
        }
        first -= 1;
    }
    let points = &g[first..=i];
    if points.len() < 4 || t - points[0].at < Duration::minutes(15) {
        return None;
    }
    let xs: Vec<f64> = points
        .iter()
        .map(|p| (p.at - t).num_seconds() as f64 / 60.0)
        .collect();
    let n = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / n;
    let my = points.iter().map(|p| p.mg_dl).sum::<f64>() / n;
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    let sxy: f64 = xs
        .iter()
        .zip(points)
        .map(|(x, p)| (x - mx) * (p.mg_dl - my))
        .sum();
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    Some(my + slope * (20.0 - mx))
}

fn pressure_rules(out: &mut Assessment, device: usize, p: &[Pressure]) {
    use rules::*;
    let crisis: Vec<_> = p
        .iter()
        .map(|x| {
            (
                x.at,
                level(
                    x.systolic > 180.0 || x.diastolic > 120.0,
                    x.systolic >= 188.0 || x.diastolic >= 126.0,
                    x.systolic > 170.0 || x.diastolic > 112.0,
                ),
            )
        })
        .collect();
    episodes(out, BP_CRISIS, "urgent", device, &crisis);
    let low: Vec<_> = p
        .iter()
        .map(|x| {
            (
                x.at,
                level(
                    x.systolic < 90.0 || x.diastolic < 60.0,
                    x.systolic <= 85.0 || x.diastolic <= 56.0,
                    x.systolic < 97.0 || x.diastolic < 64.0,
                ),
            )
        })
        .collect();
    episodes(out, BP_LOW, "warning", device, &low);
    // The mean of the home readings of the last seven days.
    let trend: Vec<_> = p
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let window: Vec<&Pressure> = p[..=i]
                .iter()
                .filter(|y| x.at - y.at < Duration::days(7))
                .collect();
            let n = window.len() as f64;
            let s = window.iter().map(|y| y.systolic).sum::<f64>() / n;
            let d = window.iter().map(|y| y.diastolic).sum::<f64>() / n;
            (
                x.at,
                level(
                    s >= 135.0 || d >= 85.0,
                    s >= 139.0 || d >= 88.0,
                    s >= 130.0 || d >= 81.0,
                ),
            )
        })
        .collect();
    episodes(out, BP_STAGE2_TREND, "info", device, &trend);
}

/// Silence: a CGM quiet for 30 minutes, a meter or cuff for 3 days (between readings; the
/// end of the readings is the end of the scenario, not a silence).
fn no_data(out: &mut Assessment, device: usize, kind: DeviceKind, times: &[DateTime<Utc>]) {
    let (threshold, strong, near) = match kind {
        DeviceKind::Cgm | DeviceKind::Uploader => (
            Duration::minutes(30),
            Duration::minutes(45),
            Duration::minutes(15),
        ),
        DeviceKind::Meter | DeviceKind::Bp => {
            (Duration::days(3), Duration::hours(84), Duration::days(2))
        }
    };
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        if gap >= strong {
            out.firings.push(Firing {
                rule: rules::NO_DATA,
                severity: "info",
                device,
                not_before: pair[0] + threshold,
                not_after: pair[1],
                first_trigger: pair[0] + threshold,
            });
        } else if gap > near {
            out.ambiguities.push(Ambiguity {
                rule: rules::NO_DATA,
                device,
                at: pair[0],
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::{GlucoseSample, GlucoseValue};
    use chronicle_domain::{GlucoseSource, GlucoseUnit};
    use chrono::TimeZone;

    fn cgm(values: &[f64]) -> Vec<SimReading> {
        let start = Utc
            .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
            .single()
            .expect("date");
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                SimReading::Glucose(GlucoseSample {
                    device: 0,
                    source: GlucoseSource::Cgm,
                    measured_at: (start + Duration::minutes(5 * i as i64)).fixed_offset(),
                    value: GlucoseValue::Number(*v),
                    unit: GlucoseUnit::MgDl,
                    seq: i as u64,
                    true_mg_dl: *v,
                })
            })
            .collect()
    }

    #[test]
    fn steady_readings_raise_nothing() {
        let a = assess(&cgm(&[120.0; 40]));
        assert!(a.firings.is_empty() && a.ambiguities.is_empty(), "{a:?}");
    }

    #[test]
    fn a_hypo_raises_the_low_rules_and_nothing_else() {
        let mut values = vec![140.0; 12];
        values.extend([
            130.0, 120.0, 110.0, 100.0, 90.0, 80.0, 70.0, 62.0, 55.0, 48.0, 44.0,
        ]);
        values.extend([
            44.0, 46.0, 60.0, 80.0, 100.0, 115.0, 125.0, 130.0, 130.0, 130.0,
        ]);
        values.extend(vec![130.0; 10]);
        let a = assess(&cgm(&values));
        assert!(a.ambiguities.is_empty(), "{a:?}");
        assert_eq!(
            a.rules(),
            vec![
                rules::GLUCOSE_LOW,
                rules::GLUCOSE_PREDICTED_LOW,
                rules::GLUCOSE_VERY_LOW
            ]
        );
    }

    #[test]
    fn borderline_readings_are_ambiguous() {
        let mut values = vec![140.0; 12];
        values.extend([120.0, 100.0, 80.0, 72.0, 72.0, 80.0, 100.0, 120.0, 140.0]);
        values.extend(vec![140.0; 10]);
        let a = assess(&cgm(&values));
        assert!(!a.ambiguities.is_empty(), "{a:?}");
    }

    #[test]
    fn a_gap_is_no_data() {
        let mut r = cgm(&[120.0; 30]);
        r.drain(10..20);
        let a = assess(&r);
        assert_eq!(a.rules(), vec![rules::NO_DATA]);
        assert_eq!(
            a.firings[0].not_before - a.firings[0].first_trigger,
            Duration::zero()
        );
    }
}

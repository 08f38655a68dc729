//! What a patient's stored readings show, rule by rule.
//!
//! Each rule turns the series into a [`Timeline`] of marks, one per reading it judges: the
//! condition *holds* at the reading (a [`Finding`], with its severity and evidence), is
//! *clear*, or the reading says nothing either way (not yet sustained, not enough data for
//! a forecast: no mark). A run of holds not interrupted by a clear is an [`Episode`].
//! Timelines are sorted by `measured_at`, so the result is the same whatever order the
//! readings arrived in.

use super::forecast::SlidingFit;
use super::thresholds::AlertThresholds;
use super::{RuleId, Severity, category_of_device};
use crate::device::DeviceKind;
use crate::reading::{GlucoseFlag, GlucoseSource};
use crate::sharing::DataCategory;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Two readings of a device further apart than this are not consecutive: the series has a
/// hole (a 5-minute CGM missed two readings; a 15-minute one missed one).
pub const MAX_GAP: Duration = Duration::minutes(16);

/// A sustained condition needs at least this many consecutive readings ("< 70 mg/dL for
/// 15 min (3 CGM readings)")…
pub const MIN_SUSTAINED_READINGS: usize = 3;
/// …spanning the rule's duration less one CGM interval: each reading stands for the five
/// minutes until the next, so three readings 5 minutes apart cover 15 minutes.
pub const CGM_INTERVAL: Duration = Duration::minutes(5);

/// The blood-pressure trend is judged on the readings of this period.
pub const HOME_MEAN_PERIOD: Duration = Duration::days(7);

/// A stored glucose reading, as the rules need it.
#[derive(Debug, Clone, PartialEq)]
pub struct GlucosePoint {
    pub device_id: String,
    pub measured_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub value_mg_dl: f64,
    pub source: GlucoseSource,
    pub flag: Option<GlucoseFlag>,
}

/// A stored blood-pressure reading, as the rules need it.
#[derive(Debug, Clone, PartialEq)]
pub struct PressurePoint {
    pub device_id: String,
    pub measured_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub systolic: u16,
    pub diastolic: u16,
}

/// What a device last sent, for `no_data`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceActivity {
    pub device_id: String,
    pub kind: DeviceKind,
    /// The newest `measured_at` of its readings.
    pub last_measured_at: DateTime<Utc>,
}

/// What the care team is shown about why a rule fired. Only the fields of the rule are set.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Evidence {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_mg_dl: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flag: Option<GlucoseFlag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<GlucoseSource>,
    /// `glucose_predicted_low`: the forecast value at the horizon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast_mg_dl: Option<f64>,
    /// `glucose_rapid_fall`: the fall over the last three readings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fall_mg_dl_per_minute: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub systolic: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diastolic: Option<u16>,
    /// `bp_stage2_trend`: the 7-day means and how many readings they cover.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_systolic: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_diastolic: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readings: Option<u32>,
    /// `no_data`: the silent device's kind and its last reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_kind: Option<DeviceKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_reading_at: Option<DateTime<Utc>>,
}

/// The condition of a rule holds at a reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// When the condition held: the reading's `measured_at` (for `no_data`, the moment the
    /// device's silence passed the threshold).
    pub at: DateTime<Utc>,
    /// When Chronicle received the reading (for `no_data`, the moment it was detected).
    pub received_at: DateTime<Utc>,
    pub device_id: String,
    pub severity: Severity,
    pub evidence: Evidence,
}

impl Finding {
    /// Received within `late_after` of its measurement: it may raise a live alarm.
    pub fn is_live(&self, late_after: Duration) -> bool {
        self.received_at - self.at <= late_after
    }
}

/// One judged reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Mark {
    /// Boxed: nearly every mark is a clear, and a timeline holds one mark per reading judged,
    /// so a clear stays as small as its time.
    Holds(Box<Finding>),
    Clear(DateTime<Utc>),
}

impl Mark {
    fn holding(finding: Finding) -> Mark {
        Mark::Holds(Box::new(finding))
    }

    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Mark::Holds(f) => f.at,
            Mark::Clear(at) => *at,
        }
    }
}

/// A rule's marks over a patient's series, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub rule: RuleId,
    pub category: DataCategory,
    pub marks: Vec<Mark>,
}

/// A run of holds, up to the first clear after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// The first reading at which the condition held.
    pub first: Finding,
    /// The first live one (received in time): what may raise a live alarm. `None` for an
    /// episode seen only in late data: a historical event.
    pub first_live: Option<Finding>,
    pub last_hold_at: DateTime<Utc>,
    /// The first clear reading after the episode; `None` while it still holds.
    pub cleared_at: Option<DateTime<Utc>>,
    /// The highest severity of any hold, and of the live holds.
    pub severity: Severity,
    pub live_severity: Option<Severity>,
}

impl Episode {
    pub fn started_at(&self) -> DateTime<Utc> {
        self.first.at
    }
}

impl Timeline {
    fn new(rule: RuleId, category: DataCategory, mut marks: Vec<Mark>) -> Timeline {
        // Ties (two devices at one instant) put a hold first, so they cannot split an episode
        // differently depending on which device's reading was listed first.
        marks.sort_by(|a, b| {
            a.at()
                .cmp(&b.at())
                .then_with(|| matches!(b, Mark::Holds(_)).cmp(&matches!(a, Mark::Holds(_))))
        });
        Timeline {
            rule,
            category,
            marks,
        }
    }

    /// The episodes, oldest first.
    pub fn episodes(&self, late_after: Duration) -> Vec<Episode> {
        let mut out: Vec<Episode> = Vec::new();
        let mut open = false;
        for mark in &self.marks {
            match mark {
                Mark::Holds(finding) => {
                    let finding: &Finding = finding;
                    let live = finding.is_live(late_after);
                    match out.last_mut().filter(|_| open) {
                        Some(episode) => {
                            episode.last_hold_at = finding.at;
                            episode.severity = episode.severity.max(finding.severity);
                            if live {
                                episode.live_severity = Some(
                                    episode
                                        .live_severity
                                        .map_or(finding.severity, |s| s.max(finding.severity)),
                                );
                                if episode.first_live.is_none() {
                                    episode.first_live = Some(finding.clone());
                                }
                            }
                        }
                        None => {
                            out.push(Episode {
                                first: finding.clone(),
                                first_live: live.then(|| finding.clone()),
                                last_hold_at: finding.at,
                                cleared_at: None,
                                severity: finding.severity,
                                live_severity: live.then_some(finding.severity),
                            });
                            open = true;
                        }
                    }
                }
                Mark::Clear(at) => {
                    if let Some(episode) = out.last_mut().filter(|_| open) {
                        episode.cleared_at = Some(*at);
                        open = false;
                    }
                }
            }
        }
        out
    }

    /// The first clear mark after `at`, unless the condition held again after it.
    pub fn clear_since(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut since = None;
        for mark in self.marks.iter().filter(|m| m.at() > at) {
            match mark {
                Mark::Clear(t) => {
                    since.get_or_insert(*t);
                }
                Mark::Holds(_) => since = None,
            }
        }
        since
    }

    /// The newest hold.
    pub fn last_hold_at(&self) -> Option<DateTime<Utc>> {
        self.marks.iter().rev().find_map(|m| match m {
            Mark::Holds(f) => Some(f.at),
            Mark::Clear(_) => None,
        })
    }
}

/// A device's readings, oldest first.
fn by_device<T>(
    points: &[T],
    device: impl Fn(&T) -> &str,
    at: impl Fn(&T) -> DateTime<Utc>,
) -> BTreeMap<&str, Vec<&T>> {
    let mut series: BTreeMap<&str, Vec<&T>> = BTreeMap::new();
    for p in points {
        series.entry(device(p)).or_default().push(p);
    }
    for s in series.values_mut() {
        s.sort_by_key(|p| at(p));
    }
    series
}

/// The run of consecutive readings of one series (no hole longer than [`MAX_GAP`]) that all
/// satisfy a predicate, followed reading by reading so each step costs the same however long
/// the run.
#[derive(Debug, Default)]
struct Run {
    start: Option<usize>,
}

impl Run {
    /// Moves to reading `i` of `series` (each reading in turn), which satisfies the predicate
    /// or not; returns whether it ends a run lasting `duration` (see
    /// [`MIN_SUSTAINED_READINGS`]).
    fn advance(
        &mut self,
        series: &[&GlucosePoint],
        i: usize,
        satisfies: bool,
        duration: Duration,
    ) -> bool {
        if !satisfies {
            self.start = None;
            return false;
        }
        let start = match self.start {
            Some(start) if series[i].measured_at - series[i - 1].measured_at <= MAX_GAP => start,
            _ => i,
        };
        self.start = Some(start);
        let count = i - start + 1;
        let span = series[i].measured_at - series[start].measured_at;
        count >= MIN_SUSTAINED_READINGS && span >= duration - CGM_INTERVAL
    }
}

fn glucose_finding(p: &GlucosePoint, severity: Severity, evidence: Evidence) -> Finding {
    Finding {
        at: p.measured_at,
        received_at: p.received_at,
        device_id: p.device_id.clone(),
        severity,
        evidence: Evidence {
            value_mg_dl: Some(p.value_mg_dl),
            flag: p.flag,
            source: Some(p.source),
            ..evidence
        },
    }
}

fn minutes(d: Duration) -> f64 {
    d.num_milliseconds() as f64 / 60_000.0
}

/// The five glucose rules' timelines.
pub fn glucose_timelines(points: &[GlucosePoint], t: &AlertThresholds) -> Vec<Timeline> {
    let g = &t.glucose;
    let mut very_low = Vec::new();
    let mut low = Vec::new();
    let mut predicted_low = Vec::new();
    let mut very_high = Vec::new();
    let mut rapid_fall = Vec::new();
    let hold = |p: &GlucosePoint, severity| {
        Mark::holding(glucose_finding(p, severity, Evidence::default()))
    };
    let is_urgent_high =
        |p: &GlucosePoint| p.flag == Some(GlucoseFlag::Hi) || p.value_mg_dl > g.urgent_high_mg_dl;

    for series in by_device(points, |p| p.device_id.as_str(), |p| p.measured_at).into_values() {
        // The forecast's line through the readings of its window (slides with them).
        let mut fit = SlidingFit::default();
        let (mut below_run, mut above_run) = (Run::default(), Run::default());
        for (i, p) in series.iter().copied().enumerate() {
            // Runs are followed through every reading, finger-sticks included, and judged
            // at CGM readings.
            let below = p.value_mg_dl < g.low_mg_dl;
            let sustained_low =
                below_run.advance(&series, i, below, Duration::minutes(g.low_minutes.into()));
            let above = p.value_mg_dl > g.very_high_mg_dl;
            let sustained_high = above_run.advance(
                &series,
                i,
                above,
                Duration::minutes(g.very_high_minutes.into()),
            );
            // Any reading: very low, and the urgent high.
            very_low.push(if p.value_mg_dl < g.very_low_mg_dl {
                hold(p, Severity::Urgent)
            } else {
                Mark::Clear(p.measured_at)
            });
            if p.source != GlucoseSource::Cgm {
                // A single finger-stick (or laboratory) reading is judged on its own.
                low.push(if p.value_mg_dl < g.low_mg_dl {
                    hold(p, Severity::Warning)
                } else {
                    Mark::Clear(p.measured_at)
                });
                if is_urgent_high(p) {
                    very_high.push(hold(p, Severity::Urgent));
                } else if p.value_mg_dl <= g.very_high_mg_dl {
                    very_high.push(Mark::Clear(p.measured_at));
                }
                continue;
            }

            // CGM: sustained lows and highs.
            if sustained_low {
                low.push(hold(p, Severity::Warning));
            } else if !below {
                low.push(Mark::Clear(p.measured_at));
            }
            if is_urgent_high(p) {
                very_high.push(hold(p, Severity::Urgent));
            } else if sustained_high {
                very_high.push(hold(p, Severity::Warning));
            } else if !above {
                very_high.push(Mark::Clear(p.measured_at));
            }

            // Rapid fall over the last three consecutive readings.
            if i >= 2
                && p.measured_at - series[i - 1].measured_at <= MAX_GAP
                && series[i - 1].measured_at - series[i - 2].measured_at <= MAX_GAP
            {
                let earlier = series[i - 2];
                let fall = (earlier.value_mg_dl - p.value_mg_dl)
                    / minutes(p.measured_at - earlier.measured_at);
                rapid_fall.push(if fall > g.rapid_fall_mg_dl_per_minute {
                    Mark::holding(glucose_finding(
                        p,
                        Severity::Warning,
                        Evidence {
                            fall_mg_dl_per_minute: Some(round(fall, 2)),
                            ..Evidence::default()
                        },
                    ))
                } else {
                    Mark::Clear(p.measured_at)
                });
            }

            // Predicted low: from the whole window of readings before this one, never across
            // a hole (a forecast at a late reading is history, like any other finding).
            fit.push(p.measured_at, p.value_mg_dl);
            let horizon = Duration::minutes(g.predicted_low_horizon_minutes.into());
            if let Some(forecast) = fit.forecast(horizon) {
                predicted_low.push(if forecast < g.predicted_low_mg_dl {
                    Mark::holding(glucose_finding(
                        p,
                        Severity::Warning,
                        Evidence {
                            forecast_mg_dl: Some(round(forecast, 1)),
                            ..Evidence::default()
                        },
                    ))
                } else {
                    Mark::Clear(p.measured_at)
                });
            }
        }
    }
    let glucose = DataCategory::Glucose;
    vec![
        Timeline::new(RuleId::GlucoseVeryLow, glucose, very_low),
        Timeline::new(RuleId::GlucoseLow, glucose, low),
        Timeline::new(RuleId::GlucosePredictedLow, glucose, predicted_low),
        Timeline::new(RuleId::GlucoseVeryHigh, glucose, very_high),
        Timeline::new(RuleId::GlucoseRapidFall, glucose, rapid_fall),
    ]
}

/// The three blood-pressure rules' timelines.
pub fn pressure_timelines(points: &[PressurePoint], t: &AlertThresholds) -> Vec<Timeline> {
    let b = &t.blood_pressure;
    let finding = |p: &PressurePoint, severity, evidence: Evidence| Finding {
        at: p.measured_at,
        received_at: p.received_at,
        device_id: p.device_id.clone(),
        severity,
        evidence: Evidence {
            systolic: Some(p.systolic),
            diastolic: Some(p.diastolic),
            ..evidence
        },
    };
    let mut sorted: Vec<&PressurePoint> = points.iter().collect();
    sorted.sort_by(|a, b| (a.measured_at, &a.device_id).cmp(&(b.measured_at, &b.device_id)));
    let mut crisis = Vec::new();
    let mut low = Vec::new();
    let mut stage2 = Vec::new();
    let mut week_start = 0;
    for (i, p) in sorted.iter().copied().enumerate() {
        crisis.push(
            if p.systolic > b.crisis_systolic || p.diastolic > b.crisis_diastolic {
                Mark::holding(finding(p, Severity::Urgent, Evidence::default()))
            } else {
                Mark::Clear(p.measured_at)
            },
        );
        low.push(
            if p.systolic < b.low_systolic || p.diastolic < b.low_diastolic {
                Mark::holding(finding(p, Severity::Warning, Evidence::default()))
            } else {
                Mark::Clear(p.measured_at)
            },
        );
        // The home mean of the 7 days ending at this reading.
        while sorted[week_start].measured_at <= p.measured_at - HOME_MEAN_PERIOD {
            week_start += 1;
        }
        let week = &sorted[week_start..=i];
        if week.len() >= b.stage2_min_readings as usize {
            let n = week.len() as f64;
            let mean_systolic = week.iter().map(|q| f64::from(q.systolic)).sum::<f64>() / n;
            let mean_diastolic = week.iter().map(|q| f64::from(q.diastolic)).sum::<f64>() / n;
            stage2.push(
                if mean_systolic >= f64::from(b.stage2_mean_systolic)
                    || mean_diastolic >= f64::from(b.stage2_mean_diastolic)
                {
                    Mark::holding(finding(
                        p,
                        Severity::Info,
                        Evidence {
                            mean_systolic: Some(round(mean_systolic, 1)),
                            mean_diastolic: Some(round(mean_diastolic, 1)),
                            readings: Some(week.len() as u32),
                            ..Evidence::default()
                        },
                    ))
                } else {
                    Mark::Clear(p.measured_at)
                },
            );
        }
    }
    let bp = DataCategory::BloodPressure;
    vec![
        Timeline::new(RuleId::BpCrisis, bp, crisis),
        Timeline::new(RuleId::BpLow, bp, low),
        Timeline::new(RuleId::BpStage2Trend, bp, stage2),
    ]
}

/// `no_data`: per category, the silence of its devices that have sent before. A device
/// never heard from is not "silent" (it has not started); a revoked one is not asked.
/// The finding is the most recently silenced device: `at` is when its silence passed the
/// threshold, `evidence.last_reading_at` its last reading.
pub fn silent_devices(
    devices: &[DeviceActivity],
    t: &AlertThresholds,
    now: DateTime<Utc>,
) -> BTreeMap<DataCategory, Option<Finding>> {
    let mut out: BTreeMap<DataCategory, Option<Finding>> = BTreeMap::new();
    for d in devices {
        let category = category_of_device(d.kind);
        let entry = out.entry(category).or_insert(None);
        let silent_at = d.last_measured_at + t.silence_allowed(d.kind);
        if silent_at > now {
            continue;
        }
        let newer = entry
            .as_ref()
            .is_none_or(|f| f.evidence.last_reading_at < Some(d.last_measured_at));
        if newer {
            *entry = Some(Finding {
                at: silent_at,
                received_at: now,
                device_id: d.device_id.clone(),
                severity: Severity::Info,
                evidence: Evidence {
                    device_kind: Some(d.kind),
                    last_reading_at: Some(d.last_measured_at),
                    ..Evidence::default()
                },
            });
        }
    }
    out
}

/// Silences that late data reveals: two consecutive readings of a device further apart than
/// its kind may stay silent, the second of which arrived late (a backlog: the device was not
/// heard in real time, so no live `no_data` covered the silence as it happened). Each is a
/// finding at the moment the silence passed the threshold; they become historical events.
/// A silence ended by a live reading was seen live by the scheduler and is not repeated here.
pub fn revealed_silences(
    glucose: &[GlucosePoint],
    pressure: &[PressurePoint],
    t: &AlertThresholds,
) -> Vec<(DataCategory, Finding)> {
    let mut out = Vec::new();
    let mut reveal = |kind: DeviceKind, device: &str, times: &[(DateTime<Utc>, DateTime<Utc>)]| {
        for pair in times.windows(2) {
            let ((last, _), (next, next_received)) = (pair[0], pair[1]);
            let silent_at = last + t.silence_allowed(kind);
            if next > silent_at && next_received - next > t.late_after() {
                out.push((
                    category_of_device(kind),
                    Finding {
                        at: silent_at,
                        received_at: next_received,
                        device_id: device.to_owned(),
                        severity: Severity::Info,
                        evidence: Evidence {
                            device_kind: Some(kind),
                            last_reading_at: Some(last),
                            ..Evidence::default()
                        },
                    },
                ));
            }
        }
    };
    for (device, series) in by_device(glucose, |p| p.device_id.as_str(), |p| p.measured_at) {
        let kind = if series.iter().any(|p| p.source == GlucoseSource::Cgm) {
            DeviceKind::Cgm
        } else {
            DeviceKind::Meter
        };
        let times: Vec<_> = series
            .iter()
            .map(|p| (p.measured_at, p.received_at))
            .collect();
        reveal(kind, device, &times);
    }
    for (device, series) in by_device(pressure, |p| p.device_id.as_str(), |p| p.measured_at) {
        let times: Vec<_> = series
            .iter()
            .map(|p| (p.measured_at, p.received_at))
            .collect();
        reveal(DeviceKind::Bp, device, &times);
    }
    out
}

fn round(value: f64, decimals: i32) -> f64 {
    let factor = 10f64.powi(decimals);
    (value * factor).round() / factor
}

#[cfg(test)]
mod tests;

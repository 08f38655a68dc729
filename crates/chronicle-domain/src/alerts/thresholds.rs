//! Every alert rule's thresholds. Defaults are the field's published numbers (DESIGN,
//! "Default alert rules": International Consensus on Time in Range, Battelino et al.,
//! Diabetes Care 2019; ACC/AHA 2017 blood-pressure guideline and its home-equivalent
//! thresholds). A care team may choose a preset or set custom values, always within
//! [`SAFE_BOUNDS`], so no setting can hide a level-2 hypoglycaemia or a hypertensive crisis.

use crate::device::DeviceKind;
use crate::reading::Reading;
use crate::targets::TargetPreset;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// All thresholds of one patient. Stored as JSON in `patient_targets.alert_thresholds`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertThresholds {
    /// The preset these values come from; `custom` once a care team changed a value.
    pub preset: TargetPreset,
    pub glucose: GlucoseThresholds,
    pub blood_pressure: PressureThresholds,
    pub no_data: NoDataThresholds,
    pub timing: Timing,
}

/// Glucose thresholds, all in mg/dL (durations in minutes).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlucoseThresholds {
    /// `glucose_very_low`: a reading below this (consensus level 2 hypoglycaemia: < 54).
    pub very_low_mg_dl: f64,
    /// `glucose_low`: below this for `low_minutes` of CGM readings, or one meter reading
    /// (consensus level 1: < 70; pregnancy: < 63).
    pub low_mg_dl: f64,
    /// How long CGM readings stay below `low_mg_dl` (15 min: 3 readings 5 min apart).
    pub low_minutes: u32,
    /// `glucose_predicted_low`: the forecast crosses this…
    pub predicted_low_mg_dl: f64,
    /// …within this many minutes.
    pub predicted_low_horizon_minutes: u32,
    /// `glucose_very_high` (warning): above this for `very_high_minutes` of CGM readings.
    pub very_high_mg_dl: f64,
    pub very_high_minutes: u32,
    /// `glucose_very_high` (urgent): any reading above this, or a CGM "HI".
    pub urgent_high_mg_dl: f64,
    /// `glucose_rapid_fall`: falling faster than this many mg/dL per minute.
    pub rapid_fall_mg_dl_per_minute: f64,
}

/// Blood-pressure thresholds in mm[Hg] (ACC/AHA 2017).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PressureThresholds {
    /// `bp_crisis`: systolic above this, or diastolic above `crisis_diastolic`.
    pub crisis_systolic: u16,
    pub crisis_diastolic: u16,
    /// `bp_low`: systolic below this, or diastolic below `low_diastolic`.
    pub low_systolic: u16,
    pub low_diastolic: u16,
    /// `bp_stage2_trend`: the 7-day home mean at or above this systolic, or diastolic
    /// (home equivalent of office 140/90: 135/85)…
    pub stage2_mean_systolic: u16,
    pub stage2_mean_diastolic: u16,
    /// …over at least this many readings (a week of the home protocol has 28).
    pub stage2_min_readings: u32,
}

/// `no_data`: how long a device that has sent before may stay silent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoDataThresholds {
    pub cgm_minutes: u32,
    pub meter_days: u32,
    pub cuff_days: u32,
}

/// Live versus late, and automatic resolution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    /// A reading measured more than this before it was received is late: it is recorded as
    /// a historical event and raises no live alarm.
    pub late_after_minutes: u32,
    /// An alert resolves by itself once its condition has been clear this long.
    pub resolve_after_minutes: u32,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        AlertThresholds::preset(TargetPreset::Standard)
    }
}

impl AlertThresholds {
    /// The thresholds of a preset. The consensus changes only the time-in-range goals for
    /// older or high-risk patients, not the glucose bands, so their thresholds are the
    /// standard ones; in pregnancy the low band starts at 63 mg/dL (the range 63–140), so
    /// `glucose_low` does too. `Custom` starts from the standard values.
    pub fn preset(preset: TargetPreset) -> AlertThresholds {
        let standard = AlertThresholds {
            preset,
            glucose: GlucoseThresholds {
                very_low_mg_dl: 54.0,
                low_mg_dl: 70.0,
                low_minutes: 15,
                predicted_low_mg_dl: 55.0,
                predicted_low_horizon_minutes: 20,
                very_high_mg_dl: 250.0,
                very_high_minutes: 60,
                urgent_high_mg_dl: 400.0,
                rapid_fall_mg_dl_per_minute: 3.0,
            },
            blood_pressure: PressureThresholds {
                crisis_systolic: 180,
                crisis_diastolic: 120,
                low_systolic: 90,
                low_diastolic: 60,
                stage2_mean_systolic: 135,
                stage2_mean_diastolic: 85,
                stage2_min_readings: 12,
            },
            no_data: NoDataThresholds {
                cgm_minutes: 30,
                meter_days: 3,
                cuff_days: 3,
            },
            timing: Timing {
                late_after_minutes: 15,
                resolve_after_minutes: 30,
            },
        };
        match preset {
            TargetPreset::Standard | TargetPreset::OlderHighRisk | TargetPreset::Custom => standard,
            TargetPreset::Pregnancy => AlertThresholds {
                glucose: GlucoseThresholds {
                    low_mg_dl: 63.0,
                    ..standard.glucose
                },
                ..standard
            },
        }
    }

    /// How long a device of `kind` may stay silent.
    pub fn silence_allowed(&self, kind: DeviceKind) -> Duration {
        match kind {
            // An uploader relays a CGM's readings as they come.
            DeviceKind::Cgm | DeviceKind::Uploader => {
                Duration::minutes(i64::from(self.no_data.cgm_minutes))
            }
            DeviceKind::Meter => Duration::days(i64::from(self.no_data.meter_days)),
            DeviceKind::Bp => Duration::days(i64::from(self.no_data.cuff_days)),
        }
    }

    pub fn late_after(&self) -> Duration {
        Duration::minutes(i64::from(self.timing.late_after_minutes))
    }

    pub fn resolve_after(&self) -> Duration {
        Duration::minutes(i64::from(self.timing.resolve_after_minutes))
    }

    /// Checks every value against [`SAFE_BOUNDS`] and the order between related values.
    pub fn validate(&self) -> Result<(), InvalidThresholds> {
        let b = &SAFE_BOUNDS;
        // A threshold's name in errors is spelled from its path, so the two cannot drift apart;
        // the bounds share the field's name unless another is given.
        macro_rules! bounded {
            ($section:ident . $field:ident) => {
                bounded!($section.$field => $field)
            };
            ($section:ident . $field:ident => $bounds:ident) => {
                (
                    concat!(stringify!($section), ".", stringify!($field)),
                    f64::from(self.$section.$field),
                    b.$bounds,
                )
            };
        }
        let checks: [(&'static str, f64, (f64, f64)); 21] = [
            bounded!(glucose.very_low_mg_dl),
            bounded!(glucose.low_mg_dl),
            bounded!(glucose.low_minutes),
            bounded!(glucose.predicted_low_mg_dl),
            bounded!(glucose.predicted_low_horizon_minutes),
            bounded!(glucose.very_high_mg_dl),
            bounded!(glucose.very_high_minutes),
            bounded!(glucose.urgent_high_mg_dl),
            bounded!(glucose.rapid_fall_mg_dl_per_minute),
            bounded!(blood_pressure.crisis_systolic),
            bounded!(blood_pressure.crisis_diastolic),
            bounded!(blood_pressure.low_systolic),
            bounded!(blood_pressure.low_diastolic),
            bounded!(blood_pressure.stage2_mean_systolic),
            bounded!(blood_pressure.stage2_mean_diastolic),
            bounded!(blood_pressure.stage2_min_readings),
            bounded!(no_data.cgm_minutes => no_data_cgm_minutes),
            bounded!(no_data.meter_days => no_data_days),
            bounded!(no_data.cuff_days => no_data_days),
            bounded!(timing.late_after_minutes),
            bounded!(timing.resolve_after_minutes),
        ];
        for (field, value, (min, max)) in checks {
            if !(value.is_finite() && (min..=max).contains(&value)) {
                return Err(InvalidThresholds::OutOfBounds { field, min, max });
            }
        }
        let g = &self.glucose;
        if g.low_mg_dl <= g.very_low_mg_dl {
            return Err(InvalidThresholds::Order(
                "glucose.low_mg_dl must lie above glucose.very_low_mg_dl",
            ));
        }
        if g.urgent_high_mg_dl <= g.very_high_mg_dl {
            return Err(InvalidThresholds::Order(
                "glucose.urgent_high_mg_dl must lie above glucose.very_high_mg_dl",
            ));
        }
        Ok(())
    }
}

/// Custom thresholds must lie within these intervals (inclusive).
pub struct ThresholdBounds {
    pub very_low_mg_dl: (f64, f64),
    pub low_mg_dl: (f64, f64),
    pub low_minutes: (f64, f64),
    pub predicted_low_mg_dl: (f64, f64),
    pub predicted_low_horizon_minutes: (f64, f64),
    pub very_high_mg_dl: (f64, f64),
    pub very_high_minutes: (f64, f64),
    pub urgent_high_mg_dl: (f64, f64),
    pub rapid_fall_mg_dl_per_minute: (f64, f64),
    pub crisis_systolic: (f64, f64),
    pub crisis_diastolic: (f64, f64),
    pub low_systolic: (f64, f64),
    pub low_diastolic: (f64, f64),
    pub stage2_mean_systolic: (f64, f64),
    pub stage2_mean_diastolic: (f64, f64),
    pub stage2_min_readings: (f64, f64),
    pub no_data_cgm_minutes: (f64, f64),
    pub no_data_days: (f64, f64),
    pub late_after_minutes: (f64, f64),
    pub resolve_after_minutes: (f64, f64),
}

/// Never below 54 mg/dL for "very low", never above 400 mg/dL (a CGM's "HI") for the urgent
/// high, never above 180/120 for a crisis: tuning may make alerts earlier, never blind.
pub const SAFE_BOUNDS: ThresholdBounds = ThresholdBounds {
    very_low_mg_dl: (54.0, 70.0),
    low_mg_dl: (60.0, 100.0),
    low_minutes: (5.0, 30.0),
    predicted_low_mg_dl: (55.0, 90.0),
    predicted_low_horizon_minutes: (10.0, 30.0),
    very_high_mg_dl: (180.0, 300.0),
    very_high_minutes: (15.0, 120.0),
    urgent_high_mg_dl: (250.0, 400.0),
    rapid_fall_mg_dl_per_minute: (1.0, 5.0),
    crisis_systolic: (160.0, 180.0),
    crisis_diastolic: (100.0, 120.0),
    low_systolic: (80.0, 100.0),
    low_diastolic: (50.0, 65.0),
    stage2_mean_systolic: (125.0, 145.0),
    stage2_mean_diastolic: (75.0, 95.0),
    stage2_min_readings: (4.0, 28.0),
    no_data_cgm_minutes: (15.0, 240.0),
    no_data_days: (1.0, 30.0),
    late_after_minutes: (5.0, 60.0),
    resolve_after_minutes: (0.0, 1440.0),
};

/// Whether a reading received at `received_at` may raise an urgent alarm on its own
/// (`glucose_very_low`, the urgent `glucose_very_high`, `bp_crisis`) under *any* thresholds a
/// care team may set: beyond the loosest of [`SAFE_BOUNDS`] and received within the longest
/// time after which a reading is late. The ingest uses it to have such a reading's patient
/// evaluated ahead of routine work; whether an alarm is raised is still the rules' decision
/// from stored data, so a reading flagged here that raises nothing costs one evaluation.
pub fn may_raise_urgent_alarm(reading: &Reading, received_at: DateTime<Utc>) -> bool {
    let b = &SAFE_BOUNDS;
    let longest_late_after = Duration::minutes(b.late_after_minutes.1 as i64);
    if received_at - reading.measured_at() > longest_late_after {
        return false;
    }
    match reading {
        Reading::Glucose(g) => {
            let value = g.value.get();
            g.flag.is_some() || value < b.very_low_mg_dl.1 || value > b.urgent_high_mg_dl.0
        }
        Reading::BloodPressure(p) => {
            f64::from(p.systolic.get()) > b.crisis_systolic.0
                || f64::from(p.diastolic.get()) > b.crisis_diastolic.0
        }
        Reading::Treatment(_) => false,
    }
}

/// Why thresholds were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidThresholds {
    #[error("{field} must lie between {min} and {max}")]
    OutOfBounds {
        field: &'static str,
        min: f64,
        max: f64,
    },
    #[error("{0}")]
    Order(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_published_numbers() {
        let t = AlertThresholds::default();
        assert_eq!(t.glucose.very_low_mg_dl, 54.0);
        assert_eq!((t.glucose.low_mg_dl, t.glucose.low_minutes), (70.0, 15));
        assert_eq!(
            (
                t.glucose.predicted_low_mg_dl,
                t.glucose.predicted_low_horizon_minutes
            ),
            (55.0, 20)
        );
        assert_eq!(
            (
                t.glucose.very_high_mg_dl,
                t.glucose.very_high_minutes,
                t.glucose.urgent_high_mg_dl
            ),
            (250.0, 60, 400.0)
        );
        assert_eq!(t.glucose.rapid_fall_mg_dl_per_minute, 3.0);
        let p = t.blood_pressure;
        assert_eq!((p.crisis_systolic, p.crisis_diastolic), (180, 120));
        assert_eq!((p.low_systolic, p.low_diastolic), (90, 60));
        assert_eq!((p.stage2_mean_systolic, p.stage2_mean_diastolic), (135, 85));
        assert_eq!(t.silence_allowed(DeviceKind::Cgm), Duration::minutes(30));
        assert_eq!(t.silence_allowed(DeviceKind::Meter), Duration::days(3));
        assert_eq!(t.silence_allowed(DeviceKind::Bp), Duration::days(3));
        assert_eq!(t.late_after(), Duration::minutes(15));
    }

    #[test]
    fn presets_differ_only_where_the_consensus_does() {
        let standard = AlertThresholds::preset(TargetPreset::Standard);
        let older = AlertThresholds::preset(TargetPreset::OlderHighRisk);
        let pregnancy = AlertThresholds::preset(TargetPreset::Pregnancy);
        assert_eq!(older.glucose, standard.glucose);
        assert_eq!(pregnancy.glucose.low_mg_dl, 63.0);
        assert_eq!(
            pregnancy.glucose.very_low_mg_dl,
            standard.glucose.very_low_mg_dl
        );
        for preset in TargetPreset::ALL {
            assert_eq!(AlertThresholds::preset(preset).validate(), Ok(()));
        }
    }

    #[test]
    fn custom_values_stay_within_safe_bounds() {
        let with = |f: fn(&mut AlertThresholds)| {
            let mut t = AlertThresholds::preset(TargetPreset::Custom);
            f(&mut t);
            t.validate()
        };
        // (change, accepted?)
        type Change = fn(&mut AlertThresholds);
        let cases: [(Change, bool); 14] = [
            (|t| t.glucose.very_low_mg_dl = 53.9, false),
            (|t| t.glucose.very_low_mg_dl = 54.0, true),
            (|t| t.glucose.very_low_mg_dl = 60.0, true),
            (|t| t.glucose.low_mg_dl = 54.0, false),
            (
                |t| {
                    t.glucose.very_low_mg_dl = 65.0;
                    t.glucose.low_mg_dl = 65.0;
                },
                false,
            ),
            (|t| t.glucose.urgent_high_mg_dl = 400.1, false),
            (|t| t.glucose.urgent_high_mg_dl = f64::NAN, false),
            (
                |t| {
                    t.glucose.very_high_mg_dl = 300.0;
                    t.glucose.urgent_high_mg_dl = 280.0;
                },
                false,
            ),
            (|t| t.blood_pressure.crisis_systolic = 181, false),
            (|t| t.blood_pressure.crisis_systolic = 170, true),
            (|t| t.blood_pressure.crisis_diastolic = 121, false),
            (|t| t.no_data.cgm_minutes = 10, false),
            (|t| t.timing.resolve_after_minutes = 0, true),
            (|t| t.timing.late_after_minutes = 61, false),
        ];
        for (i, (change, accepted)) in cases.into_iter().enumerate() {
            assert_eq!(with(change).is_ok(), accepted, "case {i}");
        }
    }

    #[test]
    fn a_refusal_names_the_threshold_by_its_json_path() {
        let mut t = AlertThresholds::preset(TargetPreset::Custom);
        t.no_data.cuff_days = 31;
        assert_eq!(
            t.validate(),
            Err(InvalidThresholds::OutOfBounds {
                field: "no_data.cuff_days",
                min: 1.0,
                max: 30.0
            })
        );
        let mut t = AlertThresholds::preset(TargetPreset::Custom);
        t.blood_pressure.stage2_min_readings = 3;
        assert_eq!(
            t.validate().map_err(|e| e.to_string()),
            Err("blood_pressure.stage2_min_readings must lie between 4 and 28".to_owned())
        );
    }

    mod urgent_candidates {
        use super::*;
        use crate::alerts::Severity;
        use crate::alerts::rules::{
            GlucosePoint, PressurePoint, Timeline, glucose_timelines, pressure_timelines,
        };
        use crate::reading::{
            BloodPressureReading, Diastolic, GlucoseFlag, GlucoseMgDl, GlucoseReading,
            GlucoseSource, Systolic,
        };
        use crate::units::GlucoseUnit;
        use chrono::TimeZone;
        use proptest::prelude::*;

        fn measured_at() -> DateTime<Utc> {
            Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0)
                .single()
                .unwrap_or_default()
        }

        /// Whether a timeline holds a live urgent finding: what raises an urgent alarm.
        fn urgent_live(timelines: &[Timeline], late_after: Duration) -> bool {
            timelines.iter().any(|timeline| {
                timeline
                    .episodes(late_after)
                    .iter()
                    .any(|episode| episode.live_severity == Some(Severity::Urgent))
            })
        }

        fn thresholds(
            very_low: f64,
            urgent_high: f64,
            crisis: (u16, u16),
            late_after: u32,
        ) -> AlertThresholds {
            let mut t = AlertThresholds::default();
            t.glucose.very_low_mg_dl = very_low;
            t.glucose.urgent_high_mg_dl = urgent_high;
            t.glucose.very_high_mg_dl = t.glucose.very_high_mg_dl.min(urgent_high - 1.0);
            (
                t.blood_pressure.crisis_systolic,
                t.blood_pressure.crisis_diastolic,
            ) = crisis;
            t.timing.late_after_minutes = late_after;
            t
        }

        proptest! {
            /// Every glucose reading that raises an urgent alarm on its own, under any
            /// thresholds within the safe bounds, is announced as a candidate.
            #[test]
            fn every_urgent_glucose_reading_is_a_candidate(
                very_low in 54.0f64..=70.0,
                urgent_high in 250.0f64..=400.0,
                late_after in 5u32..=60,
                // Mostly near the thresholds, where a bound in the wrong place shows.
                value in prop_oneof![40.0f64..=75.0, 240.0f64..=410.0, 1.0f64..=1000.0],
                source in prop_oneof![Just(GlucoseSource::Cgm), Just(GlucoseSource::Meter), Just(GlucoseSource::Lab)],
                flag in prop_oneof![Just(None), Just(Some(GlucoseFlag::Lo)), Just(Some(GlucoseFlag::Hi))],
                received_after_s in 0i64..=7_200,
            ) {
                let t = thresholds(very_low, urgent_high, (180, 120), late_after);
                let value = match flag {
                    Some(GlucoseFlag::Lo) => GlucoseFlag::LO_MG_DL,
                    Some(GlucoseFlag::Hi) => GlucoseFlag::HI_MG_DL,
                    None => value,
                };
                let received_at = measured_at() + Duration::seconds(received_after_s);
                let point = GlucosePoint {
                    device_id: "cgm".to_owned(),
                    measured_at: measured_at(),
                    received_at,
                    value_mg_dl: value,
                    source,
                    flag,
                };
                let reading = Reading::Glucose(GlucoseReading {
                    measured_at: measured_at(),
                    utc_offset_minutes: 0,
                    value: GlucoseMgDl::new(value).expect("a plausible value"),
                    original_value: flag.is_none().then_some(value),
                    original_unit: GlucoseUnit::MgDl,
                    source,
                    flag,
                    device_reading_id: None,
                });
                if urgent_live(&glucose_timelines(&[point], &t), t.late_after()) {
                    prop_assert!(may_raise_urgent_alarm(&reading, received_at));
                }
            }

            /// The same for blood pressure (`bp_crisis`).
            #[test]
            fn every_crisis_reading_is_a_candidate(
                crisis_systolic in 160u16..=180,
                crisis_diastolic in 100u16..=120,
                late_after in 5u32..=60,
                systolic in 51u16..=300,
                diastolic_share in 0.0f64..1.0,
                received_after_s in 0i64..=7_200,
            ) {
                let t = thresholds(54.0, 250.0, (crisis_systolic, crisis_diastolic), late_after);
                // Diastolic below systolic, within its plausible range.
                let highest = (systolic - 1).min(Diastolic::MAX);
                let diastolic = Diastolic::MIN
                    + ((f64::from(highest - Diastolic::MIN)) * diastolic_share) as u16;
                let received_at = measured_at() + Duration::seconds(received_after_s);
                let point = PressurePoint {
                    device_id: "cuff".to_owned(),
                    measured_at: measured_at(),
                    received_at,
                    systolic,
                    diastolic,
                };
                let reading = Reading::BloodPressure(BloodPressureReading {
                    measured_at: measured_at(),
                    utc_offset_minutes: 0,
                    systolic: Systolic::new(systolic).expect("plausible"),
                    diastolic: Diastolic::new(diastolic).expect("plausible"),
                    pulse: None,
                    device_reading_id: None,
                });
                if urgent_live(&pressure_timelines(&[point], &t), t.late_after()) {
                    prop_assert!(may_raise_urgent_alarm(&reading, received_at));
                }
            }
        }

        #[test]
        fn in_range_and_late_readings_are_not_candidates() {
            let reading = |value: f64| {
                Reading::Glucose(GlucoseReading {
                    measured_at: measured_at(),
                    utc_offset_minutes: 0,
                    value: GlucoseMgDl::new(value).expect("plausible"),
                    original_value: Some(value),
                    original_unit: GlucoseUnit::MgDl,
                    source: GlucoseSource::Cgm,
                    flag: None,
                    device_reading_id: None,
                })
            };
            let now = measured_at() + Duration::seconds(5);
            assert!(!may_raise_urgent_alarm(&reading(110.0), now));
            assert!(may_raise_urgent_alarm(&reading(45.0), now));
            assert!(!may_raise_urgent_alarm(
                &reading(45.0),
                measured_at() + Duration::minutes(61)
            ));
        }
    }

    #[test]
    fn json_refuses_unknown_fields() {
        let mut json = serde_json::to_value(AlertThresholds::default()).expect("json");
        assert_eq!(
            serde_json::from_value::<AlertThresholds>(json.clone()).expect("round trip"),
            AlertThresholds::default()
        );
        json["glucose"]["typo"] = serde_json::json!(1);
        assert!(serde_json::from_value::<AlertThresholds>(json).is_err());
    }
}

//! A patient's glucose targets: the range and the time-in-range goals their care team judges
//! them by. Trends use them for the panel's flags; alerts use the same record for the
//! patient's alert thresholds. Presets follow the International Consensus on Time in Range
//! (Battelino et al., Diabetes Care 2019); a care team may also set custom values within
//! [`SAFE_BOUNDS`].

use serde::{Deserialize, Serialize};
use std::fmt;

/// A named set of targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetPreset {
    /// Most adults with type 1 or type 2 diabetes.
    Standard,
    /// Older or high-risk patients: less time in range asked for, less time low tolerated.
    OlderHighRisk,
    /// Pregnancy with type 1 diabetes: a tighter range, 63–140 mg/dL.
    Pregnancy,
    /// Values the care team chose within the safe bounds.
    Custom,
}

impl TargetPreset {
    pub const ALL: [TargetPreset; 4] = [
        TargetPreset::Standard,
        TargetPreset::OlderHighRisk,
        TargetPreset::Pregnancy,
        TargetPreset::Custom,
    ];

    /// The stable spelling used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetPreset::Standard => "standard",
            TargetPreset::OlderHighRisk => "older_high_risk",
            TargetPreset::Pregnancy => "pregnancy",
            TargetPreset::Custom => "custom",
        }
    }

    pub fn parse(text: &str) -> Option<TargetPreset> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

impl fmt::Display for TargetPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Glucose targets, all glucose values in mg/dL, shares in percent of time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GlucoseTargets {
    pub preset: TargetPreset,
    /// The target range, inclusive at both ends (70–180 for most adults).
    pub range_low_mg_dl: f64,
    pub range_high_mg_dl: f64,
    /// At least this much time in the target range.
    pub time_in_range_min_percent: f64,
    /// At most this much time below the range's low end (below 70, or 63 in pregnancy).
    pub time_below_range_max_percent: f64,
    /// At most this much time below 54 mg/dL (level 2 hypoglycaemia).
    pub time_below_54_max_percent: f64,
    /// At most this much time above the range's high end.
    pub time_above_range_max_percent: f64,
    /// At most this much time above 250 mg/dL.
    pub time_above_250_max_percent: f64,
    /// Coefficient of variation at most this.
    pub cv_max_percent: f64,
}

/// Custom targets must lie within these bounds, so no setting can hide dangerous glucose.
pub struct SafeBounds {
    /// The range's low end lies in this interval…
    pub range_low_mg_dl: (f64, f64),
    /// …and its high end in this one.
    pub range_high_mg_dl: (f64, f64),
    /// Each time share is a percentage in this interval.
    pub percent: (f64, f64),
    /// No tolerance of time below 54 mg/dL above this.
    pub time_below_54_max_percent: f64,
}

pub const SAFE_BOUNDS: SafeBounds = SafeBounds {
    range_low_mg_dl: (60.0, 100.0),
    range_high_mg_dl: (120.0, 250.0),
    percent: (0.0, 100.0),
    time_below_54_max_percent: 5.0,
};

/// Why custom targets were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidTargets {
    #[error("the range's low end must lie between {0} and {1} mg/dL")]
    RangeLow(f64, f64),
    #[error("the range's high end must lie between {0} and {1} mg/dL")]
    RangeHigh(f64, f64),
    #[error("{0} must be a percentage between 0 and 100")]
    Percent(&'static str),
    #[error("time below 54 mg/dL may be tolerated up to {0} % at most")]
    BelowFiftyFour(f64),
}

impl GlucoseTargets {
    /// The targets of a preset; `Custom` starts from the standard values.
    pub fn preset(preset: TargetPreset) -> GlucoseTargets {
        let standard = GlucoseTargets {
            preset,
            range_low_mg_dl: 70.0,
            range_high_mg_dl: 180.0,
            time_in_range_min_percent: 70.0,
            time_below_range_max_percent: 4.0,
            time_below_54_max_percent: 1.0,
            time_above_range_max_percent: 25.0,
            time_above_250_max_percent: 5.0,
            cv_max_percent: 36.0,
        };
        match preset {
            TargetPreset::Standard | TargetPreset::Custom => standard,
            // Consensus: TIR > 50 %, below 70 < 1 %, above 250 < 10 %.
            TargetPreset::OlderHighRisk => GlucoseTargets {
                time_in_range_min_percent: 50.0,
                time_below_range_max_percent: 1.0,
                time_above_range_max_percent: 50.0,
                time_above_250_max_percent: 10.0,
                ..standard
            },
            // Consensus for type 1 in pregnancy: 63–140 mg/dL > 70 %, below 63 < 4 %,
            // below 54 < 1 %, above 140 < 25 %.
            TargetPreset::Pregnancy => GlucoseTargets {
                range_low_mg_dl: 63.0,
                range_high_mg_dl: 140.0,
                ..standard
            },
        }
    }

    pub fn standard() -> GlucoseTargets {
        GlucoseTargets::preset(TargetPreset::Standard)
    }

    /// Checks custom values against [`SAFE_BOUNDS`]; presets always pass.
    pub fn validate(&self) -> Result<(), InvalidTargets> {
        let b = &SAFE_BOUNDS;
        let within = |v: f64, (lo, hi): (f64, f64)| v.is_finite() && (lo..=hi).contains(&v);
        if !within(self.range_low_mg_dl, b.range_low_mg_dl) {
            return Err(InvalidTargets::RangeLow(
                b.range_low_mg_dl.0,
                b.range_low_mg_dl.1,
            ));
        }
        if !within(self.range_high_mg_dl, b.range_high_mg_dl)
            || self.range_high_mg_dl <= self.range_low_mg_dl
        {
            return Err(InvalidTargets::RangeHigh(
                b.range_high_mg_dl.0,
                b.range_high_mg_dl.1,
            ));
        }
        for (name, value) in [
            ("time_in_range_min_percent", self.time_in_range_min_percent),
            (
                "time_below_range_max_percent",
                self.time_below_range_max_percent,
            ),
            ("time_below_54_max_percent", self.time_below_54_max_percent),
            (
                "time_above_range_max_percent",
                self.time_above_range_max_percent,
            ),
            (
                "time_above_250_max_percent",
                self.time_above_250_max_percent,
            ),
            ("cv_max_percent", self.cv_max_percent),
        ] {
            if !within(value, b.percent) {
                return Err(InvalidTargets::Percent(name));
            }
        }
        if self.time_below_54_max_percent > b.time_below_54_max_percent {
            return Err(InvalidTargets::BelowFiftyFour(b.time_below_54_max_percent));
        }
        Ok(())
    }
}

impl Default for GlucoseTargets {
    fn default() -> Self {
        GlucoseTargets::standard()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_follow_the_consensus() {
        let standard = GlucoseTargets::standard();
        assert_eq!(
            (standard.range_low_mg_dl, standard.range_high_mg_dl),
            (70.0, 180.0)
        );
        assert_eq!(standard.time_in_range_min_percent, 70.0);
        let older = GlucoseTargets::preset(TargetPreset::OlderHighRisk);
        assert_eq!(older.time_in_range_min_percent, 50.0);
        assert_eq!(older.time_below_range_max_percent, 1.0);
        let pregnancy = GlucoseTargets::preset(TargetPreset::Pregnancy);
        assert_eq!(
            (pregnancy.range_low_mg_dl, pregnancy.range_high_mg_dl),
            (63.0, 140.0)
        );
        for preset in TargetPreset::ALL {
            assert_eq!(GlucoseTargets::preset(preset).validate(), Ok(()));
            assert_eq!(TargetPreset::parse(preset.as_str()), Some(preset));
        }
    }

    #[test]
    fn custom_values_stay_within_safe_bounds() {
        let custom = GlucoseTargets::preset(TargetPreset::Custom);
        let with = |f: fn(&mut GlucoseTargets)| {
            let mut t = custom;
            f(&mut t);
            t.validate()
        };
        assert!(with(|t| t.range_low_mg_dl = 55.0).is_err());
        assert!(with(|t| t.range_high_mg_dl = 300.0).is_err());
        assert!(with(|t| t.time_in_range_min_percent = 101.0).is_err());
        assert!(with(|t| t.time_below_54_max_percent = 10.0).is_err());
        assert!(with(|t| t.cv_max_percent = f64::NAN).is_err());
        assert_eq!(
            with(|t| {
                t.range_low_mg_dl = 80.0;
                t.range_high_mg_dl = 160.0;
            }),
            Ok(())
        );
    }
}

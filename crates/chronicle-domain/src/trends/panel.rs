//! What a care team's patient panel flags, and the order it lists patients in.
//!
//! Flags (one clinic population tool's published list, with the patient's own targets):
//! time below 54 mg/dL over 1 %, below the target range (70) over 4 %, above 250 over 5 %,
//! above the range (180) over 25 %, time in range under the patient's goal or dropped by more
//! than 15 points since the previous period, CGM wear under 70 %, no data; plus the
//! blood-pressure category of the home mean; and open alerts the caller receives (an urgent
//! one outranks everything). The limits are the patient's
//! [`GlucoseTargets`], so an older patient's stricter hypoglycaemia limit applies to them.
//!
//! Risk ordering: the [`risk_score`] is a bit mask in which each flag outweighs every less
//! severe flag together, so patients sort by their most severe flag first, then by the next.

use super::blood_pressure::{BpCategory, BpSummary};
use super::calendar::MICROS_PER_MINUTE;
use super::glucose::{GlucoseBand, GlucoseSummary};
use crate::targets::GlucoseTargets;
use chrono::{DateTime, Utc};

/// A fall of time in range by more than this many percentage points since the previous period
/// is flagged.
pub const TIR_DROP_POINTS: f64 = 15.0;
/// A CGM wearer silent this long is flagged (the peer's "no data for 8 h").
pub const NO_RECENT_DATA_US: i64 = 8 * 60 * MICROS_PER_MINUTE;
/// CGM wear under this share of the time is flagged.
pub const LOW_WEAR_PERCENT: f64 = 70.0;

/// Panel flags, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PanelFlag {
    /// An urgent alert is open (not yet acknowledged): someone must act now.
    UrgentAlert,
    /// Time below 54 mg/dL over the patient's limit (1 %).
    Below54,
    /// Time below the target range over the limit (below 70 mg/dL over 4 %).
    BelowRange,
    /// Home mean in hypertensive crisis (> 180 / > 120).
    BpCrisis,
    /// A (non-urgent) alert is open, not yet acknowledged.
    OpenAlert,
    /// Time above 250 mg/dL over the limit (5 %).
    Above250,
    /// Time in range fell by more than 15 points since the previous period.
    TirDropped,
    /// Time in range under the patient's goal (70 %).
    TirBelowTarget,
    /// Home mean at stage 2 (≥ 135 / 85).
    BpStage2,
    /// Time above the target range over the limit (above 180 mg/dL over 25 %).
    AboveRange,
    /// No reading at all in the period (of the categories the caller may see).
    NoData,
    /// A CGM wearer with no glucose reading for 8 hours.
    NoRecentData,
    /// CGM active less than 70 % of the period.
    LowWear,
}

impl PanelFlag {
    /// Most severe first.
    pub const ALL: [PanelFlag; 13] = [
        PanelFlag::UrgentAlert,
        PanelFlag::Below54,
        PanelFlag::BelowRange,
        PanelFlag::BpCrisis,
        PanelFlag::OpenAlert,
        PanelFlag::Above250,
        PanelFlag::TirDropped,
        PanelFlag::TirBelowTarget,
        PanelFlag::BpStage2,
        PanelFlag::AboveRange,
        PanelFlag::NoData,
        PanelFlag::NoRecentData,
        PanelFlag::LowWear,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PanelFlag::UrgentAlert => "urgent_alert",
            PanelFlag::OpenAlert => "open_alert",
            PanelFlag::Below54 => "below_54",
            PanelFlag::BelowRange => "below_range",
            PanelFlag::BpCrisis => "bp_crisis",
            PanelFlag::Above250 => "above_250",
            PanelFlag::TirDropped => "tir_dropped",
            PanelFlag::TirBelowTarget => "tir_below_target",
            PanelFlag::BpStage2 => "bp_stage_2",
            PanelFlag::AboveRange => "above_range",
            PanelFlag::NoData => "no_data",
            PanelFlag::NoRecentData => "no_recent_data",
            PanelFlag::LowWear => "low_wear",
        }
    }

    pub fn parse(text: &str) -> Option<PanelFlag> {
        Self::ALL.into_iter().find(|f| f.as_str() == text)
    }

    /// This flag's weight in the risk score: more than all less severe flags together.
    pub fn weight(self) -> u32 {
        let rank = Self::ALL.iter().position(|f| *f == self).unwrap_or(0);
        1 << (Self::ALL.len() - 1 - rank)
    }
}

/// What the panel knows about one patient. `None` means the caller may not see the category.
#[derive(Debug, Clone, Copy)]
pub struct PanelFacts<'a> {
    pub targets: &'a GlucoseTargets,
    pub glucose: Option<&'a GlucoseSummary>,
    /// The period before `glucose`, of the same length.
    pub previous_glucose: Option<&'a GlucoseSummary>,
    pub blood_pressure: Option<&'a BpSummary>,
    pub latest_glucose_at: Option<DateTime<Utc>>,
    /// Open (unacknowledged) alerts the caller receives, and how many of them are urgent.
    pub open_alerts: u32,
    pub open_urgent_alerts: u32,
    pub now: DateTime<Utc>,
}

/// The patient's flags, most severe first.
pub fn panel_flags(facts: &PanelFacts<'_>) -> Vec<PanelFlag> {
    let t = facts.targets;
    let mut flags = Vec::new();
    if let Some(g) = facts.glucose {
        let over = |value: Option<f64>, limit: f64| value.is_some_and(|v| v > limit);
        if over(
            g.percent_of(GlucoseBand::VeryLow),
            t.time_below_54_max_percent,
        ) {
            flags.push(PanelFlag::Below54);
        }
        if over(g.below_target_percent(), t.time_below_range_max_percent) {
            flags.push(PanelFlag::BelowRange);
        }
        if over(
            g.percent_of(GlucoseBand::VeryHigh),
            t.time_above_250_max_percent,
        ) {
            flags.push(PanelFlag::Above250);
        }
        let previous_tir = facts.previous_glucose.and_then(|p| p.in_target_percent());
        if let (Some(now), Some(before)) = (g.in_target_percent(), previous_tir)
            && before - now > TIR_DROP_POINTS
        {
            flags.push(PanelFlag::TirDropped);
        }
        if g.in_target_percent()
            .is_some_and(|tir| tir < t.time_in_range_min_percent)
        {
            flags.push(PanelFlag::TirBelowTarget);
        }
        if over(g.above_target_percent(), t.time_above_range_max_percent) {
            flags.push(PanelFlag::AboveRange);
        }
        if g.totals.cgm_readings > 0 {
            let silent = facts.latest_glucose_at.is_none_or(|at| {
                (facts.now - at).num_microseconds().unwrap_or(i64::MAX) > NO_RECENT_DATA_US
            });
            if silent {
                flags.push(PanelFlag::NoRecentData);
            }
            if g.cgm_active_percent.is_some_and(|a| a < LOW_WEAR_PERCENT) {
                flags.push(PanelFlag::LowWear);
            }
        }
    }
    if let Some(bp) = facts.blood_pressure {
        match bp.category {
            Some(BpCategory::Crisis) => flags.push(PanelFlag::BpCrisis),
            Some(BpCategory::Stage2) => flags.push(PanelFlag::BpStage2),
            _ => {}
        }
    }
    if facts.open_urgent_alerts > 0 {
        flags.push(PanelFlag::UrgentAlert);
    }
    if facts.open_alerts > facts.open_urgent_alerts {
        flags.push(PanelFlag::OpenAlert);
    }
    let seen = facts.glucose.is_some() || facts.blood_pressure.is_some();
    let glucose_readings = facts.glucose.map_or(0, |g| g.totals.readings);
    let bp_readings = facts.blood_pressure.map_or(0, |b| b.totals.readings);
    if seen && glucose_readings == 0 && bp_readings == 0 {
        flags.push(PanelFlag::NoData);
    }
    flags.sort();
    flags
}

/// The panel's risk score: the sum of the flags' weights (higher is riskier).
pub fn risk_score(flags: &[PanelFlag]) -> u32 {
    flags.iter().map(|f| f.weight()).sum()
}

//! Alert rules for the care team, as pure functions: what a patient's stored readings show
//! (rule by rule), and how that changes the patient's alerts.
//!
//! - [`thresholds`]: every rule's thresholds, their defaults (DESIGN, "Default alert rules"),
//!   the per-preset adjustments and the safe bounds of custom values.
//! - [`rules`]: a patient's recent series → per rule a timeline of findings (holds, clears)
//!   and the episodes they form; [`forecast`] is the predicted-low forecast.
//! - [`lifecycle`]: episodes + the patient's latest alert of the rule → the changes to make
//!   (open, re-trigger, escalate, clear, historical event), auto-resolution and the manual
//!   transitions (acknowledge, resolve).
//! - [`escalation`]: a care team's escalation chain and reminder interval for urgent alerts.
//! - [`quiet_hours`]: a receiver's daily span in which non-urgent notifications wait.
//! - [`window`]: a patient's recent readings held between evaluations, so that each reads
//!   only what is new and gives what evaluation from all stored data gives.
//!
//! Everything is computed from what is stored (readings with their `measured_at` and
//! `received_at`), never from the order in which messages arrived: evaluating the same data
//! twice changes nothing, and two servers evaluating the same patient agree.

pub mod escalation;
pub mod forecast;
pub mod lifecycle;
pub mod quiet_hours;
pub mod rules;
pub mod thresholds;
pub mod window;

use crate::device::DeviceKind;
use crate::sharing::DataCategory;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A rule's stable id: the API, the database, the simulator's ground truth and webhooks use
/// these spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleId {
    GlucoseVeryLow,
    GlucoseLow,
    GlucosePredictedLow,
    GlucoseVeryHigh,
    GlucoseRapidFall,
    BpCrisis,
    BpLow,
    BpStage2Trend,
    NoData,
}

impl RuleId {
    pub const ALL: [RuleId; 9] = [
        RuleId::GlucoseVeryLow,
        RuleId::GlucoseLow,
        RuleId::GlucosePredictedLow,
        RuleId::GlucoseVeryHigh,
        RuleId::GlucoseRapidFall,
        RuleId::BpCrisis,
        RuleId::BpLow,
        RuleId::BpStage2Trend,
        RuleId::NoData,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::GlucoseVeryLow => "glucose_very_low",
            RuleId::GlucoseLow => "glucose_low",
            RuleId::GlucosePredictedLow => "glucose_predicted_low",
            RuleId::GlucoseVeryHigh => "glucose_very_high",
            RuleId::GlucoseRapidFall => "glucose_rapid_fall",
            RuleId::BpCrisis => "bp_crisis",
            RuleId::BpLow => "bp_low",
            RuleId::BpStage2Trend => "bp_stage2_trend",
            RuleId::NoData => "no_data",
        }
    }

    pub fn parse(text: &str) -> Option<RuleId> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// The data category of the rule's alerts; `None` for `no_data`, whose category is the
    /// silent device's ([`category_of_device`]).
    pub fn category(self) -> Option<DataCategory> {
        match self {
            RuleId::GlucoseVeryLow
            | RuleId::GlucoseLow
            | RuleId::GlucosePredictedLow
            | RuleId::GlucoseVeryHigh
            | RuleId::GlucoseRapidFall => Some(DataCategory::Glucose),
            RuleId::BpCrisis | RuleId::BpLow | RuleId::BpStage2Trend => {
                Some(DataCategory::BloodPressure)
            }
            RuleId::NoData => None,
        }
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The category a device's readings (and its `no_data` alerts) belong to.
pub fn category_of_device(kind: DeviceKind) -> DataCategory {
    match kind {
        DeviceKind::Cgm | DeviceKind::Meter | DeviceKind::Uploader => DataCategory::Glucose,
        DeviceKind::Bp => DataCategory::BloodPressure,
    }
}

/// How urgently the care team should look. Ordered: `Info < Warning < Urgent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Urgent,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Urgent];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Urgent => "urgent",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_round_trip_and_have_categories() {
        for rule in RuleId::ALL {
            assert_eq!(RuleId::parse(rule.as_str()), Some(rule));
            assert_eq!(
                serde_json::to_value(rule).expect("json"),
                serde_json::json!(rule.as_str())
            );
        }
        assert_eq!(
            RuleId::BpCrisis.category(),
            Some(DataCategory::BloodPressure)
        );
        assert_eq!(RuleId::NoData.category(), None);
        assert_eq!(category_of_device(DeviceKind::Meter), DataCategory::Glucose);
        assert!(Severity::Urgent > Severity::Warning && Severity::Warning > Severity::Info);
    }
}

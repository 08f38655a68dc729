//! Validated readings. The constructors enforce the plausibility ranges of the field, so a
//! value of these types is always one Chronicle may store.

use crate::treatment::Treatment;
use crate::units::GlucoseUnit;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A glucose concentration in mg/dL: strictly above 0 and at most 1000 mg/dL (55.5 mmol/L).
/// Anything else is not a glucose reading at all (a sensor error or a typo).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct GlucoseMgDl(f64);

impl GlucoseMgDl {
    pub const MAX: f64 = 1000.0;

    pub fn new(mg_dl: f64) -> Option<Self> {
        (mg_dl.is_finite() && mg_dl > 0.0 && mg_dl <= Self::MAX).then_some(GlucoseMgDl(mg_dl))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

/// Where a glucose value was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GlucoseSource {
    /// Interstitial fluid, continuous glucose monitor.
    Cgm,
    /// Capillary blood, finger-stick glucometer.
    Meter,
    /// Venous blood, laboratory.
    Lab,
}

impl GlucoseSource {
    pub fn as_str(self) -> &'static str {
        match self {
            GlucoseSource::Cgm => "cgm",
            GlucoseSource::Meter => "meter",
            GlucoseSource::Lab => "lab",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [GlucoseSource::Cgm, GlucoseSource::Meter, GlucoseSource::Lab]
            .into_iter()
            .find(|src| src.as_str() == s)
    }

    /// Its number where readings are kept compact (the reading tables' `codes`, the alert
    /// engine's held windows): 0 to 2.
    pub fn code(self) -> u8 {
        match self {
            GlucoseSource::Cgm => 0,
            GlucoseSource::Meter => 1,
            GlucoseSource::Lab => 2,
        }
    }

    /// The source numbered `code` ([`code`](Self::code)).
    pub fn from_code(code: u8) -> Option<Self> {
        [GlucoseSource::Cgm, GlucoseSource::Meter, GlucoseSource::Lab]
            .into_iter()
            .find(|src| src.code() == code)
    }
}

/// A CGM reports "LO" or "HI" when glucose is outside its measuring range. Such a reading is
/// stored at the range limit with this flag, so it counts in the right consensus band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GlucoseFlag {
    /// Below the sensor's range; stored as [`GlucoseFlag::LO_MG_DL`].
    Lo,
    /// Above the sensor's range; stored as [`GlucoseFlag::HI_MG_DL`].
    Hi,
}

impl GlucoseFlag {
    /// The usual CGM measuring range is 40–400 mg/dL (DESIGN, glucose sources).
    pub const LO_MG_DL: f64 = 40.0;
    pub const HI_MG_DL: f64 = 400.0;

    pub fn as_str(self) -> &'static str {
        match self {
            GlucoseFlag::Lo => "lo",
            GlucoseFlag::Hi => "hi",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "lo" => Some(GlucoseFlag::Lo),
            "hi" => Some(GlucoseFlag::Hi),
            _ => None,
        }
    }

    pub fn limit_mg_dl(self) -> f64 {
        match self {
            GlucoseFlag::Lo => Self::LO_MG_DL,
            GlucoseFlag::Hi => Self::HI_MG_DL,
        }
    }

    /// A reading's flag (or none) as a number where readings are kept compact (the reading
    /// tables' `codes`, the alert engine's held windows): 0 none, 1 LO, 2 HI.
    pub fn code(flag: Option<Self>) -> u8 {
        match flag {
            None => 0,
            Some(GlucoseFlag::Lo) => 1,
            Some(GlucoseFlag::Hi) => 2,
        }
    }

    /// The flag numbered `code` ([`code`](Self::code)); `None` for a number that names none.
    pub fn from_code(code: u8) -> Option<Option<Self>> {
        [None, Some(GlucoseFlag::Lo), Some(GlucoseFlag::Hi)]
            .into_iter()
            .find(|flag| GlucoseFlag::code(*flag) == code)
    }
}

/// One validated glucose reading.
#[derive(Debug, Clone, PartialEq)]
pub struct GlucoseReading {
    /// The instant of measurement, in UTC.
    pub measured_at: DateTime<Utc>,
    /// The UTC offset the device stamped, kept so the device's local time can be shown.
    pub utc_offset_minutes: i32,
    /// The normalized value.
    pub value: GlucoseMgDl,
    /// The number the device sent, in `original_unit`; `None` for a "LO"/"HI" reading.
    pub original_value: Option<f64>,
    pub original_unit: GlucoseUnit,
    pub source: GlucoseSource,
    pub flag: Option<GlucoseFlag>,
    /// The device's own identifier or sequence number for the reading, echoed in acks.
    pub device_reading_id: Option<String>,
}

macro_rules! bounded_mm_hg {
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(u16);

        impl $name {
            pub const MIN: u16 = $min;
            pub const MAX: u16 = $max;

            pub fn new(value: u16) -> Option<Self> {
                (Self::MIN..=Self::MAX).contains(&value).then_some($name(value))
            }

            pub fn get(self) -> u16 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

bounded_mm_hg!(
    /// Systolic pressure in mm[Hg], plausible from 50 to 300.
    Systolic, 50, 300
);
bounded_mm_hg!(
    /// Diastolic pressure in mm[Hg], plausible from 20 to 200 (and below the systolic).
    Diastolic, 20, 200
);
bounded_mm_hg!(
    /// Pulse rate in beats per minute, plausible from 20 to 300.
    Pulse, 20, 300
);

/// One validated blood-pressure reading. `diastolic < systolic` always holds.
#[derive(Debug, Clone, PartialEq)]
pub struct BloodPressureReading {
    pub measured_at: DateTime<Utc>,
    pub utc_offset_minutes: i32,
    pub systolic: Systolic,
    pub diastolic: Diastolic,
    pub pulse: Option<Pulse>,
    pub device_reading_id: Option<String>,
}

/// Any validated record a device sends: a measurement, or a treatment (what was done around
/// the measurements), which travel and are stored the same way.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    Glucose(GlucoseReading),
    BloodPressure(BloodPressureReading),
    Treatment(Treatment),
}

/// The kind of measurement, which is also the idempotency key's kind component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadingKind {
    Glucose,
    BloodPressure,
    /// Treatments; their idempotency key also holds the [`TreatmentKind`](crate::treatment::TreatmentKind) (see
    /// [`Reading::series`]).
    Treatment,
}

impl ReadingKind {
    /// Every kind, in declaration order (`kind as usize` indexes it).
    pub const ALL: [ReadingKind; 3] = [
        ReadingKind::Glucose,
        ReadingKind::BloodPressure,
        ReadingKind::Treatment,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReadingKind::Glucose => "glucose",
            ReadingKind::BloodPressure => "blood_pressure",
            ReadingKind::Treatment => "treatment",
        }
    }
}

impl Reading {
    pub fn kind(&self) -> ReadingKind {
        match self {
            Reading::Glucose(_) => ReadingKind::Glucose,
            Reading::BloodPressure(_) => ReadingKind::BloodPressure,
            Reading::Treatment(_) => ReadingKind::Treatment,
        }
    }

    /// The kind component of the record's idempotency key (device, series, `measured_at`):
    /// the reading kind, or for a treatment its [`TreatmentKind`](crate::treatment::TreatmentKind), so a bolus and a meal
    /// entered at the same instant are two records while a resent bolus is a duplicate.
    pub fn series(&self) -> &'static str {
        match self {
            Reading::Treatment(t) => t.event.kind().as_str(),
            other => other.kind().as_str(),
        }
    }

    pub fn measured_at(&self) -> DateTime<Utc> {
        match self {
            Reading::Glucose(g) => g.measured_at,
            Reading::BloodPressure(b) => b.measured_at,
            Reading::Treatment(t) => t.measured_at,
        }
    }

    pub fn device_reading_id(&self) -> Option<&str> {
        match self {
            Reading::Glucose(g) => g.device_reading_id.as_deref(),
            Reading::BloodPressure(b) => b.device_reading_id.as_deref(),
            Reading::Treatment(t) => t.device_reading_id.as_deref(),
        }
    }

    /// The UTC offset the device stamped, in minutes.
    pub fn utc_offset_minutes(&self) -> i32 {
        match self {
            Reading::Glucose(g) => g.utc_offset_minutes,
            Reading::BloodPressure(b) => b.utc_offset_minutes,
            Reading::Treatment(t) => t.utc_offset_minutes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_at_its_own_index() {
        for (index, kind) in ReadingKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, index, "{kind:?}");
            // A new kind stops this compiling until it is listed in `ALL` too.
            match kind {
                ReadingKind::Glucose | ReadingKind::BloodPressure | ReadingKind::Treatment => {}
            }
        }
    }

    #[test]
    fn compact_codes_are_the_stored_ones_and_come_back() {
        // The numbers the reading tables hold (migration 0008): changing them would misread
        // every stored reading.
        let sources = [GlucoseSource::Cgm, GlucoseSource::Meter, GlucoseSource::Lab];
        assert_eq!(sources.map(GlucoseSource::code), [0, 1, 2]);
        let flags = [None, Some(GlucoseFlag::Lo), Some(GlucoseFlag::Hi)];
        assert_eq!(flags.map(GlucoseFlag::code), [0, 1, 2]);
        for source in sources {
            assert_eq!(GlucoseSource::from_code(source.code()), Some(source));
        }
        for flag in flags {
            assert_eq!(GlucoseFlag::from_code(GlucoseFlag::code(flag)), Some(flag));
        }
        assert_eq!(GlucoseSource::from_code(3), None);
        assert_eq!(GlucoseFlag::from_code(3), None);
    }

    #[test]
    fn glucose_bounds() {
        assert!(GlucoseMgDl::new(0.0).is_none());
        assert!(GlucoseMgDl::new(-1.0).is_none());
        assert!(GlucoseMgDl::new(f64::NAN).is_none());
        assert!(GlucoseMgDl::new(0.1).is_some());
        assert!(GlucoseMgDl::new(1000.0).is_some());
        assert!(GlucoseMgDl::new(1000.01).is_none());
    }

    #[test]
    fn pressure_bounds() {
        assert!(Systolic::new(49).is_none());
        assert!(Systolic::new(50).is_some());
        assert!(Systolic::new(300).is_some());
        assert!(Systolic::new(301).is_none());
        assert!(Diastolic::new(19).is_none());
        assert!(Diastolic::new(200).is_some());
        assert!(Pulse::new(20).is_some());
        assert!(Pulse::new(301).is_none());
    }
}

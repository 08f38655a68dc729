//! Validated treatments: what was done around the readings (insulin, carbohydrates, exercise,
//! notes, sensor starts and changes, calibrations), which gives every low and high its context.
//! As with readings, the constructors enforce plausible ranges, so a value of these types is
//! one Chronicle may store.

use crate::reading::GlucoseMgDl;
use chrono::{DateTime, Utc};

string_enum!(
    /// What kind of treatment a record is; also the kind component of its idempotency key, so
    /// a bolus and a meal entered at the same second are two records.
    TreatmentKind {
        BolusInsulin => "bolus_insulin",
        BasalInsulin => "basal_insulin",
        Carbohydrates => "carbohydrates",
        Exercise => "exercise",
        Note => "note",
        SensorStart => "sensor_start",
        SensorChange => "sensor_change",
        Calibration => "calibration",
    }
);

string_enum!(
    /// How insulin was delivered: a bolus (meal or correction), or basal (a long-acting
    /// injection, or a pump's basal delivery over `duration_minutes`).
    InsulinDelivery {
        Bolus => "bolus",
        Basal => "basal",
    }
);

macro_rules! bounded_amount {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
        pub struct $name(f64);

        impl $name {
            pub const MAX: f64 = $max;

            pub fn new(value: f64) -> Option<Self> {
                (value.is_finite() && value > 0.0 && value <= Self::MAX).then_some($name(value))
            }

            pub fn get(self) -> f64 {
                self.0
            }
        }
    };
}

bounded_amount!(
    /// Insulin in international units (U), above 0 and at most 100 U in one record: more is
    /// beyond any single dose or basal delivery and is a typo or a unit mix-up.
    InsulinUnits, 100.0
);
impl InsulinUnits {
    /// Insulin as delivered: a bolus must be above 0, but basal insulin may be 0 U, a pump
    /// suspended (a zero-rate temporary basal), which is a fact worth keeping.
    pub fn delivered(delivery: InsulinDelivery, value: f64) -> Option<Self> {
        match delivery {
            InsulinDelivery::Basal if value == 0.0 => Some(InsulinUnits(0.0)),
            _ => InsulinUnits::new(value),
        }
    }
}

bounded_amount!(
    /// Carbohydrates in grams, above 0 and at most 500 g in one record.
    CarbGrams, 500.0
);

/// A duration in whole minutes, 1 to 1440 (one day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DurationMinutes(u16);

impl DurationMinutes {
    pub const MIN: u16 = 1;
    pub const MAX: u16 = 1440;

    pub fn new(minutes: u16) -> Option<Self> {
        (Self::MIN..=Self::MAX)
            .contains(&minutes)
            .then_some(DurationMinutes(minutes))
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

/// The longest note kept with a treatment, in characters.
pub const MAX_NOTE_CHARS: usize = 1000;

/// What was done, with the amount that makes sense for it.
#[derive(Debug, Clone, PartialEq)]
pub enum TreatmentEvent {
    Insulin {
        delivery: InsulinDelivery,
        units: InsulinUnits,
        /// Over how long it was delivered (a pump's basal or an extended bolus).
        duration: Option<DurationMinutes>,
    },
    Carbohydrates(CarbGrams),
    Exercise(DurationMinutes),
    /// A free-text note; its text is the treatment's `note`.
    Note,
    SensorStart,
    SensorChange,
    /// A finger-stick value entered to calibrate a CGM.
    Calibration(GlucoseMgDl),
}

impl TreatmentEvent {
    pub fn kind(&self) -> TreatmentKind {
        match self {
            TreatmentEvent::Insulin {
                delivery: InsulinDelivery::Bolus,
                ..
            } => TreatmentKind::BolusInsulin,
            TreatmentEvent::Insulin {
                delivery: InsulinDelivery::Basal,
                ..
            } => TreatmentKind::BasalInsulin,
            TreatmentEvent::Carbohydrates(_) => TreatmentKind::Carbohydrates,
            TreatmentEvent::Exercise(_) => TreatmentKind::Exercise,
            TreatmentEvent::Note => TreatmentKind::Note,
            TreatmentEvent::SensorStart => TreatmentKind::SensorStart,
            TreatmentEvent::SensorChange => TreatmentKind::SensorChange,
            TreatmentEvent::Calibration(_) => TreatmentKind::Calibration,
        }
    }

    /// The amount in the kind's unit ([`TreatmentKind::amount_unit`]), when it has one.
    pub fn amount(&self) -> Option<f64> {
        match self {
            TreatmentEvent::Insulin { units, .. } => Some(units.get()),
            TreatmentEvent::Carbohydrates(grams) => Some(grams.get()),
            TreatmentEvent::Calibration(value) => Some(value.get()),
            TreatmentEvent::Exercise(_)
            | TreatmentEvent::Note
            | TreatmentEvent::SensorStart
            | TreatmentEvent::SensorChange => None,
        }
    }

    pub fn duration(&self) -> Option<DurationMinutes> {
        match self {
            TreatmentEvent::Insulin { duration, .. } => *duration,
            TreatmentEvent::Exercise(duration) => Some(*duration),
            _ => None,
        }
    }
}

impl TreatmentKind {
    /// The UCUM unit of the kind's amount, when it has one: insulin in international units,
    /// carbohydrates in grams, a calibration in mg/dL.
    pub fn amount_unit(self) -> Option<&'static str> {
        match self {
            TreatmentKind::BolusInsulin | TreatmentKind::BasalInsulin => Some("[iU]"),
            TreatmentKind::Carbohydrates => Some("g"),
            TreatmentKind::Calibration => Some("mg/dL"),
            TreatmentKind::Exercise
            | TreatmentKind::Note
            | TreatmentKind::SensorStart
            | TreatmentKind::SensorChange => None,
        }
    }
}

/// One validated treatment.
#[derive(Debug, Clone, PartialEq)]
pub struct Treatment {
    /// When it happened (the instant the device or app recorded), in UTC.
    pub measured_at: DateTime<Utc>,
    /// The UTC offset the sender stamped.
    pub utc_offset_minutes: i32,
    pub event: TreatmentEvent,
    /// Free text (at most [`MAX_NOTE_CHARS`]); always present for [`TreatmentEvent::Note`].
    pub note: Option<String>,
    /// The sender's own id for the record, echoed in acks.
    pub device_reading_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_durations_have_bounds() {
        assert!(InsulinUnits::new(0.0).is_none());
        assert!(InsulinUnits::new(0.05).is_some());
        assert!(InsulinUnits::new(100.0).is_some());
        assert!(InsulinUnits::new(100.5).is_none());
        assert!(InsulinUnits::new(f64::NAN).is_none());
        assert!(InsulinUnits::delivered(InsulinDelivery::Basal, 0.0).is_some());
        assert!(InsulinUnits::delivered(InsulinDelivery::Bolus, 0.0).is_none());
        assert!(InsulinUnits::delivered(InsulinDelivery::Basal, -0.5).is_none());
        assert!(CarbGrams::new(-5.0).is_none());
        assert!(CarbGrams::new(500.0).is_some());
        assert!(CarbGrams::new(501.0).is_none());
        assert!(DurationMinutes::new(0).is_none());
        assert!(DurationMinutes::new(1440).is_some());
        assert!(DurationMinutes::new(1441).is_none());
    }

    #[test]
    fn insulin_kind_follows_its_delivery() {
        let units = InsulinUnits::new(2.0).expect("units");
        let basal = TreatmentEvent::Insulin {
            delivery: InsulinDelivery::Basal,
            units,
            duration: None,
        };
        assert_eq!(basal.kind(), TreatmentKind::BasalInsulin);
        assert_eq!(basal.kind().amount_unit(), Some("[iU]"));
        assert_eq!(basal.amount(), Some(2.0));
    }
}

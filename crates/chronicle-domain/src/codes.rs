//! Interoperability codes: LOINC for what was measured, UCUM for units. Sources: the HL7 FHIR
//! CGM implementation guide 1.0.0 (interstitial glucose), LOINC for blood glucose and the
//! vital-signs blood-pressure panel.

use crate::GlucoseSource;

/// A LOINC code with its display name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loinc {
    pub code: &'static str,
    pub display: &'static str,
}

pub const LOINC_SYSTEM: &str = "http://loinc.org";
pub const UCUM_SYSTEM: &str = "http://unitsofmeasure.org";

pub const CGM_GLUCOSE_MASS: Loinc = Loinc {
    code: "99504-3",
    display: "Glucose [Mass/volume] in Interstitial fluid",
};
pub const BLOOD_GLUCOSE_MASS: Loinc = Loinc {
    code: "2339-0",
    display: "Glucose [Mass/volume] in Blood",
};
pub const METER_GLUCOSE_MASS: Loinc = Loinc {
    code: "41653-7",
    display: "Glucose [Mass/volume] in Capillary blood by Glucometer",
};
pub const CARBOHYDRATE_INTAKE: Loinc = Loinc {
    code: "9059-7",
    display: "Carbohydrate intake Estimated",
};
pub const EXERCISE_DURATION: Loinc = Loinc {
    code: "55411-3",
    display: "Exercise duration",
};
pub const BLOOD_PRESSURE_PANEL: Loinc = Loinc {
    code: "85354-9",
    display: "Blood pressure panel with all children optional",
};
pub const SYSTOLIC: Loinc = Loinc {
    code: "8480-6",
    display: "Systolic blood pressure",
};
pub const DIASTOLIC: Loinc = Loinc {
    code: "8462-4",
    display: "Diastolic blood pressure",
};
pub const HEART_RATE: Loinc = Loinc {
    code: "8867-4",
    display: "Heart rate",
};

// The CGM summary of the HL7 FHIR CGM implementation guide 1.0.0 (profile `cgm-summary` and
// its members). The guide's source codes the summary 107931-8 ("reporting period"); the
// earlier 104643-2 is left out of its final version.
pub const CGM_SUMMARY: Loinc = Loinc {
    code: "107931-8",
    display: "Continuous glucose monitoring summary panel - Reporting Period",
};
pub const CGM_MEAN_GLUCOSE_MASS: Loinc = Loinc {
    code: "97507-8",
    display: "Glucose [Mass/volume] in Serum or Plasma by Continuous glucose monitoring",
};
pub const CGM_MEAN_GLUCOSE_MOLES: Loinc = Loinc {
    code: "105273-7",
    display: "Glucose [Moles/volume] in Capillary blood by Continuous glucose monitoring",
};
pub const CGM_TIMES_IN_RANGES: Loinc = Loinc {
    code: "106793-3",
    display: "Continuous glucose monitoring time in ranges panel",
};
pub const CGM_TIME_VERY_LOW: Loinc = Loinc {
    code: "104642-4",
    display: "Continuous glucose monitoring time below glucose threshold level 1",
};
pub const CGM_TIME_LOW: Loinc = Loinc {
    code: "104641-6",
    display: "Continuous glucose monitoring time below glucose threshold level 2",
};
pub const CGM_TIME_IN_RANGE: Loinc = Loinc {
    code: "97510-2",
    display: "Continuous glucose monitoring time in range",
};
pub const CGM_TIME_HIGH: Loinc = Loinc {
    code: "104640-8",
    display: "Continuous glucose monitoring time above glucose threshold level 1",
};
pub const CGM_TIME_VERY_HIGH: Loinc = Loinc {
    code: "104639-0",
    display: "Continuous glucose monitoring time above glucose threshold level 2",
};
pub const CGM_GMI: Loinc = Loinc {
    code: "97506-0",
    display: "Glucose management indicator by Continuous glucose monitoring",
};
pub const CGM_CV: Loinc = Loinc {
    code: "104638-2",
    display: "Coefficient of variation of glucose by Continuous glucose monitoring",
};
pub const CGM_DAYS_OF_WEAR: Loinc = Loinc {
    code: "104636-6",
    display: "Continuous glucose monitoring duration of use",
};
pub const CGM_SENSOR_ACTIVE: Loinc = Loinc {
    code: "104637-4",
    display: "Continuous glucose monitoring sensor wear time active",
};

/// The LOINC code of a glucose value in mg/dL from `source`.
pub fn glucose_loinc(source: GlucoseSource) -> Loinc {
    match source {
        GlucoseSource::Cgm => CGM_GLUCOSE_MASS,
        GlucoseSource::Meter => METER_GLUCOSE_MASS,
        GlucoseSource::Lab => BLOOD_GLUCOSE_MASS,
    }
}

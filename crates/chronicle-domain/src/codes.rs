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

/// The LOINC code of a glucose value in mg/dL from `source`.
pub fn glucose_loinc(source: GlucoseSource) -> Loinc {
    match source {
        GlucoseSource::Cgm => CGM_GLUCOSE_MASS,
        GlucoseSource::Meter => METER_GLUCOSE_MASS,
        GlucoseSource::Lab => BLOOD_GLUCOSE_MASS,
    }
}

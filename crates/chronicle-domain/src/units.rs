//! Units of measure. Glucose is stored canonically in mg/dL; the unit a device sent is kept
//! beside the normalized value.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// mg/dL per mmol/L of glucose: the molar mass of glucose, 180.1559 g/mol, divided by 10
/// (1 mmol/L = 180.1559 mg/L = 18.01559 mg/dL).
pub const MG_DL_PER_MMOL_L: f64 = 18.01559;

/// A glucose concentration unit, spelled as in UCUM (`mg/dL`, `mmol/L`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GlucoseUnit {
    #[serde(rename = "mg/dL")]
    MgDl,
    #[serde(rename = "mmol/L")]
    MmolL,
}

impl GlucoseUnit {
    pub const ALL: [GlucoseUnit; 2] = [GlucoseUnit::MgDl, GlucoseUnit::MmolL];

    /// The UCUM spelling, also used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            GlucoseUnit::MgDl => "mg/dL",
            GlucoseUnit::MmolL => "mmol/L",
        }
    }

    /// Converts a value in this unit to mg/dL.
    pub fn to_mg_dl(self, value: f64) -> f64 {
        match self {
            GlucoseUnit::MgDl => value,
            GlucoseUnit::MmolL => value * MG_DL_PER_MMOL_L,
        }
    }

    /// Converts a value in mg/dL to this unit.
    pub fn from_mg_dl(self, mg_dl: f64) -> f64 {
        match self {
            GlucoseUnit::MgDl => mg_dl,
            GlucoseUnit::MmolL => mg_dl / MG_DL_PER_MMOL_L,
        }
    }
}

impl fmt::Display for GlucoseUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The unit string was not one Chronicle knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown glucose unit {0:?}: expected \"mg/dL\" or \"mmol/L\"")]
pub struct UnknownUnit(pub String);

impl FromStr for GlucoseUnit {
    type Err = UnknownUnit;

    /// Accepts the UCUM spellings and their common case variants (`mg/dl`, `mmol/l`); never
    /// guesses a unit from a number.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "mg/dl" => Ok(GlucoseUnit::MgDl),
            "mmol/l" => Ok(GlucoseUnit::MmolL),
            _ => Err(UnknownUnit(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_conversions() {
        assert!((GlucoseUnit::MmolL.to_mg_dl(1.0) - 18.01559).abs() < 1e-12);
        assert!((GlucoseUnit::MmolL.to_mg_dl(3.0) - 54.04677).abs() < 1e-9);
        assert!((GlucoseUnit::MgDl.to_mg_dl(123.4) - 123.4).abs() < 1e-12);
    }

    #[test]
    fn parses_unit_spellings() {
        assert_eq!("mg/dL".parse(), Ok(GlucoseUnit::MgDl));
        assert_eq!("MMOL/L".parse(), Ok(GlucoseUnit::MmolL));
        assert!("mg".parse::<GlucoseUnit>().is_err());
    }

    proptest! {
        #[test]
        fn mmol_round_trip_is_exact_enough(v in 0.01f64..60.0) {
            let back = GlucoseUnit::MmolL.from_mg_dl(GlucoseUnit::MmolL.to_mg_dl(v));
            prop_assert!((back - v).abs() <= v * 1e-12);
        }

        #[test]
        fn conversion_is_monotonic(a in 0.01f64..60.0, b in 0.01f64..60.0) {
            prop_assume!(a < b);
            prop_assert!(GlucoseUnit::MmolL.to_mg_dl(a) < GlucoseUnit::MmolL.to_mg_dl(b));
        }
    }
}

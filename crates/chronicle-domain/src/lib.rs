//! Chronicle's domain model: what a reading is, which values are plausible, and how the
//! ingest wire format turns into validated readings.
//!
//! - [`units`]: glucose units and the exact mg/dL ↔ mmol/L conversion.
//! - [`device`]: device and gateway identifiers, device kinds, and who published a message.
//! - [`reading`]: validated readings. A value of these types has passed every plausibility check.
//! - [`treatment`]: validated treatments (insulin, carbohydrates, exercise, notes, sensor
//!   starts and changes, calibrations).
//! - [`nightscout`]: Nightscout's entries and treatments translated into wire records, for the
//!   Nightscout front door.
//! - [`imports`]: vendor exports (Dexcom Clarity CSV, LibreView CSV, Nightscout JSON) read
//!   into wire records, row by row, for the import API.
//! - [`rejection`]: why a reading or message was refused, with stable codes.
//! - [`wire`]: the JSON payload devices send, decoded and validated into readings and rejections.
//! - [`targets`]: a patient's glucose targets (consensus presets and safe custom bounds).
//! - [`zone`]: patients' IANA time zones.
//! - [`alerts`]: the alert rules, their thresholds and the alert lifecycle, as pure functions.
//! - [`trends`]: glucose and blood-pressure metrics per day and window, the AGP, episodes and
//!   the panel's flags.
//! - [`accounts`]: authentication events, API token lifetimes, the password policy and the
//!   back-off of failed log-ins.
//!
//! Invariant: this crate does no I/O and knows nothing of SQL, HTTP or MQTT. Every front door
//! (MQTT today, HTTP uploads later) hands raw bytes to [`wire::parse_message`] and
//! [`wire::validate_readings`]. [`sharing`] decides who may read what; it is pure, so every
//! read path can call it and tests can try every case.

/// Declares a closed vocabulary: an enum with its stable spellings (`as_str`, `parse`, `ALL`).
macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable spelling used in the API and the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(text: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod accounts;
pub mod alerts;
pub mod codes;
pub mod device;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod imports;
pub mod nightscout;
pub mod reading;
pub mod rejection;
pub mod sharing;
pub mod sync;
pub mod targets;
pub mod topics;
pub mod treatment;
pub mod trends;
pub mod units;
pub mod wire;
pub mod zone;

pub use device::{DeviceId, DeviceKind, GatewayId, Publisher};
pub use reading::{
    BloodPressureReading, Diastolic, GlucoseFlag, GlucoseMgDl, GlucoseReading, GlucoseSource,
    Pulse, Reading, ReadingKind, Systolic,
};
pub use rejection::{Rejection, RejectionReason};
pub use treatment::{Treatment, TreatmentEvent, TreatmentKind};
pub use units::GlucoseUnit;

/// Registers each named field of `$metrics` into `$registry` under the field's own name, with
/// its help text: one line per metric wherever metrics are declared (ingest, broker, alerts).
/// It expands in the caller's crate, so the domain itself depends on no metrics library.
#[macro_export]
macro_rules! register_metrics {
    ($registry:expr, $metrics:expr, { $($field:ident: $help:literal,)* }) => {
        $($registry.register(stringify!($field), $help, $metrics.$field.clone());)*
    };
}

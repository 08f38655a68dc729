//! `chronicle-sim`: simulated patients and their devices.
//!
//! A [`Patient`] (generated from a [`Persona`] and a seed, or assembled by hand) has a
//! physiological model — glucose–insulin dynamics ([`glucose`]) and/or blood pressure
//! ([`bp`]) — and devices ([`DeviceSpec`]: CGM, meter, cuff). A [`PatientSim`] advances the
//! patient minute by minute and returns what the devices report as [`SimReading`]s, each of
//! which converts to the protocol's JSON ([`SimReading::to_json`], `docs/protocol.md`).
//! A [`Population`] is N patients with a [`PersonaMix`].
//!
//! On top of the models: [`mqtt`] (simulated devices on MQTT, acks matched to messages),
//! [`ledger`] (what was expected and answered; the reconciliation), [`player`] (live,
//! accelerated and backfill time modes), [`faults`], [`scenario`] with its [`oracle`]
//! (alert-worthy events and their ground truth) and [`devices_file`]. The `chronicle-sim`
//! binary and `chronicle demo` are built from these.
//!
//! Everything is seeded and reproducible: the same seed gives the same patients and the same
//! readings on every platform. The models, their parameters and sources are documented in
//! `docs/simulator.md`.
//!
//! ```
//! use chronicle_sim::{Population, PersonaMix};
//! use chrono::{TimeZone, Utc};
//!
//! let population = Population::generate(42, 3, &PersonaMix::default());
//! let start = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).single().expect("a valid date");
//! let end = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).single().expect("a valid date");
//! let readings = population.patients[0].readings(start, end);
//! let json = readings[0].to_json(); // {"type":"glucose","value":...}
//! assert_eq!(json["type"], "glucose");
//! ```

pub mod bp;
pub mod devices;
pub mod devices_file;
pub mod faults;
pub mod glucose;
pub mod ledger;
pub mod metrics;
pub mod mqtt;
pub mod oracle;
mod patient;
mod plan;
pub mod player;
mod population;
mod reading;
pub mod rng;
pub mod scenario;
mod sim;
mod zone;

pub use devices::{CgmSpec, CuffSpec, DeviceSpec, MeterSchedule, MeterSpec};
pub use patient::{GlucoseProfile, Patient, Persona, SimError};
pub use plan::{BolusHabits, ExerciseHabit, Habits, MealHabit, MealKind, Routine};
pub use population::{MAX_TOTAL_WEIGHT, PersonaMix, Population};
pub use reading::{
    BloodPressureSample, GlucoseSample, GlucoseValue, SimReading, Treatment, TreatmentSample,
    batch_json,
};
pub use sim::{DEFAULT_BURN_IN_MIN, Intervention, PatientSim};
pub use zone::{InvalidOffset, Zone};

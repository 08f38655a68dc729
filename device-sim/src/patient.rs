//! Patients: personas, per-patient variation drawn from the seed, and populations.

use crate::bp::BpParams;
use crate::devices::{CgmSpec, CuffSpec, DeviceSpec, MeterSchedule, MeterSpec};
use crate::glucose::{
    Diabetes, ExerciseEffect, GlucoseParams, InsulinTherapy, Metformin, Secretion, hovorka,
};
use crate::plan::{BolusHabits, ExerciseHabit, Habits, MealHabit, MealKind, Routine};
use crate::reading::SimReading;
use crate::rng::{self, SimRng, stream};
use crate::sim::PatientSim;
use crate::zone::Zone;
use chronicle_domain::GlucoseUnit;
use chrono::{DateTime, Utc};
use rand::Rng;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// A kind of patient the simulator can generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Persona {
    /// Well-controlled type 1 diabetes on a CGM (basal–bolus insulin).
    Type1Cgm,
    /// Poorly controlled type 2 diabetes with a finger-stick meter (metformin, poor adherence).
    Type2Meter,
    /// Persistent (under-treated) hypertension, home cuff.
    Hypertension,
    /// Type 2 diabetes and hypertension: a CGM or a meter, and a cuff.
    Type2Hypertension,
    /// Normal blood pressure, home cuff (screening, family history).
    Normotensive,
}

impl Persona {
    pub const ALL: [Persona; 5] = [
        Persona::Type1Cgm,
        Persona::Type2Meter,
        Persona::Hypertension,
        Persona::Type2Hypertension,
        Persona::Normotensive,
    ];

    /// The persona's name on the command line and in docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Persona::Type1Cgm => "type1-cgm",
            Persona::Type2Meter => "type2-meter",
            Persona::Hypertension => "hypertension",
            Persona::Type2Hypertension => "type2-hypertension",
            Persona::Normotensive => "normotensive",
        }
    }
}

impl fmt::Display for Persona {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of this crate's constructors and parsers.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SimError {
    #[error(
        "unknown persona {0:?}: expected one of type1-cgm, type2-meter, hypertension, type2-hypertension, normotensive"
    )]
    UnknownPersona(String),
    #[error("persona mix entry {0:?} is not PERSONA=WEIGHT with a whole-number weight")]
    BadMixEntry(String),
    #[error("persona mix has no positive weight")]
    EmptyMix,
    #[error("persona mix weights add up to {0} after reduction; at most 10000 are supported")]
    MixTooFine(u64),
    #[error("device {index} ({kind}) needs a {needs} model this patient does not have")]
    DeviceWithoutModel {
        index: usize,
        kind: chronicle_domain::DeviceKind,
        needs: &'static str,
    },
}

impl FromStr for Persona {
    type Err = SimError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Persona::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| SimError::UnknownPersona(s.to_owned()))
    }
}

/// The glucose side of a patient: physiology and habits.
#[derive(Debug, Clone, PartialEq)]
pub struct GlucoseProfile {
    pub params: GlucoseParams,
    pub habits: Habits,
}

/// One simulated patient. All fields are public so scenarios can adjust a generated patient
/// (then check it with [`Patient::validate`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Patient {
    /// Position in the population.
    pub index: u64,
    /// The patient's own seed (derived from the population seed and the index).
    pub seed: u64,
    pub persona: Persona,
    pub zone: Zone,
    pub routine: Routine,
    /// Devices, in a fixed order; readings name them by index.
    pub devices: Vec<DeviceSpec>,
    pub glucose: Option<GlucoseProfile>,
    pub bp: Option<BpParams>,
}

/// Share of generated glucose devices that display mmol/L (most of Europe, Canada,
/// Australia); the rest display mg/dL.
const MMOL_SHARE: f64 = 0.4;

fn draw_unit(rng: &mut SimRng) -> GlucoseUnit {
    if rng::chance(rng, MMOL_SHARE) {
        GlucoseUnit::MmolL
    } else {
        GlucoseUnit::MgDl
    }
}

fn draw_cgm(rng: &mut SimRng) -> CgmSpec {
    let unit = draw_unit(rng);
    let mut spec = if rng::chance(rng, 0.5) {
        CgmSpec::ten_day(unit)
    } else {
        CgmSpec::fourteen_day(unit)
    };
    spec.schedule_phase_min = (rng::uniform(rng, 0.0, 1.0) * spec.life_min() as f64) as i64;
    spec
}

fn meal(kind: MealKind, hour: f64, carbs_g: f64, probability: f64) -> MealHabit {
    MealHabit {
        kind,
        minute: hour * 60.0,
        time_sd_min: 30.0,
        carbs_g,
        carbs_sigma: 0.25,
        max_fast_share: 0.4,
        // Lunch and dinner are the meals rich in fat and protein.
        max_slow_share: match kind {
            MealKind::Lunch | MealKind::Dinner => 0.5,
            MealKind::Breakfast | MealKind::Snack => 0.1,
        },
        probability,
    }
}

impl Patient {
    /// Generates patient `index` of `persona` from a population `seed`; every per-patient
    /// variation is drawn from a stream named by (seed, index), so the patient does not depend
    /// on the rest of the population.
    pub fn generate(persona: Persona, seed: u64, index: u64) -> Patient {
        let patient_seed = rng::derive_seed(seed, &[stream::PATIENT, index]);
        let mut rng = rng::rng_at(patient_seed, &[stream::PATIENT]);
        let zones = Zone::builtin();
        let (zone_name, offset) = zones[rng.random_range(0..zones.len())];
        let zone = Zone::new(zone_name, offset).unwrap_or_else(|_| Zone::utc());
        let routine = Routine {
            wake_minute: rng::normal_clamped(&mut rng, 405.0, 40.0, 300.0, 540.0),
            sleep_minute: rng::normal_clamped(&mut rng, 1380.0, 40.0, 1290.0, 1500.0),
            time_sd_min: 25.0,
        };
        let (glucose, bp, devices) = match persona {
            Persona::Type1Cgm => {
                let g = type1(&mut rng);
                (Some(g), None, vec![DeviceSpec::Cgm(draw_cgm(&mut rng))])
            }
            Persona::Type2Meter => {
                let g = type2(&mut rng, Control::Poor);
                let meter = MeterSpec::iso_15197(
                    draw_unit(&mut rng),
                    rng::normal_clamped(&mut rng, 0.0, 0.02, -0.04, 0.04),
                    MeterSchedule {
                        before_breakfast: 0.75,
                        before_lunch: 0.15,
                        before_dinner: 0.35,
                        bedtime: 0.25,
                    },
                );
                (Some(g), None, vec![DeviceSpec::Meter(meter)])
            }
            Persona::Hypertension => (
                None,
                Some(bp_params(&mut rng, BpLevel::Hypertensive)),
                vec![DeviceSpec::Cuff(cuff(&mut rng))],
            ),
            Persona::Type2Hypertension => {
                let g = type2(&mut rng, Control::Moderate);
                let bp = bp_params(&mut rng, BpLevel::TreatedHypertensive);
                let glucose_device = if rng::chance(&mut rng, 0.5) {
                    DeviceSpec::Cgm(draw_cgm(&mut rng))
                } else {
                    DeviceSpec::Meter(MeterSpec::iso_15197(
                        draw_unit(&mut rng),
                        rng::normal_clamped(&mut rng, 0.0, 0.02, -0.04, 0.04),
                        MeterSchedule {
                            before_breakfast: 0.9,
                            before_lunch: 0.3,
                            before_dinner: 0.6,
                            bedtime: 0.4,
                        },
                    ))
                };
                (
                    Some(g),
                    Some(bp),
                    vec![glucose_device, DeviceSpec::Cuff(cuff(&mut rng))],
                )
            }
            Persona::Normotensive => (
                None,
                Some(bp_params(&mut rng, BpLevel::Normal)),
                vec![DeviceSpec::Cuff(cuff(&mut rng))],
            ),
        };
        Patient {
            index,
            seed: patient_seed,
            persona,
            zone,
            routine,
            devices,
            glucose,
            bp,
        }
    }

    /// Replaces the devices (e.g. to give a meter user a blinded CGM for an evaluation).
    pub fn with_devices(mut self, devices: Vec<DeviceSpec>) -> Result<Patient, SimError> {
        self.devices = devices;
        self.validate()?;
        Ok(self)
    }

    /// Checks that every device has the model it reads.
    pub fn validate(&self) -> Result<(), SimError> {
        for (index, device) in self.devices.iter().enumerate() {
            let needs = match device {
                DeviceSpec::Cgm(_) | DeviceSpec::Meter(_) if self.glucose.is_none() => "glucose",
                DeviceSpec::Cuff(_) if self.bp.is_none() => "blood-pressure",
                _ => continue,
            };
            return Err(SimError::DeviceWithoutModel {
                index,
                kind: device.kind(),
                needs,
            });
        }
        Ok(())
    }

    /// A simulator whose first readings are at `start`.
    pub fn simulator(&self, start: DateTime<Utc>) -> PatientSim {
        PatientSim::new(self, start)
    }

    /// All readings of all devices in `[start, end)`, in time order per device.
    pub fn readings(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<SimReading> {
        let mut sim = self.simulator(start);
        let mut out = Vec::new();
        sim.advance_to(end, &mut out);
        out
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Control {
    Poor,
    Moderate,
}

fn common_glucose(rng: &mut SimRng, diabetes: Diabetes, weight: (f64, f64)) -> GlucoseParams {
    GlucoseParams {
        diabetes,
        body_weight_kg: rng::normal_clamped(rng, weight.0, weight.1, 48.0, 160.0),
        s_g: 0.0,
        s_i: 0.0,
        p2: rng::normal_clamped(rng, 0.025, 0.003, 0.018, 0.032),
        g_b: 0.0,
        i_b: 0.0,
        v_g_dl_per_kg: hovorka::V_G_DL_PER_KG,
        v_i_l_per_kg: hovorka::V_I_L_PER_KG,
        k_e: hovorka::K_E,
        tau_insulin_min: rng::normal_clamped(rng, hovorka::T_MAX_I, 6.0, 40.0, 75.0),
        tau_meal_min: rng::normal_clamped(rng, hovorka::T_MAX_G, 6.0, 28.0, 60.0),
        tau_fast_min: 15.0,
        tau_slow_min: 180.0,
        bioavailability: hovorka::A_G,
        tau_interstitial_min: rng::uniform(rng, 5.0, 10.0),
        dawn_amplitude: 0.0,
        dawn_peak_minute: rng::normal_clamped(rng, 360.0, 30.0, 270.0, 450.0),
        dawn_width_min: rng::normal_clamped(rng, 80.0, 10.0, 55.0, 110.0),
        daily_sensitivity_sigma: 0.0,
        drift_sensitivity_sigma: 0.0,
        drift_tau_min: 240.0,
        exercise: ExerciseEffect::default(),
        insulin: None,
        secretion: None,
        metformin: None,
    }
}

fn type1(rng: &mut SimRng) -> GlucoseProfile {
    let mut p = common_glucose(rng, Diabetes::Type1, (75.0, 12.0));
    p.s_i = 5.5e-4 * rng::lognormal_factor(rng, 0.2).clamp(0.7, 1.5);
    p.s_g = rng::normal_clamped(rng, 0.008, 0.0012, 0.005, 0.011);
    p.g_b = rng::normal_clamped(rng, 152.0, 10.0, 130.0, 175.0);
    p.dawn_amplitude = rng::uniform(rng, 0.05, 0.2);
    p.daily_sensitivity_sigma = 0.2;
    p.drift_sensitivity_sigma = 0.35;
    p.drift_tau_min = 240.0;
    let basal_u_per_h = 0.01 * p.body_weight_kg * rng::lognormal_factor(rng, 0.15);
    p.i_b = GlucoseParams::insulin_for_basal(p.v_i(), p.k_e, basal_u_per_h);
    let target = 110.0;
    // The patient's ratios are the model's own, off by a persistent personal bias.
    let carb_ratio = p.model_carb_ratio(target, 0.9) * rng::lognormal_factor(rng, 0.15);
    let sensitivity = p.model_sensitivity_per_unit(target) * rng::lognormal_factor(rng, 0.15);
    p.insulin = Some(InsulinTherapy {
        basal_u_per_h,
        carb_ratio_g_per_u: carb_ratio,
        sensitivity_mg_dl_per_u: sensitivity,
        target_mg_dl: target,
    });
    // Larger people eat more (intake scales sub-linearly with weight).
    let scale = rng::lognormal_factor(rng, 0.15) * (p.body_weight_kg / 75.0).sqrt();
    let habits = Habits {
        meals: vec![
            meal(MealKind::Breakfast, 7.5, 45.0 * scale, 0.95),
            meal(MealKind::Lunch, 12.75, 60.0 * scale, 0.95),
            meal(MealKind::Snack, 16.0, 20.0 * scale, 0.4),
            meal(MealKind::Dinner, 19.5, 70.0 * scale, 1.0),
            meal(MealKind::Snack, 22.0, 15.0 * scale, 0.2),
        ],
        bolus: Some(BolusHabits {
            carb_count_sigma: 0.3,
            carb_count_bias: -0.15,
            missed_probability: 0.05,
            over_bolus_probability: 0.03,
            over_bolus_factor: (1.5, 2.2),
            skipped_meal_probability: 0.015,
            prebolus_min: (-15.0, 15.0),
            snack_bolus_probability: 0.4,
            correction_above_mg_dl: 150.0,
            correction_probability: 0.7,
            extra_correction_above_mg_dl: Some(250.0),
            glances_per_day: 4.0,
        }),
        exercise: ExerciseHabit {
            probability: rng::uniform(rng, 0.15, 0.45),
            minute: rng::normal_clamped(rng, 1050.0, 60.0, 900.0, 1200.0),
            time_sd_min: 45.0,
            duration_min: (30.0, 60.0),
            intensity: (0.4, 0.7),
            snack_g: 15.0,
        },
        metformin_adherence: 0.0,
        hypo_threshold_mg_dl: rng::uniform(rng, 65.0, 72.0),
        rescue_carbs_g: rng::uniform(rng, 15.0, 20.0),
        meter_check_when_treating: false,
    };
    GlucoseProfile { params: p, habits }
}

fn type2(rng: &mut SimRng, control: Control) -> GlucoseProfile {
    let mut p = common_glucose(rng, Diabetes::Type2, (92.0, 15.0));
    let poor = control == Control::Poor;
    p.s_i = if poor { 1.4e-4 } else { 2.0e-4 } * rng::lognormal_factor(rng, 0.15).clamp(0.7, 1.4);
    p.s_g = rng::normal_clamped(rng, 0.012, 0.0015, 0.008, 0.016);
    p.g_b = if poor {
        rng::normal_clamped(rng, 170.0, 10.0, 150.0, 195.0)
    } else {
        rng::normal_clamped(rng, 150.0, 10.0, 130.0, 175.0)
    };
    p.i_b = rng::normal_clamped(rng, 16.0, 4.0, 8.0, 28.0);
    p.dawn_amplitude = rng::uniform(rng, 0.1, 0.25);
    p.daily_sensitivity_sigma = 0.12;
    p.drift_sensitivity_sigma = 0.2;
    p.drift_tau_min = 240.0;
    p.secretion = Some(Secretion {
        gamma: if poor { 0.04 } else { 0.06 } * rng::lognormal_factor(rng, 0.2),
    });
    p.metformin = Some(Metformin {
        max_effect: rng::uniform(rng, 0.12, 0.25),
        half_life_min: 300.0,
        ec50: 0.5,
    });
    let scale = rng::lognormal_factor(rng, 0.12) * (p.body_weight_kg / 92.0).sqrt();
    let (big, snack_p) = if poor { (1.25, 0.6) } else { (1.0, 0.35) };
    let habits = Habits {
        meals: vec![
            meal(
                MealKind::Breakfast,
                7.5,
                45.0 * big * scale,
                if poor { 0.8 } else { 0.9 },
            ),
            meal(MealKind::Lunch, 12.75, 65.0 * big * scale, 0.95),
            meal(MealKind::Snack, 15.75, 30.0 * big * scale, snack_p),
            meal(MealKind::Dinner, 19.0, 75.0 * big * scale, 1.0),
            meal(MealKind::Snack, 21.75, 30.0 * big * scale, snack_p * 0.7),
        ],
        bolus: None,
        exercise: ExerciseHabit {
            probability: if poor { 0.08 } else { 0.2 },
            minute: rng::normal_clamped(rng, 1050.0, 60.0, 900.0, 1200.0),
            time_sd_min: 45.0,
            duration_min: (20.0, 45.0),
            intensity: (0.3, 0.5),
            snack_g: 0.0,
        },
        metformin_adherence: if poor {
            rng::uniform(rng, 0.5, 0.8)
        } else {
            rng::uniform(rng, 0.8, 0.95)
        },
        hypo_threshold_mg_dl: 65.0,
        rescue_carbs_g: 15.0,
        meter_check_when_treating: false,
    };
    GlucoseProfile { params: p, habits }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BpLevel {
    Normal,
    Hypertensive,
    TreatedHypertensive,
}

fn bp_params(rng: &mut SimRng, level: BpLevel) -> BpParams {
    let (sys, dia, sd_s, sd_d) = match level {
        BpLevel::Normal => (110.0, 70.0, 5.0, 3.5),
        BpLevel::Hypertensive => (146.0, 90.0, 7.0, 5.0),
        BpLevel::TreatedHypertensive => (141.0, 86.0, 6.0, 4.0),
    };
    let systolic_awake = rng::normal_clamped(rng, sys, sd_s, sys - 1.5 * sd_s, sys + 2.0 * sd_s);
    let diastolic_awake = rng::normal_clamped(rng, dia, sd_d, dia - 1.5 * sd_d, dia + 2.0 * sd_d)
        .min(systolic_awake - 25.0);
    // Dippers fall 10–20 % at night; about a third of hypertensive patients are non-dippers
    // (< 10 %).
    let night_dip = match level {
        BpLevel::Normal => rng::uniform(rng, 0.10, 0.20),
        _ if rng::chance(rng, 0.35) => rng::uniform(rng, 0.02, 0.10),
        _ => rng::uniform(rng, 0.10, 0.18),
    };
    let surge = match level {
        BpLevel::Normal => rng::uniform(rng, 3.0, 8.0),
        _ => rng::uniform(rng, 8.0, 20.0),
    };
    let (clinic_s, clinic_d) = match level {
        BpLevel::Normal => (rng::uniform(rng, 0.0, 10.0), rng::uniform(rng, 0.0, 5.0)),
        _ => (rng::uniform(rng, 5.0, 20.0), rng::uniform(rng, 2.0, 10.0)),
    };
    BpParams {
        systolic_awake,
        diastolic_awake,
        pulse_awake: rng::normal_clamped(rng, 72.0, 7.0, 55.0, 95.0),
        night_dip,
        pulse_night_dip: rng::uniform(rng, 0.08, 0.15),
        morning_surge: surge,
        surge_peak_min: rng::uniform(rng, 45.0, 90.0),
        first_reading_systolic: rng::uniform(rng, 2.0, 8.0),
        first_reading_diastolic: rng::uniform(rng, 0.5, 3.0),
        clinic_systolic: clinic_s,
        clinic_diastolic: clinic_d,
        reading_sd_systolic: rng::uniform(rng, 4.0, 6.0),
        reading_sd_diastolic: rng::uniform(rng, 3.0, 4.5),
        reading_sd_pulse: rng::uniform(rng, 2.5, 4.0),
        daily_sd_systolic: rng::uniform(rng, 3.0, 6.0),
        daily_sd_diastolic: rng::uniform(rng, 2.0, 3.5),
    }
}

fn cuff(rng: &mut SimRng) -> CuffSpec {
    CuffSpec {
        morning_after_wake_min: rng::uniform(rng, 20.0, 60.0),
        evening_minute: rng::normal_clamped(rng, 1260.0, 30.0, 1170.0, 1350.0),
        time_sd_min: 20.0,
        adherence: rng::uniform(rng, 0.8, 0.97),
    }
}

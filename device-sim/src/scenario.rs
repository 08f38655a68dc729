//! Scenarios: alert-worthy events at a chosen time, on patients built to be steady otherwise,
//! with their ground truth (`alerts-contract`: rule ids, file format).
//!
//! Each scenario patient is a well-controlled patient with quiet devices (no signal loss, no
//! sensor change in the window, little sensor noise, accurate boluses, no exercise). The
//! scenario adds what makes the event happen (an overdose at bedtime, intense exercise, a
//! missed bolus, a pressure surge, a lost signal, a meter synced a day late). The readings of
//! the whole window are simulated beforehand and checked by the [`oracle`]: the scenario's
//! rules must clearly fire, every other rule must stay clearly quiet, and nothing may be
//! borderline. If a variant fails, the next variant (another draw of the patient, a slightly
//! different dose) is tried, so the ground truth is always unambiguous.

use crate::bp::BpParams;
use crate::devices::{CgmSpec, CuffSpec, DeviceSpec, MeterSchedule, MeterSpec};
use crate::oracle::{self, Assessment, rules};
use crate::patient::{Patient, Persona};
use crate::plan::{BolusHabits, ExerciseHabit, MealHabit, MealKind};
use crate::player::Delivery;
use crate::reading::SimReading;
use crate::sim::{Intervention, PatientSim};
use crate::zone::Zone;
use chronicle_domain::{DeviceKind, GlucoseUnit};
use chrono::{DateTime, Duration, Timelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Variants tried before giving up.
const MAX_VARIANTS: u32 = 64;

/// A scenario the simulator can play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScenarioKind {
    NocturnalHypoglycemia,
    FallAfterExercise,
    ProlongedHyperglycemia,
    HypertensiveCrisis,
    SilentDevice,
    LateBacklog,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum ScenarioError {
    #[error("unknown scenario {0:?}: expected all or one of {names}", names = ScenarioKind::ALL.map(ScenarioKind::as_str).join(", "))]
    Unknown(String),
    #[error(
        "could not build an unambiguous {kind} scenario at {at} in {MAX_VARIANTS} variants: {last}"
    )]
    NoClearVariant {
        kind: ScenarioKind,
        at: DateTime<Utc>,
        last: String,
    },
}

impl ScenarioKind {
    pub const ALL: [ScenarioKind; 6] = [
        ScenarioKind::NocturnalHypoglycemia,
        ScenarioKind::FallAfterExercise,
        ScenarioKind::ProlongedHyperglycemia,
        ScenarioKind::HypertensiveCrisis,
        ScenarioKind::SilentDevice,
        ScenarioKind::LateBacklog,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioKind::NocturnalHypoglycemia => "nocturnal_hypoglycemia",
            ScenarioKind::FallAfterExercise => "fall_after_exercise",
            ScenarioKind::ProlongedHyperglycemia => "prolonged_hyperglycemia",
            ScenarioKind::HypertensiveCrisis => "hypertensive_crisis",
            ScenarioKind::SilentDevice => "silent_device",
            ScenarioKind::LateBacklog => "late_backlog",
        }
    }

    /// What `at` means for this scenario, for `--help` and the docs.
    pub fn describe(self) -> &'static str {
        match self {
            ScenarioKind::NocturnalHypoglycemia => {
                "a type 1 patient on a CGM takes too much insulin at bedtime (at = the dose, default 23:30 local); glucose falls below 54 mg/dL in the night and the patient, woken late by the alarm, treats it"
            }
            ScenarioKind::FallAfterExercise => {
                "a type 1 patient on a CGM exercises hard after a bolused snack (at = start of exercise, default 17:30 local); glucose falls faster than 3 mg/dL/min"
            }
            ScenarioKind::ProlongedHyperglycemia => {
                "a type 1 patient on a CGM eats a large meal without its bolus (at = the meal, default 13:00 local) and corrects three hours later; glucose stays above 250 mg/dL for over an hour"
            }
            ScenarioKind::HypertensiveCrisis => {
                "a patient with a cuff and a week of normal home readings measures twice during a pressure surge (at = the first reading, default 08:30 local); systolic above 180 mm Hg"
            }
            ScenarioKind::SilentDevice => {
                "a CGM loses its signal for two hours (at = the last reading's time, default 10:00 local)"
            }
            ScenarioKind::LateBacklog => {
                "a meter user's over-bolus causes a hypoglycaemia yesterday afternoon, measured with the meter; the meter syncs yesterday's readings at once (at = the sync, default 12:00 local); no live alarm is due"
            }
        }
    }

    /// The device the scenario's events concern.
    pub fn device_kind(self) -> DeviceKind {
        match self {
            ScenarioKind::HypertensiveCrisis => DeviceKind::Bp,
            ScenarioKind::LateBacklog => DeviceKind::Meter,
            _ => DeviceKind::Cgm,
        }
    }

    /// Local time of day the scenario happens at by default, minutes after midnight.
    fn default_local_minute(self) -> i64 {
        match self {
            ScenarioKind::NocturnalHypoglycemia => 23 * 60 + 30,
            ScenarioKind::FallAfterExercise => 17 * 60 + 30,
            ScenarioKind::ProlongedHyperglycemia => 13 * 60,
            ScenarioKind::HypertensiveCrisis => 8 * 60 + 30,
            ScenarioKind::SilentDevice => 10 * 60,
            ScenarioKind::LateBacklog => 12 * 60,
        }
    }

    /// Steady history before `at`, and the time after it the scenario needs.
    fn lead_and_tail(self) -> (Duration, Duration) {
        match self {
            ScenarioKind::NocturnalHypoglycemia => (Duration::hours(10), Duration::hours(8)),
            ScenarioKind::FallAfterExercise => (Duration::hours(8), Duration::hours(5)),
            ScenarioKind::ProlongedHyperglycemia => (Duration::hours(8), Duration::hours(7)),
            // A week of normal home readings, so the 7-day mean stays below stage 2.
            ScenarioKind::HypertensiveCrisis => (Duration::days(8), Duration::hours(12)),
            ScenarioKind::SilentDevice => (Duration::hours(6), Duration::hours(4)),
            ScenarioKind::LateBacklog => (Duration::hours(30), Duration::zero()),
        }
    }

    /// The rules the scenario must raise, and those it may raise on top.
    fn rules(self) -> (&'static [&'static str], &'static [&'static str]) {
        use rules::*;
        match self {
            ScenarioKind::NocturnalHypoglycemia => {
                (&[GLUCOSE_VERY_LOW, GLUCOSE_LOW, GLUCOSE_PREDICTED_LOW], &[])
            }
            ScenarioKind::FallAfterExercise => (
                &[GLUCOSE_RAPID_FALL],
                &[GLUCOSE_PREDICTED_LOW, GLUCOSE_LOW, GLUCOSE_VERY_LOW],
            ),
            ScenarioKind::ProlongedHyperglycemia => (&[GLUCOSE_VERY_HIGH], &[]),
            ScenarioKind::HypertensiveCrisis => (&[BP_CRISIS], &[]),
            ScenarioKind::SilentDevice => (&[NO_DATA], &[]),
            ScenarioKind::LateBacklog => (&[GLUCOSE_VERY_LOW, GLUCOSE_LOW], &[]),
        }
    }

    /// The default `at`: the scenario's usual local time, the latest one whose window has
    /// ended by `now` (backfill), or the next one (live and accelerated, after `now` plus
    /// `margin`).
    pub fn default_at(
        self,
        zone: &Zone,
        now: DateTime<Utc>,
        past: bool,
        margin: Duration,
    ) -> DateTime<Utc> {
        let (_, tail) = self.lead_and_tail();
        let offset = Duration::minutes(i64::from(zone.offset_minutes()));
        let local_now = now + offset;
        let midnight = local_now
            - Duration::seconds(i64::from(local_now.num_seconds_from_midnight()))
            - Duration::nanoseconds(i64::from(local_now.nanosecond()));
        let at_day = |d: i64| {
            midnight + Duration::days(d) + Duration::minutes(self.default_local_minute()) - offset
        };
        if past {
            (0..=3)
                .map(|back| at_day(-back))
                .find(|at| *at + tail + Duration::minutes(1) <= now)
                .unwrap_or_else(|| at_day(-4))
        } else {
            (0..=2)
                .map(at_day)
                .find(|at| *at >= now + margin)
                .unwrap_or_else(|| at_day(3))
        }
    }
}

impl fmt::Display for ScenarioKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ScenarioKind {
    type Err = ScenarioError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().replace('-', "_");
        ScenarioKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(&s))
            .ok_or(ScenarioError::Unknown(s))
    }
}

/// A scenario ready to play: the patient, its readings (checked) and when to send them.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub kind: ScenarioKind,
    pub patient: Patient,
    pub at: DateTime<Utc>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// For a backlog: when the device sends everything (otherwise as the clock passes).
    pub sync_at: Option<DateTime<Utc>>,
    /// Every reading of the window, in time order.
    pub readings: Vec<SimReading>,
    pub assessment: Assessment,
    /// Which variant passed the oracle.
    pub variant: u32,
    /// What the scenario did (doses, exercise), for the ground truth.
    pub actions: Vec<Value>,
}

impl Scenario {
    /// The same scenario moved `by` in time: every reading, the window and the actions keep
    /// their spacing, so the rules fire on the same readings, `by` later (the assessment is
    /// made again on the moved readings). Building again at another `at` is not the same: the
    /// patient's day (meals, sleep) would fall differently around the event.
    pub fn shifted(mut self, by: Duration) -> Scenario {
        for reading in &mut self.readings {
            reading.shift(by);
        }
        for action in &mut self.actions {
            let moved = action
                .get("at")
                .and_then(|at| serde_json::from_value::<DateTime<Utc>>(at.clone()).ok())
                .map(|at| at + by);
            if let (Some(moved), Some(fields)) = (moved, action.as_object_mut()) {
                fields.insert("at".into(), json!(moved));
            }
        }
        self.at += by;
        self.window_start += by;
        self.window_end += by;
        self.sync_at = self.sync_at.map(|at| at + by);
        self.assessment = oracle::assess(&self.readings);
        self
    }
}

/// Builds scenario `kind` at `at` for patient `index` of `seed`, in `zone`: the first
/// variant whose readings the oracle finds unambiguous.
pub fn build(
    kind: ScenarioKind,
    seed: u64,
    index: u64,
    at: DateTime<Utc>,
    zone: &Zone,
) -> Result<Scenario, ScenarioError> {
    let (required, allowed) = kind.rules();
    let mut last = String::new();
    for variant in 0..MAX_VARIANTS {
        let s = attempt(kind, seed, index, variant, at, zone);
        let fired = s.assessment.rules();
        let missing: Vec<_> = required.iter().filter(|r| !fired.contains(r)).collect();
        let extra: Vec<_> = fired
            .iter()
            .filter(|r| !required.contains(r) && !allowed.contains(r))
            .collect();
        if s.assessment.ambiguities.is_empty() && missing.is_empty() && extra.is_empty() {
            return Ok(s);
        }
        last = format!(
            "variant {variant}: missing {missing:?}, unexpected {extra:?}, borderline {:?}",
            s.assessment
                .ambiguities
                .iter()
                .map(|a| format!("{} at {}", a.rule, a.at))
                .collect::<Vec<_>>()
        );
    }
    Err(ScenarioError::NoClearVariant { kind, at, last })
}

/// One variant of a scenario, unchecked (to look at it; [`build`] checks).
pub fn attempt(
    kind: ScenarioKind,
    seed: u64,
    index: u64,
    variant: u32,
    at: DateTime<Utc>,
    zone: &Zone,
) -> Scenario {
    let (lead, tail) = kind.lead_and_tail();
    let window_start = at - lead;
    let window_end = match kind {
        ScenarioKind::LateBacklog => at - Duration::hours(6),
        _ => at + tail,
    };
    let (patient, readings, actions) = simulate(
        kind,
        seed,
        index,
        variant,
        at,
        zone,
        window_start,
        window_end,
    );
    let assessment = oracle::assess(&readings);
    Scenario {
        kind,
        patient,
        at,
        window_start,
        window_end,
        sync_at: (kind == ScenarioKind::LateBacklog).then_some(at),
        readings,
        assessment,
        variant,
        actions,
    }
}

/// A variant's factor in `[lo, hi]`, spread deterministically.
fn spread(variant: u32, lo: f64, hi: f64) -> f64 {
    // The golden-ratio sequence covers the range evenly whatever the number of variants.
    let u = (f64::from(variant) * 0.618_033_988_75).fract();
    lo + (hi - lo) * u
}

#[allow(clippy::too_many_arguments)]
fn simulate(
    kind: ScenarioKind,
    seed: u64,
    index: u64,
    variant: u32,
    at: DateTime<Utc>,
    zone: &Zone,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
) -> (Patient, Vec<SimReading>, Vec<Value>) {
    // Each variant is another draw of the patient.
    let draw = index * 1000 + u64::from(variant);
    let mut actions = Vec::new();
    let mut readings = Vec::new();
    match kind {
        ScenarioKind::HypertensiveCrisis => {
            let patient = steady_pressure(seed, draw, zone, variant);
            let mut sim = PatientSim::new(&patient, window_start);
            let rise_s = spread(variant, 78.0, 90.0);
            let rise_d = spread(variant, 28.0, 36.0);
            sim.schedule(
                at - Duration::minutes(20),
                Intervention::PressureRise {
                    systolic: rise_s,
                    diastolic: rise_d,
                    minutes: 90,
                },
            );
            sim.schedule(at, Intervention::MeasureBloodPressure { device: 0 });
            sim.schedule(
                at + Duration::minutes(15),
                Intervention::MeasureBloodPressure { device: 0 },
            );
            actions.push(json!({"action": "pressure_rise", "at": at - Duration::minutes(20),
                "systolic_mm_hg": rise_s.round(), "diastolic_mm_hg": rise_d.round(), "minutes": 90}));
            actions.push(json!({"action": "measure_pair", "at": at}));
            actions.push(json!({"action": "measure_pair", "at": at + Duration::minutes(15)}));
            sim.advance_to(window_end, &mut readings);
            (patient, readings, actions)
        }
        ScenarioKind::LateBacklog => {
            let mut patient = steady_type1(seed, draw, zone, variant, window_start, false);
            if let Some(g) = patient.glucose.as_mut() {
                // Treats a low only when it is deep, and checks with the meter when treating.
                g.habits.hypo_threshold_mg_dl = 44.0;
                g.habits.meter_check_when_treating = true;
            }
            let mut sim = PatientSim::new(&patient, window_start);
            // Yesterday afternoon: a correction dose on top of lunch, taken twice.
            let dose_at = at - Duration::hours(21);
            sim.advance_to(dose_at, &mut readings);
            let units = dose_reaching(&sim, 45.0, false, spread(variant, 1.0, 1.25));
            sim.schedule(dose_at, Intervention::Insulin { units });
            actions.push(json!({"action": "insulin", "at": dose_at, "units": units,
                "why": "a correction dose taken twice"}));
            sim.advance_to(window_end, &mut readings);
            (patient, readings, actions)
        }
        _ => {
            let mut patient = steady_type1(seed, draw, zone, variant, window_start, true);
            let mut sim;
            match kind {
                ScenarioKind::NocturnalHypoglycemia => {
                    if let Some(g) = patient.glucose.as_mut() {
                        // Asleep, the patient sleeps through the alarm until glucose is low.
                        g.habits.hypo_threshold_mg_dl = spread(variant, 44.0, 48.0);
                    }
                    sim = PatientSim::new(&patient, window_start);
                    sim.advance_to(at, &mut readings);
                    let threshold = patient
                        .glucose
                        .as_ref()
                        .map_or(46.0, |g| g.habits.hypo_threshold_mg_dl);
                    let units =
                        dose_reaching(&sim, threshold + 1.0, true, spread(variant, 1.0, 1.25));
                    sim.schedule(at, Intervention::Insulin { units });
                    actions.push(json!({"action": "insulin", "at": at, "units": units,
                        "why": "a bedtime correction far larger than needed"}));
                }
                ScenarioKind::FallAfterExercise => {
                    if let Some(g) = patient.glucose.as_mut() {
                        // A patient whose glucose responds strongly to exercise (uptake
                        // varies severalfold between people, Riddell 2017), with little
                        // lasting effect after it.
                        g.params.exercise.alpha = spread(variant, 0.03, 0.04);
                        g.params.exercise.k_z = 0.002;
                        g.params.tau_interstitial_min = 5.0;
                    }
                    sim = PatientSim::new(&patient, window_start);
                    let meal_at = at - Duration::minutes(40);
                    sim.advance_to(meal_at, &mut readings);
                    let ratio = patient
                        .glucose
                        .as_ref()
                        .and_then(|g| g.params.insulin.as_ref())
                        .map_or(10.0, |t| t.carb_ratio_g_per_u);
                    let carbs = spread(variant, 90.0, 110.0);
                    let units = ((carbs / ratio) * 2.0).round() / 2.0;
                    let intensity = spread(variant, 0.9, 1.0);
                    sim.schedule(meal_at, Intervention::Meal { carbs_g: carbs });
                    sim.schedule(meal_at, Intervention::Insulin { units });
                    sim.schedule(
                        at,
                        Intervention::Exercise {
                            intensity,
                            minutes: 35.0,
                        },
                    );
                    // Recovery food after the session, as patients are taught.
                    let after = at + Duration::minutes(30);
                    sim.schedule(after, Intervention::FastCarbs { carbs_g: 15.0 });
                    actions
                        .push(json!({"action": "meal", "at": meal_at, "carbs_g": carbs.round()}));
                    actions.push(json!({"action": "insulin", "at": meal_at, "units": units}));
                    actions.push(json!({"action": "exercise", "at": at, "intensity": intensity, "minutes": 35}));
                    actions.push(json!({"action": "fast_carbs", "at": after, "carbs_g": 15}));
                }
                ScenarioKind::ProlongedHyperglycemia => {
                    if let Some(g) = patient.glucose.as_mut()
                        && let Some(b) = g.habits.bolus.as_mut()
                    {
                        // The patient does not look at the CGM that afternoon.
                        b.glances_per_day = 0.0;
                        b.extra_correction_above_mg_dl = None;
                    }
                    sim = PatientSim::new(&patient, window_start);
                    let carbs = spread(variant, 70.0, 95.0);
                    sim.schedule(at, Intervention::Meal { carbs_g: carbs });
                    actions.push(json!({"action": "meal", "at": at, "carbs_g": carbs.round(),
                        "why": "no bolus"}));
                    let correct_at = at + Duration::minutes(200);
                    sim.advance_to(correct_at, &mut readings);
                    let units = correction(&sim, &patient, 150.0);
                    sim.schedule(correct_at, Intervention::Insulin { units });
                    actions.push(
                        json!({"action": "insulin", "at": correct_at, "units": units,
                        "why": "a correction once noticed"}),
                    );
                }
                // (The pressure and meter scenarios are handled above.)
                ScenarioKind::SilentDevice
                | ScenarioKind::HypertensiveCrisis
                | ScenarioKind::LateBacklog => {
                    sim = PatientSim::new(&patient, window_start);
                    sim.schedule(
                        at,
                        Intervention::SignalLoss {
                            device: 0,
                            minutes: 120,
                        },
                    );
                    actions.push(json!({"action": "signal_loss", "at": at, "minutes": 120}));
                }
            }
            sim.advance_to(window_end, &mut readings);
            (patient, readings, actions)
        }
    }
}

/// The smallest dose (half units) given now that takes glucose (interstitial when
/// `interstitial`, else blood) down to `level` within six hours, times `factor`. Found by
/// trying doses on copies of the simulation, which is cheap and exact.
fn dose_reaching(sim: &PatientSim, level: f64, interstitial: bool, factor: f64) -> f64 {
    let at = sim.now();
    for half_units in 1..=60 {
        let units = f64::from(half_units) / 2.0;
        let mut trial = sim.clone();
        trial.schedule(at, Intervention::Insulin { units });
        let mut lowest = f64::INFINITY;
        let mut discard = Vec::new();
        for _ in 0..360 {
            trial.step(&mut discard);
            discard.clear();
            let g = if interstitial {
                trial.interstitial_glucose()
            } else {
                trial.blood_glucose()
            };
            lowest = lowest.min(g.unwrap_or(f64::INFINITY));
        }
        if lowest <= level {
            return ((units * factor) * 2.0).round() / 2.0;
        }
    }
    30.0
}

/// A correction to `target` by the patient's sensitivity.
fn correction(sim: &PatientSim, patient: &Patient, target: f64) -> f64 {
    let bg = sim.blood_glucose().unwrap_or(250.0);
    let isf = patient
        .glucose
        .as_ref()
        .and_then(|g| g.params.insulin.as_ref())
        .map_or(50.0, |t| t.sensitivity_mg_dl_per_u);
    (((bg - target).max(0.0) / isf) * 2.0).round() / 2.0
}

fn meal(kind: MealKind, hour: f64, carbs_g: f64) -> MealHabit {
    MealHabit {
        kind,
        minute: hour * 60.0,
        time_sd_min: 10.0,
        carbs_g,
        carbs_sigma: 0.08,
        max_fast_share: 0.1,
        max_slow_share: 0.1,
        probability: 1.0,
    }
}

/// A well-controlled type 1 patient: accurate boluses before meals, no exercise, little
/// day-to-day variability, and a quiet glucose device (a CGM whose sensor was inserted three
/// days before the window and loses no signal, or a meter used before every meal).
fn steady_type1(
    seed: u64,
    draw: u64,
    zone: &Zone,
    variant: u32,
    window_start: DateTime<Utc>,
    cgm: bool,
) -> Patient {
    let mut patient = Patient::generate(Persona::Type1Cgm, seed ^ 0x5343_454e_4152_494f, draw);
    patient.zone = zone.clone();
    patient.routine.time_sd_min = 10.0;
    let unit = if variant % 3 == 2 {
        GlucoseUnit::MmolL
    } else {
        GlucoseUnit::MgDl
    };
    if let Some(g) = patient.glucose.as_mut() {
        let p = &mut g.params;
        p.daily_sensitivity_sigma = 0.03;
        p.drift_sensitivity_sigma = 0.05;
        p.dawn_amplitude = 0.05;
        p.g_b = 125.0;
        let target = 115.0;
        let carb_ratio = p.model_carb_ratio(target, 0.9);
        let sensitivity = p.model_sensitivity_per_unit(target);
        if let Some(t) = p.insulin.as_mut() {
            t.carb_ratio_g_per_u = carb_ratio;
            t.sensitivity_mg_dl_per_u = sensitivity;
            t.target_mg_dl = target;
        }
        let h = &mut g.habits;
        h.meals = vec![
            meal(MealKind::Breakfast, 7.5, 35.0),
            meal(MealKind::Lunch, 12.5, 45.0),
            meal(MealKind::Dinner, 19.0, 50.0),
        ];
        h.bolus = Some(BolusHabits {
            carb_count_sigma: 0.03,
            carb_count_bias: 0.0,
            missed_probability: 0.0,
            over_bolus_probability: 0.0,
            over_bolus_factor: (1.0, 1.0),
            skipped_meal_probability: 0.0,
            prebolus_min: (15.0, 20.0),
            snack_bolus_probability: 1.0,
            correction_above_mg_dl: 170.0,
            correction_probability: 1.0,
            extra_correction_above_mg_dl: Some(220.0),
            glances_per_day: 3.0,
        });
        h.exercise = ExerciseHabit {
            probability: 0.0,
            ..h.exercise.clone()
        };
        h.hypo_threshold_mg_dl = 72.0;
        h.rescue_carbs_g = 15.0;
    }
    let device = if cgm {
        let mut spec = CgmSpec::fourteen_day(unit);
        spec.noise_sd_mg_dl = 2.0;
        spec.first_day_noise_factor = 1.0;
        spec.signal_loss_per_day = 0.0;
        spec.gain_sd = 0.02;
        spec.gain_drift_sd_per_day = 0.0;
        spec.offset_sd_mg_dl = 2.0;
        spec.offset_drift_sd_per_day = 0.0;
        // The sensor was inserted three days before the window: no warm-up gap, no change.
        let start = window_start.timestamp().div_euclid(60);
        spec.schedule_phase_min = (start - 3 * 1440).rem_euclid(spec.life_min());
        DeviceSpec::Cgm(spec)
    } else {
        DeviceSpec::Meter(MeterSpec::iso_15197(
            unit,
            0.0,
            MeterSchedule {
                before_breakfast: 1.0,
                before_lunch: 1.0,
                before_dinner: 1.0,
                bedtime: 1.0,
            },
        ))
    };
    patient.devices = vec![device];
    patient
}

/// A patient with high-normal pressure who measures morning and evening without fail.
fn steady_pressure(seed: u64, draw: u64, zone: &Zone, variant: u32) -> Patient {
    let mut patient = Patient::generate(Persona::Normotensive, seed ^ 0x5343_454e_4152_494f, draw);
    patient.zone = zone.clone();
    if let Some(bp) = patient.bp.as_mut() {
        *bp = BpParams {
            // Variants lower the resting pressure: when the cuff's routine readings fall in the
            // surge, the surge's weight in the week's mean depends on where the week sits.
            systolic_awake: 114.0 - spread(variant, 0.0, 8.0),
            diastolic_awake: 75.0 - spread(variant, 0.0, 6.0),
            night_dip: 0.12,
            morning_surge: 3.0,
            first_reading_systolic: 4.0,
            first_reading_diastolic: 1.5,
            reading_sd_systolic: 3.0,
            reading_sd_diastolic: 2.0,
            daily_sd_systolic: 2.5,
            daily_sd_diastolic: 1.5,
            ..bp.clone()
        };
    }
    patient.devices = vec![DeviceSpec::Cuff(CuffSpec {
        adherence: 1.0,
        ..CuffSpec::default()
    })];
    patient
}

/// The scenario ground truth file (`alerts-contract`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroundTruth {
    pub seed: u64,
    pub generated_at: DateTime<Utc>,
    pub scenarios: Vec<ScenarioTruth>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioTruth {
    pub scenario: String,
    pub patient_id: String,
    pub device_id: String,
    pub device_kind: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub description: String,
    pub facts: Value,
    pub expected_alerts: Vec<ExpectedAlert>,
    pub live: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExpectedAlert {
    pub rule: String,
    /// `urgent`, `warning` or `info` (`glucose_very_high` has two).
    pub severity: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub live: bool,
}

impl Scenario {
    /// The ground truth of what was played. `deliveries` are the device's readings as sent;
    /// a reading sent more than `late_after` after it was measured is late and raises no
    /// live alarm.
    pub fn truth(
        &self,
        patient_id: &str,
        device_id: &str,
        deliveries: &[Delivery],
        late_after: Duration,
        run_ended: DateTime<Utc>,
    ) -> ScenarioTruth {
        let sent: HashMap<i64, DateTime<Utc>> = deliveries
            .iter()
            .map(|d| (d.measured_at.timestamp_micros(), d.sent_at))
            .collect();
        let live_reading = |at: DateTime<Utc>| {
            sent.get(&at.timestamp_micros())
                .is_some_and(|s| *s - at <= late_after)
        };
        let times: Vec<DateTime<Utc>> = self
            .readings
            .iter()
            .map(SimReading::measured_at_utc)
            .collect();
        let expected_alerts: Vec<ExpectedAlert> = self
            .assessment
            .firings
            .iter()
            .map(|f| {
                let live = if f.rule == rules::NO_DATA {
                    // Live if the silence began while the device was sending live and the run
                    // was still going when it became due.
                    let before = times.iter().rev().find(|t| **t < f.not_before);
                    before.is_some_and(|t| live_reading(*t)) && run_ended >= f.not_before
                } else {
                    live_reading(f.first_trigger)
                };
                ExpectedAlert {
                    rule: f.rule.to_owned(),
                    severity: f.severity.to_owned(),
                    not_before: f.not_before,
                    not_after: f.not_after,
                    live,
                }
            })
            .collect();
        let (started_at, ended_at, description, mut facts) = self.event();
        if let Value::Object(map) = &mut facts {
            map.insert("at".into(), json!(self.at));
            map.insert("window_start".into(), json!(self.window_start));
            map.insert("window_end".into(), json!(self.window_end));
            map.insert("readings_emitted".into(), json!(self.readings.len()));
            map.insert("time_zone".into(), json!(self.patient.zone.name));
            map.insert("variant".into(), json!(self.variant));
            map.insert("actions".into(), Value::Array(self.actions.clone()));
            if let Some(sync) = self.sync_at {
                map.insert("synced_at".into(), json!(sync));
            }
        }
        ScenarioTruth {
            scenario: self.kind.as_str().to_owned(),
            patient_id: patient_id.to_owned(),
            device_id: device_id.to_owned(),
            device_kind: self.kind.device_kind().as_str().to_owned(),
            started_at,
            ended_at,
            description,
            facts,
            live: !expected_alerts.is_empty() && expected_alerts.iter().all(|a| a.live),
            expected_alerts,
        }
    }

    fn local(&self, t: DateTime<Utc>) -> String {
        self.patient.zone.local(t).format("%H:%M").to_string()
    }

    /// When the event happened, in words, and its facts, from the readings.
    fn event(&self) -> (DateTime<Utc>, DateTime<Utc>, String, Value) {
        let glucose: Vec<(DateTime<Utc>, f64)> = self
            .readings
            .iter()
            .filter_map(|r| Some((r.measured_at_utc(), r.glucose_mg_dl()?)))
            .collect();
        let span = |pred: &dyn Fn(f64) -> bool| {
            let hits: Vec<&(DateTime<Utc>, f64)> =
                glucose.iter().filter(|(_, v)| pred(*v)).collect();
            (hits.first().map(|h| h.0), hits.last().map(|h| h.0))
        };
        let nadir = glucose
            .iter()
            .copied()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((self.at, 0.0));
        let peak = glucose
            .iter()
            .copied()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((self.at, 0.0));
        match self.kind {
            ScenarioKind::NocturnalHypoglycemia | ScenarioKind::LateBacklog => {
                let (from54, to54) = span(&|v| v < 54.0);
                let (from70, to70) = span(&|v| v < 70.0);
                let from = from70.unwrap_or(self.at);
                let to = to70.unwrap_or(self.at);
                let description = format!(
                    "glucose below 54 mg/dL from {} to {} local time, nadir {:.0} mg/dL{}",
                    self.local(from54.unwrap_or(from)),
                    self.local(to54.unwrap_or(to)),
                    nadir.1,
                    if self.kind == ScenarioKind::LateBacklog {
                        format!(
                            " (meter readings of the day before, synced at {})",
                            self.local(self.at)
                        )
                    } else {
                        String::new()
                    }
                );
                let facts = json!({"nadir_mg_dl": nadir.1, "nadir_at": nadir.0,
                    "below_54_from": from54, "below_54_until": to54,
                    "below_70_from": from70, "below_70_until": to70});
                (from, to, description, facts)
            }
            ScenarioKind::FallAfterExercise => {
                let mut best = (0.0f64, self.at, self.at, 0.0, 0.0);
                for w in glucose.windows(2) {
                    let minutes = (w[1].0 - w[0].0).num_seconds() as f64 / 60.0;
                    if minutes <= 0.0 || minutes > 10.0 {
                        continue;
                    }
                    let rate = (w[0].1 - w[1].1) / minutes;
                    if rate > best.0 {
                        best = (rate, w[0].0, w[1].0, w[0].1, w[1].1);
                    }
                }
                let fast: Vec<DateTime<Utc>> = glucose
                    .windows(2)
                    .filter(|w| {
                        let m = (w[1].0 - w[0].0).num_seconds() as f64 / 60.0;
                        m > 0.0 && m <= 10.0 && (w[0].1 - w[1].1) / m > 3.0
                    })
                    .flat_map(|w| [w[0].0, w[1].0])
                    .collect();
                let from = fast.first().copied().unwrap_or(self.at);
                let to = fast.last().copied().unwrap_or(self.at);
                let after: Vec<f64> = glucose
                    .iter()
                    .filter(|(t, _)| *t >= self.at && *t <= self.at + Duration::hours(3))
                    .map(|(_, v)| *v)
                    .collect();
                let low = after.iter().copied().fold(f64::INFINITY, f64::min);
                let description = format!(
                    "glucose fell faster than 3 mg/dL/min from {} to {} local time (fastest {:.1} mg/dL/min), lowest {:.0} mg/dL",
                    self.local(from),
                    self.local(to),
                    best.0,
                    low
                );
                let facts = json!({"max_fall_mg_dl_per_min": best.0, "lowest_mg_dl": low,
                    "exercise_start": self.at});
                (from, to, description, facts)
            }
            ScenarioKind::ProlongedHyperglycemia => {
                let (from, to) = span(&|v| v > 250.0);
                let from = from.unwrap_or(self.at);
                let to = to.unwrap_or(self.at);
                let description = format!(
                    "glucose above 250 mg/dL from {} to {} local time ({} min), peak {:.0} mg/dL",
                    self.local(from),
                    self.local(to),
                    (to - from).num_minutes(),
                    peak.1
                );
                let facts = json!({"peak_mg_dl": peak.1, "peak_at": peak.0,
                    "above_250_from": from, "above_250_until": to,
                    "minutes_above_250": (to - from).num_minutes()});
                (from, to, description, facts)
            }
            ScenarioKind::HypertensiveCrisis => {
                let crisis: Vec<(DateTime<Utc>, u16, u16)> = self
                    .readings
                    .iter()
                    .filter_map(|r| match r {
                        SimReading::BloodPressure(b) if b.systolic > 180 || b.diastolic > 120 => {
                            Some((r.measured_at_utc(), b.systolic, b.diastolic))
                        }
                        _ => None,
                    })
                    .collect();
                let from = crisis.first().map_or(self.at, |c| c.0);
                let to = crisis.last().map_or(self.at, |c| c.0);
                let max_s = crisis.iter().map(|c| c.1).max().unwrap_or(0);
                let max_d = crisis.iter().map(|c| c.2).max().unwrap_or(0);
                let description = format!(
                    "{} home readings above 180/120 mm Hg from {} to {} local time, highest {}/{}",
                    crisis.len(),
                    self.local(from),
                    self.local(to),
                    max_s,
                    max_d
                );
                let facts = json!({"max_systolic": max_s, "max_diastolic": max_d,
                    "crisis_readings": crisis.len()});
                (from, to, description, facts)
            }
            ScenarioKind::SilentDevice => {
                let times: Vec<DateTime<Utc>> = self
                    .readings
                    .iter()
                    .map(SimReading::measured_at_utc)
                    .collect();
                let (from, to) = times
                    .windows(2)
                    .map(|w| (w[0], w[1]))
                    .max_by_key(|(a, b)| *b - *a)
                    .unwrap_or((self.at, self.at));
                let description = format!(
                    "the CGM was silent from {} to {} local time ({} min)",
                    self.local(from),
                    self.local(to),
                    (to - from).num_minutes()
                );
                let facts = json!({"last_reading_before": from, "first_reading_after": to,
                    "silent_minutes": (to - from).num_minutes()});
                (from, to, description, facts)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn names_parse() {
        for kind in ScenarioKind::ALL {
            assert_eq!(kind.as_str().parse::<ScenarioKind>(), Ok(kind));
        }
        assert!("meteor_strike".parse::<ScenarioKind>().is_err());
    }

    #[test]
    fn default_times_are_local_and_respect_the_window() {
        let zone = Zone::new("Asia/Kolkata", 330).expect("zone");
        let now = Utc
            .with_ymd_and_hms(2026, 3, 10, 12, 0, 0)
            .single()
            .expect("date");
        for kind in ScenarioKind::ALL {
            let (_, tail) = kind.lead_and_tail();
            let past = kind.default_at(&zone, now, true, Duration::zero());
            assert!(past + tail <= now, "{kind}: {past}");
            let local = zone.local(past);
            assert_eq!(
                i64::from(local.hour() * 60 + local.minute()),
                kind.default_local_minute()
            );
            let future = kind.default_at(&zone, now, false, Duration::minutes(5));
            assert!(future >= now + Duration::minutes(5));
        }
    }

    #[test]
    fn every_scenario_builds_an_unambiguous_variant() {
        let now = Utc
            .with_ymd_and_hms(2026, 3, 10, 12, 0, 0)
            .single()
            .expect("date");
        for (i, kind) in ScenarioKind::ALL.into_iter().enumerate() {
            for zone in [
                Zone::utc(),
                Zone::new("America/Phoenix", -420).expect("zone"),
            ] {
                let at = kind.default_at(&zone, now, true, Duration::zero());
                let s = build(kind, 42, i as u64, at, &zone)
                    .unwrap_or_else(|e| panic!("{kind} in {}: {e}", zone.name));
                let (required, _) = kind.rules();
                for rule in required {
                    assert!(s.assessment.rules().contains(rule), "{kind}: {rule}");
                }
                assert!(!s.readings.is_empty());
            }
        }
    }

    #[test]
    fn a_shifted_scenario_fires_the_same_rules_exactly_that_much_later() {
        let zone = Zone::new("Asia/Dubai", 240).expect("zone");
        let first = |s: &Scenario, rule: &str| {
            s.assessment
                .firings
                .iter()
                .filter(|f| f.rule == rule)
                .map(|f| f.first_trigger)
                .min()
                .expect("fires")
        };
        // Every hour of the day: how long the event takes depends on the patient's day, so
        // only moving the built readings puts the alarm at a chosen instant.
        for hour in 0..24 {
            let at = Utc
                .with_ymd_and_hms(2026, 12, 4, hour, 9, 0)
                .single()
                .expect("date");
            let built = build(ScenarioKind::NocturnalHypoglycemia, 7, 1, at, &zone)
                .unwrap_or_else(|e| panic!("{hour}h: {e}"));
            let by = at - first(&built, rules::GLUCOSE_VERY_LOW);
            let shifted = built.clone().shifted(by);
            assert_eq!(first(&shifted, rules::GLUCOSE_VERY_LOW), at, "{hour}h");
            assert_eq!(shifted.assessment.rules(), built.assessment.rules());
            assert!(shifted.assessment.ambiguities.is_empty());
            assert_eq!(shifted.readings.len(), built.readings.len());
            assert_eq!(shifted.window_start, built.window_start + by);
        }
    }

    #[test]
    fn a_crisis_builds_at_every_time_of_day() {
        // When the cuff's routine readings fall inside the surge, the week's mean rises with
        // them: the variants' lower resting pressures keep it clearly below stage 2 wherever
        // the surge lands in the patient's day.
        let start = Utc
            .with_ymd_and_hms(2026, 12, 5, 0, 0, 0)
            .single()
            .expect("date");
        let mut failures = Vec::new();
        for (seed, zone) in [
            (2026, Zone::new("Africa/Lagos", 60).expect("zone")),
            (42, Zone::new("Africa/Lagos", 60).expect("zone")),
            (7, Zone::new("America/Phoenix", -420).expect("zone")),
        ] {
            for step in 0..(24 * 6) {
                let at = start + Duration::minutes(10 * step);
                if let Err(e) = build(ScenarioKind::HypertensiveCrisis, seed, 0, at, &zone) {
                    failures.push(format!("seed {seed} in {}: {e}", zone.name));
                }
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }
}

//! The simulation engine: advances one patient minute by minute and collects what their
//! devices report.

use crate::bp::Setting;
use crate::devices::{DeviceSpec, Sensor};
use crate::glucose::{Absorption, Diabetes, Kernel, State, StepInputs, ix};
use crate::patient::Patient;
use crate::plan::{DRIFT_STEP_MIN, DayPlan, Event, SignalLoss};
use crate::reading::{
    BloodPressureSample, GlucoseSample, GlucoseValue, SimReading, Treatment, TreatmentSample,
    displayed,
};
use crate::rng::{self, SimRng, stream};
use chronicle_domain::{DeviceKind, GlucoseSource};
use chrono::{DateTime, Utc};
use rand::Rng;

/// Something a scenario makes happen at a given time, on top of the patient's routine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Intervention {
    /// A meal of `carbs_g` grams of carbohydrate, not bolused.
    Meal { carbs_g: f64 },
    /// Fast carbohydrate (glucose tablets, juice).
    FastCarbs { carbs_g: f64 },
    /// A subcutaneous insulin dose, units (type 1 or insulin-treated type 2).
    Insulin { units: f64 },
    /// Exercise of `intensity` (0–1) for `minutes`.
    Exercise { intensity: f64, minutes: f64 },
    /// A CGM (device index) loses its signal for `minutes`.
    SignalLoss { device: usize, minutes: u32 },
    /// An extra check with a meter (device index), outside the patient's routine.
    MeterCheck { device: usize },
    /// An extra pair of readings with a cuff (device index), a minute apart.
    MeasureBloodPressure { device: usize },
    /// The second reading of such a pair (scheduled by `MeasureBloodPressure`).
    SecondOfPair { device: usize },
    /// The underlying pressure rises by these amounts (mm Hg) for `minutes` (a hypertensive
    /// crisis).
    PressureRise {
        systolic: f64,
        diastolic: f64,
        minutes: u32,
    },
}

/// Per-device running state.
#[derive(Debug, Clone)]
enum DeviceState {
    Cgm {
        sensor: Option<Sensor>,
        /// Minute the next sensor is inserted.
        next_change: i64,
        /// Minute of the next reading of the current sensor.
        next_sample: i64,
        rng: SimRng,
        seq: u64,
    },
    Meter {
        rng: SimRng,
        seq: u64,
    },
    Cuff {
        rng: SimRng,
        seq: u64,
    },
}

/// Simulates one patient from a start time onwards. Deterministic: the same patient and
/// start give the same readings however the time is advanced (one call or many).
#[derive(Debug, Clone)]
pub struct PatientSim {
    patient: Patient,
    kernel: Option<Kernel>,
    state: State,
    basal_mu_per_min: f64,
    /// Current minute (since the Unix epoch, UTC): the state is at the start of it.
    minute: i64,
    offset_min: i64,
    plan: DayPlan,
    plan_ready: bool,
    next_event: usize,
    exercise_until: i64,
    exercise_intensity: f64,
    metformin_level: f64,
    metformin_decay: f64,
    /// Within-day log sensitivity drift (Ornstein–Uhlenbeck), updated every
    /// [`DRIFT_STEP_MIN`] minutes.
    drift: f64,
    last_rescue: i64,
    last_bolus: i64,
    has_cgm: bool,
    /// The glucose device an insulin-treated patient logs treatments through (their CGM's
    /// app, else their meter), if any.
    treatment_log: Option<usize>,
    devices: Vec<DeviceState>,
    injected: Vec<(i64, Intervention)>,
    extra_loss: Vec<SignalLoss>,
    /// An active pressure rise: (until minute, systolic, diastolic).
    pressure_rise: Option<(i64, f64, f64)>,
    emitting: bool,
}

/// Minutes of physiology simulated before the start so that the window opens in a realistic
/// state rather than at the fasting equilibrium.
pub const DEFAULT_BURN_IN_MIN: i64 = 1440;

fn minute_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(60)
}

fn instant(minute: i64, second: u32) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(minute.saturating_mul(60) + i64::from(second), 0)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl PatientSim {
    /// A simulator for `patient` whose first readings are at `start` (rounded down to the
    /// minute), after a day of silent burn-in.
    pub fn new(patient: &Patient, start: DateTime<Utc>) -> PatientSim {
        Self::with_burn_in(patient, start, DEFAULT_BURN_IN_MIN)
    }

    /// As [`PatientSim::new`] with `burn_in_min` minutes of silent simulation before `start`.
    pub fn with_burn_in(patient: &Patient, start: DateTime<Utc>, burn_in_min: i64) -> PatientSim {
        let start_minute = minute_of(start);
        let (kernel, state, basal) = match &patient.glucose {
            Some(g) => {
                let kernel = Kernel::new(&g.params);
                let basal = g
                    .params
                    .insulin
                    .as_ref()
                    .map_or(0.0, |t| t.basal_u_per_h * 1000.0 / 60.0);
                let state = kernel.steady_state(&g.params, basal);
                (Some(kernel), state, basal)
            }
            None => (None, [0.0; ix::N], 0.0),
        };
        let metformin_decay = patient
            .glucose
            .as_ref()
            .and_then(|g| g.params.metformin.as_ref())
            .map_or(1.0, |m| (-std::f64::consts::LN_2 / m.half_life_min).exp());
        let devices = patient
            .devices
            .iter()
            .map(|spec| {
                let rng = rng::rng_at(patient.seed, &[0]);
                match spec {
                    DeviceSpec::Cgm(_) => DeviceState::Cgm {
                        sensor: None,
                        next_change: i64::MIN,
                        next_sample: i64::MAX,
                        rng,
                        seq: 0,
                    },
                    DeviceSpec::Meter(_) => DeviceState::Meter { rng, seq: 0 },
                    DeviceSpec::Cuff(_) => DeviceState::Cuff { rng, seq: 0 },
                }
            })
            .collect();
        let has_cgm = patient
            .devices
            .iter()
            .any(|d| matches!(d, DeviceSpec::Cgm(c) if !c.blinded));
        let insulin_treated = patient
            .glucose
            .as_ref()
            .is_some_and(|g| g.params.insulin.is_some());
        let treatment_log = insulin_treated
            .then(|| {
                let index =
                    |wanted: fn(&DeviceSpec) -> bool| patient.devices.iter().position(wanted);
                index(|d| matches!(d, DeviceSpec::Cgm(c) if !c.blinded))
                    .or_else(|| index(|d| matches!(d, DeviceSpec::Meter(_))))
            })
            .flatten();
        let mut sim = PatientSim {
            kernel,
            state,
            basal_mu_per_min: basal,
            minute: start_minute - burn_in_min.max(0),
            offset_min: i64::from(patient.zone.offset_minutes()),
            plan: DayPlan::default(),
            plan_ready: false,
            next_event: 0,
            exercise_until: i64::MIN,
            exercise_intensity: 0.0,
            metformin_level: 0.0,
            metformin_decay,
            drift: 0.0,
            last_rescue: i64::MIN / 2,
            last_bolus: i64::MIN / 2,
            has_cgm,
            treatment_log,
            devices,
            injected: Vec::new(),
            extra_loss: Vec::new(),
            pressure_rise: None,
            emitting: false,
            patient: patient.clone(),
        };
        let mut discard = Vec::new();
        while sim.minute < start_minute {
            sim.step(&mut discard);
        }
        sim.emitting = true;
        sim
    }

    /// The patient simulated.
    pub fn patient(&self) -> &Patient {
        &self.patient
    }

    /// The simulated time: everything before it has been simulated.
    pub fn now(&self) -> DateTime<Utc> {
        instant(self.minute, 0)
    }

    /// Blood (plasma) glucose now, mg/dL, for a patient with a glucose model.
    pub fn blood_glucose(&self) -> Option<f64> {
        self.kernel.as_ref().map(|_| self.state[ix::G])
    }

    /// Interstitial glucose now (what a perfect CGM would read), mg/dL.
    pub fn interstitial_glucose(&self) -> Option<f64> {
        self.kernel.as_ref().map(|_| self.state[ix::IG])
    }

    /// Plans `what` at `at` (rounded down to the minute); ignored if `at` is already past.
    pub fn schedule(&mut self, at: DateTime<Utc>, what: Intervention) {
        let m = minute_of(at);
        if m < self.minute {
            return;
        }
        let pos = self.injected.partition_point(|(t, _)| *t <= m);
        self.injected.insert(pos, (m, what));
    }

    /// Simulates until `until` (exclusive, rounded down to the minute), appending readings
    /// stamped before it to `out` in time order per device.
    pub fn advance_to(&mut self, until: DateTime<Utc>, out: &mut Vec<SimReading>) {
        let end = minute_of(until);
        while self.minute < end {
            self.step(out);
        }
    }

    /// Simulates one minute.
    pub fn step(&mut self, out: &mut Vec<SimReading>) {
        let m = self.minute;
        let local = m + self.offset_min;
        let day = local.div_euclid(1440);
        if !self.plan_ready || day != self.plan.day {
            self.start_day(day);
        }
        while let Some(&(t, event)) = self.plan.events.get(self.next_event) {
            if t > m {
                break;
            }
            self.next_event += 1;
            self.apply(event, out);
        }
        while let Some(&(t, what)) = self.injected.first() {
            if t > m {
                break;
            }
            self.injected.remove(0);
            self.intervene(what, out);
        }
        self.behave(out);
        self.sample_cgms(out);
        if self.kernel.is_some() {
            let inputs = self.inputs(local);
            if let Some(kernel) = &self.kernel {
                kernel.rk4(&mut self.state, &inputs, 1.0);
            }
        }
        self.minute += 1;
    }

    fn start_day(&mut self, day: i64) {
        let day_start = day * 1440 - self.offset_min;
        // A signal loss that began yesterday goes on past midnight.
        let minute = self.minute;
        self.extra_loss.retain(|l| l.end > minute);
        self.extra_loss
            .extend(self.plan.signal_loss.iter().filter(|l| l.end > minute));
        self.plan.generate(&self.patient, day, day_start);
        self.plan_ready = true;
        self.next_event = self.plan.events.partition_point(|(t, _)| *t < self.minute);
        let seed = self.patient.seed;
        for (i, device) in self.devices.iter_mut().enumerate() {
            let path = |s| [s, i as u64, day as u64];
            match device {
                DeviceState::Cgm { rng, .. } => *rng = rng::rng_at(seed, &path(stream::CGM_NOISE)),
                DeviceState::Meter { rng, .. } => *rng = rng::rng_at(seed, &path(stream::METER)),
                DeviceState::Cuff { rng, .. } => *rng = rng::rng_at(seed, &path(stream::CUFF)),
            }
        }
    }

    fn inputs(&mut self, local: i64) -> StepInputs {
        let mut production = 1.0;
        if let Some(g) = &self.patient.glucose {
            let minute_of_day = local.rem_euclid(1440);
            let sigma = g.params.drift_sensitivity_sigma;
            if sigma > 0.0 && minute_of_day % DRIFT_STEP_MIN == 0 {
                // Exact discretization of the OU process over one update interval.
                let a = (-(DRIFT_STEP_MIN as f64) / g.params.drift_tau_min).exp();
                let z = self.plan.drift_innovations[(minute_of_day / DRIFT_STEP_MIN) as usize];
                self.drift = a * self.drift + sigma * (1.0 - a * a).sqrt() * z;
            }
            let minute_of_day = minute_of_day as f64 + 0.5;
            production += g.params.dawn(minute_of_day);
            if let Some(m) = &g.params.metformin {
                self.metformin_level *= self.metformin_decay;
                let l = self.metformin_level;
                production *= 1.0 - m.max_effect * l / (l + m.ec50);
            }
        }
        StepInputs {
            basal_mu_per_min: self.basal_mu_per_min,
            production,
            sensitivity: self.plan.sensitivity * self.drift.exp(),
            exercise: if self.minute < self.exercise_until {
                self.exercise_intensity
            } else {
                0.0
            },
        }
    }

    /// Insulin on board, units: subcutaneous insulin above the basal depot.
    fn insulin_on_board(&self) -> f64 {
        let Some(g) = &self.patient.glucose else {
            return 0.0;
        };
        let depot = self.basal_mu_per_min * g.params.tau_insulin_min * 2.0;
        ((self.state[ix::S1] + self.state[ix::S2] - depot) / 1000.0).max(0.0)
    }

    /// The glucose the patient acts on: their CGM's (interstitial) value, or blood glucose.
    fn perceived_glucose(&self) -> f64 {
        if self.has_cgm {
            self.state[ix::IG]
        } else {
            self.state[ix::G]
        }
    }

    fn add_carbs(&mut self, carbs_g: f64, absorption: Absorption) {
        if let Some(g) = &self.patient.glucose {
            let mg = carbs_g.max(0.0) * 1000.0 * g.params.bioavailability;
            self.state[absorption.first_compartment()] += mg;
        }
    }

    fn add_insulin(&mut self, units: f64) {
        if self.kernel.is_some() && units > 0.0 {
            self.state[ix::S1] += units * 1000.0;
            self.last_bolus = self.minute;
        }
    }

    fn intervene(&mut self, what: Intervention, out: &mut Vec<SimReading>) {
        match what {
            // A scenario's own interventions are logged a quarter past the minute, apart from
            // the routine's (on the minute) and the corrections' (at the half).
            Intervention::Meal { carbs_g } | Intervention::FastCarbs { carbs_g } => {
                let absorption = match what {
                    Intervention::FastCarbs { .. } => Absorption::Fast,
                    _ => Absorption::Mixed,
                };
                self.add_carbs(carbs_g, absorption);
                let grams = carbs_g.round();
                if grams >= 1.0 {
                    let carbs = Treatment::Carbohydrates { grams, hypo: false };
                    self.log_treatment(carbs, 15, out);
                }
            }
            Intervention::Insulin { units } => {
                self.add_insulin(units);
                if units > 0.0 {
                    let units = (units * 10.0).round() / 10.0;
                    self.log_treatment(Treatment::Bolus { units }, 15, out);
                }
            }
            Intervention::Exercise { intensity, minutes } => {
                self.exercise_intensity = intensity.clamp(0.0, 1.0);
                let minutes = minutes.max(0.0).round() as i64;
                self.exercise_until = self.minute + minutes;
                if minutes >= 1 {
                    let logged = Treatment::Exercise {
                        minutes: u32::try_from(minutes.min(1440)).unwrap_or(1440),
                    };
                    self.log_treatment(logged, 0, out);
                }
            }
            Intervention::SignalLoss { device, minutes } => self.extra_loss.push(SignalLoss {
                device,
                start: self.minute,
                end: self.minute + i64::from(minutes),
            }),
            Intervention::MeterCheck { device } => self.meter_reading(device, out),
            Intervention::MeasureBloodPressure { device } => {
                // The pair's second reading follows a minute later, as in the routine.
                self.cuff_reading(device, true, false, out);
                let next = self.minute + 1;
                let pos = self.injected.partition_point(|(t, _)| *t <= next);
                self.injected
                    .insert(pos, (next, Intervention::SecondOfPair { device }));
            }
            Intervention::SecondOfPair { device } => self.cuff_reading(device, false, false, out),
            Intervention::PressureRise {
                systolic,
                diastolic,
                minutes,
            } => {
                self.pressure_rise = Some((self.minute + i64::from(minutes), systolic, diastolic));
            }
        }
    }

    fn apply(&mut self, event: Event, out: &mut Vec<SimReading>) {
        match event {
            Event::Meal {
                carbs_g,
                fast_share,
                slow_share,
            } => {
                self.add_carbs(carbs_g * fast_share, Absorption::Fast);
                self.add_carbs(carbs_g * slow_share, Absorption::Slow);
                let mixed = (1.0 - fast_share - slow_share).max(0.0);
                self.add_carbs(carbs_g * mixed, Absorption::Mixed);
            }
            Event::MealBolus {
                estimated_carbs_g,
                factor,
                correct,
            } => {
                let Some(therapy) = self
                    .patient
                    .glucose
                    .as_ref()
                    .and_then(|g| g.params.insulin.as_ref())
                else {
                    return;
                };
                let habits = self
                    .patient
                    .glucose
                    .as_ref()
                    .and_then(|g| g.habits.bolus.as_ref());
                let threshold = habits.map_or(150.0, |b| b.correction_above_mg_dl);
                let seen = self.perceived_glucose();
                let correction = if correct && seen > threshold {
                    ((seen - therapy.target_mg_dl) / therapy.sensitivity_mg_dl_per_u
                        - self.insulin_on_board())
                    .max(0.0)
                } else {
                    0.0
                };
                let units = (estimated_carbs_g / therapy.carb_ratio_g_per_u + correction) * factor;
                // Pens and pumps dose in half units.
                let dose = (units * 2.0).round() / 2.0;
                self.add_insulin(dose);
                // What the patient enters in the bolus calculator is what the app logs.
                let grams = estimated_carbs_g.round();
                if grams >= 1.0 {
                    let carbs = Treatment::Carbohydrates { grams, hypo: false };
                    self.log_treatment(carbs, 0, out);
                }
                if dose > 0.0 {
                    self.log_treatment(Treatment::Bolus { units: dose }, 0, out);
                }
            }
            Event::Glance => self.correct_high(out),
            Event::Metformin => self.metformin_level += 1.0,
            Event::Exercise {
                intensity,
                duration_min,
            } => self.intervene(
                Intervention::Exercise {
                    intensity,
                    minutes: duration_min,
                },
                out,
            ),
            Event::MeterCheck { device } => self.meter_reading(device, out),
            Event::CuffReading {
                device,
                first,
                morning,
            } => self.cuff_reading(device, first, morning, out),
        }
    }

    /// State-dependent behaviour: treating lows (the "rule of 15": 15–20 g of fast
    /// carbohydrate, repeated after 20 minutes if still low).
    fn behave(&mut self, out: &mut Vec<SimReading>) {
        let Some(g) = &self.patient.glucose else {
            return;
        };
        let m = self.minute;
        let seen = self.perceived_glucose();
        if seen < g.habits.hypo_threshold_mg_dl && m - self.last_rescue >= 20 {
            let carbs = g.habits.rescue_carbs_g;
            let check = g.habits.meter_check_when_treating;
            self.last_rescue = m;
            self.add_carbs(carbs, Absorption::Fast);
            let rescue = Treatment::Carbohydrates {
                grams: carbs.round().max(1.0),
                hypo: true,
            };
            self.log_treatment(rescue, 30, out);
            let meter = self
                .patient
                .devices
                .iter()
                .position(|d| matches!(d, DeviceSpec::Meter(_)));
            if let (true, Some(device)) = (check, meter) {
                self.meter_reading(device, out);
                let recheck = m + 15;
                let pos = self.injected.partition_point(|(t, _)| *t <= recheck);
                self.injected
                    .insert(pos, (recheck, Intervention::MeterCheck { device }));
            }
        }
    }

    /// A CGM user who looks at a high reading corrects it, unless a bolus is still acting.
    fn correct_high(&mut self, out: &mut Vec<SimReading>) {
        let Some(g) = &self.patient.glucose else {
            return;
        };
        let (Some(therapy), Some(bolus)) = (g.params.insulin.as_ref(), g.habits.bolus.as_ref())
        else {
            return;
        };
        let Some(above) = bolus.extra_correction_above_mg_dl else {
            return;
        };
        let seen = self.perceived_glucose();
        if self.has_cgm && seen > above && self.minute - self.last_bolus >= 120 {
            let units = (seen - therapy.target_mg_dl) / therapy.sensitivity_mg_dl_per_u
                - self.insulin_on_board();
            let units = (units * 2.0).round() / 2.0;
            if units >= 0.5 {
                self.add_insulin(units);
                self.log_treatment(Treatment::Bolus { units }, 30, out);
            }
        }
    }

    /// Logs `treatment` now, at `second` past the minute, through the patient's logging
    /// device (distinct seconds keep two treatments of one kind in one minute apart: the
    /// server tells treatments apart by device, kind and time).
    fn log_treatment(&mut self, treatment: Treatment, second: u32, out: &mut Vec<SimReading>) {
        let Some(device) = self.treatment_log else {
            return;
        };
        if !self.emitting {
            return;
        }
        let (device_kind, seq) = match self.devices.get_mut(device) {
            Some(DeviceState::Cgm { seq, .. }) => (DeviceKind::Cgm, seq),
            Some(DeviceState::Meter { seq, .. }) => (DeviceKind::Meter, seq),
            _ => return,
        };
        *seq += 1;
        out.push(SimReading::Treatment(TreatmentSample {
            device,
            device_kind,
            measured_at: self.patient.zone.local(instant(self.minute, second)),
            treatment,
            seq: *seq,
        }));
    }

    fn sample_cgms(&mut self, out: &mut Vec<SimReading>) {
        let m = self.minute;
        let ig = self.state[ix::IG];
        let bg = self.state[ix::G];
        let has_glucose = self.kernel.is_some();
        let mut inserted_now = Vec::new();
        for (i, device) in self.devices.iter_mut().enumerate() {
            let (
                DeviceState::Cgm {
                    sensor,
                    next_change,
                    next_sample,
                    rng,
                    seq,
                },
                DeviceSpec::Cgm(spec),
            ) = (device, &self.patient.devices[i])
            else {
                continue;
            };
            if !has_glucose {
                continue;
            }
            if m >= *next_change || sensor.is_none() {
                let (number, inserted) = spec.sensor_at(m);
                let mut sensor_rng = rng::rng_at(
                    self.patient.seed,
                    &[stream::SENSOR, i as u64, number as u64],
                );
                *sensor = Some(Sensor::new(spec, inserted, &mut sensor_rng));
                if inserted == m {
                    inserted_now.push(i);
                }
                *next_change = inserted + spec.life_min();
                let first = inserted + i64::from(spec.warmup_min);
                let interval = i64::from(spec.interval_min.max(1));
                *next_sample = if m <= first {
                    first
                } else {
                    first + (m - first + interval - 1) / interval * interval
                };
            }
            if m != *next_sample {
                continue;
            }
            *next_sample += i64::from(spec.interval_min.max(1));
            let Some(sensor) = sensor.as_mut() else {
                continue;
            };
            let measured = sensor.measure(spec, ig, m, rng);
            let lost = self
                .plan
                .signal_loss
                .iter()
                .chain(self.extra_loss.iter())
                .any(|l| l.device == i && l.start <= m && m < l.end);
            if lost || !self.emitting {
                continue;
            }
            *seq += 1;
            let value = if measured < chronicle_domain::GlucoseFlag::LO_MG_DL {
                GlucoseValue::Lo
            } else if measured > chronicle_domain::GlucoseFlag::HI_MG_DL {
                GlucoseValue::Hi
            } else {
                GlucoseValue::Number(displayed(measured, spec.unit))
            };
            out.push(SimReading::Glucose(GlucoseSample {
                device: i,
                source: GlucoseSource::Cgm,
                measured_at: self.patient.zone.local(instant(m, sensor.second)),
                value,
                unit: spec.unit,
                seq: *seq,
                true_mg_dl: bg,
            }));
        }
        for device in inserted_now {
            if self.treatment_log == Some(device) {
                self.log_treatment(Treatment::SensorChange, 0, out);
            }
        }
    }

    fn meter_reading(&mut self, device: usize, out: &mut Vec<SimReading>) {
        let (Some(DeviceState::Meter { rng, seq }), Some(DeviceSpec::Meter(spec))) = (
            self.devices.get_mut(device),
            self.patient.devices.get(device),
        ) else {
            return;
        };
        if self.kernel.is_none() {
            return;
        }
        let bg = self.state[ix::G];
        let shown = spec.measure(bg, rng);
        let second = rng.random_range(0..60);
        if !self.emitting {
            return;
        }
        *seq += 1;
        let value = if shown < spec.lo_mg_dl {
            GlucoseValue::Lo
        } else if shown > spec.hi_mg_dl {
            GlucoseValue::Hi
        } else {
            GlucoseValue::Number(displayed(shown, spec.unit))
        };
        let sample = GlucoseSample {
            device,
            source: GlucoseSource::Meter,
            measured_at: self.patient.zone.local(instant(self.minute, second)),
            value,
            unit: spec.unit,
            seq: *seq,
            true_mg_dl: bg,
        };
        out.push(SimReading::Glucose(sample));
    }

    fn cuff_reading(
        &mut self,
        device: usize,
        first: bool,
        morning: bool,
        out: &mut Vec<SimReading>,
    ) {
        let (Some(DeviceState::Cuff { rng, seq }), Some(bp), Some(day)) = (
            self.devices.get_mut(device),
            self.patient.bp.as_ref(),
            self.plan.bp_day.as_ref(),
        ) else {
            return;
        };
        let local_minute = (self.minute + self.offset_min).rem_euclid(1440) as f64;
        let (mut truth, (mut systolic, mut diastolic, pulse)) =
            bp.measure(day, local_minute, first, Setting::Home, rng);
        if let Some((until, rise_s, rise_d)) = self.pressure_rise
            && self.minute < until
        {
            truth.systolic += rise_s;
            truth.diastolic += rise_d;
            // Whole mm Hg within the protocol's ranges, diastolic below systolic.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            {
                systolic = (f64::from(systolic) + rise_s).round().clamp(70.0, 280.0) as u16;
                diastolic = (f64::from(diastolic) + rise_d)
                    .round()
                    .clamp(35.0, f64::from(systolic) - 10.0) as u16;
            }
        }
        // A pair is stamped a minute apart to the second.
        let second = 10 + (self.plan.day.rem_euclid(40)) as u32;
        if !self.emitting {
            return;
        }
        *seq += 1;
        out.push(SimReading::BloodPressure(BloodPressureSample {
            device,
            measured_at: self.patient.zone.local(instant(self.minute, second)),
            systolic,
            diastolic,
            pulse: Some(pulse),
            seq: *seq,
            first_of_pair: first,
            morning,
            true_systolic: truth.systolic,
            true_diastolic: truth.diastolic,
        }));
    }

    /// The diabetes type simulated, if any.
    pub fn diabetes(&self) -> Option<Diabetes> {
        self.patient.glucose.as_ref().map(|g| g.params.diabetes)
    }
}

//! Behaviour: a patient's habits, and the plan of one day drawn from them.
//!
//! A day's plan is drawn from a generator seeded by (patient seed, local day number), so a
//! given patient eats the same meals on a given date whatever window is simulated.

use crate::bp::BpDay;
use crate::devices::DeviceSpec;
use crate::patient::Patient;
use crate::rng::{self, SimRng, stream};

/// Which meal of the day (meters check before the main ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MealKind {
    Breakfast,
    Lunch,
    Dinner,
    Snack,
}

/// A habitual meal.
#[derive(Debug, Clone, PartialEq)]
pub struct MealHabit {
    pub kind: MealKind,
    /// Usual local time, minutes after midnight.
    pub minute: f64,
    /// Day-to-day standard deviation of the time, minutes.
    pub time_sd_min: f64,
    /// Median carbohydrate, g.
    pub carbs_g: f64,
    /// Day-to-day log-scale standard deviation of the carbohydrate.
    pub carbs_sigma: f64,
    /// Largest share of quickly absorbed carbohydrate (drawn uniformly up to it per meal).
    pub max_fast_share: f64,
    /// Largest share of carbohydrate delayed by fat and protein (drawn uniformly up to it).
    pub max_slow_share: f64,
    /// Probability the meal is eaten on a given day.
    pub probability: f64,
}

/// How a patient on insulin doses it (type 1).
#[derive(Debug, Clone, PartialEq)]
pub struct BolusHabits {
    /// Log-scale standard deviation of carbohydrate counting error per meal.
    pub carb_count_sigma: f64,
    /// Systematic log-scale bias of carbohydrate counting (negative: underestimation).
    pub carb_count_bias: f64,
    /// Probability a meal's bolus is forgotten (missed bolus → hyperglycaemia).
    pub missed_probability: f64,
    /// Probability a meal's bolus is too large (double dose, miscounting → hypoglycaemia).
    pub over_bolus_probability: f64,
    /// Range of the over-bolus factor.
    pub over_bolus_factor: (f64, f64),
    /// Probability a bolused meal is then not eaten (skipped meal → hypoglycaemia).
    pub skipped_meal_probability: f64,
    /// Range of minutes the bolus precedes the meal (negative: after eating).
    pub prebolus_min: (f64, f64),
    /// Probability a snack is bolused.
    pub snack_bolus_probability: f64,
    /// Meal boluses add a correction when glucose is above this, mg/dL.
    pub correction_above_mg_dl: f64,
    /// Probability a meal bolus includes the correction for high glucose.
    pub correction_probability: f64,
    /// CGM users also correct between meals when the sensor reads above this, at the times
    /// they look at it.
    pub extra_correction_above_mg_dl: Option<f64>,
    /// How often a day a CGM user looks at the sensor between meals (Poisson mean).
    pub glances_per_day: f64,
}

/// Exercise habit.
#[derive(Debug, Clone, PartialEq)]
pub struct ExerciseHabit {
    /// Probability of a session on a given day.
    pub probability: f64,
    /// Usual local start, minutes after midnight.
    pub minute: f64,
    pub time_sd_min: f64,
    /// Range of durations, minutes.
    pub duration_min: (f64, f64),
    /// Range of intensities (fraction of heart-rate reserve).
    pub intensity: (f64, f64),
    /// Carbohydrate eaten before a session (type 1 guidance), g.
    pub snack_g: f64,
}

/// A patient's glucose-related habits.
#[derive(Debug, Clone, PartialEq)]
pub struct Habits {
    pub meals: Vec<MealHabit>,
    pub bolus: Option<BolusHabits>,
    pub exercise: ExerciseHabit,
    /// Probability a metformin dose (with breakfast and dinner) is taken.
    pub metformin_adherence: f64,
    /// Glucose below which the patient takes rescue carbohydrate, mg/dL.
    pub hypo_threshold_mg_dl: f64,
    /// Rescue carbohydrate, g.
    pub rescue_carbs_g: f64,
    /// A meter user checks with the meter when treating a low, and again 15 minutes later
    /// (the "rule of 15").
    pub meter_check_when_treating: bool,
}

/// Sleep and wake times.
#[derive(Debug, Clone, PartialEq)]
pub struct Routine {
    /// Usual waking time, local minutes after midnight.
    pub wake_minute: f64,
    /// Usual sleeping time, local minutes after midnight (may exceed 1440).
    pub sleep_minute: f64,
    /// Day-to-day standard deviation of both, minutes.
    pub time_sd_min: f64,
}

/// Something planned for a minute of the day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Event {
    Meal {
        carbs_g: f64,
        /// Share of quickly absorbed carbohydrate (high glycaemic index).
        fast_share: f64,
        /// Share whose absorption fat and protein delay.
        slow_share: f64,
    },
    /// A meal bolus: insulin for `estimated_carbs_g` times `factor`, plus a correction.
    MealBolus {
        estimated_carbs_g: f64,
        factor: f64,
        correct: bool,
    },
    /// The patient looks at their CGM and corrects a high.
    Glance,
    Metformin,
    Exercise {
        intensity: f64,
        duration_min: f64,
    },
    MeterCheck {
        device: usize,
    },
    CuffReading {
        device: usize,
        first: bool,
        morning: bool,
    },
}

/// A planned CGM signal loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SignalLoss {
    pub device: usize,
    /// Minutes since the Unix epoch.
    pub start: i64,
    pub end: i64,
}

/// One day's plan. Buffers are reused from day to day.
#[derive(Debug, Clone)]
pub(crate) struct DayPlan {
    /// Local day number (days since 1970-01-01 on the patient's clock).
    pub day: i64,
    /// Events as (minute since the Unix epoch, event), sorted by minute.
    pub events: Vec<(i64, Event)>,
    pub signal_loss: Vec<SignalLoss>,
    pub sensitivity: f64,
    /// Standard normal innovations of the within-day sensitivity drift, one per
    /// [`DRIFT_STEP_MIN`] of the local day.
    pub drift_innovations: [f64; DRIFT_STEPS],
    pub bp_day: Option<BpDay>,
    /// The day's waking and sleeping local minutes.
    pub wake_minute: f64,
    pub sleep_minute: f64,
}

/// Minutes between updates of the within-day sensitivity drift.
pub(crate) const DRIFT_STEP_MIN: i64 = 15;
/// Drift updates per day.
pub(crate) const DRIFT_STEPS: usize = (1440 / DRIFT_STEP_MIN) as usize;

impl Default for DayPlan {
    fn default() -> Self {
        DayPlan {
            day: i64::MIN,
            events: Vec::new(),
            signal_loss: Vec::new(),
            sensitivity: 1.0,
            drift_innovations: [0.0; DRIFT_STEPS],
            bp_day: None,
            wake_minute: 0.0,
            sleep_minute: 0.0,
        }
    }
}

/// A Poisson draw by inversion (small means only).
fn poisson(rng: &mut SimRng, mean: f64) -> u32 {
    let limit = (-mean).exp();
    let mut p = 1.0;
    let mut k = 0;
    loop {
        p *= rng::uniform(rng, 0.0, 1.0);
        if p <= limit || k >= 50 {
            return k;
        }
        k += 1;
    }
}

impl DayPlan {
    /// Draws the plan of local day `day` for `patient`. `day_start` is that day's local
    /// midnight in minutes since the Unix epoch.
    pub fn generate(&mut self, patient: &Patient, day: i64, day_start: i64) {
        self.day = day;
        self.events.clear();
        self.signal_loss.clear();
        self.sensitivity = 1.0;
        self.bp_day = None;
        // Mixing the day number through the seed path keeps days independent.
        let mut rng = rng::rng_at(patient.seed, &[stream::DAY_PLAN, day as u64]);
        let r = &patient.routine;
        self.wake_minute = rng::normal_clamped(
            &mut rng,
            r.wake_minute,
            r.time_sd_min,
            r.wake_minute - 150.0,
            r.wake_minute + 150.0,
        );
        self.sleep_minute = rng::normal_clamped(
            &mut rng,
            r.sleep_minute,
            r.time_sd_min,
            r.sleep_minute - 150.0,
            r.sleep_minute + 150.0,
        );
        let at = |m: f64| day_start + m.round().clamp(0.0, 1439.0) as i64;

        let mut meal_minutes = [None::<f64>; 3];
        if let Some(g) = &patient.glucose {
            let habits = &g.habits;
            self.sensitivity = g.params.draw_day_factor(&mut rng);
            for z in &mut self.drift_innovations {
                *z = rng::std_normal(&mut rng);
            }
            for meal in &habits.meals {
                // Draw everything for every habit, eaten or not, so one habit's outcome
                // does not shift the random stream of the next.
                let eaten = rng::chance(&mut rng, meal.probability);
                let minute = meal.minute
                    + rng::normal_clamped(&mut rng, 0.0, meal.time_sd_min, -120.0, 120.0);
                let carbs = meal.carbs_g * rng::lognormal_factor(&mut rng, meal.carbs_sigma);
                let u_miss = rng::uniform(&mut rng, 0.0, 1.0);
                let u_over = rng::uniform(&mut rng, 0.0, 1.0);
                let u_skip = rng::uniform(&mut rng, 0.0, 1.0);
                let u_snack = rng::uniform(&mut rng, 0.0, 1.0);
                let count_error = rng::std_normal(&mut rng);
                let over = rng::uniform(&mut rng, 0.0, 1.0);
                let pre = rng::uniform(&mut rng, 0.0, 1.0);
                let eaten_share = rng::uniform(&mut rng, 0.0, 0.3);
                let u_correct = rng::uniform(&mut rng, 0.0, 1.0);
                let fast_share = rng::uniform(&mut rng, 0.0, meal.max_fast_share);
                let slow_share = rng::uniform(&mut rng, 0.0, meal.max_slow_share);
                if !eaten {
                    continue;
                }
                match meal.kind {
                    MealKind::Breakfast => meal_minutes[0] = Some(minute),
                    MealKind::Lunch => meal_minutes[1] = Some(minute),
                    MealKind::Dinner => meal_minutes[2] = Some(minute),
                    MealKind::Snack => {}
                }
                let mut eaten_carbs = carbs;
                if let Some(b) = &habits.bolus {
                    let bolused =
                        meal.kind != MealKind::Snack || u_snack < b.snack_bolus_probability;
                    if bolused && u_miss >= b.missed_probability {
                        let factor = if u_over < b.over_bolus_probability {
                            b.over_bolus_factor.0
                                + over * (b.over_bolus_factor.1 - b.over_bolus_factor.0)
                        } else {
                            1.0
                        };
                        if u_skip < b.skipped_meal_probability {
                            eaten_carbs = carbs * eaten_share;
                        }
                        let lead = b.prebolus_min.0 + pre * (b.prebolus_min.1 - b.prebolus_min.0);
                        self.events.push((
                            at(minute - lead),
                            Event::MealBolus {
                                estimated_carbs_g: carbs
                                    * (b.carb_count_bias + b.carb_count_sigma * count_error).exp(),
                                factor,
                                correct: u_correct < b.correction_probability,
                            },
                        ));
                    }
                }
                if eaten_carbs > 0.5 {
                    self.events.push((
                        at(minute),
                        Event::Meal {
                            carbs_g: eaten_carbs,
                            fast_share,
                            slow_share,
                        },
                    ));
                }
            }
            if let Some(b) = &habits.bolus {
                let awake_min = (self.sleep_minute.min(1439.0) - self.wake_minute).max(0.0);
                for _ in 0..poisson(&mut rng, b.glances_per_day) {
                    let m = self.wake_minute + rng::uniform(&mut rng, 0.0, awake_min);
                    self.events.push((at(m), Event::Glance));
                }
            }
            if g.params.metformin.is_some() {
                let with = [
                    meal_minutes[0].unwrap_or(self.wake_minute + 30.0),
                    meal_minutes[2].unwrap_or(19.0 * 60.0),
                ];
                for m in with {
                    if rng::chance(&mut rng, habits.metformin_adherence) {
                        self.events.push((at(m), Event::Metformin));
                    }
                }
            }
            let ex = &habits.exercise;
            let does = rng::chance(&mut rng, ex.probability);
            let start =
                ex.minute + rng::normal_clamped(&mut rng, 0.0, ex.time_sd_min, -180.0, 180.0);
            let duration = rng::uniform(&mut rng, ex.duration_min.0, ex.duration_min.1);
            let intensity = rng::uniform(&mut rng, ex.intensity.0, ex.intensity.1);
            if does {
                if ex.snack_g > 0.0 {
                    self.events.push((
                        at(start - 10.0),
                        Event::Meal {
                            carbs_g: ex.snack_g,
                            fast_share: 0.5,
                            slow_share: 0.0,
                        },
                    ));
                }
                self.events.push((
                    at(start),
                    Event::Exercise {
                        intensity,
                        duration_min: duration,
                    },
                ));
            }
        }

        if let Some(bp) = &patient.bp {
            self.bp_day = Some(bp.draw_day(self.wake_minute, self.sleep_minute, &mut rng));
        }

        for (device, spec) in patient.devices.iter().enumerate() {
            match spec {
                DeviceSpec::Cgm(cgm) => {
                    let n = poisson(&mut rng, cgm.signal_loss_per_day);
                    for _ in 0..n {
                        let start = rng::uniform(&mut rng, 0.0, 1440.0);
                        let len = cgm.signal_loss_median_min * rng::lognormal_factor(&mut rng, 0.8);
                        let start = day_start + start as i64;
                        self.signal_loss.push(SignalLoss {
                            device,
                            start,
                            end: start + len.clamp(6.0, 360.0) as i64,
                        });
                    }
                }
                DeviceSpec::Meter(meter) => {
                    let s = &meter.schedule;
                    let checks = [
                        (s.before_breakfast, meal_minutes[0]),
                        (s.before_lunch, meal_minutes[1]),
                        (s.before_dinner, meal_minutes[2]),
                        (s.bedtime, Some(self.sleep_minute.min(1439.0))),
                    ];
                    for (p, minute) in checks {
                        let take = rng::chance(&mut rng, p);
                        let lead = rng::uniform(&mut rng, 5.0, 25.0);
                        if let (true, Some(m)) = (take, minute) {
                            self.events
                                .push((at(m - lead), Event::MeterCheck { device }));
                        }
                    }
                }
                DeviceSpec::Cuff(cuff) => {
                    let sessions = [
                        (self.wake_minute + cuff.morning_after_wake_min, true),
                        (cuff.evening_minute.min(self.sleep_minute - 20.0), false),
                    ];
                    for (mean, morning) in sessions {
                        let take = rng::chance(&mut rng, cuff.adherence);
                        let m = mean
                            + rng::normal_clamped(&mut rng, 0.0, cuff.time_sd_min, -60.0, 60.0);
                        if take {
                            let m = m.clamp(0.0, 1438.0);
                            self.events.push((
                                at(m),
                                Event::CuffReading {
                                    device,
                                    first: true,
                                    morning,
                                },
                            ));
                            self.events.push((
                                at(m + 1.0),
                                Event::CuffReading {
                                    device,
                                    first: false,
                                    morning,
                                },
                            ));
                        }
                    }
                }
            }
        }
        // Stable: events planned for the same minute keep their planned order.
        self.events.sort_by_key(|(minute, _)| *minute);
    }
}

//! The blood-pressure model: a patient's underlying pressure follows a circadian pattern
//! (night-time dip while asleep, morning surge after waking) around a level that varies from
//! day to day; a measurement adds between-reading noise and the white-coat / first-reading
//! effect. Equations and sources are in `docs/simulator.md`.

use crate::rng::{self, SimRng};

/// One patient's blood-pressure parameters (mm Hg, beats per minute).
#[derive(Debug, Clone, PartialEq)]
pub struct BpParams {
    /// Mean systolic pressure while awake (outside the morning surge), mm Hg.
    pub systolic_awake: f64,
    /// Mean diastolic pressure while awake, mm Hg.
    pub diastolic_awake: f64,
    /// Mean pulse while awake, beats/min.
    pub pulse_awake: f64,
    /// Fractional fall of pressure while asleep (0.10–0.20 in "dippers").
    pub night_dip: f64,
    /// Fractional fall of pulse while asleep.
    pub pulse_night_dip: f64,
    /// Peak systolic rise of the morning surge, mm Hg (diastolic rises 60 % of it).
    pub morning_surge: f64,
    /// Minutes after waking at which the surge peaks.
    pub surge_peak_min: f64,
    /// Extra systolic pressure of the first reading of a home pair (alerting reaction), mm Hg.
    pub first_reading_systolic: f64,
    /// Extra diastolic pressure of the first reading of a home pair, mm Hg.
    pub first_reading_diastolic: f64,
    /// Extra systolic pressure when measured in a clinic (white-coat effect), mm Hg.
    pub clinic_systolic: f64,
    /// Extra diastolic pressure when measured in a clinic, mm Hg.
    pub clinic_diastolic: f64,
    /// Standard deviation of systolic between readings, mm Hg.
    pub reading_sd_systolic: f64,
    /// Standard deviation of diastolic between readings, mm Hg.
    pub reading_sd_diastolic: f64,
    /// Standard deviation of pulse between readings, beats/min.
    pub reading_sd_pulse: f64,
    /// Standard deviation of the day's systolic level, mm Hg.
    pub daily_sd_systolic: f64,
    /// Standard deviation of the day's diastolic level, mm Hg.
    pub daily_sd_diastolic: f64,
}

/// Where a reading is taken: at home, or in a clinic where the white-coat effect applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Home,
    Clinic,
}

/// A day's schedule and level: what the circadian pattern needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BpDay {
    /// Local minute of waking.
    pub wake_minute: f64,
    /// Local minute of going to sleep (may exceed 1440 for after midnight).
    pub sleep_minute: f64,
    /// The day's systolic offset, mm Hg.
    pub systolic_offset: f64,
    /// The day's diastolic offset, mm Hg.
    pub diastolic_offset: f64,
}

impl BpDay {
    /// A day with no offsets and the given schedule.
    pub fn typical(wake_minute: f64, sleep_minute: f64) -> BpDay {
        BpDay {
            wake_minute,
            sleep_minute,
            systolic_offset: 0.0,
            diastolic_offset: 0.0,
        }
    }
}

/// The underlying (noise-free) pressure at an instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pressure {
    pub systolic: f64,
    pub diastolic: f64,
    pub pulse: f64,
}

/// Width of the sleep/wake transitions, minutes: pressure falls and rises over about half an
/// hour rather than stepping.
const TRANSITION_MIN: f64 = 15.0;

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl BpParams {
    /// How asleep the patient is at local minute `m` (0 awake … 1 asleep), smooth around the
    /// wake and sleep times.
    pub fn asleep(day: &BpDay, local_minute: f64) -> f64 {
        // Before waking: asleep since last night; after sleep time: asleep again.
        let woke = logistic((local_minute - day.wake_minute) / TRANSITION_MIN * 4.0);
        let slept = logistic((local_minute - day.sleep_minute) / TRANSITION_MIN * 4.0);
        (1.0 - woke) + slept
    }

    /// The underlying pressure at local minute `m` of `day`.
    pub fn pressure(&self, day: &BpDay, local_minute: f64) -> Pressure {
        let asleep = Self::asleep(day, local_minute).clamp(0.0, 1.0);
        let since_wake = local_minute - day.wake_minute;
        let surge = if since_wake > 0.0 {
            let x = since_wake / self.surge_peak_min;
            // A gamma-like bump: zero at waking, peak `morning_surge` at `surge_peak_min`.
            self.morning_surge * x * (1.0 - x).exp()
        } else {
            0.0
        };
        let level = 1.0 - self.night_dip * asleep;
        Pressure {
            systolic: (self.systolic_awake + day.systolic_offset) * level + surge,
            diastolic: (self.diastolic_awake + day.diastolic_offset) * level + 0.6 * surge,
            pulse: self.pulse_awake * (1.0 - self.pulse_night_dip * asleep) + 0.25 * surge,
        }
    }

    /// A measured reading at local minute `m`: the underlying pressure plus the alerting
    /// effect of a first reading or a clinic, and reading noise. Returns whole numbers that
    /// satisfy the protocol's ranges (diastolic below systolic).
    pub fn measure(
        &self,
        day: &BpDay,
        local_minute: f64,
        first_of_pair: bool,
        setting: Setting,
        rng: &mut SimRng,
    ) -> (Pressure, (u16, u16, u16)) {
        let truth = self.pressure(day, local_minute);
        let (mut sys, mut dia, mut pulse) = (truth.systolic, truth.diastolic, truth.pulse);
        if first_of_pair {
            sys += self.first_reading_systolic;
            dia += self.first_reading_diastolic;
            pulse += 2.0;
        }
        if setting == Setting::Clinic {
            sys += self.clinic_systolic;
            dia += self.clinic_diastolic;
            pulse += 4.0;
        }
        sys += self.reading_sd_systolic * rng::std_normal(rng);
        dia += self.reading_sd_diastolic * rng::std_normal(rng);
        pulse += self.reading_sd_pulse * rng::std_normal(rng);
        let sys = sys.round().clamp(70.0, 260.0);
        let dia = dia.round().clamp(35.0, sys - 10.0);
        let pulse = pulse.round().clamp(35.0, 200.0);
        // The clamps keep every value inside u16 and inside the protocol's plausible ranges.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let out = (sys as u16, dia as u16, pulse as u16);
        (truth, out)
    }

    /// Draws a day's level offsets.
    pub(crate) fn draw_day(&self, wake: f64, sleep: f64, rng: &mut SimRng) -> BpDay {
        BpDay {
            wake_minute: wake,
            sleep_minute: sleep,
            systolic_offset: self.daily_sd_systolic * rng::std_normal(rng),
            diastolic_offset: self.daily_sd_diastolic * rng::std_normal(rng),
        }
    }

    /// Mean underlying pressure asleep and awake over a typical day: shows the dip.
    pub fn night_day_means(&self, day: &BpDay) -> (Pressure, Pressure) {
        let (mut night, mut awake) = ([0.0; 3], [0.0; 3]);
        let (mut n_night, mut n_awake) = (0.0, 0.0);
        for m in 0..1440 {
            let m = f64::from(m);
            let p = self.pressure(day, m);
            let a = Self::asleep(day, m);
            let (acc, n) = if a > 0.5 {
                (&mut night, &mut n_night)
            } else {
                (&mut awake, &mut n_awake)
            };
            acc[0] += p.systolic;
            acc[1] += p.diastolic;
            acc[2] += p.pulse;
            *n += 1.0;
        }
        let mean = |a: [f64; 3], n: f64| Pressure {
            systolic: a[0] / n,
            diastolic: a[1] / n,
            pulse: a[2] / n,
        };
        (mean(night, n_night), mean(awake, n_awake))
    }
}

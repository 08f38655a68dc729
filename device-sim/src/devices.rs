//! Device behaviour on top of the physiology: what a CGM, a finger-stick meter and a cuff
//! report, and when. Sources for the error models are in `docs/simulator.md`.

use crate::rng::{self, SimRng};
use chronicle_domain::{DeviceKind, GlucoseUnit};
use rand::Rng;

/// A continuous glucose monitor.
#[derive(Debug, Clone, PartialEq)]
pub struct CgmSpec {
    /// Unit the receiver displays and sends.
    pub unit: GlucoseUnit,
    /// Minutes between readings.
    pub interval_min: u32,
    /// Days a sensor is worn before it is changed.
    pub sensor_life_days: u32,
    /// Minutes without data after a sensor is inserted.
    pub warmup_min: u32,
    /// Offset of the sensor-change schedule, minutes (sensor `k` is inserted at
    /// `phase + k·life` minutes after the Unix epoch), so patients change sensors on
    /// different days.
    pub schedule_phase_min: i64,
    /// Standard deviation of the sensor's calibration gain (multiplicative, around 1).
    pub gain_sd: f64,
    /// Standard deviation of the gain's drift per day of wear.
    pub gain_drift_sd_per_day: f64,
    /// Standard deviation of the sensor's offset, mg/dL.
    pub offset_sd_mg_dl: f64,
    /// Standard deviation of the offset's drift per day of wear, mg/dL.
    pub offset_drift_sd_per_day: f64,
    /// Stationary standard deviation of the measurement noise, mg/dL.
    pub noise_sd_mg_dl: f64,
    /// Lag-one autocorrelation of the noise between consecutive readings.
    pub noise_ar: f64,
    /// Noise multiplier during the first day of wear (accuracy is worst on day 1).
    pub first_day_noise_factor: f64,
    /// Expected signal-loss episodes per day (receiver out of range, compression).
    pub signal_loss_per_day: f64,
    /// Median length of a signal-loss episode, minutes (log-normal).
    pub signal_loss_median_min: f64,
    /// A "professional" CGM the patient cannot see: it records without changing how the
    /// patient treats highs and lows.
    pub blinded: bool,
}

impl CgmSpec {
    /// A 10-day sensor with a 2-hour warm-up (the common "G6-like" design).
    pub fn ten_day(unit: GlucoseUnit) -> CgmSpec {
        CgmSpec {
            unit,
            interval_min: 5,
            sensor_life_days: 10,
            warmup_min: 120,
            schedule_phase_min: 0,
            gain_sd: 0.04,
            gain_drift_sd_per_day: 0.003,
            offset_sd_mg_dl: 3.0,
            offset_drift_sd_per_day: 0.4,
            noise_sd_mg_dl: 5.5,
            noise_ar: 0.7,
            first_day_noise_factor: 1.6,
            signal_loss_per_day: 0.4,
            signal_loss_median_min: 30.0,
            blinded: false,
        }
    }

    /// A 14-day sensor with a 1-hour warm-up (the "Libre-2-like" design).
    pub fn fourteen_day(unit: GlucoseUnit) -> CgmSpec {
        CgmSpec {
            sensor_life_days: 14,
            warmup_min: 60,
            ..CgmSpec::ten_day(unit)
        }
    }

    /// The same sensor, blinded.
    pub fn blinded(self) -> CgmSpec {
        CgmSpec {
            blinded: true,
            ..self
        }
    }

    /// Sensor life in minutes.
    pub fn life_min(&self) -> i64 {
        i64::from(self.sensor_life_days.max(1)) * 1440
    }

    /// The sensor worn at `minute` (minutes since the Unix epoch) and when it was inserted.
    pub fn sensor_at(&self, minute: i64) -> (i64, i64) {
        let life = self.life_min();
        let k = (minute - self.schedule_phase_min).div_euclid(life);
        (k, self.schedule_phase_min + k * life)
    }
}

/// When a meter user measures.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterSchedule {
    /// Probability of a check before breakfast.
    pub before_breakfast: f64,
    /// Probability of a check before lunch.
    pub before_lunch: f64,
    /// Probability of a check before dinner.
    pub before_dinner: f64,
    /// Probability of a check at bedtime.
    pub bedtime: f64,
}

/// A finger-stick glucometer.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterSpec {
    pub unit: GlucoseUnit,
    /// Relative standard deviation of one reading's error.
    pub error_sd: f64,
    /// The strip lot's relative bias (constant for the device).
    pub lot_bias: f64,
    /// Lowest value shown as a number; below it the meter shows "LO", mg/dL.
    pub lo_mg_dl: f64,
    /// Highest value shown as a number; above it the meter shows "HI", mg/dL.
    pub hi_mg_dl: f64,
    pub schedule: MeterSchedule,
}

impl MeterSpec {
    /// An ISO 15197:2013-grade meter: 5.5 % relative error, a small lot bias, range 20–600.
    pub fn iso_15197(unit: GlucoseUnit, lot_bias: f64, schedule: MeterSchedule) -> MeterSpec {
        MeterSpec {
            unit,
            error_sd: 0.055,
            lot_bias,
            lo_mg_dl: 20.0,
            hi_mg_dl: 600.0,
            schedule,
        }
    }

    /// What the meter shows for blood glucose `bg_mg_dl`, in mg/dL before unit conversion.
    pub(crate) fn measure(&self, bg_mg_dl: f64, rng: &mut SimRng) -> f64 {
        let e = self.lot_bias + self.error_sd * rng::std_normal(rng);
        // A strip error beyond ±25 % would fail the meter's own checks: it is redone.
        bg_mg_dl * (1.0 + e.clamp(-0.25, 0.25))
    }
}

/// An upper-arm blood-pressure cuff used at home, morning and evening, two readings a minute
/// apart (the ESH home-monitoring protocol).
#[derive(Debug, Clone, PartialEq)]
pub struct CuffSpec {
    /// Minutes after waking of the morning pair (mean).
    pub morning_after_wake_min: f64,
    /// Local minute of the evening pair (mean).
    pub evening_minute: f64,
    /// Standard deviation of the session times, minutes.
    pub time_sd_min: f64,
    /// Probability that a given session happens.
    pub adherence: f64,
}

impl Default for CuffSpec {
    fn default() -> Self {
        CuffSpec {
            morning_after_wake_min: 40.0,
            evening_minute: 21.0 * 60.0,
            time_sd_min: 20.0,
            adherence: 0.9,
        }
    }
}

/// A device a patient uses.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceSpec {
    Cgm(CgmSpec),
    Meter(MeterSpec),
    Cuff(CuffSpec),
}

impl DeviceSpec {
    /// The kind Chronicle registers the device as.
    pub fn kind(&self) -> DeviceKind {
        match self {
            DeviceSpec::Cgm(_) => DeviceKind::Cgm,
            DeviceSpec::Meter(_) => DeviceKind::Meter,
            DeviceSpec::Cuff(_) => DeviceKind::Bp,
        }
    }

    /// The glucose unit the device reports in, if it reports glucose.
    pub fn glucose_unit(&self) -> Option<GlucoseUnit> {
        match self {
            DeviceSpec::Cgm(c) => Some(c.unit),
            DeviceSpec::Meter(m) => Some(m.unit),
            DeviceSpec::Cuff(_) => None,
        }
    }
}

/// The state of the sensor a CGM is wearing.
#[derive(Debug, Clone)]
pub(crate) struct Sensor {
    pub inserted: i64,
    /// Seconds past the minute at which this sensor's readings are stamped.
    pub second: u32,
    gain: f64,
    gain_drift: f64,
    offset: f64,
    offset_drift: f64,
    noise: f64,
}

impl Sensor {
    pub fn new(spec: &CgmSpec, inserted: i64, rng: &mut SimRng) -> Sensor {
        Sensor {
            inserted,
            second: rng.random_range(0..60),
            gain: 1.0 + spec.gain_sd * rng::std_normal(rng),
            gain_drift: spec.gain_drift_sd_per_day * rng::std_normal(rng),
            offset: spec.offset_sd_mg_dl * rng::std_normal(rng),
            offset_drift: spec.offset_drift_sd_per_day * rng::std_normal(rng),
            noise: 0.0,
        }
    }

    /// The sensor's reading for interstitial glucose `ig` at `minute`, mg/dL (unclipped).
    pub fn measure(&mut self, spec: &CgmSpec, ig: f64, minute: i64, rng: &mut SimRng) -> f64 {
        let days = (minute - self.inserted) as f64 / 1440.0;
        let sd = if days < 1.0 {
            spec.noise_sd_mg_dl * spec.first_day_noise_factor
        } else {
            spec.noise_sd_mg_dl
        };
        // AR(1) with stationary standard deviation `sd`.
        let phi = spec.noise_ar;
        self.noise = phi * self.noise + sd * (1.0 - phi * phi).sqrt() * rng::std_normal(rng);
        (self.gain + self.gain_drift * days) * ig
            + self.offset
            + self.offset_drift * days
            + self.noise
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensor_schedule_is_periodic() {
        let spec = CgmSpec {
            schedule_phase_min: 123,
            ..CgmSpec::ten_day(GlucoseUnit::MgDl)
        };
        let (k, inserted) = spec.sensor_at(123 + 10 * 1440 * 5 + 7);
        assert_eq!((k, inserted), (5, 123 + 10 * 1440 * 5));
        let (k, inserted) = spec.sensor_at(0);
        assert_eq!(k, -1);
        assert!(inserted <= 0 && inserted + spec.life_min() > 0);
    }
}

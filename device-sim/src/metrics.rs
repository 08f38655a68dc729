//! Summary metrics of simulated readings, as the international consensus on CGM metrics
//! (Battelino et al., Diabetes Care 2019) and home blood-pressure monitoring report them.
//! Used to check the models against their targets and to print the persona table.

use crate::devices::{CgmSpec, DeviceSpec};
use crate::patient::Patient;
use crate::reading::SimReading;
use chronicle_domain::{GlucoseSource, GlucoseUnit};
use chrono::{DateTime, Duration, Utc};

/// CGM-style glucose metrics over a set of values (by readings, not by time).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GlucoseMetrics {
    pub count: usize,
    /// mg/dL.
    pub mean: f64,
    /// mg/dL.
    pub sd: f64,
    /// Coefficient of variation, % (SD / mean).
    pub cv: f64,
    /// % of values in 70–180 mg/dL.
    pub tir: f64,
    /// % below 70 mg/dL.
    pub below_70: f64,
    /// % below 54 mg/dL.
    pub below_54: f64,
    /// % above 180 mg/dL.
    pub above_180: f64,
    /// % above 250 mg/dL.
    pub above_250: f64,
}

impl GlucoseMetrics {
    /// Metrics of values in mg/dL ("LO"/"HI" count at 40/400 mg/dL).
    pub fn of(values: impl IntoIterator<Item = f64>) -> GlucoseMetrics {
        let (mut n, mut sum, mut sum2) = (0usize, 0.0, 0.0);
        let (mut tir, mut b70, mut b54, mut a180, mut a250) = (0, 0, 0, 0, 0);
        for v in values {
            n += 1;
            sum += v;
            sum2 += v * v;
            if v < 54.0 {
                b54 += 1;
            }
            if v < 70.0 {
                b70 += 1;
            } else if v <= 180.0 {
                tir += 1;
            } else {
                a180 += 1;
            }
            if v > 250.0 {
                a250 += 1;
            }
        }
        if n == 0 {
            return GlucoseMetrics::default();
        }
        let nf = n as f64;
        let mean = sum / nf;
        let var = if n > 1 {
            ((sum2 - nf * mean * mean) / (nf - 1.0)).max(0.0)
        } else {
            0.0
        };
        let sd = var.sqrt();
        let pct = |k: usize| 100.0 * k as f64 / nf;
        GlucoseMetrics {
            count: n,
            mean,
            sd,
            cv: 100.0 * sd / mean,
            tir: pct(tir),
            below_70: pct(b70),
            below_54: pct(b54),
            above_180: pct(a180),
            above_250: pct(a250),
        }
    }

    /// Metrics of the glucose readings of `device` in `readings`, as stored (mg/dL).
    pub fn of_device(readings: &[SimReading], device: usize) -> GlucoseMetrics {
        GlucoseMetrics::of(
            readings
                .iter()
                .filter(|r| r.device() == device)
                .filter_map(SimReading::glucose_mg_dl),
        )
    }
}

/// Mean home blood pressure, split into morning and evening sessions.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BpMetrics {
    pub readings: usize,
    pub systolic: f64,
    pub diastolic: f64,
    pub pulse: f64,
    pub morning_systolic: f64,
    pub morning_diastolic: f64,
    pub evening_systolic: f64,
    pub evening_diastolic: f64,
}

impl BpMetrics {
    /// Means over every blood-pressure reading in `readings`.
    pub fn of(readings: &[SimReading]) -> BpMetrics {
        let mut acc = [[0.0f64; 4]; 2];
        for r in readings {
            if let SimReading::BloodPressure(b) = r {
                let a = &mut acc[usize::from(!b.morning)];
                a[0] += 1.0;
                a[1] += f64::from(b.systolic);
                a[2] += f64::from(b.diastolic);
                a[3] += f64::from(b.pulse.unwrap_or(0));
            }
        }
        let [m, e] = acc;
        let n = m[0] + e[0];
        let div = |x: f64, n: f64| if n > 0.0 { x / n } else { f64::NAN };
        BpMetrics {
            readings: n as usize,
            systolic: div(m[1] + e[1], n),
            diastolic: div(m[2] + e[2], n),
            pulse: div(m[3] + e[3], n),
            morning_systolic: div(m[1], m[0]),
            morning_diastolic: div(m[2], m[0]),
            evening_systolic: div(e[1], e[0]),
            evening_diastolic: div(e[2], e[0]),
        }
    }
}

/// Mean absolute relative difference of glucose readings against the true blood glucose, %
/// (numeric values only).
pub fn mard(readings: &[SimReading], device: usize) -> f64 {
    let (mut n, mut sum) = (0.0, 0.0);
    for r in readings {
        if let SimReading::Glucose(g) = r
            && g.device == device
            && let crate::reading::GlucoseValue::Number(v) = g.value
        {
            sum += (g.unit.to_mg_dl(v) - g.true_mg_dl).abs() / g.true_mg_dl;
            n += 1.0;
        }
    }
    if n > 0.0 { 100.0 * sum / n } else { f64::NAN }
}

/// What [`evaluate`] measured for one patient.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// CGM metrics (from the patient's CGM, or from a blinded CGM added for the evaluation).
    pub glucose: Option<GlucoseMetrics>,
    /// CGM mean absolute relative difference against blood glucose, %.
    pub cgm_mard: Option<f64>,
    /// Meter readings, and the share within ±15 % of blood glucose, %.
    pub meter: Option<(usize, f64)>,
    pub bp: Option<BpMetrics>,
    /// Everything the patient's devices reported (without the blinded CGM).
    pub readings: Vec<SimReading>,
}

/// Simulates `patient` for `days` from `start` and summarizes the readings. A patient with a
/// glucose model but no CGM gets a blinded ("professional") CGM for the glucose metrics, as a
/// clinic would use to assess a meter user.
pub fn evaluate(patient: &Patient, start: DateTime<Utc>, days: i64) -> Evaluation {
    let mut subject = patient.clone();
    let own_devices = subject.devices.len();
    let cgm = subject
        .devices
        .iter()
        .position(|d| matches!(d, DeviceSpec::Cgm(_)))
        .or_else(|| {
            subject.glucose.as_ref()?;
            subject.devices.push(DeviceSpec::Cgm(
                CgmSpec::fourteen_day(GlucoseUnit::MgDl).blinded(),
            ));
            Some(own_devices)
        });
    let all = subject.readings(start, start + Duration::days(days));
    let glucose = cgm.map(|d| GlucoseMetrics::of_device(&all, d));
    let cgm_mard = cgm.map(|d| mard(&all, d));
    let mut meter: Option<(usize, f64)> = None;
    for r in &all {
        if let SimReading::Glucose(g) = r
            && g.source == GlucoseSource::Meter
        {
            let (n, ok) = meter.get_or_insert((0, 0.0));
            *n += 1;
            let within = match g.value {
                crate::reading::GlucoseValue::Number(v) => {
                    (g.unit.to_mg_dl(v) - g.true_mg_dl).abs() <= 0.15 * g.true_mg_dl
                }
                _ => false,
            };
            if within {
                *ok += 1.0;
            }
        }
    }
    let meter = meter.map(|(n, ok)| (n, 100.0 * ok / n as f64));
    let readings: Vec<SimReading> = all
        .into_iter()
        .filter(|r| r.device() < own_devices)
        .collect();
    let bp = patient.bp.as_ref().map(|_| BpMetrics::of(&readings));
    Evaluation {
        glucose,
        cgm_mard,
        meter,
        bp,
        readings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands() {
        let m = GlucoseMetrics::of([50.0, 60.0, 100.0, 200.0, 300.0]);
        assert_eq!(m.count, 5);
        assert!((m.mean - 142.0).abs() < 1e-9);
        assert!((m.below_54 - 20.0).abs() < 1e-9);
        assert!((m.below_70 - 40.0).abs() < 1e-9);
        assert!((m.tir - 20.0).abs() < 1e-9);
        assert!((m.above_180 - 40.0).abs() < 1e-9);
        assert!((m.above_250 - 20.0).abs() < 1e-9);
    }
}

//! What devices report, and its wire form (`docs/protocol.md`).

use chronicle_domain::{DeviceKind, GlucoseSource, GlucoseUnit};
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

/// A glucose value as a device shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GlucoseValue {
    /// A number in the device's unit (whole mg/dL, or mmol/L to one decimal).
    Number(f64),
    /// Below the measuring range ("LO").
    Lo,
    /// Above the measuring range ("HI").
    Hi,
}

/// A glucose reading from a CGM or a meter.
#[derive(Debug, Clone, PartialEq)]
pub struct GlucoseSample {
    /// Index of the device in [`crate::Patient::devices`].
    pub device: usize,
    /// `cgm` or `meter`.
    pub source: GlucoseSource,
    /// When it was measured, on the patient's clock.
    pub measured_at: DateTime<FixedOffset>,
    pub value: GlucoseValue,
    pub unit: GlucoseUnit,
    /// The device's sequence number (counts from 1 in each simulator run).
    pub seq: u64,
    /// Ground truth: blood glucose at that instant, mg/dL (not sent).
    pub true_mg_dl: f64,
}

/// A blood-pressure reading from a cuff.
#[derive(Debug, Clone, PartialEq)]
pub struct BloodPressureSample {
    /// Index of the device in [`crate::Patient::devices`].
    pub device: usize,
    pub measured_at: DateTime<FixedOffset>,
    /// mm Hg.
    pub systolic: u16,
    /// mm Hg.
    pub diastolic: u16,
    /// Beats per minute.
    pub pulse: Option<u16>,
    /// The device's sequence number (counts from 1 in each simulator run).
    pub seq: u64,
    /// Whether this is the first reading of a pair (it carries the alerting effect).
    pub first_of_pair: bool,
    /// Whether this is a morning session (else evening).
    pub morning: bool,
    /// Ground truth: the underlying systolic pressure, mm Hg (not sent).
    pub true_systolic: f64,
    /// Ground truth: the underlying diastolic pressure, mm Hg (not sent).
    pub true_diastolic: f64,
}

/// What the patient did, as their phone app or pump logs it (`docs/protocol.md`,
/// "Treatments").
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Treatment {
    /// Rapid-acting insulin, units (meal and correction boluses).
    Bolus { units: f64 },
    /// Carbohydrates eaten, grams; `hypo` for fast carbohydrate taken to treat a low.
    Carbohydrates { grams: f64, hypo: bool },
    /// Exercise, minutes.
    Exercise { minutes: u32 },
    /// A new CGM sensor inserted.
    SensorChange,
}

/// A treatment logged through one of the patient's glucose devices (the app that reads the
/// CGM, or the meter's), which the protocol lets send them.
#[derive(Debug, Clone, PartialEq)]
pub struct TreatmentSample {
    /// Index of the logging device in [`crate::Patient::devices`].
    pub device: usize,
    /// The logging device's kind (CGM or meter).
    pub device_kind: DeviceKind,
    pub measured_at: DateTime<FixedOffset>,
    pub treatment: Treatment,
    /// The logging device's sequence number (shared with its readings).
    pub seq: u64,
}

/// One simulated device reading, or a treatment a glucose device logs.
#[derive(Debug, Clone, PartialEq)]
pub enum SimReading {
    Glucose(GlucoseSample),
    BloodPressure(BloodPressureSample),
    Treatment(TreatmentSample),
}

impl SimReading {
    /// When it was measured, on the patient's clock.
    pub fn measured_at(&self) -> DateTime<FixedOffset> {
        match self {
            SimReading::Glucose(g) => g.measured_at,
            SimReading::BloodPressure(b) => b.measured_at,
            SimReading::Treatment(t) => t.measured_at,
        }
    }

    /// Moves the reading `by` in time.
    pub fn shift(&mut self, by: chrono::Duration) {
        match self {
            SimReading::Glucose(g) => g.measured_at += by,
            SimReading::BloodPressure(b) => b.measured_at += by,
            SimReading::Treatment(t) => t.measured_at += by,
        }
    }

    /// A measurement (glucose or blood pressure), as opposed to a logged treatment: only
    /// measurements tell that a device is still sending (`no_data`).
    pub fn is_measurement(&self) -> bool {
        !matches!(self, SimReading::Treatment(_))
    }

    /// When it was measured, in UTC.
    pub fn measured_at_utc(&self) -> DateTime<Utc> {
        self.measured_at().with_timezone(&Utc)
    }

    /// Index of the reporting device in the patient's device list.
    pub fn device(&self) -> usize {
        match self {
            SimReading::Glucose(g) => g.device,
            SimReading::BloodPressure(b) => b.device,
            SimReading::Treatment(t) => t.device,
        }
    }

    /// The kind of device that reports it.
    pub fn device_kind(&self) -> DeviceKind {
        match self {
            SimReading::Glucose(g) if g.source == GlucoseSource::Cgm => DeviceKind::Cgm,
            SimReading::Glucose(_) => DeviceKind::Meter,
            SimReading::BloodPressure(_) => DeviceKind::Bp,
            SimReading::Treatment(t) => t.device_kind,
        }
    }

    /// The device's sequence number.
    pub fn seq(&self) -> u64 {
        match self {
            SimReading::Glucose(g) => g.seq,
            SimReading::BloodPressure(b) => b.seq,
            SimReading::Treatment(t) => t.seq,
        }
    }

    /// The reading as the protocol's JSON object (one reading; batch several into
    /// `{"readings": [...]}`). The `id` is the sequence number.
    pub fn to_json(&self) -> Value {
        let stamp = self
            .measured_at()
            .to_rfc3339_opts(SecondsFormat::Secs, false);
        match self {
            SimReading::Glucose(g) => {
                let value = match g.value {
                    GlucoseValue::Number(v) => json!(v),
                    GlucoseValue::Lo => json!("LO"),
                    GlucoseValue::Hi => json!("HI"),
                };
                let mut m = Map::with_capacity(6);
                m.insert("type".into(), json!("glucose"));
                m.insert("value".into(), value);
                m.insert("unit".into(), json!(g.unit.as_str()));
                m.insert("source".into(), json!(g.source.as_str()));
                m.insert("measured_at".into(), json!(stamp));
                m.insert("id".into(), json!(g.seq));
                Value::Object(m)
            }
            SimReading::BloodPressure(b) => {
                let mut m = Map::with_capacity(7);
                m.insert("type".into(), json!("blood_pressure"));
                m.insert("systolic".into(), json!(b.systolic));
                m.insert("diastolic".into(), json!(b.diastolic));
                if let Some(p) = b.pulse {
                    m.insert("pulse".into(), json!(p));
                }
                m.insert("unit".into(), json!("mm[Hg]"));
                m.insert("measured_at".into(), json!(stamp));
                m.insert("id".into(), json!(b.seq));
                Value::Object(m)
            }
            SimReading::Treatment(t) => {
                let mut m = Map::with_capacity(5);
                match t.treatment {
                    Treatment::Bolus { units } => {
                        m.insert("type".into(), json!("insulin"));
                        m.insert("delivery".into(), json!("bolus"));
                        m.insert("units".into(), json!(units));
                    }
                    Treatment::Carbohydrates { grams, hypo } => {
                        m.insert("type".into(), json!("carbohydrates"));
                        m.insert("grams".into(), json!(grams));
                        if hypo {
                            m.insert("note".into(), json!("treating a low"));
                        }
                    }
                    Treatment::Exercise { minutes } => {
                        m.insert("type".into(), json!("exercise"));
                        m.insert("duration_minutes".into(), json!(minutes));
                    }
                    Treatment::SensorChange => {
                        m.insert("type".into(), json!("sensor_change"));
                    }
                }
                m.insert("measured_at".into(), json!(stamp));
                m.insert("id".into(), json!(t.seq));
                Value::Object(m)
            }
        }
    }

    /// A glucose value in mg/dL as Chronicle will store it (LO/HI at 40/400), if glucose.
    pub fn glucose_mg_dl(&self) -> Option<f64> {
        match self {
            SimReading::Glucose(g) => Some(match g.value {
                GlucoseValue::Number(v) => g.unit.to_mg_dl(v),
                GlucoseValue::Lo => chronicle_domain::GlucoseFlag::LO_MG_DL,
                GlucoseValue::Hi => chronicle_domain::GlucoseFlag::HI_MG_DL,
            }),
            SimReading::BloodPressure(_) | SimReading::Treatment(_) => None,
        }
    }
}

/// Rounds a mg/dL value to what a device in `unit` displays: whole mg/dL, or mmol/L to one
/// decimal.
pub(crate) fn displayed(mg_dl: f64, unit: GlucoseUnit) -> f64 {
    match unit {
        GlucoseUnit::MgDl => mg_dl.round(),
        GlucoseUnit::MmolL => (unit.from_mg_dl(mg_dl) * 10.0).round() / 10.0,
    }
}

/// Builds a batch message `{"message_id": ..., "readings": [...]}` from readings of one device.
pub fn batch_json<'a>(
    message_id: Option<&str>,
    readings: impl IntoIterator<Item = &'a SimReading>,
) -> Value {
    let mut m = Map::with_capacity(2);
    if let Some(id) = message_id {
        m.insert("message_id".into(), json!(id));
    }
    m.insert(
        "readings".into(),
        Value::Array(readings.into_iter().map(SimReading::to_json).collect()),
    );
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_rounding() {
        assert_eq!(displayed(104.6, GlucoseUnit::MgDl), 105.0);
        assert_eq!(displayed(104.6, GlucoseUnit::MmolL), 5.8);
    }

    #[test]
    fn glucose_json_matches_the_protocol() {
        let at = DateTime::parse_from_rfc3339("2026-03-01T08:30:00+01:00").expect("valid");
        let r = SimReading::Glucose(GlucoseSample {
            device: 0,
            source: GlucoseSource::Cgm,
            measured_at: at,
            value: GlucoseValue::Number(5.8),
            unit: GlucoseUnit::MmolL,
            seq: 1842,
            true_mg_dl: 104.0,
        });
        assert_eq!(
            r.to_json(),
            json!({"type": "glucose", "value": 5.8, "unit": "mmol/L", "source": "cgm",
                   "measured_at": "2026-03-01T08:30:00+01:00", "id": 1842})
        );
        let lo = SimReading::Glucose(GlucoseSample {
            value: GlucoseValue::Lo,
            unit: GlucoseUnit::MgDl,
            ..match r {
                SimReading::Glucose(g) => g,
                SimReading::BloodPressure(_) | SimReading::Treatment(_) => unreachable!(),
            }
        });
        assert_eq!(lo.to_json()["value"], "LO");
    }
}

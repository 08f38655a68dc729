//! The ingest wire format (`docs/protocol.md`): a JSON message holding one reading, or a batch
//! `{"readings": [...]}`, decoded into validated [`Reading`]s and [`Rejection`]s.
//!
//! Decoding is two steps so that a message can be refused as a whole before its readings are
//! looked at: [`parse_message`] checks the envelope (size, JSON, shape, count), and
//! [`validate_readings`] checks each reading against the sending device's kind. One bad reading
//! in a batch refuses that reading only.

use crate::device::DeviceKind;
use crate::reading::{
    BloodPressureReading, Diastolic, GlucoseFlag, GlucoseMgDl, GlucoseReading, GlucoseSource,
    Pulse, Reading, Systolic,
};
use crate::rejection::{Rejection, RejectionReason};
use crate::treatment::{
    CarbGrams, DurationMinutes, InsulinDelivery, InsulinUnits, MAX_NOTE_CHARS, Treatment,
    TreatmentEvent,
};
use crate::units::GlucoseUnit;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};

mod json;
pub use json::{Json, Object};

/// Limits that protect the ingest from oversized or hostile messages.
#[derive(Debug, Clone)]
pub struct DecodeLimits {
    /// Largest payload accepted, in bytes.
    pub max_message_bytes: usize,
    /// Most readings accepted in one batch message.
    pub max_readings_per_message: usize,
    /// How far in the future a `measured_at` may lie (device clocks drift).
    pub max_future_skew: Duration,
    /// How far in the past a `measured_at` may lie when it arrives: meters keep months of
    /// readings, but a reading from before that is a reset clock or belongs in an import.
    pub max_age: Duration,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_message_bytes: 1024 * 1024,
            max_readings_per_message: 5000,
            max_future_skew: Duration::minutes(10),
            max_age: Duration::days(DEFAULT_MAX_AGE_DAYS),
        }
    }
}

/// The default of [`DecodeLimits::max_age`], in days.
pub const DEFAULT_MAX_AGE_DAYS: i64 = 366;

/// The longest `message_id` or reading `id` echoed back, so acks stay small.
const MAX_ID_CHARS: usize = 128;

/// Whether text from a device can be stored: JSON strings may hold the NUL character and
/// PostgreSQL's text cannot, so a batch holding one could never commit.
pub fn storable(text: &str) -> bool {
    !text.contains('\0')
}

/// A message whose envelope is sound; its readings are not validated yet.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedMessage<'a> {
    /// The device's own id for the message, echoed in the ack.
    pub message_id: Option<String>,
    /// The readings as sent, in message order, borrowing from the payload.
    pub readings: Vec<Json<'a>>,
}

/// A message refused as a whole, with whatever could still be read from it.
#[derive(Debug, Clone, PartialEq)]
pub struct RefusedMessage {
    pub message_id: Option<String>,
    pub rejection: Rejection,
}

/// Checks the envelope: size, JSON syntax, shape and reading count.
pub fn parse_message<'a>(
    payload: &'a [u8],
    limits: &DecodeLimits,
) -> Result<ParsedMessage<'a>, Box<RefusedMessage>> {
    let refuse = |reason, detail: String, message_id, covered| {
        Box::new(RefusedMessage {
            message_id,
            rejection: Rejection::message(reason, detail, covered),
        })
    };
    if payload.len() > limits.max_message_bytes {
        return Err(refuse(
            RejectionReason::MessageTooLarge,
            format!(
                "message is {} bytes; the limit is {} bytes (split the batch)",
                payload.len(),
                limits.max_message_bytes
            ),
            None,
            1,
        ));
    }
    let value: Json<'a> = serde_json::from_slice(payload).map_err(|e| {
        refuse(
            RejectionReason::MalformedJson,
            format!("payload is not valid JSON: {e}"),
            None,
            1,
        )
    })?;
    let Json::Object(mut object) = value else {
        return Err(refuse(
            RejectionReason::MalformedJson,
            "payload must be a JSON object: one reading, or {\"readings\": [...]}".into(),
            None,
            1,
        ));
    };
    let message_id = match object.remove("message_id") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) if s.chars().count() <= MAX_ID_CHARS && storable(&s) => {
            Some(s.into_owned())
        }
        Some(_) => {
            return Err(refuse(
                RejectionReason::MalformedJson,
                format!(
                    "message_id must be a string of at most {MAX_ID_CHARS} characters, \
                     without the NUL character"
                ),
                None,
                1,
            ));
        }
    };
    let readings = match object.remove("readings") {
        Some(Json::Array(readings)) => readings,
        Some(_) => {
            return Err(refuse(
                RejectionReason::MalformedJson,
                "\"readings\" must be an array of reading objects".into(),
                message_id,
                1,
            ));
        }
        None if object.contains_key("type") => vec![Json::Object(object)],
        None => {
            return Err(refuse(
                RejectionReason::MalformedJson,
                "payload is neither a reading (no \"type\") nor a batch (no \"readings\")".into(),
                message_id,
                1,
            ));
        }
    };
    if readings.is_empty() {
        return Err(refuse(
            RejectionReason::EmptyBatch,
            "\"readings\" is empty".into(),
            message_id,
            1,
        ));
    }
    if readings.len() > limits.max_readings_per_message {
        let count = readings.len();
        return Err(refuse(
            RejectionReason::TooManyReadings,
            format!(
                "batch holds {count} readings; the limit is {} per message",
                limits.max_readings_per_message
            ),
            message_id,
            count,
        ));
    }
    Ok(ParsedMessage {
        message_id,
        readings,
    })
}

/// A reading that passed validation, with its position in the message.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedReading {
    pub index: usize,
    pub reading: Reading,
}

/// Validates every reading of a parsed message for a device of `device_kind`, at time `now`.
pub fn validate_readings(
    message: &ParsedMessage<'_>,
    device_kind: DeviceKind,
    now: DateTime<Utc>,
    limits: &DecodeLimits,
) -> (Vec<IndexedReading>, Vec<Rejection>) {
    let mut accepted = Vec::with_capacity(message.readings.len());
    let mut rejected = Vec::new();
    for (index, raw) in message.readings.iter().enumerate() {
        match validate_reading(raw, device_kind, now, limits) {
            Ok(reading) => accepted.push(IndexedReading { index, reading }),
            Err(Invalid { reason, detail }) => rejected.push(Rejection {
                reason,
                detail,
                index: Some(index),
                device_reading_id: reading_id_of(raw),
                raw: Some(raw.to_string()),
                readings_covered: 1,
            }),
        }
    }
    (accepted, rejected)
}

/// Why one reading is invalid; turned into a [`Rejection`] by the caller, which knows its index.
#[derive(Debug)]
struct Invalid {
    reason: RejectionReason,
    detail: String,
}

fn invalid(reason: RejectionReason, detail: impl Into<String>) -> Invalid {
    Invalid {
        reason,
        detail: detail.into(),
    }
}

fn reading_id_of(raw: &Json<'_>) -> Option<String> {
    match raw.get("id")? {
        Json::String(s) => Some(s.chars().take(MAX_ID_CHARS).collect()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn validate_reading(
    raw: &Json<'_>,
    device_kind: DeviceKind,
    now: DateTime<Utc>,
    limits: &DecodeLimits,
) -> Result<Reading, Invalid> {
    let Json::Object(fields) = raw else {
        return Err(invalid(
            RejectionReason::MalformedJson,
            "a reading must be a JSON object",
        ));
    };
    let reading_type = required_str(fields, "type")?;
    // The type first: a record of a type Chronicle does not know is refused as such, whatever
    // else it lacks.
    let known = matches!(reading_type, "glucose" | "blood_pressure")
        || TREATMENT_TYPES.contains(&reading_type);
    if !known {
        return Err(invalid(
            RejectionReason::UnknownType,
            format!(
                "unknown reading type {reading_type:?}: expected \"glucose\", \"blood_pressure\" \
                 or a treatment ({})",
                TREATMENT_TYPES.join(", ")
            ),
        ));
    }
    let (measured_at, utc_offset_minutes) = measured_at(fields, now, limits)?;
    let device_reading_id = match fields.get("id") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) if s.chars().count() <= MAX_ID_CHARS && storable(s) => {
            Some(s.to_string())
        }
        Some(Json::Number(n)) => Some(n.to_string()),
        Some(_) => {
            return Err(invalid(
                RejectionReason::InvalidField,
                format!(
                    "\"id\" must be a string of at most {MAX_ID_CHARS} characters without the \
                     NUL character, or a number"
                ),
            ));
        }
    };
    match reading_type {
        "glucose" => glucose(
            fields,
            device_kind,
            measured_at,
            utc_offset_minutes,
            device_reading_id,
        )
        .map(Reading::Glucose),
        "blood_pressure" => blood_pressure(
            fields,
            device_kind,
            measured_at,
            utc_offset_minutes,
            device_reading_id,
        )
        .map(Reading::BloodPressure),
        other => treatment(
            fields,
            other,
            device_kind,
            measured_at,
            utc_offset_minutes,
            device_reading_id,
        )
        .map(Reading::Treatment),
    }
}

/// The `type`s of treatments on the wire (`docs/protocol.md`).
const TREATMENT_TYPES: [&str; 7] = [
    "insulin",
    "carbohydrates",
    "exercise",
    "note",
    "sensor_start",
    "sensor_change",
    "calibration",
];

/// A treatment of wire type `treatment_type` (one of [`TREATMENT_TYPES`]). Glucose devices
/// (and the apps and pumps that publish as one) send treatments; a cuff does not.
fn treatment(
    fields: &Object<'_>,
    treatment_type: &str,
    device_kind: DeviceKind,
    measured_at: DateTime<Utc>,
    utc_offset_minutes: i32,
    device_reading_id: Option<String>,
) -> Result<Treatment, Invalid> {
    if device_kind == DeviceKind::Bp {
        return Err(invalid(
            RejectionReason::WrongDeviceKind,
            format!("a blood-pressure device cannot send treatments ({treatment_type})"),
        ));
    }
    let note = match fields.get("note") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) if !storable(s) => {
            return Err(invalid(
                RejectionReason::InvalidField,
                "\"note\" must not contain the NUL character",
            ));
        }
        Some(Json::String(s)) if s.chars().count() <= MAX_NOTE_CHARS => Some(s.to_string()),
        Some(Json::String(_)) => {
            return Err(invalid(
                RejectionReason::OutOfRange,
                format!("\"note\" is longer than {MAX_NOTE_CHARS} characters"),
            ));
        }
        Some(_) => {
            return Err(invalid(
                RejectionReason::InvalidField,
                "\"note\" must be a string",
            ));
        }
    };
    let event = match treatment_type {
        "insulin" => {
            let delivery_text = required_str(fields, "delivery")?;
            let delivery = InsulinDelivery::parse(delivery_text).ok_or_else(|| {
                invalid(
                    RejectionReason::InvalidField,
                    format!("unknown insulin delivery {delivery_text:?}: expected bolus or basal"),
                )
            })?;
            let units = number(required(fields, "units")?, "units")?;
            let units = InsulinUnits::delivered(delivery, units).ok_or_else(|| {
                invalid(
                    RejectionReason::OutOfRange,
                    match delivery {
                        InsulinDelivery::Bolus => format!(
                            "insulin {units} U is not a dose: it must be above 0 and at most {} U",
                            InsulinUnits::MAX
                        ),
                        InsulinDelivery::Basal => format!(
                            "basal insulin {units} U must be at least 0 (a suspension) and at \
                             most {} U",
                            InsulinUnits::MAX
                        ),
                    },
                )
            })?;
            let duration = match fields.get("duration_minutes") {
                None | Some(Json::Null) => None,
                Some(value) => Some(duration_minutes(value)?),
            };
            TreatmentEvent::Insulin {
                delivery,
                units,
                duration,
            }
        }
        "carbohydrates" => {
            let grams = number(required(fields, "grams")?, "grams")?;
            TreatmentEvent::Carbohydrates(CarbGrams::new(grams).ok_or_else(|| {
                invalid(
                    RejectionReason::OutOfRange,
                    format!(
                        "carbohydrates {grams} g must be above 0 and at most {} g",
                        CarbGrams::MAX
                    ),
                )
            })?)
        }
        "exercise" => {
            TreatmentEvent::Exercise(duration_minutes(required(fields, "duration_minutes")?)?)
        }
        "note" if note.is_none() => {
            return Err(invalid(
                RejectionReason::MissingField,
                "\"note\" is required",
            ));
        }
        "note" => TreatmentEvent::Note,
        "sensor_start" => TreatmentEvent::SensorStart,
        "sensor_change" => TreatmentEvent::SensorChange,
        _ => {
            let (value, _, _, flag) = glucose_value(fields)?;
            if flag.is_some() {
                return Err(invalid(
                    RejectionReason::InvalidField,
                    "a calibration's \"value\" must be a number",
                ));
            }
            TreatmentEvent::Calibration(value)
        }
    };
    Ok(Treatment {
        measured_at,
        utc_offset_minutes,
        event,
        note,
        device_reading_id,
    })
}

fn number(value: &Json<'_>, name: &str) -> Result<f64, Invalid> {
    value.as_f64().ok_or_else(|| {
        invalid(
            RejectionReason::InvalidField,
            format!("\"{name}\" must be a number"),
        )
    })
}

fn duration_minutes(value: &Json<'_>) -> Result<DurationMinutes, Invalid> {
    let minutes = whole_number(value, "duration_minutes")?;
    bounded(
        minutes,
        "duration_minutes",
        DurationMinutes::MIN,
        DurationMinutes::MAX,
        DurationMinutes::new,
    )
}

fn required<'f, 'p>(fields: &'f Object<'p>, name: &str) -> Result<&'f Json<'p>, Invalid> {
    match fields.get(name) {
        None | Some(Json::Null) => Err(invalid(
            RejectionReason::MissingField,
            format!("\"{name}\" is required"),
        )),
        Some(value) => Ok(value),
    }
}

fn required_str<'f>(fields: &'f Object<'_>, name: &str) -> Result<&'f str, Invalid> {
    required(fields, name)?.as_str().ok_or_else(|| {
        invalid(
            RejectionReason::InvalidField,
            format!("\"{name}\" must be a string"),
        )
    })
}

fn measured_at(
    fields: &Object<'_>,
    now: DateTime<Utc>,
    limits: &DecodeLimits,
) -> Result<(DateTime<Utc>, i32), Invalid> {
    let text = required_str(fields, "measured_at")?;
    let stamped = DateTime::parse_from_rfc3339(text).map_err(|e| {
        invalid(
            RejectionReason::InvalidTimestamp,
            format!(
                "\"measured_at\" {text:?} is not RFC 3339 with a UTC offset \
                 (e.g. 2026-03-01T08:30:00+01:00): {e}"
            ),
        )
    })?;
    // PostgreSQL keeps microseconds; truncating here keeps the idempotency key identical to the
    // stored one, so a resent reading is always recognised as a duplicate.
    let utc = stamped
        .with_timezone(&Utc)
        .duration_trunc(Duration::microseconds(1))
        .map_err(|e| {
            invalid(
                RejectionReason::InvalidTimestamp,
                format!("\"measured_at\" {text:?}: {e}"),
            )
        })?;
    if utc > now + limits.max_future_skew {
        return Err(invalid(
            RejectionReason::FutureTimestamp,
            format!(
                "\"measured_at\" {text} is {} s in the future; at most {} s is allowed",
                (utc - now).num_seconds(),
                limits.max_future_skew.num_seconds()
            ),
        ));
    }
    if utc < now - limits.max_age {
        return Err(invalid(
            RejectionReason::StaleTimestamp,
            format!(
                "\"measured_at\" {text} is {} days old; readings older than {} days are not accepted",
                (now - utc).num_days(),
                limits.max_age.num_days()
            ),
        ));
    }
    Ok((utc, stamped.offset().local_minus_utc() / 60))
}

fn glucose(
    fields: &Object<'_>,
    device_kind: DeviceKind,
    measured_at: DateTime<Utc>,
    utc_offset_minutes: i32,
    device_reading_id: Option<String>,
) -> Result<GlucoseReading, Invalid> {
    let source = glucose_source(fields, device_kind)?;
    let (value, original_value, original_unit, flag) = glucose_value(fields)?;
    Ok(GlucoseReading {
        measured_at,
        utc_offset_minutes,
        value,
        original_value,
        original_unit,
        source,
        flag,
        device_reading_id,
    })
}

/// A glucose `value` in its `unit` (a reading's, or a calibration's): the normalized value,
/// the number as sent (`None` for "LO"/"HI"), the unit it was sent in, and the flag.
fn glucose_value(
    fields: &Object<'_>,
) -> Result<(GlucoseMgDl, Option<f64>, GlucoseUnit, Option<GlucoseFlag>), Invalid> {
    let original_unit: GlucoseUnit =
        required_str(fields, "unit")?
            .parse()
            .map_err(|e: crate::units::UnknownUnit| {
                invalid(RejectionReason::UnknownUnit, e.to_string())
            })?;
    let (mg_dl, original_value, flag) = match required(fields, "value")? {
        Json::Number(n) => {
            let v = n.as_f64().ok_or_else(|| {
                invalid(
                    RejectionReason::InvalidField,
                    "\"value\" is not a finite number",
                )
            })?;
            (original_unit.to_mg_dl(v), Some(v), None)
        }
        Json::String(s) => {
            let flag = match &**s {
                "LO" | "lo" => GlucoseFlag::Lo,
                "HI" | "hi" => GlucoseFlag::Hi,
                _ => {
                    return Err(invalid(
                        RejectionReason::InvalidField,
                        format!("\"value\" must be a number, \"LO\" or \"HI\", not {s:?}"),
                    ));
                }
            };
            (flag.limit_mg_dl(), None, Some(flag))
        }
        _ => {
            return Err(invalid(
                RejectionReason::InvalidField,
                "\"value\" must be a number, \"LO\" or \"HI\"",
            ));
        }
    };
    let value = GlucoseMgDl::new(mg_dl).ok_or_else(|| {
        invalid(
            RejectionReason::OutOfRange,
            format!(
                "glucose {} {original_unit} ({mg_dl:.1} mg/dL) is not a glucose reading: \
                 it must be above 0 and at most 1000 mg/dL (55.5 mmol/L)",
                original_value.unwrap_or(mg_dl)
            ),
        )
    })?;
    Ok((value, original_value, original_unit, flag))
}

/// The source defaults from the device kind; a stated source must agree with it (a meter may
/// also relay a laboratory value).
fn glucose_source(fields: &Object<'_>, device_kind: DeviceKind) -> Result<GlucoseSource, Invalid> {
    let default = match device_kind {
        DeviceKind::Cgm | DeviceKind::Uploader => GlucoseSource::Cgm,
        DeviceKind::Meter => GlucoseSource::Meter,
        DeviceKind::Bp => {
            return Err(invalid(
                RejectionReason::WrongDeviceKind,
                "a blood-pressure device cannot send glucose readings",
            ));
        }
    };
    let stated = match fields.get("source") {
        None | Some(Json::Null) => return Ok(default),
        Some(Json::String(s)) => GlucoseSource::parse(s).ok_or_else(|| {
            invalid(
                RejectionReason::InvalidField,
                format!("unknown glucose source {s:?}: expected cgm, meter or lab"),
            )
        })?,
        Some(_) => {
            return Err(invalid(
                RejectionReason::InvalidField,
                "\"source\" must be a string",
            ));
        }
    };
    // A meter may also relay a laboratory value; an uploader relays whatever the patient's
    // CGM and meter measured.
    let allowed = stated == default
        || (device_kind == DeviceKind::Meter && stated == GlucoseSource::Lab)
        || device_kind == DeviceKind::Uploader;
    if allowed {
        Ok(stated)
    } else {
        Err(invalid(
            RejectionReason::WrongDeviceKind,
            format!(
                "a {device_kind} device cannot send glucose with source {}",
                stated.as_str()
            ),
        ))
    }
}

fn blood_pressure(
    fields: &Object<'_>,
    device_kind: DeviceKind,
    measured_at: DateTime<Utc>,
    utc_offset_minutes: i32,
    device_reading_id: Option<String>,
) -> Result<BloodPressureReading, Invalid> {
    if device_kind != DeviceKind::Bp {
        return Err(invalid(
            RejectionReason::WrongDeviceKind,
            format!("a {device_kind} device cannot send blood-pressure readings"),
        ));
    }
    match fields.get("unit") {
        None | Some(Json::Null) => {}
        Some(Json::String(u)) if u == "mm[Hg]" || u.eq_ignore_ascii_case("mmHg") => {}
        Some(other) => {
            return Err(invalid(
                RejectionReason::UnknownUnit,
                format!("blood pressure unit must be \"mm[Hg]\" (or \"mmHg\"), not {other}"),
            ));
        }
    }
    let systolic_value = whole_number(required(fields, "systolic")?, "systolic")?;
    let diastolic_value = whole_number(required(fields, "diastolic")?, "diastolic")?;
    let systolic = bounded(
        systolic_value,
        "systolic",
        Systolic::MIN,
        Systolic::MAX,
        Systolic::new,
    )?;
    let diastolic = bounded(
        diastolic_value,
        "diastolic",
        Diastolic::MIN,
        Diastolic::MAX,
        Diastolic::new,
    )?;
    if diastolic.get() >= systolic.get() {
        return Err(invalid(
            RejectionReason::OutOfRange,
            format!("diastolic {diastolic} must be below systolic {systolic}"),
        ));
    }
    let pulse = match fields.get("pulse") {
        None | Some(Json::Null) => None,
        Some(value) => {
            let v = whole_number(value, "pulse")?;
            Some(bounded(v, "pulse", Pulse::MIN, Pulse::MAX, Pulse::new)?)
        }
    };
    Ok(BloodPressureReading {
        measured_at,
        utc_offset_minutes,
        systolic,
        diastolic,
        pulse,
        device_reading_id,
    })
}

fn whole_number(value: &Json<'_>, name: &str) -> Result<f64, Invalid> {
    value.as_f64().filter(|v| v.fract() == 0.0).ok_or_else(|| {
        invalid(
            RejectionReason::InvalidField,
            format!("\"{name}\" must be a whole number"),
        )
    })
}

fn bounded<T>(
    value: f64,
    name: &str,
    min: u16,
    max: u16,
    make: impl Fn(u16) -> Option<T>,
) -> Result<T, Invalid> {
    let out_of_range = || {
        invalid(
            RejectionReason::OutOfRange,
            format!("{name} {value} is outside the plausible range {min}-{max}"),
        )
    };
    if !(0.0..=f64::from(u16::MAX)).contains(&value) {
        return Err(out_of_range());
    }
    // The range check above makes the cast exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    make(value as u16).ok_or_else(out_of_range)
}

/// The answer to every message, published on the device's acks topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The message's `message_id`, when it had one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message_id: Option<String>,
    /// Readings written now.
    pub stored: usize,
    /// Readings already held (same device, kind and `measured_at`), not written again.
    pub duplicates: usize,
    /// Readings refused: one per refused reading, or the whole message's count when the
    /// message itself was refused.
    pub rejected: usize,
    /// Why each refused reading or message was refused.
    #[serde(default)]
    pub rejections: Vec<AckRejection>,
    /// The message reached the ingest again (the broker redelivered it, or the device resent
    /// it after a reconnection): an earlier delivery may have been stored just before a
    /// crash, and its readings then count here as duplicates although they were stored once,
    /// from this very message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redelivered: bool,
}

/// One refusal as reported to the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckRejection {
    /// Position in the batch; absent when the whole message was refused.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub index: Option<usize>,
    /// The reading's own `id`, when it had one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    /// A stable [`RejectionReason`] code.
    pub reason: String,
    pub detail: String,
}

impl From<&Rejection> for AckRejection {
    fn from(r: &Rejection) -> Self {
        AckRejection {
            index: r.index,
            id: r.device_reading_id.clone(),
            reason: r.reason.code().to_owned(),
            detail: r.detail.clone(),
        }
    }
}

#[cfg(test)]
mod tests;

//! Nightscout's upload shapes translated into Chronicle's wire records (`docs/protocol.md`), so
//! that a Nightscout front door submits what uploaders send to the same ingest as MQTT: the
//! same validation, units, deduplication and recorded refusals. One ingest path, two front
//! doors. This module only renames and reshapes; every value is judged by
//! [`crate::wire::validate_readings`].
//!
//! What Nightscout sends, as its uploaders (xDrip+, AndroidAPS, Loop, bridges) use it:
//! - an *entry* is `{"type": "sgv", "sgv": 120, "date": <ms since the epoch>, "dateString",
//!   "utcOffset", "direction", "device", ...}`; `"mbg"` carries `mbg` (a finger stick) and
//!   `"cal"` a sensor's calibration parameters (slope, intercept, scale), which are not a
//!   glucose value;
//! - a *treatment* is `{"eventType": "Meal Bolus", "insulin": 4.5, "carbs": 45,
//!   "created_at": "<ISO 8601>", "duration": <minutes>, "absolute": <U/h>, "notes", ...}`; one
//!   treatment may hold insulin and carbohydrates at once (a meal bolus), which Chronicle keeps
//!   as two records.
//!
//! Whatever cannot be translated becomes a record of a type Chronicle does not know, holding
//! the original under `"nightscout"`, so the ingest refuses it (`unknown_type`) and records it
//! like any refused reading: nothing an uploader sends is dropped silently.

use chrono::{DateTime, FixedOffset, Offset, Utc};
use serde_json::{Map, Value, json};

/// The entries of one upload as Chronicle wire records, in order.
pub fn entries_to_records(entries: &[Value]) -> Vec<Value> {
    entries.iter().map(entry_to_record).collect()
}

/// The treatments of one upload as Chronicle wire records, in order (a treatment may give
/// several).
pub fn treatments_to_records(treatments: &[Value]) -> Vec<Value> {
    treatments.iter().flat_map(treatment_to_records).collect()
}

/// Dexcom's status codes travel as `sgv` values below 13 (sensor not ready, no antenna, …):
/// they are not glucose concentrations.
const HIGHEST_STATUS_CODE: f64 = 12.0;

fn entry_to_record(entry: &Value) -> Value {
    let Value::Object(fields) = entry else {
        return untranslatable("entry", entry);
    };
    let kind = fields.get("type").and_then(Value::as_str).unwrap_or("sgv");
    let (value, source) = match kind {
        "sgv" => (fields.get("sgv"), "cgm"),
        "mbg" => (fields.get("mbg"), "meter"),
        _ => return untranslatable(&format!("entry of type {kind:?}"), entry),
    };
    if value
        .and_then(Value::as_f64)
        .is_some_and(|v| (0.0..=HIGHEST_STATUS_CODE).contains(&v))
    {
        return untranslatable("sensor status code", entry);
    }
    let mut record = json!({
        "type": "glucose",
        "unit": "mg/dL",
        "source": source,
    });
    put(&mut record, "value", value.cloned());
    put(&mut record, "measured_at", entry_time(fields));
    put(&mut record, "id", record_id(fields));
    record
}

fn treatment_to_records(treatment: &Value) -> Vec<Value> {
    let Value::Object(fields) = treatment else {
        return vec![untranslatable("treatment", treatment)];
    };
    let event_type = fields
        .get("eventType")
        .and_then(Value::as_str)
        .unwrap_or("");
    let at = treatment_time(fields);
    let id = record_id(fields);
    let notes = fields.get("notes").filter(|n| !n.is_null()).cloned();
    let positive = |name: &str| {
        fields
            .get(name)
            .filter(|v| v.as_f64().is_some_and(|v| v > 0.0))
    };
    let mut records: Vec<Value> = Vec::new();
    match event_type {
        "Temp Basal" => {
            // A temporary basal rate in U/h over `duration` minutes: Chronicle keeps what was
            // delivered over that time.
            let rate = fields
                .get("absolute")
                .or_else(|| fields.get("rate"))
                .and_then(Value::as_f64);
            let minutes = fields.get("duration").and_then(Value::as_f64);
            let mut record = json!({"type": "insulin", "delivery": "basal"});
            put(
                &mut record,
                "units",
                rate.zip(minutes).map(|(r, m)| json!(r * m / 60.0)),
            );
            put(
                &mut record,
                "duration_minutes",
                minutes.map(|m| json!(m.round())),
            );
            records.push(record);
        }
        "Exercise" => {
            let mut record = json!({"type": "exercise"});
            put(
                &mut record,
                "duration_minutes",
                fields.get("duration").cloned(),
            );
            records.push(record);
        }
        "Sensor Start" => records.push(json!({"type": "sensor_start"})),
        "Sensor Change" => records.push(json!({"type": "sensor_change"})),
        "BG Check" => {
            let mut record = json!({"type": "glucose", "source": "meter"});
            put(&mut record, "value", fields.get("glucose").cloned());
            // Without `units`, the site's units: a Chronicle site answers mg/dL.
            put(
                &mut record,
                "unit",
                Some(glucose_unit(fields).unwrap_or_else(|| json!("mg/dL"))),
            );
            records.push(record);
        }
        "Note" | "Announcement" | "Question" => {
            records.push(json!({"type": "note"}));
        }
        _ => {}
    }
    if let Some(units) = positive("insulin") {
        let mut record = json!({"type": "insulin", "delivery": "bolus", "units": units});
        put(
            &mut record,
            "duration_minutes",
            fields
                .get("duration")
                .filter(|d| d.as_f64().is_some_and(|d| d > 0.0))
                .cloned(),
        );
        records.push(record);
    }
    if let Some(grams) = positive("carbs") {
        records.push(json!({"type": "carbohydrates", "grams": grams}));
    }
    if records.is_empty() {
        return vec![untranslatable(
            &format!("treatment of eventType {event_type:?}"),
            treatment,
        )];
    }
    let several = records.len() > 1;
    for (index, record) in records.iter_mut().enumerate() {
        put(record, "measured_at", at.clone());
        put(record, "note", notes.clone());
        // Each record of one treatment keeps its own id, so its refusals name it.
        let own_id = id.as_ref().map(|id| match (several, id) {
            (true, Value::String(s)) => json!(format!("{s}#{index}")),
            _ => id.clone(),
        });
        put(record, "id", own_id);
    }
    records
}

/// A record Chronicle refuses as `unknown_type`, carrying what was sent.
fn untranslatable(what: &str, original: &Value) -> Value {
    json!({"type": format!("nightscout {what}"), "nightscout": original})
}

fn put(record: &mut Value, name: &str, value: Option<Value>) {
    if let (Value::Object(fields), Some(value)) = (record, value) {
        fields.insert(name.to_owned(), value);
    }
}

/// An entry's time: `date` (milliseconds since the epoch) shown in the uploader's `utcOffset`
/// (minutes) when it sent one, else `dateString` as sent.
fn entry_time(fields: &Map<String, Value>) -> Option<Value> {
    fields
        .get("date")
        .and_then(Value::as_i64)
        .and_then(|ms| epoch_millis(ms, fields.get("utcOffset")))
        .or_else(|| fields.get("dateString").cloned())
}

/// A treatment's time: `created_at` (or `timestamp`) as sent, else `date` / `mills`.
fn treatment_time(fields: &Map<String, Value>) -> Option<Value> {
    ["created_at", "timestamp"]
        .iter()
        .find_map(|name| fields.get(*name).filter(|v| v.is_string()).cloned())
        .or_else(|| {
            ["date", "mills", "timestamp"]
                .iter()
                .find_map(|name| fields.get(*name).and_then(Value::as_i64))
                .and_then(|ms| epoch_millis(ms, fields.get("utcOffset")))
        })
}

fn epoch_millis(ms: i64, utc_offset: Option<&Value>) -> Option<Value> {
    let utc = DateTime::<Utc>::from_timestamp_millis(ms)?;
    let offset_minutes = utc_offset.and_then(Value::as_i64).unwrap_or(0);
    let offset = i32::try_from(offset_minutes * 60)
        .ok()
        .and_then(FixedOffset::east_opt)
        .unwrap_or_else(|| Utc.fix());
    Some(json!(utc.with_timezone(&offset).to_rfc3339()))
}

/// Nightscout spells glucose units `mg/dl` and `mmol`; Chronicle's wire wants UCUM.
fn glucose_unit(fields: &Map<String, Value>) -> Option<Value> {
    let unit = fields.get("units").and_then(Value::as_str)?;
    Some(json!(if unit.to_ascii_lowercase().starts_with("mmol") {
        "mmol/L"
    } else if unit.eq_ignore_ascii_case("mg/dl") {
        "mg/dL"
    } else {
        unit
    }))
}

/// The uploader's own id for the record, echoed in refusals.
fn record_id(fields: &Map<String, Value>) -> Option<Value> {
    ["identifier", "_id", "uuid", "syncIdentifier", "NSCLIENT_ID"]
        .iter()
        .find_map(|name| {
            fields
                .get(*name)
                .filter(|v| v.is_string() || v.is_number())
                .cloned()
        })
}

#[cfg(test)]
#[path = "nightscout_tests.rs"]
mod tests;

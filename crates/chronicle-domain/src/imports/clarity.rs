//! Dexcom Clarity's CSV export.
//!
//! One header line, then one row per event, in columns `Index`, `Timestamp
//! (YYYY-MM-DDThh:mm:ss)`, `Event Type`, `Event Subtype`, `Patient Info`, `Device Info`,
//! `Source Device ID`, `Glucose Value (mg/dL)` (or `(mmol/L)`: the unit is the column's),
//! `Insulin Value (u)`, `Carb Value (grams)`, `Duration (hh:mm:ss)`, `Glucose Rate of Change
//! (…)`, `Transmitter Time (Long Integer)`, `Transmitter ID`. The first rows, without a
//! timestamp, describe the patient, the device and its alert settings (`FirstName`,
//! `LastName`, `DateOfBirth`, `Device`, `Alert`). Timestamps are the receiver's or app's local
//! display time, without an offset. Event types read:
//! - `EGV` (a sensor reading; `Low` and `High` are below and above the sensor's range),
//! - `Calibration` (a finger stick entered to calibrate: a calibration treatment),
//! - `Insulin` (`Fast-Acting` → bolus, `Long-Acting` → basal), `Carbs`, `Exercise` (its
//!   duration, the intensity as a note), `Health` (the subtype as a note).
//!
//! Other event types are refused as `not_imported`, with their line.

use super::{
    ImportError, ImportFormat, ImportOptions, ImportRow, ImportStream, LocalClock, Location,
    ParsedImport, RowRefusal, glucose_cell, number_cell, refused_row, row_object,
};
use chrono::NaiveDateTime;
use serde_json::{Value, json};

const TIMESTAMP: &str = "Timestamp (YYYY-MM-DDThh:mm:ss)";
const EVENT_TYPE: &str = "Event Type";
const EVENT_SUBTYPE: &str = "Event Subtype";
const GLUCOSE_MG_DL: &str = "Glucose Value (mg/dL)";
const GLUCOSE_MMOL_L: &str = "Glucose Value (mmol/L)";
const INSULIN: &str = "Insulin Value (u)";
const CARBS: &str = "Carb Value (grams)";
const DURATION: &str = "Duration (hh:mm:ss)";
const INDEX: &str = "Index";

/// Rows that describe the export rather than record an event.
const METADATA_EVENTS: [&str; 5] = ["FirstName", "LastName", "DateOfBirth", "Device", "Alert"];

struct Columns {
    index: usize,
    timestamp: usize,
    event_type: usize,
    event_subtype: Option<usize>,
    glucose: usize,
    unit: &'static str,
    insulin: Option<usize>,
    carbs: Option<usize>,
    duration: Option<usize>,
}

fn columns(headers: &csv::StringRecord) -> Result<Columns, ImportError> {
    let find = |name: &str| headers.iter().position(|h| h.trim() == name);
    let required = |name: &str| {
        find(name).ok_or_else(|| ImportError::WrongFormat {
            format: "Dexcom Clarity",
            detail: format!("the header has no column {name:?}"),
        })
    };
    let (glucose, unit) = match (find(GLUCOSE_MG_DL), find(GLUCOSE_MMOL_L)) {
        (Some(i), None) => (i, "mg/dL"),
        (None, Some(i)) => (i, "mmol/L"),
        _ => {
            return Err(ImportError::WrongFormat {
                format: "Dexcom Clarity",
                detail: format!(
                    "the header needs exactly one of {GLUCOSE_MG_DL:?} and {GLUCOSE_MMOL_L:?}"
                ),
            });
        }
    };
    Ok(Columns {
        index: required(INDEX)?,
        timestamp: required(TIMESTAMP)?,
        event_type: required(EVENT_TYPE)?,
        event_subtype: find(EVENT_SUBTYPE),
        glucose,
        unit,
        insulin: find(INSULIN),
        carbs: find(CARBS),
        duration: find(DURATION),
    })
}

pub(super) fn parse(text: &str, options: &ImportOptions) -> Result<ParsedImport, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| ImportError::WrongFormat {
            format: "Dexcom Clarity",
            detail: e.to_string(),
        })?
        .clone();
    let columns = columns(&headers)?;
    let mut clock = LocalClock::new(options.time_zone);
    let mut parsed = ParsedImport::default();
    for result in reader.records() {
        let record = match result {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                let location = Location::Line(line);
                let (record, refusal) = refused_row(
                    ImportFormat::DexcomClarity,
                    &location,
                    Value::Null,
                    "invalid_value",
                    format!("the row is not CSV: {e}"),
                );
                parsed.rows.push(ImportRow {
                    location,
                    stream: ImportStream::Cgm,
                    record,
                    refusal: Some(refusal),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let cell = |i: usize| record.get(i).unwrap_or("").trim();
        let event_type = cell(columns.event_type);
        let timestamp = cell(columns.timestamp);
        if timestamp.is_empty() && METADATA_EVENTS.contains(&event_type) {
            parsed.metadata_rows += 1;
            continue;
        }
        let location = Location::Line(line);
        let read = read_row(&columns, &record, &mut clock, event_type, timestamp);
        let (record_value, refusal) = match read {
            Ok(mut value) => {
                let index = cell(columns.index);
                if !index.is_empty() {
                    value["id"] = json!(format!("clarity:{index}"));
                }
                (value, None)
            }
            Err(refusal) => {
                let (value, refusal) = refused_row(
                    ImportFormat::DexcomClarity,
                    &location,
                    row_object(&headers, &record),
                    &refusal.reason,
                    refusal.detail,
                );
                (value, Some(refusal))
            }
        };
        parsed.rows.push(ImportRow {
            location,
            stream: ImportStream::Cgm,
            record: record_value,
            refusal,
        });
    }
    Ok(parsed)
}

fn read_row(
    columns: &Columns,
    record: &csv::StringRecord,
    clock: &mut LocalClock,
    event_type: &str,
    timestamp: &str,
) -> Result<Value, RowRefusal> {
    let cell = |i: usize| record.get(i).unwrap_or("").trim();
    let optional = |i: Option<usize>| i.map_or("", cell);
    let subtype = optional(columns.event_subtype);
    let known = matches!(
        event_type,
        "EGV" | "Calibration" | "Insulin" | "Carbs" | "Exercise" | "Health"
    );
    if !known {
        return Err(RowRefusal {
            reason: "not_imported".into(),
            detail: format!("Chronicle does not import Clarity's {event_type:?} events"),
        });
    }
    let measured_at = clock.resolve(local_time(timestamp)?)?;
    let mut value = match event_type {
        "EGV" => json!({
            "type": "glucose",
            "source": "cgm",
            "unit": columns.unit,
            "value": glucose_cell(cell(columns.glucose))?,
        }),
        "Calibration" => json!({
            "type": "calibration",
            "unit": columns.unit,
            "value": number_cell(cell(columns.glucose), "calibration value")?,
        }),
        "Insulin" => {
            let delivery = match subtype {
                "Fast-Acting" => "bolus",
                "Long-Acting" => "basal",
                other => {
                    return Err(RowRefusal {
                        reason: "invalid_value".into(),
                        detail: format!(
                            "insulin of subtype {other:?}: expected Fast-Acting or Long-Acting"
                        ),
                    });
                }
            };
            json!({
                "type": "insulin",
                "delivery": delivery,
                "units": number_cell(optional(columns.insulin), "insulin value")?,
            })
        }
        "Carbs" => json!({
            "type": "carbohydrates",
            "grams": number_cell(optional(columns.carbs), "carb value")?,
        }),
        "Exercise" => {
            let mut exercise = json!({
                "type": "exercise",
                "duration_minutes": duration_minutes(optional(columns.duration))?,
            });
            if !subtype.is_empty() {
                exercise["note"] = json!(format!("{subtype} exercise"));
            }
            exercise
        }
        _ => {
            if subtype.is_empty() {
                return Err(RowRefusal {
                    reason: "missing_value".into(),
                    detail: "a Health event without a subtype says nothing".into(),
                });
            }
            json!({"type": "note", "note": subtype})
        }
    };
    value["measured_at"] = json!(measured_at);
    Ok(value)
}

/// Clarity writes `2026-03-01T08:30:00`; the same file saved by a spreadsheet has
/// `2026-03-01 08:30:00` or drops the seconds.
fn local_time(text: &str) -> Result<NaiveDateTime, RowRefusal> {
    [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .ok_or_else(|| RowRefusal {
        reason: "invalid_timestamp".into(),
        detail: if text.is_empty() {
            "the timestamp is empty".into()
        } else {
            format!("the timestamp {text:?} is not YYYY-MM-DDThh:mm:ss")
        },
    })
}

/// `hh:mm:ss` in whole minutes (at least one).
fn duration_minutes(text: &str) -> Result<i64, RowRefusal> {
    let parts: Option<Vec<i64>> = text.split(':').map(|p| p.trim().parse().ok()).collect();
    match parts.as_deref() {
        Some([h, m, s]) if *h >= 0 && (0..60).contains(m) && (0..60).contains(s) => {
            Ok((h * 60 + m + i64::from(*s >= 30)).max(1))
        }
        _ if text.is_empty() => Err(RowRefusal {
            reason: "missing_value".into(),
            detail: "the exercise has no duration".into(),
        }),
        _ => Err(RowRefusal {
            reason: "invalid_value".into(),
            detail: format!("the duration {text:?} is not hh:mm:ss"),
        }),
    }
}

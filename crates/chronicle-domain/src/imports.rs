//! Vendor exports read into Chronicle's wire records (`docs/protocol.md`), row by row, so the
//! import API can preview them and then hand them to the same ingest as MQTT (validation,
//! units, deduplication and recorded refusals stay in [`crate::wire`]). See `docs/interop.md`.
//!
//! - [`clarity`]: a Dexcom Clarity CSV export;
//! - [`libreview`]: a LibreView CSV export ("Download Glucose Data");
//! - [`nightscout_export`]: a Nightscout JSON export (its entries array, or an object of
//!   `entries` and `treatments`), translated by [`crate::nightscout`].
//!
//! Every data row becomes one or more [`ImportRow`]s that keep their place in the file. A row
//! this module cannot read (a bad time, a value that is not a number, an event type Chronicle
//! does not hold) still becomes a record, of a type the ingest refuses (`unknown_type`), with
//! the row and the reason inside: the refusal is recorded like any other and nothing read is
//! dropped silently. Header and metadata rows (a Clarity export's name, birth date and alert
//! settings) are not readings and are only counted.
//!
//! Times: the CSV exports stamp local wall-clock times without an offset. They are read in the
//! zone given ([`ImportOptions::time_zone`], the patient's unless the uploader states one). A
//! time that does not exist in the zone (the hour skipped when clocks go forward) is refused;
//! a time that exists twice (the hour repeated when clocks go back) is the earlier instant
//! unless an earlier row of the file already lies after it, so a file in time order reads the
//! repeated hour's two passes correctly.

pub mod clarity;
pub mod libreview;
pub mod nightscout_export;

use crate::device::DeviceKind;
use crate::reading::Reading;
use crate::wire::{self, DecodeLimits, Json, ParsedMessage};
use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

string_enum!(
    /// The export formats Chronicle imports.
    ImportFormat {
        /// Dexcom Clarity's CSV export.
        DexcomClarity => "dexcom_clarity",
        /// LibreView's CSV export (FreeStyle Libre readers and apps).
        Libreview => "libreview",
        /// A Nightscout site's entries (and treatments) as JSON.
        Nightscout => "nightscout",
    }
);

string_enum!(
    /// The order of day, month and year in a CSV export's dates (LibreView writes the date
    /// in the format of the account's locale).
    DateOrder {
        MonthDayYear => "mdy",
        DayMonthYear => "dmy",
        YearMonthDay => "ymd",
    }
);

/// How to read an export.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The zone the export's local times are in.
    pub time_zone: Tz,
    /// The order of a date's fields, when the uploader states it; otherwise it is read from
    /// the file and a file that leaves it open is refused.
    pub date_order: Option<DateOrder>,
}

/// Which import device of the patient a record goes to: the device's kind decides what the
/// ingest accepts, and a finger-stick reading is a meter's, not the sensor's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportStream {
    /// Sensor readings and treatments.
    Cgm,
    /// Finger-stick readings.
    Meter,
}

impl ImportStream {
    pub const ALL: [ImportStream; 2] = [ImportStream::Cgm, ImportStream::Meter];

    pub fn device_kind(self) -> DeviceKind {
        match self {
            ImportStream::Cgm => DeviceKind::Cgm,
            ImportStream::Meter => DeviceKind::Meter,
        }
    }
}

/// Where a row is in the uploaded file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// A CSV line, counted from 1 as an editor does.
    Line(u64),
    /// An element of a JSON export's array (`entries` or `treatments`), counted from 0.
    Entry { list: String, index: usize },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Line(line) => write!(f, "line {line}"),
            Location::Entry { list, index } => write!(f, "{list}[{index}]"),
        }
    }
}

/// Why this module could not read a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowRefusal {
    /// A stable code: `invalid_timestamp`, `nonexistent_local_time`, `missing_value`,
    /// `invalid_value`, `not_imported`.
    pub reason: String,
    pub detail: String,
}

/// One record read from the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRow {
    pub location: Location,
    pub stream: ImportStream,
    /// A wire record: a reading or treatment, or for a refused row the record the ingest
    /// refuses and records.
    pub record: Value,
    /// Set when this module could not read the row.
    pub refusal: Option<RowRefusal>,
}

/// An export read into records.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedImport {
    pub rows: Vec<ImportRow>,
    /// Header and metadata rows that hold no reading (Clarity's name, device, alert rows).
    pub metadata_rows: usize,
}

/// The file as a whole cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("the file is not UTF-8 text")]
    NotText,
    #[error("not a {format} export: {detail}")]
    WrongFormat {
        format: &'static str,
        detail: String,
    },
    #[error(
        "the dates leave the order of day and month open (no day above 12): state date_order \
         (mdy or dmy)"
    )]
    AmbiguousDateOrder,
    #[error("the dates mix day-first and month-first: {0}")]
    InconsistentDates(String),
}

/// Reads an export.
pub fn parse_import(
    format: ImportFormat,
    bytes: &[u8],
    options: &ImportOptions,
) -> Result<ParsedImport, ImportError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ImportError::NotText)?;
    // Exports saved by spreadsheet programs on Windows often begin with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        ImportFormat::DexcomClarity => clarity::parse(text, options),
        ImportFormat::Libreview => libreview::parse(text, options),
        ImportFormat::Nightscout => nightscout_export::parse(text),
    }
}

/// How far back an import may reach: CGM exports hold years of history, older than the live
/// ingest's `max_age` accepts. Before this is not a sensor's reading but a broken clock.
pub const IMPORT_MAX_AGE_DAYS: i64 = 30 * 366;

/// The ingest's limits for a patient's import device: those of the live ingest, reaching back
/// [`IMPORT_MAX_AGE_DAYS`].
pub fn import_limits(limits: &DecodeLimits) -> DecodeLimits {
    DecodeLimits {
        max_age: Duration::days(IMPORT_MAX_AGE_DAYS).max(limits.max_age),
        ..limits.clone()
    }
}

/// What the ingest will make of one row, judged now as it judges a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    Accepted(Reading),
    Refused { reason: String, detail: String },
}

/// Validates every row as the ingest will (same function, same limits), so a preview tells
/// what a commit stores and refuses.
pub fn check_rows(
    parsed: &ParsedImport,
    now: DateTime<Utc>,
    limits: &DecodeLimits,
) -> Vec<Checked> {
    let limits = import_limits(limits);
    parsed
        .rows
        .iter()
        .map(|row| {
            if let Some(refusal) = &row.refusal {
                return Checked::Refused {
                    reason: refusal.reason.clone(),
                    detail: refusal.detail.clone(),
                };
            }
            let message = ParsedMessage {
                message_id: None,
                readings: vec![Json::from(&row.record)],
            };
            let (mut accepted, mut rejected) =
                wire::validate_readings(&message, row.stream.device_kind(), now, &limits);
            match (accepted.pop(), rejected.pop()) {
                (Some(indexed), _) => Checked::Accepted(indexed.reading),
                (None, Some(rejection)) => Checked::Refused {
                    reason: rejection.reason.code().to_owned(),
                    detail: rejection.detail,
                },
                (None, None) => Checked::Refused {
                    reason: "invalid_field".into(),
                    detail: "the record could not be validated".into(),
                },
            }
        })
        .collect()
}

/// The record of a row this module could not read: a type the ingest does not know, so it is
/// refused and recorded with the row as it was in the file.
pub(crate) fn refused_row(
    format: ImportFormat,
    location: &Location,
    row: Value,
    reason: &str,
    detail: String,
) -> (Value, RowRefusal) {
    let record = json!({
        "type": format!("{}_row", format.as_str()),
        "location": location.to_string(),
        "reason": reason,
        "detail": detail,
        "row": row,
    });
    (
        record,
        RowRefusal {
            reason: reason.to_owned(),
            detail,
        },
    )
}

/// A CSV row as a JSON object of its header's names, for refused rows.
pub(crate) fn row_object(headers: &csv::StringRecord, record: &csv::StringRecord) -> Value {
    let mut object = Map::new();
    for (name, value) in headers.iter().zip(record.iter()) {
        if !value.is_empty() {
            object.insert(name.to_owned(), Value::String(value.to_owned()));
        }
    }
    Value::Object(object)
}

/// Local wall-clock times of one file made instants in its zone (see the module's notes on
/// skipped and repeated hours).
pub(crate) struct LocalClock {
    zone: Tz,
    latest: Option<DateTime<Utc>>,
}

impl LocalClock {
    pub(crate) fn new(zone: Tz) -> Self {
        LocalClock { zone, latest: None }
    }

    /// The instant as RFC 3339 with the zone's offset at that instant, or why there is none.
    pub(crate) fn resolve(&mut self, local: NaiveDateTime) -> Result<String, RowRefusal> {
        let instant = match self.zone.from_local_datetime(&local) {
            LocalResult::Single(t) => t,
            LocalResult::Ambiguous(earlier, later) => {
                let after_earlier = self
                    .latest
                    .is_some_and(|latest| latest > earlier.with_timezone(&Utc));
                if after_earlier { later } else { earlier }
            }
            LocalResult::None => {
                return Err(RowRefusal {
                    reason: "nonexistent_local_time".into(),
                    detail: format!(
                        "{local} does not exist in {}: the clocks were put forward over it",
                        self.zone.name()
                    ),
                });
            }
        };
        let utc = instant.with_timezone(&Utc);
        self.latest = Some(self.latest.map_or(utc, |latest| latest.max(utc)));
        Ok(instant
            .fixed_offset()
            .to_rfc3339_opts(SecondsFormat::AutoSi, false))
    }
}

/// A glucose cell: a number (a decimal comma is read as a point) or a vendor's word for
/// below or above the sensor's range.
pub(crate) fn glucose_cell(text: &str) -> Result<Value, RowRefusal> {
    let text = text.trim();
    match text.to_ascii_lowercase().as_str() {
        "" => Err(RowRefusal {
            reason: "missing_value".into(),
            detail: "the glucose value is empty".into(),
        }),
        "low" | "lo" => Ok(json!("LO")),
        "high" | "hi" => Ok(json!("HI")),
        _ => number_cell(text, "glucose value").map(|v| json!(v)),
    }
}

/// A number cell (a decimal comma is read as a point).
pub(crate) fn number_cell(text: &str, what: &str) -> Result<f64, RowRefusal> {
    let text = text.trim();
    if text.is_empty() {
        return Err(RowRefusal {
            reason: "missing_value".into(),
            detail: format!("the {what} is empty"),
        });
    }
    text.replace(',', ".")
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| RowRefusal {
            reason: "invalid_value".into(),
            detail: format!("the {what} {text:?} is not a number"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn local(d: u32, h: u32, m: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 10, d)
            .and_then(|d| d.and_hms_opt(h, m, 0))
            .unwrap_or_default()
    }

    #[test]
    fn repeated_hour_read_in_file_order() {
        let mut clock = LocalClock::new(Tz::Europe__Berlin);
        // 25 October 2026: 03:00 CEST becomes 02:00 CET.
        assert_eq!(
            clock.resolve(local(25, 2, 30)).ok().as_deref(),
            Some("2026-10-25T02:30:00+02:00")
        );
        assert_eq!(
            clock.resolve(local(25, 2, 0)).ok().as_deref(),
            Some("2026-10-25T02:00:00+01:00")
        );
        assert_eq!(
            clock.resolve(local(25, 2, 30)).ok().as_deref(),
            Some("2026-10-25T02:30:00+01:00")
        );
    }

    #[test]
    fn skipped_hour_refused() {
        let mut clock = LocalClock::new(Tz::Europe__Berlin);
        let gap = NaiveDate::from_ymd_opt(2026, 3, 29)
            .and_then(|d| d.and_hms_opt(2, 30, 0))
            .unwrap_or_default();
        let refusal = clock.resolve(gap).err();
        assert_eq!(
            refusal.map(|r| r.reason),
            Some("nonexistent_local_time".to_owned())
        );
    }

    #[test]
    fn glucose_cells() {
        assert_eq!(glucose_cell("Low").ok(), Some(json!("LO")));
        assert_eq!(glucose_cell("High").ok(), Some(json!("HI")));
        assert_eq!(glucose_cell("5,6").ok(), Some(json!(5.6)));
        assert_eq!(
            glucose_cell("abc").err().map(|r| r.reason),
            Some("invalid_value".to_owned())
        );
    }
}

//! A Nightscout site's data as JSON: the array `GET /api/v1/entries.json` answers, or an
//! object `{"entries": [...], "treatments": [...]}` (treatments optional). Each element is
//! translated by [`crate::nightscout`], as the Nightscout front door translates uploads, so
//! both paths read Nightscout alike. Its times are absolute (milliseconds since the epoch, or
//! ISO 8601 with an offset): no zone is needed. Finger sticks (`mbg`, `BG Check`) go to the
//! patient's meter import device, everything else to the sensor's.

use super::{ImportError, ImportRow, ImportStream, Location, ParsedImport};
use crate::nightscout;
use serde_json::Value;

pub(super) fn parse(text: &str) -> Result<ParsedImport, ImportError> {
    let wrong = |detail: String| ImportError::WrongFormat {
        format: "Nightscout",
        detail,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| wrong(format!("not JSON: {e}")))?;
    let (entries, treatments) = match value {
        Value::Array(entries) => (entries, Vec::new()),
        Value::Object(mut object) => {
            let mut list = |name: &str| match object.remove(name) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => Ok(items),
                Some(_) => Err(wrong(format!("\"{name}\" is not an array"))),
            };
            let entries = list("entries")?;
            let treatments = list("treatments")?;
            if entries.is_empty() && treatments.is_empty() {
                return Err(wrong(
                    "neither \"entries\" nor \"treatments\" holds anything".into(),
                ));
            }
            (entries, treatments)
        }
        _ => {
            return Err(wrong(
                "expected an array of entries or {\"entries\": [...], \"treatments\": [...]}"
                    .into(),
            ));
        }
    };
    let mut parsed = ParsedImport::default();
    let lists = [("entries", entries), ("treatments", treatments)];
    for (list, items) in lists {
        for (index, item) in items.iter().enumerate() {
            let records = if list == "entries" {
                nightscout::entries_to_records(std::slice::from_ref(item))
            } else {
                nightscout::treatments_to_records(std::slice::from_ref(item))
            };
            parsed.rows.extend(records.into_iter().map(|record| {
                let finger_stick = record.get("type").and_then(Value::as_str) == Some("glucose")
                    && record.get("source").and_then(Value::as_str) == Some("meter");
                ImportRow {
                    location: Location::Entry {
                        list: list.to_owned(),
                        index,
                    },
                    stream: if finger_stick {
                        ImportStream::Meter
                    } else {
                        ImportStream::Cgm
                    },
                    record,
                    refusal: None,
                }
            }));
        }
    }
    Ok(parsed)
}

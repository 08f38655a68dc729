//! Bulk loading with `COPY … FROM STDIN`, the fastest way PostgreSQL takes rows in.
//!
//! The ingest does not use it: COPY cannot skip duplicates (`ON CONFLICT`) or report which rows
//! were new, both of which the ingest needs for its acks. It exists so `chronicle bench ingest`
//! can measure, on the same machine and the same table, the ceiling the ingest's
//! `INSERT … SELECT FROM UNNEST … ON CONFLICT DO NOTHING RETURNING` is compared with.

use crate::readings::{ReadingRow, codes};
use crate::{StorageError, Store};
use chronicle_domain::Reading;
use chrono::SecondsFormat;
use sqlx::postgres::PgPoolCopyExt;
use std::fmt::Write as _;

/// The columns written, in the order of [`GlucoseCopy`]'s lines: every column the ingest
/// writes, so both do the same work per row (`received_at` takes its default in both).
const GLUCOSE_COPY: &str = "COPY glucose_samples (device_key, utc_offset_minutes, codes, \
     measured_at, value_milli_mg_dl, received_after_s, original_value, device_reading_id) \
     FROM STDIN";

/// Glucose rows encoded in COPY's text format, ready to send. Encoding is separate from
/// [`Store::copy_glucose`] so a benchmark can time the database alone.
#[derive(Debug, Clone, Default)]
pub struct GlucoseCopy {
    data: Vec<u8>,
    rows: u64,
}

impl GlucoseCopy {
    /// Encodes the glucose readings of `rows`; rows of other kinds are left out.
    pub fn encode(rows: &[ReadingRow<'_>]) -> GlucoseCopy {
        let mut text = String::with_capacity(rows.len() * 128);
        let mut count = 0;
        for row in rows {
            let Reading::Glucose(g) = row.reading else {
                continue;
            };
            count += 1;
            // `write!` into a String cannot fail.
            let _ = write!(
                text,
                "{}\t{}\t{}\t{}\t{}\t0\t",
                row.device_key,
                g.utc_offset_minutes.clamp(-1080, 1080),
                codes::of(g),
                g.measured_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                codes::milli(g.value.get()),
            );
            match codes::original_value(g) {
                Some(v) => {
                    let _ = write!(text, "{v}\t");
                }
                None => text.push_str("\\N\t"),
            }
            let _ = writeln!(
                text,
                "{}",
                g.device_reading_id.as_deref().map_or("\\N".into(), escape),
            );
        }
        GlucoseCopy {
            data: text.into_bytes(),
            rows: count,
        }
    }

    /// How many rows the data holds.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Size of the encoded data in bytes.
    pub fn len_bytes(&self) -> usize {
        self.data.len()
    }
}

/// Escapes a text value for COPY's text format (backslash, tab, newline, carriage return).
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '\t', '\n', '\r']) {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

impl Store {
    /// Loads the rows with one `COPY` statement, i.e. one transaction, and returns how many
    /// rows PostgreSQL reports written. There is no conflict handling: a key that already
    /// exists fails the whole statement and nothing is written.
    pub async fn copy_glucose(&self, copy: &GlucoseCopy) -> Result<u64, StorageError> {
        let mut stream = self.pool().copy_in_raw(GLUCOSE_COPY).await?;
        if let Err(e) = stream.send(copy.data.as_slice()).await {
            // Leaves the pooled connection usable; the send error is the one worth reporting.
            let _ = stream.abort("sending the data failed").await;
            return Err(e.into());
        }
        Ok(stream.finish().await?)
    }

    /// Glucose rows held for these devices: lets a benchmark check that what was
    /// acknowledged is really in the table.
    pub async fn count_glucose_readings(&self, device_ids: &[&str]) -> Result<i64, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM glucose_readings WHERE device_id = ANY($1)")
                .bind(device_ids)
                .fetch_one(self.pool())
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronicle_domain::reading::{GlucoseFlag, GlucoseMgDl, GlucoseReading, GlucoseSource};
    use chronicle_domain::units::GlucoseUnit;
    use chrono::{TimeZone, Utc};
    use uuid::Uuid;

    #[test]
    fn encodes_text_format_lines() {
        let measured_at = Utc
            .with_ymd_and_hms(2026, 3, 1, 8, 30, 0)
            .single()
            .expect("valid time");
        let reading = Reading::Glucose(GlucoseReading {
            measured_at,
            utc_offset_minutes: 60,
            value: GlucoseMgDl::new(100.0).expect("valid value"),
            original_value: None,
            original_unit: GlucoseUnit::MgDl,
            source: GlucoseSource::Cgm,
            flag: Some(GlucoseFlag::Lo),
            device_reading_id: Some("a\tb\\c".to_owned()),
        });
        let patient_id = Uuid::nil();
        let rows = [ReadingRow {
            device_key: 7,
            patient_id,
            reading: &reading,
        }];
        let copy = GlucoseCopy::encode(&rows);
        assert_eq!(copy.rows(), 1);
        let text = String::from_utf8(copy.data).expect("utf-8");
        assert_eq!(
            text,
            "7\t60\t8\t2026-03-01T08:30:00.000000Z\t100000\t0\t\\N\ta\\tb\\\\c\n"
        );
    }
}

//! Bulk loading with `COPY … FROM STDIN` in PostgreSQL's binary format, the cheapest way
//! PostgreSQL takes rows in.
//!
//! The ingest's batch statement for new readings sends a large batch's glucose readings this
//! way, in the same transaction as the rest of the batch (`crate::readings`). COPY cannot skip
//! a reading already stored: such a batch fails with a unique violation and is written again by
//! the statement that skips duplicates. `chronicle bench ingest` loads the same encoding
//! through [`Store::copy_glucose`] for its raw COPY ceiling.

use crate::readings::{ReadingRow, codes, offset_i16};
use crate::{StorageError, Store};
use chronicle_domain::Reading;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use std::sync::Arc;

/// The columns written, in the order of [`GlucoseCopy`]'s fields: every column of the table,
/// so the ingest and the benchmark do the same work per row.
pub(crate) const GLUCOSE_COPY: &str = "COPY glucose_samples (device_key, utc_offset_minutes, \
     codes, measured_at, value_milli_mg_dl, received_after_s, original_value, \
     device_reading_id) FROM STDIN (FORMAT binary)";

/// The binary format's signature, flags and header extension length.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Fields in each row of [`GLUCOSE_COPY`].
const GLUCOSE_FIELDS: i16 = 8;
/// The field count that ends the data.
const TRAILER: i16 = -1;

/// Glucose rows encoded in COPY's binary format, ready to send. Encoding is separate from
/// sending so a benchmark can time the database alone.
#[derive(Debug, Clone, Default)]
pub struct GlucoseCopy {
    data: Vec<u8>,
    rows: u64,
}

impl GlucoseCopy {
    /// Encodes the glucose readings of `rows`, received at `received_at`; rows of other kinds
    /// are left out.
    pub fn encode(rows: &[ReadingRow<'_>], received_at: DateTime<Utc>) -> GlucoseCopy {
        let mut data = Vec::with_capacity(HEADER.len() + rows.len() * 80 + 2);
        data.extend_from_slice(HEADER);
        let mut count = 0;
        for row in rows {
            let Reading::Glucose(g) = row.reading else {
                continue;
            };
            count += 1;
            data.extend_from_slice(&GLUCOSE_FIELDS.to_be_bytes());
            field(&mut data, &row.device_key.to_be_bytes());
            field(&mut data, &offset_i16(g.utc_offset_minutes).to_be_bytes());
            field(&mut data, &codes::of(g).to_be_bytes());
            field(&mut data, &timestamptz(g.measured_at).to_be_bytes());
            field(&mut data, &codes::milli(g.value.get()).to_be_bytes());
            field(
                &mut data,
                &codes::received_after_seconds(g.measured_at, received_at).to_be_bytes(),
            );
            match codes::original_value(g) {
                Some(value) => field(&mut data, &value.to_be_bytes()),
                None => null(&mut data),
            }
            match g.device_reading_id.as_deref() {
                Some(id) => field(&mut data, id.as_bytes()),
                None => null(&mut data),
            }
        }
        data.extend_from_slice(&TRAILER.to_be_bytes());
        GlucoseCopy { data, rows: count }
    }

    /// How many rows the data holds.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Size of the encoded data in bytes.
    pub fn len_bytes(&self) -> usize {
        self.data.len()
    }

    /// Sends the rows on `connection` (in its transaction, if it has one) and returns how
    /// many PostgreSQL wrote. A key already stored fails the whole COPY.
    pub(crate) async fn send(&self, connection: &mut PgConnection) -> Result<u64, sqlx::Error> {
        let mut stream = connection.copy_in_raw(GLUCOSE_COPY).await?;
        if let Err(e) = stream.send(self.data.as_slice()).await {
            // Leaves the connection usable; the send error is the one worth reporting.
            let _ = stream.abort("sending the data failed").await;
            return Err(e);
        }
        stream.finish().await
    }
}

/// A field of `bytes.len()` bytes.
fn field(data: &mut Vec<u8>, bytes: &[u8]) {
    // Every field written is a fixed-width value or a validated reading id (at most a few
    // hundred bytes), far below the format's 2 GiB.
    let length = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
    data.extend_from_slice(&length.to_be_bytes());
    data.extend_from_slice(bytes);
}

/// A NULL field.
fn null(data: &mut Vec<u8>) {
    data.extend_from_slice(&(-1i32).to_be_bytes());
}

/// 2000-01-01 00:00 UTC in microseconds since the Unix epoch: PostgreSQL's epoch.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A `timestamptz` as the binary format has it: microseconds since PostgreSQL's epoch.
fn timestamptz(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros() - POSTGRES_EPOCH_MICROS
}

impl Store {
    /// Loads the rows with one `COPY` statement, i.e. one transaction, and returns how many
    /// rows PostgreSQL reports written. There is no conflict handling: a key that already
    /// exists fails the whole statement and nothing is written.
    pub async fn copy_glucose(&self, copy: &GlucoseCopy) -> Result<u64, StorageError> {
        let mut connection = self.pool().acquire().await?;
        Ok(copy.send(&mut connection).await?)
    }

    /// A transaction holding `copy`'s rows, not yet committed. It begins and the rows are
    /// sent in a task of their own, so a caller cancelled meanwhile leaves no connection in the
    /// middle of a COPY (sqlx's COPY must be finished or aborted, or the connection fails its
    /// next statement): the task ends the COPY, and the transaction nobody takes rolls back.
    pub(crate) async fn begin_with_glucose(
        &self,
        copy: Arc<GlucoseCopy>,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StorageError> {
        let store = self.clone();
        let begun = tokio::spawn(async move {
            let mut transaction = store.begin().await?;
            copy.send(&mut transaction).await?;
            Ok(transaction)
        });
        match begun.await {
            Ok(begun) => begun,
            Err(_) => Err(StorageError::Database(sqlx::Error::WorkerCrashed)),
        }
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
    fn encodes_binary_format_rows() {
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
            device_reading_id: Some("a\tb".to_owned()),
        });
        let rows = [ReadingRow {
            device_key: 7,
            patient_id: Uuid::nil(),
            reading: &reading,
        }];
        let copy = GlucoseCopy::encode(&rows, measured_at + chrono::Duration::milliseconds(2500));
        assert_eq!(copy.rows(), 1);
        let mut expected = b"PGCOPY\n\xff\r\n\0".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&8i16.to_be_bytes());
        for (length, value) in [
            (4i32, 7i64.to_be_bytes()[4..].to_vec()),
            (2, 60i16.to_be_bytes().to_vec()),
            (2, 8i16.to_be_bytes().to_vec()),
            // 2026-03-01 08:30 UTC, 9556 days and 8.5 hours after 2000-01-01.
            (
                8,
                ((9556 * 86_400 + 30_600) * 1_000_000i64)
                    .to_be_bytes()
                    .to_vec(),
            ),
            (4, 100_000i32.to_be_bytes().to_vec()),
            // 2.5 s rounds away from zero, as PostgreSQL's round().
            (4, 3i32.to_be_bytes().to_vec()),
        ] {
            expected.extend_from_slice(&length.to_be_bytes());
            expected.extend_from_slice(&value);
        }
        expected.extend_from_slice(&(-1i32).to_be_bytes());
        expected.extend_from_slice(&3i32.to_be_bytes());
        expected.extend_from_slice(b"a\tb");
        expected.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(copy.data, expected);
    }
}

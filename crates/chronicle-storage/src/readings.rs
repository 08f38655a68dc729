//! Batched writes of readings and rejections. One transaction per ingest batch, one statement
//! per table: never one round trip per reading.

use crate::{StorageError, Store};
use chronicle_domain::{Reading, ReadingKind};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use uuid::Uuid;

/// A validated reading with the registry facts the ingest resolved for it.
#[derive(Debug, Clone, Copy)]
pub struct ReadingRow<'a> {
    pub device_id: &'a str,
    pub patient_id: Uuid,
    pub reading: &'a Reading,
}

/// A refused reading or message, as recorded.
#[derive(Debug, Clone)]
pub struct RejectionRow {
    /// The device named by the sender; may be absent from the registry.
    pub device_id: String,
    pub patient_id: Option<Uuid>,
    pub message_id: Option<String>,
    pub reading_index: Option<i32>,
    pub device_reading_id: Option<String>,
    /// A stable [`chronicle_domain::RejectionReason`] code.
    pub reason: &'static str,
    pub detail: String,
    pub readings_covered: i32,
    pub raw: String,
}

/// Everything one ingest batch writes, committed together.
#[derive(Debug, Default)]
pub struct BatchWrite<'a> {
    pub readings: Vec<ReadingRow<'a>>,
    pub rejections: Vec<RejectionRow>,
}

/// The idempotency keys that were new, i.e. actually stored; every other reading of the batch
/// was a duplicate of a row already there (or of an earlier reading in the same batch).
#[derive(Debug, Default)]
pub struct InsertedKeys {
    keys: HashSet<(ReadingKind, String, DateTime<Utc>)>,
}

impl InsertedKeys {
    pub fn contains(&self, kind: ReadingKind, device_id: &str, measured_at: DateTime<Utc>) -> bool {
        self.keys
            .contains(&(kind, device_id.to_owned(), measured_at))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl Store {
    /// Writes a batch in one transaction and reports which readings were new.
    pub async fn write_batch(&self, batch: &BatchWrite<'_>) -> Result<InsertedKeys, StorageError> {
        let mut tx = self.pool().begin().await?;
        let mut inserted = InsertedKeys::default();
        insert_glucose(&mut tx, &batch.readings, &mut inserted).await?;
        insert_blood_pressure(&mut tx, &batch.readings, &mut inserted).await?;
        insert_rejections(&mut tx, &batch.rejections).await?;
        tx.commit().await?;
        Ok(inserted)
    }
}

type Tx<'c> = sqlx::Transaction<'c, sqlx::Postgres>;

async fn insert_glucose(
    tx: &mut Tx<'_>,
    rows: &[ReadingRow<'_>],
    inserted: &mut InsertedKeys,
) -> Result<(), StorageError> {
    let mut device_ids = Vec::new();
    let mut measured_at = Vec::new();
    let mut patient_ids = Vec::new();
    let mut values = Vec::new();
    let mut original_values = Vec::new();
    let mut original_units = Vec::new();
    let mut sources = Vec::new();
    let mut flags = Vec::new();
    let mut offsets = Vec::new();
    let mut reading_ids = Vec::new();
    for row in rows {
        let Reading::Glucose(g) = row.reading else {
            continue;
        };
        device_ids.push(row.device_id);
        measured_at.push(g.measured_at);
        patient_ids.push(row.patient_id);
        values.push(g.value.get());
        original_values.push(g.original_value);
        original_units.push(g.original_unit.as_str());
        sources.push(g.source.as_str());
        flags.push(g.flag.map(|f| f.as_str()));
        offsets.push(offset_i16(g.utc_offset_minutes));
        reading_ids.push(g.device_reading_id.as_deref());
    }
    if device_ids.is_empty() {
        return Ok(());
    }
    let returned: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "INSERT INTO glucose_readings (device_id, measured_at, patient_id, value_mg_dl,
             original_value, original_unit, source, flag, utc_offset_minutes, device_reading_id)
         SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::uuid[], $4::float8[],
             $5::float8[], $6::text[], $7::text[], $8::text[], $9::int2[], $10::text[])
         ON CONFLICT DO NOTHING
         RETURNING device_id, measured_at",
    )
    .bind(&device_ids)
    .bind(&measured_at)
    .bind(&patient_ids)
    .bind(&values)
    .bind(&original_values)
    .bind(&original_units)
    .bind(&sources)
    .bind(&flags)
    .bind(&offsets)
    .bind(&reading_ids)
    .fetch_all(&mut **tx)
    .await?;
    inserted.keys.extend(
        returned
            .into_iter()
            .map(|(d, t)| (ReadingKind::Glucose, d, t)),
    );
    Ok(())
}

async fn insert_blood_pressure(
    tx: &mut Tx<'_>,
    rows: &[ReadingRow<'_>],
    inserted: &mut InsertedKeys,
) -> Result<(), StorageError> {
    let mut device_ids = Vec::new();
    let mut measured_at = Vec::new();
    let mut patient_ids = Vec::new();
    let mut systolic = Vec::new();
    let mut diastolic = Vec::new();
    let mut pulse = Vec::new();
    let mut offsets = Vec::new();
    let mut reading_ids = Vec::new();
    for row in rows {
        let Reading::BloodPressure(bp) = row.reading else {
            continue;
        };
        device_ids.push(row.device_id);
        measured_at.push(bp.measured_at);
        patient_ids.push(row.patient_id);
        systolic.push(mm_hg_i16(bp.systolic.get()));
        diastolic.push(mm_hg_i16(bp.diastolic.get()));
        pulse.push(bp.pulse.map(|p| mm_hg_i16(p.get())));
        offsets.push(offset_i16(bp.utc_offset_minutes));
        reading_ids.push(bp.device_reading_id.as_deref());
    }
    if device_ids.is_empty() {
        return Ok(());
    }
    let returned: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "INSERT INTO blood_pressure_readings (device_id, measured_at, patient_id, systolic,
             diastolic, pulse, utc_offset_minutes, device_reading_id)
         SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::uuid[], $4::int2[],
             $5::int2[], $6::int2[], $7::int2[], $8::text[])
         ON CONFLICT DO NOTHING
         RETURNING device_id, measured_at",
    )
    .bind(&device_ids)
    .bind(&measured_at)
    .bind(&patient_ids)
    .bind(&systolic)
    .bind(&diastolic)
    .bind(&pulse)
    .bind(&offsets)
    .bind(&reading_ids)
    .fetch_all(&mut **tx)
    .await?;
    inserted.keys.extend(
        returned
            .into_iter()
            .map(|(d, t)| (ReadingKind::BloodPressure, d, t)),
    );
    Ok(())
}

async fn insert_rejections(tx: &mut Tx<'_>, rows: &[RejectionRow]) -> Result<(), StorageError> {
    if rows.is_empty() {
        return Ok(());
    }
    let device_ids: Vec<&str> = rows.iter().map(|r| r.device_id.as_str()).collect();
    let patient_ids: Vec<Option<Uuid>> = rows.iter().map(|r| r.patient_id).collect();
    let message_ids: Vec<Option<&str>> = rows.iter().map(|r| r.message_id.as_deref()).collect();
    let indexes: Vec<Option<i32>> = rows.iter().map(|r| r.reading_index).collect();
    let reading_ids: Vec<Option<&str>> = rows
        .iter()
        .map(|r| r.device_reading_id.as_deref())
        .collect();
    let reasons: Vec<&str> = rows.iter().map(|r| r.reason).collect();
    let details: Vec<&str> = rows.iter().map(|r| r.detail.as_str()).collect();
    let covered: Vec<i32> = rows.iter().map(|r| r.readings_covered).collect();
    let raws: Vec<&str> = rows.iter().map(|r| r.raw.as_str()).collect();
    sqlx::query(
        "INSERT INTO rejected_readings (device_id, patient_id, message_id, reading_index,
             device_reading_id, reason, detail, readings_covered, raw)
         SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::text[], $4::int4[], $5::text[],
             $6::text[], $7::text[], $8::int4[], $9::text[])",
    )
    .bind(&device_ids)
    .bind(&patient_ids)
    .bind(&message_ids)
    .bind(&indexes)
    .bind(&reading_ids)
    .bind(&reasons)
    .bind(&details)
    .bind(&covered)
    .bind(&raws)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// UTC offsets lie within ±18 h (±1080 min), so they always fit a smallint.
fn offset_i16(minutes: i32) -> i16 {
    i16::try_from(minutes.clamp(-1080, 1080)).unwrap_or_default()
}

/// Validated pressures and pulses are at most 300, so they always fit a smallint.
fn mm_hg_i16(value: u16) -> i16 {
    i16::try_from(value).unwrap_or(i16::MAX)
}

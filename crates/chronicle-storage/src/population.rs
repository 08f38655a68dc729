//! Registering a whole population at once: patients, their devices and the gateways that relay
//! them, in set-based statements (`generate_series`), for `chronicle bench fleet` and for
//! loading a test site. A million patients are a few dozen statements, not millions of round
//! trips.
//!
//! The devices registered here have no secret anyone knows (they all share the hash of a
//! random secret that is thrown away) and no Mosquitto password: they reach Chronicle only
//! through the gateways they are attached to, as the meters and cuffs behind a phone app do.

use crate::credentials::{random_secret, secret_hash};
use crate::{StorageError, Store};
use chronicle_domain::{DeviceId, DeviceKind, GatewayId};
use uuid::Uuid;

/// Patients registered per statement: large enough that a million take a few dozen
/// statements, small enough that one transaction's registry announcements (one NOTIFY per
/// device and per gateway link) stay a modest amount of memory.
const PATIENTS_PER_STATEMENT: u64 = 20_000;

/// What to register.
#[derive(Debug, Clone)]
pub struct PopulationPlan<'a> {
    /// Patients, each wearing a CGM.
    pub patients: u64,
    /// Percentage (0–100) of them who also have a finger-stick meter.
    pub meter_percent: u8,
    /// Percentage (0–100) of them who also have a blood-pressure cuff.
    pub cuff_percent: u8,
    /// The gateways relaying the devices: patient `n`'s devices all go to gateway
    /// `n % gateways.len()`, as a patient's devices share their phone.
    pub gateways: &'a [GatewayId],
    /// Patients are named `"{name_prefix} {n}"`.
    pub name_prefix: &'a str,
}

/// One registered device.
#[derive(Debug, Clone)]
pub struct PopulationDevice {
    /// The patient's number in the plan, from 0.
    pub patient_number: u64,
    pub patient_id: Uuid,
    pub device_id: DeviceId,
    pub kind: DeviceKind,
    /// Index into [`PopulationPlan::gateways`].
    pub gateway: usize,
}

#[derive(sqlx::FromRow)]
struct PopulationRow {
    n: i64,
    patient_id: Uuid,
    kind: String,
    device_id: String,
}

impl Store {
    /// Registers the plan's patients and devices and attaches the devices to their gateways.
    /// Each chunk of [`PATIENTS_PER_STATEMENT`] patients is one statement (its own
    /// transaction); device ids are `dev_` plus a tag of this call and the patient's number.
    pub async fn register_population(
        &self,
        plan: &PopulationPlan<'_>,
    ) -> Result<Vec<PopulationDevice>, StorageError> {
        if plan.gateways.is_empty() {
            return Err(StorageError::Refused(
                "a population needs at least one gateway".to_owned(),
            ));
        }
        let gateways: Vec<&str> = plan.gateways.iter().map(GatewayId::as_str).collect();
        // Device ids are "dev_" + 12 characters: a 4-letter tag of this call, the kind's letter
        // and the patient's number in 7 digits, so ids of separate calls never collide.
        if plan.patients > 10_000_000 {
            return Err(StorageError::Refused(
                "at most 10,000,000 patients per population".to_owned(),
            ));
        }
        let tag = random_secret(4).to_ascii_lowercase();
        let unknown_secret = secret_hash(&random_secret(32));
        let mut devices = Vec::new();
        let mut start = 0;
        while start < plan.patients {
            let end = (start + PATIENTS_PER_STATEMENT).min(plan.patients);
            let rows = sqlx::query_as::<_, PopulationRow>(
                "WITH planned AS MATERIALIZED (
                     SELECT n, gen_random_uuid() AS patient_id
                     FROM generate_series($1::bigint, $2::bigint - 1) AS n
                 ), new_patients AS (
                     INSERT INTO patients (id, display_name, time_zone)
                     SELECT patient_id, $3 || ' ' || n, 'UTC' FROM planned
                 ), planned_devices AS MATERIALIZED (
                     SELECT p.n, p.patient_id, k.kind,
                            'dev_' || $4 || k.letter || lpad(p.n::text, 7, '0') AS device_id
                     FROM planned p
                     CROSS JOIN (VALUES ('cgm', 'c'), ('meter', 'm'), ('bp', 'b')) AS k (kind, letter)
                     -- Different multipliers, so owning a meter and owning a cuff are not
                     -- the same patients.
                     WHERE k.kind = 'cgm'
                        OR (k.kind = 'meter' AND (p.n * 7) % 100 < $5)
                        OR (k.kind = 'bp' AND (p.n * 13 + 5) % 100 < $6)
                 ), new_devices AS (
                     INSERT INTO devices (id, patient_id, kind, label, secret_hash)
                     SELECT device_id, patient_id, kind, 'population', $7 FROM planned_devices
                 ), links AS (
                     INSERT INTO gateway_devices (gateway_id, device_id)
                     SELECT ($8::text[])[(1 + n % cardinality($8::text[]))::int], device_id
                     FROM planned_devices
                 )
                 SELECT n, patient_id, kind, device_id FROM planned_devices ORDER BY n, kind",
            )
            .bind(i64::try_from(start).unwrap_or(i64::MAX))
            .bind(i64::try_from(end).unwrap_or(i64::MAX))
            .bind(plan.name_prefix)
            .bind(&tag)
            .bind(i32::from(plan.meter_percent))
            .bind(i32::from(plan.cuff_percent))
            .bind(&unknown_secret)
            .bind(&gateways)
            .fetch_all(self.pool())
            .await?;
            for row in rows {
                let kind = row
                    .kind
                    .parse::<DeviceKind>()
                    .map_err(|_| StorageError::corrupt("device kind", &row.kind))?;
                let device_id = DeviceId::parse(&row.device_id)
                    .map_err(|_| StorageError::corrupt("device id", &row.device_id))?;
                let patient_number = u64::try_from(row.n)
                    .map_err(|_| StorageError::corrupt("patient number", row.n))?;
                devices.push(PopulationDevice {
                    patient_number,
                    patient_id: row.patient_id,
                    device_id,
                    kind,
                    gateway: usize::try_from(patient_number % gateways.len() as u64)
                        .unwrap_or_default(),
                });
            }
            start = end;
        }
        // A bulk load leaves the planner's statistics behind until autovacuum catches up
        // (a minute or more on a busy machine); meanwhile every per-patient read of the
        // registry is planned as if a patient had hundreds of devices and scans them all.
        sqlx::query("ANALYZE patients, devices, gateway_devices")
            .execute(self.pool())
            .await?;
        Ok(devices)
    }

    /// Age of the oldest item waiting for `consumer` in the follow-up queue, in seconds (0 when
    /// nothing waits): how far behind that consumer (the alert engine, the rollups) is.
    pub async fn oldest_followup_age_seconds(&self, consumer: &str) -> Result<f64, StorageError> {
        // The first by id is the oldest (ids follow enqueueing), and the index finds it at
        // once however long the queue is; min(enqueued_at) would read the whole queue.
        let age: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM clock_timestamp() - enqueued_at)::float8
             FROM ingest_followup_batches WHERE consumer = $1 ORDER BY id LIMIT 1",
        )
        .bind(consumer)
        .fetch_optional(self.pool())
        .await?;
        Ok(age.unwrap_or(0.0).max(0.0))
    }

    /// Size of the current database on disk, in bytes (`pg_database_size`).
    pub async fn database_size_bytes(&self) -> Result<i64, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// Every stored reading, glucose and blood pressure.
    pub async fn count_all_readings(&self) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM glucose_samples) + (SELECT count(*) FROM blood_pressure_samples)",
        )
        .fetch_one(self.pool())
        .await?)
    }
}

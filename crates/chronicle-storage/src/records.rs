//! Everything held about one patient: the export (for the patient, or a grantee with `export`
//! access) and erasure.

use crate::alerts::AlertRecord;
use crate::broker_identities::Announcements;
use crate::gate::{PatientActor, Permit};
use crate::readings::{
    BloodPressure, Glucose, PageRequest, StoredBloodPressure, StoredGlucose, StoredTreatment,
    Treatments,
};
use crate::registry::Device;
use crate::sharing::AccessLogEntry;
use crate::targets::{PatientTargets, TargetChange};
use crate::{StorageError, Store};
use chronicle_domain::sharing::{Access, Basis, DataCategory, Grant};
use serde::Serialize;
use uuid::Uuid;

impl Store {
    /// Everything held about the patient, for their export.
    pub async fn everything_of(&self, actor: &PatientActor) -> Result<PatientRecord, StorageError> {
        let patient_id = actor.patient_id();
        let patient = self
            .patient(patient_id)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                what: "patient",
                id: patient_id.to_string(),
            })?;
        let all = PageRequest {
            limit: i64::MAX,
            ..PageRequest::default()
        };
        Ok(PatientRecord {
            devices: self.list_devices(Some(patient_id)).await?,
            glucose: self.query_readings::<Glucose>(patient_id, all).await?,
            blood_pressure: self
                .query_readings::<BloodPressure>(patient_id, all)
                .await?,
            treatments: self.query_readings::<Treatments>(patient_id, all).await?,
            grants: self.grants_for_patient(patient_id).await?,
            alerts: self.alerts_of_patient(patient_id).await?,
            targets: Some(self.patient_targets(patient_id).await?),
            target_changes: self.glucose_target_changes(patient_id).await?,
            access_log: self.access_log(patient_id, None, i64::MAX).await?,
            patient,
        })
    }

    /// What a grantee holding `export` access may take away: the categories of `permits`
    /// (each an export permit of the same patient), within their windows. The patient's
    /// sharing settings are not part of it.
    pub async fn exported_record(&self, permits: &[Permit]) -> Result<PatientRecord, StorageError> {
        let Some(first) = permits.first() else {
            return Err(StorageError::NotPermitted("an export without a permit"));
        };
        let patient_id = first.patient_id();
        if permits
            .iter()
            .any(|p| p.patient_id() != patient_id || p.access() != Access::Export)
        {
            return Err(StorageError::NotPermitted(
                "an export with other permits than export permits of one patient",
            ));
        }
        let patient = self
            .patient(patient_id)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                what: "patient",
                id: patient_id.to_string(),
            })?;
        let window = |category| {
            permits
                .iter()
                .find(|p| p.category() == category)
                .map(|p| PageRequest {
                    from: p.clamp_from(None),
                    limit: i64::MAX,
                    ..PageRequest::default()
                })
        };
        let mut record = PatientRecord {
            patient,
            devices: Vec::new(),
            glucose: Vec::new(),
            blood_pressure: Vec::new(),
            treatments: Vec::new(),
            grants: Vec::new(),
            alerts: Vec::new(),
            targets: None,
            target_changes: Vec::new(),
            access_log: Vec::new(),
        };
        if let Some(page) = window(DataCategory::Glucose) {
            record.glucose = self.query_readings::<Glucose>(patient_id, page).await?;
        }
        if let Some(page) = window(DataCategory::BloodPressure) {
            record.blood_pressure = self
                .query_readings::<BloodPressure>(patient_id, page)
                .await?;
        }
        if let Some(page) = window(DataCategory::Treatments) {
            record.treatments = self.query_readings::<Treatments>(patient_id, page).await?;
        }
        if window(DataCategory::DeviceInfo).is_some() {
            record.devices = self.list_devices(Some(patient_id)).await?;
        }
        Ok(record)
    }

    /// Erases everything held about the patient: readings, refusals, devices, grants,
    /// emergency accesses, guardians, alerts, targets, rollups and the record itself, in one
    /// transaction. The patient's account loses its identity too: name, e-mail (freed for a
    /// new account) and password are replaced by a tombstone, and its sessions and tokens
    /// end. The access log is kept (it holds no health data, and it is the record of who saw
    /// what). Only the patient erases their record; a guardian only a record whose patient has
    /// no account of their own (a child's, kept by a parent).
    pub async fn erase(&self, actor: &PatientActor) -> Result<(), StorageError> {
        let patient_id = actor.patient_id();
        let mut tx = self.begin().await?;
        if actor.basis() != Basis::Own {
            let has_account: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE patient_id = $1)")
                    .bind(patient_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if has_account {
                return Err(StorageError::Refused(
                    "the patient has an account of their own: only they can erase their record"
                        .into(),
                ));
            }
        }
        for statement in [
            "DELETE FROM glucose_samples
                 WHERE device_key IN (SELECT key FROM devices WHERE patient_id = $1)",
            "DELETE FROM blood_pressure_samples
                 WHERE device_key IN (SELECT key FROM devices WHERE patient_id = $1)",
            "DELETE FROM treatment_samples
                 WHERE device_key IN (SELECT key FROM devices WHERE patient_id = $1)",
            "DELETE FROM rejected_readings WHERE patient_id = $1
                 OR device_id IN (SELECT id FROM devices WHERE patient_id = $1)",
            "DELETE FROM devices WHERE patient_id = $1",
            // Queued follow-up work names the patient and when they measured: rows of theirs
            // alone go, rows shared with others keep the others' items.
            "DELETE FROM ingest_followup_batches WHERE patient_ids <@ ARRAY[$1]::uuid[]",
            "UPDATE ingest_followup_batches f SET items = k.items,
                 freshest_measured_at = k.freshest_measured_at, patient_ids = k.patient_ids,
                 kinds = k.kinds, first_measured_at = k.first_measured_at,
                 last_measured_at = k.last_measured_at, readings = k.readings
             FROM (SELECT f.consumer, f.id, count(*)::int AS items,
                       max(i.last_measured_at) AS freshest_measured_at,
                       array_agg(i.patient_id ORDER BY i.n) AS patient_ids,
                       array_agg(i.kind ORDER BY i.n) AS kinds,
                       array_agg(i.first_measured_at ORDER BY i.n) AS first_measured_at,
                       array_agg(i.last_measured_at ORDER BY i.n) AS last_measured_at,
                       array_agg(i.readings ORDER BY i.n) AS readings
                   FROM ingest_followup_batches f CROSS JOIN LATERAL UNNEST(f.patient_ids,
                       f.kinds, f.first_measured_at, f.last_measured_at, f.readings)
                       WITH ORDINALITY
                       AS i (patient_id, kind, first_measured_at, last_measured_at, readings, n)
                   WHERE f.patient_ids @> ARRAY[$1]::uuid[] AND i.patient_id <> $1
                   GROUP BY f.consumer, f.id) k
             WHERE f.consumer = k.consumer AND f.id = k.id",
            "UPDATE auth_tokens SET revoked_at = coalesce(revoked_at, now())
                 WHERE user_id IN (SELECT id FROM users WHERE patient_id = $1)",
            // Where and when the person logged in is about the person too.
            "DELETE FROM authentication_events
                 WHERE user_id IN (SELECT id FROM users WHERE patient_id = $1)
                    OR lower(email_tried) IN (SELECT lower(email) FROM users WHERE patient_id = $1)",
            // The tombstone keeps the account's id (the access log names actors by id) and
            // nothing that identifies the person.
            "UPDATE users SET email = 'erased-' || id || '@erased.invalid',
                 display_name = 'erased', password_hash = NULL,
                 disabled_at = coalesce(disabled_at, now())
             WHERE patient_id = $1",
            // Grants, emergency accesses and guardians go with the record (ON DELETE CASCADE).
            "DELETE FROM patients WHERE id = $1",
        ] {
            sqlx::query(statement)
                .bind(patient_id)
                .execute(&mut *tx)
                .await?;
        }
        // Heard by every server once the erasure commits, so none keeps the patient's data in
        // memory (the alert engine's held readings).
        sqlx::query("SELECT pg_notify($1, $2::text)")
            .bind(ERASURE_CHANNEL)
            .bind(patient_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Starts listening for erasures; see [`ErasureListener::next`].
    pub fn erasure_listener(&self) -> ErasureListener {
        ErasureListener(Announcements::new(self, ERASURE_CHANNEL))
    }
}

/// The channel erasures are announced on.
const ERASURE_CHANNEL: &str = "chronicle_erasure";

/// What an erasure announcement says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Erasure {
    /// This patient's record was erased.
    Patient(Uuid),
    /// Announcements may have been missed (the listening connection was lost, or listening
    /// just started): drop whatever is held of any patient.
    Missed,
}

/// Hears every erasure, whichever process made it.
pub struct ErasureListener(Announcements);

impl ErasureListener {
    pub async fn next(&mut self) -> Erasure {
        loop {
            match self.0.next().await {
                None => return Erasure::Missed,
                Some(payload) => match Uuid::parse_str(&payload) {
                    Ok(patient_id) => return Erasure::Patient(patient_id),
                    Err(_) => tracing::warn!(payload, "unknown erasure announcement"),
                },
            }
        }
    }
}

/// Everything held about one patient. A grantee's export holds only the categories granted:
/// no grants, alerts, targets or access log.
#[derive(Debug, Clone, Serialize)]
pub struct PatientRecord {
    pub patient: crate::Patient,
    pub devices: Vec<Device>,
    pub glucose: Vec<StoredGlucose>,
    pub blood_pressure: Vec<StoredBloodPressure>,
    pub treatments: Vec<StoredTreatment>,
    pub grants: Vec<Grant>,
    /// Every alert, with its acknowledgement and resolution and their notes, oldest first.
    pub alerts: Vec<AlertRecord>,
    /// The targets and alert thresholds in force.
    pub targets: Option<PatientTargets>,
    /// Every change of them, newest first, with who made it.
    pub target_changes: Vec<TargetChange>,
    /// Every attempt to reach the record, allowed or not, newest first.
    pub access_log: Vec<AccessLogEntry>,
}

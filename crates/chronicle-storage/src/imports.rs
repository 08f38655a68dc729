//! The devices that hold a patient's imported data (`import_devices`): one per patient,
//! source and kind, made on the first import and found again on every later one, so the
//! ingest's key (device, kind, time) makes a re-import store nothing twice. Their secret is
//! made and thrown away: no one can publish as them over MQTT. And what a preview needs: how
//! many of an import's records are already stored.

use crate::credentials::{broker_password_hash, secret_hash};
use crate::gate::PatientActor;
use crate::registry::DeviceCredentials;
use crate::{StorageError, Store};
use chronicle_domain::{DeviceId, DeviceKind};
use chrono::{DateTime, Utc};

/// One import source of a patient's device: its id, and whether it was revoked (then the
/// ingest refuses what is submitted for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportDevice {
    pub id: DeviceId,
    pub revoked: bool,
}

/// The keys of an import's readings for one device: glucose times, and treatments as
/// (treatment kind, time).
#[derive(Debug, Clone, Default)]
pub struct ImportKeys {
    pub glucose: Vec<DateTime<Utc>>,
    pub treatments: Vec<(String, DateTime<Utc>)>,
}

impl Store {
    /// The patient's import device for `source` and `kind`, if one was made.
    pub async fn import_device(
        &self,
        actor: &PatientActor,
        source: &str,
        kind: DeviceKind,
    ) -> Result<Option<ImportDevice>, StorageError> {
        let row: Option<(String, bool)> = sqlx::query_as(
            "SELECT d.id, d.revoked_at IS NOT NULL
               FROM import_devices i JOIN devices d ON d.id = i.device_id
              WHERE i.patient_id = $1 AND i.source = $2 AND i.kind = $3",
        )
        .bind(actor.patient_id())
        .bind(source)
        .bind(kind.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.map(|(id, revoked)| {
            Ok(ImportDevice {
                id: DeviceId::parse(&id).map_err(|_| StorageError::Corrupt {
                    what: "device id",
                    value: id.clone(),
                })?,
                revoked,
            })
        })
        .transpose()
    }

    /// The patient's import device for `source` and `kind`, made if there is none yet (two
    /// imports at once make one: the second waits for the first's lock and finds it).
    pub async fn ensure_import_device(
        &self,
        actor: &PatientActor,
        source: &str,
        kind: DeviceKind,
        label: &str,
    ) -> Result<ImportDevice, StorageError> {
        if let Some(device) = self.import_device(actor, source, kind).await? {
            return Ok(device);
        }
        let mut tx = self.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('import_devices:' || $1 || $2 || $3))")
            .bind(actor.patient_id().to_string())
            .bind(source)
            .bind(kind.as_str())
            .execute(&mut *tx)
            .await?;
        let existing: Option<(String,)> = sqlx::query_as(
            "SELECT device_id FROM import_devices
              WHERE patient_id = $1 AND source = $2 AND kind = $3",
        )
        .bind(actor.patient_id())
        .bind(source)
        .bind(kind.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if existing.is_none() {
            // The secret is never shown or kept: the device cannot log in to a broker.
            let credentials = DeviceCredentials::generate(crate::registry::new_device_id());
            sqlx::query(
                "INSERT INTO devices (id, patient_id, kind, label, secret_hash, broker_password_hash)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(credentials.id.as_str())
            .bind(actor.patient_id())
            .bind(kind.as_str())
            .bind(label)
            .bind(secret_hash(&credentials.secret))
            .bind(broker_password_hash(&credentials.secret))
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO import_devices (device_id, patient_id, source, kind)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(credentials.id.as_str())
            .bind(actor.patient_id())
            .bind(source)
            .bind(kind.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.import_device(actor, source, kind)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                what: "import device",
                id: format!("{source}/{kind}"),
            })
    }

    /// How many of `keys` the device already holds (distinct keys).
    pub async fn stored_import_keys(
        &self,
        actor: &PatientActor,
        device: &DeviceId,
        keys: &ImportKeys,
    ) -> Result<usize, StorageError> {
        let (kinds, times): (Vec<String>, Vec<DateTime<Utc>>) =
            keys.treatments.iter().cloned().unzip();
        let count: i64 = sqlx::query_scalar(
            "WITH device AS (
                 SELECT key FROM devices WHERE id = $1 AND patient_id = $2
             )
             SELECT (SELECT count(*) FROM glucose_samples g, device
                      WHERE g.device_key = device.key
                        AND g.measured_at IN (SELECT DISTINCT unnest($3::timestamptz[])))
                  + (SELECT count(*) FROM treatment_samples t, device
                      WHERE t.device_key = device.key
                        AND (t.kind, t.measured_at) IN
                            (SELECT DISTINCT * FROM unnest($4::text[], $5::timestamptz[])))",
        )
        .bind(device.as_str())
        .bind(actor.patient_id())
        .bind(&keys.glucose)
        .bind(&kinds)
        .bind(&times)
        .fetch_one(self.pool())
        .await?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// Which of `times` the device already holds a glucose reading at.
    pub async fn stored_glucose_times(
        &self,
        actor: &PatientActor,
        device: &DeviceId,
        times: &[DateTime<Utc>],
    ) -> Result<Vec<DateTime<Utc>>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT g.measured_at FROM glucose_samples g
               JOIN devices d ON d.key = g.device_key
              WHERE d.id = $1 AND d.patient_id = $2
                AND g.measured_at IN (SELECT DISTINCT unnest($3::timestamptz[]))",
        )
        .bind(device.as_str())
        .bind(actor.patient_id())
        .bind(times)
        .fetch_all(self.pool())
        .await?)
    }

    /// How many glucose readings the patient's other devices (any but `source`'s import
    /// devices) hold between `from` and `to`, both included: history an import may repeat.
    pub async fn glucose_from_other_sources(
        &self,
        actor: &PatientActor,
        source: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<usize, StorageError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM glucose_samples g
               JOIN devices d ON d.key = g.device_key
              WHERE d.patient_id = $1
                AND g.measured_at BETWEEN $3 AND $4
                AND NOT EXISTS (SELECT 1 FROM import_devices i
                                 WHERE i.device_id = d.id AND i.source = $2)",
        )
        .bind(actor.patient_id())
        .bind(source)
        .bind(from)
        .bind(to)
        .fetch_one(self.pool())
        .await?;
        Ok(usize::try_from(count).unwrap_or(0))
    }
}

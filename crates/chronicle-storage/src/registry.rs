//! The registry: patients and their devices, with device credentials.

use crate::credentials::{broker_password_hash, random_secret, secret_hash};
use crate::{StorageError, Store};
use chronicle_domain::{DeviceId, DeviceKind};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Serialize;
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct NewPatient {
    pub display_name: String,
    /// IANA zone name, e.g. `Europe/Berlin`.
    pub time_zone: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Patient {
    pub id: Uuid,
    pub display_name: String,
    pub time_zone: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Device {
    pub id: DeviceId,
    pub patient_id: Uuid,
    pub kind: DeviceKind,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new device's credentials, shown once. Only the secret's hash is stored.
#[derive(Clone, Serialize)]
pub struct DeviceCredentials {
    /// Also the MQTT username and client id.
    pub device_id: DeviceId,
    /// The MQTT password.
    pub secret: String,
}

impl std::fmt::Debug for DeviceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCredentials")
            .field("device_id", &self.device_id)
            .field("secret", &"***")
            .finish()
    }
}

/// What the ingest needs to know about a device that sent a message.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceForIngest {
    /// The integer key the reading tables store.
    pub key: i32,
    pub patient_id: Uuid,
    pub kind: DeviceKind,
    pub revoked: bool,
}

fn new_device_id() -> DeviceId {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let suffix: String = (0..12)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    // The alphabet and length always satisfy DeviceId's rules.
    DeviceId::parse(&format!("dev_{suffix}"))
        .unwrap_or_else(|_| unreachable!("generated id is valid"))
}

#[derive(sqlx::FromRow)]
struct DeviceRow {
    id: String,
    patient_id: Uuid,
    kind: String,
    label: Option<String>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<DeviceRow> for Device {
    type Error = StorageError;
    fn try_from(row: DeviceRow) -> Result<Self, Self::Error> {
        Ok(Device {
            id: DeviceId::parse(&row.id).map_err(|_| StorageError::Corrupt {
                what: "device id",
                value: row.id.clone(),
            })?,
            patient_id: row.patient_id,
            kind: parse_kind(&row.kind)?,
            label: row.label,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        })
    }
}

fn parse_kind(kind: &str) -> Result<DeviceKind, StorageError> {
    kind.parse().map_err(|_| StorageError::Corrupt {
        what: "device kind",
        value: kind.to_owned(),
    })
}

impl Store {
    pub async fn create_patient(&self, patient: &NewPatient) -> Result<Patient, StorageError> {
        let row = sqlx::query_as::<_, Patient>(
            "INSERT INTO patients (id, display_name, time_zone) VALUES ($1, $2, $3)
             RETURNING id, display_name, time_zone, created_at",
        )
        .bind(Uuid::new_v4())
        .bind(&patient.display_name)
        .bind(&patient.time_zone)
        .fetch_one(self.pool())
        .await?;
        Ok(row)
    }

    pub async fn patient(&self, id: Uuid) -> Result<Option<Patient>, StorageError> {
        Ok(sqlx::query_as::<_, Patient>(
            "SELECT id, display_name, time_zone, created_at FROM patients WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Moves a patient to another IANA zone (already validated). Their trend rollups, cut into
    /// days of the old zone, are rebuilt (a trigger queues the rebuild in the same transaction).
    /// `None` if there is no such patient.
    pub async fn set_patient_time_zone(
        &self,
        id: Uuid,
        time_zone: &str,
    ) -> Result<Option<Patient>, StorageError> {
        Ok(sqlx::query_as::<_, Patient>(
            "UPDATE patients SET time_zone = $2 WHERE id = $1
             RETURNING id, display_name, time_zone, created_at",
        )
        .bind(id)
        .bind(time_zone)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn list_patients(&self) -> Result<Vec<Patient>, StorageError> {
        Ok(sqlx::query_as::<_, Patient>(
            "SELECT id, display_name, time_zone, created_at FROM patients ORDER BY created_at, id",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Registers a device for a patient and returns its one-time credentials.
    pub async fn create_device(
        &self,
        patient_id: Uuid,
        kind: DeviceKind,
        label: Option<&str>,
    ) -> Result<(Device, DeviceCredentials), StorageError> {
        let exists: Option<(Uuid,)> = sqlx::query_as("SELECT id FROM patients WHERE id = $1")
            .bind(patient_id)
            .fetch_optional(self.pool())
            .await?;
        if exists.is_none() {
            return Err(StorageError::NotFound {
                what: "patient",
                id: patient_id.to_string(),
            });
        }
        let credentials = DeviceCredentials {
            device_id: new_device_id(),
            secret: random_secret(32),
        };
        let row = sqlx::query_as::<_, DeviceRow>(
            "INSERT INTO devices (id, patient_id, kind, label, secret_hash, broker_password_hash)
             VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING id, patient_id, kind, label, created_at, revoked_at",
        )
        .bind(credentials.device_id.as_str())
        .bind(patient_id)
        .bind(kind.as_str())
        .bind(label)
        .bind(secret_hash(&credentials.secret))
        .bind(broker_password_hash(&credentials.secret))
        .fetch_one(self.pool())
        .await?;
        Ok((Device::try_from(row)?, credentials))
    }

    /// Gives a device that is not revoked a new secret, shown once; the old one stops working
    /// at once (brokers re-check the device and drop its connections).
    pub async fn rotate_device_secret(
        &self,
        device_id: &DeviceId,
    ) -> Result<DeviceCredentials, StorageError> {
        let secret = random_secret(32);
        let updated = sqlx::query(
            "UPDATE devices SET secret_hash = $2, broker_password_hash = $3
             WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(device_id.as_str())
        .bind(secret_hash(&secret))
        .bind(broker_password_hash(&secret))
        .execute(self.pool())
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StorageError::NotFound {
                what: "active device",
                id: device_id.to_string(),
            });
        }
        Ok(DeviceCredentials {
            device_id: device_id.clone(),
            secret,
        })
    }

    /// Devices, newest last; only one patient's when `patient_id` is given.
    pub async fn list_devices(
        &self,
        patient_id: Option<Uuid>,
    ) -> Result<Vec<Device>, StorageError> {
        sqlx::query_as::<_, DeviceRow>(
            "SELECT id, patient_id, kind, label, created_at, revoked_at FROM devices
             WHERE $1::uuid IS NULL OR patient_id = $1 ORDER BY created_at, id",
        )
        .bind(patient_id)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(Device::try_from)
        .collect()
    }

    /// Revokes a device: its credentials stop working and its messages are refused. Returns
    /// the device as it now stands; revoking twice keeps the first revocation time.
    pub async fn revoke_device(&self, device_id: &DeviceId) -> Result<Device, StorageError> {
        let row = sqlx::query_as::<_, DeviceRow>(
            "UPDATE devices SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
             RETURNING id, patient_id, kind, label, created_at, revoked_at",
        )
        .bind(device_id.as_str())
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StorageError::NotFound {
            what: "device",
            id: device_id.to_string(),
        })?;
        Device::try_from(row)
    }

    /// Looks up every device of a batch in one query.
    pub async fn devices_for_ingest(
        &self,
        device_ids: &[&str],
    ) -> Result<HashMap<String, DeviceForIngest>, StorageError> {
        let rows: Vec<(String, i32, Uuid, String, bool)> = sqlx::query_as(
            "SELECT id, key, patient_id, kind, revoked_at IS NOT NULL FROM devices
             WHERE id = ANY($1)",
        )
        .bind(device_ids)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(id, key, patient_id, kind, revoked)| {
                Ok((
                    id,
                    DeviceForIngest {
                        key,
                        patient_id,
                        kind: parse_kind(&kind)?,
                        revoked,
                    },
                ))
            })
            .collect()
    }
}

//! The registry: patients and their devices, with device credentials.

use crate::credentials::{NewCredentials, broker_password_hash, secret_hash};
use crate::gate::{PatientActor, Permit};
use crate::rows::FetchRecords;
use crate::sharing::AccessAttempt;
use crate::{StorageError, Store};
use chronicle_domain::sharing::AccessAction;
use chronicle_domain::sharing::{Access, DataCategory, Principal, Purpose, deidentify};
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

/// A new device's credentials, shown once.
pub type DeviceCredentials = NewCredentials<DeviceId>;

/// What the ingest needs to know about a device that sent a message.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceForIngest {
    /// The integer key the reading tables store.
    pub key: i32,
    pub patient_id: Uuid,
    pub kind: DeviceKind,
    pub revoked: bool,
    /// One of the patient's import devices (`import_devices`): the ingest accepts older
    /// readings from it.
    pub imported: bool,
}

pub(crate) fn new_device_id() -> DeviceId {
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
        if !kind.uses_mqtt() {
            return Err(StorageError::Refused(format!(
                "a device of kind {kind} has no MQTT credentials: make it through the \
                 patient's Nightscout site (docs/nightscout.md)"
            )));
        }
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
        let credentials = DeviceCredentials::generate(new_device_id());
        let row = sqlx::query_as::<_, DeviceRow>(
            "INSERT INTO devices (id, patient_id, kind, label, secret_hash, broker_password_hash)
             VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING id, patient_id, kind, label, created_at, revoked_at",
        )
        .bind(credentials.id.as_str())
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
        let credentials = DeviceCredentials::generate(device_id.clone());
        let updated = sqlx::query(
            "UPDATE devices SET secret_hash = $2, broker_password_hash = $3
             WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(device_id.as_str())
        .bind(secret_hash(&credentials.secret))
        .bind(broker_password_hash(&credentials.secret))
        .execute(self.pool())
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StorageError::NotFound {
                what: "active device",
                id: device_id.to_string(),
            });
        }
        Ok(credentials)
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
        .fetch_records(self.pool())
        .await
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
        let rows: Vec<(String, i32, Uuid, String, bool, bool)> = sqlx::query_as(
            "SELECT id, key, patient_id, kind, revoked_at IS NOT NULL,
                    EXISTS (SELECT 1 FROM import_devices i WHERE i.device_id = devices.id)
               FROM devices
             WHERE id = ANY($1)",
        )
        .bind(device_ids)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(id, key, patient_id, kind, revoked, imported)| {
                Ok((
                    id,
                    DeviceForIngest {
                        key,
                        patient_id,
                        kind: parse_kind(&kind)?,
                        revoked,
                        imported,
                    },
                ))
            })
            .collect()
    }
}

impl Store {
    /// The patient's devices, for a permit on device information.
    pub async fn devices_of(&self, permit: &Permit) -> Result<Vec<Device>, StorageError> {
        if permit.category() != DataCategory::DeviceInfo
            || !matches!(permit.access(), Access::ViewReadings | Access::ViewTrends)
        {
            return Err(StorageError::NotPermitted("device information"));
        }
        self.list_devices(Some(permit.patient_id())).await
    }

    /// Pairs a new device for the patient and returns its one-time credentials.
    pub async fn pair_device_as(
        &self,
        actor: &PatientActor,
        kind: DeviceKind,
        label: Option<&str>,
    ) -> Result<(Device, DeviceCredentials), StorageError> {
        self.create_device(actor.patient_id(), kind, label).await
    }

    /// Revokes one of the patient's devices; `None` if the patient has no such device.
    pub async fn revoke_device_as(
        &self,
        actor: &PatientActor,
        device_id: &DeviceId,
    ) -> Result<Option<Device>, StorageError> {
        let owned = self
            .list_devices(Some(actor.patient_id()))
            .await?
            .into_iter()
            .any(|d| &d.id == device_id);
        if !owned {
            return Ok(None);
        }
        self.revoke_device(device_id).await.map(Some)
    }

    /// The patients a principal may see in a list: their own record, those they are guardian
    /// of, and those with an active grant naming them (directly, or through a current team or
    /// organization), each with what is shared with the principal. A research grant is a
    /// study: each lists its patient under the study's own pseudonym, without a name. Each
    /// listed patient gets an access-log entry, since a name is patient data too.
    pub async fn visible_patients(
        &self,
        principal: &Principal,
    ) -> Result<Vec<VisiblePatient>, StorageError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            patient_id: Uuid,
            display_name: String,
            time_zone: String,
            grant_id: Uuid,
            purpose: String,
            categories: Vec<String>,
            access: Vec<String>,
            data_since: Option<DateTime<Utc>>,
            expires_at: Option<DateTime<Utc>>,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT p.id AS patient_id, p.display_name, p.time_zone, g.id AS grant_id, g.purpose,
                 g.categories, g.access, g.data_since, g.expires_at
             FROM grants g JOIN patients p ON p.id = g.patient_id
             WHERE g.revoked_at IS NULL AND (g.expires_at IS NULL OR g.expires_at > now())
               AND g.created_at <= now()
               AND ((g.grantee_type = 'user' AND g.grantee_id = $1)
                 OR (g.grantee_type = 'care_team' AND g.grantee_id = ANY($2))
                 OR (g.grantee_type = 'organization' AND g.grantee_id = ANY($3)))
             ORDER BY p.display_name, p.id, g.created_at, g.id",
        )
        .bind(principal.user_id)
        .bind(&principal.care_teams)
        .bind(&principal.organizations)
        .fetch_all(self.pool())
        .await?;
        let own: Vec<Uuid> = principal
            .patient_id
            .into_iter()
            .chain(principal.guardian_of.iter().copied())
            .collect();
        let mut out: Vec<VisiblePatient> = Vec::new();
        for patient_id in &own {
            if let Some(p) = self.patient(*patient_id).await? {
                out.push(VisiblePatient {
                    patient_id: p.id,
                    record_id: p.id,
                    display_name: Some(p.display_name),
                    time_zone: Some(p.time_zone),
                    purposes: Vec::new(),
                    basis: if principal.patient_id == Some(p.id) {
                        "own"
                    } else {
                        "guardian"
                    },
                    shared: Vec::new(),
                });
            }
        }
        let purpose = principal.role.and_then(Purpose::for_role);
        for row in rows {
            // Only grants for the purpose the principal reads for make the patient visible.
            let Some(grant_purpose) = Purpose::parse(&row.purpose) else {
                continue;
            };
            if Some(grant_purpose) != purpose || own.contains(&row.patient_id) {
                continue;
            }
            let research = grant_purpose == Purpose::Research;
            // Research sees a pseudonym, stable for the study and unlinkable without the grant
            // id, which researchers never see.
            let shown_id = if research {
                deidentify::pseudonym(row.grant_id, row.patient_id.as_bytes())
            } else {
                row.patient_id
            };
            let shared = SharedWithMe {
                categories: parse_names(&row.categories, DataCategory::parse),
                access: parse_names(&row.access, Access::parse),
                purpose: grant_purpose,
                data_since: row.data_since,
                expires_at: row.expires_at,
            };
            match out.iter_mut().find(|v| v.patient_id == shown_id) {
                Some(v) => {
                    if !v.purposes.contains(&grant_purpose) {
                        v.purposes.push(grant_purpose);
                    }
                    v.shared.push(shared);
                }
                None => out.push(VisiblePatient {
                    patient_id: shown_id,
                    record_id: row.patient_id,
                    display_name: (!research).then_some(row.display_name),
                    time_zone: (!research).then_some(row.time_zone),
                    purposes: vec![grant_purpose],
                    basis: "grant",
                    shared: vec![shared],
                }),
            }
        }
        for v in &out {
            self.append_access_log(&AccessAttempt {
                actor_id: Some(principal.user_id),
                actor_role: principal.role.map(|r| r.as_str().to_owned()),
                patient_id: v.record_id,
                action: AccessAction::ListPatients,
                category: None,
                purpose,
                grant_id: None,
                emergency_id: None,
                allowed: true,
                reason: None,
            })
            .await?;
        }
        Ok(out)
    }
}

/// Parses stored names (validated by the schema's CHECKs), skipping any unknown one.
fn parse_names<T: Ord>(names: &[String], parse: fn(&str) -> Option<T>) -> Vec<T> {
    let mut parsed: Vec<T> = names.iter().filter_map(|n| parse(n)).collect();
    parsed.sort();
    parsed
}

/// What one grant shares with the principal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharedWithMe {
    pub categories: Vec<DataCategory>,
    pub access: Vec<Access>,
    pub purpose: Purpose,
    pub data_since: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A patient in a principal's list.
#[derive(Debug, Clone, Serialize)]
pub struct VisiblePatient {
    /// The id to show: the record's id, or for research access a pseudonym.
    pub patient_id: Uuid,
    /// The record's real id, for the access log; never shown to a research reader.
    #[serde(skip)]
    pub record_id: Uuid,
    /// Absent for research access, which is pseudonymous.
    pub display_name: Option<String>,
    /// The patient's IANA time zone, in which their days are counted; absent for research
    /// access (a zone narrows down where someone lives).
    pub time_zone: Option<String>,
    /// The purposes of the grants that make the patient visible.
    pub purposes: Vec<Purpose>,
    /// `own`, `guardian` or `grant`.
    pub basis: &'static str,
    /// For `grant`: what each grant naming the principal shares.
    pub shared: Vec<SharedWithMe>,
}

//! Gateways: one broker identity that relays readings for the devices registered with it.
//!
//! A patient's own gateway (their phone app, a home hub) relays only that patient's devices; a
//! gateway without a patient (a clinic's bedside gateway, the simulator's load mode) relays any
//! device an operator attaches. Revoking a device takes it off every gateway (a trigger, in the
//! same transaction), and every change is announced to the brokers (`broker_identities`).

use crate::credentials::{NewCredentials, broker_password_hash, secret_hash};
use crate::gate::PatientActor;
use crate::rows::FetchRecords;
use crate::{StorageError, Store};
use chronicle_domain::{DeviceId, GatewayId};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Serialize;
use uuid::Uuid;

/// A registered gateway and the devices it relays.
#[derive(Debug, Clone, Serialize)]
pub struct Gateway {
    pub id: GatewayId,
    pub label: Option<String>,
    /// Whose gateway it is; `None` for a clinic's or an operator's.
    pub patient_id: Option<Uuid>,
    pub devices: Vec<DeviceId>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new gateway's credentials, shown once.
pub type GatewayCredentials = NewCredentials<GatewayId>;

fn new_gateway_id() -> GatewayId {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let suffix: String = (0..12)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    // The alphabet and length always satisfy GatewayId's rules.
    GatewayId::parse(&format!("{}{suffix}", GatewayId::PREFIX))
        .unwrap_or_else(|_| unreachable!("generated id is valid"))
}

#[derive(sqlx::FromRow)]
struct GatewayRow {
    id: String,
    label: Option<String>,
    patient_id: Option<Uuid>,
    devices: Vec<String>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<GatewayRow> for Gateway {
    type Error = StorageError;
    fn try_from(row: GatewayRow) -> Result<Self, Self::Error> {
        Ok(Gateway {
            id: GatewayId::parse(&row.id)
                .map_err(|_| StorageError::corrupt("gateway id", &row.id))?,
            label: row.label,
            patient_id: row.patient_id,
            devices: row
                .devices
                .iter()
                .map(|d| DeviceId::parse(d).map_err(|_| StorageError::corrupt("device id", d)))
                .collect::<Result<_, _>>()?,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        })
    }
}

const GATEWAY_COLUMNS: &str = "g.id, g.label, g.patient_id, g.created_at, g.revoked_at,
     coalesce((SELECT array_agg(gd.device_id ORDER BY gd.device_id) FROM gateway_devices gd
               WHERE gd.gateway_id = g.id), '{}') AS devices";

impl Store {
    /// Registers a gateway (a patient's own when `patient_id` is given) relaying `devices`,
    /// and returns its one-time credentials.
    pub async fn create_gateway(
        &self,
        patient_id: Option<Uuid>,
        label: Option<&str>,
        devices: &[DeviceId],
    ) -> Result<(Gateway, GatewayCredentials), StorageError> {
        let credentials = GatewayCredentials::generate(new_gateway_id());
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO gateways (id, label, patient_id, secret_hash, broker_password_hash)
             SELECT $1, $2, $3, $4, $5
             WHERE $3::uuid IS NULL OR EXISTS (SELECT 1 FROM patients WHERE id = $3)",
        )
        .bind(credentials.id.as_str())
        .bind(label)
        .bind(patient_id)
        .bind(secret_hash(&credentials.secret))
        .bind(broker_password_hash(&credentials.secret))
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StorageError::NotFound {
                what: "patient",
                id: patient_id.map(|p| p.to_string()).unwrap_or_default(),
            });
        }
        attach(&mut tx, &credentials.id, devices).await?;
        tx.commit().await?;
        let gateway =
            self.gateway(&credentials.id)
                .await?
                .ok_or_else(|| StorageError::NotFound {
                    what: "gateway",
                    id: credentials.id.to_string(),
                })?;
        Ok((gateway, credentials))
    }

    pub async fn gateway(&self, id: &GatewayId) -> Result<Option<Gateway>, StorageError> {
        sqlx::query_as::<_, GatewayRow>(&format!(
            "SELECT {GATEWAY_COLUMNS} FROM gateways g WHERE g.id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional_record(self.pool())
        .await
    }

    /// Gateways, newest last; only one patient's when `patient_id` is given.
    pub async fn list_gateways(
        &self,
        patient_id: Option<Uuid>,
    ) -> Result<Vec<Gateway>, StorageError> {
        sqlx::query_as::<_, GatewayRow>(&format!(
            "SELECT {GATEWAY_COLUMNS} FROM gateways g
             WHERE $1::uuid IS NULL OR g.patient_id = $1 ORDER BY g.created_at, g.id"
        ))
        .bind(patient_id)
        .fetch_records(self.pool())
        .await
    }

    /// Lets the gateway relay these devices as well. Refused for a revoked gateway or device,
    /// and for a device of another patient when the gateway is a patient's own.
    pub async fn attach_devices(
        &self,
        gateway_id: &GatewayId,
        devices: &[DeviceId],
    ) -> Result<Gateway, StorageError> {
        let mut tx = self.begin().await?;
        attach(&mut tx, gateway_id, devices).await?;
        tx.commit().await?;
        self.gateway(gateway_id)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                what: "gateway",
                id: gateway_id.to_string(),
            })
    }

    /// Stops the gateway relaying these devices; brokers refuse its next message for them.
    pub async fn detach_devices(
        &self,
        gateway_id: &GatewayId,
        devices: &[DeviceId],
    ) -> Result<Gateway, StorageError> {
        let ids: Vec<&str> = devices.iter().map(DeviceId::as_str).collect();
        sqlx::query("DELETE FROM gateway_devices WHERE gateway_id = $1 AND device_id = ANY($2)")
            .bind(gateway_id.as_str())
            .bind(&ids)
            .execute(self.pool())
            .await?;
        self.gateway(gateway_id)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                what: "gateway",
                id: gateway_id.to_string(),
            })
    }

    /// Revokes a gateway: its credentials stop working and brokers drop its connections.
    pub async fn revoke_gateway(&self, gateway_id: &GatewayId) -> Result<Gateway, StorageError> {
        let updated = sqlx::query(
            "UPDATE gateways SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1",
        )
        .bind(gateway_id.as_str())
        .execute(self.pool())
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StorageError::NotFound {
                what: "gateway",
                id: gateway_id.to_string(),
            });
        }
        self.gateway(gateway_id)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                what: "gateway",
                id: gateway_id.to_string(),
            })
    }
}

/// Adds the devices to the gateway inside `tx`, checking every rule of [`Store::attach_devices`].
async fn attach(
    tx: &mut sqlx::PgConnection,
    gateway_id: &GatewayId,
    devices: &[DeviceId],
) -> Result<(), StorageError> {
    if devices.is_empty() {
        return Ok(());
    }
    let gateway: Option<(Option<Uuid>, bool)> = sqlx::query_as(
        "SELECT patient_id, revoked_at IS NOT NULL FROM gateways WHERE id = $1 FOR UPDATE",
    )
    .bind(gateway_id.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((owner, revoked)) = gateway else {
        return Err(StorageError::NotFound {
            what: "gateway",
            id: gateway_id.to_string(),
        });
    };
    if revoked {
        return Err(StorageError::Refused(format!(
            "gateway {gateway_id} is revoked"
        )));
    }
    let ids: Vec<&str> = devices.iter().map(DeviceId::as_str).collect();
    let found: Vec<(String, Uuid, bool)> = sqlx::query_as(
        "SELECT id, patient_id, revoked_at IS NOT NULL FROM devices
         WHERE id = ANY($1) AND kind <> 'uploader' FOR SHARE",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    for wanted in &ids {
        match found.iter().find(|(id, _, _)| id == wanted) {
            None => {
                return Err(StorageError::NotFound {
                    what: "device",
                    id: (*wanted).to_owned(),
                });
            }
            Some((_, _, true)) => {
                return Err(StorageError::Refused(format!("device {wanted} is revoked")));
            }
            Some((_, patient, false)) if owner.is_some_and(|owner| owner != *patient) => {
                return Err(StorageError::Refused(format!(
                    "device {wanted} belongs to another patient than gateway {gateway_id}"
                )));
            }
            Some(_) => {}
        }
    }
    sqlx::query(
        "INSERT INTO gateway_devices (gateway_id, device_id)
         SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
    )
    .bind(gateway_id.as_str())
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

impl Store {
    /// The patient's own gateways (their phone app, a home hub).
    pub async fn gateways_as(
        &self,
        actor: &PatientActor,
    ) -> Result<Vec<crate::Gateway>, StorageError> {
        self.list_gateways(Some(actor.patient_id())).await
    }

    /// Registers a gateway of the patient's own relaying `devices` (which must be theirs) and
    /// returns its one-time credentials.
    pub async fn create_gateway_as(
        &self,
        actor: &PatientActor,
        label: Option<&str>,
        devices: &[DeviceId],
    ) -> Result<(crate::Gateway, crate::GatewayCredentials), StorageError> {
        self.create_gateway(Some(actor.patient_id()), label, devices)
            .await
    }

    /// Revokes one of the patient's gateways; `None` if the patient has no such gateway.
    pub async fn revoke_gateway_as(
        &self,
        actor: &PatientActor,
        gateway_id: &chronicle_domain::GatewayId,
    ) -> Result<Option<crate::Gateway>, StorageError> {
        match self.gateway(gateway_id).await? {
            Some(g) if g.patient_id == Some(actor.patient_id()) => {
                self.revoke_gateway(gateway_id).await.map(Some)
            }
            _ => Ok(None),
        }
    }
}

//! Who may use the broker: devices, gateways and the ingest's own accounts, as a broker needs
//! them — to authenticate a CONNECT, to know what an identity may relay, to write an external
//! Mosquitto's password and ACL files, and to hear at once when any of it changes.
//!
//! The registry is the source of truth on every broker: the embedded one asks these queries,
//! an external Mosquitto gets files written from [`Store::broker_credentials`], and EMQX calls
//! Chronicle's HTTP hooks, which ask the same queries.

use crate::credentials::{broker_password_hash, random_secret, secret_hash};
use crate::{StorageError, Store};
use chronicle_domain::{DeviceId, GatewayId, Publisher};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgListener;
use std::time::Duration;

/// The channel the registry's triggers announce changes on (migration 0007).
const REGISTRY_CHANNEL: &str = "chronicle_registry";

/// An identity the broker authenticated, with what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerPrincipal {
    pub identity: Publisher,
    /// The devices whose readings it may publish and whose acks it may read: a device itself,
    /// or every device a gateway relays that is not revoked.
    pub relays: Vec<DeviceId>,
}

/// An identity one of Chronicle's own ingest processes uses on an external broker.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct IngestAccount {
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Everything an external Mosquitto needs to enforce Chronicle's rules itself: the password
/// hashes of every identity that may connect, and what each gateway relays.
#[derive(Debug, Clone, Default)]
pub struct BrokerCredentials {
    /// Devices that are not revoked and have a broker password hash.
    pub devices: Vec<(DeviceId, String)>,
    /// Gateways that are not revoked, with their hash and the devices they relay.
    pub gateways: Vec<(GatewayId, String, Vec<DeviceId>)>,
    /// Ingest accounts that are not revoked.
    pub ingest_accounts: Vec<(String, String)>,
}

/// What changed in the registry, as its triggers announce it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryChange {
    Device(DeviceId),
    Gateway(GatewayId),
    IngestAccount(String),
    /// Announcements may have been missed (the listening connection was lost): re-check every
    /// identity in use.
    Missed,
}

impl RegistryChange {
    fn parse(payload: &str) -> Option<RegistryChange> {
        let (kind, id) = payload.split_once(':')?;
        match kind {
            "device" => DeviceId::parse(id).ok().map(RegistryChange::Device),
            "gateway" => GatewayId::parse(id).ok().map(RegistryChange::Gateway),
            "ingest" => Some(RegistryChange::IngestAccount(id.to_owned())),
            _ => None,
        }
    }
}

/// Hears every registry change, whichever process made it.
pub struct RegistryListener(Announcements);

impl RegistryListener {
    /// The next change. After the connection was lost (and on the first call when it could
    /// not be opened) it yields [`RegistryChange::Missed`] once it listens again.
    pub async fn next(&mut self) -> RegistryChange {
        loop {
            match self.0.next().await {
                None => return RegistryChange::Missed,
                Some(payload) => match RegistryChange::parse(&payload) {
                    Some(change) => return change,
                    None => tracing::warn!(payload, "unknown registry announcement"),
                },
            }
        }
    }
}

/// A PostgreSQL notification channel heard from any process, kept listening across lost
/// connections.
pub(crate) struct Announcements {
    store: Store,
    channel: &'static str,
    listener: Option<PgListener>,
}

impl Announcements {
    pub(crate) fn new(store: &Store, channel: &'static str) -> Announcements {
        Announcements {
            store: store.clone(),
            channel,
            listener: None,
        }
    }

    /// The next payload; `None` once it listens again after the connection was lost (and on
    /// the first call, when it starts listening): what was announced meanwhile is gone.
    pub(crate) async fn next(&mut self) -> Option<String> {
        let mut backoff = Duration::from_millis(200);
        loop {
            let listener = match &mut self.listener {
                Some(listener) => listener,
                None => match listen(&self.store, self.channel).await {
                    Ok(listener) => {
                        self.listener = Some(listener);
                        return None;
                    }
                    Err(error) => {
                        tracing::warn!(%error, channel = self.channel, retry_in_ms = backoff.as_millis() as u64, "cannot listen for announcements");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                },
            };
            match listener.try_recv().await {
                Ok(Some(notification)) => return Some(notification.payload().to_owned()),
                // The connection was lost: what was announced meanwhile is gone.
                Ok(None) | Err(_) => self.listener = None,
            }
        }
    }
}

async fn listen(store: &Store, channel: &str) -> Result<PgListener, StorageError> {
    let mut listener = PgListener::connect_with(store.pool()).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

impl Store {
    /// Starts listening for registry changes; the first [`RegistryListener::next`] says
    /// [`RegistryChange::Missed`] once it listens, so a caller checks what it holds from then on.
    pub fn registry_listener(&self) -> RegistryListener {
        RegistryListener(Announcements::new(self, REGISTRY_CHANNEL))
    }

    /// The device or gateway `username`, if `secret` is its current secret and it is not
    /// revoked. Ingest accounts are not broker clients here (see
    /// [`Store::authenticate_ingest_account`]).
    pub async fn authenticate_broker_client(
        &self,
        username: &str,
        secret: &str,
    ) -> Result<Option<BrokerPrincipal>, StorageError> {
        let identity = if let Ok(gateway) = GatewayId::parse(username) {
            Publisher::Gateway(gateway)
        } else if let Ok(device) = DeviceId::parse(username) {
            Publisher::Device(device)
        } else {
            return Ok(None);
        };
        // An upload credential (kind `uploader`) speaks only Nightscout's HTTP API: its
        // secret never opens an MQTT session.
        let (table, mqtt_only) = match identity {
            Publisher::Device(_) => ("devices", " AND kind <> 'uploader'"),
            Publisher::Gateway(_) => ("gateways", ""),
        };
        let stored: Option<(Vec<u8>,)> = sqlx::query_as(&format!(
            "SELECT secret_hash FROM {table} WHERE id = $1 AND revoked_at IS NULL{mqtt_only}"
        ))
        .bind(username)
        .fetch_optional(self.pool())
        .await?;
        if stored.is_none_or(|(hash,)| hash != secret_hash(secret)) {
            return Ok(None);
        }
        self.broker_principal(&identity).await
    }

    /// What the identity may do now; `None` when it is revoked, erased or unknown.
    pub async fn broker_principal(
        &self,
        identity: &Publisher,
    ) -> Result<Option<BrokerPrincipal>, StorageError> {
        let relays: Option<(Vec<String>,)> = match identity {
            Publisher::Device(id) => {
                sqlx::query_as(
                    "SELECT ARRAY[id] FROM devices
                     WHERE id = $1 AND revoked_at IS NULL AND kind <> 'uploader'",
                )
                .bind(id.as_str())
                .fetch_optional(self.pool())
                .await?
            }
            Publisher::Gateway(id) => {
                sqlx::query_as(
                    "SELECT coalesce((SELECT array_agg(d.id ORDER BY d.id)
                                      FROM gateway_devices gd JOIN devices d ON d.id = gd.device_id
                                      WHERE gd.gateway_id = g.id AND d.revoked_at IS NULL
                                        AND d.kind <> 'uploader'), '{}')
                     FROM gateways g WHERE g.id = $1 AND g.revoked_at IS NULL",
                )
                .bind(id.as_str())
                .fetch_optional(self.pool())
                .await?
            }
        };
        let Some((relays,)) = relays else {
            return Ok(None);
        };
        Ok(Some(BrokerPrincipal {
            identity: identity.clone(),
            relays: relays
                .iter()
                .map(|d| {
                    DeviceId::parse(d).map_err(|_| StorageError::Corrupt {
                        what: "device id",
                        value: d.clone(),
                    })
                })
                .collect::<Result<_, _>>()?,
        }))
    }

    /// Every (gateway, device) pair of `pairs` where the gateway, not revoked, relays the
    /// device, not revoked: the ingest's own check of what a broker let through.
    pub async fn relayed_pairs(
        &self,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<(String, String)>, StorageError> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let (gateways, devices): (Vec<&str>, Vec<&str>) = pairs.iter().copied().unzip();
        Ok(sqlx::query_as(
            "SELECT gd.gateway_id, gd.device_id
             FROM unnest($1::text[], $2::text[]) AS p(gateway_id, device_id)
             JOIN gateway_devices gd USING (gateway_id, device_id)
             JOIN gateways g ON g.id = gd.gateway_id AND g.revoked_at IS NULL
             JOIN devices d ON d.id = gd.device_id AND d.revoked_at IS NULL",
        )
        .bind(&gateways)
        .bind(&devices)
        .fetch_all(self.pool())
        .await?)
    }

    /// Registers an ingest account for an external broker and returns its secret, shown once.
    pub async fn create_ingest_account(
        &self,
        name: &str,
    ) -> Result<(IngestAccount, String), StorageError> {
        let secret = random_secret(32);
        let account = sqlx::query_as::<_, IngestAccount>(
            "INSERT INTO ingest_accounts (name, secret_hash, broker_password_hash)
             VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING
             RETURNING name, created_at, revoked_at",
        )
        .bind(name)
        .bind(secret_hash(&secret))
        .bind(broker_password_hash(&secret))
        .fetch_optional(self.pool())
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_check_violation() => StorageError::Refused(format!(
                "invalid ingest account name {name:?}: use 1-64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit and not with dev_ or gw_"
            )),
            _ => StorageError::Database(e),
        })?
        .ok_or_else(|| StorageError::Refused(format!("ingest account {name} exists already")))?;
        Ok((account, secret))
    }

    pub async fn list_ingest_accounts(&self) -> Result<Vec<IngestAccount>, StorageError> {
        Ok(sqlx::query_as(
            "SELECT name, created_at, revoked_at FROM ingest_accounts ORDER BY created_at, name",
        )
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn revoke_ingest_account(&self, name: &str) -> Result<IngestAccount, StorageError> {
        sqlx::query_as(
            "UPDATE ingest_accounts SET revoked_at = coalesce(revoked_at, now()) WHERE name = $1
             RETURNING name, created_at, revoked_at",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StorageError::NotFound {
            what: "ingest account",
            id: name.to_owned(),
        })
    }

    /// Whether `secret` is the current secret of the ingest account `name`, not revoked.
    pub async fn authenticate_ingest_account(
        &self,
        name: &str,
        secret: &str,
    ) -> Result<bool, StorageError> {
        let stored: Option<(Vec<u8>,)> = sqlx::query_as(
            "SELECT secret_hash FROM ingest_accounts WHERE name = $1 AND revoked_at IS NULL",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        Ok(stored.is_some_and(|(hash,)| hash == secret_hash(secret)))
    }

    /// Whether the ingest account exists and is not revoked.
    pub async fn ingest_account_active(&self, name: &str) -> Result<bool, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM ingest_accounts WHERE name = $1 AND revoked_at IS NULL)",
        )
        .bind(name)
        .fetch_one(self.pool())
        .await?)
    }

    /// Every credential an external Mosquitto checks itself, read in one snapshot.
    pub async fn broker_credentials(&self) -> Result<BrokerCredentials, StorageError> {
        let mut tx = self.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let devices: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, broker_password_hash FROM devices
             WHERE revoked_at IS NULL AND broker_password_hash IS NOT NULL ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let gateways: Vec<(String, String, Vec<String>)> = sqlx::query_as(
            "SELECT g.id, g.broker_password_hash,
                    coalesce((SELECT array_agg(d.id ORDER BY d.id)
                              FROM gateway_devices gd JOIN devices d ON d.id = gd.device_id
                              WHERE gd.gateway_id = g.id AND d.revoked_at IS NULL
                                        AND d.kind <> 'uploader'), '{}')
             FROM gateways g WHERE g.revoked_at IS NULL ORDER BY g.id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let ingest_accounts: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, broker_password_hash FROM ingest_accounts
             WHERE revoked_at IS NULL ORDER BY name",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let device_id = |d: String| {
            DeviceId::parse(&d).map_err(|_| StorageError::Corrupt {
                what: "device id",
                value: d,
            })
        };
        Ok(BrokerCredentials {
            devices: devices
                .into_iter()
                .map(|(id, hash)| Ok((device_id(id)?, hash)))
                .collect::<Result<_, StorageError>>()?,
            gateways: gateways
                .into_iter()
                .map(|(id, hash, relays)| {
                    let gateway = GatewayId::parse(&id).map_err(|_| StorageError::Corrupt {
                        what: "gateway id",
                        value: id.clone(),
                    })?;
                    let relays = relays
                        .into_iter()
                        .map(device_id)
                        .collect::<Result<_, _>>()?;
                    Ok((gateway, hash, relays))
                })
                .collect::<Result<_, StorageError>>()?,
            ingest_accounts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_parse() {
        assert_eq!(
            RegistryChange::parse("device:dev_abc"),
            DeviceId::parse("dev_abc").ok().map(RegistryChange::Device)
        );
        assert_eq!(
            RegistryChange::parse("gateway:gw_k3v9q2m8x1ab"),
            GatewayId::parse("gw_k3v9q2m8x1ab")
                .ok()
                .map(RegistryChange::Gateway)
        );
        assert_eq!(
            RegistryChange::parse("ingest:ingest-1"),
            Some(RegistryChange::IngestAccount("ingest-1".into()))
        );
        assert_eq!(RegistryChange::parse("device:BAD"), None);
        assert_eq!(RegistryChange::parse("nonsense"), None);
    }
}

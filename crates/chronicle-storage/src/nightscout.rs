//! The Nightscout front door's records (docs/nightscout.md): each patient's site id, upload
//! credentials (devices of kind `uploader`), and share links (a named secret whose one grant
//! names the link, so the gate decides and logs its reads like any grantee's).

use crate::credentials::{random_secret, secret_hash};
use crate::gate::PatientActor;
use crate::registry::Device;
use crate::sharing::{NewGrant, insert_grant};
use crate::{StorageError, Store};
use chronicle_domain::sharing::{Access, DataCategory, Grant, Grantee, Purpose};
use chronicle_domain::{DeviceId, DeviceKind};
use chrono::{DateTime, Utc};
use rand::Rng;
use sha1::{Digest, Sha1};
use std::collections::BTreeSet;
use uuid::Uuid;

/// The SHA-1 hex of a secret: what Nightscout clients send in `api-secret` instead of the
/// secret itself.
pub fn nightscout_secret_digest(secret: &str) -> String {
    hex::encode(Sha1::digest(secret.as_bytes()))
}

/// A new upload credential, shown once.
#[derive(Clone)]
pub struct NewUploader {
    pub device: Device,
    /// The API secret to enter in the uploader app.
    pub api_secret: String,
}

impl std::fmt::Debug for NewUploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUploader")
            .field("device", &self.device)
            .field("api_secret", &"***")
            .finish()
    }
}

/// A share link as the patient sees it: its name, and the grant that says what it reads.
#[derive(Debug, Clone)]
pub struct ShareLink {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub name: String,
    pub grant: Grant,
    pub created_at: DateTime<Utc>,
}

/// What a share link may read: its grant's scope (the grantee is the link, the purpose
/// caregiving).
#[derive(Debug, Clone)]
pub struct ShareLinkScope {
    pub categories: BTreeSet<DataCategory>,
    pub access: BTreeSet<Access>,
    pub data_since: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// What presenting a share link's token proves: the link's id and its patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareLinkHolder {
    pub link_id: Uuid,
    pub patient_id: Uuid,
    pub name: String,
}

/// The length of a site id and of a share link's token.
const SITE_ID_CHARS: usize = 20;
const SHARE_TOKEN_CHARS: usize = 32;

fn new_site_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..SITE_ID_CHARS)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

impl Store {
    /// The patient's Nightscout site id, made on first use.
    pub async fn nightscout_site_of(&self, actor: &PatientActor) -> Result<String, StorageError> {
        sqlx::query("INSERT INTO nightscout_sites (site_id, patient_id) VALUES ($1, $2) ON CONFLICT (patient_id) DO NOTHING")
            .bind(new_site_id())
            .bind(actor.patient_id())
            .execute(self.pool())
            .await?;
        Ok(
            sqlx::query_scalar("SELECT site_id FROM nightscout_sites WHERE patient_id = $1")
                .bind(actor.patient_id())
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// The patient whose site this is; `None` for an unknown site.
    pub async fn nightscout_site_patient(
        &self,
        site_id: &str,
    ) -> Result<Option<Uuid>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT patient_id FROM nightscout_sites WHERE site_id = $1")
                .bind(site_id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Registers an upload credential for the patient: a device of kind `uploader` whose
    /// stored hash is of the SHA-1 hex the clients send, with no broker password.
    pub async fn create_uploader_as(
        &self,
        actor: &PatientActor,
        label: Option<&str>,
    ) -> Result<NewUploader, StorageError> {
        let api_secret = random_secret(32);
        let candidate = format!("ns_{}", &new_site_id()[..12]);
        let id = DeviceId::parse(&candidate)
            .map_err(|_| StorageError::corrupt("device id", &candidate))?;
        let created_at: DateTime<Utc> = sqlx::query_scalar(
            "INSERT INTO devices (id, patient_id, kind, label, secret_hash)
             VALUES ($1, $2, 'uploader', $3, $4) RETURNING created_at",
        )
        .bind(id.as_str())
        .bind(actor.patient_id())
        .bind(label)
        .bind(secret_hash(&nightscout_secret_digest(&api_secret)))
        .fetch_one(self.pool())
        .await?;
        Ok(NewUploader {
            device: Device {
                id,
                patient_id: actor.patient_id(),
                kind: DeviceKind::Uploader,
                label: label.map(str::to_owned),
                created_at,
                revoked_at: None,
            },
            api_secret,
        })
    }

    /// The patient's upload credential whose secret has this SHA-1 hex (as clients send it in
    /// `api-secret`, any case), if it is not revoked. Only the patient's own credentials
    /// count: another patient's secret writes nothing here.
    pub async fn nightscout_uploader(
        &self,
        patient_id: Uuid,
        api_secret_digest: &str,
    ) -> Result<Option<DeviceId>, StorageError> {
        let digest = api_secret_digest.trim().to_ascii_lowercase();
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM devices
             WHERE patient_id = $1 AND kind = 'uploader' AND revoked_at IS NULL
               AND secret_hash = $2",
        )
        .bind(patient_id)
        .bind(secret_hash(&digest))
        .fetch_optional(self.pool())
        .await?;
        id.map(|id| DeviceId::parse(&id).map_err(|_| StorageError::corrupt("device id", &id)))
            .transpose()
    }

    /// Makes a share link for the patient: its grant (purpose caregiving, the link as
    /// grantee) and its token, shown once.
    pub async fn create_share_link_as(
        &self,
        actor: &PatientActor,
        name: &str,
        spec: ShareLinkScope,
    ) -> Result<(ShareLink, String), StorageError> {
        let link_id = Uuid::new_v4();
        let token = random_secret(SHARE_TOKEN_CHARS);
        let mut tx = self.begin().await?;
        let grant = insert_grant(
            &mut *tx,
            &NewGrant {
                patient_id: actor.patient_id(),
                grantee: Grantee::ShareLink(link_id),
                categories: spec.categories,
                access: spec.access,
                purpose: Purpose::Caregiving,
                data_since: spec.data_since,
                expires_at: spec.expires_at,
                created_by: Some(actor.user_id()),
            },
        )
        .await?;
        let created_at: DateTime<Utc> = sqlx::query_scalar(
            "INSERT INTO share_links (id, patient_id, name, token_hash, grant_id, created_by)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at",
        )
        .bind(link_id)
        .bind(actor.patient_id())
        .bind(name.trim())
        .bind(secret_hash(&token))
        .bind(grant.id)
        .bind(actor.user_id())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((
            ShareLink {
                id: link_id,
                patient_id: actor.patient_id(),
                name: name.trim().to_owned(),
                grant,
                created_at,
            },
            token,
        ))
    }

    /// The patient's share links, newest first, each with its grant (in any state).
    pub async fn share_links_of(
        &self,
        actor: &PatientActor,
    ) -> Result<Vec<ShareLink>, StorageError> {
        let rows: Vec<(Uuid, String, Uuid, DateTime<Utc>)> = sqlx::query_as(
            "SELECT id, name, grant_id, created_at FROM share_links
             WHERE patient_id = $1 ORDER BY created_at DESC, id",
        )
        .bind(actor.patient_id())
        .fetch_all(self.pool())
        .await?;
        let grants = self.grants_of(actor).await?;
        rows.into_iter()
            .map(|(id, name, grant_id, created_at)| {
                let grant = grants
                    .iter()
                    .find(|g| g.id == grant_id)
                    .cloned()
                    .ok_or_else(|| StorageError::corrupt("share link grant", grant_id))?;
                Ok(ShareLink {
                    id,
                    patient_id: actor.patient_id(),
                    name,
                    grant,
                    created_at,
                })
            })
            .collect()
    }

    /// Revokes one of the patient's share links (its grant), effective on the next request;
    /// `None` if the patient has no such link.
    pub async fn revoke_share_link_as(
        &self,
        actor: &PatientActor,
        link_id: Uuid,
    ) -> Result<Option<ShareLink>, StorageError> {
        let grant_id: Option<Uuid> = sqlx::query_scalar(
            "SELECT grant_id FROM share_links WHERE id = $1 AND patient_id = $2",
        )
        .bind(link_id)
        .bind(actor.patient_id())
        .fetch_optional(self.pool())
        .await?;
        let Some(grant_id) = grant_id else {
            return Ok(None);
        };
        self.revoke_grant_as(actor, grant_id).await?;
        Ok(self
            .share_links_of(actor)
            .await?
            .into_iter()
            .find(|l| l.id == link_id))
    }

    /// The link whose token this is. Whether it allows anything now is the gate's decision
    /// (its grant may be revoked or expired).
    pub async fn share_link_holder(
        &self,
        token: &str,
    ) -> Result<Option<ShareLinkHolder>, StorageError> {
        Ok(sqlx::query_as::<_, (Uuid, Uuid, String)>(
            "SELECT id, patient_id, name FROM share_links WHERE token_hash = $1",
        )
        .bind(secret_hash(token))
        .fetch_optional(self.pool())
        .await?
        .map(|(link_id, patient_id, name)| ShareLinkHolder {
            link_id,
            patient_id,
            name,
        }))
    }

    /// A share link's name, for the access log and the grant list.
    pub async fn share_link_name(&self, link_id: Uuid) -> Result<Option<String>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT name FROM share_links WHERE id = $1")
                .bind(link_id)
                .fetch_optional(self.pool())
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_what_nightscout_clients_send() {
        // `echo -n 'abc' | sha1sum`
        assert_eq!(
            nightscout_secret_digest("abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(new_site_id().len(), SITE_ID_CHARS);
    }
}

//! Grants, emergency accesses and the access log. The decisions themselves are made by
//! `chronicle_domain::sharing::decide`; this module only stores and loads what it needs.

use crate::gate::PatientActor;
use crate::rows::FetchRecords;
use crate::{StorageError, Store};
use chronicle_domain::sharing::AccessAction;
use chronicle_domain::sharing::{Access, DataCategory, EmergencyAccess, Grant, Grantee, Purpose};
use chronicle_domain::sharing::{Principal, Role, deidentify};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeSet;
use uuid::Uuid;

/// A grant as the patient asks for it.
#[derive(Debug, Clone)]
pub struct NewGrant {
    pub patient_id: Uuid,
    pub grantee: Grantee,
    pub categories: BTreeSet<DataCategory>,
    pub access: BTreeSet<Access>,
    pub purpose: Purpose,
    pub data_since: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
}

/// One access-log entry as stored: an attempt, numbered and timed by the database.
#[derive(Debug, Clone, Serialize)]
pub struct AccessLogEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub attempt: AccessAttempt,
}

/// An access-log row as stored.
#[derive(sqlx::FromRow)]
struct AccessLogRow {
    id: i64,
    at: DateTime<Utc>,
    actor_id: Option<Uuid>,
    actor_role: Option<String>,
    patient_id: Uuid,
    action: String,
    category: Option<String>,
    purpose: Option<String>,
    grant_id: Option<Uuid>,
    emergency_id: Option<Uuid>,
    outcome: String,
    reason: Option<String>,
}

impl TryFrom<AccessLogRow> for AccessLogEntry {
    type Error = StorageError;
    fn try_from(row: AccessLogRow) -> Result<Self, StorageError> {
        Ok(AccessLogEntry {
            id: row.id,
            at: row.at,
            attempt: AccessAttempt {
                actor_id: row.actor_id,
                actor_role: row.actor_role,
                patient_id: row.patient_id,
                action: AccessAction::parse(&row.action)
                    .ok_or_else(|| StorageError::corrupt("access-log action", &row.action))?,
                category: parse_stored("access-log category", row.category, DataCategory::parse)?,
                purpose: parse_stored("access-log purpose", row.purpose, Purpose::parse)?,
                grant_id: row.grant_id,
                emergency_id: row.emergency_id,
                allowed: match row.outcome.as_str() {
                    "allowed" => true,
                    "denied" => false,
                    other => return Err(StorageError::corrupt("access-log outcome", other)),
                },
                reason: row.reason,
            },
        })
    }
}

/// An optional stored name parsed into its type.
fn parse_stored<T>(
    what: &'static str,
    text: Option<String>,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>, StorageError> {
    text.map(|t| parse(&t).ok_or_else(|| StorageError::corrupt(what, &t)))
        .transpose()
}

/// One attempt to reach a patient's data, allowed or denied: what the access log records
/// (the database numbers and times it).
#[derive(Debug, Clone, Serialize)]
pub struct AccessAttempt {
    pub actor_id: Option<Uuid>,
    /// The actor's role (`clinician`, …), or what acted without a user (`organization_webhook`).
    pub actor_role: Option<String>,
    pub patient_id: Uuid,
    pub action: AccessAction,
    pub category: Option<DataCategory>,
    pub purpose: Option<Purpose>,
    pub grant_id: Option<Uuid>,
    pub emergency_id: Option<Uuid>,
    pub allowed: bool,
    /// Why it was refused (a `DenyReason`'s spelling).
    pub reason: Option<String>,
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    id: Uuid,
    patient_id: Uuid,
    grantee_type: String,
    grantee_id: Uuid,
    categories: Vec<String>,
    access: Vec<String>,
    purpose: String,
    data_since: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

const GRANT_COLUMNS: &str = "id, patient_id, grantee_type, grantee_id, categories, access, purpose, \
     data_since, expires_at, revoked_at, created_at";

impl TryFrom<GrantRow> for Grant {
    type Error = StorageError;
    fn try_from(row: GrantRow) -> Result<Self, Self::Error> {
        let grantee = match row.grantee_type.as_str() {
            "user" => Grantee::User(row.grantee_id),
            "care_team" => Grantee::CareTeam(row.grantee_id),
            "organization" => Grantee::Organization(row.grantee_id),
            "share_link" => Grantee::ShareLink(row.grantee_id),
            other => return Err(StorageError::corrupt("grantee type", other)),
        };
        Ok(Grant {
            id: row.id,
            patient_id: row.patient_id,
            grantee,
            categories: stored_categories(&row.categories)?,
            access: stored_access(&row.access)?,
            purpose: stored_purpose(&row.purpose)?,
            data_since: row.data_since,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            created_at: row.created_at,
        })
    }
}

/// A scope's categories as stored (text), read back.
pub(crate) fn stored_categories(stored: &[String]) -> Result<BTreeSet<DataCategory>, StorageError> {
    stored
        .iter()
        .map(|c| DataCategory::parse(c).ok_or_else(|| StorageError::corrupt("data category", c)))
        .collect()
}

/// A scope's access as stored (text), read back.
pub(crate) fn stored_access(stored: &[String]) -> Result<BTreeSet<Access>, StorageError> {
    stored
        .iter()
        .map(|a| Access::parse(a).ok_or_else(|| StorageError::corrupt("access", a)))
        .collect()
}

/// A scope's purpose as stored (text), read back.
pub(crate) fn stored_purpose(stored: &str) -> Result<Purpose, StorageError> {
    Purpose::parse(stored).ok_or_else(|| StorageError::corrupt("purpose", stored))
}

fn grantee_parts(grantee: Grantee) -> (&'static str, Uuid) {
    match grantee {
        Grantee::User(id) => ("user", id),
        Grantee::CareTeam(id) => ("care_team", id),
        Grantee::Organization(id) => ("organization", id),
        Grantee::ShareLink(id) => ("share_link", id),
    }
}

/// Stores a new grant through `executor` (the pool, or a transaction that does more).
pub(crate) async fn insert_grant<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    grant: &NewGrant,
) -> Result<Grant, StorageError> {
    let (grantee_type, grantee_id) = grantee_parts(grant.grantee);
    let categories: Vec<&str> = grant.categories.iter().map(|c| c.as_str()).collect();
    let access: Vec<&str> = grant.access.iter().map(|a| a.as_str()).collect();
    // A study's de-identification secrets, drawn once (see `deidentify`).
    let research = (grant.purpose == Purpose::Research).then(|| {
        (
            deidentify::shift_seconds(rand::random::<f64>()),
            rand::random::<f64>(),
        )
    });
    let row = sqlx::query_as::<_, GrantRow>(&format!(
        "INSERT INTO grants (id, patient_id, grantee_type, grantee_id, categories, access, purpose,
             data_since, expires_at, created_by, research_shift_seconds,
             research_holdback_fraction)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         RETURNING {GRANT_COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(grant.patient_id)
    .bind(grantee_type)
    .bind(grantee_id)
    .bind(&categories)
    .bind(&access)
    .bind(grant.purpose.as_str())
    .bind(grant.data_since)
    .bind(grant.expires_at)
    .bind(grant.created_by)
    .bind(research.map(|(shift, _)| shift))
    .bind(research.map(|(_, fraction)| fraction))
    .fetch_one(executor)
    .await?;
    Grant::try_from(row)
}

impl Store {
    pub async fn create_grant(&self, grant: &NewGrant) -> Result<Grant, StorageError> {
        insert_grant(self.pool(), grant).await
    }

    /// Every grant of a patient, in any state, oldest first.
    pub async fn grants_for_patient(&self, patient_id: Uuid) -> Result<Vec<Grant>, StorageError> {
        sqlx::query_as::<_, GrantRow>(&format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE patient_id = $1 ORDER BY created_at, id"
        ))
        .bind(patient_id)
        .fetch_records(self.pool())
        .await
    }

    /// Revokes a grant of this patient, effective immediately; `None` if the patient has no
    /// such grant. Revoking twice keeps the first time.
    pub async fn revoke_grant(
        &self,
        patient_id: Uuid,
        grant_id: Uuid,
    ) -> Result<Option<Grant>, StorageError> {
        sqlx::query_as::<_, GrantRow>(&format!(
            "UPDATE grants SET revoked_at = coalesce(revoked_at, now())
             WHERE id = $1 AND patient_id = $2 RETURNING {GRANT_COLUMNS}"
        ))
        .bind(grant_id)
        .bind(patient_id)
        .fetch_optional_record(self.pool())
        .await
    }

    pub async fn open_emergency_access(
        &self,
        patient_id: Uuid,
        clinician_id: Uuid,
        reason: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<EmergencyAccess, StorageError> {
        let (id, opened_at): (Uuid, DateTime<Utc>) = sqlx::query_as(
            "INSERT INTO emergency_accesses (id, patient_id, clinician_id, reason, expires_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id, opened_at",
        )
        .bind(Uuid::new_v4())
        .bind(patient_id)
        .bind(clinician_id)
        .bind(reason)
        .bind(expires_at)
        .fetch_one(self.pool())
        .await?;
        Ok(EmergencyAccess {
            id,
            patient_id,
            clinician_id,
            reason: reason.to_owned(),
            opened_at,
            expires_at,
        })
    }

    /// A clinician's emergency accesses to one patient (any state).
    pub async fn emergency_accesses(
        &self,
        clinician_id: Uuid,
        patient_id: Uuid,
    ) -> Result<Vec<EmergencyAccess>, StorageError> {
        let rows: Vec<(Uuid, String, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT id, reason, opened_at, expires_at FROM emergency_accesses
             WHERE clinician_id = $1 AND patient_id = $2 ORDER BY opened_at",
        )
        .bind(clinician_id)
        .bind(patient_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, reason, opened_at, expires_at)| EmergencyAccess {
                id,
                patient_id,
                clinician_id,
                reason,
                opened_at,
                expires_at,
            })
            .collect())
    }

    pub async fn append_access_log(&self, attempt: &AccessAttempt) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO access_log (actor_id, actor_role, patient_id, action, category, purpose,
                 grant_id, emergency_id, outcome, reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(attempt.actor_id)
        .bind(&attempt.actor_role)
        .bind(attempt.patient_id)
        .bind(attempt.action.as_str())
        .bind(attempt.category.map(|c| c.as_str()))
        .bind(attempt.purpose.map(|p| p.as_str()))
        .bind(attempt.grant_id)
        .bind(attempt.emergency_id)
        .bind(if attempt.allowed { "allowed" } else { "denied" })
        .bind(&attempt.reason)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A patient's access log, newest first, `limit` entries older than `before_id` (a cursor).
    pub async fn access_log(
        &self,
        patient_id: Uuid,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AccessLogEntry>, StorageError> {
        sqlx::query_as::<_, AccessLogRow>(
            "SELECT id, at, actor_id, actor_role, patient_id, action, category, purpose, grant_id,
                    emergency_id, outcome, reason
             FROM access_log WHERE patient_id = $1 AND ($2::bigint IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3",
        )
        .bind(patient_id)
        .bind(before_id)
        .bind(limit)
        .fetch_records(self.pool())
        .await
    }
}

impl Store {
    /// The grants of each of `patient_ids` (in any state, oldest first) that name the
    /// principal, one of their current care teams or one of their organizations: the only
    /// grants that can decide a request of theirs. One query.
    pub async fn grants_naming(
        &self,
        principal: &chronicle_domain::sharing::Principal,
        patient_ids: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, Vec<Grant>>, StorageError> {
        let rows = sqlx::query_as::<_, GrantRow>(&format!(
            "SELECT {GRANT_COLUMNS} FROM grants
             WHERE ((grantee_type = 'user' AND grantee_id = $1)
                 OR (grantee_type = 'care_team' AND grantee_id = ANY($2))
                 OR (grantee_type = 'organization' AND grantee_id = ANY($3)))
               AND patient_id = ANY($4)
             ORDER BY created_at, id"
        ))
        .bind(principal.user_id)
        .bind(&principal.care_teams)
        .bind(&principal.organizations)
        .bind(patient_ids)
        .fetch_all(self.pool())
        .await?;
        let mut out: std::collections::HashMap<Uuid, Vec<Grant>> = std::collections::HashMap::new();
        for row in rows {
            let grant = Grant::try_from(row)?;
            out.entry(grant.patient_id).or_default().push(grant);
        }
        Ok(out)
    }

    /// Every emergency access to the actor's patient, newest first, with the name of the
    /// clinician who opened it: what the patient (or their guardian) is shown.
    pub async fn emergency_accesses_of(
        &self,
        actor: &PatientActor,
    ) -> Result<Vec<(EmergencyAccess, String)>, StorageError> {
        type Row = (Uuid, Uuid, String, DateTime<Utc>, DateTime<Utc>, String);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT e.id, e.clinician_id, e.reason, e.opened_at, e.expires_at, u.display_name
             FROM emergency_accesses e JOIN users u ON u.id = e.clinician_id
             WHERE e.patient_id = $1 ORDER BY e.opened_at DESC",
        )
        .bind(actor.patient_id())
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, clinician_id, reason, opened_at, expires_at, name)| {
                (
                    EmergencyAccess {
                        id,
                        patient_id: actor.patient_id(),
                        clinician_id,
                        reason,
                        opened_at,
                        expires_at,
                    },
                    name,
                )
            })
            .collect())
    }

    /// A clinician's emergency accesses to any of `patient_ids` (any state), in one query.
    pub async fn emergency_accesses_to(
        &self,
        clinician_id: Uuid,
        patient_ids: &[Uuid],
    ) -> Result<Vec<EmergencyAccess>, StorageError> {
        type Row = (Uuid, Uuid, String, DateTime<Utc>, DateTime<Utc>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, patient_id, reason, opened_at, expires_at FROM emergency_accesses
             WHERE clinician_id = $1 AND patient_id = ANY($2) ORDER BY opened_at",
        )
        .bind(clinician_id)
        .bind(patient_ids)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, patient_id, reason, opened_at, expires_at)| EmergencyAccess {
                    id,
                    patient_id,
                    clinician_id,
                    reason,
                    opened_at,
                    expires_at,
                },
            )
            .collect())
    }

    /// Appends many entries in one statement (in the given order).
    pub async fn append_access_log_many(
        &self,
        entries: &[AccessAttempt],
    ) -> Result<(), StorageError> {
        if entries.is_empty() {
            return Ok(());
        }
        let column = |f: fn(&AccessAttempt) -> Option<String>| -> Vec<Option<String>> {
            entries.iter().map(f).collect()
        };
        sqlx::query(
            "INSERT INTO access_log (actor_id, actor_role, patient_id, action, category, purpose,
                 grant_id, emergency_id, outcome, reason)
             SELECT a, b, c, d, e, f, g, h, i, j
             FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[],
                 $6::text[], $7::uuid[], $8::uuid[], $9::text[], $10::text[])
                 WITH ORDINALITY AS u (a, b, c, d, e, f, g, h, i, j, n)
             ORDER BY n",
        )
        .bind(entries.iter().map(|e| e.actor_id).collect::<Vec<_>>())
        .bind(column(|e| e.actor_role.clone()))
        .bind(entries.iter().map(|e| e.patient_id).collect::<Vec<_>>())
        .bind(
            entries
                .iter()
                .map(|e| e.action.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(column(|e| e.category.map(|c| c.as_str().to_owned())))
        .bind(column(|e| e.purpose.map(|p| p.as_str().to_owned())))
        .bind(entries.iter().map(|e| e.grant_id).collect::<Vec<_>>())
        .bind(entries.iter().map(|e| e.emergency_id).collect::<Vec<_>>())
        .bind(
            entries
                .iter()
                .map(|e| if e.allowed { "allowed" } else { "denied" })
                .collect::<Vec<_>>(),
        )
        .bind(column(|e| e.reason.clone()))
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

impl Store {
    /// The patient's grants, in any state.
    pub async fn grants_of(&self, actor: &PatientActor) -> Result<Vec<Grant>, StorageError> {
        self.grants_for_patient(actor.patient_id()).await
    }

    /// A grant the patient (or their guardian) makes.
    pub async fn grant_as(
        &self,
        actor: &PatientActor,
        grant: GrantSpec,
    ) -> Result<Grant, StorageError> {
        self.create_grant(&NewGrant {
            patient_id: actor.patient_id(),
            grantee: grant.grantee,
            categories: grant.categories,
            access: grant.access,
            purpose: grant.purpose,
            data_since: grant.data_since,
            expires_at: grant.expires_at,
            created_by: Some(actor.user_id()),
        })
        .await
    }

    /// Revokes one of the patient's grants; `None` if the patient has no such grant.
    pub async fn revoke_grant_as(
        &self,
        actor: &PatientActor,
        grant_id: Uuid,
    ) -> Result<Option<Grant>, StorageError> {
        self.revoke_grant(actor.patient_id(), grant_id).await
    }

    /// The patient's access log, newest first.
    pub async fn access_log_of(
        &self,
        actor: &PatientActor,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AccessLogEntry>, StorageError> {
        self.access_log(actor.patient_id(), before_id, limit).await
    }

    /// Opens an emergency access for a clinician and records it in the patient's access log.
    /// `None` unless the clinician has a care relationship with the patient: a care grant of
    /// the patient, active or not, names them, one of their teams, their organization or a team
    /// of it (so an unknown patient and a stranger's patient look alike). Refused while one is
    /// open, and beyond [`EMERGENCY_OPENINGS_PER_WEEK`] openings by one clinician for one
    /// patient in seven days.
    pub async fn open_emergency_access_as(
        &self,
        principal: &Principal,
        patient_id: Uuid,
        reason: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Option<EmergencyAccess>, StorageError> {
        if principal.role != Some(Role::Clinician)
            || !self.has_care_relationship(principal, patient_id).await?
        {
            return Ok(None);
        }
        let recent: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT opened_at, expires_at FROM emergency_accesses
             WHERE clinician_id = $1 AND patient_id = $2 AND opened_at > now() - interval '7 days'",
        )
        .bind(principal.user_id)
        .bind(patient_id)
        .fetch_all(self.pool())
        .await?;
        let now = Utc::now();
        if let Some((_, until)) = recent.iter().find(|(_, until)| *until > now) {
            return Err(StorageError::Refused(format!(
                "an emergency access to this patient is already open until {}",
                until.to_rfc3339()
            )));
        }
        if recent.len() >= EMERGENCY_OPENINGS_PER_WEEK {
            return Err(StorageError::Refused(format!(
                "at most {EMERGENCY_OPENINGS_PER_WEEK} emergency accesses to one patient in 7 days: \
                 ask the patient or their care team for a grant"
            )));
        }
        let opened = self
            .open_emergency_access(patient_id, principal.user_id, reason, expires_at)
            .await?;
        self.append_access_log(&AccessAttempt {
            actor_id: Some(principal.user_id),
            actor_role: Some(Role::Clinician.as_str().to_owned()),
            patient_id,
            action: AccessAction::OpenEmergencyAccess,
            category: None,
            purpose: Some(Purpose::Care),
            grant_id: None,
            emergency_id: Some(opened.id),
            allowed: true,
            reason: Some(reason.to_owned()),
        })
        .await?;
        Ok(Some(opened))
    }
}

/// How often one clinician may open an emergency access to one patient in seven days: an
/// emergency is rare, and repeated openings are care that needs a grant.
pub const EMERGENCY_OPENINGS_PER_WEEK: usize = 3;

impl Store {
    /// Whether a care grant of the patient — active, expired or revoked — names the clinician,
    /// one of their care teams, one of their organizations, or a team of one of them.
    async fn has_care_relationship(
        &self,
        principal: &Principal,
        patient_id: Uuid,
    ) -> Result<bool, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (
                 SELECT 1 FROM grants g
                 WHERE g.patient_id = $1 AND g.purpose = 'care'
                   AND ((g.grantee_type = 'user' AND g.grantee_id = $2)
                     OR (g.grantee_type = 'care_team' AND (g.grantee_id = ANY($3)
                         OR g.grantee_id IN (SELECT id FROM care_teams
                                             WHERE organization_id = ANY($4))))
                     OR (g.grantee_type = 'organization' AND (g.grantee_id = ANY($4)
                         OR g.grantee_id IN (SELECT organization_id FROM care_teams
                                             WHERE id = ANY($3))))))",
        )
        .bind(patient_id)
        .bind(principal.user_id)
        .bind(&principal.care_teams)
        .bind(&principal.organizations)
        .fetch_one(self.pool())
        .await?)
    }
}

/// What a patient asks for when sharing; the patient is the actor's.
#[derive(Debug, Clone)]
pub struct GrantSpec {
    pub grantee: Grantee,
    pub categories: std::collections::BTreeSet<DataCategory>,
    pub access: std::collections::BTreeSet<Access>,
    pub purpose: Purpose,
    pub data_since: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

//! A care team's invitations: a short code the clinic hands a patient, who opens it and
//! shares with the team, choosing what. The team proposes (categories, access, purpose); the
//! patient decides, and what they decide is an ordinary grant to the team. Only a hash of the
//! code is kept: it is a bearer secret until it is used up, expires or is revoked.

use crate::gate::PatientActor;
use crate::rows::FetchRecords;
use crate::sharing::{
    GrantSpec, NewGrant, insert_grant, stored_access, stored_categories, stored_purpose,
};
use crate::{StorageError, Store};
use chronicle_domain::sharing::{Access, DataCategory, Grant, Grantee, Purpose};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use uuid::Uuid;

/// What a team member asks for when inviting.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub team_id: Uuid,
    pub created_by: Uuid,
    pub label: String,
    pub categories: BTreeSet<DataCategory>,
    pub access: BTreeSet<Access>,
    pub purpose: Purpose,
    pub max_uses: i32,
    pub expires_at: DateTime<Utc>,
}

/// An invitation as stored, with the names a patient knows the team by.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: Uuid,
    pub team_id: Uuid,
    pub team_name: String,
    pub organization_name: String,
    /// The team's own note; never shown to a patient.
    pub label: String,
    pub categories: BTreeSet<DataCategory>,
    pub access: BTreeSet<Access>,
    pub purpose: Purpose,
    pub max_uses: i32,
    pub uses: i32,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Whether an invitation can still be accepted, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationState {
    Open,
    Expired,
    UsedUp,
    Revoked,
}

impl InvitationState {
    pub const ALL: [InvitationState; 4] = [
        InvitationState::Open,
        InvitationState::Expired,
        InvitationState::UsedUp,
        InvitationState::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InvitationState::Open => "open",
            InvitationState::Expired => "expired",
            InvitationState::UsedUp => "used_up",
            InvitationState::Revoked => "revoked",
        }
    }
}

impl Invitation {
    pub fn state(&self, now: DateTime<Utc>) -> InvitationState {
        if self.revoked_at.is_some() {
            InvitationState::Revoked
        } else if self.expires_at <= now {
            InvitationState::Expired
        } else if self.uses >= self.max_uses {
            InvitationState::UsedUp
        } else {
            InvitationState::Open
        }
    }
}

/// Why an acceptance stored nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptRefusal {
    /// Expired, used up or revoked between reading and accepting.
    NoLongerOpen,
    /// This patient already shares through this invitation.
    AlreadyAccepted,
}

#[derive(sqlx::FromRow)]
struct InvitationRow {
    id: Uuid,
    team_id: Uuid,
    team_name: String,
    organization_name: String,
    label: String,
    categories: Vec<String>,
    access: Vec<String>,
    purpose: String,
    max_uses: i32,
    uses: i32,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

const INVITATION_SELECT: &str = "SELECT i.id, i.team_id, t.name AS team_name,
        o.name AS organization_name, i.label, i.categories, i.access, i.purpose, i.max_uses,
        i.uses, i.created_by, i.created_at, i.expires_at, i.revoked_at
     FROM care_team_invitations i
     JOIN care_teams t ON t.id = i.team_id
     JOIN organizations o ON o.id = t.organization_id";

impl TryFrom<InvitationRow> for Invitation {
    type Error = StorageError;
    fn try_from(row: InvitationRow) -> Result<Self, Self::Error> {
        Ok(Invitation {
            id: row.id,
            team_id: row.team_id,
            team_name: row.team_name,
            organization_name: row.organization_name,
            label: row.label,
            categories: stored_categories(&row.categories)?,
            access: stored_access(&row.access)?,
            purpose: stored_purpose(&row.purpose)?,
            max_uses: row.max_uses,
            uses: row.uses,
            created_by: row.created_by,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        })
    }
}

impl Store {
    /// Stores a new invitation under the hash of its code.
    pub async fn create_invitation(
        &self,
        invitation: &NewInvitation,
        code_hash: &[u8],
    ) -> Result<Invitation, StorageError> {
        let id = Uuid::new_v4();
        let categories: Vec<&str> = invitation.categories.iter().map(|c| c.as_str()).collect();
        let access: Vec<&str> = invitation.access.iter().map(|a| a.as_str()).collect();
        sqlx::query(
            "INSERT INTO care_team_invitations (id, team_id, code_hash, label, categories, access,
                 purpose, max_uses, created_by, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id)
        .bind(invitation.team_id)
        .bind(code_hash)
        .bind(&invitation.label)
        .bind(&categories)
        .bind(&access)
        .bind(invitation.purpose.as_str())
        .bind(invitation.max_uses)
        .bind(invitation.created_by)
        .bind(invitation.expires_at)
        .execute(self.pool())
        .await?;
        self.invitation_where("i.id = $1", id)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                what: "invitation",
                id: id.to_string(),
            })
    }

    /// The team's invitations, newest first.
    pub async fn team_invitations(&self, team_id: Uuid) -> Result<Vec<Invitation>, StorageError> {
        sqlx::query_as::<_, InvitationRow>(&format!(
            "{INVITATION_SELECT} WHERE i.team_id = $1 ORDER BY i.created_at DESC, i.id"
        ))
        .bind(team_id)
        .fetch_records(self.pool())
        .await
    }

    /// Revokes one of the team's invitations (no later acceptance); `None` if the team has no
    /// such invitation. Grants already made stay: they are the patients' to revoke.
    pub async fn revoke_invitation(
        &self,
        team_id: Uuid,
        invitation_id: Uuid,
    ) -> Result<Option<Invitation>, StorageError> {
        let revoked: Option<Uuid> = sqlx::query_scalar(
            "UPDATE care_team_invitations SET revoked_at = coalesce(revoked_at, now())
             WHERE id = $1 AND team_id = $2 RETURNING id",
        )
        .bind(invitation_id)
        .bind(team_id)
        .fetch_optional(self.pool())
        .await?;
        match revoked {
            Some(id) => self.invitation_where("i.id = $1", id).await,
            None => Ok(None),
        }
    }

    /// The invitation whose code hashes to `code_hash`, in any state.
    pub async fn invitation_by_code(
        &self,
        code_hash: &[u8],
    ) -> Result<Option<Invitation>, StorageError> {
        self.invitation_where("i.code_hash = $1", code_hash).await
    }

    async fn invitation_where<T>(
        &self,
        condition: &str,
        value: T,
    ) -> Result<Option<Invitation>, StorageError>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
    {
        sqlx::query_as::<_, InvitationRow>(&format!("{INVITATION_SELECT} WHERE {condition}"))
            .bind(value)
            .fetch_optional_record(self.pool())
            .await
    }

    /// The patient (or their guardian) accepts: one use of the invitation is taken and the
    /// patient's grant to the team is stored, in one transaction, so a used-up, expired or
    /// revoked invitation never makes a grant and a use never goes without one.
    pub async fn accept_invitation(
        &self,
        actor: &PatientActor,
        invitation: &Invitation,
        grant: GrantSpec,
    ) -> Result<Result<Grant, AcceptRefusal>, StorageError> {
        let mut tx = self.begin().await?;
        let taken: Option<Uuid> = sqlx::query_scalar(
            "UPDATE care_team_invitations SET uses = uses + 1
             WHERE id = $1 AND revoked_at IS NULL AND expires_at > now() AND uses < max_uses
             RETURNING id",
        )
        .bind(invitation.id)
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_none() {
            return Ok(Err(AcceptRefusal::NoLongerOpen));
        }
        let already: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM care_team_invitation_acceptances
                            WHERE invitation_id = $1 AND patient_id = $2)",
        )
        .bind(invitation.id)
        .bind(actor.patient_id())
        .fetch_one(&mut *tx)
        .await?;
        if already {
            return Ok(Err(AcceptRefusal::AlreadyAccepted));
        }
        let grant = insert_grant(
            &mut *tx,
            &NewGrant {
                patient_id: actor.patient_id(),
                grantee: Grantee::CareTeam(invitation.team_id),
                categories: grant.categories,
                access: grant.access,
                purpose: grant.purpose,
                data_since: grant.data_since,
                expires_at: grant.expires_at,
                created_by: Some(actor.user_id()),
            },
        )
        .await?;
        // Two acceptances racing for one patient: the primary key lets one through.
        let recorded = sqlx::query(
            "INSERT INTO care_team_invitation_acceptances (invitation_id, patient_id, grant_id)
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(invitation.id)
        .bind(actor.patient_id())
        .bind(grant.id)
        .execute(&mut *tx)
        .await?;
        if recorded.rows_affected() == 0 {
            return Ok(Err(AcceptRefusal::AlreadyAccepted));
        }
        tx.commit().await?;
        Ok(Ok(grant))
    }
}

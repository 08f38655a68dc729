//! Users, organizations, care teams, guardians and bearer tokens.

use crate::credentials::{random_secret, secret_hash};
use crate::gate::PatientActor;
use crate::rows::FetchRecords;
use crate::{StorageError, Store};
use chronicle_domain::sharing::{AccessAction, Basis};
use chronicle_domain::sharing::{Principal, Role};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CareTeam {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub patient_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// When an administrator disabled the account (or its patient record was erased).
    pub disabled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub display_name: String,
    pub role: Role,
    /// An argon2id PHC string (`credentials::hash_password`), or `None` for no password log-in.
    pub password_hash: Option<String>,
    pub patient_id: Option<Uuid>,
}

/// Kinds of bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// From a password log-in; expires.
    Session,
    /// For an integration; expires (90 days by default, at most a year) unless revoked first.
    Api,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Session => "session",
            TokenKind::Api => "api",
        }
    }

    pub fn parse(text: &str) -> Option<TokenKind> {
        [TokenKind::Session, TokenKind::Api]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// A token as its owner sees it later: never the secret.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TokenInfo {
    pub id: Uuid,
    /// `session` or `api`.
    pub kind: String,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A token as issued: the secret is shown once, only its hash is kept.
#[derive(Clone, Serialize)]
pub struct IssuedToken {
    pub id: Uuid,
    pub token: String,
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("id", &self.id)
            .field("token", &"***")
            .finish()
    }
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    display_name: String,
    role: String,
    patient_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    disabled_at: Option<DateTime<Utc>>,
}

impl TryFrom<UserRow> for User {
    type Error = StorageError;
    fn try_from(row: UserRow) -> Result<Self, Self::Error> {
        Ok(User {
            role: Role::parse(&row.role).ok_or_else(|| StorageError::Corrupt {
                what: "user role",
                value: row.role.clone(),
            })?,
            id: row.id,
            email: row.email,
            display_name: row.display_name,
            patient_id: row.patient_id,
            created_at: row.created_at,
            disabled_at: row.disabled_at,
        })
    }
}

const USER_COLUMNS: &str = "id, email, display_name, role, patient_id, created_at, disabled_at";

/// [`USER_COLUMNS`] qualified by a table alias, for joins.
fn user_columns_of(alias: &str) -> String {
    USER_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    pub async fn create_organization(&self, name: &str) -> Result<Organization, StorageError> {
        Ok(sqlx::query_as::<_, Organization>(
            "INSERT INTO organizations (id, name) VALUES ($1, $2) RETURNING id, name, created_at",
        )
        .bind(Uuid::new_v4())
        .bind(name)
        .fetch_one(self.pool())
        .await?)
    }

    /// The organization with this id, if it exists.
    pub async fn organization(&self, id: Uuid) -> Result<Option<Organization>, StorageError> {
        Ok(sqlx::query_as::<_, Organization>(
            "SELECT id, name, created_at FROM organizations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// The oldest organization with this exact name, if any.
    pub async fn organization_named(
        &self,
        name: &str,
    ) -> Result<Option<Organization>, StorageError> {
        Ok(sqlx::query_as::<_, Organization>(
            "SELECT id, name, created_at FROM organizations WHERE name = $1 ORDER BY created_at LIMIT 1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn create_care_team(
        &self,
        organization_id: Uuid,
        name: &str,
    ) -> Result<CareTeam, StorageError> {
        Ok(sqlx::query_as::<_, CareTeam>(
            "INSERT INTO care_teams (id, organization_id, name) VALUES ($1, $2, $3)
             RETURNING id, organization_id, name, created_at",
        )
        .bind(Uuid::new_v4())
        .bind(organization_id)
        .bind(name)
        .fetch_one(self.pool())
        .await?)
    }

    pub async fn create_user(&self, user: &NewUser) -> Result<User, StorageError> {
        let row = sqlx::query_as::<_, UserRow>(&format!(
            "INSERT INTO users (id, email, display_name, role, password_hash, patient_id)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {USER_COLUMNS}"
        ))
        .bind(Uuid::new_v4())
        .bind(&user.email)
        .bind(&user.display_name)
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(user.patient_id)
        .fetch_one(self.pool())
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Refused(
                "an account with this e-mail (or for this patient) exists already".into(),
            ),
            other => other.into(),
        })?;
        User::try_from(row)
    }

    pub async fn user(&self, id: Uuid) -> Result<Option<User>, StorageError> {
        sqlx::query_as::<_, UserRow>(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional_record(self.pool())
            .await
    }

    /// The user with this e-mail (any case) and their password hash, for log-in.
    pub async fn user_for_login(
        &self,
        email: &str,
    ) -> Result<Option<(User, Option<String>)>, StorageError> {
        let row: Option<(Uuid, Option<String>)> = sqlx::query_as(
            "SELECT id, password_hash FROM users WHERE lower(email) = lower($1) AND disabled_at IS NULL",
        )
        .bind(email)
        .fetch_optional(self.pool())
        .await?;
        let Some((id, hash)) = row else {
            return Ok(None);
        };
        Ok(self.user(id).await?.map(|u| (u, hash)))
    }

    pub async fn add_organization_member(
        &self,
        organization_id: Uuid,
        user_id: Uuid,
    ) -> Result<(), StorageError> {
        sqlx::query("INSERT INTO organization_members (organization_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(organization_id)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Adds a user to a care team (and to the team's organization), by an operator at the
    /// server's console or in setup; see [`Store::add_team_member_by`].
    pub async fn add_team_member(&self, team_id: Uuid, user_id: Uuid) -> Result<(), StorageError> {
        self.add_team_member_by(team_id, user_id, None).await
    }

    /// Adds a user to a care team (and to the team's organization) on behalf of `by` (an
    /// administrator; `None` for the operator's console). Every patient whose active grant
    /// names the team or its organization finds the change in their access log, in the same
    /// transaction: nobody can be slipped into a team that reads a patient's data unseen.
    pub async fn add_team_member_by(
        &self,
        team_id: Uuid,
        user_id: Uuid,
        by: Option<Uuid>,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin().await?;
        let joined = sqlx::query(
            "INSERT INTO care_team_members (team_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(team_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if joined {
            log_membership_change(
                &mut tx,
                team_id,
                user_id,
                by,
                AccessAction::GranteeMemberAdded,
            )
            .await?;
        }
        sqlx::query(
            "INSERT INTO organization_members (organization_id, user_id)
             SELECT organization_id, $2 FROM care_teams WHERE id = $1 ON CONFLICT DO NOTHING",
        )
        .bind(team_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn remove_team_member(
        &self,
        team_id: Uuid,
        user_id: Uuid,
    ) -> Result<bool, StorageError> {
        self.remove_team_member_by(team_id, user_id, None).await
    }

    /// Removes a member from a care team on behalf of `by`, recorded like
    /// [`Store::add_team_member_by`].
    pub async fn remove_team_member_by(
        &self,
        team_id: Uuid,
        user_id: Uuid,
        by: Option<Uuid>,
    ) -> Result<bool, StorageError> {
        let mut tx = self.begin().await?;
        let left = sqlx::query("DELETE FROM care_team_members WHERE team_id = $1 AND user_id = $2")
            .bind(team_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if left {
            log_membership_change(
                &mut tx,
                team_id,
                user_id,
                by,
                AccessAction::GranteeMemberRemoved,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(left)
    }

    pub async fn add_guardian(&self, patient_id: Uuid, user_id: Uuid) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO guardians (patient_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(patient_id)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Issues a bearer token for a user.
    pub async fn issue_token(
        &self,
        user_id: Uuid,
        kind: TokenKind,
        label: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<IssuedToken, StorageError> {
        // A prefix tells a reader of logs or config files what the string is.
        let token = format!("chr_{}", random_secret(43));
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO auth_tokens (id, user_id, kind, token_hash, label, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(user_id)
        .bind(kind.as_str())
        .bind(secret_hash(&token))
        .bind(label)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(IssuedToken {
            id,
            token,
            expires_at,
        })
    }

    /// Revokes one of a user's tokens; returns whether it existed and was active.
    pub async fn revoke_token(&self, user_id: Uuid, token_id: Uuid) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE auth_tokens SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        )
        .bind(token_id)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// A user's tokens, newest first (never their secrets).
    pub async fn tokens_of(&self, user_id: Uuid) -> Result<Vec<TokenInfo>, StorageError> {
        Ok(sqlx::query_as::<_, TokenInfo>(
            "SELECT id, kind, label, created_at, expires_at, revoked_at, last_used_at
             FROM auth_tokens WHERE user_id = $1 ORDER BY created_at DESC, id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Revokes the token with this value (a log-out); returns its id if it was active.
    pub async fn revoke_token_value(&self, token: &str) -> Result<Option<Uuid>, StorageError> {
        let revoked: Option<(Uuid,)> = sqlx::query_as(
            "UPDATE auth_tokens SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL
             RETURNING id",
        )
        .bind(secret_hash(token))
        .fetch_optional(self.pool())
        .await?;
        Ok(revoked.map(|(id,)| id))
    }

    /// The active user with this e-mail (any case).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StorageError> {
        sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE lower(email) = lower($1) AND disabled_at IS NULL"
        ))
        .bind(email)
        .fetch_optional_record(self.pool())
        .await
    }

    /// Every user, oldest first (for administrators).
    pub async fn list_users(&self) -> Result<Vec<User>, StorageError> {
        sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id"
        ))
        .fetch_records(self.pool())
        .await
    }

    pub async fn list_organizations(&self) -> Result<Vec<Organization>, StorageError> {
        Ok(sqlx::query_as::<_, Organization>(
            "SELECT id, name, created_at FROM organizations ORDER BY name, id",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// The care teams of an organization.
    pub async fn care_teams_of(
        &self,
        organization_id: Uuid,
    ) -> Result<Vec<CareTeam>, StorageError> {
        Ok(sqlx::query_as::<_, CareTeam>(
            "SELECT id, organization_id, name, created_at FROM care_teams
             WHERE organization_id = $1 ORDER BY name, id",
        )
        .bind(organization_id)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn care_team(&self, id: Uuid) -> Result<Option<CareTeam>, StorageError> {
        Ok(sqlx::query_as::<_, CareTeam>(
            "SELECT id, organization_id, name, created_at FROM care_teams WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// The members of a care team; `None` when there is no such team.
    pub async fn team_members(&self, team_id: Uuid) -> Result<Option<Vec<User>>, StorageError> {
        if self.care_team(team_id).await?.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {} FROM users u JOIN care_team_members m ON m.user_id = u.id
             WHERE m.team_id = $1 ORDER BY u.display_name, u.id",
            user_columns_of("u")
        ))
        .bind(team_id)
        .fetch_records(self.pool())
        .await?;
        Ok(Some(rows))
    }

    /// The guardians a patient named.
    pub async fn guardians_of(&self, patient_id: Uuid) -> Result<Vec<User>, StorageError> {
        sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {} FROM users u JOIN guardians g ON g.user_id = u.id
             WHERE g.patient_id = $1 ORDER BY g.created_at, u.id",
            user_columns_of("u")
        ))
        .bind(patient_id)
        .fetch_records(self.pool())
        .await
    }

    /// Removes a guardian; returns whether they were one.
    pub async fn remove_guardian(
        &self,
        patient_id: Uuid,
        user_id: Uuid,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query("DELETE FROM guardians WHERE patient_id = $1 AND user_id = $2")
            .bind(patient_id)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The principal a bearer token stands for, with memberships as they are now; `None` for
    /// an unknown, revoked or expired token, or a disabled user.
    pub async fn principal_for_token(
        &self,
        token: &str,
    ) -> Result<Option<Principal>, StorageError> {
        let row: Option<(Uuid, String, Option<Uuid>)> = sqlx::query_as(
            "UPDATE auth_tokens t SET last_used_at = now()
             FROM users u
             WHERE t.token_hash = $1 AND t.user_id = u.id
               AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())
               AND u.disabled_at IS NULL
             RETURNING u.id, u.role, u.patient_id",
        )
        .bind(secret_hash(token))
        .fetch_optional(self.pool())
        .await?;
        let Some((user_id, role, patient_id)) = row else {
            return Ok(None);
        };
        self.principal_with_memberships(user_id, &role, patient_id)
            .await
            .map(Some)
    }

    /// The principal an enabled user is now, with their memberships; `None` for an unknown or
    /// disabled user. For work done on a user's behalf without a token (their own channels).
    pub async fn principal_for_user(
        &self,
        user_id: Uuid,
    ) -> Result<Option<Principal>, StorageError> {
        let row: Option<(String, Option<Uuid>)> = sqlx::query_as(
            "SELECT role, patient_id FROM users WHERE id = $1 AND disabled_at IS NULL",
        )
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        let Some((role, patient_id)) = row else {
            return Ok(None);
        };
        self.principal_with_memberships(user_id, &role, patient_id)
            .await
            .map(Some)
    }

    async fn principal_with_memberships(
        &self,
        user_id: Uuid,
        role: &str,
        patient_id: Option<Uuid>,
    ) -> Result<Principal, StorageError> {
        let role = Role::parse(role).ok_or(StorageError::Corrupt {
            what: "user role",
            value: role.to_owned(),
        })?;
        let (guardian_of, care_teams, organizations): (Vec<Uuid>, Vec<Uuid>, Vec<Uuid>) =
            sqlx::query_as(
                "SELECT
                 ARRAY(SELECT patient_id FROM guardians WHERE user_id = $1),
                 ARRAY(SELECT team_id FROM care_team_members WHERE user_id = $1),
                 ARRAY(SELECT organization_id FROM organization_members WHERE user_id = $1)",
            )
            .bind(user_id)
            .fetch_one(self.pool())
            .await?;
        Ok(Principal {
            user_id,
            role: Some(role),
            patient_id,
            guardian_of,
            care_teams,
            organizations,
            share_link: false,
        })
    }
}

impl Store {
    /// The guardians the patient named.
    pub async fn guardians_as(&self, actor: &PatientActor) -> Result<Vec<User>, StorageError> {
        self.guardians_of(actor.patient_id()).await
    }

    /// Names `user_id` the patient's guardian. Only the patient names guardians, never a
    /// guardian on their behalf.
    pub async fn name_guardian_as(
        &self,
        actor: &PatientActor,
        user_id: Uuid,
    ) -> Result<(), StorageError> {
        if actor.basis() != Basis::Own {
            return Err(StorageError::NotPermitted(
                "naming a guardian for someone else",
            ));
        }
        self.add_guardian(actor.patient_id(), user_id).await
    }

    /// Removes a guardian; `false` if the user was none. Only the patient does this.
    pub async fn remove_guardian_as(
        &self,
        actor: &PatientActor,
        user_id: Uuid,
    ) -> Result<bool, StorageError> {
        if actor.basis() != Basis::Own {
            return Err(StorageError::NotPermitted(
                "removing a guardian for someone else",
            ));
        }
        self.remove_guardian(actor.patient_id(), user_id).await
    }
}

/// Writes a membership change of a care team into the access log of every patient whose
/// active grant names the team or its organization, naming the member and the team.
async fn log_membership_change(
    conn: &mut sqlx::PgConnection,
    team_id: Uuid,
    user_id: Uuid,
    by: Option<Uuid>,
    action: AccessAction,
) -> Result<(), StorageError> {
    let verb = match action {
        AccessAction::GranteeMemberRemoved => "left",
        _ => "joined",
    };
    sqlx::query(
        "INSERT INTO access_log (actor_id, actor_role, patient_id, action, purpose, grant_id,
             outcome, reason)
         SELECT $3, CASE WHEN $3::uuid IS NULL THEN 'operator' ELSE 'admin' END, g.patient_id,
             $4, g.purpose, g.id, 'allowed',
             u.display_name || ' (' || u.role || ') ' || $5 || ' ' || t.name
         FROM care_teams t
         JOIN users u ON u.id = $2
         JOIN grants g ON g.revoked_at IS NULL AND (g.expires_at IS NULL OR g.expires_at > now())
             AND ((g.grantee_type = 'care_team' AND g.grantee_id = t.id)
               OR (g.grantee_type = 'organization' AND g.grantee_id = t.organization_id))
         WHERE t.id = $1",
    )
    .bind(team_id)
    .bind(user_id)
    .bind(by)
    .bind(action.as_str())
    .bind(verb)
    .execute(conn)
    .await?;
    Ok(())
}

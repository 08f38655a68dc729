//! Account security: the authentication events, the account a log-in names, password changes,
//! disabling and enabling accounts, and revoking every token of an account. Each change that
//! takes credentials away revokes them and records its event in one transaction.

use crate::identity::TokenKind;
use crate::{StorageError, Store};
use chronicle_domain::accounts::{AuthenticationEventKind, LoginFailure};
use chrono::{DateTime, Utc};
use std::net::IpAddr;
use uuid::Uuid;

/// An authentication event to record.
#[derive(Debug, Clone)]
pub struct NewAuthenticationEvent<'a> {
    pub kind: AuthenticationEventKind,
    /// The account concerned, when known.
    pub user_id: Option<Uuid>,
    /// Who acted, when not the account's own user.
    pub actor_id: Option<Uuid>,
    /// For a log-in that named no account: the e-mail given (kept only when it looks like one).
    pub email_tried: Option<&'a str>,
    pub failure: Option<LoginFailure>,
    pub client_address: Option<IpAddr>,
    pub token_id: Option<Uuid>,
}

impl<'a> NewAuthenticationEvent<'a> {
    /// An event of `kind` on the account `user_id`, from `client_address`.
    pub fn of(
        kind: AuthenticationEventKind,
        user_id: Uuid,
        client_address: Option<IpAddr>,
    ) -> Self {
        NewAuthenticationEvent {
            kind,
            user_id: Some(user_id),
            actor_id: None,
            email_tried: None,
            failure: None,
            client_address,
            token_id: None,
        }
    }

    pub fn with_token(mut self, token_id: Uuid) -> Self {
        self.token_id = Some(token_id);
        self
    }

    /// Done by `actor_id` (`None`: an operator's command, not a user).
    pub fn by(mut self, actor_id: Option<Uuid>) -> Self {
        self.actor_id = actor_id;
        self
    }
}

/// A recorded authentication event.
#[derive(Debug, Clone)]
pub struct AuthenticationEvent {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub kind: AuthenticationEventKind,
    pub user_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub email_tried: Option<String>,
    pub failure: Option<LoginFailure>,
    pub client_address: Option<String>,
    pub token_id: Option<Uuid>,
}

type EventRow = (
    i64,
    DateTime<Utc>,
    String,
    Option<Uuid>,
    Option<Uuid>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Uuid>,
);

impl TryFrom<EventRow> for AuthenticationEvent {
    type Error = StorageError;
    fn try_from(row: EventRow) -> Result<Self, StorageError> {
        let (id, occurred_at, kind, user_id, actor_id, email_tried, failure, address, token_id) =
            row;
        Ok(AuthenticationEvent {
            id,
            occurred_at,
            kind: AuthenticationEventKind::parse(&kind)
                .ok_or_else(|| StorageError::corrupt("authentication event kind", &kind))?,
            user_id,
            actor_id,
            email_tried,
            failure: failure
                .map(|f| {
                    LoginFailure::parse(&f)
                        .ok_or_else(|| StorageError::corrupt("log-in failure", &f))
                })
                .transpose()?,
            client_address: address,
            token_id,
        })
    }
}

/// The account a log-in names, whatever its state: the log-in decides what to answer.
#[derive(Clone)]
pub struct LoginCandidate {
    pub user_id: Uuid,
    pub password_hash: Option<String>,
    pub disabled: bool,
}

impl std::fmt::Debug for LoginCandidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginCandidate")
            .field("user_id", &self.user_id)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// The longest e-mail kept from a failed log-in (RFC 5321's limit on a path).
const MAX_EMAIL_TRIED_CHARS: usize = 320;

/// What is kept of an e-mail given at a failed log-in: only something shaped like an e-mail,
/// since people type passwords into the wrong field.
fn email_worth_keeping(email: &str) -> Option<&str> {
    let email = email.trim();
    let shaped = email.chars().count() <= MAX_EMAIL_TRIED_CHARS
        && !email.chars().any(char::is_whitespace)
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    shaped.then_some(email)
}

async fn insert_event<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    event: &NewAuthenticationEvent<'_>,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO authentication_events
             (kind, user_id, actor_id, email_tried, failure, client_address, token_id)
         VALUES ($1, $2, $3, $4, $5, $6::inet, $7)",
    )
    .bind(event.kind.as_str())
    .bind(event.user_id)
    .bind(event.actor_id)
    .bind(event.email_tried.and_then(email_worth_keeping))
    .bind(event.failure.map(LoginFailure::as_str))
    .bind(event.client_address.map(|a| a.to_string()))
    .bind(event.token_id)
    .execute(executor)
    .await?;
    Ok(())
}

/// Revokes every active token of `user_id` but `keep`; returns how many.
async fn revoke_tokens_except<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    user_id: Uuid,
    keep: Option<Uuid>,
) -> Result<u64, StorageError> {
    let done = sqlx::query(
        "UPDATE auth_tokens SET revoked_at = now()
         WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $2",
    )
    .bind(user_id)
    .bind(keep)
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

impl Store {
    pub async fn record_authentication_event(
        &self,
        event: &NewAuthenticationEvent<'_>,
    ) -> Result<(), StorageError> {
        insert_event(self.pool(), event).await
    }

    /// Authentication events newest first: of one account, or (`None`) of every account and
    /// of log-ins that named none; `before_id` is the previous page's last id.
    pub async fn authentication_events(
        &self,
        user_id: Option<Uuid>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuthenticationEvent>, StorageError> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, occurred_at, kind, user_id, actor_id, email_tried, failure,
                    host(client_address), token_id
             FROM authentication_events
             WHERE ($1::uuid IS NULL OR user_id = $1) AND ($2::bigint IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3",
        )
        .bind(user_id)
        .bind(before_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(AuthenticationEvent::try_from)
            .collect()
    }

    /// The account with this e-mail (any case), enabled or not, for a log-in.
    pub async fn login_candidate(
        &self,
        email: &str,
    ) -> Result<Option<LoginCandidate>, StorageError> {
        let row: Option<(Uuid, Option<String>, bool)> = sqlx::query_as(
            "SELECT id, password_hash, disabled_at IS NOT NULL FROM users
             WHERE lower(email) = lower($1)",
        )
        .bind(email)
        .fetch_optional(self.pool())
        .await?;
        Ok(
            row.map(|(user_id, password_hash, disabled)| LoginCandidate {
                user_id,
                password_hash,
                disabled,
            }),
        )
    }

    /// The password hash of an account, if it has a password log-in.
    pub async fn password_hash_of(&self, user_id: Uuid) -> Result<Option<String>, StorageError> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT password_hash FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.and_then(|(hash,)| hash))
    }

    /// The id and kind of an active token, by its value.
    pub async fn active_token(
        &self,
        token: &str,
    ) -> Result<Option<(Uuid, TokenKind)>, StorageError> {
        let row: Option<(Uuid, String)> = sqlx::query_as(
            "SELECT id, kind FROM auth_tokens WHERE token_hash = $1 AND revoked_at IS NULL
               AND (expires_at IS NULL OR expires_at > now())",
        )
        .bind(crate::credentials::secret_hash(token))
        .fetch_optional(self.pool())
        .await?;
        row.map(|(id, kind)| {
            TokenKind::parse(&kind)
                .map(|kind| (id, kind))
                .ok_or_else(|| StorageError::corrupt("token kind", &kind))
        })
        .transpose()
    }

    /// Sets a new password and revokes every token of the account but `keep` (the session
    /// that changed it), recording the change; returns how many tokens were revoked.
    pub async fn change_password(
        &self,
        user_id: Uuid,
        new_hash: &str,
        keep: Option<Uuid>,
        client_address: Option<IpAddr>,
    ) -> Result<u64, StorageError> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(user_id)
            .bind(new_hash)
            .execute(&mut *tx)
            .await?;
        let revoked = revoke_tokens_except(&mut *tx, user_id, keep).await?;
        let mut event = NewAuthenticationEvent::of(
            AuthenticationEventKind::PasswordChanged,
            user_id,
            client_address,
        );
        event.token_id = keep;
        insert_event(&mut *tx, &event).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    /// Disables an account and revokes every token of it, at once; `false` if there is no
    /// such account. Disabling a disabled account changes nothing but is recorded again.
    pub async fn disable_user(
        &self,
        user_id: Uuid,
        actor_id: Option<Uuid>,
        client_address: Option<IpAddr>,
    ) -> Result<bool, StorageError> {
        self.set_disabled(user_id, true, actor_id, client_address)
            .await
    }

    /// Enables a disabled account (its revoked tokens stay revoked); `false` if there is no
    /// such account.
    pub async fn enable_user(
        &self,
        user_id: Uuid,
        actor_id: Option<Uuid>,
        client_address: Option<IpAddr>,
    ) -> Result<bool, StorageError> {
        self.set_disabled(user_id, false, actor_id, client_address)
            .await
    }

    /// Disables or enables an account and records it, in one transaction.
    async fn set_disabled(
        &self,
        user_id: Uuid,
        disabled: bool,
        actor_id: Option<Uuid>,
        client_address: Option<IpAddr>,
    ) -> Result<bool, StorageError> {
        let (update, kind) = if disabled {
            (
                // The first disabling time stays.
                "UPDATE users SET disabled_at = coalesce(disabled_at, now()) WHERE id = $1",
                AuthenticationEventKind::AccountDisabled,
            )
        } else {
            (
                "UPDATE users SET disabled_at = NULL WHERE id = $1",
                AuthenticationEventKind::AccountEnabled,
            )
        };
        let mut tx = self.begin().await?;
        let found = sqlx::query(update)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if !found {
            return Ok(false);
        }
        if disabled {
            revoke_tokens_except(&mut *tx, user_id, None).await?;
        }
        insert_event(
            &mut *tx,
            &NewAuthenticationEvent::of(kind, user_id, client_address).by(actor_id),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Revokes every token of an account (sessions and API tokens), recording who did it;
    /// returns how many were active.
    pub async fn revoke_all_tokens(
        &self,
        user_id: Uuid,
        actor_id: Option<Uuid>,
        client_address: Option<IpAddr>,
    ) -> Result<u64, StorageError> {
        let mut tx = self.begin().await?;
        let revoked = revoke_tokens_except(&mut *tx, user_id, None).await?;
        insert_event(
            &mut *tx,
            &NewAuthenticationEvent::of(
                AuthenticationEventKind::TokensRevoked,
                user_id,
                client_address,
            )
            .by(actor_id),
        )
        .await?;
        tx.commit().await?;
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_email_shaped_text_is_kept_from_a_failed_log_in() {
        assert_eq!(
            email_worth_keeping(" pat@example.org "),
            Some("pat@example.org")
        );
        for not_kept in [
            "my secret password",
            "hunter2",
            "pat@localhost",
            "@example.org",
        ] {
            assert_eq!(email_worth_keeping(not_kept), None, "{not_kept}");
        }
        assert_eq!(
            email_worth_keeping(&format!("{}@x.org", "a".repeat(400))),
            None
        );
    }
}

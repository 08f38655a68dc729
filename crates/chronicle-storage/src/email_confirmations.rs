//! Confirming that an e-mail channel's address is its owner's before any alarm goes there: a
//! one-time code mailed to the address (stored hashed, living [`CODE_LIFETIME`], dead after
//! [`MAX_WRONG_CODES`] wrong tries) that the owner types back. The messages carrying codes are
//! limited per user and per address, counted in the database so every server and every
//! channel removed and added again count alike.

use crate::credentials::{canonical_email_confirmation_code, email_confirmation_code, secret_hash};
use crate::notifications::{CHANNEL_COLUMNS, Channel};
use crate::{StorageError, Store};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// How long a code can be typed back.
pub const CODE_LIFETIME: Duration = Duration::hours(24);
/// Wrong codes typed before the code is dead and a new one must be sent.
pub const MAX_WRONG_CODES: i32 = 5;
/// The shortest time between two messages to one address.
pub const RESEND_AFTER: Duration = Duration::seconds(60);
/// The span the limits below count over.
pub const SEND_WINDOW: Duration = Duration::hours(24);
/// Confirmation messages one user may have sent in [`SEND_WINDOW`], to any addresses.
pub const MAX_SENDS_PER_USER: i64 = 10;
/// Confirmation messages one address may receive in [`SEND_WINDOW`], from any users.
pub const MAX_SENDS_PER_ADDRESS: i64 = 5;

/// A code to mail, just issued (only its hash is kept).
#[derive(Debug, Clone)]
pub struct IssuedCode {
    pub code: String,
    pub address: String,
    pub expires_at: DateTime<Utc>,
}

/// Why no code was issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueRefused {
    /// The user has no such enabled e-mail channel.
    NotFound,
    /// Confirmed already: nothing to send.
    AlreadyConfirmed,
    /// Too many messages (to this address, or from this user) lately; try again after this.
    RateLimited {
        why: &'static str,
        retry_after: Duration,
    },
}

/// What typing a code did.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfirmOutcome {
    /// The channel is confirmed (now or before).
    Confirmed(Channel),
    /// Not the code; this many tries are left before a new one is needed.
    WrongCode { tries_left: i32 },
    /// No code can confirm it now: none sent, expired, or too many wrong tries.
    NoLiveCode,
    /// The user has no such enabled e-mail channel.
    NotFound,
}

fn code_hash(channel_id: Uuid, canonical: &str) -> Vec<u8> {
    secret_hash(&format!("{channel_id}:{canonical}"))
}

/// The user's enabled e-mail channel, locked for the transaction.
async fn locked_email_channel(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    user_id: Uuid,
    channel_id: Uuid,
) -> Result<Option<Channel>, StorageError> {
    Ok(sqlx::query_as::<_, Channel>(&format!(
        "SELECT {CHANNEL_COLUMNS} FROM notification_channels
         WHERE id = $1 AND user_id = $2 AND kind = 'email' AND disabled_at IS NULL
         FOR UPDATE"
    ))
    .bind(channel_id)
    .bind(user_id)
    .fetch_optional(&mut **tx)
    .await?)
}

impl Store {
    /// A new code for the user's unconfirmed e-mail channel (replacing any earlier one), unless
    /// a limit on confirmation messages refuses it. Counted as sent: the caller mails it.
    pub async fn issue_email_confirmation(
        &self,
        user_id: Uuid,
        channel_id: Uuid,
    ) -> Result<Result<IssuedCode, IssueRefused>, StorageError> {
        let mut tx = self.begin().await?;
        let Some(channel) = locked_email_channel(&mut tx, user_id, channel_id).await? else {
            return Ok(Err(IssueRefused::NotFound));
        };
        if channel.confirmed_at.is_some() {
            return Ok(Err(IssueRefused::AlreadyConfirmed));
        }
        let address = channel.target.to_lowercase();
        // Counted and recorded one request at a time per user and per address, so parallel
        // requests cannot slip past a limit.
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtext('email confirmation user ' || $1::text)),
                    pg_advisory_xact_lock(hashtext('email confirmation address ' || $2))",
        )
        .bind(user_id)
        .bind(&address)
        .execute(&mut *tx)
        .await?;
        let now = Utc::now();
        let window_start = now - SEND_WINDOW;
        let (last_to_address, to_address, oldest_to_address): (
            Option<DateTime<Utc>>,
            i64,
            Option<DateTime<Utc>>,
        ) = sqlx::query_as(
            "SELECT max(sent_at), count(*), min(sent_at) FROM email_confirmation_sends
             WHERE address = $1 AND sent_at > $2",
        )
        .bind(&address)
        .bind(window_start)
        .fetch_one(&mut *tx)
        .await?;
        let (by_user, oldest_by_user): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT count(*), min(sent_at) FROM email_confirmation_sends
             WHERE user_id = $1 AND sent_at > $2",
        )
        .bind(user_id)
        .bind(window_start)
        .fetch_one(&mut *tx)
        .await?;
        let wait_until = |since: Option<DateTime<Utc>>, span: Duration| {
            since.map_or(Duration::seconds(1), |at| {
                (at + span - now).max(Duration::seconds(1))
            })
        };
        let refused = if let Some(last) = last_to_address.filter(|at| *at > now - RESEND_AFTER) {
            Some(IssueRefused::RateLimited {
                why: "a confirmation message went to this address less than a minute ago",
                retry_after: wait_until(Some(last), RESEND_AFTER),
            })
        } else if by_user >= MAX_SENDS_PER_USER {
            Some(IssueRefused::RateLimited {
                why: "you had the most confirmation messages sent a day allows",
                retry_after: wait_until(oldest_by_user, SEND_WINDOW),
            })
        } else if to_address >= MAX_SENDS_PER_ADDRESS {
            Some(IssueRefused::RateLimited {
                why: "this address received the most confirmation messages a day allows",
                retry_after: wait_until(oldest_to_address, SEND_WINDOW),
            })
        } else {
            None
        };
        if let Some(refused) = refused {
            return Ok(Err(refused));
        }
        let code = email_confirmation_code();
        let canonical = canonical_email_confirmation_code(&code)
            .ok_or_else(|| StorageError::corrupt("confirmation code", &code))?;
        let expires_at = now + CODE_LIFETIME;
        sqlx::query(
            "INSERT INTO email_confirmation_sends (user_id, address, sent_at) VALUES ($1, $2, $3)",
        )
        .bind(user_id)
        .bind(&address)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO email_confirmation_codes (channel_id, code_hash, expires_at, sent_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (channel_id) DO UPDATE SET code_hash = excluded.code_hash,
                 expires_at = excluded.expires_at, failed_attempts = 0,
                 sent_at = excluded.sent_at",
        )
        .bind(channel_id)
        .bind(code_hash(channel_id, &canonical))
        .bind(expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(IssuedCode {
            code,
            address: channel.target,
            expires_at,
        }))
    }

    /// Confirms the user's e-mail channel with the code they typed. A wrong code counts
    /// against the code's tries before it is compared, so parallel guesses get no more.
    pub async fn confirm_email_channel(
        &self,
        user_id: Uuid,
        channel_id: Uuid,
        typed: &str,
    ) -> Result<ConfirmOutcome, StorageError> {
        let mut tx = self.begin().await?;
        let Some(channel) = locked_email_channel(&mut tx, user_id, channel_id).await? else {
            return Ok(ConfirmOutcome::NotFound);
        };
        if channel.confirmed_at.is_some() {
            return Ok(ConfirmOutcome::Confirmed(channel));
        }
        let live: Option<(Vec<u8>, i32)> = sqlx::query_as(
            "UPDATE email_confirmation_codes SET failed_attempts = failed_attempts + 1
             WHERE channel_id = $1 AND expires_at > now() AND failed_attempts < $2
             RETURNING code_hash, failed_attempts",
        )
        .bind(channel_id)
        .bind(MAX_WRONG_CODES)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((stored, tries)) = live else {
            return Ok(ConfirmOutcome::NoLiveCode);
        };
        let right = canonical_email_confirmation_code(typed)
            .is_some_and(|canonical| code_hash(channel_id, &canonical) == stored);
        if !right {
            tx.commit().await?;
            return Ok(ConfirmOutcome::WrongCode {
                tries_left: MAX_WRONG_CODES - tries,
            });
        }
        let confirmed = sqlx::query_as::<_, Channel>(&format!(
            "UPDATE notification_channels SET confirmed_at = now() WHERE id = $1
             RETURNING {CHANNEL_COLUMNS}"
        ))
        .bind(channel_id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM email_confirmation_codes WHERE channel_id = $1")
            .bind(channel_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ConfirmOutcome::Confirmed(confirmed))
    }
}

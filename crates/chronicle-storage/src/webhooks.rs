//! Organizations' webhooks and their delivery log. Deliveries are queued with the alert
//! events (`alerts::AlertEvaluation::commit`); the dispatcher leases due ones, asks the gate
//! ([`Store::authorize_webhook`](crate::Store::authorize_webhook)) before each attempt, and
//! records every attempt.

use crate::alerts::AlertEvent;
use crate::{StorageError, Store};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// A webhook as its organization sees it (never with its secret).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Webhook {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub url: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

/// One event to one webhook, with its attempts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub event_id: i64,
    pub event_kind: String,
    pub alert_id: Uuid,
    /// `pending`, `delivered`, `failed` (every attempt failed) or `withheld` (the patient's
    /// grant no longer allowed it).
    pub status: String,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub attempts: Vec<Attempt>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub attempt: i32,
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// A delivery the dispatcher leased.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: i64,
    pub webhook_id: Uuid,
    pub organization_id: Uuid,
    pub url: String,
    pub secret: String,
    /// Attempts made before this one.
    pub attempts: i32,
    pub event: AlertEvent,
}

/// What became of an attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptOutcome {
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AfterAttempt {
    Delivered,
    RetryAt(DateTime<Utc>),
    /// No attempts left.
    Failed,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: i64,
    event_id: i64,
    event_kind: String,
    alert_id: Uuid,
    status: String,
    next_attempt_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    delivery_id: i64,
    attempt: i32,
    at: DateTime<Utc>,
    status_code: Option<i32>,
    error: Option<String>,
    duration_ms: i32,
}

#[derive(sqlx::FromRow)]
struct DueRow {
    id: i64,
    webhook_id: Uuid,
    organization_id: Uuid,
    url: String,
    secret: String,
    attempts: i32,
    event_id: i64,
    kind: String,
    patient_id: Uuid,
    category: String,
    actor_id: Option<Uuid>,
    at: DateTime<Utc>,
    payload: serde_json::Value,
}

/// The common table expressions that lease due deliveries of a delivery table (webhooks',
/// users' channels) and end in `leased (id, <destination>, event_id, attempts)`: the oldest
/// pending delivery of each destination, when it is due, none of the destinations in `$3`
/// (being sent to now), at most `$1`, leased for `$2` (`SKIP LOCKED`: servers never take the
/// same). So one destination's deliveries go one at a time and in event order.
pub(crate) fn lease_one_per_destination(table: &str, destination: &str) -> String {
    format!(
        "WITH firsts AS (
             SELECT DISTINCT ON ({destination}) id FROM {table}
             WHERE status = 'pending' AND {destination} <> ALL($3)
             ORDER BY {destination}, id
         ), due AS (
             SELECT d.id FROM {table} d JOIN firsts f ON f.id = d.id
             WHERE d.next_attempt_at <= now()
             ORDER BY d.next_attempt_at, d.id LIMIT $1 FOR UPDATE OF d SKIP LOCKED
         ), leased AS (
             UPDATE {table} d SET next_attempt_at = now() + $2
             FROM due WHERE d.id = due.id
             RETURNING d.id, d.{destination}, d.event_id, d.attempts
         )"
    )
}

impl Store {
    pub async fn create_webhook(
        &self,
        organization_id: Uuid,
        url: &str,
        secret: &str,
        created_by: Option<Uuid>,
    ) -> Result<Webhook, StorageError> {
        Ok(sqlx::query_as::<_, Webhook>(
            "INSERT INTO webhooks (id, organization_id, url, secret, created_by)
             VALUES ($1, $2, $3, $4, $5)
             RETURNING id, organization_id, url, created_by, created_at, disabled_at",
        )
        .bind(Uuid::new_v4())
        .bind(organization_id)
        .bind(url)
        .bind(secret)
        .bind(created_by)
        .fetch_one(self.pool())
        .await?)
    }

    /// The organization's webhooks, oldest first.
    pub async fn webhooks_of(&self, organization_id: Uuid) -> Result<Vec<Webhook>, StorageError> {
        Ok(sqlx::query_as::<_, Webhook>(
            "SELECT id, organization_id, url, created_by, created_at, disabled_at FROM webhooks
             WHERE organization_id = $1 ORDER BY created_at, id",
        )
        .bind(organization_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Disables one of the organization's webhooks (its pending deliveries are withheld);
    /// `None` if the organization has no such webhook.
    pub async fn disable_webhook(
        &self,
        organization_id: Uuid,
        webhook_id: Uuid,
    ) -> Result<Option<Webhook>, StorageError> {
        let mut tx = self.begin().await?;
        let hook = sqlx::query_as::<_, Webhook>(
            "UPDATE webhooks SET disabled_at = coalesce(disabled_at, now())
             WHERE id = $1 AND organization_id = $2
             RETURNING id, organization_id, url, created_by, created_at, disabled_at",
        )
        .bind(webhook_id)
        .bind(organization_id)
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'withheld', finished_at = now()
             WHERE webhook_id = $1 AND status = 'pending'",
        )
        .bind(webhook_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(hook)
    }

    /// The newest deliveries of one of the organization's webhooks, with their attempts.
    pub async fn webhook_deliveries(
        &self,
        organization_id: Uuid,
        webhook_id: Uuid,
        limit: i64,
    ) -> Result<Vec<Delivery>, StorageError> {
        let rows: Vec<DeliveryRow> = sqlx::query_as(
            "SELECT d.id, d.event_id, e.kind AS event_kind, e.alert_id, d.status,
                 d.next_attempt_at, d.created_at, d.finished_at
             FROM webhook_deliveries d
             JOIN webhooks w ON w.id = d.webhook_id
             JOIN alert_events e ON e.id = d.event_id
             WHERE d.webhook_id = $1 AND w.organization_id = $2
             ORDER BY d.id DESC LIMIT $3",
        )
        .bind(webhook_id)
        .bind(organization_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let attempts: Vec<AttemptRow> = sqlx::query_as(
            "SELECT delivery_id, attempt, at, status_code, error, duration_ms
             FROM webhook_attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt",
        )
        .bind(&ids)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Delivery {
                attempts: attempts
                    .iter()
                    .filter(|a| a.delivery_id == r.id)
                    .map(|a| Attempt {
                        attempt: a.attempt,
                        at: a.at,
                        status_code: a.status_code,
                        error: a.error.clone(),
                        duration_ms: a.duration_ms,
                    })
                    .collect(),
                id: r.id,
                event_id: r.event_id,
                event_kind: r.event_kind,
                alert_id: r.alert_id,
                status: r.status,
                next_attempt_at: r.next_attempt_at,
                created_at: r.created_at,
                finished_at: r.finished_at,
            })
            .collect())
    }

    /// Leases up to `limit` due deliveries for `lease` (another server skips them meanwhile;
    /// a crash only delays them until the lease runs out): the oldest pending delivery of
    /// each webhook, when it is due, and none of `busy_webhooks` (being sent to now), so one
    /// webhook's deliveries go one at a time and in event order.
    pub async fn lease_webhook_deliveries(
        &self,
        limit: i64,
        lease: chrono::Duration,
        busy_webhooks: &[Uuid],
    ) -> Result<Vec<DueDelivery>, StorageError> {
        let mut tx = self.begin_claim().await?;
        let rows: Vec<DueRow> = sqlx::query_as(&format!(
            "{}
             SELECT l.id, l.webhook_id, w.organization_id, w.url, w.secret, l.attempts,
                 e.id AS event_id, e.kind, e.patient_id, e.category, e.actor_id, e.at, e.payload
             FROM leased l
             JOIN webhooks w ON w.id = l.webhook_id
             JOIN alert_events e ON e.id = l.event_id
             ORDER BY e.id",
            lease_one_per_destination("webhook_deliveries", "webhook_id")
        ))
        .bind(limit)
        .bind(lease)
        .bind(busy_webhooks)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter()
            .map(|r| {
                let event = crate::alerts::event_from_parts(
                    r.event_id,
                    &r.kind,
                    r.patient_id,
                    &r.category,
                    r.actor_id,
                    r.at,
                    r.payload,
                )?;
                Ok(DueDelivery {
                    id: r.id,
                    webhook_id: r.webhook_id,
                    organization_id: r.organization_id,
                    url: r.url,
                    secret: r.secret,
                    attempts: r.attempts,
                    event,
                })
            })
            .collect()
    }

    /// Records an attempt and what follows it.
    pub async fn record_webhook_attempt(
        &self,
        delivery_id: i64,
        attempt: i32,
        outcome: &AttemptOutcome,
        next: AfterAttempt,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, status_code, error, duration_ms)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(delivery_id)
        .bind(attempt)
        .bind(outcome.status_code)
        .bind(&outcome.error)
        .bind(outcome.duration_ms)
        .execute(&mut *tx)
        .await?;
        let (status, retry_at) = match next {
            AfterAttempt::Delivered => ("delivered", None),
            AfterAttempt::RetryAt(at) => ("pending", Some(at)),
            AfterAttempt::Failed => ("failed", None),
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = $2, status = $3,
                 next_attempt_at = coalesce($4, next_attempt_at),
                 finished_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END
             WHERE id = $1",
        )
        .bind(delivery_id)
        .bind(attempt)
        .bind(status)
        .bind(retry_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The patient's grant no longer lets the organization receive this: never sent.
    pub async fn withhold_webhook_delivery(&self, delivery_id: i64) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'withheld', finished_at = now() WHERE id = $1",
        )
        .bind(delivery_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The care teams of an organization.
    pub async fn teams_of_organization(
        &self,
        organization_id: Uuid,
    ) -> Result<Vec<Uuid>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM care_teams WHERE organization_id = $1")
                .bind(organization_id)
                .fetch_all(self.pool())
                .await?,
        )
    }
}

//! Alerts and their event stream. Three jobs, one module each: [`evaluation`] (the alert
//! engine's transaction), [`inbox`] (lists, counts, acknowledgement and resolution for the care
//! side, through the gate) and [`snoozes`]; this file holds the stored shapes and the event
//! stream every server follows.
//!
//! - The alert engine evaluates one patient at a time in an [`AlertEvaluation`]: a
//!   transaction holding the patient's advisory lock, so two servers evaluating the same
//!   patient take turns, and the second sees what the first wrote. The partial unique index
//!   `alerts_one_active_idx` backs this up: a second active alert of a rule cannot exist.
//! - Every notable change appends an [`AlertEvent`]. Event writers take one more advisory
//!   lock just before inserting and keep it until commit, so event ids become visible in
//!   increasing order: a reader resuming after id N (an SSE client's `Last-Event-ID`) never
//!   misses one. The commit NOTIFYs `chronicle_alert_events`, which every server LISTENs to.
//! - Reads for users take [`Permit`]s for `receive_alerts` on the alert's category, so no
//!   alert is listed without a logged decision.

mod evaluation;
mod inbox;
mod snoozes;

pub use evaluation::AlertEvaluation;
pub(crate) use evaluation::decode_thresholds;
pub use inbox::{AlertAction, AlertActionError, AlertFilter, OpenAlertCounts};
pub use snoozes::Snooze;

use crate::rows::FetchRecords;
use crate::{StorageError, Store};
use chronicle_domain::alerts::lifecycle::EventKind;
use chronicle_domain::alerts::lifecycle::{AlertKind, AlertStatus, Resolution};
use chronicle_domain::alerts::{RuleId, Severity};
use chronicle_domain::sharing::{AlertAudience, DataCategory};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use uuid::Uuid;

/// The channel every commit that wrote alert events NOTIFYs (payload: the newest event id).
pub const EVENTS_CHANNEL: &str = "chronicle_alert_events";

/// Advisory-lock namespace of per-patient alert evaluation (`pg_advisory_xact_lock(ns, key)`).
const PATIENT_LOCK_NAMESPACE: i32 = 0x616c_7274; // "alrt"
/// The advisory lock serializing event inserts until commit.
const EVENTS_LOCK: i64 = 0x616c_7274_6576_7473; // "alrtevts"

/// An alert (or a historical event) as stored. Its JSON is also each event's stored payload
/// (what the API and webhooks send are their own types).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub id: Uuid,
    /// Position for cursors; not part of the payload.
    #[serde(skip)]
    pub seq: i64,
    pub patient_id: Uuid,
    pub rule: RuleId,
    pub category: DataCategory,
    pub severity: Severity,
    pub kind: AlertKind,
    /// `None` for a historical record.
    pub status: Option<AlertStatus>,
    pub device_id: Option<String>,
    pub triggered_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub cleared_since: Option<DateTime<Utc>>,
    pub trigger_count: i32,
    pub evidence: serde_json::Value,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub acknowledged_by: Option<Uuid>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledgement_note: Option<String>,
    pub resolved_by: Option<Uuid>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution: Option<Resolution>,
    pub resolution_note: Option<String>,
    /// The reader's own audience's acknowledgement, for audiences other than the care team
    /// (whose acknowledgement is the alert's own). Filled by reads for a reader, not stored
    /// in event payloads.
    #[serde(skip)]
    pub audience_acknowledgement: Option<AudienceAcknowledgement>,
}

/// An acknowledgement made by and for one audience (the patient's side, caregivers).
#[derive(Debug, Clone, PartialEq)]
pub struct AudienceAcknowledgement {
    pub audience: AlertAudience,
    pub by: Option<Uuid>,
    pub at: DateTime<Utc>,
    pub note: Option<String>,
}

/// An alert row as the database returns it.
#[derive(sqlx::FromRow)]
struct AlertRow {
    id: Uuid,
    seq: i64,
    patient_id: Uuid,
    rule: String,
    category: String,
    severity: String,
    kind: String,
    status: Option<String>,
    device_id: Option<String>,
    triggered_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    cleared_since: Option<DateTime<Utc>>,
    trigger_count: i32,
    evidence: serde_json::Value,
    opened_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    acknowledged_by: Option<Uuid>,
    acknowledged_at: Option<DateTime<Utc>>,
    acknowledgement_note: Option<String>,
    resolved_by: Option<Uuid>,
    resolved_at: Option<DateTime<Utc>>,
    resolution: Option<String>,
    resolution_note: Option<String>,
    /// Only reads for a reader select these (the reader's audience's acknowledgement).
    #[sqlx(default)]
    audience: Option<String>,
    #[sqlx(default)]
    audience_acknowledged_by: Option<Uuid>,
    #[sqlx(default)]
    audience_acknowledged_at: Option<DateTime<Utc>>,
    #[sqlx(default)]
    audience_note: Option<String>,
}

impl TryFrom<AlertRow> for AlertRecord {
    type Error = StorageError;
    fn try_from(row: AlertRow) -> Result<Self, StorageError> {
        fn named<T>(
            what: &'static str,
            text: &str,
            parse: fn(&str) -> Option<T>,
        ) -> Result<T, StorageError> {
            parse(text).ok_or_else(|| StorageError::corrupt(what, text))
        }
        Ok(AlertRecord {
            id: row.id,
            seq: row.seq,
            patient_id: row.patient_id,
            rule: named("alert rule", &row.rule, RuleId::parse)?,
            category: named("alert category", &row.category, DataCategory::parse)?,
            severity: named("alert severity", &row.severity, Severity::parse)?,
            kind: named("alert kind", &row.kind, AlertKind::parse)?,
            status: row
                .status
                .map(|s| named("alert status", &s, AlertStatus::parse))
                .transpose()?,
            device_id: row.device_id,
            triggered_at: row.triggered_at,
            last_seen_at: row.last_seen_at,
            cleared_since: row.cleared_since,
            trigger_count: row.trigger_count,
            evidence: row.evidence,
            opened_at: row.opened_at,
            updated_at: row.updated_at,
            acknowledged_by: row.acknowledged_by,
            acknowledged_at: row.acknowledged_at,
            acknowledgement_note: row.acknowledgement_note,
            resolved_by: row.resolved_by,
            resolved_at: row.resolved_at,
            resolution: row
                .resolution
                .map(|r| named("alert resolution", &r, Resolution::parse))
                .transpose()?,
            resolution_note: row.resolution_note,
            audience_acknowledgement: match (row.audience, row.audience_acknowledged_at) {
                (Some(audience), Some(at)) => Some(AudienceAcknowledgement {
                    audience: named("alert audience", &audience, AlertAudience::parse)?,
                    by: row.audience_acknowledged_by,
                    at,
                    note: row.audience_note,
                }),
                _ => None,
            },
        })
    }
}

impl Store {
    /// Every alert of a patient, oldest first: for the patient's own export.
    pub(crate) async fn alerts_of_patient(
        &self,
        patient_id: Uuid,
    ) -> Result<Vec<AlertRecord>, StorageError> {
        sqlx::query_as::<_, AlertRow>(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE patient_id = $1 ORDER BY seq"
        ))
        .bind(patient_id)
        .fetch_records(self.pool())
        .await
    }
}

const ALERT_COLUMNS: &str = "id, seq, patient_id, rule, category, severity, kind, status, \
     device_id, triggered_at, last_seen_at, cleared_since, trigger_count, evidence, opened_at, \
     updated_at, acknowledged_by, acknowledged_at, acknowledgement_note, resolved_by, \
     resolved_at, resolution, resolution_note";

/// One entry of the alert event stream.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    /// Increasing in commit order: the SSE event id.
    pub id: i64,
    pub kind: EventKind,
    pub patient_id: Uuid,
    pub category: DataCategory,
    /// The user who acknowledged or resolved; `None` for the engine.
    pub actor_id: Option<Uuid>,
    pub at: DateTime<Utc>,
    /// The alert as it was after the event.
    pub alert: AlertRecord,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    kind: String,
    patient_id: Uuid,
    category: String,
    actor_id: Option<Uuid>,
    at: DateTime<Utc>,
    payload: serde_json::Value,
}

impl TryFrom<EventRow> for AlertEvent {
    type Error = StorageError;
    fn try_from(row: EventRow) -> Result<Self, Self::Error> {
        event_from_parts(
            row.id,
            &row.kind,
            row.patient_id,
            &row.category,
            row.actor_id,
            row.at,
            row.payload,
        )
    }
}

/// An event from its stored columns.
pub(crate) fn event_from_parts(
    id: i64,
    kind: &str,
    patient_id: Uuid,
    category: &str,
    actor_id: Option<Uuid>,
    at: DateTime<Utc>,
    payload: serde_json::Value,
) -> Result<AlertEvent, StorageError> {
    Ok(AlertEvent {
        id,
        kind: EventKind::parse(kind)
            .ok_or_else(|| StorageError::corrupt("alert event kind", kind))?,
        patient_id,
        category: DataCategory::parse(category)
            .ok_or_else(|| StorageError::corrupt("alert event category", category))?,
        actor_id,
        at,
        alert: serde_json::from_value(payload.clone())
            .map_err(|_| StorageError::corrupt("alert event payload", payload))?,
    })
}

fn to_json<T: Serialize>(what: &'static str, value: &T) -> Result<serde_json::Value, StorageError> {
    serde_json::to_value(value).map_err(|e| StorageError::corrupt(what, e))
}

impl Store {
    /// Events after `after_id`, oldest first (at most `limit`), for the stream's fan-out.
    /// Not a read for a user: whoever hands an event to a user asks the gate first.
    pub async fn alert_events_after(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<AlertEvent>, StorageError> {
        sqlx::query_as::<_, EventRow>(
            "SELECT id, kind, patient_id, category, actor_id, at, payload FROM alert_events
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after_id)
        .bind(limit)
        .fetch_records(self.pool())
        .await
    }

    /// The newest event id (0 before the first).
    pub async fn last_alert_event_id(&self) -> Result<i64, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT coalesce(max(id), 0)::bigint FROM alert_events")
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// Listens for committed alert events (on a connection of its own).
    pub async fn listen_alert_events(&self) -> Result<AlertEventListener, StorageError> {
        let mut listener = PgListener::connect_with(self.pool()).await?;
        listener.listen(EVENTS_CHANNEL).await?;
        Ok(AlertEventListener(listener))
    }
}

/// Notifications of committed alert events.
pub struct AlertEventListener(PgListener);

impl AlertEventListener {
    /// Waits for the next notification. After an error the connection is re-established on
    /// the next call; notifications sent meanwhile are lost, so readers also poll.
    pub async fn next(&mut self) -> Result<(), StorageError> {
        self.0.recv().await?;
        Ok(())
    }
}

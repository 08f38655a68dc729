//! Alerts, their event stream, snoozes and the webhooks' delivery log.
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

use crate::gate::Permit;
use crate::{StorageError, Store};
use chronicle_domain::alerts::lifecycle::{
    self, AlertStatus, Change, EventKind, InvalidTransition, KnownAlert,
};
use chronicle_domain::alerts::rules::{DeviceActivity, GlucosePoint, MAX_GAP, PressurePoint};
use chronicle_domain::alerts::thresholds::AlertThresholds;
use chronicle_domain::alerts::{RuleId, Severity};
use chronicle_domain::sharing::Principal;
use chronicle_domain::sharing::{Access, DataCategory};
use chronicle_domain::targets::TargetPreset;
use chronicle_domain::{DeviceKind, GlucoseFlag, GlucoseSource};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use std::collections::HashMap;
use uuid::Uuid;

/// The channel every commit that wrote alert events NOTIFYs (payload: the newest event id).
pub const EVENTS_CHANNEL: &str = "chronicle_alert_events";

/// Advisory-lock namespace of per-patient alert evaluation (`pg_advisory_xact_lock(ns, key)`).
const PATIENT_LOCK_NAMESPACE: i32 = 0x616c_7274; // "alrt"
/// The advisory lock serializing event inserts until commit.
const EVENTS_LOCK: i64 = 0x616c_7274_6576_7473; // "alrtevts"

/// An alert (or a historical event) as stored. Its JSON is also each event's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct AlertRecord {
    pub id: Uuid,
    /// Position for cursors; not part of the payload.
    #[serde(skip)]
    pub seq: i64,
    pub patient_id: Uuid,
    pub rule: String,
    pub category: String,
    pub severity: String,
    /// `alert` (raised live, with a lifecycle) or `historical` (late data; no status).
    pub kind: String,
    pub status: Option<String>,
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
    /// `manual` or `auto`.
    pub resolution: Option<String>,
    pub resolution_note: Option<String>,
}

const ALERT_COLUMNS: &str = "id, seq, patient_id, rule, category, severity, kind, status, \
     device_id, triggered_at, last_seen_at, cleared_since, trigger_count, evidence, opened_at, \
     updated_at, acknowledged_by, acknowledged_at, acknowledgement_note, resolved_by, \
     resolved_at, resolution, resolution_note";

impl AlertRecord {
    pub fn data_category(&self) -> Result<DataCategory, StorageError> {
        DataCategory::parse(&self.category).ok_or_else(|| corrupt("alert category", &self.category))
    }
}

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
        kind: EventKind::parse(kind).ok_or_else(|| corrupt("alert event kind", kind))?,
        patient_id,
        category: DataCategory::parse(category)
            .ok_or_else(|| corrupt("alert event category", category))?,
        actor_id,
        at,
        alert: serde_json::from_value(payload.clone())
            .map_err(|_| corrupt("alert event payload", &payload.to_string()))?,
    })
}

fn corrupt(what: &'static str, value: &str) -> StorageError {
    StorageError::Corrupt {
        what,
        value: value.to_owned(),
    }
}

fn to_json<T: Serialize>(what: &'static str, value: &T) -> Result<serde_json::Value, StorageError> {
    serde_json::to_value(value).map_err(|e| corrupt(what, &e.to_string()))
}

/// Decodes a patient's alert thresholds: the stored custom values, else the preset's.
pub(crate) fn decode_thresholds(
    preset: Option<&str>,
    custom: Option<serde_json::Value>,
) -> Result<AlertThresholds, StorageError> {
    if let Some(json) = custom {
        return serde_json::from_value(json.clone())
            .map_err(|_| corrupt("alert thresholds", &json.to_string()));
    }
    let preset = match preset {
        Some(text) => TargetPreset::parse(text).ok_or_else(|| corrupt("target preset", text))?,
        None => TargetPreset::Standard,
    };
    Ok(AlertThresholds::preset(preset))
}

/// An alert evaluation of one or more patients: a transaction holding their advisory locks.
/// Read what the rules need (for every patient at once), apply the lifecycle's changes, then
/// [`commit`](Self::commit), which writes the events, queues webhook deliveries and notifies
/// every server. Dropping it rolls everything back.
pub struct AlertEvaluation {
    store: Store,
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    /// The patients whose locks this evaluation holds, sorted.
    patients: Vec<Uuid>,
    /// Events to write at commit: (alert, kind, actor).
    events: Vec<(Uuid, EventKind, Option<Uuid>)>,
}

/// A patient's advisory-lock key (collisions only make two patients take turns).
fn lock_key(patient_id: Uuid) -> i32 {
    let b = patient_id.as_bytes();
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Store {
    /// Starts evaluating `patients`; waits while another server evaluates any of them. The
    /// locks are taken in ascending key order, so two evaluations never deadlock.
    pub async fn begin_alert_evaluation(
        &self,
        patients: &[Uuid],
    ) -> Result<AlertEvaluation, StorageError> {
        let mut patients = patients.to_vec();
        patients.sort_unstable();
        patients.dedup();
        let mut keys: Vec<i32> = patients.iter().copied().map(lock_key).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "SELECT count(pg_advisory_xact_lock($1, key))
             FROM (SELECT key FROM UNNEST($2::int4[]) AS key ORDER BY key) ordered",
        )
        .bind(PATIENT_LOCK_NAMESPACE)
        .bind(&keys)
        .execute(&mut *tx)
        .await?;
        Ok(AlertEvaluation {
            store: self.clone(),
            tx,
            patients,
            events: Vec::new(),
        })
    }

    /// Patients whose alerts depend on the clock now: a device silent long enough to be
    /// worth checking whose silence no alert covers yet, or an active alert that is clear
    /// (auto-resolution) or about silence.
    pub async fn patients_due_for_time_checks(&self) -> Result<Vec<Uuid>, StorageError> {
        Ok(sqlx::query_scalar(
            "WITH last AS (
                 SELECT d.patient_id,
                        CASE WHEN d.kind = 'bp' THEN 'blood_pressure' ELSE 'glucose' END AS category,
                        CASE WHEN d.kind = 'cgm' THEN interval '15 minutes' ELSE interval '1 day' END
                            AS shortest_silence,
                        CASE WHEN d.kind = 'bp'
                             THEN (SELECT max(measured_at) FROM blood_pressure_readings r WHERE r.device_id = d.id)
                             ELSE (SELECT max(measured_at) FROM glucose_readings r WHERE r.device_id = d.id)
                        END AS last_at
                 FROM devices d WHERE d.revoked_at IS NULL
             )
             SELECT DISTINCT l.patient_id FROM last l
             WHERE l.last_at < now() - l.shortest_silence
               AND NOT EXISTS (SELECT 1 FROM alerts a
                   WHERE a.patient_id = l.patient_id AND a.rule = 'no_data' AND a.kind = 'alert'
                     AND a.category = l.category AND a.last_seen_at >= l.last_at)
             UNION
             SELECT DISTINCT patient_id FROM alerts
             WHERE status IN ('open', 'acknowledged') AND (cleared_since IS NOT NULL OR rule = 'no_data')",
        )
        .fetch_all(self.pool())
        .await?)
    }
}

#[derive(sqlx::FromRow)]
struct GlucoseRow {
    patient_id: Uuid,
    device_id: String,
    measured_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
    value_mg_dl: f64,
    source: String,
    flag: Option<String>,
}

#[derive(sqlx::FromRow)]
struct PressureRow {
    patient_id: Uuid,
    device_id: String,
    measured_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
    systolic: i16,
    diastolic: i16,
}

#[derive(sqlx::FromRow)]
struct KnownRow {
    patient_id: Uuid,
    id: Uuid,
    rule: String,
    category: String,
    status: String,
    severity: String,
    triggered_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    cleared_since: Option<DateTime<Utc>>,
    trigger_count: i32,
    /// The previous alert's `last_seen_at` (only read by `latest_alerts`).
    #[sqlx(default)]
    floor: Option<DateTime<Utc>>,
}

impl KnownRow {
    fn into_known(self) -> Result<((RuleId, DataCategory), KnownAlert), StorageError> {
        let rule = RuleId::parse(&self.rule).ok_or_else(|| corrupt("alert rule", &self.rule))?;
        let category = DataCategory::parse(&self.category)
            .ok_or_else(|| corrupt("alert category", &self.category))?;
        Ok((
            (rule, category),
            KnownAlert {
                id: self.id,
                status: AlertStatus::parse(&self.status)
                    .ok_or_else(|| corrupt("alert status", &self.status))?,
                severity: Severity::parse(&self.severity)
                    .ok_or_else(|| corrupt("alert severity", &self.severity))?,
                triggered_at: self.triggered_at,
                last_seen_at: self.last_seen_at,
                cleared_since: self.cleared_since,
                trigger_count: u32::try_from(self.trigger_count).unwrap_or(1),
                floor: self.floor,
            },
        ))
    }
}

impl AlertEvaluation {
    /// Each patient's alert thresholds (their preset's when the care team set none).
    pub async fn thresholds(&mut self) -> Result<HashMap<Uuid, AlertThresholds>, StorageError> {
        let rows: Vec<(Uuid, String, Option<serde_json::Value>)> = sqlx::query_as(
            "SELECT patient_id, preset, alert_thresholds FROM patient_targets
             WHERE patient_id = ANY($1)",
        )
        .bind(&self.patients)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut out = HashMap::new();
        for patient in &self.patients {
            out.insert(*patient, decode_thresholds(None, None)?);
        }
        for (patient, preset, custom) in rows {
            out.insert(patient, decode_thresholds(Some(&preset), custom)?);
        }
        Ok(out)
    }

    /// Glucose readings measured since each patient's `from`.
    pub async fn glucose_since(
        &mut self,
        from: &[(Uuid, DateTime<Utc>)],
    ) -> Result<HashMap<Uuid, Vec<GlucosePoint>>, StorageError> {
        let (patients, since): (Vec<Uuid>, Vec<DateTime<Utc>>) = from.iter().copied().unzip();
        let rows: Vec<GlucoseRow> = sqlx::query_as(
            "SELECT r.patient_id, r.device_id, r.measured_at, r.received_at, r.value_mg_dl,
                 r.source, r.flag
             FROM UNNEST($1::uuid[], $2::timestamptz[]) AS w (patient_id, since)
             JOIN glucose_readings r ON r.patient_id = w.patient_id AND r.measured_at >= w.since
             ORDER BY r.measured_at",
        )
        .bind(&patients)
        .bind(&since)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut out: HashMap<Uuid, Vec<GlucosePoint>> = HashMap::new();
        for r in rows {
            out.entry(r.patient_id).or_default().push(GlucosePoint {
                source: GlucoseSource::parse(&r.source)
                    .ok_or_else(|| corrupt("glucose source", &r.source))?,
                flag: match r.flag {
                    Some(f) => {
                        Some(GlucoseFlag::parse(&f).ok_or_else(|| corrupt("glucose flag", &f))?)
                    }
                    None => None,
                },
                device_id: r.device_id,
                measured_at: r.measured_at,
                received_at: r.received_at,
                value_mg_dl: r.value_mg_dl,
            });
        }
        Ok(out)
    }

    /// Blood-pressure readings measured since each patient's `from`.
    pub async fn pressure_since(
        &mut self,
        from: &[(Uuid, DateTime<Utc>)],
    ) -> Result<HashMap<Uuid, Vec<PressurePoint>>, StorageError> {
        let (patients, since): (Vec<Uuid>, Vec<DateTime<Utc>>) = from.iter().copied().unzip();
        let rows: Vec<PressureRow> = sqlx::query_as(
            "SELECT r.patient_id, r.device_id, r.measured_at, r.received_at, r.systolic,
                 r.diastolic
             FROM UNNEST($1::uuid[], $2::timestamptz[]) AS w (patient_id, since)
             JOIN blood_pressure_readings r
               ON r.patient_id = w.patient_id AND r.measured_at >= w.since
             ORDER BY r.measured_at",
        )
        .bind(&patients)
        .bind(&since)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut out: HashMap<Uuid, Vec<PressurePoint>> = HashMap::new();
        for r in rows {
            out.entry(r.patient_id).or_default().push(PressurePoint {
                device_id: r.device_id,
                measured_at: r.measured_at,
                received_at: r.received_at,
                systolic: u16::try_from(r.systolic).unwrap_or_default(),
                diastolic: u16::try_from(r.diastolic).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// The devices of `patients` that are not revoked and have sent at least one reading.
    pub async fn device_activity(
        &mut self,
        patients: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<DeviceActivity>>, StorageError> {
        let rows: Vec<(Uuid, String, String, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT d.patient_id, d.id, d.kind,
                 CASE WHEN d.kind = 'bp'
                      THEN (SELECT max(measured_at) FROM blood_pressure_readings r WHERE r.device_id = d.id)
                      ELSE (SELECT max(measured_at) FROM glucose_readings r WHERE r.device_id = d.id)
                 END
             FROM devices d WHERE d.patient_id = ANY($1) AND d.revoked_at IS NULL",
        )
        .bind(patients)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut out: HashMap<Uuid, Vec<DeviceActivity>> = HashMap::new();
        for (patient, device_id, kind, last) in rows {
            let Some(last_measured_at) = last else {
                continue;
            };
            out.entry(patient).or_default().push(DeviceActivity {
                kind: kind
                    .parse::<DeviceKind>()
                    .map_err(|_| corrupt("device kind", &kind))?,
                device_id,
                last_measured_at,
            });
        }
        Ok(out)
    }

    /// Each patient's latest alert of each rule and category (the active one if any).
    pub async fn latest_alerts(
        &mut self,
    ) -> Result<HashMap<Uuid, HashMap<(RuleId, DataCategory), KnownAlert>>, StorageError> {
        let rows: Vec<KnownRow> = sqlx::query_as(
            "SELECT patient_id, id, rule, category, status, severity, triggered_at, last_seen_at,
                 cleared_since, trigger_count, floor
             FROM (SELECT *,
                     row_number() OVER newest AS position,
                     lead(last_seen_at) OVER newest AS floor
                   FROM alerts WHERE patient_id = ANY($1) AND kind = 'alert'
                   WINDOW newest AS (PARTITION BY patient_id, rule, category
                       ORDER BY (status <> 'resolved') DESC, last_seen_at DESC, seq DESC)
             ) ranked
             WHERE position = 1",
        )
        .bind(&self.patients)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut out: HashMap<Uuid, HashMap<(RuleId, DataCategory), KnownAlert>> = HashMap::new();
        for row in rows {
            let patient = row.patient_id;
            let (key, known) = row.into_known()?;
            out.entry(patient).or_default().insert(key, known);
        }
        Ok(out)
    }

    /// Applies one change of the lifecycle to the rule's alerts.
    pub async fn apply(
        &mut self,
        patient_id: Uuid,
        rule: RuleId,
        category: DataCategory,
        change: &Change,
    ) -> Result<(), StorageError> {
        match change {
            Change::Open(new) => {
                let id = Uuid::new_v4();
                sqlx::query(
                    "INSERT INTO alerts (id, patient_id, rule, category, severity, kind, status,
                         device_id, triggered_at, last_seen_at, cleared_since, trigger_count, evidence)
                     VALUES ($1, $2, $3, $4, $5, 'alert', 'open', $6, $7, $8, $9, $10, $11)",
                )
                .bind(id)
                .bind(patient_id)
                .bind(rule.as_str())
                .bind(category.as_str())
                .bind(new.severity.as_str())
                .bind(&new.trigger.device_id)
                .bind(new.triggered_at)
                .bind(new.last_seen_at)
                .bind(new.cleared_since)
                .bind(i32::try_from(new.trigger_count).unwrap_or(i32::MAX))
                .bind(to_json("alert evidence", &new.trigger.evidence)?)
                .execute(&mut *self.tx)
                .await?;
                self.events.push((id, EventKind::Opened, None));
            }
            Change::Update(u) => {
                let (set_cleared, cleared) = match u.cleared_since {
                    Some(c) => (true, c),
                    None => (false, None),
                };
                sqlx::query(
                    "UPDATE alerts SET trigger_count = trigger_count + $2,
                         severity = coalesce($3, severity),
                         last_seen_at = coalesce($4, last_seen_at),
                         triggered_at = coalesce($9, triggered_at),
                         cleared_since = CASE WHEN $5 THEN $6 ELSE cleared_since END,
                         status = CASE WHEN $7 THEN 'open' ELSE status END,
                         updated_at = now()
                     WHERE id = $1 AND patient_id = $8",
                )
                .bind(u.alert_id)
                .bind(i32::try_from(u.retriggers).unwrap_or(i32::MAX))
                .bind(u.escalate_to.map(Severity::as_str))
                .bind(u.last_seen_at)
                .bind(set_cleared)
                .bind(cleared)
                .bind(u.reopen)
                .bind(patient_id)
                .bind(u.triggered_at)
                .execute(&mut *self.tx)
                .await?;
                if u.retriggers > 0 {
                    self.events.push((u.alert_id, EventKind::Retriggered, None));
                }
                if u.escalate_to.is_some() {
                    self.events.push((u.alert_id, EventKind::Escalated, None));
                }
            }
            Change::Historical(h) => {
                self.record_historical(patient_id, rule, category, h)
                    .await?
            }
        }
        Ok(())
    }

    /// A historical event, merged into one of the rule that it overlaps (so a backlog synced
    /// in pieces, in any order, makes one event per episode).
    async fn record_historical(
        &mut self,
        patient_id: Uuid,
        rule: RuleId,
        category: DataCategory,
        h: &lifecycle::HistoricalEvent,
    ) -> Result<(), StorageError> {
        let existing: Option<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT id, severity, triggered_at FROM alerts
             WHERE patient_id = $1 AND rule = $2 AND category = $3 AND kind = 'historical'
               AND triggered_at <= $5 AND last_seen_at >= $4
             ORDER BY triggered_at LIMIT 1 FOR UPDATE",
        )
        .bind(patient_id)
        .bind(rule.as_str())
        .bind(category.as_str())
        .bind(h.started_at - MAX_GAP)
        .bind(h.last_hold_at + MAX_GAP)
        .fetch_optional(&mut *self.tx)
        .await?;
        match existing {
            Some((id, severity, triggered_at)) => {
                let severity = Severity::parse(&severity)
                    .ok_or_else(|| corrupt("alert severity", &severity))?
                    .max(h.severity);
                let earlier = h.started_at < triggered_at;
                sqlx::query(
                    "UPDATE alerts SET triggered_at = least(triggered_at, $2),
                         last_seen_at = greatest(last_seen_at, $3), severity = $4,
                         evidence = CASE WHEN $5 THEN $6 ELSE evidence END,
                         device_id = CASE WHEN $5 THEN $7 ELSE device_id END, updated_at = now()
                     WHERE id = $1",
                )
                .bind(id)
                .bind(h.started_at)
                .bind(h.last_hold_at)
                .bind(severity.as_str())
                .bind(earlier)
                .bind(to_json("alert evidence", &h.first.evidence)?)
                .bind(&h.first.device_id)
                .execute(&mut *self.tx)
                .await?;
            }
            None => {
                let id = Uuid::new_v4();
                sqlx::query(
                    "INSERT INTO alerts (id, patient_id, rule, category, severity, kind, status,
                         device_id, triggered_at, last_seen_at, evidence)
                     VALUES ($1, $2, $3, $4, $5, 'historical', NULL, $6, $7, $8, $9)",
                )
                .bind(id)
                .bind(patient_id)
                .bind(rule.as_str())
                .bind(category.as_str())
                .bind(h.severity.as_str())
                .bind(&h.first.device_id)
                .bind(h.started_at)
                .bind(h.last_hold_at)
                .bind(to_json("alert evidence", &h.first.evidence)?)
                .execute(&mut *self.tx)
                .await?;
                self.events.push((id, EventKind::Historical, None));
            }
        }
        Ok(())
    }

    /// Resolves every active alert of the patients whose condition has been clear for the
    /// patient's `resolve_after`.
    pub async fn resolve_cleared(
        &mut self,
        resolve_after: &HashMap<Uuid, Duration>,
        now: DateTime<Utc>,
    ) -> Result<u32, StorageError> {
        let rows: Vec<KnownRow> = sqlx::query_as(
            "SELECT patient_id, id, rule, category, status, severity, triggered_at, last_seen_at,
                 cleared_since, trigger_count
             FROM alerts WHERE patient_id = ANY($1) AND status IN ('open', 'acknowledged')
               AND cleared_since IS NOT NULL FOR UPDATE",
        )
        .bind(&self.patients)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut due = Vec::new();
        for row in rows {
            let Some(after) = resolve_after.get(&row.patient_id).copied() else {
                continue;
            };
            let (_, alert) = row.into_known()?;
            if lifecycle::due_for_auto_resolve(&alert, after, now) {
                due.push(alert.id);
            }
        }
        if !due.is_empty() {
            sqlx::query(
                "UPDATE alerts SET status = 'resolved', resolved_at = now(), resolution = 'auto',
                     updated_at = now()
                 WHERE id = ANY($1)",
            )
            .bind(&due)
            .execute(&mut *self.tx)
            .await?;
        }
        for id in &due {
            self.events.push((*id, EventKind::Resolved, None));
        }
        Ok(due.len() as u32)
    }

    /// How many events the commit will write.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// Writes the events (in commit order, see the module documentation), queues their
    /// webhook deliveries, notifies every server, and commits. Returns the events written.
    pub async fn commit(mut self) -> Result<Vec<AlertEvent>, StorageError> {
        if self.events.is_empty() {
            self.tx.commit().await?;
            return Ok(Vec::new());
        }
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(EVENTS_LOCK)
            .execute(&mut *self.tx)
            .await?;
        let mut written = Vec::with_capacity(self.events.len());
        for (alert_id, kind, actor) in std::mem::take(&mut self.events) {
            let row: EventRow = sqlx::query_as(
                "INSERT INTO alert_events (alert_id, patient_id, category, rule, kind, actor_id, payload)
                 SELECT a.id, a.patient_id, a.category, a.rule, $2, $3, to_jsonb(a) - 'seq'
                 FROM alerts a WHERE a.id = $1
                 RETURNING id, kind, patient_id, category, actor_id, at, payload",
            )
            .bind(alert_id)
            .bind(kind.as_str())
            .bind(actor)
            .fetch_one(&mut *self.tx)
            .await?;
            written.push(AlertEvent::try_from(row)?);
        }
        self.queue_webhook_deliveries(&written).await?;
        if let Some(last) = written.last() {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(EVENTS_CHANNEL)
                .bind(last.id.to_string())
                .execute(&mut *self.tx)
                .await?;
        }
        self.tx.commit().await?;
        Ok(written)
    }

    /// One delivery per event and webhook of every organization the patient's grants let
    /// receive the event's category. The dispatcher asks again before each attempt.
    async fn queue_webhook_deliveries(
        &mut self,
        events: &[AlertEvent],
    ) -> Result<(), StorageError> {
        let hooks = active_webhooks(&mut self.tx).await?;
        if hooks.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let mut grants: HashMap<Uuid, Vec<chronicle_domain::sharing::Grant>> = HashMap::new();
        let mut webhook_ids = Vec::new();
        let mut event_ids = Vec::new();
        for event in events {
            if let std::collections::hash_map::Entry::Vacant(slot) = grants.entry(event.patient_id)
            {
                slot.insert(self.store.grants_for_patient(event.patient_id).await?);
            }
            let grants = grants
                .get(&event.patient_id)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for hook in &hooks {
                let allowed = chronicle_domain::sharing::organization_receives_alerts(
                    hook.organization_id,
                    &hook.teams,
                    event.patient_id,
                    event.category,
                    event.alert.triggered_at,
                    grants,
                    now,
                );
                if allowed.is_some() {
                    webhook_ids.push(hook.id);
                    event_ids.push(event.id);
                }
            }
        }
        sqlx::query(
            "INSERT INTO webhook_deliveries (webhook_id, event_id)
             SELECT * FROM UNNEST($1::uuid[], $2::bigint[]) ON CONFLICT DO NOTHING",
        )
        .bind(&webhook_ids)
        .bind(&event_ids)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

/// An enabled webhook with its organization's care teams (grants to a team reach the
/// organization's webhook too).
struct ActiveWebhook {
    id: Uuid,
    organization_id: Uuid,
    teams: Vec<Uuid>,
}

async fn active_webhooks(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
) -> Result<Vec<ActiveWebhook>, StorageError> {
    let rows: Vec<(Uuid, Uuid, Vec<Uuid>)> = sqlx::query_as(
        "SELECT w.id, w.organization_id,
             array(SELECT t.id FROM care_teams t WHERE t.organization_id = w.organization_id)
         FROM webhooks w WHERE w.disabled_at IS NULL",
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, organization_id, teams)| ActiveWebhook {
            id,
            organization_id,
            teams,
        })
        .collect())
}

/// What a user asked of an alert that cannot be done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlertActionError {
    /// No such alert of this patient in the permit's category.
    #[error("no such alert")]
    NotFound,
    #[error(transparent)]
    Transition(#[from] InvalidTransition),
}

/// A user's action on an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    Acknowledge,
    Resolve,
}

/// Which alerts a list shows.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Any of these statuses (historical events have none and are left out when set).
    pub statuses: Option<Vec<AlertStatus>>,
    /// `Some(false)`: live alerts only; `Some(true)`: historical events only.
    pub historical: Option<bool>,
    pub rule: Option<RuleId>,
    pub severity: Option<Severity>,
    /// Continue after this position (the previous page's last `seq`).
    pub before_seq: Option<i64>,
    pub limit: i64,
}

/// A user's snooze of a patient's alarms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snooze {
    pub patient_id: Uuid,
    /// `None`: every rule.
    pub rule: Option<String>,
    pub until: DateTime<Utc>,
}

/// Every rule, in a snooze row.
const ALL_RULES: &str = "*";

fn permits_for_alerts(permits: &[Permit]) -> Result<(), StorageError> {
    if permits.iter().all(|p| {
        p.access() == Access::ReceiveAlerts
            && matches!(
                p.category(),
                DataCategory::Glucose | DataCategory::BloodPressure
            )
    }) {
        Ok(())
    } else {
        Err(StorageError::NotPermitted("alerts"))
    }
}

/// A patient's unresolved alerts in the categories the caller receives alerts for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenAlertCounts {
    /// Open (not yet acknowledged) alerts.
    pub open: u32,
    /// Of those, the urgent ones.
    pub open_urgent: u32,
    /// Acknowledged, not yet resolved.
    pub acknowledged: u32,
}

impl Store {
    /// Unresolved alert counts of each permit's patient, within what the permits allow (their
    /// categories and `data_since`). Patients without any are absent.
    pub async fn open_alert_counts(
        &self,
        permits: &[Permit],
    ) -> Result<HashMap<Uuid, OpenAlertCounts>, StorageError> {
        permits_for_alerts(permits)?;
        if permits.is_empty() {
            return Ok(HashMap::new());
        }
        let patients: Vec<Uuid> = permits.iter().map(Permit::patient_id).collect();
        let categories: Vec<&str> = permits.iter().map(|p| p.category().as_str()).collect();
        let since: Vec<Option<DateTime<Utc>>> =
            permits.iter().map(|p| p.clamp_from(None)).collect();
        let rows: Vec<(Uuid, i64, i64, i64)> = sqlx::query_as(
            "SELECT a.patient_id,
                    count(*) FILTER (WHERE a.status = 'open'),
                    count(*) FILTER (WHERE a.status = 'open' AND a.severity = 'urgent'),
                    count(*) FILTER (WHERE a.status = 'acknowledged')
             FROM alerts a
             JOIN UNNEST($1::uuid[], $2::text[], $3::timestamptz[]) AS p (patient_id, category, since)
               ON a.patient_id = p.patient_id AND a.category = p.category
              AND (p.since IS NULL OR a.triggered_at >= p.since)
             WHERE a.kind = 'alert' AND a.status IN ('open', 'acknowledged')
             GROUP BY a.patient_id",
        )
        .bind(&patients)
        .bind(&categories)
        .bind(&since)
        .fetch_all(self.pool())
        .await?;
        let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(rows
            .into_iter()
            .map(|(patient, open, urgent, acknowledged)| {
                (
                    patient,
                    OpenAlertCounts {
                        open: count(open),
                        open_urgent: count(urgent),
                        acknowledged: count(acknowledged),
                    },
                )
            })
            .collect())
    }
}

impl Store {
    /// Alerts (and historical events) of the permits' patients and categories, newest first,
    /// within each grant's window.
    pub async fn alerts_for(
        &self,
        permits: &[Permit],
        filter: &AlertFilter,
    ) -> Result<Vec<AlertRecord>, StorageError> {
        permits_for_alerts(permits)?;
        let patients: Vec<Uuid> = permits.iter().map(Permit::patient_id).collect();
        let categories: Vec<&str> = permits.iter().map(|p| p.category().as_str()).collect();
        let since: Vec<Option<DateTime<Utc>>> =
            permits.iter().map(|p| p.clamp_from(None)).collect();
        let statuses: Option<Vec<&str>> = filter
            .statuses
            .as_ref()
            .map(|s| s.iter().map(|s| s.as_str()).collect());
        let kind = filter
            .historical
            .map(|h| if h { "historical" } else { "alert" });
        Ok(sqlx::query_as::<_, AlertRecord>(&format!(
            "SELECT {columns} FROM alerts a
             JOIN UNNEST($1::uuid[], $2::text[], $3::timestamptz[]) AS p (patient_id, category, since)
               ON a.patient_id = p.patient_id AND a.category = p.category
              AND (p.since IS NULL OR a.triggered_at >= p.since)
             WHERE ($4::text IS NULL OR a.kind = $4)
               AND ($5::text[] IS NULL OR a.status = ANY($5))
               AND ($6::text IS NULL OR a.rule = $6)
               AND ($7::text IS NULL OR a.severity = $7)
               AND ($8::bigint IS NULL OR a.seq < $8)
             ORDER BY a.seq DESC LIMIT $9",
            columns = ALERT_COLUMNS
                .split(", ")
                .map(|c| format!("a.{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(&patients)
        .bind(&categories)
        .bind(&since)
        .bind(kind)
        .bind(statuses)
        .bind(filter.rule.map(RuleId::as_str))
        .bind(filter.severity.map(Severity::as_str))
        .bind(filter.before_seq)
        .bind(filter.limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// The category of a patient's alert, so the caller can ask the gate for the right one;
    /// `None` when the patient has no such alert. Reveals nothing but the category.
    pub async fn alert_category(
        &self,
        patient_id: Uuid,
        alert_id: Uuid,
    ) -> Result<Option<DataCategory>, StorageError> {
        let category: Option<String> =
            sqlx::query_scalar("SELECT category FROM alerts WHERE id = $1 AND patient_id = $2")
                .bind(alert_id)
                .bind(patient_id)
                .fetch_optional(self.pool())
                .await?;
        category
            .map(|c| DataCategory::parse(&c).ok_or_else(|| corrupt("alert category", &c)))
            .transpose()
    }

    /// Acknowledges or resolves an alert as `user_id`, with an optional note. Serialized with
    /// the engine's evaluation of the patient.
    pub async fn act_on_alert(
        &self,
        permit: &Permit,
        alert_id: Uuid,
        action: AlertAction,
        user_id: Uuid,
        note: Option<&str>,
    ) -> Result<Result<AlertRecord, AlertActionError>, StorageError> {
        permits_for_alerts(std::slice::from_ref(permit))?;
        let mut evaluation = self.begin_alert_evaluation(&[permit.patient_id()]).await?;
        let row: Option<(String, Option<String>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT kind, status, triggered_at FROM alerts
             WHERE id = $1 AND patient_id = $2 AND category = $3 FOR UPDATE",
        )
        .bind(alert_id)
        .bind(permit.patient_id())
        .bind(permit.category().as_str())
        .fetch_optional(&mut *evaluation.tx)
        .await?;
        // Historical events have no lifecycle: nothing to acknowledge or resolve.
        let Some((_, Some(status), triggered_at)) = row.filter(|(kind, _, _)| kind == "alert")
        else {
            return Ok(Err(AlertActionError::NotFound));
        };
        if permit
            .clamp_from(None)
            .is_some_and(|since| triggered_at < since)
        {
            return Ok(Err(AlertActionError::NotFound));
        }
        let status = AlertStatus::parse(&status).ok_or_else(|| corrupt("alert status", &status))?;
        let next = match action {
            AlertAction::Acknowledge => lifecycle::acknowledge(status),
            AlertAction::Resolve => lifecycle::resolve(status),
        };
        if let Err(invalid) = next {
            return Ok(Err(invalid.into()));
        }
        let (statement, kind) = match action {
            AlertAction::Acknowledge => (
                "UPDATE alerts SET status = 'acknowledged', acknowledged_by = $2,
                     acknowledged_at = now(), acknowledgement_note = $3, updated_at = now()
                 WHERE id = $1",
                EventKind::Acknowledged,
            ),
            AlertAction::Resolve => (
                "UPDATE alerts SET status = 'resolved', resolved_by = $2, resolved_at = now(),
                     resolution = 'manual', resolution_note = $3, updated_at = now()
                 WHERE id = $1",
                EventKind::Resolved,
            ),
        };
        sqlx::query(statement)
            .bind(alert_id)
            .bind(user_id)
            .bind(note)
            .execute(&mut *evaluation.tx)
            .await?;
        evaluation.events.push((alert_id, kind, Some(user_id)));
        let events = evaluation.commit().await?;
        match events.into_iter().next() {
            Some(event) => Ok(Ok(event.alert)),
            None => Err(corrupt("alert event", "none written")),
        }
    }

    /// Snoozes the permit's patient's alarms for `user_id` (one rule, or all) until `until`.
    pub async fn snooze_alerts(
        &self,
        permit: &Permit,
        user_id: Uuid,
        rule: Option<RuleId>,
        until: DateTime<Utc>,
    ) -> Result<Snooze, StorageError> {
        permits_for_alerts(std::slice::from_ref(permit))?;
        sqlx::query(
            "INSERT INTO alert_snoozes (user_id, patient_id, rule, until) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, patient_id, rule) DO UPDATE SET until = excluded.until,
                 created_at = now()",
        )
        .bind(user_id)
        .bind(permit.patient_id())
        .bind(rule.map_or(ALL_RULES, RuleId::as_str))
        .bind(until)
        .execute(self.pool())
        .await?;
        Ok(Snooze {
            patient_id: permit.patient_id(),
            rule: rule.map(|r| r.as_str().to_owned()),
            until,
        })
    }

    /// Ends the user's snoozes of the patient (of one rule, or all of them); how many ended.
    pub async fn unsnooze_alerts(
        &self,
        permit: &Permit,
        user_id: Uuid,
        rule: Option<RuleId>,
    ) -> Result<u64, StorageError> {
        permits_for_alerts(std::slice::from_ref(permit))?;
        Ok(sqlx::query(
            "DELETE FROM alert_snoozes WHERE user_id = $1 AND patient_id = $2
                 AND ($3::text IS NULL OR rule = $3)",
        )
        .bind(user_id)
        .bind(permit.patient_id())
        .bind(rule.map(RuleId::as_str))
        .execute(self.pool())
        .await?
        .rows_affected())
    }

    /// The user's snoozes still running.
    pub async fn snoozes_of(&self, user_id: Uuid) -> Result<Vec<Snooze>, StorageError> {
        let rows: Vec<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT patient_id, rule, until FROM alert_snoozes
             WHERE user_id = $1 AND until > now() ORDER BY until, patient_id, rule",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(patient_id, rule, until)| Snooze {
                patient_id,
                rule: (rule != ALL_RULES).then_some(rule),
                until,
            })
            .collect())
    }

    /// Whether the user snoozed this patient's alarms of `rule` (or all) at `at`.
    pub async fn is_snoozed(
        &self,
        user_id: Uuid,
        patient_id: Uuid,
        rule: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM alert_snoozes WHERE user_id = $1 AND patient_id = $2
                 AND rule IN ($3, '*') AND until > $4)",
        )
        .bind(user_id)
        .bind(patient_id)
        .bind(rule)
        .bind(at)
        .fetch_one(self.pool())
        .await?)
    }

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
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(AlertEvent::try_from)
        .collect()
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

impl Store {
    /// The (patient, category) pairs whose alerts a principal may receive, to ask the gate
    /// about: their own record and those they are guardian of (both categories), and every
    /// active grant naming them (directly, or through a current team or organization) that
    /// allows `receive_alerts`. The gate still decides each pair.
    pub async fn alert_candidates(
        &self,
        principal: &Principal,
    ) -> Result<Vec<(Uuid, DataCategory)>, StorageError> {
        let rows: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT DISTINCT g.patient_id, c.category
             FROM grants g CROSS JOIN UNNEST(g.categories) AS c (category)
             WHERE g.revoked_at IS NULL AND (g.expires_at IS NULL OR g.expires_at > now())
               AND g.created_at <= now() AND 'receive_alerts' = ANY(g.access)
               AND c.category IN ('glucose', 'blood_pressure')
               AND ((g.grantee_type = 'user' AND g.grantee_id = $1)
                 OR (g.grantee_type = 'care_team' AND g.grantee_id = ANY($2))
                 OR (g.grantee_type = 'organization' AND g.grantee_id = ANY($3)))
             ORDER BY 1, 2",
        )
        .bind(principal.user_id)
        .bind(&principal.care_teams)
        .bind(&principal.organizations)
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<(Uuid, DataCategory)> = principal
            .patient_id
            .into_iter()
            .chain(principal.guardian_of.iter().copied())
            .flat_map(|p| [(p, DataCategory::Glucose), (p, DataCategory::BloodPressure)])
            .collect();
        for (patient_id, category) in rows {
            let category = DataCategory::parse(&category).ok_or_else(|| StorageError::Corrupt {
                what: "grant category",
                value: category.clone(),
            })?;
            if !out.contains(&(patient_id, category)) {
                out.push((patient_id, category));
            }
        }
        Ok(out)
    }
}

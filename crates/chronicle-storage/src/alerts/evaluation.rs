//! The alert engine's side: an evaluation of some patients under their advisory locks, the
//! readings and alerts the rules need, the lifecycle's changes, and the commit that writes the
//! events, queues webhook deliveries and notifies every server.

use super::{AlertEvent, EVENTS_CHANNEL, EVENTS_LOCK, EventRow, PATIENT_LOCK_NAMESPACE, to_json};
use crate::{FinishedWrites, StorageError, Store};
use chronicle_domain::alerts::lifecycle::{self, AlertStatus, Change, EventKind, KnownAlert};
use chronicle_domain::alerts::rules::{DeviceActivity, GlucosePoint, MAX_GAP, PressurePoint};
use chronicle_domain::alerts::thresholds::AlertThresholds;
use chronicle_domain::alerts::{RuleId, Severity};
use chronicle_domain::sharing::DataCategory;
use chronicle_domain::targets::TargetPreset;
use chronicle_domain::{DeviceKind, GlucoseFlag, GlucoseSource};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use uuid::Uuid;
/// Decodes a patient's alert thresholds: the stored custom values, else the preset's.
pub(crate) fn decode_thresholds(
    preset: Option<&str>,
    custom: Option<serde_json::Value>,
) -> Result<AlertThresholds, StorageError> {
    if let Some(json) = custom {
        return serde_json::from_value(json.clone())
            .map_err(|_| StorageError::corrupt("alert thresholds", json));
    }
    let preset = match preset {
        Some(text) => {
            TargetPreset::parse(text).ok_or_else(|| StorageError::corrupt("target preset", text))?
        }
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
    pub(super) tx: sqlx::Transaction<'static, sqlx::Postgres>,
    /// The patients whose locks this evaluation holds, sorted.
    patients: Vec<Uuid>,
    /// Events to write at commit: (alert, kind, actor).
    pub(super) events: Vec<(Uuid, EventKind, Option<Uuid>)>,
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
        let mut tx = self.begin().await?;
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
    /// (auto-resolution) or about silence. Silences found covered (or of revoked devices) are
    /// settled, so each tick evaluates only patients whose device's silence came due since the
    /// last.
    pub async fn patients_due_for_time_checks(&self) -> Result<Vec<Uuid>, StorageError> {
        Ok(sqlx::query_scalar(
            "WITH due AS (
                 SELECT l.device_key, l.last_measured_at, d.patient_id,
                        CASE WHEN d.kind = 'bp' THEN 'blood_pressure' ELSE 'glucose' END AS category,
                        d.revoked_at IS NOT NULL AS revoked
                 FROM device_last_readings l JOIN devices d ON d.key = l.device_key
                 WHERE l.silence_due_at <= now()
             ), looked AS (
                 SELECT due.*, revoked OR EXISTS (SELECT 1 FROM alerts a
                     WHERE a.patient_id = due.patient_id AND a.rule = 'no_data'
                       AND a.kind = 'alert' AND a.category = due.category
                       AND a.last_seen_at >= due.last_measured_at) AS covered
                 FROM due
             ), settled AS (
                 -- Skipping rows an ingest batch holds: their new reading makes them due
                 -- again anyway, and waiting could deadlock with the batch.
                 UPDATE device_last_readings SET silence_due_at = NULL
                 WHERE device_key IN (
                     SELECT l.device_key FROM device_last_readings l
                     JOIN looked USING (device_key)
                     WHERE looked.covered AND l.last_measured_at = looked.last_measured_at
                     ORDER BY l.device_key
                     FOR UPDATE OF l SKIP LOCKED)
             )
             SELECT DISTINCT patient_id FROM looked WHERE NOT covered
             UNION
             SELECT DISTINCT patient_id FROM alerts
             WHERE status IN ('open', 'acknowledged') AND (cleared_since IS NOT NULL OR rule = 'no_data')",
        )
        .fetch_all(self.pool())
        .await?)
    }
}

/// A glucose reading as the engine reads it, decoded by position: the engine reads every new
/// reading back, and a look-up of each column by name cost more than decoding it.
/// (patient, device, measured at, received at, mg/dL, source, flag)
type GlucoseRow = (
    Uuid,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
    f64,
    String,
    Option<String>,
);

/// A blood-pressure reading as the engine reads it, decoded by position (as [`GlucoseRow`]).
/// (patient, device, measured at, received at, systolic, diastolic)
type PressureRow = (Uuid, String, DateTime<Utc>, DateTime<Utc>, i16, i16);

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
        let rule = RuleId::parse(&self.rule)
            .ok_or_else(|| StorageError::corrupt("alert rule", &self.rule))?;
        let category = DataCategory::parse(&self.category)
            .ok_or_else(|| StorageError::corrupt("alert category", &self.category))?;
        Ok((
            (rule, category),
            KnownAlert {
                id: self.id,
                status: AlertStatus::parse(&self.status)
                    .ok_or_else(|| StorageError::corrupt("alert status", &self.status))?,
                severity: Severity::parse(&self.severity)
                    .ok_or_else(|| StorageError::corrupt("alert severity", &self.severity))?,
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

    /// Records `engine` as the alert engine that evaluated `patients` (those evaluated for
    /// newly stored readings) last, and returns for each patient whether it already was. An
    /// engine that holds a patient's recent readings from its own last evaluation may trust
    /// them only then: nobody else evaluated the patient in between. Erased patients are left
    /// out. Only a change of engine is written, so a server that evaluates its patients by
    /// itself writes nothing here after its first evaluation of each.
    pub async fn take_over_patients(
        &mut self,
        patients: &[Uuid],
        engine: Uuid,
    ) -> Result<HashMap<Uuid, bool>, StorageError> {
        if patients.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(Uuid, bool)> = sqlx::query_as(
            "WITH known AS (
                 SELECT p.id, coalesce(e.engine = $2, false) AS evaluated_last
                 FROM patients p LEFT JOIN alert_evaluation_engines e ON e.patient_id = p.id
                 WHERE p.id = ANY($1)
             ), taken AS (
                 INSERT INTO alert_evaluation_engines AS e (patient_id, engine)
                 SELECT id, $2 FROM known WHERE NOT evaluated_last
                 ON CONFLICT (patient_id) DO UPDATE SET engine = excluded.engine
             )
             SELECT id, evaluated_last FROM known",
        )
        .bind(patients)
        .bind(engine)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// The transactions finished as of now: a read that begins after this returns what any
    /// of them stored.
    pub async fn finished_writes(&mut self) -> Result<FinishedWrites, StorageError> {
        let snapshot: String = sqlx::query_scalar("SELECT pg_current_snapshot()::text")
            .fetch_one(&mut *self.tx)
            .await?;
        FinishedWrites::parse(&snapshot).ok_or_else(|| StorageError::corrupt("snapshot", &snapshot))
    }

    /// Glucose readings measured since each patient's `from`. Each patient's readings are
    /// read in a subquery of their own behind a fence (`OFFSET 0`): joined directly, the
    /// planner takes the bound from an array row as a filter, not as a bound of the index
    /// range, and walks each device's whole history (200 patients with 10,000 readings a
    /// device: 800 ms against 150 ms, and growing with the history).
    pub async fn glucose_since(
        &mut self,
        from: &[(Uuid, DateTime<Utc>)],
    ) -> Result<HashMap<Uuid, Vec<GlucosePoint>>, StorageError> {
        let (patients, since): (Vec<Uuid>, Vec<DateTime<Utc>>) = from.iter().copied().unzip();
        let rows: Vec<GlucoseRow> = sqlx::query_as(
            "SELECT w.patient_id, r.device_id, r.measured_at, r.received_at, r.value_mg_dl,
                 r.source, r.flag
             FROM UNNEST($1::uuid[], $2::timestamptz[]) AS w (patient_id, since)
             CROSS JOIN LATERAL (
                 SELECT device_id, measured_at, received_at, value_mg_dl, source, flag
                 FROM glucose_readings
                 WHERE patient_id = w.patient_id AND measured_at >= w.since
                 OFFSET 0 -- a fence: see the comment above
             ) r
             ORDER BY r.measured_at",
        )
        .bind(&patients)
        .bind(&since)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut out: HashMap<Uuid, Vec<GlucosePoint>> = HashMap::new();
        for (patient_id, device_id, measured_at, received_at, value_mg_dl, source, flag) in rows {
            out.entry(patient_id).or_default().push(GlucosePoint {
                source: GlucoseSource::parse(&source)
                    .ok_or_else(|| StorageError::corrupt("glucose source", &source))?,
                flag: match flag {
                    Some(f) => Some(
                        GlucoseFlag::parse(&f)
                            .ok_or_else(|| StorageError::corrupt("glucose flag", &f))?,
                    ),
                    None => None,
                },
                device_id,
                measured_at,
                received_at,
                value_mg_dl,
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
            "SELECT w.patient_id, r.device_id, r.measured_at, r.received_at, r.systolic,
                 r.diastolic
             FROM UNNEST($1::uuid[], $2::timestamptz[]) AS w (patient_id, since)
             CROSS JOIN LATERAL (
                 SELECT device_id, measured_at, received_at, systolic, diastolic
                 FROM blood_pressure_readings
                 WHERE patient_id = w.patient_id AND measured_at >= w.since
                 OFFSET 0 -- a fence, as in `glucose_since`
             ) r
             ORDER BY r.measured_at",
        )
        .bind(&patients)
        .bind(&since)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut out: HashMap<Uuid, Vec<PressurePoint>> = HashMap::new();
        for (patient_id, device_id, measured_at, received_at, systolic, diastolic) in rows {
            out.entry(patient_id).or_default().push(PressurePoint {
                device_id,
                measured_at,
                received_at,
                systolic: u16::try_from(systolic).unwrap_or_default(),
                diastolic: u16::try_from(diastolic).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// The devices of `patients` that are not revoked and have sent at least one reading.
    pub async fn device_activity(
        &mut self,
        patients: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<DeviceActivity>>, StorageError> {
        let rows: Vec<(Uuid, String, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT d.patient_id, d.id, d.kind, l.last_measured_at
             FROM devices d JOIN device_last_readings l ON l.device_key = d.key
             WHERE d.patient_id = ANY($1) AND d.revoked_at IS NULL",
        )
        .bind(patients)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut out: HashMap<Uuid, Vec<DeviceActivity>> = HashMap::new();
        for (patient, device_id, kind, last_measured_at) in rows {
            out.entry(patient).or_default().push(DeviceActivity {
                kind: kind
                    .parse::<DeviceKind>()
                    .map_err(|_| StorageError::corrupt("device kind", &kind))?,
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
        let existing: Option<(Uuid, String, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT id, severity, triggered_at, last_seen_at FROM alerts
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
            Some((id, stored_severity, triggered_at, last_seen_at)) => {
                let stored_severity = Severity::parse(&stored_severity)
                    .ok_or_else(|| StorageError::corrupt("alert severity", &stored_severity))?;
                let severity = stored_severity.max(h.severity);
                let earlier = h.started_at < triggered_at;
                // An evaluation looks back over readings it judged before, so it finds the
                // episodes it recorded then again: one the event already covers changes nothing.
                if !earlier && h.last_hold_at <= last_seen_at && severity == stored_severity {
                    return Ok(());
                }
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
    /// webhook deliveries and the alarms' notifications to users' own channels, notifies every
    /// server, and commits. Returns the events written.
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
        let mut grants = HashMap::new();
        self.queue_webhook_deliveries(&written, &mut grants).await?;
        crate::notifications::queue_notifications(&self.store, &mut self.tx, &written, &mut grants)
            .await?;
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
        grants: &mut HashMap<Uuid, Vec<chronicle_domain::sharing::Grant>>,
    ) -> Result<(), StorageError> {
        let hooks = active_webhooks(&mut self.tx).await?;
        if hooks.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
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

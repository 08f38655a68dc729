//! Users' own channels for the alerts they receive (Web Push subscriptions, e-mail, a personal
//! signed webhook) and the per-user delivery log. Deliveries are queued with the alert events
//! (`alerts::AlertEvaluation::commit`, for alarms only, to every channel of every user the
//! patient's grants let receive the event); the delivery worker leases due ones, asks the gate
//! ([`Store::authorize_notification`]) before each attempt, and records every attempt.

use crate::alerts::AlertEvent;
use crate::gate::Permit;
use crate::webhooks::{AfterAttempt, AttemptOutcome};
use crate::{StorageError, Store};
use chronicle_domain::alerts::escalation::DeliveryReason;
use chronicle_domain::alerts::quiet_hours::QuietHours;
use chronicle_domain::sharing::{
    Access, AccessAction, AccessRequest, DataCategory, DenyReason, Grant, Principal, Role, decide,
};
use chronicle_domain::zone::parse_time_zone;
use chrono::{DateTime, NaiveTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// What kind of channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelTarget {
    /// A browser's push subscription (RFC 8030 endpoint, RFC 8291 keys, base64url).
    WebPush {
        endpoint: String,
        p256dh: String,
        auth: String,
    },
    Email {
        address: String,
    },
    /// A personal webhook, signed like organizations' webhooks.
    Webhook {
        url: String,
        secret: String,
    },
}

impl ChannelTarget {
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelTarget::WebPush { .. } => "web_push",
            ChannelTarget::Email { .. } => "email",
            ChannelTarget::Webhook { .. } => "webhook",
        }
    }
}

/// A channel as its owner sees it (never with its secret or push keys).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Channel {
    pub id: Uuid,
    pub user_id: Uuid,
    /// `web_push`, `email` or `webhook`.
    pub kind: String,
    /// The push endpoint, e-mail address or webhook URL.
    pub target: String,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// When the user proved the e-mail address theirs (Web Push and webhooks: when added).
    /// Nothing is queued for an unconfirmed channel.
    pub confirmed_at: Option<DateTime<Utc>>,
}

/// One alert event to one of the user's channels.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct NotificationDelivery {
    pub id: i64,
    pub channel_id: Uuid,
    pub channel_kind: String,
    pub event_id: i64,
    pub event_kind: String,
    pub alert_id: Uuid,
    pub patient_id: Uuid,
    /// `alarm`, `escalation` or `reminder`.
    pub reason: String,
    /// 0 for a receiver's first notice of the alarm, then each reminder's number.
    pub round: i32,
    /// `pending`, `delivered`, `failed` (every attempt failed) or `withheld` (the gate no
    /// longer let the user receive it when its turn came).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A delivery the worker leased.
#[derive(Debug, Clone)]
pub struct DueNotification {
    pub id: i64,
    pub channel_id: Uuid,
    pub user_id: Uuid,
    pub target: ChannelTarget,
    /// The patient's name as the registry holds it (receivers see whose alert it is).
    pub patient_name: String,
    /// Attempts made before this one.
    pub attempts: i32,
    pub event: AlertEvent,
    /// The receiver's quiet hours, read with the lease.
    pub quiet_hours: Option<QuietHours>,
    /// The alarm itself, a later escalation step, or a reminder.
    pub reason: DeliveryReason,
    /// Whether the alert is still open (not acknowledged, not resolved) as leased.
    pub alert_open: bool,
}

#[derive(sqlx::FromRow)]
struct DueRow {
    id: i64,
    channel_id: Uuid,
    user_id: Uuid,
    kind: String,
    target: String,
    push_p256dh: Option<String>,
    push_auth: Option<String>,
    secret: Option<String>,
    patient_name: String,
    attempts: i32,
    event_id: i64,
    event_kind: String,
    patient_id: Uuid,
    category: String,
    actor_id: Option<Uuid>,
    at: DateTime<Utc>,
    payload: serde_json::Value,
    quiet_starts: Option<NaiveTime>,
    quiet_ends: Option<NaiveTime>,
    quiet_zone: Option<String>,
    reason: String,
    alert_open: bool,
}

/// Quiet hours as stored, read back.
fn stored_quiet_hours(
    starts: NaiveTime,
    ends: NaiveTime,
    zone: &str,
) -> Result<QuietHours, StorageError> {
    let zone =
        parse_time_zone(zone).map_err(|_| StorageError::corrupt("quiet hours time zone", zone))?;
    QuietHours::new(starts, ends, zone)
        .map_err(|_| StorageError::corrupt("quiet hours", format!("{starts}–{ends}")))
}

impl DueRow {
    fn target(&self) -> Result<ChannelTarget, StorageError> {
        let corrupt = || StorageError::corrupt("notification channel", &self.kind);
        Ok(match self.kind.as_str() {
            "web_push" => ChannelTarget::WebPush {
                endpoint: self.target.clone(),
                p256dh: self.push_p256dh.clone().ok_or_else(corrupt)?,
                auth: self.push_auth.clone().ok_or_else(corrupt)?,
            },
            "email" => ChannelTarget::Email {
                address: self.target.clone(),
            },
            "webhook" => ChannelTarget::Webhook {
                url: self.target.clone(),
                secret: self.secret.clone().ok_or_else(corrupt)?,
            },
            _ => return Err(corrupt()),
        })
    }
}

/// What the gate answered for one notification attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationDecision {
    /// Send it, telling no more than the permit allows (trends only: no values).
    Send(Permit),
    /// Not now, and never for this delivery (grant revoked, snoozed, account disabled…).
    Withhold,
}

pub(crate) const CHANNEL_COLUMNS: &str =
    "id, user_id, kind, target, label, created_at, disabled_at, confirmed_at";

/// The channel holders who may be concerned by `patient_ids`' alerts: users with an enabled
/// channel who are one of the patients, a guardian, or named (themselves, a team or an
/// organization of theirs) by one of the patients' grants. The gate decides among them.
/// An e-mail address not yet confirmed by its owner receives nothing.
const CANDIDATES: &str = "
    SELECT c.id AS channel_id, u.id AS user_id, u.role, u.patient_id,
        ARRAY(SELECT patient_id FROM guardians WHERE user_id = u.id) AS guardian_of,
        ARRAY(SELECT team_id FROM care_team_members WHERE user_id = u.id) AS care_teams,
        ARRAY(SELECT organization_id FROM organization_members WHERE user_id = u.id)
            AS organizations
    FROM notification_channels c JOIN users u ON u.id = c.user_id
    WHERE c.disabled_at IS NULL AND c.confirmed_at IS NOT NULL AND u.disabled_at IS NULL AND (
        u.patient_id = ANY($1)
        OR EXISTS (SELECT 1 FROM guardians g WHERE g.user_id = u.id AND g.patient_id = ANY($1))
        OR EXISTS (SELECT 1 FROM grants g WHERE g.patient_id = ANY($1) AND g.revoked_at IS NULL
            AND ((g.grantee_type = 'user' AND g.grantee_id = u.id)
              OR (g.grantee_type = 'care_team' AND g.grantee_id IN
                    (SELECT team_id FROM care_team_members WHERE user_id = u.id))
              OR (g.grantee_type = 'organization' AND g.grantee_id IN
                    (SELECT organization_id FROM organization_members WHERE user_id = u.id)))))";

#[derive(sqlx::FromRow)]
pub(crate) struct CandidateRow {
    channel_id: Uuid,
    pub(crate) user_id: Uuid,
    role: String,
    patient_id: Option<Uuid>,
    guardian_of: Vec<Uuid>,
    care_teams: Vec<Uuid>,
    organizations: Vec<Uuid>,
}

impl CandidateRow {
    pub(crate) fn care_teams_include(&self, team_id: Uuid) -> bool {
        self.care_teams.contains(&team_id)
    }
}

/// The channels, among `candidates`, of users the patient's grants let receive an alarm of
/// `category` triggered at `triggered_at` (decided without logging: nothing is sent yet; the
/// worker asks the gate again, logged, before every attempt), and for which `wanted` says yes
/// given the allowance the grants give.
pub(crate) fn allowed_channels(
    candidates: &[CandidateRow],
    grants: &[Grant],
    alarm: AlarmOf,
    mut wanted: impl FnMut(&CandidateRow, &chronicle_domain::sharing::Allowance) -> bool,
) -> Vec<Uuid> {
    let request = alarm.receive_request(Utc::now());
    let mut channels = Vec::new();
    for candidate in candidates {
        let Some(role) = Role::parse(&candidate.role) else {
            continue;
        };
        let principal = Principal {
            user_id: candidate.user_id,
            role: Some(role),
            patient_id: candidate.patient_id,
            guardian_of: candidate.guardian_of.clone(),
            care_teams: candidate.care_teams.clone(),
            organizations: candidate.organizations.clone(),
            share_link: false,
        };
        if let chronicle_domain::sharing::Decision::Allow(allowance) =
            decide(&principal, &request, grants, &[])
            && !allowance.deidentified
            && allowance
                .clamp_from(None)
                .is_none_or(|since| alarm.triggered_at >= since)
            && wanted(candidate, &allowance)
        {
            channels.push(candidate.channel_id);
        }
    }
    channels
}

/// Whose alarm, of which category, from when: what the gate needs to decide a receiver.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AlarmOf {
    pub patient_id: Uuid,
    pub category: DataCategory,
    pub triggered_at: DateTime<Utc>,
}

impl AlarmOf {
    pub(crate) fn event(event: &AlertEvent) -> AlarmOf {
        AlarmOf {
            patient_id: event.patient_id,
            category: event.category,
            triggered_at: event.alert.triggered_at,
        }
    }

    /// The `receive_alerts` request the alarm makes of a receiver.
    fn receive_request(&self, at: DateTime<Utc>) -> AccessRequest {
        AccessRequest {
            patient_id: self.patient_id,
            category: self.category,
            access: Access::ReceiveAlerts,
            at,
            identified: true,
        }
    }
}

/// The channel holders who may receive `patient_ids`' alarms (the gate still decides each).
pub(crate) async fn notification_candidates(
    tx: &mut sqlx::PgConnection,
    patient_ids: &[Uuid],
) -> Result<Vec<CandidateRow>, StorageError> {
    Ok(sqlx::query_as(CANDIDATES)
        .bind(patient_ids)
        .fetch_all(tx)
        .await?)
}

/// Inserts deliveries (channel, event, round, reason); one already there is left alone.
pub(crate) async fn insert_deliveries(
    tx: &mut sqlx::PgConnection,
    channel_ids: &[Uuid],
    event_ids: &[i64],
    round: i32,
    reason: DeliveryReason,
) -> Result<(), StorageError> {
    if channel_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO notification_deliveries (channel_id, event_id, round, reason)
         SELECT c, e, $3, $4 FROM UNNEST($1::uuid[], $2::bigint[]) AS x (c, e)
         ON CONFLICT DO NOTHING",
    )
    .bind(channel_ids)
    .bind(event_ids)
    .bind(round)
    .bind(reason.as_str())
    .execute(tx)
    .await?;
    Ok(())
}

/// Queues one delivery per alarm event and channel of every user the patient's grants let
/// receive it. A member of a care team with an escalation policy is queued only when the
/// policy's first step names them; an urgent alarm starts the team's escalation
/// (`crate::escalation`). Acknowledgements, resolutions and historical events are not pushed
/// to anyone's phone.
pub(crate) async fn queue_notifications(
    store: &Store,
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    events: &[AlertEvent],
    grants_of: &mut std::collections::HashMap<Uuid, Vec<Grant>>,
) -> Result<(), StorageError> {
    let alarms: Vec<&AlertEvent> = events.iter().filter(|e| e.kind.raises_alarm()).collect();
    if alarms.is_empty() {
        return Ok(());
    }
    let mut patient_ids: Vec<Uuid> = alarms.iter().map(|e| e.patient_id).collect();
    patient_ids.sort();
    patient_ids.dedup();
    let candidates = notification_candidates(tx, &patient_ids).await?;
    let policies = crate::escalation::TeamPolicies::of_patients(tx, &patient_ids).await?;
    if candidates.is_empty() && policies.is_empty() {
        return Ok(());
    }
    let mut channel_ids = Vec::new();
    let mut event_ids = Vec::new();
    for event in alarms {
        if let std::collections::hash_map::Entry::Vacant(slot) = grants_of.entry(event.patient_id) {
            slot.insert(store.grants_for_patient(event.patient_id).await?);
        }
        let grants = grants_of
            .get(&event.patient_id)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let channels = allowed_channels(&candidates, grants, AlarmOf::event(event), |c, a| {
            policies.notified_with_the_alarm(grants, c.user_id, a)
        });
        event_ids.extend(std::iter::repeat_n(event.id, channels.len()));
        channel_ids.extend(channels);
        if event.alert.severity == chronicle_domain::alerts::Severity::Urgent {
            policies.start(tx, grants, event).await?;
        }
    }
    insert_deliveries(tx, &channel_ids, &event_ids, 0, DeliveryReason::Alarm).await
}

impl Store {
    /// Adds a channel for `user_id`: an e-mail address unconfirmed (see
    /// [`Store::issue_email_confirmation`]), any other kind confirmed.
    pub async fn create_channel(
        &self,
        user_id: Uuid,
        target: &ChannelTarget,
        label: Option<&str>,
    ) -> Result<Channel, StorageError> {
        let (address, p256dh, auth, secret) = match target {
            ChannelTarget::WebPush {
                endpoint,
                p256dh,
                auth,
            } => (endpoint, Some(p256dh), Some(auth), None),
            ChannelTarget::Email { address } => (address, None, None, None),
            ChannelTarget::Webhook { url, secret } => (url, None, None, Some(secret)),
        };
        Ok(sqlx::query_as::<_, Channel>(&format!(
            "INSERT INTO notification_channels
                 (id, user_id, kind, target, push_p256dh, push_auth, secret, label,
                  confirmed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                     CASE WHEN $3 = 'email' THEN NULL ELSE now() END)
             RETURNING {CHANNEL_COLUMNS}"
        ))
        .bind(Uuid::new_v4())
        .bind(user_id)
        .bind(target.kind())
        .bind(address)
        .bind(p256dh)
        .bind(auth)
        .bind(secret)
        .bind(label)
        .fetch_one(self.pool())
        .await?)
    }

    /// The user's channels, oldest first (disabled ones too: their log stays).
    pub async fn channels_of(&self, user_id: Uuid) -> Result<Vec<Channel>, StorageError> {
        Ok(sqlx::query_as::<_, Channel>(&format!(
            "SELECT {CHANNEL_COLUMNS} FROM notification_channels
             WHERE user_id = $1 ORDER BY created_at, id"
        ))
        .bind(user_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Disables one of the user's channels (its pending deliveries are withheld); `None` if
    /// the user has no such channel.
    pub async fn disable_channel(
        &self,
        user_id: Uuid,
        channel_id: Uuid,
    ) -> Result<Option<Channel>, StorageError> {
        let mut tx = self.begin().await?;
        let channel = sqlx::query_as::<_, Channel>(&format!(
            "UPDATE notification_channels SET disabled_at = coalesce(disabled_at, now())
             WHERE id = $1 AND user_id = $2 RETURNING {CHANNEL_COLUMNS}"
        ))
        .bind(channel_id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        if channel.is_some() {
            sqlx::query(
                "UPDATE notification_deliveries SET status = 'withheld', finished_at = now()
                 WHERE channel_id = $1 AND status IN ('pending', 'held')",
            )
            .bind(channel_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(channel)
    }

    /// The user's delivery log, newest first.
    pub async fn notification_deliveries(
        &self,
        user_id: Uuid,
        limit: i64,
    ) -> Result<Vec<NotificationDelivery>, StorageError> {
        Ok(sqlx::query_as::<_, NotificationDelivery>(
            "SELECT d.id, d.channel_id, c.kind AS channel_kind, d.event_id, e.kind AS event_kind,
                 e.alert_id, e.patient_id, d.reason, d.round, d.status, d.attempts,
                 d.next_attempt_at,
                 d.last_attempt_at, d.last_status_code, d.last_error, d.created_at, d.finished_at
             FROM notification_deliveries d
             JOIN notification_channels c ON c.id = d.channel_id
             JOIN alert_events e ON e.id = d.event_id
             WHERE c.user_id = $1 ORDER BY d.id DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Leases up to `limit` due deliveries for `lease` (another server skips them meanwhile):
    /// the oldest pending delivery of each channel, when it is due, and none of
    /// `busy_channels` (being sent to now), so one channel's deliveries go one at a time and
    /// in event order while every other channel goes its own pace.
    pub async fn lease_notifications(
        &self,
        limit: i64,
        lease: chrono::Duration,
        busy_channels: &[Uuid],
    ) -> Result<Vec<DueNotification>, StorageError> {
        // Deliveries held for quiet hours whose time to look again came are back in line.
        sqlx::query(
            "UPDATE notification_deliveries SET status = 'pending'
             WHERE status = 'held' AND next_attempt_at <= now()",
        )
        .execute(self.pool())
        .await?;
        let mut tx = self.begin_claim().await?;
        let rows: Vec<DueRow> = sqlx::query_as(&format!(
            "{}
             SELECT l.id, l.channel_id, c.user_id, c.kind, c.target, c.push_p256dh,
                 c.push_auth, c.secret, p.display_name AS patient_name, l.attempts,
                 e.id AS event_id, e.kind AS event_kind, e.patient_id, e.category, e.actor_id,
                 e.at, e.payload, q.starts AS quiet_starts, q.ends AS quiet_ends,
                 q.time_zone AS quiet_zone, d.reason, a.status = 'open' AS alert_open
             FROM leased l
             JOIN notification_deliveries d ON d.id = l.id
             JOIN notification_channels c ON c.id = l.channel_id
             LEFT JOIN user_quiet_hours q ON q.user_id = c.user_id
             JOIN alert_events e ON e.id = l.event_id
             JOIN alerts a ON a.id = e.alert_id
             JOIN patients p ON p.id = e.patient_id
             ORDER BY e.id",
            crate::webhooks::lease_one_per_destination("notification_deliveries", "channel_id")
        ))
        .bind(limit)
        .bind(lease)
        .bind(busy_channels)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter()
            .map(|r| {
                let target = r.target()?;
                let event = crate::alerts::event_from_parts(
                    r.event_id,
                    &r.event_kind,
                    r.patient_id,
                    &r.category,
                    r.actor_id,
                    r.at,
                    r.payload,
                )?;
                let quiet_hours = match (r.quiet_starts, r.quiet_ends, &r.quiet_zone) {
                    (Some(starts), Some(ends), Some(zone)) => {
                        Some(stored_quiet_hours(starts, ends, zone)?)
                    }
                    _ => None,
                };
                Ok(DueNotification {
                    id: r.id,
                    channel_id: r.channel_id,
                    user_id: r.user_id,
                    target,
                    patient_name: r.patient_name,
                    attempts: r.attempts,
                    event,
                    quiet_hours,
                    reason: DeliveryReason::parse(&r.reason)
                        .ok_or_else(|| StorageError::corrupt("delivery reason", &r.reason))?,
                    alert_open: r.alert_open,
                })
            })
            .collect()
    }

    /// Records an attempt and what follows it.
    pub async fn record_notification_attempt(
        &self,
        delivery_id: i64,
        attempt: i32,
        outcome: &AttemptOutcome,
        next: AfterAttempt,
    ) -> Result<(), StorageError> {
        let (status, retry_at) = match next {
            AfterAttempt::Delivered => ("delivered", None),
            AfterAttempt::RetryAt(at) => ("pending", Some(at)),
            AfterAttempt::Failed => ("failed", None),
        };
        sqlx::query(
            "UPDATE notification_deliveries SET attempts = $2, status = $3,
                 next_attempt_at = coalesce($4, next_attempt_at), last_attempt_at = now(),
                 last_status_code = $5, last_error = $6,
                 finished_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END
             WHERE id = $1",
        )
        .bind(delivery_id)
        .bind(attempt)
        .bind(status)
        .bind(retry_at)
        .bind(outcome.status_code)
        .bind(&outcome.error)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The gate no longer lets the user receive this: never sent.
    pub async fn withhold_notification(
        &self,
        delivery_id: i64,
        why: &str,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE notification_deliveries SET status = 'withheld', last_error = $2,
                 finished_at = now() WHERE id = $1",
        )
        .bind(delivery_id)
        .bind(why)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Holds a delivery, unattempted, until `until` (quiet hours), saying why in the delivery
    /// log; held, it does not keep the channel's later deliveries waiting.
    pub async fn postpone_notification(
        &self,
        delivery_id: i64,
        until: DateTime<Utc>,
        why: &str,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE notification_deliveries SET status = 'held', next_attempt_at = $2,
                 last_error = $3
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(delivery_id)
        .bind(until)
        .bind(why)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The user's quiet hours, if they set any.
    pub async fn quiet_hours(&self, user_id: Uuid) -> Result<Option<QuietHours>, StorageError> {
        let row: Option<(NaiveTime, NaiveTime, String)> = sqlx::query_as(
            "SELECT starts, ends, time_zone FROM user_quiet_hours WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|(starts, ends, zone)| stored_quiet_hours(starts, ends, &zone))
            .transpose()
    }

    /// Sets (or replaces) the user's quiet hours.
    pub async fn set_quiet_hours(
        &self,
        user_id: Uuid,
        quiet: &QuietHours,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO user_quiet_hours (user_id, starts, ends, time_zone)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id) DO UPDATE SET starts = excluded.starts, ends = excluded.ends,
                 time_zone = excluded.time_zone, updated_at = now()",
        )
        .bind(user_id)
        .bind(quiet.starts)
        .bind(quiet.ends)
        .bind(quiet.zone.name())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Removes the user's quiet hours; whether there were any.
    pub async fn clear_quiet_hours(&self, user_id: Uuid) -> Result<bool, StorageError> {
        Ok(
            sqlx::query("DELETE FROM user_quiet_hours WHERE user_id = $1")
                .bind(user_id)
                .execute(self.pool())
                .await?
                .rows_affected()
                > 0,
        )
    }

    /// Whether `user_id` may be sent `event` on their own channel now, asked of the gate
    /// with the user as they are now (memberships, disabled account) and written to the
    /// patient's access log as `notify_alert` whatever the answer. The permit tells what the
    /// notification may carry; a snoozed alarm, a research (de-identified) allowance or an
    /// alert from before the grant's window is withheld.
    pub async fn authorize_notification(
        &self,
        user_id: Uuid,
        event: &AlertEvent,
    ) -> Result<(NotificationDecision, Option<DenyReason>), StorageError> {
        let Some(principal) = self.principal_for_user(user_id).await? else {
            return Ok((NotificationDecision::Withhold, None));
        };
        let permit = match self
            .authorize(
                &principal,
                AlarmOf::event(event).receive_request(Utc::now()),
                AccessAction::NotifyAlert,
            )
            .await?
        {
            Ok(permit) => permit,
            Err(reason) => return Ok((NotificationDecision::Withhold, Some(reason))),
        };
        let before_window = permit
            .clamp_from(None)
            .is_some_and(|since| event.alert.triggered_at < since);
        let snoozed = self
            .is_snoozed(user_id, event.patient_id, event.alert.rule, Utc::now())
            .await?;
        if permit.allowance().deidentified || before_window || snoozed {
            return Ok((NotificationDecision::Withhold, None));
        }
        Ok((NotificationDecision::Send(permit), None))
    }

    /// The value kept under `name` in `server_keys`, storing `generated` first if there is
    /// none (the first server to start wins; every server then reads the same).
    pub async fn server_key_or_insert(
        &self,
        name: &str,
        generated: &str,
    ) -> Result<String, StorageError> {
        sqlx::query("INSERT INTO server_keys (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(generated)
            .execute(self.pool())
            .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM server_keys WHERE name = $1")
                .bind(name)
                .fetch_one(self.pool())
                .await?,
        )
    }
}

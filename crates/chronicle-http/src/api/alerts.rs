//! Alerts for the care team: lists, the live stream (Server-Sent Events), acknowledging and
//! resolving, snoozes, and each patient's targets and alert thresholds.
//!
//! A user receives a patient's alert only when the gate allows `receive_alerts` on the
//! alert's category (glucose or blood pressure) for that patient, asked per request and, on
//! the stream, per event, so a revoked grant stops delivery at once. Every permit is logged.

use super::vocabulary::{
    AlertKindName, AlertStatusName, DataCategoryName, ResolutionName, RuleIdName, SeverityName,
};
use super::{
    Page, PatientPath, PatientRequest, json_list, numbered_cursor, page_limit, parse_name, refusal,
};
use crate::AppState;
use crate::auth::Authenticated;
use crate::error::refusals::{BadRequest, Forbidden, NotFound, Unauthenticated};
use crate::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use chronicle_domain::alerts::RuleId;
use chronicle_domain::alerts::Severity;
use chronicle_domain::alerts::lifecycle::AlertStatus;
use chronicle_domain::alerts::lifecycle::{AlertKind, Resolution};
use chronicle_domain::sharing::AccessAction;
use chronicle_domain::sharing::{Access, AccessRequest, DataCategory, DenyReason, Principal};
use chronicle_storage::alerts::{
    AlertAction, AlertActionError, AlertEvent, AlertFilter, AlertRecord,
};
use chronicle_storage::gate::Permit;
use chrono::{DateTime, Duration, Utc};
use o2o::o2o;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// The longest snooze.
const MAX_SNOOZE_MINUTES: i64 = 7 * 24 * 60;
/// Events read from the database per query when a stream resumes or catches up.
const REPLAY_BATCH: i64 = 500;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_alerts))
        .routes(routes!(stream))
        .routes(routes!(my_snoozes))
        .routes(routes!(patient_alerts))
        .routes(routes!(acknowledge))
        .routes(routes!(resolve))
        .routes(routes!(snooze, unsnooze))
}

/// An alert, or a historical event (late data: `kind` = `historical`, no `status`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AlertItem {
    id: Uuid,
    patient_id: Uuid,
    #[schema(value_type = RuleIdName)]
    rule: RuleId,
    #[schema(value_type = DataCategoryName)]
    category: DataCategory,
    #[schema(value_type = SeverityName)]
    severity: Severity,
    /// `alert` (raised live) or `historical` (shown by late data, never a live alarm).
    #[schema(value_type = AlertKindName)]
    kind: AlertKind,
    /// Absent for historical events.
    #[schema(value_type = Option<AlertStatusName>)]
    status: Option<AlertStatus>,
    device_id: Option<String>,
    /// When the triggering reading was measured (for `no_data`: when the silence passed the
    /// threshold).
    triggered_at: DateTime<Utc>,
    /// The newest reading at which the condition held.
    last_seen_at: DateTime<Utc>,
    /// Since when the condition has been clear, if it is.
    cleared_since: Option<DateTime<Utc>>,
    /// How many times the condition came back while the alert was open.
    trigger_count: i32,
    /// What the triggering reading showed (value, forecast, rate, pressures, means…).
    #[schema(value_type = Object)]
    evidence: serde_json::Value,
    /// When Chronicle raised it.
    opened_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    acknowledged_by: Option<Uuid>,
    acknowledged_at: Option<DateTime<Utc>>,
    acknowledgement_note: Option<String>,
    resolved_by: Option<Uuid>,
    resolved_at: Option<DateTime<Utc>>,
    /// `auto`: the condition stayed clear for the set time.
    #[schema(value_type = Option<ResolutionName>)]
    resolution: Option<Resolution>,
    resolution_note: Option<String>,
    /// For readers outside the care team: their own acknowledgement — the family's (the
    /// patient and their guardians share one), or a caregiver's or peer supporter's own (one
    /// per grant). The `acknowledged_*` fields above are the care team's.
    audience_acknowledgement: Option<AudienceAcknowledgementItem>,
}

/// An acknowledgement made by and for one audience.
#[derive(Debug, Serialize, ToSchema)]
struct AudienceAcknowledgementItem {
    /// `patient` (the patient and their guardians), `caregiving` or `peer_support`.
    audience: String,
    acknowledged_by: Option<Uuid>,
    acknowledged_at: DateTime<Utc>,
    note: Option<String>,
}

impl From<AlertRecord> for AlertItem {
    fn from(a: AlertRecord) -> Self {
        AlertItem {
            id: a.id,
            patient_id: a.patient_id,
            rule: a.rule,
            category: a.category,
            severity: a.severity,
            kind: a.kind,
            status: a.status,
            device_id: a.device_id,
            triggered_at: a.triggered_at,
            last_seen_at: a.last_seen_at,
            cleared_since: a.cleared_since,
            trigger_count: a.trigger_count,
            evidence: a.evidence,
            opened_at: a.opened_at,
            updated_at: a.updated_at,
            acknowledged_by: a.acknowledged_by,
            acknowledged_at: a.acknowledged_at,
            acknowledgement_note: a.acknowledgement_note,
            resolved_by: a.resolved_by,
            resolved_at: a.resolved_at,
            resolution: a.resolution,
            resolution_note: a.resolution_note,
            audience_acknowledgement: a.audience_acknowledgement.map(|k| {
                AudienceAcknowledgementItem {
                    audience: k.audience.as_str().to_owned(),
                    acknowledged_by: k.by,
                    acknowledged_at: k.at,
                    note: k.note,
                }
            }),
        }
    }
}

/// One event of the stream (the SSE `data` of an `alert` event; its SSE `id` is `event_id`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AlertEventItem {
    event_id: i64,
    /// `opened`, `retriggered`, `escalated`, `acknowledged`, `resolved` or `historical`.
    #[serde(rename = "type")]
    kind: String,
    at: DateTime<Utc>,
    /// Who acknowledged or resolved; absent for the engine.
    actor_id: Option<Uuid>,
    /// The alert as it was after the event.
    alert: AlertItem,
}

impl From<&AlertEvent> for AlertEventItem {
    fn from(e: &AlertEvent) -> Self {
        AlertEventItem {
            event_id: e.id,
            kind: e.kind.as_str().to_owned(),
            at: e.at,
            actor_id: e.actor_id,
            alert: e.alert.clone().into(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
struct AlertsQuery {
    /// `open`, `acknowledged`, `resolved`, or `active` (open or acknowledged).
    status: Option<String>,
    /// `alert` (live alerts), `historical` (late-data events) or `all`. Default: `alert`
    /// across patients, `all` for one patient.
    kind: Option<String>,
    /// One rule id.
    rule: Option<String>,
    /// `info`, `warning` or `urgent`.
    severity: Option<String>,
    /// `glucose` or `blood_pressure`.
    category: Option<String>,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Items per page, 1–5000 (default 100).
    limit: Option<i64>,
}

impl AlertsQuery {
    fn filter(&self, default_kind: &str) -> Result<AlertFilter, ApiError> {
        let statuses = match self.status.as_deref() {
            None => None,
            Some("active") => Some(vec![AlertStatus::Open, AlertStatus::Acknowledged]),
            Some(s) => Some(vec![parse_name(s, "status", AlertStatus::parse)?]),
        };
        let historical = match self.kind.as_deref().unwrap_or(default_kind) {
            "all" => None,
            "alert" => Some(false),
            "historical" => Some(true),
            other => return Err(ApiError::BadRequest(format!("unknown kind {other:?}"))),
        };
        let limit = page_limit(self.limit, 100)?;
        Ok(AlertFilter {
            statuses,
            historical,
            rule: parse_rule(self.rule.as_deref())?,
            severity: self
                .severity
                .as_deref()
                .map(|s| parse_name(s, "severity", Severity::parse))
                .transpose()?,
            before_seq: numbered_cursor(self.cursor.as_deref())?,
            limit,
            id: None,
        })
    }

    fn categories(&self) -> Result<Vec<DataCategory>, ApiError> {
        match self.category.as_deref() {
            None => Ok(vec![DataCategory::Glucose, DataCategory::BloodPressure]),
            Some("glucose") => Ok(vec![DataCategory::Glucose]),
            Some("blood_pressure") => Ok(vec![DataCategory::BloodPressure]),
            Some(other) => Err(ApiError::BadRequest(format!("unknown category {other:?}"))),
        }
    }
}

fn page(records: Vec<AlertRecord>, limit: i64) -> Page<AlertItem> {
    let next_cursor = (records.len() as i64 == limit)
        .then(|| records.last().map(|r| r.seq.to_string()))
        .flatten();
    Page {
        items: records.into_iter().map(AlertItem::from).collect(),
        next_cursor,
    }
}

fn alerts_request(patient_id: Uuid, category: DataCategory) -> AccessRequest {
    AccessRequest {
        patient_id,
        category,
        access: Access::ReceiveAlerts,
        at: Utc::now(),
        identified: true,
    }
}

/// The caller's permits to receive the patient's alerts, one per category the gate allows
/// (each attempt logged); a refusal when it allows none.
pub(super) async fn alert_permits(
    state: &AppState,
    principal: &Principal,
    patient_id: Uuid,
    categories: &[DataCategory],
    action: AccessAction,
) -> Result<Vec<Permit>, ApiError> {
    let mut permits = Vec::new();
    let mut refused: Option<DenyReason> = None;
    for category in categories {
        match state
            .store
            .authorize(principal, alerts_request(patient_id, *category), action)
            .await?
        {
            Ok(permit) => permits.push(permit),
            // A 403-kind refusal (the caller holds something) wins over a 404-kind one.
            Err(reason) => {
                refused = Some(match (refused, reason) {
                    (Some(r), DenyReason::NoGrant | DenyReason::NoPurpose) => r,
                    _ => reason,
                })
            }
        }
    }
    match (permits.is_empty(), refused) {
        (true, Some(reason)) => Err(refusal(reason)),
        (true, None) => Err(ApiError::NotFound),
        (false, _) => Ok(permits),
    }
}

/// Alerts of every patient whose alerts the caller may receive, newest first.
#[utoipa::path(get, path = "/v1/alerts", tag = "alerts", params(AlertsQuery),
    responses((status = 200, body = Page<AlertItem>), BadRequest, Unauthenticated))]
async fn list_alerts(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(query): Query<AlertsQuery>,
) -> Result<Json<Page<AlertItem>>, ApiError> {
    let filter = query.filter("alert")?;
    let categories = query.categories()?;
    let mut permits = Vec::new();
    for (patient_id, category) in state.store.alert_candidates(&principal).await? {
        if !categories.contains(&category) {
            continue;
        }
        if let Ok(permit) = state
            .store
            .authorize(
                &principal,
                alerts_request(patient_id, category),
                AccessAction::ListAlerts,
            )
            .await?
        {
            permits.push(permit);
        }
    }
    let records = if permits.is_empty() {
        Vec::new()
    } else {
        state.store.alerts_for(&permits, &filter).await?
    };
    Ok(Json(page(records, filter.limit)))
}

/// One patient's alerts and historical events, newest first.
#[utoipa::path(get, path = "/v1/patients/{patient_id}/alerts", tag = "alerts", params(AlertsQuery, PatientPath),
    responses((status = 200, body = Page<AlertItem>), BadRequest, Unauthenticated, Forbidden,
        NotFound))]
async fn patient_alerts(
    PatientRequest(state, principal, patient_id): PatientRequest,
    Query(query): Query<AlertsQuery>,
) -> Result<Json<Page<AlertItem>>, ApiError> {
    let filter = query.filter("all")?;
    let categories = query.categories()?;
    let permits = alert_permits(
        &state,
        &principal,
        patient_id,
        &categories,
        AccessAction::ReadAlerts,
    )
    .await?;
    let records = state.store.alerts_for(&permits, &filter).await?;
    Ok(Json(page(records, filter.limit)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
struct NoteRequest {
    /// Optional note, kept with the alert.
    note: Option<String>,
}

/// One user's action on an alert of the path's patient, with the body's optional note.
async fn act(
    state: &AppState,
    principal: &Principal,
    (patient_id, alert_id): (Uuid, Uuid),
    action: AlertAction,
    body: Option<Json<NoteRequest>>,
) -> Result<Json<AlertItem>, ApiError> {
    let note = body.and_then(|Json(b)| b.note);
    let note = note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if note.as_ref().is_some_and(|n| n.chars().count() > 2000) {
        return Err(ApiError::BadRequest(
            "the note is limited to 2000 characters".into(),
        ));
    }
    // Ask the gate about the alert's category; for an alert that does not exist, about
    // glucose, so the caller learns nothing the gate would not tell them.
    let category = state
        .store
        .alert_category(patient_id, alert_id)
        .await?
        .unwrap_or(DataCategory::Glucose);
    let name = match action {
        AlertAction::Acknowledge => AccessAction::AcknowledgeAlert,
        AlertAction::Resolve => AccessAction::ResolveAlert,
    };
    let permit = state
        .store
        .authorize(principal, alerts_request(patient_id, category), name)
        .await?
        .map_err(refusal)?;
    match state
        .store
        .act_on_alert(
            &permit,
            alert_id,
            action,
            principal.user_id,
            note.as_deref(),
        )
        .await?
    {
        Ok(alert) => Ok(Json(alert.into())),
        Err(AlertActionError::NotFound) => Err(ApiError::NotFound),
        Err(AlertActionError::Transition(invalid)) => Err(ApiError::Conflict(invalid.to_string())),
        Err(AlertActionError::AlreadyAcknowledged) => Err(ApiError::Conflict(
            AlertActionError::AlreadyAcknowledged.to_string(),
        )),
        Err(AlertActionError::CareTeamOnly) => Err(ApiError::Forbidden),
    }
}

/// Acknowledge an open alert: the caller takes it on, with an optional note.
#[utoipa::path(post, path = "/v1/patients/{patient_id}/alerts/{alert_id}/acknowledge",
    tag = "alerts", request_body(content = NoteRequest, description = "optional"),
    responses((status = 200, body = AlertItem), Unauthenticated, Forbidden, NotFound,
        (status = 409, body = ErrorBody, description = "acknowledged on the caller's side already, or resolved")))]
async fn acknowledge(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(alert): Path<(Uuid, Uuid)>,
    body: Option<Json<NoteRequest>>,
) -> Result<Json<AlertItem>, ApiError> {
    act(&state, &principal, alert, AlertAction::Acknowledge, body).await
}

/// Resolve an open or acknowledged alert by hand, with an optional note.
#[utoipa::path(post, path = "/v1/patients/{patient_id}/alerts/{alert_id}/resolve", tag = "alerts",
    request_body(content = NoteRequest, description = "optional"),
    responses((status = 200, body = AlertItem), Unauthenticated,
        (status = 403, body = ErrorBody, description = "the caller is not of the care team (caregivers acknowledge for themselves)"),
        NotFound, (status = 409, body = ErrorBody, description = "resolved already")))]
async fn resolve(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(alert): Path<(Uuid, Uuid)>,
    body: Option<Json<NoteRequest>>,
) -> Result<Json<AlertItem>, ApiError> {
    act(&state, &principal, alert, AlertAction::Resolve, body).await
}

#[derive(Debug, Deserialize, ToSchema)]
struct SnoozeRequest {
    /// One rule id; absent: every rule.
    #[schema(value_type = Option<RuleIdName>)]
    rule: Option<String>,
    /// How long, 1–10080 minutes (a week).
    minutes: i64,
}

#[derive(Debug, Serialize, ToSchema, o2o)]
#[from_owned(chronicle_storage::alerts::Snooze)]
struct SnoozeItem {
    patient_id: Uuid,
    /// Absent: every rule.
    #[schema(value_type = Option<RuleIdName>)]
    rule: Option<String>,
    until: DateTime<Utc>,
}

fn parse_rule(rule: Option<&str>) -> Result<Option<RuleId>, ApiError> {
    rule.map(|r| parse_name(r, "rule", RuleId::parse))
        .transpose()
}

/// Snooze the patient's alarms for yourself (one rule, or all): the stream holds back new,
/// re-triggered and escalated alerts until then; lists still show them.
#[utoipa::path(post, path = "/v1/patients/{patient_id}/alerts/snooze", tag = "alerts", params(PatientPath),
    request_body = SnoozeRequest,
    responses((status = 200, body = SnoozeItem), BadRequest, Unauthenticated, Forbidden, NotFound))]
async fn snooze(
    PatientRequest(state, principal, patient_id): PatientRequest,
    Json(body): Json<SnoozeRequest>,
) -> Result<Json<SnoozeItem>, ApiError> {
    let rule = parse_rule(body.rule.as_deref())?;
    if !(1..=MAX_SNOOZE_MINUTES).contains(&body.minutes) {
        return Err(ApiError::BadRequest(format!(
            "minutes must be between 1 and {MAX_SNOOZE_MINUTES}"
        )));
    }
    let categories = rule_categories(rule);
    let permits = alert_permits(
        &state,
        &principal,
        patient_id,
        &categories,
        AccessAction::SnoozeAlerts,
    )
    .await?;
    let snooze = state
        .store
        .snooze_alerts(
            &permits[0],
            principal.user_id,
            rule,
            Utc::now() + Duration::minutes(body.minutes),
        )
        .await?;
    Ok(Json(snooze.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
struct UnsnoozeQuery {
    /// End the snooze of this rule only; absent: every snooze of the patient.
    #[param(value_type = Option<RuleIdName>)]
    rule: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Unsnoozed {
    /// How many snoozes ended.
    ended: u64,
}

/// End your snoozes of the patient's alarms.
#[utoipa::path(delete, path = "/v1/patients/{patient_id}/alerts/snooze", tag = "alerts",
    params(UnsnoozeQuery, PatientPath),
    responses((status = 200, body = Unsnoozed), BadRequest, Unauthenticated, Forbidden, NotFound))]
async fn unsnooze(
    PatientRequest(state, principal, patient_id): PatientRequest,
    Query(query): Query<UnsnoozeQuery>,
) -> Result<Json<Unsnoozed>, ApiError> {
    let rule = parse_rule(query.rule.as_deref())?;
    let permits = alert_permits(
        &state,
        &principal,
        patient_id,
        &rule_categories(rule),
        AccessAction::SnoozeAlerts,
    )
    .await?;
    let ended = state
        .store
        .unsnooze_alerts(&permits[0], principal.user_id, rule)
        .await?;
    Ok(Json(Unsnoozed { ended }))
}

/// The categories a rule's alerts may have.
fn rule_categories(rule: Option<RuleId>) -> Vec<DataCategory> {
    match rule.and_then(RuleId::category) {
        Some(category) => vec![category],
        None => vec![DataCategory::Glucose, DataCategory::BloodPressure],
    }
}

/// Your snoozes still running.
#[utoipa::path(get, path = "/v1/alerts/snoozes", tag = "alerts",
    responses((status = 200, body = [SnoozeItem]), Unauthenticated))]
async fn my_snoozes(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Vec<SnoozeItem>>, ApiError> {
    Ok(json_list(
        state.store.snoozes_of(principal.user_id).await?,
        SnoozeItem::from,
    ))
}

/// The live stream of alert events for every patient whose alerts you may receive, as
/// Server-Sent Events (`event: alert`, `id:` the event id, `data:` an `AlertEventItem`),
/// opened by an id without data: the position the stream starts from. Send `Last-Event-ID`
/// to resume after that event. The gate is asked for every event, so a
/// revoked grant stops delivery at once; snoozed alarms are held back.
#[utoipa::path(get, path = "/v1/alerts/stream", tag = "alerts",
    params(("Last-Event-ID" = Option<i64>, Header, description = "resume after this event id")),
    responses((status = 200, description = "An endless text/event-stream of `alert` events", content_type = "text/event-stream", body = AlertEventItem),
        BadRequest, Unauthenticated))]
async fn stream(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
) -> Result<Sse<impl tokio_stream::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let resume_after = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::BadRequest("Last-Event-ID must be an event id".into()))
        })
        .transpose()?;
    let token = crate::auth::bearer_token(&headers)
        .ok_or(ApiError::Unauthenticated)?
        .to_owned();
    let (tx, rx) = mpsc::channel(64);
    // Subscribe before reading the position, so no event falls between the two.
    let live = state.alerts.subscribe();
    let start = resume_after.unwrap_or_else(|| state.alerts.position());
    tokio::spawn(feed(state, principal, token, live, start, tx));
    Ok(Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default()))
}

/// Feeds one stream: first the events after `last` from the database, then live ones, each
/// only after the gate allowed it. Ends when the client goes away, its token stops working or
/// the server stops (the client resumes with `Last-Event-ID`).
async fn feed(
    state: AppState,
    mut principal: Principal,
    token: String,
    mut live: broadcast::Receiver<std::sync::Arc<AlertEvent>>,
    mut last: i64,
    tx: mpsc::Sender<Result<Event, Infallible>>,
) {
    // First the position the stream starts from, as an event id without data (a client
    // dispatches nothing but remembers the id): a client that loses the connection before
    // any alert resumes from here and misses nothing.
    let position = Event::default()
        .id(last.to_string())
        .comment("stream start");
    if tx.send(Ok(position)).await.is_err() {
        return;
    }
    let mut catch_up = true;
    loop {
        if catch_up {
            match state.alerts.events_after(last, REPLAY_BATCH).await {
                Ok(events) => {
                    catch_up = events.len() as i64 == REPLAY_BATCH;
                    for event in &events {
                        match offer(&state, &mut principal, &token, event, &tx).await {
                            Offered::Continue => last = event.id,
                            Offered::Stop => return,
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "alert stream cannot read events");
                    return;
                }
            }
            continue;
        }
        tokio::select! {
            received = live.recv() => match received {
                Ok(event) if event.id > last => {
                    match offer(&state, &mut principal, &token, &event, &tx).await {
                        Offered::Continue => last = event.id,
                        Offered::Stop => return,
                    }
                }
                Ok(_) => {}
                // Fell behind the hub: read what was missed from the database.
                Err(broadcast::error::RecvError::Lagged(_)) => catch_up = true,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            () = tx.closed() => return,
            () = state.shutdown.cancelled() => return,
        }
    }
}

enum Offered {
    Continue,
    Stop,
}

/// Sends one event if the caller may receive it now.
async fn offer(
    state: &AppState,
    principal: &mut Principal,
    token: &str,
    event: &AlertEvent,
    tx: &mpsc::Sender<Result<Event, Infallible>>,
) -> Offered {
    match deliverable(state, principal, token, event).await {
        Ok(Some(false)) => Offered::Continue,
        Ok(None) => Offered::Stop,
        Ok(Some(true)) => {
            let data = match serde_json::to_string(&AlertEventItem::from(event)) {
                Ok(data) => data,
                Err(error) => {
                    tracing::error!(%error, "cannot encode an alert event");
                    return Offered::Continue;
                }
            };
            let sse = Event::default()
                .id(event.id.to_string())
                .event("alert")
                .data(data);
            if tx.send(Ok(sse)).await.is_err() {
                Offered::Stop
            } else {
                tracing::debug!(
                    event_id = event.id,
                    patient_id = %event.patient_id,
                    user_id = %principal.user_id,
                    "alert event streamed"
                );
                Offered::Continue
            }
        }
        Err(error) => {
            tracing::warn!(%error, "alert stream cannot check an event; closing it");
            Offered::Stop
        }
    }
}

/// `Some(true)`: send it; `Some(false)`: not for this caller; `None`: the caller's token no
/// longer works. Re-reads the caller (token, teams, organizations) and asks the gate for
/// every event: no stale permission survives a revocation.
async fn deliverable(
    state: &AppState,
    principal: &mut Principal,
    token: &str,
    event: &AlertEvent,
) -> Result<Option<bool>, chronicle_storage::StorageError> {
    match state.authenticator.principal(token).await? {
        Some(current) => *principal = current,
        None => return Ok(None),
    }
    let decision = state
        .store
        .authorize_for_fanout(
            principal,
            alerts_request(event.patient_id, event.category),
            AccessAction::ReceiveAlert,
        )
        .await?;
    let Ok(permit) = decision else {
        return Ok(Some(false));
    };
    if permit
        .clamp_from(None)
        .is_some_and(|since| event.alert.triggered_at < since)
    {
        return Ok(Some(false));
    }
    if event.kind.raises_alarm()
        && state
            .store
            .is_snoozed(
                principal.user_id,
                event.patient_id,
                event.alert.rule,
                Utc::now(),
            )
            .await?
    {
        return Ok(Some(false));
    }
    Ok(Some(true))
}

//! The channels a user chooses for the alerts they receive — Web Push subscriptions, an e-mail
//! address, a personal signed webhook (ntfy, Pushover, an SMS gateway) — and their delivery
//! log. A user manages only their own: another user's channel is 404. What reaches a channel
//! is decided per delivery by the gate (see docs/alerts.md); managing channels reads no
//! patient data.

use super::vocabulary::DeliveryReasonName;
use super::{json_list, page_limit};
use crate::AppState;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::error::refusals::{BadRequest, Conflict, NotFound, TooManyRequests, Unauthenticated};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chronicle_alerts::notifications::{check_email, check_push_keys};
use chronicle_domain::alerts::quiet_hours::QuietHours;
use chronicle_domain::zone::parse_time_zone;
use chronicle_storage::email_confirmations::{ConfirmOutcome, IssueRefused};
use chronicle_storage::notifications::{Channel, ChannelTarget, NotificationDelivery};
use chrono::{DateTime, NaiveTime, Utc};
use o2o::o2o;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// Enabled channels one user may hold at most.
const MAX_CHANNELS: usize = 20;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(channels, create_channel))
        .routes(routes!(disable_channel))
        .routes(routes!(confirm_channel))
        .routes(routes!(send_confirmation))
        .routes(routes!(deliveries))
        .routes(routes!(push_key))
        .routes(routes!(quiet_hours, set_quiet_hours, clear_quiet_hours))
}

#[derive(Debug, Serialize, ToSchema, o2o)]
#[from_owned(Channel)]
struct ChannelItem {
    id: Uuid,
    /// `web_push`, `email` or `webhook`.
    kind: String,
    /// The push endpoint, the e-mail address or the webhook URL.
    target: String,
    label: Option<String>,
    created_at: DateTime<Utc>,
    disabled_at: Option<DateTime<Utc>>,
    /// Whether alarms go to it: an e-mail address once its owner typed back the code mailed
    /// to it; Web Push and webhooks when added.
    #[from(confirmed_at, ~.is_some())]
    confirmed: bool,
    confirmed_at: Option<DateTime<Utc>>,
}

/// A browser's push subscription as `PushSubscription.toJSON()` gives it.
#[derive(Debug, Deserialize, ToSchema)]
struct PushSubscriptionJson {
    endpoint: String,
    keys: PushKeys,
}

#[derive(Debug, Deserialize, ToSchema)]
struct PushKeys {
    /// The browser's P-256 public key, base64url.
    p256dh: String,
    /// The 16-byte authentication secret, base64url.
    auth: String,
}

/// A new channel.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum NewChannel {
    /// A browser's Web Push subscription (subscribed with the key of
    /// `GET /v1/push/vapid-public-key`).
    WebPush {
        subscription: PushSubscriptionJson,
        label: Option<String>,
    },
    /// An e-mail address.
    Email {
        address: String,
        label: Option<String>,
    },
    /// A personal webhook, signed like organizations' webhooks (`Chronicle-Signature`).
    Webhook {
        url: String,
        /// The HMAC-SHA256 key, at least 16 characters. Absent: one is generated. Shown once.
        secret: Option<String>,
        label: Option<String>,
    },
}

#[derive(Debug, Serialize, ToSchema)]
struct CreatedChannel {
    channel: ChannelItem,
    /// A webhook's signing secret, shown once.
    secret: Option<String>,
    /// An e-mail address: whether the code confirming it was sent.
    confirmation: Option<ConfirmationSent>,
}

/// Whether a confirmation code was mailed.
#[derive(Debug, Serialize, ToSchema)]
struct ConfirmationSent {
    sent: bool,
    /// Until when the code sent can be typed back.
    expires_at: Option<DateTime<Utc>>,
    /// Why it was not sent.
    error: Option<String>,
}

impl ConfirmationSent {
    fn not_sent(error: String) -> ConfirmationSent {
        ConfirmationSent {
            sent: false,
            expires_at: None,
            error: Some(error),
        }
    }
}

const NO_RELAY: &str = "e-mail is not configured on this server (no SMTP relay): the \
                        confirmation code could not be sent";

/// Why no code could be issued, as an answer.
fn issue_refusal(refused: IssueRefused) -> ApiError {
    match refused {
        IssueRefused::NotFound => ApiError::NotFound,
        IssueRefused::AlreadyConfirmed => {
            ApiError::Conflict("the channel is confirmed already".into())
        }
        IssueRefused::RateLimited { retry_after, .. } => {
            ApiError::TooManyRequests(retry_after.to_std().unwrap_or_default())
        }
    }
}

/// Issues a code for the caller's unconfirmed e-mail channel and mails it through the relay.
/// `Ok` whether or not the relay took it (the answer says); `Err` when no code was issued.
async fn mail_confirmation_code(
    state: &AppState,
    user_id: Uuid,
    channel_id: Uuid,
) -> Result<Result<ConfirmationSent, IssueRefused>, ApiError> {
    let Some(mailer) = &state.mailer else {
        return Ok(Ok(ConfirmationSent::not_sent(NO_RELAY.into())));
    };
    let issued = match state
        .store
        .issue_email_confirmation(user_id, channel_id)
        .await?
    {
        Ok(issued) => issued,
        Err(refused) => return Ok(Err(refused)),
    };
    let text = chronicle_alerts::mail::confirmation_text(
        &issued.code,
        issued.expires_at,
        state.public_url.as_deref(),
    );
    Ok(Ok(
        match mailer
            .send(
                &issued.address,
                chronicle_alerts::mail::CONFIRMATION_SUBJECT,
                text,
            )
            .await
        {
            Ok(_) => ConfirmationSent {
                sent: true,
                expires_at: Some(issued.expires_at),
                error: None,
            },
            Err(error) => {
                tracing::warn!(channel = %channel_id, %error, "confirmation code not sent");
                ConfirmationSent::not_sent(format!(
                    "the confirmation code could not be sent: {error}; ask for a new one \
                     in a minute"
                ))
            }
        },
    ))
}

/// The caller's channels.
#[utoipa::path(get, path = "/v1/me/channels", tag = "channels",
    responses((status = 200, body = [ChannelItem]), Unauthenticated))]
async fn channels(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Vec<ChannelItem>>, ApiError> {
    Ok(json_list(
        state.store.channels_of(principal.user_id).await?,
        ChannelItem::from,
    ))
}

/// Add a channel: every alarm of the patients whose alerts the caller receives (their own,
/// as a guardian, or through a grant) is sent there too, telling only what the caller may see.
#[utoipa::path(post, path = "/v1/me/channels", tag = "channels", request_body = NewChannel,
    responses((status = 201, body = CreatedChannel), BadRequest, Unauthenticated))]
async fn create_channel(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Json(body): Json<NewChannel>,
) -> Result<(StatusCode, Json<CreatedChannel>), ApiError> {
    let bad = |e: String| ApiError::BadRequest(e);
    let clean_label = |label: Option<String>| -> Result<Option<String>, ApiError> {
        match label.map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()) {
            Some(l) if l.chars().count() > 200 => Err(ApiError::BadRequest(
                "the label is longer than 200 characters".into(),
            )),
            l => Ok(l),
        }
    };
    let check_url = |url: &str| {
        if url.len() > 2048 {
            return Err(bad("the URL is longer than 2048 characters".into()));
        }
        state
            .webhook_destinations
            .check(url)
            .map(|_| ())
            .map_err(|refused| bad(refused.to_string()))
    };
    let (target, label, shown_secret) = match body {
        NewChannel::WebPush {
            subscription,
            label,
        } => {
            let endpoint = subscription.endpoint.trim().to_owned();
            check_url(&endpoint)?;
            check_push_keys(&subscription.keys.p256dh, &subscription.keys.auth).map_err(bad)?;
            (
                ChannelTarget::WebPush {
                    endpoint,
                    p256dh: subscription.keys.p256dh.trim().to_owned(),
                    auth: subscription.keys.auth.trim().to_owned(),
                },
                label,
                None,
            )
        }
        NewChannel::Email { address, label } => {
            let address = address.trim().to_owned();
            if address.len() > 320 {
                return Err(bad("not an e-mail address".into()));
            }
            check_email(&address).map_err(bad)?;
            (ChannelTarget::Email { address }, label, None)
        }
        NewChannel::Webhook { url, secret, label } => {
            let url = url.trim().to_owned();
            check_url(&url)?;
            let secret = match secret {
                Some(s) if s.chars().count() >= 16 => s,
                Some(_) => {
                    return Err(bad("the secret must be at least 16 characters".into()));
                }
                None => chronicle_storage::credentials::random_secret(32),
            };
            (
                ChannelTarget::Webhook {
                    url,
                    secret: secret.clone(),
                },
                label,
                Some(secret),
            )
        }
    };
    let label = clean_label(label)?;
    let enabled = state
        .store
        .channels_of(principal.user_id)
        .await?
        .iter()
        .filter(|c| c.disabled_at.is_none())
        .count();
    if enabled >= MAX_CHANNELS {
        return Err(bad(format!(
            "at most {MAX_CHANNELS} channels; remove one first"
        )));
    }
    let is_email = matches!(target, ChannelTarget::Email { .. });
    let channel = state
        .store
        .create_channel(principal.user_id, &target, label.as_deref())
        .await?;
    let confirmation = if is_email {
        Some(
            match mail_confirmation_code(&state, principal.user_id, channel.id).await? {
                Ok(sent) => sent,
                Err(IssueRefused::RateLimited { why, retry_after }) => {
                    ConfirmationSent::not_sent(format!(
                        "the confirmation code was not sent: {why}; ask for a new one in {} s",
                        retry_after.num_seconds().max(1)
                    ))
                }
                Err(refused) => {
                    return Err(ApiError::Internal(format!(
                        "a new e-mail channel could not be confirmed: {refused:?}"
                    )));
                }
            },
        )
    } else {
        None
    };
    Ok((
        StatusCode::CREATED,
        Json(CreatedChannel {
            channel: channel.into(),
            secret: shown_secret,
            confirmation,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
struct ConfirmBody {
    /// The code mailed to the address (any case; dashes and spaces ignored).
    #[schema(example = "7K2Q-MX9D")]
    code: String,
}

/// Confirm one of the caller's e-mail channels with the code mailed to it: from then on,
/// alarms go there. A wrong code counts against the code's few tries; after the last, or once
/// it expired, a new code must be sent.
#[utoipa::path(post, path = "/v1/me/channels/{channel_id}/confirm", tag = "channels",
    request_body = ConfirmBody,
    responses((status = 200, body = ChannelItem), BadRequest, Unauthenticated, NotFound,
        Conflict))]
async fn confirm_channel(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(channel_id): Path<Uuid>,
    Json(body): Json<ConfirmBody>,
) -> Result<Json<ChannelItem>, ApiError> {
    match state
        .store
        .confirm_email_channel(principal.user_id, channel_id, &body.code)
        .await?
    {
        ConfirmOutcome::Confirmed(channel) => Ok(Json(channel.into())),
        ConfirmOutcome::WrongCode { tries_left: 0 } => Err(ApiError::BadRequest(
            "that is not the code, and it was the last try: ask for a new code".into(),
        )),
        ConfirmOutcome::WrongCode { tries_left } => Err(ApiError::BadRequest(format!(
            "that is not the code; {tries_left} tries left"
        ))),
        ConfirmOutcome::NoLiveCode => Err(ApiError::Conflict(
            "no code can confirm this channel now (it expired, too many wrong codes were \
             typed, or none was sent): ask for a new code"
                .into(),
        )),
        ConfirmOutcome::NotFound => Err(ApiError::NotFound),
    }
}

/// Send a new confirmation code to one of the caller's unconfirmed e-mail channels (the
/// earlier code stops working). Limited: one message a minute to an address, and a few a day
/// per address and per user. `sent: false` says why the relay did not take it.
#[utoipa::path(post, path = "/v1/me/channels/{channel_id}/confirmation", tag = "channels",
    responses((status = 200, body = ConfirmationSent), Unauthenticated, NotFound, Conflict,
        TooManyRequests))]
async fn send_confirmation(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(channel_id): Path<Uuid>,
) -> Result<Json<ConfirmationSent>, ApiError> {
    if state.mailer.is_none() {
        // Still 404 for a channel that is not the caller's.
        let own = state
            .store
            .channels_of(principal.user_id)
            .await?
            .into_iter()
            .any(|c| c.id == channel_id && c.kind == "email" && c.disabled_at.is_none());
        return Err(if own {
            ApiError::Conflict(NO_RELAY.into())
        } else {
            ApiError::NotFound
        });
    }
    match mail_confirmation_code(&state, principal.user_id, channel_id).await? {
        Ok(sent) => Ok(Json(sent)),
        Err(refused) => Err(issue_refusal(refused)),
    }
}

/// Remove a channel: nothing more is sent to it (its pending deliveries are withheld); its
/// log stays.
#[utoipa::path(delete, path = "/v1/me/channels/{channel_id}", tag = "channels",
    responses((status = 200, body = ChannelItem), Unauthenticated, NotFound))]
async fn disable_channel(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(channel_id): Path<Uuid>,
) -> Result<Json<ChannelItem>, ApiError> {
    let channel = state
        .store
        .disable_channel(principal.user_id, channel_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(channel.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
struct DeliveriesQuery {
    /// Deliveries, newest first, 1–5000 (default 100).
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema, o2o)]
#[from_owned(NotificationDelivery)]
struct NotificationDeliveryItem {
    id: i64,
    channel_id: Uuid,
    /// `web_push`, `email` or `webhook`.
    channel_kind: String,
    event_id: i64,
    /// The event's type (`opened`, `retriggered`, `escalated`).
    event_kind: String,
    alert_id: Uuid,
    /// `alarm` (the alarm itself), `escalation` (a later step of the care team's escalation:
    /// nobody had acknowledged) or `reminder` (still unacknowledged).
    #[schema(value_type = DeliveryReasonName)]
    reason: String,
    /// 0 for the first notice of the alarm, then each reminder's number.
    round: i32,
    patient_id: Uuid,
    /// `pending`, `held` (for the caller's quiet hours, looked at again every 15 s),
    /// `delivered`, `failed` (every attempt failed, or one that no retry can mend) or
    /// `withheld` (when its turn came, the caller no longer received the alert).
    status: String,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    last_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's answer to the last attempt: an HTTP status, or the SMTP reply code.
    last_status_code: Option<i32>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

/// The caller's delivery log: every alarm sent (or being sent, or withheld) to their channels,
/// newest first.
#[utoipa::path(get, path = "/v1/me/notifications", tag = "channels", params(DeliveriesQuery),
    responses((status = 200, body = [NotificationDeliveryItem]), BadRequest, Unauthenticated))]
async fn deliveries(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(query): Query<DeliveriesQuery>,
) -> Result<Json<Vec<NotificationDeliveryItem>>, ApiError> {
    let limit = page_limit(query.limit, 100)?;
    Ok(json_list(
        state
            .store
            .notification_deliveries(principal.user_id, limit)
            .await?,
        NotificationDeliveryItem::from,
    ))
}

#[derive(Debug, Serialize, ToSchema)]
struct PushKey {
    /// The server's VAPID public key (uncompressed P-256, base64url): the
    /// `applicationServerKey` of `pushManager.subscribe`.
    public_key: String,
    /// Whether this server sends e-mail (an SMTP relay is configured).
    email_available: bool,
}

/// The key browsers subscribe to Web Push with, and which channels this server serves.
#[utoipa::path(get, path = "/v1/push/vapid-public-key", tag = "channels", security(()),
    responses((status = 200, body = PushKey)))]
async fn push_key(State(state): State<AppState>) -> Json<PushKey> {
    Json(PushKey {
        public_key: state.vapid_public_key.clone(),
        email_available: state.mailer.is_some(),
    })
}

/// A user's quiet hours: from `starts` to `ends` (local time, `HH:MM`) in `time_zone`, every
/// day; a span crossing midnight ends the next morning. Non-urgent alerts to the user's
/// channels wait until it ends; urgent alarms never wait.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
struct QuietHoursBody {
    #[schema(example = "22:00")]
    starts: String,
    #[schema(example = "07:00")]
    ends: String,
    /// An IANA time zone.
    #[schema(example = "Europe/Berlin")]
    time_zone: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct QuietHoursItem {
    /// Absent when the user has none.
    quiet_hours: Option<QuietHoursBody>,
}

impl From<Option<QuietHours>> for QuietHoursItem {
    fn from(quiet: Option<QuietHours>) -> Self {
        QuietHoursItem {
            quiet_hours: quiet.map(|q| QuietHoursBody {
                starts: q.starts.format("%H:%M").to_string(),
                ends: q.ends.format("%H:%M").to_string(),
                time_zone: q.zone.name().to_owned(),
            }),
        }
    }
}

/// The caller's quiet hours.
#[utoipa::path(get, path = "/v1/me/quiet-hours", tag = "channels",
    responses((status = 200, body = QuietHoursItem), Unauthenticated))]
async fn quiet_hours(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<QuietHoursItem>, ApiError> {
    Ok(Json(
        state.store.quiet_hours(principal.user_id).await?.into(),
    ))
}

/// Set the caller's quiet hours (replacing any).
#[utoipa::path(put, path = "/v1/me/quiet-hours", tag = "channels", request_body = QuietHoursBody,
    responses((status = 200, body = QuietHoursItem), BadRequest, Unauthenticated))]
async fn set_quiet_hours(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Json(body): Json<QuietHoursBody>,
) -> Result<Json<QuietHoursItem>, ApiError> {
    let time = |text: &str, what: &str| {
        NaiveTime::parse_from_str(text.trim(), "%H:%M")
            .map_err(|_| ApiError::BadRequest(format!("{what} must be a time of day as HH:MM")))
    };
    let zone =
        parse_time_zone(body.time_zone.trim()).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let quiet = QuietHours::new(
        time(&body.starts, "starts")?,
        time(&body.ends, "ends")?,
        zone,
    )
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    state
        .store
        .set_quiet_hours(principal.user_id, &quiet)
        .await?;
    Ok(Json(Some(quiet).into()))
}

/// Remove the caller's quiet hours: held notifications go at their next look (within 15 s).
#[utoipa::path(delete, path = "/v1/me/quiet-hours", tag = "channels",
    responses((status = 204, description = "Removed"), Unauthenticated, NotFound))]
async fn clear_quiet_hours(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<StatusCode, ApiError> {
    if state.store.clear_quiet_hours(principal.user_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

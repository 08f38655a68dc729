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
use crate::error::refusals::{BadRequest, NotFound, Unauthenticated};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chronicle_alerts::notifications::{check_email, check_push_keys};
use chronicle_domain::alerts::quiet_hours::QuietHours;
use chronicle_domain::zone::parse_time_zone;
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
    let channel = state
        .store
        .create_channel(principal.user_id, &target, label.as_deref())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedChannel {
            channel: channel.into(),
            secret: shown_secret,
        }),
    ))
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
        email_available: state.email_configured,
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

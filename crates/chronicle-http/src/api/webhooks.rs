//! Organizations' webhooks: where an organization's own systems receive the alerts of the
//! patients who share them with it. Managed by the organization's administrators (users
//! with the `admin` role who are members of it). What each webhook receives is decided per
//! delivery by the patients' grants (see docs/alerts.md).

use super::{OrganizationPath, OrganizationRequest};
use super::{json_list, page_limit};
use crate::AppState;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::error::refusals::{BadRequest, NotFound, Unauthenticated};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chronicle_domain::sharing::{Principal, Role};
use chronicle_storage::webhooks::{Attempt, Delivery, Webhook};
use chrono::{DateTime, Utc};
use o2o::o2o;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(webhooks, create_webhook))
        .routes(routes!(disable_webhook))
        .routes(routes!(deliveries))
}

/// Only the organization's administrators manage its webhooks. Everyone else gets 404, so
/// no one learns which organizations have webhooks.
fn administrator_of(principal: &Principal, organization_id: Uuid) -> Result<(), ApiError> {
    if principal.role == Some(Role::Admin) && principal.organizations.contains(&organization_id) {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

#[derive(Debug, Serialize, ToSchema, o2o)]
#[from_owned(Webhook)]
struct WebhookItem {
    id: Uuid,
    organization_id: Uuid,
    url: String,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    disabled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
struct CreateWebhookRequest {
    /// Where deliveries are POSTed (`http://` or `https://`).
    url: String,
    /// The HMAC-SHA256 key deliveries are signed with, at least 16 characters. Absent: one
    /// is generated. Shown once, in this response.
    secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct CreatedWebhook {
    webhook: WebhookItem,
    /// The signing secret, shown once.
    secret: String,
}

/// The organization's webhooks.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/webhooks", tag = "webhooks", params(OrganizationPath),
    responses((status = 200, body = [WebhookItem]), Unauthenticated, NotFound))]
async fn webhooks(
    OrganizationRequest(state, principal, organization_id): OrganizationRequest,
) -> Result<Json<Vec<WebhookItem>>, ApiError> {
    administrator_of(&principal, organization_id)?;
    Ok(json_list(
        state.store.webhooks_of(organization_id).await?,
        WebhookItem::from,
    ))
}

/// Add a webhook: every alert event of the patients whose grants let the organization (or
/// one of its care teams) receive alerts is POSTed there, signed.
#[utoipa::path(post, path = "/v1/organizations/{organization_id}/webhooks", tag = "webhooks", params(OrganizationPath),
    request_body = CreateWebhookRequest,
    responses((status = 201, body = CreatedWebhook), BadRequest, Unauthenticated, NotFound))]
async fn create_webhook(
    OrganizationRequest(state, principal, organization_id): OrganizationRequest,
    Json(body): Json<CreateWebhookRequest>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    administrator_of(&principal, organization_id)?;
    let url = body.url.trim();
    state
        .webhook_destinations
        .check(url)
        .map_err(|refused| ApiError::BadRequest(refused.to_string()))?;
    let secret = match body.secret {
        Some(s) if s.chars().count() >= 16 => s,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "the secret must be at least 16 characters".into(),
            ));
        }
        None => chronicle_storage::credentials::random_secret(32),
    };
    let webhook = state
        .store
        .create_webhook(organization_id, url, &secret, Some(principal.user_id))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook {
            webhook: webhook.into(),
            secret,
        }),
    ))
}

/// Disable a webhook: nothing more is sent to it; its log stays.
#[utoipa::path(delete, path = "/v1/organizations/{organization_id}/webhooks/{webhook_id}",
    tag = "webhooks", responses((status = 200, body = WebhookItem), Unauthenticated, NotFound))]
async fn disable_webhook(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((organization_id, webhook_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<WebhookItem>, ApiError> {
    administrator_of(&principal, organization_id)?;
    let webhook = state
        .store
        .disable_webhook(organization_id, webhook_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(webhook.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
struct DeliveriesQuery {
    /// Deliveries, newest first, 1–5000 (default 100).
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema, o2o)]
#[from_owned(Attempt)]
struct AttemptItem {
    attempt: i32,
    at: DateTime<Utc>,
    /// The receiver's HTTP status, if it answered.
    status_code: Option<i32>,
    error: Option<String>,
    duration_ms: i32,
}

#[derive(Debug, Serialize, ToSchema, o2o)]
#[from_owned(Delivery)]
struct DeliveryItem {
    id: i64,
    event_id: i64,
    /// The event's type (`opened`, `resolved`, …).
    event_kind: String,
    alert_id: Uuid,
    /// `pending`, `delivered`, `failed` (every attempt failed) or `withheld` (the patient's
    /// grant no longer allowed it).
    status: String,
    next_attempt_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    #[from(~.into_iter().map(AttemptItem::from).collect())]
    attempts: Vec<AttemptItem>,
}

/// The webhook's delivery log: each delivery with every attempt.
#[utoipa::path(get, path = "/v1/organizations/{organization_id}/webhooks/{webhook_id}/deliveries",
    tag = "webhooks", params(DeliveriesQuery),
    responses((status = 200, body = [DeliveryItem]), BadRequest, Unauthenticated, NotFound))]
async fn deliveries(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((organization_id, webhook_id)): Path<(Uuid, Uuid)>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<Json<Vec<DeliveryItem>>, ApiError> {
    administrator_of(&principal, organization_id)?;
    let limit = page_limit(query.limit, 100)?;
    Ok(json_list(
        state
            .store
            .webhook_deliveries(organization_id, webhook_id, limit)
            .await?,
        DeliveryItem::from,
    ))
}

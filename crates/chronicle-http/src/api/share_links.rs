//! Share links: a patient (or their guardian) hands out a named, expiring, read-only secret —
//! for a school nurse, a babysitter, a follower app — scoped like a grant (categories,
//! readings or trends only, window). The link's one grant names the link, so every read with
//! its token passes the gate and is logged in the access log under the link's name; revoking
//! the link revokes that grant, effective on the next request. Nothing is readable without a
//! link.
//!
//! The token works on the read-only routes under `/v1/shared/{token}` (a browser) and as a
//! Nightscout follower's `token=` on the patient's site ([`crate::nightscout`]).

use super::nightscout::site_path;
use super::readings::{GlucosePoint, ReadingsQuery, TreatmentPoint, glucose_page, treatments_page};
use super::sharing::parse_all;
use super::trends::{GlucoseTrendBody, TrendQuery, glucose_trend_answer};
use super::vocabulary::{AccessName, DataCategoryName};
use super::{Page, PatientPath, PatientRequest, actor};
use crate::AppState;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::error::refusals::{BadRequest, Forbidden, NotFound, Unauthenticated};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chronicle_domain::sharing::{
    Access, AccessAction, DataCategory, Principal, validate_new_grant,
};
use chronicle_storage::nightscout::{ShareLink, ShareLinkScope};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// The longest a share link may live: it is a secret in a URL.
const MAX_LINK_DAYS: i64 = 366;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(share_links, create_share_link))
        .routes(routes!(revoke_share_link))
        .routes(routes!(shared_glucose))
        .routes(routes!(shared_treatments))
        .routes(routes!(shared_glucose_trend))
}

#[derive(Debug, Serialize, ToSchema)]
struct ShareLinkItem {
    id: Uuid,
    name: String,
    #[schema(value_type = Vec<DataCategoryName>)]
    categories: Vec<String>,
    /// `view_readings`, or `view_trends` alone for a trends-only link.
    #[schema(value_type = Vec<AccessName>)]
    access: Vec<String>,
    /// Data measured before this instant is never shown through the link.
    data_since: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    /// Whether the link reads anything now.
    active: bool,
    /// The grant the link reads under (also in the patient's grants and access log).
    grant_id: Uuid,
}

impl From<ShareLink> for ShareLinkItem {
    fn from(link: ShareLink) -> Self {
        let grant = link.grant;
        ShareLinkItem {
            active: grant.is_active(Utc::now()),
            id: link.id,
            name: link.name,
            categories: grant
                .categories
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            access: grant.access.iter().map(|a| a.as_str().to_owned()).collect(),
            data_since: grant.data_since,
            expires_at: grant.expires_at,
            revoked_at: grant.revoked_at,
            created_at: link.created_at,
            grant_id: grant.id,
        }
    }
}

/// The patient's share links, newest first, in any state (the patient or their guardian).
#[utoipa::path(get, path = "/v1/patients/{patient_id}/share-links", tag = "sharing", params(PatientPath),
    responses((status = 200, body = [ShareLinkItem]), Unauthenticated, NotFound))]
async fn share_links(
    PatientRequest(state, principal, patient_id): PatientRequest,
) -> Result<Json<Vec<ShareLinkItem>>, ApiError> {
    let actor = actor(&state, &principal, patient_id, AccessAction::ReadShareLinks).await?;
    let links = state.store.share_links_of(&actor).await?;
    Ok(Json(links.into_iter().map(ShareLinkItem::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
struct CreateShareLinkRequest {
    /// Who it is for (`School nurse`), 1–100 characters: the access log names reads so.
    name: String,
    #[schema(value_type = Vec<DataCategoryName>)]
    categories: Vec<String>,
    /// `view_readings` or `view_trends` (aggregates only): a link only reads.
    #[schema(value_type = Vec<AccessName>)]
    access: Vec<String>,
    /// Never show data measured before this instant.
    data_since: Option<DateTime<Utc>>,
    /// When the link stops working: required, within a year.
    expires_at: DateTime<Utc>,
}

/// A new share link; its token is shown once.
#[derive(Debug, Serialize, ToSchema)]
struct CreatedShareLink {
    link: ShareLinkItem,
    /// The secret: only its hash is stored.
    token: String,
    /// The read-only browser path (`/v1/shared/{token}/…`).
    shared_path: String,
    /// The patient's Nightscout site, for a follower app given `token` (`?token=…`).
    nightscout_site_path: String,
}

/// Make a share link (the patient or their guardian).
#[utoipa::path(post, path = "/v1/patients/{patient_id}/share-links", tag = "sharing", params(PatientPath),
    request_body = CreateShareLinkRequest,
    responses((status = 201, body = CreatedShareLink), BadRequest, Unauthenticated, NotFound))]
async fn create_share_link(
    PatientRequest(state, principal, patient_id): PatientRequest,
    Json(body): Json<CreateShareLinkRequest>,
) -> Result<(StatusCode, Json<CreatedShareLink>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::BadRequest(
            "name must be 1 to 100 characters".into(),
        ));
    }
    let categories = parse_all(&body.categories, "data category", DataCategory::parse)?;
    let access = parse_all(&body.access, "access", Access::parse)?;
    if access
        .iter()
        .any(|a| !matches!(a, Access::ViewReadings | Access::ViewTrends))
    {
        return Err(ApiError::BadRequest(
            "a share link only reads: access is view_readings or view_trends".into(),
        ));
    }
    let now = Utc::now();
    validate_new_grant(&categories, &access, Some(body.expires_at), now)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if body.expires_at > now + Duration::days(MAX_LINK_DAYS) {
        return Err(ApiError::BadRequest(format!(
            "a share link lives at most {MAX_LINK_DAYS} days"
        )));
    }
    let actor = actor(
        &state,
        &principal,
        patient_id,
        AccessAction::CreateShareLink,
    )
    .await?;
    let spec = ShareLinkScope {
        categories,
        access,
        data_since: body.data_since,
        expires_at: Some(body.expires_at),
    };
    let (link, token) = state.store.create_share_link_as(&actor, name, spec).await?;
    let site_id = state.store.nightscout_site_of(&actor).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedShareLink {
            link: link.into(),
            shared_path: format!("/v1/shared/{token}"),
            nightscout_site_path: site_path(&site_id),
            token,
        }),
    ))
}

/// Revoke a share link: its token reads nothing from the next request on.
#[utoipa::path(delete, path = "/v1/patients/{patient_id}/share-links/{link_id}", tag = "sharing",
    responses((status = 200, body = ShareLinkItem), Unauthenticated, NotFound))]
async fn revoke_share_link(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((patient_id, link_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<ShareLinkItem>, ApiError> {
    let actor = actor(
        &state,
        &principal,
        patient_id,
        AccessAction::RevokeShareLink,
    )
    .await?;
    let link = state
        .store
        .revoke_share_link_as(&actor, link_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(link.into()))
}

/// Who presents `token`, and whose data it may ask for: an unknown token is 404, and the gate
/// decides the rest (a revoked or expired link holds nothing: 404).
async fn holder(state: &AppState, token: &str) -> Result<(Principal, Uuid), ApiError> {
    let holder = state
        .store
        .share_link_holder(token)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((Principal::share_link(holder.link_id), holder.patient_id))
}

/// The glucose readings a share link shows, oldest first (no bearer token: the link's token
/// is the credential).
#[utoipa::path(get, path = "/v1/shared/{token}/glucose", tag = "sharing",
    params(("token" = String, Path, description = "The share link's token"), ReadingsQuery),
    security(()),
    responses((status = 200, body = Page<GlucosePoint>), BadRequest, Forbidden, NotFound))]
async fn shared_glucose(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(query): Query<ReadingsQuery>,
) -> Result<Json<Page<GlucosePoint>>, ApiError> {
    let (principal, patient_id) = holder(&state, &token).await?;
    glucose_page(&state, &principal, patient_id, &query).await
}

/// The treatments a share link shows, oldest first.
#[utoipa::path(get, path = "/v1/shared/{token}/treatments", tag = "sharing",
    params(("token" = String, Path, description = "The share link's token"), ReadingsQuery),
    security(()),
    responses((status = 200, body = Page<TreatmentPoint>), BadRequest, Forbidden, NotFound))]
async fn shared_treatments(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(query): Query<ReadingsQuery>,
) -> Result<Json<Page<TreatmentPoint>>, ApiError> {
    let (principal, patient_id) = holder(&state, &token).await?;
    treatments_page(&state, &principal, patient_id, &query).await
}

/// The glucose trend a share link shows (trends-only links included).
#[utoipa::path(get, path = "/v1/shared/{token}/trends/glucose", tag = "sharing",
    params(("token" = String, Path, description = "The share link's token"), TrendQuery),
    security(()),
    responses((status = 200, body = GlucoseTrendBody), BadRequest, Forbidden, NotFound))]
async fn shared_glucose_trend(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(query): Query<TrendQuery>,
) -> Result<Json<GlucoseTrendBody>, ApiError> {
    let (principal, patient_id) = holder(&state, &token).await?;
    glucose_trend_answer(&state, &principal, patient_id, &query).await
}

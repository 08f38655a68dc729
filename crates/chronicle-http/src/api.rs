//! The versioned JSON API under `/v1`. Every handler that touches patient data asks
//! `Store::authorize` for a permit first (which logs the attempt) and reads through it.

use crate::AppState;
use crate::auth::Authenticated;
use crate::error::ApiError;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chronicle_domain::GlucoseUnit;
use chronicle_domain::sharing::{
    Access, AccessRequest, DataCategory, DenyReason, Permit, Principal,
};
use chronicle_storage::access::PageRequest;
use chronicle_storage::credentials::verify_password;
use chronicle_storage::identity::TokenKind;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long a password log-in's session lasts.
const SESSION_HOURS: i64 = 12;
const MAX_PAGE: i64 = 5000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/login", post(login))
        .route("/v1/me", get(me))
        .route("/v1/patients/{patient_id}/glucose", get(glucose))
}

#[derive(Debug, Deserialize)]
struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Debug, Serialize)]
struct LoginResponse {
    token: String,
    token_type: &'static str,
    expires_at: Option<DateTime<Utc>>,
}

async fn login(
    State(state): State<AppState>,
    Json(body): Json<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let found = state.store.user_for_login(&body.email).await?;
    // The same answer for an unknown e-mail and a wrong password.
    let Some((user, Some(hash))) = found else {
        return Err(ApiError::InvalidCredentials);
    };
    let password = body.password;
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if !matches {
        return Err(ApiError::InvalidCredentials);
    }
    let issued = state
        .store
        .issue_token(
            user.id,
            TokenKind::Session,
            None,
            Some(Utc::now() + Duration::hours(SESSION_HOURS)),
        )
        .await?;
    Ok(Json(LoginResponse {
        token: issued.token,
        token_type: "Bearer",
        expires_at: issued.expires_at,
    }))
}

#[derive(Debug, Serialize)]
struct Me {
    id: Uuid,
    email: String,
    display_name: String,
    role: String,
    patient_id: Option<Uuid>,
    guardian_of: Vec<Uuid>,
    care_teams: Vec<Uuid>,
    organizations: Vec<Uuid>,
}

async fn me(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Me>, ApiError> {
    let user = state
        .store
        .user(principal.user_id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    Ok(Json(Me {
        id: user.id,
        email: user.email,
        display_name: user.display_name,
        role: user.role.as_str().to_owned(),
        patient_id: user.patient_id,
        guardian_of: principal.guardian_of,
        care_teams: principal.care_teams,
        organizations: principal.organizations,
    }))
}

/// Asks the gate; a refusal becomes 404 when the caller holds nothing for this patient (so
/// they cannot learn whether the patient exists) and 403 when they hold something else.
async fn permit(
    state: &AppState,
    principal: &Principal,
    patient_id: Uuid,
    category: DataCategory,
    access: Access,
    action: &str,
) -> Result<Permit, ApiError> {
    let request = AccessRequest {
        patient_id,
        category,
        access,
        at: Utc::now(),
    };
    match state.store.authorize(principal, request, action).await? {
        Ok(permit) => Ok(permit),
        Err(DenyReason::NoGrant | DenyReason::NoPurpose) => Err(ApiError::NotFound),
        Err(DenyReason::CategoryNotGranted | DenyReason::AccessNotGranted) => {
            Err(ApiError::Forbidden)
        }
    }
}

#[derive(Debug, Deserialize)]
struct ReadingsQuery {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    /// `mg/dL` (default) or `mmol/L`.
    unit: Option<String>,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
    limit: Option<i64>,
}

#[derive(Debug, Serialize)]
struct GlucosePoint {
    measured_at: DateTime<Utc>,
    value: f64,
    unit: &'static str,
    source: String,
    flag: Option<String>,
    device_id: String,
}

#[derive(Debug, Serialize)]
struct Page<T> {
    items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    next_cursor: Option<String>,
}

async fn glucose(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(patient_id): Path<Uuid>,
    Query(query): Query<ReadingsQuery>,
) -> Result<Json<Page<GlucosePoint>>, ApiError> {
    let unit = match query.unit.as_deref() {
        None => GlucoseUnit::MgDl,
        Some(text) => text
            .parse()
            .map_err(|e: chronicle_domain::units::UnknownUnit| {
                ApiError::BadRequest(e.to_string())
            })?,
    };
    let limit = query.limit.unwrap_or(1000);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let after = query.cursor.as_deref().map(parse_cursor).transpose()?;
    let permit = permit(
        &state,
        &principal,
        patient_id,
        DataCategory::Glucose,
        Access::ViewReadings,
        "read_glucose_readings",
    )
    .await?;
    if permit.allowance().deidentified {
        // De-identified research access is served by the research export, which shifts times
        // and replaces identifiers; the clinical endpoints never serve it.
        return Err(ApiError::Forbidden);
    }
    let rows = state
        .store
        .glucose_readings(
            &permit,
            PageRequest {
                from: query.from,
                to: query.to,
                after: after.as_ref().map(|(t, d)| (*t, d.as_str())),
                limit,
            },
        )
        .await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| {
            rows.last()
                .map(|r| format!("{}.{}", r.measured_at.timestamp_micros(), r.device_id))
        })
        .flatten();
    let items = rows
        .into_iter()
        .map(|r| GlucosePoint {
            measured_at: r.measured_at,
            value: unit.from_mg_dl(r.value_mg_dl),
            unit: unit.as_str(),
            source: r.source,
            flag: r.flag,
            device_id: r.device_id,
        })
        .collect();
    Ok(Json(Page { items, next_cursor }))
}

fn parse_cursor(text: &str) -> Result<(DateTime<Utc>, String), ApiError> {
    let bad = || ApiError::BadRequest("invalid cursor".into());
    let (micros, device) = text.split_once('.').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((at, device.to_owned()))
}

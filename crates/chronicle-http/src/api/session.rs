//! The caller's session: log-in, who am I, log-out, and the long-lived API tokens an
//! integration uses.

use crate::AppState;
use crate::auth::Authenticated;
use crate::auth::bearer_token;
use crate::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use chronicle_storage::credentials::verify_password;
use chronicle_storage::identity::TokenInfo;
use chronicle_storage::identity::TokenKind;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// How long a password log-in's session lasts.
const SESSION_HOURS: i64 = 12;

/// The longest an API token may be made to last when it expires at all.
const MAX_TOKEN_DAYS: u32 = 3650;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(me))
        .routes(routes!(logout))
        .routes(routes!(tokens, create_token))
        .routes(routes!(revoke_token))
}

/// Log out: the token of this request stops working at once.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "The token is revoked"), (status = 401, body = ErrorBody)))]
async fn logout(
    State(state): State<AppState>,
    Authenticated(_caller): Authenticated,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let token = bearer_token(&headers).ok_or(ApiError::Unauthenticated)?;
    state.store.revoke_token_value(token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
struct TokenItem {
    id: Uuid,
    /// `session` (from a log-in) or `api` (for an integration).
    kind: String,
    label: Option<String>,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

impl From<TokenInfo> for TokenItem {
    fn from(t: TokenInfo) -> Self {
        TokenItem {
            id: t.id,
            kind: t.kind,
            label: t.label,
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            last_used_at: t.last_used_at,
        }
    }
}

/// The caller's tokens, newest first (never their secrets).
#[utoipa::path(get, path = "/v1/me/tokens", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = [TokenItem]), (status = 401, body = ErrorBody)))]
async fn tokens(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Vec<TokenItem>>, ApiError> {
    Ok(Json(
        state
            .store
            .tokens_of(principal.user_id)
            .await?
            .into_iter()
            .map(TokenItem::from)
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
struct CreateTokenRequest {
    /// What the token is for, e.g. the integration's name.
    label: String,
    /// Expire after this many days; without it the token lasts until revoked.
    expires_days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
struct CreatedToken {
    id: Uuid,
    /// Send as `Authorization: Bearer <token>`. Shown once; only its hash is stored.
    token: String,
    expires_at: Option<DateTime<Utc>>,
}

/// Issue a long-lived API token for an integration; it acts as the caller.
#[utoipa::path(post, path = "/v1/me/tokens", tag = "auth", security(("bearer" = [])),
    request_body = CreateTokenRequest,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn create_token(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Json(body): Json<CreateTokenRequest>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let label = body.label.trim();
    if label.is_empty() {
        return Err(ApiError::BadRequest("label must not be empty".into()));
    }
    let expires_at = match body.expires_days {
        None => None,
        Some(days) if (1..=MAX_TOKEN_DAYS).contains(&days) => {
            Some(Utc::now() + Duration::days(i64::from(days)))
        }
        Some(_) => {
            return Err(ApiError::BadRequest(format!(
                "expires_days must be between 1 and {MAX_TOKEN_DAYS}"
            )));
        }
    };
    let issued = state
        .store
        .issue_token(principal.user_id, TokenKind::Api, Some(label), expires_at)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            id: issued.id,
            token: issued.token,
            expires_at: issued.expires_at,
        }),
    ))
}

/// Revoke one of the caller's tokens; it stops working at once.
#[utoipa::path(delete, path = "/v1/me/tokens/{token_id}", tag = "auth", security(("bearer" = [])),
    params(("token_id" = Uuid, Path)),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(token_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    if state
        .store
        .revoke_token(principal.user_id, token_id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    token: String,
    token_type: &'static str,
    expires_at: Option<DateTime<Utc>>,
}

/// Log in with e-mail and password; returns a session token.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody)))]
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

#[derive(Debug, Serialize, ToSchema)]
struct Me {
    id: Uuid,
    email: String,
    display_name: String,
    role: String,
    /// The patient record this user is, for a patient.
    patient_id: Option<Uuid>,
    guardian_of: Vec<Uuid>,
    care_teams: Vec<Uuid>,
    organizations: Vec<Uuid>,
}

/// The caller.
#[utoipa::path(get, path = "/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
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

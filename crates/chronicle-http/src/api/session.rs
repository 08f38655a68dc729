//! The caller's session: log-in, who am I, log-out, password change, the caller's
//! authentication events, and the API tokens an integration uses.
//!
//! Log-in and password change go through the [`LoginGuard`](crate::login_guard) (rate limits,
//! back-off, one argon2 verification whatever the account); every outcome is recorded as an
//! authentication event. Log-out ends the session it is sent with; API tokens are separate
//! credentials that expire on their own and are revoked with a password change, a disabled
//! account or an administrator's off-boarding.

use crate::AppState;
use crate::api::vocabulary::{AuthenticationEventKindName, LoginFailureName, RoleName};
use crate::api::{Page, json_list, numbered_cursor, page_limit};
use crate::auth::Authenticated;
use crate::auth::bearer_token;
use crate::client_address::ClientAddress;
use crate::error::ApiError;
use crate::error::refusals::{BadRequest, Forbidden, NotFound, TooManyRequests, Unauthenticated};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use chronicle_domain::accounts::{
    AuthenticationEventKind, LoginFailure, api_token_days, check_password,
};
use chronicle_storage::accounts::{AuthenticationEvent, NewAuthenticationEvent};
use chronicle_storage::credentials::hash_password;
use chronicle_storage::identity::TokenInfo;
use chronicle_storage::identity::TokenKind;
use chrono::{DateTime, Duration, Utc};
use o2o::o2o;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// How long a password log-in's session lasts.
const SESSION_HOURS: i64 = 12;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(me))
        .routes(routes!(logout))
        .routes(routes!(change_password))
        .routes(routes!(my_authentication_events))
        .routes(routes!(tokens, create_token))
        .routes(routes!(revoke_token))
}

/// The id and kind of the token a request carries.
async fn current_token(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Uuid, TokenKind), ApiError> {
    let token = bearer_token(headers).ok_or(ApiError::Unauthenticated)?;
    state
        .store
        .active_token(token)
        .await?
        .ok_or(ApiError::Unauthenticated)
}

/// Log out: the session (or token) of this request stops working at once. The account's
/// other sessions and API tokens are separate credentials and go on working.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "The token is revoked"), Unauthenticated))]
async fn logout(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let token = bearer_token(&headers).ok_or(ApiError::Unauthenticated)?;
    if let Some(token_id) = state.store.revoke_token_value(token).await? {
        state
            .store
            .record_authentication_event(
                &NewAuthenticationEvent::of(
                    AuthenticationEventKind::LoggedOut,
                    caller.user_id,
                    address,
                )
                .with_token(token_id),
            )
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema, o2o)]
#[from_owned(TokenInfo)]
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

/// The caller's tokens, newest first (never their secrets).
#[utoipa::path(get, path = "/v1/me/tokens", tag = "auth",
    responses((status = 200, body = [TokenItem]), Unauthenticated))]
async fn tokens(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Vec<TokenItem>>, ApiError> {
    Ok(json_list(
        state.store.tokens_of(principal.user_id).await?,
        TokenItem::from,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
struct CreateTokenRequest {
    /// What the token is for, e.g. the integration's name.
    label: String,
    /// Expire after this many days (1 to 365); without it, after 90 days.
    expires_days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
struct CreatedToken {
    id: Uuid,
    /// Send as `Authorization: Bearer <token>`. Shown once; only its hash is stored.
    token: String,
    expires_at: Option<DateTime<Utc>>,
}

/// Issue an API token for an integration; it acts as the caller, with the caller's rights as
/// they are at each request. Only a log-in session may issue one (a token cannot renew
/// itself); it expires after 90 days unless asked for less or more (at most a year), and is
/// revoked when the password changes or the account is disabled.
#[utoipa::path(post, path = "/v1/me/tokens", tag = "auth", request_body = CreateTokenRequest,
    responses((status = 201, body = CreatedToken), BadRequest, Unauthenticated, Forbidden,
        TooManyRequests))]
async fn create_token(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Json(body): Json<CreateTokenRequest>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let label = body.label.trim();
    if label.is_empty() {
        return Err(ApiError::BadRequest("label must not be empty".into()));
    }
    let days =
        api_token_days(body.expires_days).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let (_, kind) = current_token(&state, &headers).await?;
    if kind != TokenKind::Session {
        return Err(ApiError::NotPermitted(
            "API tokens are issued from a log-in session, not from another API token".into(),
        ));
    }
    state
        .login_guard
        .check_token_issue(principal.user_id, address)?;
    let expires_at = Utc::now() + Duration::days(i64::from(days));
    let issued = state
        .store
        .issue_token(
            principal.user_id,
            TokenKind::Api,
            Some(label),
            Some(expires_at),
        )
        .await?;
    state
        .store
        .record_authentication_event(
            &NewAuthenticationEvent::of(
                AuthenticationEventKind::TokenIssued,
                principal.user_id,
                address,
            )
            .with_token(issued.id),
        )
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
#[utoipa::path(delete, path = "/v1/me/tokens/{token_id}", tag = "auth",
    responses((status = 204, description = "Revoked"), Unauthenticated, NotFound))]
async fn revoke_token(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    ClientAddress(address): ClientAddress,
    Path(token_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    if state
        .store
        .revoke_token(principal.user_id, token_id)
        .await?
    {
        state
            .store
            .record_authentication_event(
                &NewAuthenticationEvent::of(
                    AuthenticationEventKind::TokenRevoked,
                    principal.user_id,
                    address,
                )
                .with_token(token_id),
            )
            .await?;
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

/// Log in with e-mail and password; returns a session token. An unknown e-mail, a wrong
/// password and a disabled account get the same answer in the same time; repeated failures
/// for an e-mail or from an address are refused for a while (429 with `Retry-After`), the
/// right password included.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", security(()),
    request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), Unauthenticated, TooManyRequests))]
async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    Json(body): Json<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let guard = &state.login_guard;
    guard.check_attempt(&body.email, address)?;
    let candidate = state.store.login_candidate(&body.email).await?;
    // One argon2 verification whatever the account: against the dummy hash when there is no
    // real one, so time does not tell which e-mails have accounts.
    let hash = candidate.as_ref().and_then(|c| c.password_hash.clone());
    let matches = guard.verify(body.password, hash).await;
    let failure = match &candidate {
        None => Some(LoginFailure::UnknownAccount),
        Some(c) if c.disabled => Some(LoginFailure::AccountDisabled),
        Some(c) if c.password_hash.is_none() => Some(LoginFailure::NoPassword),
        Some(_) if !matches => Some(LoginFailure::WrongPassword),
        Some(_) => None,
    };
    let user_id = candidate.map(|c| c.user_id);
    let (Some(user_id), None) = (user_id, failure) else {
        guard.failed(&body.email, address);
        state
            .store
            .record_authentication_event(&NewAuthenticationEvent {
                kind: AuthenticationEventKind::LoginFailed,
                user_id,
                actor_id: None,
                // Kept only when no account has it: otherwise the account says who it was.
                email_tried: user_id.is_none().then_some(body.email.as_str()),
                failure,
                client_address: address,
                token_id: None,
            })
            .await?;
        return Err(ApiError::InvalidCredentials);
    };
    guard.succeeded(&body.email);
    let issued = state
        .store
        .issue_token(
            user_id,
            TokenKind::Session,
            None,
            Some(Utc::now() + Duration::hours(SESSION_HOURS)),
        )
        .await?;
    state
        .store
        .record_authentication_event(
            &NewAuthenticationEvent::of(AuthenticationEventKind::LoginSucceeded, user_id, address)
                .with_token(issued.id),
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
    #[schema(value_type = RoleName)]
    role: String,
    /// The patient record this user is, for a patient.
    patient_id: Option<Uuid>,
    guardian_of: Vec<Uuid>,
    care_teams: Vec<Uuid>,
    organizations: Vec<Uuid>,
}

/// The caller.
#[utoipa::path(get, path = "/v1/me", tag = "auth",
    responses((status = 200, body = Me), Unauthenticated))]
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

#[derive(Debug, Deserialize, ToSchema)]
struct ChangePasswordRequest {
    current_password: String,
    /// At least 12 characters and not easy to guess (common and breached-style passwords,
    /// keyboard walks, repeats, the account's own name or e-mail are refused).
    new_password: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct PasswordChanged {
    /// Sessions and API tokens of the account revoked (every one but this request's session).
    revoked_tokens: u64,
}

/// Change the caller's password. Needs the current one (wrong answers back off like failed
/// log-ins); revokes every other session and every API token of the account, keeping only
/// the session this request is sent with.
#[utoipa::path(post, path = "/v1/me/password", tag = "auth", request_body = ChangePasswordRequest,
    responses((status = 200, body = PasswordChanged), BadRequest, Unauthenticated, Forbidden,
        TooManyRequests))]
async fn change_password(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Json(body): Json<ChangePasswordRequest>,
) -> Result<Json<PasswordChanged>, ApiError> {
    let user = state
        .store
        .user(principal.user_id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    let guard = &state.login_guard;
    guard.check_attempt(&user.email, address)?;
    let hash = state.store.password_hash_of(user.id).await?;
    let has_password = hash.is_some();
    if !guard.verify(body.current_password.clone(), hash).await {
        guard.failed(&user.email, address);
        let failure = if has_password {
            LoginFailure::WrongPassword
        } else {
            LoginFailure::NoPassword
        };
        state
            .store
            .record_authentication_event(&NewAuthenticationEvent {
                failure: Some(failure),
                ..NewAuthenticationEvent::of(
                    AuthenticationEventKind::PasswordChangeFailed,
                    user.id,
                    address,
                )
            })
            .await?;
        return Err(ApiError::NotPermitted(
            "the current password is wrong".into(),
        ));
    }
    guard.succeeded(&user.email);
    if body.new_password == body.current_password {
        return Err(ApiError::BadRequest(
            "the new password must differ from the current one".into(),
        ));
    }
    check_password(&body.new_password, &[&user.email, &user.display_name])
        .map_err(|weak| ApiError::BadRequest(weak.to_string()))?;
    let new_password = body.new_password;
    let new_hash = tokio::task::spawn_blocking(move || hash_password(&new_password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    // Keep the session that changed the password; an API token used for it goes with the rest.
    let keep = match current_token(&state, &headers).await? {
        (id, TokenKind::Session) => Some(id),
        (_, TokenKind::Api) => None,
    };
    let revoked_tokens = state
        .store
        .change_password(user.id, &new_hash, keep, address)
        .await?;
    Ok(Json(PasswordChanged { revoked_tokens }))
}

/// One authentication event, as its account's user or an administrator sees it.
#[derive(Debug, Serialize, ToSchema, o2o)]
#[from_owned(AuthenticationEvent)]
pub(crate) struct AuthenticationEventItem {
    /// Also the paging cursor: events are listed by descending id.
    id: i64,
    occurred_at: DateTime<Utc>,
    #[schema(value_type = AuthenticationEventKindName)]
    kind: AuthenticationEventKind,
    /// The account concerned; absent for a log-in that named no account.
    user_id: Option<Uuid>,
    /// Who acted, when not the account's own user (the administrator who disabled it).
    actor_id: Option<Uuid>,
    /// For a failed log-in that named no account: the e-mail given, when it looks like one.
    email_tried: Option<String>,
    /// Why a log-in or password change was refused.
    #[schema(value_type = Option<LoginFailureName>)]
    failure: Option<LoginFailure>,
    /// The client's address.
    client_address: Option<String>,
    /// The token issued, revoked, or of the session that logged in or out.
    token_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct EventQuery {
    /// Events of this account only (administrators).
    pub(crate) user_id: Option<Uuid>,
    /// At most this many (default 100).
    pub(crate) limit: Option<i64>,
    /// The previous page's `next_cursor`.
    pub(crate) cursor: Option<String>,
}

/// One page of authentication events, newest first: of `user_id`, or of everyone for `None`.
pub(crate) async fn event_page(
    state: &AppState,
    user_id: Option<Uuid>,
    query: &EventQuery,
) -> Result<Page<AuthenticationEventItem>, ApiError> {
    let limit = page_limit(query.limit, 100)?;
    let before = numbered_cursor(query.cursor.as_deref())?;
    let events = state
        .store
        .authentication_events(user_id, before, limit)
        .await?;
    let next_cursor = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| e.id.to_string()))
        .flatten();
    Ok(Page {
        items: events.into_iter().map(Into::into).collect(),
        next_cursor,
    })
}

/// The caller's own authentication events, newest first: log-ins (failed ones included),
/// log-outs, tokens, password changes, and what administrators did to the account. A patient
/// sees those of their own account here.
#[utoipa::path(get, path = "/v1/me/authentication-events", tag = "auth", params(EventQuery),
    responses((status = 200, body = Page<AuthenticationEventItem>), BadRequest, Unauthenticated))]
async fn my_authentication_events(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(query): Query<EventQuery>,
) -> Result<Json<Page<AuthenticationEventItem>>, ApiError> {
    if query.user_id.is_some_and(|id| id != principal.user_id) {
        return Err(ApiError::BadRequest(
            "user_id is for administrators (GET /v1/admin/authentication-events)".into(),
        ));
    }
    Ok(Json(
        event_page(&state, Some(principal.user_id), &query).await?,
    ))
}

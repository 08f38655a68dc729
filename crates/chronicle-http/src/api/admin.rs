//! Administration: organizations (clinics), care teams, their members, and user accounts
//! (creating, disabling and enabling them, revoking their tokens, reading authentication
//! events). Administrators manage accounts and see no patient data: creating a patient's
//! account gives the administrator no grant on it.

use super::session::{AuthenticationEventItem, EventQuery, event_page};
use super::vocabulary::RoleName;
use super::{Page, json_list, parse_name};
use crate::AppState;
use crate::auth::Administrator;
use crate::client_address::ClientAddress;
use crate::error::ApiError;
use crate::error::refusals::{BadRequest, Conflict, Forbidden, NotFound, Unauthenticated};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chronicle_domain::accounts::check_password;
use chronicle_domain::sharing::Role;
use chronicle_domain::zone::parse_time_zone;
use chronicle_storage::NewPatient;
use chronicle_storage::credentials::{hash_password, random_secret};
use chronicle_storage::identity::{CareTeam, NewUser, Organization, User};
use chrono::{DateTime, Utc};
use o2o::o2o;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(organizations, create_organization))
        .routes(routes!(teams, create_team))
        .routes(routes!(members, add_member))
        .routes(routes!(remove_member))
        .routes(routes!(users, create_user))
        .routes(routes!(disable_user))
        .routes(routes!(enable_user))
        .routes(routes!(revoke_user_tokens))
        .routes(routes!(authentication_events))
}

/// 404 unless the organization exists.
async fn require_organization(state: &AppState, organization_id: Uuid) -> Result<(), ApiError> {
    match state.store.organization(organization_id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound),
    }
}

/// 404 unless the care team exists.
async fn require_team(state: &AppState, team_id: Uuid) -> Result<(), ApiError> {
    match state.store.care_team(team_id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound),
    }
}

fn non_empty(text: &str, what: &str) -> Result<String, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        Err(ApiError::BadRequest(format!("{what} must not be empty")))
    } else {
        Ok(text.to_owned())
    }
}

#[derive(Debug, Serialize, ToSchema, o2o)]
#[from_owned(Organization)]
struct OrganizationItem {
    id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
struct NameRequest {
    name: String,
}

#[derive(Debug, Serialize, ToSchema, o2o)]
#[from_owned(CareTeam)]
struct TeamItem {
    id: Uuid,
    organization_id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
struct UserItem {
    id: Uuid,
    /// Absent for patient and caregiver accounts: operating accounts needs no knowledge of
    /// who the patients and their families are.
    email: Option<String>,
    /// Absent for patient and caregiver accounts.
    display_name: Option<String>,
    #[schema(value_type = RoleName)]
    role: String,
    /// Never shown: which record an account is, is the patient's to tell.
    patient_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    /// Set while the account is disabled: it cannot log in and has no working token.
    disabled_at: Option<DateTime<Utc>>,
}

impl UserItem {
    /// An account as the administrator who just made it sees it: all of it, once.
    fn created(u: User) -> Self {
        UserItem {
            id: u.id,
            email: Some(u.email),
            display_name: Some(u.display_name),
            role: u.role.as_str().to_owned(),
            patient_id: u.patient_id,
            created_at: u.created_at,
            disabled_at: u.disabled_at,
        }
    }

    /// An account in a list: staff are known to the operator; private people (patients,
    /// caregivers) are not.
    fn listed(u: User) -> Self {
        let staff = !matches!(u.role, Role::Patient | Role::Caregiver);
        UserItem {
            id: u.id,
            email: staff.then_some(u.email),
            display_name: staff.then_some(u.display_name),
            role: u.role.as_str().to_owned(),
            patient_id: None,
            created_at: u.created_at,
            disabled_at: u.disabled_at,
        }
    }
}

/// Every organization (administrators).
#[utoipa::path(get, path = "/v1/admin/organizations", tag = "admin",
    responses((status = 200, body = [OrganizationItem]), Unauthenticated, Forbidden))]
async fn organizations(
    State(state): State<AppState>,
    _: Administrator,
) -> Result<Json<Vec<OrganizationItem>>, ApiError> {
    Ok(json_list(
        state.store.list_organizations().await?,
        OrganizationItem::from,
    ))
}

/// Create an organization (a clinic).
#[utoipa::path(post, path = "/v1/admin/organizations", tag = "admin", request_body = NameRequest,
    responses((status = 201, body = OrganizationItem), BadRequest, Unauthenticated, Forbidden))]
async fn create_organization(
    State(state): State<AppState>,
    _: Administrator,
    Json(body): Json<NameRequest>,
) -> Result<(StatusCode, Json<OrganizationItem>), ApiError> {
    let name = non_empty(&body.name, "name")?;
    let organization = state.store.create_organization(&name).await?;
    Ok((StatusCode::CREATED, Json(organization.into())))
}

/// The care teams of an organization.
#[utoipa::path(get, path = "/v1/admin/organizations/{organization_id}/teams", tag = "admin",
    responses((status = 200, body = [TeamItem]), Unauthenticated, Forbidden, NotFound))]
async fn teams(
    State(state): State<AppState>,
    _: Administrator,
    Path(organization_id): Path<Uuid>,
) -> Result<Json<Vec<TeamItem>>, ApiError> {
    require_organization(&state, organization_id).await?;
    Ok(json_list(
        state.store.care_teams_of(organization_id).await?,
        TeamItem::from,
    ))
}

/// Create a care team in an organization.
#[utoipa::path(post, path = "/v1/admin/organizations/{organization_id}/teams", tag = "admin",
    request_body = NameRequest,
    responses((status = 201, body = TeamItem), BadRequest, Unauthenticated, Forbidden, NotFound))]
async fn create_team(
    State(state): State<AppState>,
    _: Administrator,
    Path(organization_id): Path<Uuid>,
    Json(body): Json<NameRequest>,
) -> Result<(StatusCode, Json<TeamItem>), ApiError> {
    let name = non_empty(&body.name, "name")?;
    require_organization(&state, organization_id).await?;
    let team = state.store.create_care_team(organization_id, &name).await?;
    Ok((StatusCode::CREATED, Json(team.into())))
}

/// The members of a care team.
#[utoipa::path(get, path = "/v1/admin/teams/{team_id}/members", tag = "admin",
    responses((status = 200, body = [UserItem]), Unauthenticated, Forbidden, NotFound))]
async fn members(
    State(state): State<AppState>,
    _: Administrator,
    Path(team_id): Path<Uuid>,
) -> Result<Json<Vec<UserItem>>, ApiError> {
    let members = state.store.team_members(team_id).await?;
    Ok(json_list(
        members.ok_or(ApiError::NotFound)?,
        UserItem::listed,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
struct MemberRequest {
    user_id: Uuid,
}

/// Add a clinician to a care team: grants to the team apply to them from their next request,
/// and every patient whose active grant names the team (or its organization) finds the change
/// in their access log, with who made it.
#[utoipa::path(post, path = "/v1/admin/teams/{team_id}/members", tag = "admin",
    request_body = MemberRequest,
    responses((status = 204, description = "Added"), BadRequest, Unauthenticated, Forbidden,
        NotFound))]
async fn add_member(
    State(state): State<AppState>,
    Administrator(principal): Administrator,
    Path(team_id): Path<Uuid>,
    Json(body): Json<MemberRequest>,
) -> Result<StatusCode, ApiError> {
    require_team(&state, team_id).await?;
    let user = state
        .store
        .user(body.user_id)
        .await?
        .ok_or_else(|| ApiError::BadRequest("no such user".into()))?;
    if user.role != Role::Clinician {
        return Err(ApiError::BadRequest(
            "care teams are made of clinicians".into(),
        ));
    }
    state
        .store
        .add_team_member_by(team_id, user.id, Some(principal.user_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a member from a care team: grants to the team stop applying to them at once (the
/// change is in the affected patients' access logs).
#[utoipa::path(delete, path = "/v1/admin/teams/{team_id}/members/{user_id}", tag = "admin",
    responses((status = 204, description = "Removed"), Unauthenticated, Forbidden, NotFound))]
async fn remove_member(
    State(state): State<AppState>,
    Administrator(principal): Administrator,
    Path((team_id, user_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    if state
        .store
        .remove_team_member_by(team_id, user_id, Some(principal.user_id))
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// Every user account.
#[utoipa::path(get, path = "/v1/admin/users", tag = "admin",
    responses((status = 200, body = [UserItem]), Unauthenticated, Forbidden))]
async fn users(
    State(state): State<AppState>,
    _: Administrator,
) -> Result<Json<Vec<UserItem>>, ApiError> {
    Ok(json_list(state.store.list_users().await?, UserItem::listed))
}

#[derive(Debug, Deserialize, ToSchema)]
struct CreateUserRequest {
    email: String,
    display_name: String,
    #[schema(value_type = RoleName)]
    role: String,
    /// At least 12 characters and not easy to guess; without it a password is generated and
    /// returned once.
    password: Option<String>,
    /// For a patient: their record's IANA time zone (a new record is created). Default UTC.
    time_zone: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct CreatedUser {
    user: UserItem,
    /// The generated password, shown once; absent when one was given.
    generated_password: Option<String>,
}

/// Create a user account. A patient account comes with its own new patient record.
#[utoipa::path(post, path = "/v1/admin/users", tag = "admin", request_body = CreateUserRequest,
    responses((status = 201, body = CreatedUser), BadRequest, Unauthenticated, Forbidden))]
async fn create_user(
    State(state): State<AppState>,
    _: Administrator,
    Json(body): Json<CreateUserRequest>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    let role = parse_name(&body.role, "role", Role::parse)?;
    let email = non_empty(&body.email, "email")?;
    if !email.contains('@') {
        return Err(ApiError::BadRequest(
            "email must be an e-mail address".into(),
        ));
    }
    if state.store.user_by_email(&email).await?.is_some() {
        return Err(ApiError::BadRequest(
            "an account with that e-mail exists".into(),
        ));
    }
    let display_name = non_empty(&body.display_name, "display_name")?;
    let (password, generated_password) = match body.password {
        Some(p) => {
            check_password(&p, &[&email, &display_name])
                .map_err(|weak| ApiError::BadRequest(weak.to_string()))?;
            (p, None)
        }
        None => {
            let generated = random_secret(20);
            (generated.clone(), Some(generated))
        }
    };
    let time_zone = body.time_zone.as_deref().unwrap_or("UTC");
    if role == Role::Patient {
        parse_time_zone(time_zone).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    } else if body.time_zone.is_some() {
        return Err(ApiError::BadRequest(
            "time_zone is for patient accounts only".into(),
        ));
    }
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let patient_id = if role == Role::Patient {
        let patient = state
            .store
            .create_patient(&NewPatient {
                display_name: display_name.clone(),
                time_zone: time_zone.to_owned(),
            })
            .await?;
        Some(patient.id)
    } else {
        None
    };
    let user = state
        .store
        .create_user(&NewUser {
            email,
            display_name,
            role,
            password_hash: Some(hash),
            patient_id,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user: UserItem::created(user),
            generated_password,
        }),
    ))
}

/// The account as a list shows it after disabling or enabling it; 404 if there was none.
async fn account_after_change(
    state: &AppState,
    user_id: Uuid,
    changed: bool,
) -> Result<Json<UserItem>, ApiError> {
    if !changed {
        return Err(ApiError::NotFound);
    }
    let user = state.store.user(user_id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(UserItem::listed(user)))
}

/// Disable an account (off-boarding): it cannot log in, and every session and API token of it
/// is revoked at once. An administrator cannot disable their own account.
#[utoipa::path(post, path = "/v1/admin/users/{user_id}/disable", tag = "admin",
    responses((status = 200, body = UserItem), Unauthenticated, Forbidden, NotFound, Conflict))]
async fn disable_user(
    State(state): State<AppState>,
    Administrator(principal): Administrator,
    ClientAddress(address): ClientAddress,
    Path(user_id): Path<Uuid>,
) -> Result<Json<UserItem>, ApiError> {
    if user_id == principal.user_id {
        return Err(ApiError::Conflict(
            "an administrator cannot disable their own account".into(),
        ));
    }
    let changed = state
        .store
        .disable_user(user_id, Some(principal.user_id), address)
        .await?;
    account_after_change(&state, user_id, changed).await
}

/// Enable a disabled account again: it can log in; the tokens revoked when it was disabled
/// stay revoked.
#[utoipa::path(post, path = "/v1/admin/users/{user_id}/enable", tag = "admin",
    responses((status = 200, body = UserItem), Unauthenticated, Forbidden, NotFound))]
async fn enable_user(
    State(state): State<AppState>,
    Administrator(principal): Administrator,
    ClientAddress(address): ClientAddress,
    Path(user_id): Path<Uuid>,
) -> Result<Json<UserItem>, ApiError> {
    let changed = state
        .store
        .enable_user(user_id, Some(principal.user_id), address)
        .await?;
    account_after_change(&state, user_id, changed).await
}

#[derive(Debug, Serialize, ToSchema)]
struct TokensRevoked {
    /// Sessions and API tokens that were active and now are not.
    revoked: u64,
}

/// Revoke every session and API token of an account at once (a lost laptop, a leaked token,
/// off-boarding); the account can still log in unless it is also disabled.
#[utoipa::path(delete, path = "/v1/admin/users/{user_id}/tokens", tag = "admin",
    responses((status = 200, body = TokensRevoked), Unauthenticated, Forbidden, NotFound))]
async fn revoke_user_tokens(
    State(state): State<AppState>,
    Administrator(principal): Administrator,
    ClientAddress(address): ClientAddress,
    Path(user_id): Path<Uuid>,
) -> Result<Json<TokensRevoked>, ApiError> {
    state.store.user(user_id).await?.ok_or(ApiError::NotFound)?;
    let revoked = state
        .store
        .revoke_all_tokens(user_id, Some(principal.user_id), address)
        .await?;
    Ok(Json(TokensRevoked { revoked }))
}

/// Authentication events of every account (or of `user_id`), newest first: log-ins failed
/// and successful (with the e-mail given when it named no account), log-outs, tokens issued
/// and revoked, password changes, accounts disabled and enabled.
#[utoipa::path(get, path = "/v1/admin/authentication-events", tag = "admin", params(EventQuery),
    responses((status = 200, body = Page<AuthenticationEventItem>), BadRequest, Unauthenticated,
        Forbidden))]
async fn authentication_events(
    State(state): State<AppState>,
    _: Administrator,
    Query(query): Query<EventQuery>,
) -> Result<Json<Page<AuthenticationEventItem>>, ApiError> {
    Ok(Json(event_page(&state, query.user_id, &query).await?))
}

//! Care-team invitations: instead of a patient pasting a team's id, the clinic hands out a
//! short code (or the dashboard link that carries it). A team member creates it with a
//! suggestion of what to share; the patient (or their guardian) opens it, sees which team
//! and clinic asks, chooses what to share, and accepts: an ordinary grant to the team, made
//! and logged like any other. Codes are shown once and stored hashed.

use super::sharing::{GrantItem, grantee_name, parse_all};
use super::vocabulary::{AccessName, DataCategoryName, InvitationStateName, PurposeName};
use super::{TeamPath, TeamRequest};
use super::{actor, json_list, parse_name};
use crate::AppState;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::error::refusals::{BadRequest, Conflict, NotFound, Unauthenticated};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chronicle_domain::sharing::{
    Access, AccessAction, DataCategory, Grantee, Principal, Purpose, validate_new_grant,
};
use chronicle_storage::credentials::{canonical_invitation_code, invitation_code, secret_hash};
use chronicle_storage::invitations::{AcceptRefusal, Invitation, InvitationState, NewInvitation};
use chronicle_storage::sharing::GrantSpec;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// How long an invitation stays open unless the team says otherwise, and at most.
const DEFAULT_VALID_DAYS: i64 = 14;
const MAX_VALID_DAYS: i64 = 90;
/// How many patients one invitation may bring at most (a waiting-room poster, not a
/// registry).
const MAX_USES: i32 = 1000;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(my_care_teams))
        .routes(routes!(team_invitations, create_invitation))
        .routes(routes!(revoke_invitation))
        .routes(routes!(open_invitation))
        .routes(routes!(accept_invitation))
}

/// A care team the caller belongs to.
#[derive(Debug, Serialize, ToSchema)]
struct CareTeamItem {
    id: Uuid,
    name: String,
    organization_id: Uuid,
    organization_name: String,
}

/// The care teams the caller is a member of (a clinician's; empty for anyone else).
#[utoipa::path(get, path = "/v1/care-teams", tag = "invitations",
    responses((status = 200, body = [CareTeamItem]), Unauthenticated))]
async fn my_care_teams(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Vec<CareTeamItem>>, ApiError> {
    let mut teams = Vec::with_capacity(principal.care_teams.len());
    for id in &principal.care_teams {
        let Some(team) = state.store.care_team(*id).await? else {
            continue;
        };
        let organization_name = state
            .store
            .organization(team.organization_id)
            .await?
            .map(|o| o.name)
            .unwrap_or_default();
        teams.push(CareTeamItem {
            id: team.id,
            name: team.name,
            organization_id: team.organization_id,
            organization_name,
        });
    }
    teams.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(teams))
}

/// An invitation as its team sees it (never with its code, which is shown once).
#[derive(Debug, Serialize, ToSchema)]
struct InvitationItem {
    id: Uuid,
    team_id: Uuid,
    /// The team's own note (whom it was handed to); patients never see it.
    label: String,
    /// What the team suggests the patient shares.
    #[schema(value_type = Vec<DataCategoryName>)]
    categories: Vec<String>,
    #[schema(value_type = Vec<AccessName>)]
    access: Vec<String>,
    #[schema(value_type = PurposeName)]
    purpose: String,
    max_uses: i32,
    /// How many patients have accepted it.
    uses: i32,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    #[schema(value_type = InvitationStateName)]
    state: &'static str,
}

impl From<Invitation> for InvitationItem {
    fn from(i: Invitation) -> Self {
        InvitationItem {
            state: i.state(Utc::now()).as_str(),
            id: i.id,
            team_id: i.team_id,
            label: i.label,
            categories: i.categories.iter().map(|c| c.as_str().to_owned()).collect(),
            access: i.access.iter().map(|a| a.as_str().to_owned()).collect(),
            purpose: i.purpose.as_str().to_owned(),
            max_uses: i.max_uses,
            uses: i.uses,
            created_by: i.created_by,
            created_at: i.created_at,
            expires_at: i.expires_at,
            revoked_at: i.revoked_at,
        }
    }
}

/// A new invitation with its code, shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
struct CreatedInvitation {
    invitation: InvitationItem,
    /// What the patient types (`7K2Q-MX9D-40TZ`): any case, with or without dashes.
    code: String,
    /// The dashboard page that opens it, relative to the server's address.
    path: String,
}

#[derive(Debug, Deserialize, ToSchema)]
struct CreateInvitationRequest {
    /// A note for the team (whom it is handed to); never shown to the patient.
    #[serde(default)]
    label: String,
    /// Suggested categories (default glucose, blood pressure and device information).
    #[schema(value_type = Option<Vec<DataCategoryName>>)]
    categories: Option<Vec<String>>,
    /// Suggested access (default readings, trends and alerts).
    #[schema(value_type = Option<Vec<AccessName>>)]
    access: Option<Vec<String>>,
    /// Suggested purpose (default `care`).
    #[schema(value_type = Option<PurposeName>)]
    purpose: Option<String>,
    /// Days it can be accepted, 1–90 (default 14).
    valid_days: Option<i64>,
    /// How many patients may accept it, 1–1000 (default 1).
    max_uses: Option<i32>,
}

/// The team a caller names in the path, if they belong to it; otherwise no one learns
/// whether it exists.
pub(super) fn member_of(principal: &Principal, team_id: Uuid) -> Result<Uuid, ApiError> {
    if principal.care_teams.contains(&team_id) {
        Ok(team_id)
    } else {
        Err(ApiError::NotFound)
    }
}

/// The team's invitations, newest first (members of the team).
#[utoipa::path(get, path = "/v1/care-teams/{team_id}/invitations", tag = "invitations", params(TeamPath),
    responses((status = 200, body = [InvitationItem]), Unauthenticated, NotFound))]
async fn team_invitations(
    TeamRequest(state, principal, team_id): TeamRequest,
) -> Result<Json<Vec<InvitationItem>>, ApiError> {
    let team_id = member_of(&principal, team_id)?;
    Ok(json_list(
        state.store.team_invitations(team_id).await?,
        InvitationItem::from,
    ))
}

/// Invite a patient to share with the team (members of the team). The answer holds the code
/// once; hand it (or the link) to the patient.
#[utoipa::path(post, path = "/v1/care-teams/{team_id}/invitations", tag = "invitations", params(TeamPath),
    request_body = CreateInvitationRequest,
    responses((status = 201, body = CreatedInvitation), BadRequest, Unauthenticated, NotFound))]
async fn create_invitation(
    TeamRequest(state, principal, team_id): TeamRequest,
    Json(body): Json<CreateInvitationRequest>,
) -> Result<(StatusCode, Json<CreatedInvitation>), ApiError> {
    let team_id = member_of(&principal, team_id)?;
    let categories = match &body.categories {
        Some(c) => parse_all(c, "data category", DataCategory::parse)?,
        None => BTreeSet::from([
            DataCategory::Glucose,
            DataCategory::BloodPressure,
            DataCategory::DeviceInfo,
        ]),
    };
    let access = match &body.access {
        Some(a) => parse_all(a, "access", Access::parse)?,
        None => BTreeSet::from([
            Access::ViewReadings,
            Access::ViewTrends,
            Access::ReceiveAlerts,
        ]),
    };
    let purpose = parse_purpose(body.purpose.as_deref())?.unwrap_or(Purpose::Care);
    validate_new_grant(&categories, &access, None, Utc::now())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let valid_days = body.valid_days.unwrap_or(DEFAULT_VALID_DAYS);
    if !(1..=MAX_VALID_DAYS).contains(&valid_days) {
        return Err(ApiError::BadRequest(format!(
            "valid_days must be 1–{MAX_VALID_DAYS}"
        )));
    }
    let max_uses = body.max_uses.unwrap_or(1);
    if !(1..=MAX_USES).contains(&max_uses) {
        return Err(ApiError::BadRequest(format!(
            "max_uses must be 1–{MAX_USES}"
        )));
    }
    let label = body.label.trim().to_owned();
    if label.chars().count() > 200 {
        return Err(ApiError::BadRequest(
            "label must be at most 200 characters".into(),
        ));
    }
    let code = invitation_code();
    let canonical = canonical_invitation_code(&code)
        .ok_or_else(|| ApiError::Internal("a new invitation code is not canonical".into()))?;
    let invitation = state
        .store
        .create_invitation(
            &NewInvitation {
                team_id,
                created_by: principal.user_id,
                label,
                categories,
                access,
                purpose,
                max_uses,
                expires_at: Utc::now() + Duration::days(valid_days),
            },
            &secret_hash(&canonical),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedInvitation {
            invitation: invitation.into(),
            path: format!("/invitations/{code}"),
            code,
        }),
    ))
}

/// Revoke one of the team's invitations: nobody can accept it any more. Grants already
/// made stay; they are the patients' to revoke.
#[utoipa::path(delete, path = "/v1/care-teams/{team_id}/invitations/{invitation_id}",
    tag = "invitations",
    responses((status = 200, body = InvitationItem), Unauthenticated, NotFound))]
async fn revoke_invitation(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((team_id, invitation_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<InvitationItem>, ApiError> {
    let team_id = member_of(&principal, team_id)?;
    let invitation = state
        .store
        .revoke_invitation(team_id, invitation_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(invitation.into()))
}

/// An invitation as the patient opening it sees it: who asks, and what they suggest.
#[derive(Debug, Serialize, ToSchema)]
struct InvitationPreview {
    team_id: Uuid,
    team_name: String,
    organization_name: String,
    #[schema(value_type = Vec<DataCategoryName>)]
    categories: Vec<String>,
    #[schema(value_type = Vec<AccessName>)]
    access: Vec<String>,
    #[schema(value_type = PurposeName)]
    purpose: String,
    expires_at: DateTime<Utc>,
    #[schema(value_type = InvitationStateName)]
    state: &'static str,
}

/// The invitation a typed code names, in any state; unknown codes are 404.
async fn invitation_of(state: &AppState, code: &str) -> Result<Invitation, ApiError> {
    let canonical = canonical_invitation_code(code).ok_or(ApiError::NotFound)?;
    state
        .store
        .invitation_by_code(&secret_hash(&canonical))
        .await?
        .ok_or(ApiError::NotFound)
}

/// Open an invitation by its code (any signed-in user): which team and clinic asks, what
/// they suggest, and whether it can still be accepted.
#[utoipa::path(get, path = "/v1/invitations/{code}", tag = "invitations",
    responses((status = 200, body = InvitationPreview), Unauthenticated, NotFound))]
async fn open_invitation(
    State(state): State<AppState>,
    Authenticated(_principal): Authenticated,
    Path(code): Path<String>,
) -> Result<Json<InvitationPreview>, ApiError> {
    let i = invitation_of(&state, &code).await?;
    Ok(Json(InvitationPreview {
        state: i.state(Utc::now()).as_str(),
        team_id: i.team_id,
        team_name: i.team_name,
        organization_name: i.organization_name,
        categories: i.categories.iter().map(|c| c.as_str().to_owned()).collect(),
        access: i.access.iter().map(|a| a.as_str().to_owned()).collect(),
        purpose: i.purpose.as_str().to_owned(),
        expires_at: i.expires_at,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
struct AcceptInvitationRequest {
    /// The record to share from: the caller's own, or one they are guardian of.
    patient_id: Uuid,
    /// What to share (default: the team's suggestion).
    #[schema(value_type = Option<Vec<DataCategoryName>>)]
    categories: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<AccessName>>)]
    access: Option<Vec<String>>,
    #[schema(value_type = Option<PurposeName>)]
    purpose: Option<String>,
    /// Never reveal data measured before this instant.
    data_since: Option<DateTime<Utc>>,
    /// The grant allows nothing from this instant on.
    expires_at: Option<DateTime<Utc>>,
}

fn parse_purpose(text: Option<&str>) -> Result<Option<Purpose>, ApiError> {
    text.map(|p| parse_name(p, "purpose", Purpose::parse))
        .transpose()
}

/// Accept an invitation: the patient (or their guardian) shares with the inviting team what
/// they choose (by default what the team suggested). The grant is an ordinary grant, in the
/// patient's sharing settings and access log; a patient accepts one invitation once.
#[utoipa::path(post, path = "/v1/invitations/{code}/accept", tag = "invitations",
    request_body = AcceptInvitationRequest,
    responses((status = 201, body = GrantItem), BadRequest, Unauthenticated, NotFound, Conflict))]
async fn accept_invitation(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(code): Path<String>,
    Json(body): Json<AcceptInvitationRequest>,
) -> Result<(StatusCode, Json<GrantItem>), ApiError> {
    let invitation = invitation_of(&state, &code).await?;
    let categories = match &body.categories {
        Some(c) => parse_all(c, "data category", DataCategory::parse)?,
        None => invitation.categories.clone(),
    };
    let access = match &body.access {
        Some(a) => parse_all(a, "access", Access::parse)?,
        None => invitation.access.clone(),
    };
    let purpose = parse_purpose(body.purpose.as_deref())?.unwrap_or(invitation.purpose);
    validate_new_grant(&categories, &access, body.expires_at, Utc::now())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let actor = actor(
        &state,
        &principal,
        body.patient_id,
        AccessAction::CreateGrant,
    )
    .await?;
    let spec = GrantSpec {
        grantee: Grantee::CareTeam(invitation.team_id),
        categories,
        access,
        purpose,
        data_since: body.data_since,
        expires_at: body.expires_at,
    };
    let grant = match state
        .store
        .accept_invitation(&actor, &invitation, spec)
        .await?
    {
        Ok(grant) => grant,
        Err(AcceptRefusal::AlreadyAccepted) => {
            return Err(ApiError::Conflict(
                "this patient already accepted this invitation".into(),
            ));
        }
        Err(AcceptRefusal::NoLongerOpen) => {
            let why = match invitation.state(Utc::now()) {
                InvitationState::Expired => "the invitation has expired",
                InvitationState::Revoked => "the team has withdrawn the invitation",
                InvitationState::UsedUp | InvitationState::Open => {
                    "the invitation has been used up"
                }
            };
            return Err(ApiError::Conflict(why.into()));
        }
    };
    let name = grantee_name(&state, grant.grantee).await?;
    Ok((StatusCode::CREATED, Json(GrantItem::new(grant, name))))
}

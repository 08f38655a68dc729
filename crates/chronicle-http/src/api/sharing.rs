//! The patient's sharing: grants, the access log, and emergency access.

use super::vocabulary::{AccessActionName, AccessName, DataCategoryName, PurposeName};
use super::{Page, PatientPath, PatientRequest, actor, numbered_cursor, page_limit, parse_name};
use crate::AppState;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::error::refusals::{BadRequest, Forbidden, NotFound, Unauthenticated};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chronicle_domain::sharing::AccessAction;
use chronicle_domain::sharing::{
    Access, DataCategory, Grant, Grantee, Purpose, Role, validate_new_grant,
};
use chronicle_storage::gate::SHARE_LINK_ACTOR;
use chronicle_storage::sharing::AccessLogEntry;
use chronicle_storage::sharing::GrantSpec;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// How long an emergency access stays open.
const EMERGENCY_HOURS: i64 = 4;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(grants, create_grant))
        .routes(routes!(revoke_grant))
        .routes(routes!(access_log))
        .routes(routes!(emergency_accesses, open_emergency_access))
}

/// What kind of grantee a grant names: a person, a care team or an organization.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum GranteeType {
    User,
    CareTeam,
    Organization,
    /// A share link (made through `/share-links`, not here).
    ShareLink,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
struct GranteeBody {
    // Read as text so an unknown type is refused in the API's own words (see `create_grant`).
    #[serde(rename = "type")]
    #[schema(value_type = GranteeType)]
    kind: String,
    id: Uuid,
}

/// Who a grant names, with the name the patient knows them by.
#[derive(Debug, Serialize, ToSchema)]
struct GranteeItem {
    #[serde(rename = "type")]
    kind: GranteeType,
    id: Uuid,
    /// The person's, care team's or organization's name; absent if it no longer exists.
    name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct GrantItem {
    id: Uuid,
    grantee: GranteeItem,
    #[schema(value_type = Vec<DataCategoryName>)]
    categories: Vec<String>,
    #[schema(value_type = Vec<AccessName>)]
    access: Vec<String>,
    #[schema(value_type = PurposeName)]
    purpose: String,
    data_since: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    /// Whether the grant allows anything now.
    active: bool,
}

impl GrantItem {
    pub(super) fn new(g: Grant, grantee_name: Option<String>) -> Self {
        let (kind, id) = match g.grantee {
            Grantee::User(id) => (GranteeType::User, id),
            Grantee::CareTeam(id) => (GranteeType::CareTeam, id),
            Grantee::Organization(id) => (GranteeType::Organization, id),
            Grantee::ShareLink(id) => (GranteeType::ShareLink, id),
        };
        GrantItem {
            active: g.is_active(Utc::now()),
            id: g.id,
            grantee: GranteeItem {
                kind,
                id,
                name: grantee_name,
            },
            categories: g.categories.iter().map(|c| c.as_str().to_owned()).collect(),
            access: g.access.iter().map(|a| a.as_str().to_owned()).collect(),
            purpose: g.purpose.as_str().to_owned(),
            data_since: g.data_since,
            expires_at: g.expires_at,
            revoked_at: g.revoked_at,
            created_at: g.created_at,
        }
    }
}

/// The name a patient knows a grantee by. Only the patient's own settings (behind
/// [`actor`]) call this, for grantees the patient named.
pub(super) async fn grantee_name(
    state: &AppState,
    grantee: Grantee,
) -> Result<Option<String>, ApiError> {
    Ok(match grantee {
        Grantee::User(id) => state.store.user(id).await?.map(|u| u.display_name),
        Grantee::CareTeam(id) => state.store.care_team(id).await?.map(|t| t.name),
        Grantee::Organization(id) => state.store.organization(id).await?.map(|o| o.name),
        Grantee::ShareLink(id) => state.store.share_link_name(id).await?,
    })
}

/// Grants as the API shows them, each grantee's name looked up once.
async fn grant_items(state: &AppState, grants: Vec<Grant>) -> Result<Vec<GrantItem>, ApiError> {
    let mut names: HashMap<Grantee, Option<String>> = HashMap::new();
    let mut items = Vec::with_capacity(grants.len());
    for grant in grants {
        let name = match names.get(&grant.grantee) {
            Some(name) => name.clone(),
            None => {
                let name = grantee_name(state, grant.grantee).await?;
                names.insert(grant.grantee, name.clone());
                name
            }
        };
        items.push(GrantItem::new(grant, name));
    }
    Ok(items)
}

/// The patient's grants, in any state (the patient or their guardian).
#[utoipa::path(get, path = "/v1/patients/{patient_id}/grants", tag = "sharing", params(PatientPath),
    responses((status = 200, body = [GrantItem]), Unauthenticated, NotFound))]
async fn grants(
    PatientRequest(state, principal, patient_id): PatientRequest,
) -> Result<Json<Vec<GrantItem>>, ApiError> {
    let actor = actor(&state, &principal, patient_id, AccessAction::ReadGrants).await?;
    let grants = state.store.grants_of(&actor).await?;
    Ok(Json(grant_items(&state, grants).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
struct CreateGrantRequest {
    grantee: GranteeBody,
    // Read as text, like the grantee's type, and parsed in `create_grant`.
    #[schema(value_type = Vec<DataCategoryName>)]
    categories: Vec<String>,
    #[schema(value_type = Vec<AccessName>)]
    access: Vec<String>,
    #[schema(value_type = PurposeName)]
    purpose: String,
    /// Never reveal data measured before this instant.
    data_since: Option<DateTime<Utc>>,
    /// The grant allows nothing from this instant on.
    expires_at: Option<DateTime<Utc>>,
}

pub(super) fn parse_all<T>(
    values: &[String],
    what: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<BTreeSet<T>, ApiError>
where
    T: Ord,
{
    values.iter().map(|v| parse_name(v, what, parse)).collect()
}

/// Share: the patient (or their guardian) grants access.
#[utoipa::path(post, path = "/v1/patients/{patient_id}/grants", tag = "sharing", params(PatientPath),
    request_body = CreateGrantRequest,
    responses((status = 201, body = GrantItem), BadRequest, Unauthenticated, NotFound))]
async fn create_grant(
    PatientRequest(state, principal, patient_id): PatientRequest,
    Json(body): Json<CreateGrantRequest>,
) -> Result<(StatusCode, Json<GrantItem>), ApiError> {
    let grantee = match body.grantee.kind.as_str() {
        "user" => Grantee::User(body.grantee.id),
        "care_team" => Grantee::CareTeam(body.grantee.id),
        "organization" => Grantee::Organization(body.grantee.id),
        "share_link" => {
            return Err(ApiError::BadRequest(
                "share links are made with POST /v1/patients/{patient_id}/share-links".into(),
            ));
        }
        other => {
            return Err(ApiError::BadRequest(format!(
                "unknown grantee type {other:?}"
            )));
        }
    };
    let categories = parse_all(&body.categories, "data category", DataCategory::parse)?;
    let access = parse_all(&body.access, "access", Access::parse)?;
    let purpose = parse_name(&body.purpose, "purpose", Purpose::parse)?;
    validate_new_grant(&categories, &access, body.expires_at, Utc::now())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let actor = actor(&state, &principal, patient_id, AccessAction::CreateGrant).await?;
    let spec = GrantSpec {
        grantee,
        categories,
        access,
        purpose,
        data_since: body.data_since,
        expires_at: body.expires_at,
    };
    let grant = state.store.grant_as(&actor, spec).await?;
    let name = grantee_name(&state, grant.grantee).await?;
    Ok((StatusCode::CREATED, Json(GrantItem::new(grant, name))))
}

/// Revoke a grant; it allows nothing from the next request on.
#[utoipa::path(delete, path = "/v1/patients/{patient_id}/grants/{grant_id}", tag = "sharing",
    responses((status = 200, body = GrantItem), Unauthenticated, NotFound))]
async fn revoke_grant(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((patient_id, grant_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<GrantItem>, ApiError> {
    let actor = actor(&state, &principal, patient_id, AccessAction::RevokeGrant).await?;
    let grant = state
        .store
        .revoke_grant_as(&actor, grant_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let name = grantee_name(&state, grant.grantee).await?;
    Ok(Json(GrantItem::new(grant, name)))
}

#[derive(Debug, Deserialize, IntoParams)]
struct LogQuery {
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Entries per page, 1–5000 (default 100).
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct AccessLogItem {
    at: DateTime<Utc>,
    actor_id: Option<Uuid>,
    /// The actor's display name (a share link's name), so the patient reads who it was.
    actor_name: Option<String>,
    actor_role: Option<String>,
    #[schema(value_type = AccessActionName)]
    action: AccessAction,
    #[schema(value_type = Option<DataCategoryName>)]
    category: Option<DataCategory>,
    #[schema(value_type = Option<PurposeName>)]
    purpose: Option<Purpose>,
    grant_id: Option<Uuid>,
    /// Set when the access was an emergency access.
    emergency_id: Option<Uuid>,
    /// `allowed` or `denied`.
    outcome: String,
    reason: Option<String>,
}

impl AccessLogItem {
    fn new(e: AccessLogEntry, actor_name: Option<String>) -> Self {
        let attempt = e.attempt;
        AccessLogItem {
            at: e.at,
            actor_id: attempt.actor_id,
            actor_name,
            actor_role: attempt.actor_role,
            action: attempt.action,
            category: attempt.category,
            purpose: attempt.purpose,
            grant_id: attempt.grant_id,
            emergency_id: attempt.emergency_id,
            outcome: if attempt.allowed { "allowed" } else { "denied" }.to_owned(),
            reason: attempt.reason,
        }
    }
}

/// Who read (or tried to read) the patient's data, newest first.
#[utoipa::path(get, path = "/v1/patients/{patient_id}/access-log", tag = "sharing",
    params(LogQuery, PatientPath),
    responses((status = 200, body = Page<AccessLogItem>), BadRequest, Unauthenticated, NotFound))]
async fn access_log(
    PatientRequest(state, principal, patient_id): PatientRequest,
    Query(query): Query<LogQuery>,
) -> Result<Json<Page<AccessLogItem>>, ApiError> {
    let limit = page_limit(query.limit, 100)?;
    let before = numbered_cursor(query.cursor.as_deref())?;
    let actor = actor(&state, &principal, patient_id, AccessAction::ReadAccessLog).await?;
    let entries = state.store.access_log_of(&actor, before, limit).await?;
    let next_cursor = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id.to_string()))
        .flatten();
    // A page names few distinct people: look each up once.
    let mut names: HashMap<Uuid, Option<String>> = HashMap::new();
    let mut items = Vec::with_capacity(entries.len());
    for entry in entries {
        let name = match entry.attempt.actor_id {
            None => None,
            Some(id) => match names.get(&id) {
                Some(name) => name.clone(),
                None => {
                    let name = if entry.attempt.actor_role.as_deref() == Some(SHARE_LINK_ACTOR) {
                        state.store.share_link_name(id).await?
                    } else {
                        state.store.user(id).await?.map(|u| u.display_name)
                    };
                    names.insert(id, name.clone());
                    name
                }
            },
        };
        items.push(AccessLogItem::new(entry, name));
    }
    Ok(Json(Page { items, next_cursor }))
}

#[derive(Debug, Deserialize, ToSchema)]
struct EmergencyRequest {
    /// Why the record must be opened without a grant (10 to 500 characters); shown to the
    /// patient.
    reason: String,
}

/// The bounds of an emergency reason, in characters: enough to say why, short enough to read.
const EMERGENCY_REASON_CHARS: std::ops::RangeInclusive<usize> = 10..=500;

#[derive(Debug, Serialize, ToSchema)]
struct EmergencyItem {
    id: Uuid,
    patient_id: Uuid,
    reason: String,
    opened_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
struct EmergencyAccessSeen {
    id: Uuid,
    clinician_id: Uuid,
    clinician_name: String,
    reason: String,
    opened_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    /// Whether it still opens the record now.
    open: bool,
}

/// Every emergency access to the record, newest first, with who opened it and why: for the
/// patient and their guardians (the dashboard shows an open one on the patient's page).
#[utoipa::path(get, path = "/v1/patients/{patient_id}/emergency-access", tag = "sharing", params(PatientPath),
    responses((status = 200, body = [EmergencyAccessSeen]), Unauthenticated, NotFound))]
async fn emergency_accesses(
    PatientRequest(state, principal, patient_id): PatientRequest,
) -> Result<Json<Vec<EmergencyAccessSeen>>, ApiError> {
    let actor = actor(
        &state,
        &principal,
        patient_id,
        AccessAction::ReadEmergencyAccesses,
    )
    .await?;
    let now = Utc::now();
    Ok(Json(
        state
            .store
            .emergency_accesses_of(&actor)
            .await?
            .into_iter()
            .map(|(e, clinician_name)| EmergencyAccessSeen {
                id: e.id,
                clinician_id: e.clinician_id,
                clinician_name,
                reason: e.reason,
                opened_at: e.opened_at,
                open: e.opened_at <= now && now < e.expires_at,
                expires_at: e.expires_at,
            })
            .collect(),
    ))
}

/// Open a patient's record without a grant, stating why: clinicians only, and only with a care
/// relationship (a care grant of the patient, past or present, names them, their team or their
/// organization; otherwise 404, as for an unknown patient). Time-limited, one at a time, at most
/// three in seven days per patient, logged and shown to the patient.
#[utoipa::path(post, path = "/v1/patients/{patient_id}/emergency-access", tag = "sharing", params(PatientPath),
    request_body = EmergencyRequest,
    responses((status = 201, body = EmergencyItem), BadRequest, Unauthenticated, Forbidden,
        NotFound))]
async fn open_emergency_access(
    PatientRequest(state, principal, patient_id): PatientRequest,
    Json(body): Json<EmergencyRequest>,
) -> Result<(StatusCode, Json<EmergencyItem>), ApiError> {
    if principal.role != Some(Role::Clinician) {
        return Err(ApiError::Forbidden);
    }
    let reason = body.reason.trim();
    if !EMERGENCY_REASON_CHARS.contains(&reason.chars().count()) {
        return Err(ApiError::BadRequest(format!(
            "state the reason in {} to {} characters",
            EMERGENCY_REASON_CHARS.start(),
            EMERGENCY_REASON_CHARS.end()
        )));
    }
    let opened = state
        .store
        .open_emergency_access_as(
            &principal,
            patient_id,
            reason,
            Utc::now() + Duration::hours(EMERGENCY_HOURS),
        )
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((
        StatusCode::CREATED,
        Json(EmergencyItem {
            id: opened.id,
            patient_id: opened.patient_id,
            reason: opened.reason,
            opened_at: opened.opened_at,
            expires_at: opened.expires_at,
        }),
    ))
}

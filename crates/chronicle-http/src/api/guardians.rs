//! Guardians: people a patient names to act for them (manage grants and devices, read the
//! access log), e.g. a parent. Only the patient names or removes a guardian.

use super::{PatientPath, PatientRequest, actor, json_list};
use crate::AppState;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::error::refusals::{BadRequest, Forbidden, NotFound, Unauthenticated};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chronicle_domain::sharing::AccessAction;
use chronicle_domain::sharing::{Basis, Role};
use chronicle_storage::identity::User;
use o2o::o2o;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(guardians, name_guardian))
        .routes(routes!(remove_guardian))
}

#[derive(Debug, Serialize, ToSchema, o2o)]
#[from_owned(User)]
struct GuardianItem {
    #[from(id)]
    user_id: Uuid,
    display_name: String,
    email: String,
}

/// The patient's guardians (the patient or a guardian).
#[utoipa::path(get, path = "/v1/patients/{patient_id}/guardians", tag = "sharing", params(PatientPath),
    responses((status = 200, body = [GuardianItem]), Unauthenticated, NotFound))]
async fn guardians(
    PatientRequest(state, principal, patient_id): PatientRequest,
) -> Result<Json<Vec<GuardianItem>>, ApiError> {
    let actor = actor(&state, &principal, patient_id, AccessAction::ReadGuardians).await?;
    Ok(json_list(
        state.store.guardians_as(&actor).await?,
        GuardianItem::from,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
struct NameGuardianRequest {
    /// The log-in e-mail of the person to name.
    email: String,
}

/// Name a guardian (the patient only): they then act for the patient.
#[utoipa::path(post, path = "/v1/patients/{patient_id}/guardians", tag = "sharing", params(PatientPath),
    request_body = NameGuardianRequest,
    responses((status = 201, body = GuardianItem), BadRequest, Unauthenticated, Forbidden,
        NotFound))]
async fn name_guardian(
    PatientRequest(state, principal, patient_id): PatientRequest,
    Json(body): Json<NameGuardianRequest>,
) -> Result<(StatusCode, Json<GuardianItem>), ApiError> {
    let actor = actor(&state, &principal, patient_id, AccessAction::NameGuardian).await?;
    if actor.basis() != Basis::Own {
        return Err(ApiError::Forbidden);
    }
    let user = state
        .store
        .user_by_email(body.email.trim())
        .await?
        .filter(|u| u.role != Role::Admin && u.id != principal.user_id)
        .ok_or_else(|| {
            ApiError::BadRequest("no account with that e-mail can be named guardian".into())
        })?;
    state.store.name_guardian_as(&actor, user.id).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Remove a guardian (the patient only); they lose access at once.
#[utoipa::path(delete, path = "/v1/patients/{patient_id}/guardians/{user_id}", tag = "sharing",
    responses((status = 204, description = "Removed"), Unauthenticated, Forbidden, NotFound))]
async fn remove_guardian(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((patient_id, user_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let actor = actor(&state, &principal, patient_id, AccessAction::RemoveGuardian).await?;
    if actor.basis() != Basis::Own {
        return Err(ApiError::Forbidden);
    }
    if state.store.remove_guardian_as(&actor, user_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

//! The patients a caller may see, and erasure of a patient's record.

use super::actor;
use super::vocabulary::{AccessName, DataCategoryName, PurposeName};
use super::{PatientPath, PatientRequest};
use crate::AppState;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::error::refusals::{NotFound, Unauthenticated};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chronicle_domain::sharing::AccessAction;
use chronicle_storage::registry::VisiblePatient;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(patients))
        .routes(routes!(erase))
}

#[derive(Debug, Serialize, ToSchema)]
struct PatientListItem {
    /// The record's id; for research access, the study's pseudonym.
    patient_id: Uuid,
    /// Absent for research access, which is pseudonymous.
    display_name: Option<String>,
    /// The patient's IANA time zone (their days and times of day); absent for research access.
    time_zone: Option<String>,
    /// `own`, `guardian` or `grant`.
    basis: String,
    /// For `grant`: what the patient shares with the caller, one entry per grant.
    shared: Vec<SharedItem>,
}

/// What one of the patient's grants shares with the caller.
#[derive(Debug, Serialize, ToSchema)]
struct SharedItem {
    #[schema(value_type = Vec<DataCategoryName>)]
    categories: Vec<String>,
    #[schema(value_type = Vec<AccessName>)]
    access: Vec<String>,
    #[schema(value_type = PurposeName)]
    purpose: String,
    /// Data measured before this is never shown.
    data_since: Option<DateTime<Utc>>,
    /// The grant allows nothing from this instant on.
    expires_at: Option<DateTime<Utc>>,
}

/// The patients the caller may see, with what each shares with the caller. Clinical
/// summaries (latest readings, time in range) are in the panel.
#[utoipa::path(get, path = "/v1/patients", tag = "patients",
    responses((status = 200, body = [PatientListItem]), Unauthenticated))]
async fn patients(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Vec<PatientListItem>>, ApiError> {
    let visible = state.store.visible_patients(&principal).await?;
    Ok(Json(
        visible
            .into_iter()
            .map(
                |VisiblePatient {
                     patient_id,
                     display_name,
                     time_zone,
                     basis,
                     shared,
                     ..
                 }| PatientListItem {
                    patient_id,
                    display_name,
                    time_zone,
                    basis: basis.to_owned(),
                    shared: shared
                        .into_iter()
                        .map(|g| SharedItem {
                            categories: g
                                .categories
                                .iter()
                                .map(|c| c.as_str().to_owned())
                                .collect(),
                            access: g.access.iter().map(|a| a.as_str().to_owned()).collect(),
                            purpose: g.purpose.as_str().to_owned(),
                            data_since: g.data_since,
                            expires_at: g.expires_at,
                        })
                        .collect(),
                },
            )
            .collect(),
    ))
}

/// Erase everything held about the patient (the patient or their guardian). Their accounts
/// are disabled; the access log is kept.
#[utoipa::path(delete, path = "/v1/patients/{patient_id}", tag = "export", params(PatientPath),
    responses((status = 204, description = "Erased"), Unauthenticated, NotFound))]
async fn erase(
    PatientRequest(state, principal, patient_id): PatientRequest,
) -> Result<StatusCode, ApiError> {
    let actor = actor(&state, &principal, patient_id, AccessAction::Erase).await?;
    state.store.erase(&actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

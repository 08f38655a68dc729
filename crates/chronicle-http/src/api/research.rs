//! De-identified readings for research studies.

use super::refusal;
use crate::AppState;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::error::refusals::{Forbidden, NotFound, Unauthenticated};
use axum::Json;
use axum::extract::{Path, State};
use chronicle_domain::sharing::AccessAction;
use chronicle_domain::sharing::{Access, AccessRequest, DataCategory};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(research_glucose))
}

#[derive(Debug, Serialize, ToSchema)]
struct ResearchGlucosePoint {
    /// Moved back by the study's secret shift (never a whole number of days), the same for
    /// all of this patient's readings, and rounded down to the minute.
    shifted_at: DateTime<Utc>,
    value_mg_dl: f64,
    source: String,
    flag: Option<String>,
    /// A pseudonym of the device within the study.
    device: String,
}

/// De-identified glucose readings for research: `patient_id` is the study's pseudonym from
/// `GET /v1/patients`; times are shifted and rounded to the minute, the most recent days are
/// withheld, identifiers replaced, nothing names the patient. Anything but one of the study's
/// pseudonyms is 404.
#[utoipa::path(get, path = "/v1/research/patients/{patient_id}/glucose", tag = "research",
    params(("patient_id" = Uuid, Path, description = "the study pseudonym")),
    responses((status = 200, body = [ResearchGlucosePoint]), Unauthenticated, Forbidden, NotFound))]
async fn research_glucose(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(pseudonym): Path<Uuid>,
) -> Result<Json<Vec<ResearchGlucosePoint>>, ApiError> {
    let subject = state
        .store
        .research_subject(&principal, pseudonym)
        .await?
        .ok_or(ApiError::NotFound)?;
    let request = AccessRequest {
        patient_id: subject.patient_id,
        category: DataCategory::Glucose,
        access: Access::ViewReadings,
        at: Utc::now(),
        identified: false,
    };
    // Decided under the study's own grant, so pseudonyms and shifts are the study's.
    let permit = state
        .store
        .authorize_under_grant(
            &principal,
            request,
            subject.study,
            AccessAction::ReadResearchGlucose,
        )
        .await?
        .map_err(refusal)?;
    if !permit.allowance().deidentified {
        // Only research grants are served here; care reads use the clinical endpoints.
        return Err(ApiError::NotFound);
    }
    let rows = state
        .store
        .research_glucose_readings(&permit, (state.research_holdback, Utc::now()), 100_000)
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| ResearchGlucosePoint {
                shifted_at: r.measured_at,
                value_mg_dl: r.value_mg_dl,
                source: r.source,
                flag: r.flag,
                device: r.device_id,
            })
            .collect(),
    ))
}

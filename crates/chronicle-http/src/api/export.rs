//! Everything held about a patient, through the gate: complete in Chronicle's own JSON, the
//! readings and devices as FHIR or CSV.

use super::{PatientPath, PatientRequest, actor, refusal};
use crate::AppState;
use crate::error::ApiError;
use crate::error::refusals::{Forbidden, NotFound, Unauthenticated};
use axum::response::IntoResponse;
use chronicle_domain::sharing::AccessAction;
use chronicle_domain::sharing::{Access, AccessRequest, DataCategory, DenyReason, Principal};
use chrono::Utc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export_fhir))
        .routes(routes!(export_csv))
        .routes(routes!(export_json))
}

/// The version of the JSON export's shape, so a program reading exports can tell.
const JSON_EXPORT_FORMAT: &str = "chronicle-export/1";

/// The record to export: everything, for the patient or their guardian; for a grantee
/// holding `export` access, the categories their grants cover, within their windows. Each
/// category a grantee asks for is decided and logged by the gate.
async fn record_to_export(
    state: &AppState,
    principal: &Principal,
    patient_id: Uuid,
    action: AccessAction,
) -> Result<chronicle_storage::records::PatientRecord, ApiError> {
    if principal.patient_id == Some(patient_id) || principal.guardian_of.contains(&patient_id) {
        let actor = actor(state, principal, patient_id, action).await?;
        return Ok(state.store.everything_of(&actor).await?);
    }
    let mut permits = Vec::new();
    let mut refusals = Vec::new();
    for category in [
        DataCategory::Glucose,
        DataCategory::BloodPressure,
        DataCategory::Treatments,
        DataCategory::DeviceInfo,
    ] {
        let request = AccessRequest {
            patient_id,
            category,
            access: Access::Export,
            at: Utc::now(),
            identified: true,
        };
        match state.store.authorize(principal, request, action).await? {
            Ok(permit) => permits.push(permit),
            Err(reason) => refusals.push(reason),
        }
    }
    if permits.is_empty() {
        // 404 unless the caller holds something for this patient.
        let reason = refusals
            .into_iter()
            .find(|r| !matches!(r, DenyReason::NoGrant | DenyReason::NoPurpose))
            .unwrap_or(DenyReason::NoGrant);
        return Err(refusal(reason));
    }
    Ok(state.store.exported_record(&permits).await?)
}

/// Everything held about the patient as a FHIR R4 Bundle: for the patient or their guardian
/// all of it; for a grantee with `export` access, the categories and window granted.
#[utoipa::path(get, path = "/v1/patients/{patient_id}/export/fhir", tag = "export", params(PatientPath),
    responses((status = 200, description = "A FHIR R4 collection Bundle", content_type = "application/fhir+json"),
        Unauthenticated, Forbidden, NotFound))]
async fn export_fhir(
    PatientRequest(state, principal, patient_id): PatientRequest,
) -> Result<axum::response::Response, ApiError> {
    let record = record_to_export(&state, &principal, patient_id, AccessAction::ExportFhir).await?;
    let body = serde_json::to_vec(&crate::export::fhir_bundle(&record))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/fhir+json")],
        body,
    )
        .into_response())
}

/// Everything held about the patient in Chronicle's own JSON: for the patient or their
/// guardian the complete record — devices, readings, grants, alerts with their notes, targets
/// and their changes, and the access log; for a grantee with `export` access, the categories
/// and window granted (no grants, alerts, targets or log).
#[utoipa::path(get, path = "/v1/patients/{patient_id}/export/json", tag = "export", params(PatientPath),
    responses((status = 200, description = "The record: `format`, `exported_at` and every part held", content_type = "application/json"),
        Unauthenticated, Forbidden, NotFound))]
async fn export_json(
    PatientRequest(state, principal, patient_id): PatientRequest,
) -> Result<axum::response::Response, ApiError> {
    let record = record_to_export(&state, &principal, patient_id, AccessAction::ExportJson).await?;
    let mut body = serde_json::to_value(&record).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(fields) = body.as_object_mut() {
        fields.insert("format".into(), JSON_EXPORT_FORMAT.into());
        fields.insert("exported_at".into(), Utc::now().to_rfc3339().into());
    }
    Ok(axum::Json(body).into_response())
}

/// Every reading held about the patient as CSV: for the patient or their guardian all of it;
/// for a grantee with `export` access, the categories and window granted.
#[utoipa::path(get, path = "/v1/patients/{patient_id}/export/csv", tag = "export", params(PatientPath),
    responses((status = 200, description = "One row per reading", content_type = "text/csv"),
        Unauthenticated, Forbidden, NotFound))]
async fn export_csv(
    PatientRequest(state, principal, patient_id): PatientRequest,
) -> Result<axum::response::Response, ApiError> {
    let record = record_to_export(&state, &principal, patient_id, AccessAction::ExportCsv).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        crate::export::csv(&record),
    )
        .into_response())
}

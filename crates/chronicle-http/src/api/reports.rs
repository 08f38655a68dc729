//! Printable reports: the Ambulatory Glucose Profile as PDF, with the same permission as the
//! glucose trend (`view_trends`), logged as `read_glucose_report`, and the trend API's figures.

use super::trends::{TrendQuery, read_glucose_trend};
use super::{PatientPath, PatientRequest};
use crate::AppState;
use crate::agp_report::{ReportHeading, agp_pdf};
use crate::error::ApiError;
use crate::error::refusals::{BadRequest, Forbidden, NotFound, Unauthenticated};
use axum::extract::Query;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chronicle_domain::sharing::AccessAction;
use chrono::Utc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(agp_report))
}

/// The Ambulatory Glucose Profile report of a period as one printable A4 page (PDF): glucose
/// statistics and targets, time in ranges, the AGP percentile chart and daily profiles of the
/// last 14 days. The figures are the glucose trend's for the same query; daily curves are
/// drawn only for callers who may see individual readings.
#[utoipa::path(get, path = "/v1/patients/{patient_id}/reports/agp.pdf", tag = "trends",
    params(TrendQuery, PatientPath),
    responses((status = 200, description = "The AGP report", content_type = "application/pdf"),
        BadRequest, Unauthenticated, Forbidden, NotFound))]
async fn agp_report(
    PatientRequest(state, principal, patient_id): PatientRequest,
    Query(query): Query<TrendQuery>,
) -> Result<Response, ApiError> {
    let unit = query.unit()?;
    let read = read_glucose_trend(
        &state,
        &principal,
        patient_id,
        AccessAction::ReadGlucoseReport,
        query.days()?,
        query.agp_bin_minutes(),
    )
    .await?;
    let heading = ReportHeading {
        patient_id,
        unit,
        generated_at: Utc::now(),
    };
    // Laying out a page is CPU work: keep it off the async workers.
    let pdf = tokio::task::spawn_blocking(move || agp_pdf(&heading, &read))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let disposition = format!("inline; filename=\"agp-{patient_id}.pdf\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        pdf,
    )
        .into_response())
}

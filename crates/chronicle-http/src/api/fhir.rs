//! FHIR R4 reads of the HL7 FHIR CGM implementation guide 1.0.0: a patient's CGM summary for
//! any period (through the gate, as the glucose trend: `view_trends`, logged as
//! `read_cgm_summary`) and the server's CapabilityStatement. Resources: `crate::cgm_summary`.

use super::trends::{read_glucose_trend, trend_days};
use super::{PatientPath, PatientRequest};
use crate::AppState;
use crate::cgm_summary::{capability_statement, cgm_summary_bundle};
use crate::error::ApiError;
use crate::error::refusals::{BadRequest, Forbidden, NotFound, Unauthenticated};
use axum::extract::Query;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chronicle_domain::sharing::AccessAction;
use chronicle_domain::trends::agp::nearest_bin_width;
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const FHIR_JSON: &str = "application/fhir+json";

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(cgm_summary))
        .routes(routes!(metadata))
}

fn fhir_json(body: &Value) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, FHIR_JSON)], bytes).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
struct PeriodQuery {
    /// The last N local days, today included (1–366, default 14). Ignored with `from`/`to`.
    days: Option<u32>,
    /// First local day (patient's zone), with `to`.
    from: Option<NaiveDate>,
    /// Last local day, included, with `from`.
    to: Option<NaiveDate>,
}

/// The patient's CGM summary of a period (FHIR CGM IG 1.0.0, profile `cgm-summary`): a
/// `collection` Bundle of the summary Observation (LOINC 107931-8) and its members (mean
/// glucose in mg/dL and mmol/L, times in ranges 106793-3, GMI, CV, days of wear, sensor
/// active %), the glucose trend's figures; empty when the period holds no reading.
#[utoipa::path(get, path = "/v1/patients/{patient_id}/fhir/cgm-summary", tag = "fhir",
    params(PeriodQuery, PatientPath),
    responses((status = 200, description = "A FHIR R4 collection Bundle", content_type = "application/fhir+json"),
        BadRequest, Unauthenticated, Forbidden, NotFound))]
async fn cgm_summary(
    PatientRequest(state, principal, patient_id): PatientRequest,
    Query(query): Query<PeriodQuery>,
) -> Result<Response, ApiError> {
    let days = trend_days(query.days, query.from, query.to)?;
    // The AGP is not part of the summary; the widest bins cost least.
    let read = read_glucose_trend(
        &state,
        &principal,
        patient_id,
        AccessAction::ReadCgmSummary,
        days,
        nearest_bin_width(180),
    )
    .await?;
    fhir_json(&cgm_summary_bundle(
        patient_id,
        &read.window,
        &read.trend.summary,
        Utc::now(),
    ))
}

/// The FHIR CapabilityStatement: what this server supports of FHIR R4 and the CGM guide.
/// Public, as FHIR clients read it before authenticating; it holds no patient data.
#[utoipa::path(get, path = "/v1/fhir/metadata", tag = "fhir", security(()),
    responses((status = 200, description = "A FHIR R4 CapabilityStatement", content_type = "application/fhir+json")))]
async fn metadata() -> Result<Response, ApiError> {
    fhir_json(&capability_statement(Utc::now()))
}

//! `POST /v1/fhir/$submit-cgm-bundle`: the HL7 FHIR CGM implementation guide 1.0.0's data
//! submission. The body is the guide's `transaction` Bundle (CGM Data Submission Bundle);
//! its sensor readings (Observations coded LOINC 99504-3 in mg/dL or 105272-9 in mmol/L)
//! are submitted to the same ingest as MQTT under the patient's FHIR import device
//! (`chronicle_storage::imports`), so validation, units, deduplication and recorded refusals
//! are the devices'. The answer is a `transaction-response` Bundle, one entry per submitted
//! entry in the same order, or an OperationOutcome when the whole Bundle is refused. Only the
//! patient and their guardian may submit (as for imports). See `docs/interop.md`.

use super::actor;
use super::imports::{MAX_IMPORT_BYTES, submit_rows};
use crate::AppState;
use crate::auth::Authenticated;
use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chronicle_domain::codes::{CGM_GLUCOSE_MASS, LOINC_SYSTEM, UCUM_SYSTEM};
use chronicle_domain::imports::{ImportRow, ImportStream, Location, RowRefusal};
use chronicle_domain::sharing::AccessAction;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::HashSet;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// LOINC for a CGM sensor reading in mmol/L (the guide's `cgm-sensor-reading-moles-per-volume`).
const CGM_GLUCOSE_MOLES: &str = "105272-9";
const FHIR_JSON: &str = "application/fhir+json";
/// The import source of data submitted over FHIR.
const SOURCE: &str = "fhir";

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(submit_cgm_bundle))
        .layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES))
}

fn fhir_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, FHIR_JSON)],
        body.to_string(),
    )
        .into_response()
}

/// An OperationOutcome with one issue.
fn outcome(severity: &str, code: &str, text: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": text}],
    })
}

/// The whole Bundle refused: an OperationOutcome with the status.
fn refused(status: StatusCode, code: &str, text: &str) -> Response {
    fhir_response(status, &outcome("error", code, text))
}

fn api_error(error: ApiError) -> Response {
    let (status, code, text) = match error {
        ApiError::NotFound => (
            StatusCode::NOT_FOUND,
            "not-found",
            "no such patient".to_owned(),
        ),
        ApiError::Forbidden => (
            StatusCode::FORBIDDEN,
            "forbidden",
            "not permitted".to_owned(),
        ),
        ApiError::BadRequest(text) => (StatusCode::BAD_REQUEST, "invalid", text),
        other => return other.into_response(),
    };
    refused(status, code, &text)
}

/// The patient a resource is about: `subject` (Observation, DiagnosticReport) or `patient`
/// (Device), as `Patient/{id}`.
fn patient_of(resource: &Value) -> Option<Result<Uuid, String>> {
    let reference = resource
        .get("subject")
        .or_else(|| resource.get("patient"))?
        .get("reference")?
        .as_str()?;
    Some(
        reference
            .strip_prefix("Patient/")
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or_else(|| format!("{reference:?} is not Patient/{{id}} of a Chronicle patient")),
    )
}

/// The LOINC code of an Observation, if it has one.
fn loinc(resource: &Value) -> Option<&str> {
    resource["code"]["coding"]
        .as_array()?
        .iter()
        .find(|c| c["system"] == LOINC_SYSTEM)?["code"]
        .as_str()
}

/// A sensor reading as a wire record, or why it cannot be one.
fn sensor_record(resource: &Value, code: &str) -> Result<Value, RowRefusal> {
    let invalid = |detail: &str| RowRefusal {
        reason: "invalid_value".into(),
        detail: detail.into(),
    };
    let quantity = &resource["valueQuantity"];
    let value = quantity["value"]
        .as_f64()
        .ok_or_else(|| invalid("a sensor reading needs valueQuantity.value"))?;
    let unit = quantity["code"]
        .as_str()
        .filter(|_| quantity["system"] == UCUM_SYSTEM)
        .ok_or_else(|| invalid("valueQuantity needs a UCUM system and code"))?;
    let expected = if code == CGM_GLUCOSE_MASS.code {
        "mg/dL"
    } else {
        "mmol/L"
    };
    if unit != expected {
        return Err(invalid(&format!(
            "LOINC {code} is measured in {expected}, not {unit}"
        )));
    }
    let at = resource["effectiveDateTime"]
        .as_str()
        .ok_or_else(|| RowRefusal {
            reason: "invalid_timestamp".into(),
            detail: "a sensor reading needs effectiveDateTime".into(),
        })?;
    let mut record = json!({
        "type": "glucose",
        "source": "cgm",
        "value": value,
        "unit": unit,
        "measured_at": at,
    });
    let identifier = resource["identifier"][0]["value"]
        .as_str()
        .or_else(|| resource["id"].as_str());
    if let Some(id) = identifier {
        record["id"] = json!(id);
    }
    Ok(record)
}

/// What the answer says of one submitted entry.
enum Entry {
    /// A sensor reading submitted to the ingest, at this position among the rows.
    Reading { row: usize },
    /// Valid but not stored (Device, summaries, reports): Chronicle derives its own.
    NotStored(String),
}

/// Submit CGM data (HL7 FHIR CGM IG 1.0.0 `$submit-cgm-bundle`): a `transaction` Bundle of one
/// patient's sensor readings (LOINC 99504-3 mg/dL, 105272-9 mmol/L), Device and summary
/// resources. Readings are stored through the ingest (deduplicated by the patient's FHIR
/// import device and `effectiveDateTime`); Devices and summaries are acknowledged, not
/// stored. Answers a `transaction-response` Bundle in the submitted order, or an
/// OperationOutcome when the Bundle is refused. The patient or their guardian.
#[utoipa::path(post, path = "/v1/fhir/$submit-cgm-bundle", tag = "fhir",
    request_body(content = String, content_type = "application/fhir+json",
        description = "A FHIR R4 transaction Bundle (CGM Data Submission Bundle)"),
    responses(
        (status = 200, description = "A transaction-response Bundle", content_type = "application/fhir+json"),
        (status = 400, description = "The Bundle is refused: an OperationOutcome", content_type = "application/fhir+json"),
        (status = 401, description = "No valid bearer token"),
        (status = 404, description = "The caller may not write for the Bundle's patient: an OperationOutcome", content_type = "application/fhir+json")))]
async fn submit_cgm_bundle(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    body: Bytes,
) -> Response {
    let bundle: Value = match serde_json::from_slice(&body) {
        Ok(bundle) => bundle,
        Err(e) => {
            return refused(
                StatusCode::BAD_REQUEST,
                "structure",
                &format!("not JSON: {e}"),
            );
        }
    };
    if bundle["resourceType"] != "Bundle" || bundle["type"] != "transaction" {
        return refused(
            StatusCode::BAD_REQUEST,
            "structure",
            "the body must be a Bundle of type transaction (CGM Data Submission Bundle)",
        );
    }
    let Some(entries) = bundle["entry"].as_array().filter(|e| !e.is_empty()) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "required",
            "the Bundle has no entry",
        );
    };
    // One patient per Bundle, named by its resources.
    let mut patients = HashSet::new();
    for (index, entry) in entries.iter().enumerate() {
        let resource = &entry["resource"];
        if !resource.is_object() {
            return refused(
                StatusCode::BAD_REQUEST,
                "required",
                &format!("entry[{index}] has no resource"),
            );
        }
        match patient_of(resource) {
            Some(Ok(patient)) => {
                patients.insert(patient);
            }
            Some(Err(text)) => {
                return refused(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    &format!("entry[{index}]: {text}"),
                );
            }
            None => {}
        }
    }
    let patient_id = match patients.into_iter().collect::<Vec<_>>().as_slice() {
        [patient] => *patient,
        [] => {
            return refused(
                StatusCode::BAD_REQUEST,
                "required",
                "no resource names its patient (Observation.subject, Device.patient)",
            );
        }
        _ => {
            return refused(
                StatusCode::BAD_REQUEST,
                "invalid",
                "a Bundle holds the data of one patient",
            );
        }
    };
    let actor = match actor(
        &state,
        &principal,
        patient_id,
        AccessAction::SubmitCgmBundle,
    )
    .await
    {
        Ok(actor) => actor,
        Err(e) => return api_error(e),
    };

    let mut rows = Vec::new();
    let mut answers = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let resource = &entry["resource"];
        let kind = resource["resourceType"].as_str().unwrap_or("");
        let code =
            loinc(resource).filter(|c| *c == CGM_GLUCOSE_MASS.code || *c == CGM_GLUCOSE_MOLES);
        let answer = match (kind, code) {
            ("Observation", Some(code)) => {
                let location = Location::Entry {
                    list: "entry".into(),
                    index,
                };
                let (record, refusal) = match sensor_record(resource, code) {
                    Ok(record) => (record, None),
                    Err(refusal) => (
                        json!({"type": "fhir_entry", "location": location.to_string(),
                               "reason": refusal.reason, "detail": refusal.detail,
                               "resource": resource}),
                        Some(refusal),
                    ),
                };
                rows.push(ImportRow {
                    location,
                    stream: ImportStream::Cgm,
                    record,
                    refusal,
                });
                Entry::Reading { row: rows.len() - 1 }
            }
            ("Device", _) => Entry::NotStored(
                "Device acknowledged, not stored: readings are kept under the patient's FHIR import device"
                    .into(),
            ),
            ("Observation" | "DiagnosticReport", None) => Entry::NotStored(format!(
                "{kind} acknowledged, not stored: Chronicle computes summaries from the readings"
            )),
            _ => Entry::NotStored(format!("{kind} acknowledged, not stored")),
        };
        answers.push(answer);
    }

    // What the FHIR import device already holds, so each reading's answer says created or
    // already there.
    let times: Vec<DateTime<Utc>> = rows
        .iter()
        .filter_map(|r| r.record["measured_at"].as_str())
        .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .collect();
    let existing: HashSet<DateTime<Utc>> = match state
        .store
        .import_device(&actor, SOURCE, chronicle_domain::DeviceKind::Cgm)
        .await
    {
        Ok(Some(device)) => match state
            .store
            .stored_glucose_times(&actor, &device.id, &times)
            .await
        {
            Ok(times) => times.into_iter().collect(),
            Err(e) => return ApiError::from(e).into_response(),
        },
        Ok(None) => HashSet::new(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let submitted = if rows.is_empty() {
        None
    } else {
        match submit_rows(&state, &actor, SOURCE, &rows, |_| "FHIR submissions".into()).await {
            Ok(outcome) => Some(outcome),
            Err(e) => return e.into_response(),
        }
    };

    let mut seen = HashSet::new();
    let response_entries: Vec<Value> = answers
        .iter()
        .map(|answer| match answer {
            Entry::NotStored(text) => json!({"response": {
                "status": "200 OK",
                "outcome": outcome("information", "informational", text),
            }}),
            Entry::Reading { row } => {
                let refusal = submitted
                    .as_ref()
                    .and_then(|s| s.refusals.get(*row).cloned().flatten());
                if let Some((reason, detail)) = refusal {
                    return json!({"response": {
                        "status": "422 Unprocessable Entity",
                        "outcome": outcome("error", "processing", &format!("{reason}: {detail}")),
                    }});
                }
                let at = rows[*row].record["measured_at"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc));
                let duplicate =
                    at.is_some_and(|at| existing.contains(&at) || !seen.insert(at));
                if duplicate {
                    json!({"response": {
                        "status": "200 OK",
                        "outcome": outcome("information", "duplicate",
                            "already stored: the patient's FHIR submissions hold a reading at this effectiveDateTime"),
                    }})
                } else {
                    json!({"response": {"status": "201 Created"}})
                }
            }
        })
        .collect();
    fhir_response(
        StatusCode::OK,
        &json!({
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": response_entries,
        }),
    )
}

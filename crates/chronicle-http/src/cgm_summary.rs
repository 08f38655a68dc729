//! The CGM summary of the HL7 FHIR CGM implementation guide 1.0.0 (canonical
//! `http://hl7.org/fhir/uv/cgm`) as a FHIR R4 `collection` Bundle: the summary Observation
//! (profile `cgm-summary`, LOINC 107931-8) and its members — mean glucose in mg/dL and in
//! mmol/L, the times-in-ranges panel 106793-3 with its five components, GMI, CV, days of wear
//! and sensor active % — and the `/metadata` CapabilityStatement that declares them.
//!
//! Every value is the trend API's (`chronicle_domain::trends::glucose_trend`, the same
//! unrounded figure, which gives the guide's "at least two decimal places"). The guide's
//! profile constraints this module meets: codes by pattern, UCUM units by pattern (`mg/dL`
//! shown "mg/dl", `mmol/L` "mmol/l", `%` "%", `d` "days"), `subject` and `effectivePeriod`
//! with `start` and `end` (dates) on every Observation, a value on every member, and at
//! least six `hasMember` references on the summary.

use crate::export::{category, codeable};
use chronicle_domain::GlucoseUnit;
use chronicle_domain::codes::{
    CGM_CV, CGM_DAYS_OF_WEAR, CGM_GMI, CGM_MEAN_GLUCOSE_MASS, CGM_MEAN_GLUCOSE_MOLES,
    CGM_SENSOR_ACTIVE, CGM_SUMMARY, CGM_TIME_HIGH, CGM_TIME_IN_RANGE, CGM_TIME_LOW,
    CGM_TIME_VERY_HIGH, CGM_TIME_VERY_LOW, CGM_TIMES_IN_RANGES, Loinc, UCUM_SYSTEM,
};
use chronicle_domain::trends::{GlucoseBand, GlucoseSummary, TrendWindow};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

/// The guide's canonical base; profiles are `{IG}/StructureDefinition/{id}`.
pub const CGM_IG: &str = "http://hl7.org/fhir/uv/cgm";
const IG_VERSION: &str = "1.0.0";

/// The guide's profiles this server produces, by id.
pub const SUMMARY_PROFILES: [&str; 8] = [
    "cgm-summary",
    "cgm-summary-mean-glucose-mass-per-volume",
    "cgm-summary-mean-glucose-moles-per-volume",
    "cgm-summary-times-in-ranges",
    "cgm-summary-gmi",
    "cgm-summary-coefficient-of-variation",
    "cgm-summary-days-of-wear",
    "cgm-summary-sensor-active-percentage",
];

fn profile(id: &str) -> String {
    format!("{CGM_IG}/StructureDefinition/{id}")
}

/// A UCUM quantity as the guide's patterns fix it: `code` in UCUM, `unit` the guide's display.
fn ucum(value: f64, code: &str, unit: &str) -> Value {
    json!({"value": value, "unit": unit, "system": UCUM_SYSTEM, "code": code})
}

fn percent(value: f64) -> Value {
    ucum(value, "%", "%")
}

/// The shared part of every Observation of the summary.
fn observation(profile_id: &str, code: Loinc, patient_id: Uuid, window: &TrendWindow) -> Value {
    json!({
        "resourceType": "Observation",
        "meta": {"profile": [profile(profile_id)]},
        "status": "final",
        "category": category("laboratory"),
        "code": codeable(code),
        "subject": {"reference": format!("Patient/{patient_id}")},
        "effectivePeriod": {
            "start": window.first_date().to_string(),
            "end": window.last_date().to_string(),
        },
    })
}

fn with_value(mut resource: Value, value: Value) -> Value {
    resource["valueQuantity"] = value;
    resource
}

/// The summary of `window` as a `collection` Bundle (summary first, then its members); an
/// empty Bundle when the period holds no glucose reading (the guide requires a value on
/// every member, so there is no summary to give).
pub fn cgm_summary_bundle(
    patient_id: Uuid,
    window: &TrendWindow,
    summary: &GlucoseSummary,
    now: DateTime<Utc>,
) -> Value {
    let members = members(patient_id, window, summary);
    let mut entries = Vec::new();
    if let Some(members) = members {
        let urls: Vec<String> = members
            .iter()
            .map(|_| format!("urn:uuid:{}", Uuid::new_v4()))
            .collect();
        let mut panel = observation("cgm-summary", CGM_SUMMARY, patient_id, window);
        panel["hasMember"] = urls.iter().map(|u| json!({"reference": u})).collect();
        entries.push(json!({
            "fullUrl": format!("urn:uuid:{}", Uuid::new_v4()),
            "resource": panel,
        }));
        for (url, resource) in urls.into_iter().zip(members) {
            entries.push(json!({"fullUrl": url, "resource": resource}));
        }
    }
    json!({
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": now.to_rfc3339(),
        "entry": entries,
    })
}

/// The summary's members, or `None` without a reading in the period.
fn members(patient_id: Uuid, window: &TrendWindow, s: &GlucoseSummary) -> Option<Vec<Value>> {
    let mean = s.mean_mg_dl?;
    let bands = s.band_percent?;
    let base = |profile_id: &str, code: Loinc| observation(profile_id, code, patient_id, window);
    let mut tir = base("cgm-summary-times-in-ranges", CGM_TIMES_IN_RANGES);
    tir["component"] = [
        (CGM_TIME_VERY_LOW, GlucoseBand::VeryLow),
        (CGM_TIME_LOW, GlucoseBand::Low),
        (CGM_TIME_IN_RANGE, GlucoseBand::InRange),
        (CGM_TIME_HIGH, GlucoseBand::High),
        (CGM_TIME_VERY_HIGH, GlucoseBand::VeryHigh),
    ]
    .into_iter()
    .map(|(code, band)| json!({"code": codeable(code), "valueQuantity": percent(bands[band.index()])}))
    .collect();
    Some(vec![
        with_value(
            base(
                "cgm-summary-mean-glucose-mass-per-volume",
                CGM_MEAN_GLUCOSE_MASS,
            ),
            ucum(mean, "mg/dL", "mg/dl"),
        ),
        with_value(
            base(
                "cgm-summary-mean-glucose-moles-per-volume",
                CGM_MEAN_GLUCOSE_MOLES,
            ),
            ucum(GlucoseUnit::MmolL.from_mg_dl(mean), "mmol/L", "mmol/l"),
        ),
        tir,
        with_value(
            base("cgm-summary-gmi", CGM_GMI),
            percent(s.gmi_percent.unwrap_or(0.0)),
        ),
        with_value(
            base("cgm-summary-coefficient-of-variation", CGM_CV),
            // One reading has no spread: its CV is 0 %.
            percent(s.cv_percent.unwrap_or(0.0)),
        ),
        with_value(
            base("cgm-summary-days-of-wear", CGM_DAYS_OF_WEAR),
            ucum(s.totals.days_with_cgm as f64, "d", "days"),
        ),
        with_value(
            base("cgm-summary-sensor-active-percentage", CGM_SENSOR_ACTIVE),
            percent(s.cgm_active_percent.unwrap_or(0.0)),
        ),
    ])
}

/// The CapabilityStatement of `GET /v1/fhir/metadata`: FHIR R4 JSON, the CGM summary
/// profiles this server produces, and nothing it does not do.
pub fn capability_statement(now: DateTime<Utc>) -> Value {
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": now.to_rfc3339(),
        "publisher": "Chronicle",
        "kind": "instance",
        "software": {"name": "Chronicle", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {
            "description": "Chronicle: CGM summaries and CGM data submission per the HL7 FHIR CGM implementation guide 1.0.0"
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "implementationGuide": [format!("{CGM_IG}/ImplementationGuide/hl7.fhir.uv.cgm|{IG_VERSION}")],
        "rest": [{
            "mode": "server",
            "documentation": "GET /v1/patients/{patient_id}/fhir/cgm-summary?days=N or ?from=YYYY-MM-DD&to=YYYY-MM-DD answers a collection Bundle holding the CGM summary of the period; GET /v1/patients/{patient_id}/export/fhir the patient's readings. POST /v1/fhir/$submit-cgm-bundle takes the guide's CGM Data Submission Bundle from the patient or their guardian: its sensor readings (99504-3, 105272-9) are stored, deduplicated per patient by effectiveDateTime; Devices and summaries are acknowledged and not stored.",
            "security": {
                "service": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "OAuth",
                }], "text": "Bearer token (Chronicle session or API token)"}],
                "description": "Every request is decided by the patient's sharing grants (glucose, view_trends) and written to the patient's access log."
            },
            "resource": [{
                "type": "Observation",
                "supportedProfile": SUMMARY_PROFILES.iter().map(|id| profile(id)).collect::<Vec<_>>(),
                "documentation": "CGM summaries, read through /v1/patients/{patient_id}/fhir/cgm-summary; CGM sensor readings, submitted through $submit-cgm-bundle; no search or read by id."
            }],
            "operation": [{
                "name": "submit-cgm-bundle",
                "definition": format!("{CGM_IG}/OperationDefinition/submit-cgm-bundle"),
                "documentation": "POST /v1/fhir/$submit-cgm-bundle"
            }]
        }]
    })
}

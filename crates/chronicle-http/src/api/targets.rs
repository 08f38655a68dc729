//! A patient's glucose targets and alert thresholds, and their history.

use super::alerts::alert_permits;
use super::parse_name;
use super::{PatientPath, PatientRequest};
use crate::AppState;
use crate::error::ApiError;
use crate::error::refusals::{BadRequest, Forbidden, NotFound, Unauthenticated};
use axum::Json;
use chronicle_domain::alerts::thresholds::AlertThresholds;
use chronicle_domain::sharing::AccessAction;
use chronicle_domain::sharing::{DataCategory, Principal, Role};
use chronicle_domain::targets::GlucoseTargets;
use chronicle_storage::gate::Permit;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(targets, update_targets))
        .routes(routes!(target_changes))
}

/// A patient's targets and alert thresholds.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
struct TargetsBody {
    /// The glucose targets (`chronicle_domain::targets::GlucoseTargets`): `preset`
    /// (`standard`, `older_high_risk`, `pregnancy`, `custom`), range and time-in-range goals.
    #[schema(value_type = Object)]
    glucose_targets: GlucoseTargets,
    /// The alert thresholds in force (see docs/alerts.md for every field and its bounds).
    #[schema(value_type = Object)]
    alert_thresholds: AlertThresholds,
    /// Whether the care team set custom thresholds (otherwise those of the preset apply).
    #[serde(default)]
    custom_thresholds: bool,
    #[serde(default, skip_deserializing)]
    changed_by: Option<Uuid>,
    #[serde(default, skip_deserializing)]
    changed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
struct UpdateTargetsRequest {
    /// New glucose targets: a preset's (`{"preset": "pregnancy"}` takes the preset's values)
    /// or custom values within the safe bounds. Absent: unchanged.
    #[schema(value_type = Object)]
    glucose_targets: Option<serde_json::Value>,
    /// Custom alert thresholds within the safe bounds; `null` returns to the preset's.
    /// Absent: unchanged.
    #[schema(value_type = Object)]
    #[serde(default, deserialize_with = "present")]
    alert_thresholds: Option<Option<AlertThresholds>>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Reads need a permit to receive the patient's alerts (glucose or blood pressure).
async fn targets_permits(
    state: &AppState,
    principal: &Principal,
    patient_id: Uuid,
    action: AccessAction,
) -> Result<Vec<Permit>, ApiError> {
    alert_permits(
        state,
        principal,
        patient_id,
        &[DataCategory::Glucose, DataCategory::BloodPressure],
        action,
    )
    .await
}

/// The patient's glucose targets and alert thresholds.
#[utoipa::path(get, path = "/v1/patients/{patient_id}/targets", tag = "alerts", params(PatientPath),
    responses((status = 200, body = TargetsBody), Unauthenticated, Forbidden, NotFound))]
async fn targets(
    PatientRequest(state, principal, patient_id): PatientRequest,
) -> Result<Json<TargetsBody>, ApiError> {
    targets_permits(&state, &principal, patient_id, AccessAction::ReadTargets).await?;
    let t = state.store.patient_targets(patient_id).await?;
    Ok(Json(TargetsBody {
        glucose_targets: t.glucose,
        alert_thresholds: t.alert_thresholds,
        custom_thresholds: t.custom_thresholds,
        changed_by: t.changed_by,
        changed_at: t.changed_at,
    }))
}

/// Change the patient's glucose targets and/or alert thresholds. Only a clinician whose care
/// grant lets them receive the patient's alerts of every category the change touches
/// (glucose targets and thresholds: glucose; blood-pressure thresholds: blood pressure; the
/// shared ones: either). Every change is recorded with who made it and when.
#[utoipa::path(put, path = "/v1/patients/{patient_id}/targets", tag = "alerts", params(PatientPath),
    request_body = UpdateTargetsRequest,
    responses((status = 200, body = TargetsBody), BadRequest, Unauthenticated, Forbidden,
        NotFound))]
async fn update_targets(
    PatientRequest(state, principal, patient_id): PatientRequest,
    Json(body): Json<UpdateTargetsRequest>,
) -> Result<Json<TargetsBody>, ApiError> {
    let permits =
        targets_permits(&state, &principal, patient_id, AccessAction::UpdateTargets).await?;
    if principal.role != Some(Role::Clinician)
        || permits.iter().any(|p| {
            !matches!(
                p.allowance().basis,
                chronicle_domain::sharing::Basis::Grant(_)
            )
        })
    {
        // The patient reads their targets; the care team sets them.
        return Err(ApiError::Forbidden);
    }
    let current = state.store.patient_targets(patient_id).await?;
    let glucose = match body.glucose_targets {
        None => current.glucose,
        Some(json) => parse_targets(json)?,
    };
    let thresholds = match body.alert_thresholds {
        None => current
            .custom_thresholds
            .then_some(current.alert_thresholds),
        Some(new) => new,
    };
    if let Some(t) = &thresholds {
        t.validate()
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    // Which categories the change touches, and whether the caller may change them.
    let next_thresholds = thresholds.unwrap_or_else(|| AlertThresholds::preset(glucose.preset));
    let mut touched = Vec::new();
    if glucose != current.glucose || next_thresholds.glucose != current.alert_thresholds.glucose {
        touched.push(DataCategory::Glucose);
    }
    if next_thresholds.blood_pressure != current.alert_thresholds.blood_pressure {
        touched.push(DataCategory::BloodPressure);
    }
    let allowed: Vec<DataCategory> = permits.iter().map(Permit::category).collect();
    if touched.iter().any(|c| !allowed.contains(c)) {
        return Err(ApiError::Forbidden);
    }
    state
        .store
        .set_patient_targets(
            patient_id,
            &glucose,
            thresholds.as_ref(),
            Some(principal.user_id),
        )
        .await?;
    let t = state.store.patient_targets(patient_id).await?;
    Ok(Json(TargetsBody {
        glucose_targets: t.glucose,
        alert_thresholds: t.alert_thresholds,
        custom_thresholds: t.custom_thresholds,
        changed_by: t.changed_by,
        changed_at: t.changed_at,
    }))
}

/// Glucose targets from a request: `{"preset": "<name>"}` alone takes the preset's values;
/// anything else must be complete custom values within the safe bounds.
fn parse_targets(json: serde_json::Value) -> Result<GlucoseTargets, ApiError> {
    let preset_only = json
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("preset"))
        .and_then(|p| p.as_str())
        .map(|p| parse_name(p, "preset", chronicle_domain::targets::TargetPreset::parse))
        .transpose()?;
    let targets = match preset_only {
        Some(preset) => GlucoseTargets::preset(preset),
        None => serde_json::from_value::<GlucoseTargets>(json)
            .map_err(|e| ApiError::BadRequest(format!("invalid glucose targets: {e}")))?,
    };
    targets
        .validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(targets)
}

#[derive(Debug, Serialize, ToSchema)]
struct TargetChangeItem {
    #[schema(value_type = Object)]
    glucose_targets: GlucoseTargets,
    /// The custom thresholds set; absent: the preset's.
    #[schema(value_type = Object)]
    alert_thresholds: Option<AlertThresholds>,
    changed_by: Option<Uuid>,
    changed_at: DateTime<Utc>,
}

/// Every change of the patient's targets and thresholds, newest first, with who and when.
#[utoipa::path(get, path = "/v1/patients/{patient_id}/targets/changes", tag = "alerts", params(PatientPath),
    responses((status = 200, body = [TargetChangeItem]), Unauthenticated, Forbidden, NotFound))]
async fn target_changes(
    PatientRequest(state, principal, patient_id): PatientRequest,
) -> Result<Json<Vec<TargetChangeItem>>, ApiError> {
    targets_permits(
        &state,
        &principal,
        patient_id,
        AccessAction::ReadTargetChanges,
    )
    .await?;
    Ok(Json(
        state
            .store
            .glucose_target_changes(patient_id)
            .await?
            .into_iter()
            .map(|c| TargetChangeItem {
                glucose_targets: c.targets,
                alert_thresholds: c.alert_thresholds,
                changed_by: c.changed_by,
                changed_at: c.changed_at,
            })
            .collect(),
    ))
}

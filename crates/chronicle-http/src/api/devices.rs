//! A patient's devices: list, pair (credentials shown once), revoke.

use super::{actor, json_list, permit};
use crate::AppState;
use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chronicle_domain::sharing::AccessAction;
use chronicle_domain::sharing::{Access, DataCategory};
use chronicle_domain::{DeviceId, DeviceKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(devices, pair_device))
        .routes(routes!(revoke_device))
}

#[derive(Debug, Serialize, ToSchema)]
struct DeviceItem {
    device_id: String,
    kind: String,
    label: Option<String>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<chronicle_storage::Device> for DeviceItem {
    fn from(d: chronicle_storage::Device) -> Self {
        DeviceItem {
            device_id: d.id.to_string(),
            kind: d.kind.to_string(),
            label: d.label,
            created_at: d.created_at,
            revoked_at: d.revoked_at,
        }
    }
}

/// The patient's devices.
#[utoipa::path(get, path = "/v1/patients/{patient_id}/devices", tag = "devices",
    security(("bearer" = [])), params(("patient_id" = Uuid, Path)),
    responses((status = 200, body = [DeviceItem]), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn devices(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(patient_id): Path<Uuid>,
) -> Result<Json<Vec<DeviceItem>>, ApiError> {
    let permit = permit(
        &state,
        &principal,
        patient_id,
        DataCategory::DeviceInfo,
        Access::ViewReadings,
        AccessAction::ReadDevices,
    )
    .await?;
    Ok(json_list(
        state.store.devices_of(&permit).await?,
        DeviceItem::from,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
struct PairDeviceRequest {
    /// `cgm`, `meter` or `bp`.
    kind: String,
    label: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct PairedDevice {
    device: DeviceItem,
    /// MQTT username.
    mqtt_username: String,
    /// MQTT password, shown once; only its hash is stored.
    mqtt_password: String,
    readings_topic: String,
    acks_topic: String,
}

/// Pair a device (the patient or their guardian); returns its credentials once.
#[utoipa::path(post, path = "/v1/patients/{patient_id}/devices", tag = "devices",
    security(("bearer" = [])), params(("patient_id" = Uuid, Path)), request_body = PairDeviceRequest,
    responses((status = 201, body = PairedDevice), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn pair_device(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(patient_id): Path<Uuid>,
    Json(body): Json<PairDeviceRequest>,
) -> Result<(StatusCode, Json<PairedDevice>), ApiError> {
    let kind: DeviceKind =
        body.kind
            .parse()
            .map_err(|e: chronicle_domain::device::UnknownDeviceKind| {
                ApiError::BadRequest(e.to_string())
            })?;
    let actor = actor(&state, &principal, patient_id, AccessAction::PairDevice).await?;
    let (device, credentials) = state
        .store
        .pair_device_as(&actor, kind, body.label.as_deref())
        .await?;
    let id = device.id.to_string();
    Ok((
        StatusCode::CREATED,
        Json(PairedDevice {
            mqtt_username: credentials.id.to_string(),
            mqtt_password: credentials.secret,
            readings_topic: format!("chronicle/v1/devices/{id}/readings"),
            acks_topic: format!("chronicle/v1/devices/{id}/acks"),
            device: device.into(),
        }),
    ))
}

/// Revoke one of the patient's devices: its credentials stop working at once.
#[utoipa::path(delete, path = "/v1/patients/{patient_id}/devices/{device_id}", tag = "devices",
    security(("bearer" = [])), params(("patient_id" = Uuid, Path), ("device_id" = String, Path)),
    responses((status = 200, body = DeviceItem), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_device(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((patient_id, device_id)): Path<(Uuid, String)>,
) -> Result<Json<DeviceItem>, ApiError> {
    let device_id = DeviceId::parse(&device_id).map_err(|_| ApiError::NotFound)?;
    let actor = actor(&state, &principal, patient_id, AccessAction::RevokeDevice).await?;
    let device = state
        .store
        .revoke_device_as(&actor, &device_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(device.into()))
}

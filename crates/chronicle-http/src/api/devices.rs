//! A patient's devices: list, pair (credentials shown once), revoke.

use super::{PatientPath, PatientRequest, actor, json_list, permit};
use crate::AppState;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::error::refusals::{BadRequest, Forbidden, NotFound, Unauthenticated};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chronicle_domain::sharing::AccessAction;
use chronicle_domain::sharing::Principal;
use chronicle_domain::sharing::{Access, DataCategory};
use chronicle_domain::{DeviceId, DeviceKind, topics};
use chronicle_storage::credentials::NewCredentials;
use chronicle_storage::gate::PatientActor;
use chronicle_storage::{Device, StorageError, Store};
use chrono::{DateTime, Utc};
use o2o::o2o;
use serde::{Deserialize, Serialize};
use std::future::Future;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(devices, pair_device))
        .routes(routes!(revoke_device))
}

#[derive(Debug, Serialize, ToSchema, o2o)]
#[from_owned(Device)]
pub(super) struct DeviceItem {
    #[from(id, ~.to_string())]
    device_id: String,
    #[from(~.to_string())]
    kind: String,
    label: Option<String>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

/// The patient's devices.
#[utoipa::path(get, path = "/v1/patients/{patient_id}/devices", tag = "devices", params(PatientPath),
    responses((status = 200, body = [DeviceItem]), Unauthenticated, Forbidden, NotFound))]
async fn devices(
    PatientRequest(state, principal, patient_id): PatientRequest,
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
    /// `cgm`, `meter` or `bp` (an `uploader` is made through the Nightscout API).
    kind: String,
    label: Option<String>,
}

/// A new MQTT identity's log-in (a device's or a gateway's), shown once.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct MqttLogin {
    /// MQTT username (and client id, or its prefix before a `.`).
    mqtt_username: String,
    /// MQTT password, shown once; only its hash is stored.
    mqtt_password: String,
}

impl<Id: std::fmt::Display> From<NewCredentials<Id>> for MqttLogin {
    fn from(credentials: NewCredentials<Id>) -> Self {
        MqttLogin {
            mqtt_username: credentials.id.to_string(),
            mqtt_password: credentials.secret,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct PairedDevice {
    device: DeviceItem,
    #[serde(flatten)]
    login: MqttLogin,
    readings_topic: String,
    acks_topic: String,
}

/// Pair a device (the patient or their guardian); returns its credentials once.
#[utoipa::path(post, path = "/v1/patients/{patient_id}/devices", tag = "devices", params(PatientPath),
    request_body = PairDeviceRequest,
    responses((status = 201, body = PairedDevice), BadRequest, Unauthenticated, NotFound))]
async fn pair_device(
    PatientRequest(state, principal, patient_id): PatientRequest,
    Json(body): Json<PairDeviceRequest>,
) -> Result<(StatusCode, Json<PairedDevice>), ApiError> {
    let kind: DeviceKind =
        body.kind
            .parse()
            .map_err(|e: chronicle_domain::device::UnknownDeviceKind| {
                ApiError::BadRequest(e.to_string())
            })?;
    if !kind.uses_mqtt() {
        return Err(ApiError::BadRequest(
            "an uploader has no MQTT login: make one with \
             POST /v1/patients/{patient_id}/nightscout/uploaders"
                .into(),
        ));
    }
    let actor = actor(&state, &principal, patient_id, AccessAction::PairDevice).await?;
    let (device, credentials) = state
        .store
        .pair_device_as(&actor, kind, body.label.as_deref())
        .await?;
    let id = device.id.to_string();
    let prefix = &state.mqtt_topic_prefix;
    Ok((
        StatusCode::CREATED,
        Json(PairedDevice {
            device: device.into(),
            login: credentials.into(),
            readings_topic: topics::readings_topic(prefix, &id),
            acks_topic: topics::acks_topic(prefix, &id),
        }),
    ))
}

/// Revoke one of the patient's devices: its credentials stop working at once.
#[utoipa::path(delete, path = "/v1/patients/{patient_id}/devices/{device_id}", tag = "devices",
    responses((status = 200, body = DeviceItem), Unauthenticated, NotFound))]
async fn revoke_device(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((patient_id, device_id)): Path<(Uuid, String)>,
) -> Result<Json<DeviceItem>, ApiError> {
    revoke::<Device, _>(&state, &principal, patient_id, &device_id).await
}

/// What revoking one of a patient's MQTT identities (a device or a gateway) needs to know.
pub(super) trait Revocable: Sized {
    type Id;
    /// The entry the patient's access log gets.
    const ACTION: AccessAction;
    fn parse_id(raw: &str) -> Option<Self::Id>;
    fn revoke(
        store: &Store,
        actor: &PatientActor,
        id: &Self::Id,
    ) -> impl Future<Output = Result<Option<Self>, StorageError>> + Send;
}

impl Revocable for Device {
    type Id = DeviceId;
    const ACTION: AccessAction = AccessAction::RevokeDevice;

    fn parse_id(raw: &str) -> Option<DeviceId> {
        DeviceId::parse(raw).ok()
    }

    fn revoke(
        store: &Store,
        actor: &PatientActor,
        id: &DeviceId,
    ) -> impl Future<Output = Result<Option<Self>, StorageError>> + Send {
        store.revoke_device_as(actor, id)
    }
}

/// Revokes one of the patient's MQTT identities: its credentials stop working and the broker
/// drops its connections. A malformed id answers 404, as an unknown one does.
pub(super) async fn revoke<R: Revocable, Item: From<R>>(
    state: &AppState,
    principal: &Principal,
    patient_id: Uuid,
    raw_id: &str,
) -> Result<Json<Item>, ApiError> {
    let id = R::parse_id(raw_id).ok_or(ApiError::NotFound)?;
    let actor = actor(state, principal, patient_id, R::ACTION).await?;
    let revoked = R::revoke(&state.store, &actor, &id).await?;
    Ok(Json(revoked.ok_or(ApiError::NotFound)?.into()))
}

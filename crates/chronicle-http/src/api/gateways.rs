//! A patient's own gateways: the phone app or home hub that relays their meter and cuff over
//! MQTT. The patient (or their guardian) registers one with the devices it relays, sees them,
//! and revokes them; the broker drops a revoked gateway's connections at once.

use super::devices::{MqttLogin, Revocable, revoke};
use super::{PatientPath, PatientRequest, actor, json_list};
use crate::AppState;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::error::refusals::{BadRequest, NotFound, Unauthenticated};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chronicle_domain::sharing::AccessAction;
use chronicle_domain::{DeviceId, GatewayId};
use chronicle_storage::gate::PatientActor;
use chronicle_storage::{Gateway, StorageError, Store};
use chrono::{DateTime, Utc};
use o2o::o2o;
use serde::{Deserialize, Serialize};
use std::future::Future;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(gateways, register_gateway))
        .routes(routes!(revoke_gateway))
}

#[derive(Debug, Serialize, ToSchema, o2o)]
#[from_owned(Gateway)]
struct GatewayItem {
    #[from(id, ~.to_string())]
    gateway_id: String,
    label: Option<String>,
    /// The devices it relays (revoked ones leave at once).
    #[from(~.iter().map(ToString::to_string).collect())]
    devices: Vec<String>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
struct RegisterGatewayRequest {
    label: Option<String>,
    /// Ids of the patient's devices it relays.
    devices: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct RegisteredGateway {
    gateway: GatewayItem,
    #[serde(flatten)]
    login: MqttLogin,
}

/// The patient's own gateways (the patient or their guardian).
#[utoipa::path(get, path = "/v1/patients/{patient_id}/gateways", tag = "devices", params(PatientPath),
    responses((status = 200, body = [GatewayItem]), Unauthenticated, NotFound))]
async fn gateways(
    PatientRequest(state, principal, patient_id): PatientRequest,
) -> Result<Json<Vec<GatewayItem>>, ApiError> {
    let actor = actor(&state, &principal, patient_id, AccessAction::ReadGateways).await?;
    Ok(json_list(
        state.store.gateways_as(&actor).await?,
        GatewayItem::from,
    ))
}

/// Register a gateway relaying some of the patient's devices (the patient or their guardian);
/// returns its credentials once.
#[utoipa::path(post, path = "/v1/patients/{patient_id}/gateways", tag = "devices", params(PatientPath),
    request_body = RegisterGatewayRequest,
    responses((status = 201, body = RegisteredGateway), BadRequest, Unauthenticated, NotFound))]
async fn register_gateway(
    PatientRequest(state, principal, patient_id): PatientRequest,
    Json(body): Json<RegisterGatewayRequest>,
) -> Result<(StatusCode, Json<RegisteredGateway>), ApiError> {
    let devices: Vec<DeviceId> = body
        .devices
        .iter()
        .map(|d| DeviceId::parse(d).map_err(|e| ApiError::BadRequest(e.to_string())))
        .collect::<Result<_, _>>()?;
    let actor = actor(
        &state,
        &principal,
        patient_id,
        AccessAction::RegisterGateway,
    )
    .await?;
    let (gateway, credentials) = state
        .store
        .create_gateway_as(&actor, body.label.as_deref(), &devices)
        .await
        .map_err(|e| match e {
            // Another patient's device reads like an unknown one: whether it exists is not the
            // caller's to learn.
            StorageError::NotFound { .. } | StorageError::Refused(_) => ApiError::BadRequest(
                "each device must be one of the patient's own, and not revoked".into(),
            ),
            other => other.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(RegisteredGateway {
            gateway: gateway.into(),
            login: credentials.into(),
        }),
    ))
}

/// Revoke one of the patient's gateways: its credentials stop working and its connections are
/// dropped at once.
#[utoipa::path(delete, path = "/v1/patients/{patient_id}/gateways/{gateway_id}", tag = "devices",
    responses((status = 200, body = GatewayItem), Unauthenticated, NotFound))]
async fn revoke_gateway(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((patient_id, gateway_id)): Path<(Uuid, String)>,
) -> Result<Json<GatewayItem>, ApiError> {
    revoke::<Gateway, _>(&state, &principal, patient_id, &gateway_id).await
}

impl Revocable for Gateway {
    type Id = GatewayId;
    const ACTION: AccessAction = AccessAction::RevokeGateway;

    fn parse_id(raw: &str) -> Option<GatewayId> {
        GatewayId::parse(raw).ok()
    }

    fn revoke(
        store: &Store,
        actor: &PatientActor,
        id: &GatewayId,
    ) -> impl Future<Output = Result<Option<Self>, StorageError>> + Send {
        store.revoke_gateway_as(actor, id)
    }
}

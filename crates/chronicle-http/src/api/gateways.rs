//! A patient's own gateways: the phone app or home hub that relays their meter and cuff over
//! MQTT. The patient (or their guardian) registers one with the devices it relays, sees them,
//! and revokes them; the broker drops a revoked gateway's connections at once.

use super::{actor, json_list};
use crate::AppState;
use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chronicle_domain::sharing::AccessAction;
use chronicle_domain::{DeviceId, GatewayId};
use chronicle_storage::{Gateway, StorageError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(gateways, register_gateway))
        .routes(routes!(revoke_gateway))
}

#[derive(Debug, Serialize, ToSchema)]
struct GatewayItem {
    gateway_id: String,
    label: Option<String>,
    /// The devices it relays (revoked ones leave at once).
    devices: Vec<String>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<Gateway> for GatewayItem {
    fn from(g: Gateway) -> Self {
        GatewayItem {
            gateway_id: g.id.to_string(),
            label: g.label,
            devices: g.devices.iter().map(ToString::to_string).collect(),
            created_at: g.created_at,
            revoked_at: g.revoked_at,
        }
    }
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
    /// MQTT username (and client id, or its prefix before a `.`).
    mqtt_username: String,
    /// MQTT password, shown once; only its hash is stored.
    mqtt_password: String,
}

/// The patient's own gateways (the patient or their guardian).
#[utoipa::path(get, path = "/v1/patients/{patient_id}/gateways", tag = "devices",
    security(("bearer" = [])), params(("patient_id" = Uuid, Path)),
    responses((status = 200, body = [GatewayItem]), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn gateways(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(patient_id): Path<Uuid>,
) -> Result<Json<Vec<GatewayItem>>, ApiError> {
    let actor = actor(&state, &principal, patient_id, AccessAction::ReadGateways).await?;
    Ok(json_list(
        state.store.gateways_as(&actor).await?,
        GatewayItem::from,
    ))
}

/// Register a gateway relaying some of the patient's devices (the patient or their guardian);
/// returns its credentials once.
#[utoipa::path(post, path = "/v1/patients/{patient_id}/gateways", tag = "devices",
    security(("bearer" = [])), params(("patient_id" = Uuid, Path)),
    request_body = RegisterGatewayRequest,
    responses((status = 201, body = RegisteredGateway), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn register_gateway(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(patient_id): Path<Uuid>,
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
            mqtt_username: credentials.id.to_string(),
            mqtt_password: credentials.secret,
            gateway: gateway.into(),
        }),
    ))
}

/// Revoke one of the patient's gateways: its credentials stop working and its connections are
/// dropped at once.
#[utoipa::path(delete, path = "/v1/patients/{patient_id}/gateways/{gateway_id}", tag = "devices",
    security(("bearer" = [])), params(("patient_id" = Uuid, Path), ("gateway_id" = String, Path)),
    responses((status = 200, body = GatewayItem), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn revoke_gateway(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((patient_id, gateway_id)): Path<(Uuid, String)>,
) -> Result<Json<GatewayItem>, ApiError> {
    let gateway_id = GatewayId::parse(&gateway_id).map_err(|_| ApiError::NotFound)?;
    let actor = actor(&state, &principal, patient_id, AccessAction::RevokeGateway).await?;
    let gateway = state
        .store
        .revoke_gateway_as(&actor, &gateway_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(gateway.into()))
}

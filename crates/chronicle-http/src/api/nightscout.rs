//! A patient's Nightscout site (docs/nightscout.md): its address, and upload credentials for
//! the apps that upload to it. An upload credential is a device of kind `uploader` (listed
//! and revoked with the patient's devices); its API secret is shown once.

use super::actor;
use super::devices::DeviceItem;
use super::{PatientPath, PatientRequest};
use crate::AppState;
use crate::error::ApiError;
use crate::error::refusals::{Forbidden, NotFound, Unauthenticated};
use axum::Json;
use axum::http::StatusCode;
use chronicle_domain::sharing::AccessAction;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(site))
        .routes(routes!(create_uploader))
}

/// The path of a site's Nightscout API, below the server's address.
pub(super) fn site_path(site_id: &str) -> String {
    format!("/nightscout/{site_id}")
}

/// A patient's Nightscout site.
#[derive(Debug, Serialize, ToSchema)]
struct NightscoutSite {
    /// The opaque id in the site's address.
    site_id: String,
    /// The site's address below the server's (`/nightscout/{site_id}`): what an app calls its
    /// Nightscout URL.
    site_path: String,
}

/// The patient's Nightscout site, made on first use (the patient or their guardian).
#[utoipa::path(get, path = "/v1/patients/{patient_id}/nightscout", tag = "nightscout", params(PatientPath),
    responses((status = 200, body = NightscoutSite), Unauthenticated, Forbidden, NotFound))]
async fn site(
    PatientRequest(state, principal, patient_id): PatientRequest,
) -> Result<Json<NightscoutSite>, ApiError> {
    let actor = actor(&state, &principal, patient_id, AccessAction::ReadDevices).await?;
    let site_id = state.store.nightscout_site_of(&actor).await?;
    Ok(Json(NightscoutSite {
        site_path: site_path(&site_id),
        site_id,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
struct CreateUploaderRequest {
    /// What the patient calls it (`xDrip+ on my phone`).
    label: Option<String>,
}

/// A new upload credential, shown once.
#[derive(Debug, Serialize, ToSchema)]
struct CreatedUploader {
    device: DeviceItem,
    site_id: String,
    site_path: String,
    /// The API secret to enter in the app; only a hash of its SHA-1 hex is stored.
    api_secret: String,
}

/// Make an upload credential for the patient's Nightscout site (the patient or their
/// guardian); it writes only this patient's record. Revoke it as a device.
#[utoipa::path(post, path = "/v1/patients/{patient_id}/nightscout/uploaders", tag = "nightscout", params(PatientPath),
    request_body = CreateUploaderRequest,
    responses((status = 201, body = CreatedUploader), Unauthenticated, NotFound))]
async fn create_uploader(
    PatientRequest(state, principal, patient_id): PatientRequest,
    Json(body): Json<CreateUploaderRequest>,
) -> Result<(StatusCode, Json<CreatedUploader>), ApiError> {
    let actor = actor(
        &state,
        &principal,
        patient_id,
        AccessAction::CreateNightscoutUploader,
    )
    .await?;
    let site_id = state.store.nightscout_site_of(&actor).await?;
    let created = state
        .store
        .create_uploader_as(&actor, body.label.as_deref())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUploader {
            device: created.device.into(),
            site_path: site_path(&site_id),
            site_id,
            api_secret: created.api_secret,
        }),
    ))
}

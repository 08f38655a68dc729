//! The versioned JSON API under `/v1`, with its OpenAPI document generated from these
//! handlers (served at `/openapi.json`).
//!
//! One submodule per subject, each with its own `routes()`, merged below: `session` (log-in,
//! `me`, log-out, API tokens), `patients` (the list, erasure), `readings`, `devices`,
//! `sharing` (grants, access log, emergency access), `invitations` (a care team's codes that
//! patients accept to share with it), `escalation` (a care team's members' duties and its
//! escalation chain for urgent alerts), `guardians`, `export` (FHIR, CSV),
//! `research`, `targets`, `alerts` (lists, acknowledgement, snoozes, the live stream), `trends`
//! (and the panel), `reports` (the printable AGP report), `imports` (vendor exports: preview and import), `fhir` (CGM summaries and the
//! CapabilityStatement), `fhir_submission` (`$submit-cgm-bundle`), `webhooks`, `channels` (each
//! user's own alert channels and their delivery log), `gateways`, `admin` (organizations, teams, users) and
//! `broker_hooks` (an external broker's authentication and authorization calls). This file
//! holds what they share: the gate calls, paging and the OpenAPI document.
//!
//! Every handler that touches patient data has `{patient_id}` in its path and asks the storage
//! gate first: `Store::authorize` (a [`Permit`] for reading a category) or
//! `Store::authorize_as_patient` (a [`PatientActor`] for the patient's own settings). Both log
//! the attempt. A refusal answers 404 when the caller holds nothing for the patient, so no one
//! learns whether a patient exists, and 403 when they hold something else.

mod admin;
mod alerts;
mod broker_hooks;
mod channels;
mod devices;
mod escalation;
mod export;
mod fhir;
mod fhir_submission;
mod gateways;
mod guardians;
mod imports;
mod invitations;
mod nightscout;
mod patients;
mod readings;
mod reports;
mod research;
mod session;
mod share_links;
mod sharing;
mod targets;
mod trends;
mod vocabulary;
mod webhooks;

pub(crate) use trends::GlucoseTrendRead;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use axum::Json;
use chronicle_domain::GlucoseUnit;
use chronicle_domain::sharing::AccessAction;
use chronicle_domain::sharing::{Access, AccessRequest, DataCategory, DenyReason, Principal};
use chronicle_storage::gate::{PatientActor, Permit};
use chrono::Utc;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

/// The most items one page of any list may hold.
const MAX_PAGE: i64 = 5000;

/// One word of the API's vocabulary (a purpose, a rule, a role…), or a 400 that says which
/// kind of word was not known.
pub(crate) fn parse_name<T>(
    value: &str,
    what: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, ApiError> {
    parse(value).ok_or_else(|| ApiError::BadRequest(format!("unknown {what} {value:?}")))
}

/// The page size a list request asks for (`default` when it names none), within 1..=MAX_PAGE.
pub(crate) fn page_limit(asked: Option<i64>, default: i64) -> Result<i64, ApiError> {
    let limit = asked.unwrap_or(default);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )))
    }
}

/// The position a numbered list's `cursor` names (the last row's number), if any.
pub(crate) fn numbered_cursor(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    cursor
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::BadRequest("invalid cursor".into()))
        })
        .transpose()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Chronicle API",
        description = "Remote monitoring of diabetes and high blood pressure. Patient data is \
            shared only through the patient's grants; every read is in the patient's access log."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API's routes and its OpenAPI document.
pub fn routes() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(session::routes())
        .merge(patients::routes())
        .merge(readings::routes())
        .merge(devices::routes())
        .merge(sharing::routes())
        .merge(invitations::routes())
        .merge(escalation::routes())
        .merge(share_links::routes())
        .merge(nightscout::routes())
        .merge(guardians::routes())
        .merge(export::routes())
        .merge(research::routes())
        .merge(targets::routes())
        .merge(alerts::routes())
        .merge(trends::routes())
        .merge(reports::routes())
        .merge(imports::routes())
        .merge(fhir::routes())
        .merge(fhir_submission::routes())
        .merge(webhooks::routes())
        .merge(channels::routes())
        .merge(gateways::routes())
        .merge(admin::routes())
        .merge(broker_hooks::routes())
        .split_for_parts()
}

/// The glucose unit a caller asks for (`mg/dL` when none).
pub(crate) fn parse_unit(text: Option<&str>) -> Result<GlucoseUnit, ApiError> {
    text.map_or(Ok(GlucoseUnit::MgDl), |t| {
        t.parse()
            .map_err(|e: chronicle_domain::units::UnknownUnit| ApiError::BadRequest(e.to_string()))
    })
}

/// Asks the gate for a permit to read a category of the patient's data.
pub(crate) async fn permit(
    state: &AppState,
    principal: &Principal,
    patient_id: Uuid,
    category: DataCategory,
    access: Access,
    action: AccessAction,
) -> Result<Permit, ApiError> {
    // These endpoints serve identified data, so a research grant (de-identified data only)
    // does not open them; research reads need their own de-identifying endpoint.
    let request = AccessRequest {
        patient_id,
        category,
        access,
        at: Utc::now(),
        identified: true,
    };
    state
        .store
        .authorize(principal, request, action)
        .await?
        .map_err(refusal)
}

/// Defines a request about one subject of the API, named by an id in its path: the request
/// (the state, the caller and the id, extracted in that order: 401 before a malformed id) and
/// the path parameter as the API description lists it. Other path parameters are left to the
/// handler.
macro_rules! scoped_request {
    ($(#[$doc:meta])* $request:ident by $path:ident { $id:ident }) => {
        $(#[$doc])*
        pub(crate) struct $request(pub AppState, pub Principal, pub Uuid);

        #[doc = concat!("The `", stringify!($id), "` in the path, as the API description lists it.")]
        #[derive(serde::Deserialize, utoipa::IntoParams)]
        #[into_params(parameter_in = Path)]
        pub(crate) struct $path {
            $id: Uuid,
        }

        impl axum::extract::FromRequestParts<AppState> for $request {
            type Rejection = axum::response::Response;

            async fn from_request_parts(
                parts: &mut axum::http::request::Parts,
                state: &AppState,
            ) -> Result<Self, Self::Rejection> {
                let (principal, path) = scoped::<$path>(parts, state).await?;
                Ok($request(state.clone(), principal, path.$id))
            }
        }
    };
}

scoped_request!(
    /// An authenticated request about one patient (`/v1/patients/{patient_id}/…`); handlers
    /// name it `PatientRequest(state, principal, patient_id)`. It decides nothing about the
    /// patient: each handler still asks the gate for the action it performs ([`actor`],
    /// `Store::authorize`), after checking its own input.
    PatientRequest by PatientPath { patient_id }
);

scoped_request!(
    /// An authenticated request about one care team (`/v1/care-teams/{team_id}/…`), like
    /// [`PatientRequest`]; the handler checks membership (`member_of`).
    TeamRequest by TeamPath { team_id }
);

scoped_request!(
    /// An authenticated request about one organization
    /// (`/v1/organizations/{organization_id}/…`), like [`PatientRequest`]; the handler checks
    /// the caller administers it (`administrator_of`).
    OrganizationRequest by OrganizationPath { organization_id }
);

/// The caller, then the path parameters `P`, each refused as its own extractor refuses it.
async fn scoped<P: serde::de::DeserializeOwned + Send>(
    parts: &mut axum::http::request::Parts,
    state: &AppState,
) -> Result<(Principal, P), axum::response::Response> {
    use axum::extract::FromRequestParts;
    use axum::response::IntoResponse;
    let crate::auth::Authenticated(principal) =
        crate::auth::Authenticated::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
    let axum::extract::Path(path) = axum::extract::Path::<P>::from_request_parts(parts, state)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok((principal, path))
}

/// Asks the gate whether the caller acts as the patient.
pub(crate) async fn actor(
    state: &AppState,
    principal: &Principal,
    patient_id: Uuid,
    action: AccessAction,
) -> Result<PatientActor, ApiError> {
    state
        .store
        .authorize_as_patient(principal, patient_id, action)
        .await?
        .map_err(refusal)
}

/// How a refusal is answered: 404 when the caller holds nothing for the patient (so no one
/// learns whether the patient exists), and when they hold only de-identified access (a study
/// must not learn that a record id belongs to it); 403 when they hold something else.
pub(crate) fn refusal(reason: DenyReason) -> ApiError {
    match reason {
        DenyReason::NoGrant | DenyReason::NoPurpose | DenyReason::DeidentifiedOnly => {
            ApiError::NotFound
        }
        DenyReason::CategoryNotGranted | DenyReason::AccessNotGranted => ApiError::Forbidden,
    }
}

/// The answer of a list endpoint: each stored record as its API item, in the store's order.
pub(crate) fn json_list<R, I>(records: Vec<R>, item: impl FnMut(R) -> I) -> Json<Vec<I>> {
    Json(records.into_iter().map(item).collect())
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub(crate) next_cursor: Option<String>,
}

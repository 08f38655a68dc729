//! The versioned JSON API under `/v1`, with its OpenAPI document generated from these
//! handlers (served at `/openapi.json`).
//!
//! Each area of the API may live in a submodule with its own `routes()`, merged below.
//!
//! Every handler that touches patient data has `{patient_id}` in its path and asks the storage
//! gate first: `Store::authorize` (a [`Permit`] for reading a category) or
//! `Store::authorize_as_patient` (a [`PatientActor`] for the patient's own settings). Both log
//! the attempt. A refusal answers 404 when the caller holds nothing for the patient, so no one
//! learns whether a patient exists, and 403 when they hold something else.

mod account;
mod admin;
mod alerts;
mod broker_hooks;
mod gateways;
mod guardians;
mod webhooks;

use crate::AppState;
use crate::auth::Authenticated;
use crate::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chronicle_domain::GlucoseUnit;
use chronicle_domain::sharing::{
    Access, AccessRequest, DataCategory, DenyReason, Grant, Grantee, PatientActor, Permit,
    Principal, Purpose, Role, validate_new_grant,
};
use chronicle_domain::{DeviceId, DeviceKind};
use chronicle_storage::access::{GrantSpec, PageRequest, VisiblePatient};
use chronicle_storage::credentials::verify_password;
use chronicle_storage::identity::TokenKind;
use chronicle_storage::sharing::AccessLogEntry;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

mod trends;

/// How long a password log-in's session lasts.
const SESSION_HOURS: i64 = 12;
/// How long an emergency access stays open.
const EMERGENCY_HOURS: i64 = 4;
/// The most items one page of any list may hold.
pub(crate) const MAX_PAGE: i64 = 5000;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Chronicle API",
        description = "Remote monitoring of diabetes and high blood pressure. Patient data is \
            shared only through the patient's grants; every read is in the patient's access log."
    ),
    modifiers(&BearerAuth),
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
        .routes(routes!(login))
        .routes(routes!(me))
        .routes(routes!(patients))
        .routes(routes!(glucose))
        .routes(routes!(blood_pressure))
        .routes(routes!(devices, pair_device))
        .routes(routes!(revoke_device))
        .routes(routes!(grants, create_grant))
        .routes(routes!(revoke_grant))
        .routes(routes!(access_log))
        .routes(routes!(open_emergency_access))
        .routes(routes!(export_fhir))
        .routes(routes!(export_csv))
        .routes(routes!(erase))
        .routes(routes!(research_glucose))
        .merge(account::routes())
        .merge(guardians::routes())
        .merge(admin::routes())
        .merge(alerts::routes())
        .merge(webhooks::routes())
        .merge(trends::routes())
        .merge(broker_hooks::routes())
        .merge(gateways::routes())
        .split_for_parts()
}

#[derive(Debug, Deserialize, ToSchema)]
struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    token: String,
    token_type: &'static str,
    expires_at: Option<DateTime<Utc>>,
}

/// Log in with e-mail and password; returns a session token.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    Json(body): Json<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let found = state.store.user_for_login(&body.email).await?;
    // The same answer for an unknown e-mail and a wrong password.
    let Some((user, Some(hash))) = found else {
        return Err(ApiError::InvalidCredentials);
    };
    let password = body.password;
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if !matches {
        return Err(ApiError::InvalidCredentials);
    }
    let issued = state
        .store
        .issue_token(
            user.id,
            TokenKind::Session,
            None,
            Some(Utc::now() + Duration::hours(SESSION_HOURS)),
        )
        .await?;
    Ok(Json(LoginResponse {
        token: issued.token,
        token_type: "Bearer",
        expires_at: issued.expires_at,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
struct Me {
    id: Uuid,
    email: String,
    display_name: String,
    role: String,
    /// The patient record this user is, for a patient.
    patient_id: Option<Uuid>,
    guardian_of: Vec<Uuid>,
    care_teams: Vec<Uuid>,
    organizations: Vec<Uuid>,
}

/// The caller.
#[utoipa::path(get, path = "/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
async fn me(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Me>, ApiError> {
    let user = state
        .store
        .user(principal.user_id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    Ok(Json(Me {
        id: user.id,
        email: user.email,
        display_name: user.display_name,
        role: user.role.as_str().to_owned(),
        patient_id: user.patient_id,
        guardian_of: principal.guardian_of,
        care_teams: principal.care_teams,
        organizations: principal.organizations,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
struct PatientListItem {
    /// The record's id; for research access, the study's pseudonym.
    patient_id: Uuid,
    /// Absent for research access, which is pseudonymous.
    display_name: Option<String>,
    /// The patient's IANA time zone (their days and times of day); absent for research access.
    time_zone: Option<String>,
    /// `own`, `guardian` or `grant`.
    basis: String,
    /// For `grant`: what the patient shares with the caller, one entry per grant.
    shared: Vec<SharedItem>,
}

/// What one of the patient's grants shares with the caller.
#[derive(Debug, Serialize, ToSchema)]
struct SharedItem {
    categories: Vec<String>,
    access: Vec<String>,
    purpose: String,
    /// Data measured before this is never shown.
    data_since: Option<DateTime<Utc>>,
    /// The grant allows nothing from this instant on.
    expires_at: Option<DateTime<Utc>>,
}

/// The patients the caller may see, with what each shares with the caller. Clinical
/// summaries (latest readings, time in range) are in the panel.
#[utoipa::path(get, path = "/v1/patients", tag = "patients", security(("bearer" = [])),
    responses((status = 200, body = [PatientListItem]), (status = 401, body = ErrorBody)))]
async fn patients(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Vec<PatientListItem>>, ApiError> {
    let visible = state.store.visible_patients(&principal).await?;
    Ok(Json(
        visible
            .into_iter()
            .map(
                |VisiblePatient {
                     patient_id,
                     display_name,
                     time_zone,
                     basis,
                     shared,
                     ..
                 }| PatientListItem {
                    patient_id,
                    display_name,
                    time_zone,
                    basis: basis.to_owned(),
                    shared: shared
                        .into_iter()
                        .map(|g| SharedItem {
                            categories: g
                                .categories
                                .iter()
                                .map(|c| c.as_str().to_owned())
                                .collect(),
                            access: g.access.iter().map(|a| a.as_str().to_owned()).collect(),
                            purpose: g.purpose.as_str().to_owned(),
                            data_since: g.data_since,
                            expires_at: g.expires_at,
                        })
                        .collect(),
                },
            )
            .collect(),
    ))
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
    action: &str,
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

/// Asks the gate whether the caller acts as the patient.
pub(crate) async fn actor(
    state: &AppState,
    principal: &Principal,
    patient_id: Uuid,
    action: &str,
) -> Result<PatientActor, ApiError> {
    state
        .store
        .authorize_as_patient(principal, patient_id, action)
        .await?
        .map_err(refusal)
}

/// How a refusal is answered: 404 when the caller holds nothing for the patient (so no one
/// learns whether the patient exists), 403 when they hold something else.
pub(crate) fn refusal(reason: DenyReason) -> ApiError {
    match reason {
        DenyReason::NoGrant | DenyReason::NoPurpose => ApiError::NotFound,
        DenyReason::CategoryNotGranted
        | DenyReason::AccessNotGranted
        | DenyReason::DeidentifiedOnly => ApiError::Forbidden,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
struct ReadingsQuery {
    /// Earliest `measured_at` (inclusive); never earlier than the grant's window.
    from: Option<DateTime<Utc>>,
    /// Latest `measured_at` (exclusive).
    to: Option<DateTime<Utc>>,
    /// `mg/dL` (default) or `mmol/L` (glucose only).
    unit: Option<String>,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Items per page, 1–5000 (default 1000).
    limit: Option<i64>,
}

impl ReadingsQuery {
    fn page(&self) -> Result<(i64, Option<Cursor>), ApiError> {
        let limit = self.limit.unwrap_or(1000);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit must be between 1 and {MAX_PAGE}"
            )));
        }
        Ok((limit, self.cursor.as_deref().map(parse_cursor).transpose()?))
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct GlucosePoint {
    measured_at: DateTime<Utc>,
    value: f64,
    unit: &'static str,
    source: String,
    /// `lo` or `hi` when the sensor was out of its range.
    flag: Option<String>,
    device_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct BloodPressurePoint {
    measured_at: DateTime<Utc>,
    systolic: i16,
    diastolic: i16,
    pulse: Option<i16>,
    device_id: String,
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub(crate) next_cursor: Option<String>,
}

/// A readings page position: the last item's `measured_at` and device.
pub(crate) type Cursor = (DateTime<Utc>, String);

pub(crate) fn cursor_of(at: DateTime<Utc>, device_id: &str) -> String {
    format!("{}.{device_id}", at.timestamp_micros())
}

pub(crate) fn parse_cursor(text: &str) -> Result<Cursor, ApiError> {
    let bad = || ApiError::BadRequest("invalid cursor".into());
    let (micros, device) = text.split_once('.').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((at, device.to_owned()))
}

/// One patient's glucose readings, oldest first.
#[utoipa::path(get, path = "/v1/patients/{patient_id}/glucose", tag = "readings",
    security(("bearer" = [])), params(("patient_id" = Uuid, Path), ReadingsQuery),
    responses((status = 200, body = Page<GlucosePoint>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn glucose(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(patient_id): Path<Uuid>,
    Query(query): Query<ReadingsQuery>,
) -> Result<Json<Page<GlucosePoint>>, ApiError> {
    let unit = parse_unit(query.unit.as_deref())?;
    let (limit, after) = query.page()?;
    let permit = permit(
        &state,
        &principal,
        patient_id,
        DataCategory::Glucose,
        Access::ViewReadings,
        "read_glucose_readings",
    )
    .await?;
    let page = PageRequest {
        from: query.from,
        to: query.to,
        after: after.as_ref().map(|(t, d)| (*t, d.as_str())),
        limit,
    };
    let rows = state.store.glucose_readings(&permit, page).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| cursor_of(r.measured_at, &r.device_id)))
        .flatten();
    let items = rows
        .into_iter()
        .map(|r| GlucosePoint {
            measured_at: r.measured_at,
            value: unit.from_mg_dl(r.value_mg_dl),
            unit: unit.as_str(),
            source: r.source,
            flag: r.flag,
            device_id: r.device_id,
        })
        .collect();
    Ok(Json(Page { items, next_cursor }))
}

/// One patient's blood-pressure readings (mm[Hg], pulse per minute), oldest first.
#[utoipa::path(get, path = "/v1/patients/{patient_id}/blood-pressure", tag = "readings",
    security(("bearer" = [])), params(("patient_id" = Uuid, Path), ReadingsQuery),
    responses((status = 200, body = Page<BloodPressurePoint>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn blood_pressure(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(patient_id): Path<Uuid>,
    Query(query): Query<ReadingsQuery>,
) -> Result<Json<Page<BloodPressurePoint>>, ApiError> {
    let (limit, after) = query.page()?;
    let permit = permit(
        &state,
        &principal,
        patient_id,
        DataCategory::BloodPressure,
        Access::ViewReadings,
        "read_blood_pressure_readings",
    )
    .await?;
    let page = PageRequest {
        from: query.from,
        to: query.to,
        after: after.as_ref().map(|(t, d)| (*t, d.as_str())),
        limit,
    };
    let rows = state.store.blood_pressure_readings(&permit, page).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| cursor_of(r.measured_at, &r.device_id)))
        .flatten();
    let items = rows
        .into_iter()
        .map(|r| BloodPressurePoint {
            measured_at: r.measured_at,
            systolic: r.systolic,
            diastolic: r.diastolic,
            pulse: r.pulse,
            device_id: r.device_id,
        })
        .collect();
    Ok(Json(Page { items, next_cursor }))
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
        "read_devices",
    )
    .await?;
    Ok(Json(
        state
            .store
            .devices_of(&permit)
            .await?
            .into_iter()
            .map(DeviceItem::from)
            .collect(),
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
    let actor = actor(&state, &principal, patient_id, "pair_device").await?;
    let (device, credentials) = state
        .store
        .pair_device_as(&actor, kind, body.label.as_deref())
        .await?;
    let id = device.id.to_string();
    Ok((
        StatusCode::CREATED,
        Json(PairedDevice {
            mqtt_username: credentials.device_id.to_string(),
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
    let actor = actor(&state, &principal, patient_id, "revoke_device").await?;
    let device = state
        .store
        .revoke_device_as(&actor, &device_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(device.into()))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
struct GranteeBody {
    /// `user`, `care_team` or `organization`.
    #[serde(rename = "type")]
    kind: String,
    id: Uuid,
}

/// Who a grant names, with the name the patient knows them by.
#[derive(Debug, Serialize, ToSchema)]
struct GranteeItem {
    /// `user`, `care_team` or `organization`.
    #[serde(rename = "type")]
    kind: String,
    id: Uuid,
    /// The person's, care team's or organization's name; absent if it no longer exists.
    name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct GrantItem {
    id: Uuid,
    grantee: GranteeItem,
    categories: Vec<String>,
    access: Vec<String>,
    purpose: String,
    data_since: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    /// Whether the grant allows anything now.
    active: bool,
}

impl GrantItem {
    fn new(g: Grant, grantee_name: Option<String>) -> Self {
        let (kind, id) = match g.grantee {
            Grantee::User(id) => ("user", id),
            Grantee::CareTeam(id) => ("care_team", id),
            Grantee::Organization(id) => ("organization", id),
        };
        GrantItem {
            active: g.is_active(Utc::now()),
            id: g.id,
            grantee: GranteeItem {
                kind: kind.to_owned(),
                id,
                name: grantee_name,
            },
            categories: g.categories.iter().map(|c| c.as_str().to_owned()).collect(),
            access: g.access.iter().map(|a| a.as_str().to_owned()).collect(),
            purpose: g.purpose.as_str().to_owned(),
            data_since: g.data_since,
            expires_at: g.expires_at,
            revoked_at: g.revoked_at,
            created_at: g.created_at,
        }
    }
}

/// The name a patient knows a grantee by. Only the patient's own settings (behind
/// [`actor`]) call this, for grantees the patient named.
async fn grantee_name(state: &AppState, grantee: Grantee) -> Result<Option<String>, ApiError> {
    Ok(match grantee {
        Grantee::User(id) => state.store.user(id).await?.map(|u| u.display_name),
        Grantee::CareTeam(id) => state.store.care_team(id).await?.map(|t| t.name),
        Grantee::Organization(id) => state.store.organization(id).await?.map(|o| o.name),
    })
}

/// Grants as the API shows them, each grantee's name looked up once.
async fn grant_items(state: &AppState, grants: Vec<Grant>) -> Result<Vec<GrantItem>, ApiError> {
    let mut names: HashMap<Grantee, Option<String>> = HashMap::new();
    let mut items = Vec::with_capacity(grants.len());
    for grant in grants {
        let name = match names.get(&grant.grantee) {
            Some(name) => name.clone(),
            None => {
                let name = grantee_name(state, grant.grantee).await?;
                names.insert(grant.grantee, name.clone());
                name
            }
        };
        items.push(GrantItem::new(grant, name));
    }
    Ok(items)
}

/// The patient's grants, in any state (the patient or their guardian).
#[utoipa::path(get, path = "/v1/patients/{patient_id}/grants", tag = "sharing",
    security(("bearer" = [])), params(("patient_id" = Uuid, Path)),
    responses((status = 200, body = [GrantItem]), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn grants(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(patient_id): Path<Uuid>,
) -> Result<Json<Vec<GrantItem>>, ApiError> {
    let actor = actor(&state, &principal, patient_id, "read_grants").await?;
    let grants = state.store.grants_of(&actor).await?;
    Ok(Json(grant_items(&state, grants).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
struct CreateGrantRequest {
    grantee: GranteeBody,
    /// Any of `glucose`, `blood_pressure`, `alerts`, `device_info`.
    categories: Vec<String>,
    /// Any of `view_readings`, `view_trends`, `receive_alerts`, `export`.
    access: Vec<String>,
    /// `care`, `caregiving`, `research` or `peer_support`.
    purpose: String,
    /// Never reveal data measured before this instant.
    data_since: Option<DateTime<Utc>>,
    /// The grant allows nothing from this instant on.
    expires_at: Option<DateTime<Utc>>,
}

fn parse_all<T>(
    values: &[String],
    what: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<BTreeSet<T>, ApiError>
where
    T: Ord,
{
    values
        .iter()
        .map(|v| parse(v).ok_or_else(|| ApiError::BadRequest(format!("unknown {what} {v:?}"))))
        .collect()
}

/// Share: the patient (or their guardian) grants access.
#[utoipa::path(post, path = "/v1/patients/{patient_id}/grants", tag = "sharing",
    security(("bearer" = [])), params(("patient_id" = Uuid, Path)), request_body = CreateGrantRequest,
    responses((status = 201, body = GrantItem), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_grant(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(patient_id): Path<Uuid>,
    Json(body): Json<CreateGrantRequest>,
) -> Result<(StatusCode, Json<GrantItem>), ApiError> {
    let grantee = match body.grantee.kind.as_str() {
        "user" => Grantee::User(body.grantee.id),
        "care_team" => Grantee::CareTeam(body.grantee.id),
        "organization" => Grantee::Organization(body.grantee.id),
        other => {
            return Err(ApiError::BadRequest(format!(
                "unknown grantee type {other:?}"
            )));
        }
    };
    let categories = parse_all(&body.categories, "data category", DataCategory::parse)?;
    let access = parse_all(&body.access, "access", Access::parse)?;
    let purpose = Purpose::parse(&body.purpose)
        .ok_or_else(|| ApiError::BadRequest(format!("unknown purpose {:?}", body.purpose)))?;
    validate_new_grant(&categories, &access, body.expires_at, Utc::now())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let actor = actor(&state, &principal, patient_id, "create_grant").await?;
    let spec = GrantSpec {
        grantee,
        categories,
        access,
        purpose,
        data_since: body.data_since,
        expires_at: body.expires_at,
    };
    let grant = state.store.grant_as(&actor, spec).await?;
    let name = grantee_name(&state, grant.grantee).await?;
    Ok((StatusCode::CREATED, Json(GrantItem::new(grant, name))))
}

/// Revoke a grant; it allows nothing from the next request on.
#[utoipa::path(delete, path = "/v1/patients/{patient_id}/grants/{grant_id}", tag = "sharing",
    security(("bearer" = [])), params(("patient_id" = Uuid, Path), ("grant_id" = Uuid, Path)),
    responses((status = 200, body = GrantItem), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_grant(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((patient_id, grant_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<GrantItem>, ApiError> {
    let actor = actor(&state, &principal, patient_id, "revoke_grant").await?;
    let grant = state
        .store
        .revoke_grant_as(&actor, grant_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let name = grantee_name(&state, grant.grantee).await?;
    Ok(Json(GrantItem::new(grant, name)))
}

#[derive(Debug, Deserialize, IntoParams)]
struct LogQuery {
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
    /// Entries per page, 1–5000 (default 100).
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct AccessLogItem {
    at: DateTime<Utc>,
    actor_id: Option<Uuid>,
    /// The actor's display name, so the patient reads who it was.
    actor_name: Option<String>,
    actor_role: Option<String>,
    action: String,
    category: Option<String>,
    purpose: Option<String>,
    grant_id: Option<Uuid>,
    /// Set when the access was an emergency access.
    emergency_id: Option<Uuid>,
    /// `allowed` or `denied`.
    outcome: String,
    reason: Option<String>,
}

impl AccessLogItem {
    fn new(e: AccessLogEntry, actor_name: Option<String>) -> Self {
        AccessLogItem {
            at: e.at,
            actor_id: e.actor_id,
            actor_name,
            actor_role: e.actor_role,
            action: e.action,
            category: e.category,
            purpose: e.purpose,
            grant_id: e.grant_id,
            emergency_id: e.emergency_id,
            outcome: e.outcome,
            reason: e.reason,
        }
    }
}

/// Who read (or tried to read) the patient's data, newest first.
#[utoipa::path(get, path = "/v1/patients/{patient_id}/access-log", tag = "sharing",
    security(("bearer" = [])), params(("patient_id" = Uuid, Path), LogQuery),
    responses((status = 200, body = Page<AccessLogItem>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn access_log(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(patient_id): Path<Uuid>,
    Query(query): Query<LogQuery>,
) -> Result<Json<Page<AccessLogItem>>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let before = query
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::BadRequest("invalid cursor".into()))
        })
        .transpose()?;
    let actor = actor(&state, &principal, patient_id, "read_access_log").await?;
    let entries = state.store.access_log_of(&actor, before, limit).await?;
    let next_cursor = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id.to_string()))
        .flatten();
    // A page names few distinct people: look each up once.
    let mut names: HashMap<Uuid, Option<String>> = HashMap::new();
    let mut items = Vec::with_capacity(entries.len());
    for entry in entries {
        let name = match entry.actor_id {
            None => None,
            Some(id) => match names.get(&id) {
                Some(name) => name.clone(),
                None => {
                    let name = state.store.user(id).await?.map(|u| u.display_name);
                    names.insert(id, name.clone());
                    name
                }
            },
        };
        items.push(AccessLogItem::new(entry, name));
    }
    Ok(Json(Page { items, next_cursor }))
}

#[derive(Debug, Deserialize, ToSchema)]
struct EmergencyRequest {
    /// Why the record must be opened without a grant (at least 10 characters); shown to the patient.
    reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct EmergencyItem {
    id: Uuid,
    patient_id: Uuid,
    reason: String,
    opened_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// Open a patient's record without a grant, stating why (clinicians only; time-limited, logged
/// and shown to the patient).
#[utoipa::path(post, path = "/v1/patients/{patient_id}/emergency-access", tag = "sharing",
    security(("bearer" = [])), params(("patient_id" = Uuid, Path)), request_body = EmergencyRequest,
    responses((status = 201, body = EmergencyItem), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn open_emergency_access(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(patient_id): Path<Uuid>,
    Json(body): Json<EmergencyRequest>,
) -> Result<(StatusCode, Json<EmergencyItem>), ApiError> {
    if principal.role != Some(Role::Clinician) {
        return Err(ApiError::Forbidden);
    }
    let reason = body.reason.trim();
    if reason.chars().count() < 10 {
        return Err(ApiError::BadRequest(
            "state the reason in at least 10 characters".into(),
        ));
    }
    let opened = state
        .store
        .open_emergency_access_as(
            &principal,
            patient_id,
            reason,
            Utc::now() + Duration::hours(EMERGENCY_HOURS),
        )
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((
        StatusCode::CREATED,
        Json(EmergencyItem {
            id: opened.id,
            patient_id: opened.patient_id,
            reason: opened.reason,
            opened_at: opened.opened_at,
            expires_at: opened.expires_at,
        }),
    ))
}

/// The record to export: everything, for the patient or their guardian; for a grantee
/// holding `export` access, the categories their grants cover, within their windows. Each
/// category a grantee asks for is decided and logged by the gate.
async fn record_to_export(
    state: &AppState,
    principal: &Principal,
    patient_id: Uuid,
    action: &str,
) -> Result<chronicle_storage::access::PatientRecord, ApiError> {
    if principal.patient_id == Some(patient_id) || principal.guardian_of.contains(&patient_id) {
        let actor = actor(state, principal, patient_id, action).await?;
        return Ok(state.store.everything_of(&actor).await?);
    }
    let mut permits = Vec::new();
    let mut refusals = Vec::new();
    for category in [
        DataCategory::Glucose,
        DataCategory::BloodPressure,
        DataCategory::DeviceInfo,
    ] {
        let request = AccessRequest {
            patient_id,
            category,
            access: Access::Export,
            at: Utc::now(),
            identified: true,
        };
        match state.store.authorize(principal, request, action).await? {
            Ok(permit) => permits.push(permit),
            Err(reason) => refusals.push(reason),
        }
    }
    if permits.is_empty() {
        // 404 unless the caller holds something for this patient.
        let reason = refusals
            .into_iter()
            .find(|r| !matches!(r, DenyReason::NoGrant | DenyReason::NoPurpose))
            .unwrap_or(DenyReason::NoGrant);
        return Err(refusal(reason));
    }
    Ok(state.store.exported_record(&permits).await?)
}

/// Everything held about the patient as a FHIR R4 Bundle: for the patient or their guardian
/// all of it; for a grantee with `export` access, the categories and window granted.
#[utoipa::path(get, path = "/v1/patients/{patient_id}/export/fhir", tag = "export",
    security(("bearer" = [])), params(("patient_id" = Uuid, Path)),
    responses((status = 200, description = "A FHIR R4 collection Bundle", content_type = "application/fhir+json"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn export_fhir(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(patient_id): Path<Uuid>,
) -> Result<axum::response::Response, ApiError> {
    let record = record_to_export(&state, &principal, patient_id, "export_fhir").await?;
    let body = serde_json::to_vec(&crate::export::fhir_bundle(&record))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/fhir+json")],
        body,
    )
        .into_response())
}

/// Every reading held about the patient as CSV: for the patient or their guardian all of it;
/// for a grantee with `export` access, the categories and window granted.
#[utoipa::path(get, path = "/v1/patients/{patient_id}/export/csv", tag = "export",
    security(("bearer" = [])), params(("patient_id" = Uuid, Path)),
    responses((status = 200, description = "One row per reading", content_type = "text/csv"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn export_csv(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(patient_id): Path<Uuid>,
) -> Result<axum::response::Response, ApiError> {
    let record = record_to_export(&state, &principal, patient_id, "export_csv").await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        crate::export::csv(&record),
    )
        .into_response())
}

/// Erase everything held about the patient (the patient or their guardian). Their accounts
/// are disabled; the access log is kept.
#[utoipa::path(delete, path = "/v1/patients/{patient_id}", tag = "export",
    security(("bearer" = [])), params(("patient_id" = Uuid, Path)),
    responses((status = 204, description = "Erased"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn erase(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(patient_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let actor = actor(&state, &principal, patient_id, "erase").await?;
    state.store.erase(&actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
struct ResearchGlucosePoint {
    /// Moved back by a whole number of days, the same for all of this patient's readings.
    shifted_at: DateTime<Utc>,
    value_mg_dl: f64,
    source: String,
    flag: Option<String>,
    /// A pseudonym of the device within the study.
    device: String,
}

/// De-identified glucose readings for research: `patient_id` is the study's pseudonym from
/// `GET /v1/patients`; times are shifted, identifiers replaced, nothing names the patient.
#[utoipa::path(get, path = "/v1/research/patients/{patient_id}/glucose", tag = "research",
    security(("bearer" = [])), params(("patient_id" = Uuid, Path, description = "the study pseudonym")),
    responses((status = 200, body = [ResearchGlucosePoint]), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn research_glucose(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(pseudonym): Path<Uuid>,
) -> Result<Json<Vec<ResearchGlucosePoint>>, ApiError> {
    let subject = state
        .store
        .research_subject(&principal, pseudonym)
        .await?
        .ok_or(ApiError::NotFound)?;
    let request = AccessRequest {
        patient_id: subject.patient_id,
        category: DataCategory::Glucose,
        access: Access::ViewReadings,
        at: Utc::now(),
        identified: false,
    };
    // Decided under the study's own grant, so pseudonyms and shifts are the study's.
    let permit = state
        .store
        .authorize_under_grant(&principal, request, subject.study, "read_research_glucose")
        .await?
        .map_err(refusal)?;
    if !permit.allowance().deidentified {
        // Only research grants are served here; care reads use the clinical endpoints.
        return Err(ApiError::NotFound);
    }
    let rows = state
        .store
        .research_glucose_readings(&permit, 100_000)
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| ResearchGlucosePoint {
                shifted_at: r.measured_at,
                value_mg_dl: r.value_mg_dl,
                source: r.source,
                flag: r.flag,
                device: r.device_id,
            })
            .collect(),
    ))
}

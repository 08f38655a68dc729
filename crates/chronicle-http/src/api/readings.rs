//! A patient's readings, page by page, through the gate.

use super::vocabulary::{GlucoseUnitName, TreatmentKindName};
use super::{Page, PatientPath, PatientRequest, page_limit, parse_unit, permit};
use crate::AppState;
use crate::error::ApiError;
use crate::error::refusals::{BadRequest, Forbidden, NotFound, Unauthenticated};
use axum::Json;
use axum::extract::Query;
use chronicle_domain::sharing::{Access, AccessAction, Principal};
use chronicle_storage::readings::{
    BloodPressure, Glucose, PageRequest, ReadingSeries, StoredBloodPressure, Treatments,
};
use chrono::{DateTime, Utc};
use o2o::o2o;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(glucose))
        .routes(routes!(blood_pressure))
        .routes(routes!(treatments))
}

#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct ReadingsQuery {
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

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GlucosePoint {
    measured_at: DateTime<Utc>,
    value: f64,
    #[schema(value_type = GlucoseUnitName)]
    unit: &'static str,
    source: String,
    /// `lo` or `hi` when the sensor was out of its range.
    flag: Option<String>,
    device_id: String,
}

#[derive(Debug, Serialize, ToSchema, o2o)]
#[from_owned(StoredBloodPressure)]
struct BloodPressurePoint {
    measured_at: DateTime<Utc>,
    systolic: i16,
    diastolic: i16,
    pulse: Option<i16>,
    device_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TreatmentPoint {
    /// When it happened.
    measured_at: DateTime<Utc>,
    #[schema(value_type = TreatmentKindName)]
    kind: String,
    /// Insulin in units, carbohydrates in grams, a calibration in mg/dL; absent for the
    /// other kinds.
    amount: Option<f64>,
    /// The amount's UCUM unit (`[iU]`, `g`, `mg/dL`), when there is an amount.
    amount_unit: Option<&'static str>,
    /// How long it lasted (exercise, a pump's basal, an extended bolus).
    duration_minutes: Option<i16>,
    note: Option<String>,
    device_id: String,
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

/// One page of a patient's readings of kind `K`, through the gate, each shown by `show`.
async fn readings_page<K: ReadingSeries, T>(
    state: &AppState,
    principal: &Principal,
    (patient_id, query): (Uuid, &ReadingsQuery),
    action: AccessAction,
    show: impl Fn(K::Stored) -> T,
) -> Result<Json<Page<T>>, ApiError> {
    let limit = page_limit(query.limit, 1000)?;
    let after = query.cursor.as_deref().map(parse_cursor).transpose()?;
    let permit = permit(
        state,
        principal,
        patient_id,
        K::CATEGORY,
        Access::ViewReadings,
        action,
    )
    .await?;
    let page = PageRequest {
        from: query.from,
        to: query.to,
        after: after.as_ref().map(|(t, d)| (*t, d.as_str())),
        limit,
    };
    let rows = state.store.readings::<K>(&permit, page).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(K::page_key))
        .flatten()
        .map(|(at, device_id)| cursor_of(at, device_id));
    let items = rows.into_iter().map(show).collect();
    Ok(Json(Page { items, next_cursor }))
}

/// One patient's glucose readings, oldest first.
#[utoipa::path(get, path = "/v1/patients/{patient_id}/glucose", tag = "readings",
    params(ReadingsQuery, PatientPath),
    responses((status = 200, body = Page<GlucosePoint>), BadRequest, Unauthenticated, Forbidden,
        NotFound))]
async fn glucose(
    PatientRequest(state, principal, patient_id): PatientRequest,
    Query(query): Query<ReadingsQuery>,
) -> Result<Json<Page<GlucosePoint>>, ApiError> {
    glucose_page(&state, &principal, patient_id, &query).await
}

/// A page of glucose readings for `principal` (a user, or a share link's holder).
pub(crate) async fn glucose_page(
    state: &AppState,
    principal: &Principal,
    patient_id: Uuid,
    query: &ReadingsQuery,
) -> Result<Json<Page<GlucosePoint>>, ApiError> {
    let unit = parse_unit(query.unit.as_deref())?;
    readings_page::<Glucose, _>(
        state,
        principal,
        (patient_id, query),
        AccessAction::ReadGlucoseReadings,
        |r| GlucosePoint {
            measured_at: r.measured_at,
            value: unit.from_mg_dl(r.value_mg_dl),
            unit: unit.as_str(),
            source: r.source,
            flag: r.flag,
            device_id: r.device_id,
        },
    )
    .await
}

/// One patient's blood-pressure readings (mm[Hg], pulse per minute), oldest first.
#[utoipa::path(get, path = "/v1/patients/{patient_id}/blood-pressure", tag = "readings",
    params(ReadingsQuery, PatientPath),
    responses((status = 200, body = Page<BloodPressurePoint>), BadRequest, Unauthenticated,
        Forbidden, NotFound))]
async fn blood_pressure(
    PatientRequest(state, principal, patient_id): PatientRequest,
    Query(query): Query<ReadingsQuery>,
) -> Result<Json<Page<BloodPressurePoint>>, ApiError> {
    readings_page::<BloodPressure, _>(
        &state,
        &principal,
        (patient_id, &query),
        AccessAction::ReadBloodPressureReadings,
        BloodPressurePoint::from,
    )
    .await
}

/// One patient's treatments (insulin, carbohydrates, exercise, notes, sensor starts and
/// changes, calibrations), oldest first. `unit` does not apply: amounts are in their kind's
/// unit.
#[utoipa::path(get, path = "/v1/patients/{patient_id}/treatments", tag = "readings",
    params(ReadingsQuery, PatientPath),
    responses((status = 200, body = Page<TreatmentPoint>), BadRequest, Unauthenticated,
        Forbidden, NotFound))]
async fn treatments(
    PatientRequest(state, principal, patient_id): PatientRequest,
    Query(query): Query<ReadingsQuery>,
) -> Result<Json<Page<TreatmentPoint>>, ApiError> {
    treatments_page(&state, &principal, patient_id, &query).await
}

/// A page of treatments for `principal` (a user, or a share link's holder).
pub(crate) async fn treatments_page(
    state: &AppState,
    principal: &Principal,
    patient_id: Uuid,
    query: &ReadingsQuery,
) -> Result<Json<Page<TreatmentPoint>>, ApiError> {
    readings_page::<Treatments, _>(
        state,
        principal,
        (patient_id, query),
        AccessAction::ReadTreatments,
        |t| TreatmentPoint {
            amount_unit: t.amount_unit(),
            measured_at: t.measured_at,
            kind: t.kind,
            amount: t.amount,
            duration_minutes: t.duration_minutes,
            note: t.note,
            device_id: t.device_id,
        },
    )
    .await
}

//! The Nightscout front door (docs/nightscout.md): one site per patient at
//! `/nightscout/{site}/api/v1/…`, speaking the v1 REST API that uploaders (xDrip+, Loop,
//! vendor-cloud bridges) and follower apps and libraries use.
//!
//! - **Uploads** (`POST entries`, `treatments`) need the site's upload credential (a device of
//!   kind `uploader`) in `api-secret` as the SHA-1 hex of its secret. They are translated by
//!   `chronicle_domain::nightscout` and submitted as one message through the ingest
//!   ([`IngestHandle::submit`](chronicle_ingest::IngestHandle::submit)), so validation,
//!   deduplication, recorded refusals, alerts and rollups are the MQTT ones.
//! - **Reads** need a share link's token (`token=` in the query, `api-secret: token=…`, or a
//!   bearer token): the link's grant decides through the gate, which logs every read in the
//!   patient's access log under the link's name. A trends-only link reads no entries.
//! - **Errors** take Nightscout's shape, `{"status": <code>, "message": …}`, because its
//!   clients parse that (the API's RFC 9457 problems are for Chronicle's own clients).

use crate::AppState;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chronicle_domain::sharing::{
    Access, AccessAction, AccessRequest, DataCategory, DenyReason, Principal,
};
use chronicle_domain::wire::Ack;
use chronicle_domain::{DeviceId, Publisher, RejectionReason, nightscout};
use chronicle_ingest::{BrokerAuthorization, IncomingMessage};
use chronicle_storage::StorageError;
use chronicle_storage::gate::Permit;
use chronicle_storage::readings::{Glucose, StoredGlucose, StoredTreatment, Treatments};
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use uuid::Uuid;

/// The largest upload a site reads: a day of CGM readings with treatments fits many times.
pub const MAX_UPLOAD_BYTES: usize = 1024 * 1024;

/// Records per message submitted to the ingest (well inside its per-message limits).
const RECORDS_PER_MESSAGE: usize = 1000;

/// How many entries or treatments a read returns when it names no `count`, and at most.
const DEFAULT_ENTRIES: i64 = 10;
const DEFAULT_TREATMENTS: i64 = 100;
const MAX_COUNT: i64 = 10_000;

/// The Nightscout version a site reports: the v1 API it follows.
const NIGHTSCOUT_API_VERSION: &str = "14.2.6";

/// Marks a response as Nightscout-shaped, so the API's problem middleware leaves it alone.
#[derive(Debug, Clone, Copy)]
pub struct NightscoutShaped;

/// The site's routes.
pub fn router() -> Router<AppState> {
    const V1: &str = "/nightscout/{site}/api/v1";
    let entries = get(entries).post(upload_entries);
    let treatments = get(treatments).post(upload_treatments);
    let devicestatus = get(devicestatus).post(upload_devicestatus);
    Router::new()
        .route(&format!("{V1}/status.json"), get(status))
        .route(&format!("{V1}/status"), get(status))
        .route(&format!("{V1}/verifyauth"), get(verify_auth))
        .route(&format!("{V1}/entries"), entries.clone())
        .route(&format!("{V1}/entries.json"), entries)
        .route(&format!("{V1}/entries/{{spec}}"), get(entries_of_spec))
        .route(&format!("{V1}/treatments"), treatments.clone())
        .route(&format!("{V1}/treatments.json"), treatments)
        .route(&format!("{V1}/devicestatus"), devicestatus.clone())
        .route(&format!("{V1}/devicestatus.json"), devicestatus)
        .route(&format!("{V1}/profile"), get(profile))
        .route(&format!("{V1}/profile.json"), get(profile))
        .route(
            "/nightscout/{site}/{*rest}",
            axum::routing::any(unknown_route),
        )
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
}

/// An error as Nightscout's clients read it.
#[derive(Debug)]
pub struct NightscoutError {
    status: StatusCode,
    message: String,
}

impl NightscoutError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        NightscoutError {
            status,
            message: message.into(),
        }
    }

    fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
}

impl IntoResponse for NightscoutError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({"status": self.status.as_u16(), "message": self.message})),
        )
            .into_response();
        response.extensions_mut().insert(NightscoutShaped);
        response
    }
}

impl From<StorageError> for NightscoutError {
    fn from(e: StorageError) -> Self {
        if let Some(problem) = e.invalid_value() {
            return Self::new(StatusCode::BAD_REQUEST, problem);
        }
        tracing::error!(error = %e, "nightscout request failed in storage");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

type Answer = Result<Response, NightscoutError>;

/// A JSON answer, marked as Nightscout-shaped.
fn answer(body: Value) -> Answer {
    let mut response = Json(body).into_response();
    response.extensions_mut().insert(NightscoutShaped);
    Ok(response)
}

/// The site a request names: its patient.
struct Site {
    patient_id: Uuid,
}

async fn site(state: &AppState, site_id: &str) -> Result<Site, NightscoutError> {
    let valid = site_id.len() <= 64 && site_id.bytes().all(|b| b.is_ascii_alphanumeric());
    let found = if valid {
        state.store.nightscout_site_patient(site_id).await?
    } else {
        None
    };
    found
        .map(|patient_id| Site { patient_id })
        .ok_or_else(|| NightscoutError::new(StatusCode::NOT_FOUND, "no such site"))
}

/// What a request presents: an upload credential's SHA-1 hex (`api-secret`, or a bearer
/// token of 40 hex digits) and a share link's token (`token=` in the query or in
/// `api-secret`, or any other bearer token).
#[derive(Debug, Default)]
struct Presented {
    api_secret: Option<String>,
    token: Option<String>,
}

fn presented(headers: &HeaderMap, query: &[(String, String)]) -> Presented {
    let mut found = Presented::default();
    let mut classify = |value: &str| {
        let value = value.trim();
        if let Some(token) = value.strip_prefix("token=") {
            found.token.get_or_insert_with(|| token.to_owned());
        } else if value.len() == 40 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
            found.api_secret.get_or_insert_with(|| value.to_owned());
        } else if !value.is_empty() {
            found.token.get_or_insert_with(|| value.to_owned());
        }
    };
    if let Some(secret) = headers.get("api-secret").and_then(|v| v.to_str().ok()) {
        classify(secret);
    }
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        classify(bearer);
    }
    if let Some((_, token)) = query.iter().find(|(k, _)| k == "token") {
        found.token.get_or_insert_with(|| token.clone());
    }
    found
}

/// The site's upload credential the request presents.
async fn uploader(
    state: &AppState,
    site: &Site,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<DeviceId, NightscoutError> {
    let Some(digest) = presented(headers, query).api_secret else {
        return Err(NightscoutError::unauthorized(
            "uploads need the site's upload credential: api-secret with the SHA-1 hex of its \
             API secret",
        ));
    };
    state
        .store
        .nightscout_uploader(site.patient_id, &digest)
        .await?
        .ok_or_else(|| {
            NightscoutError::unauthorized("api-secret is not an upload credential of this site")
        })
}

/// The gate's permit for a follower's read, logged under the share link.
async fn follower_permit(
    state: &AppState,
    site: &Site,
    presented: &Presented,
    category: DataCategory,
    action: AccessAction,
) -> Result<Permit, NightscoutError> {
    let Some(token) = presented.token.as_deref() else {
        return Err(NightscoutError::unauthorized(
            "reads need a share link's token (token=…); upload credentials only write",
        ));
    };
    let holder = state
        .store
        .share_link_holder(token)
        .await?
        .filter(|h| h.patient_id == site.patient_id)
        .ok_or_else(|| NightscoutError::unauthorized("unknown token"))?;
    let request = AccessRequest {
        patient_id: site.patient_id,
        category,
        access: Access::ViewReadings,
        at: Utc::now(),
        identified: true,
    };
    match state
        .store
        .authorize(&Principal::share_link(holder.link_id), request, action)
        .await?
    {
        Ok(permit) => Ok(permit),
        // An inactive grant (revoked, expired) names no one any more.
        Err(DenyReason::NoGrant) => Err(NightscoutError::unauthorized(
            "this share link is revoked or expired",
        )),
        Err(_) => Err(NightscoutError::new(
            StatusCode::FORBIDDEN,
            format!(
                "this share link does not allow individual {}",
                category.as_str().replace('_', " ")
            ),
        )),
    }
}

async fn status(State(state): State<AppState>, Path(site_id): Path<String>) -> Answer {
    site(&state, &site_id).await?;
    let now = Utc::now();
    answer(json!({
        "status": "ok",
        "name": "Chronicle",
        "version": NIGHTSCOUT_API_VERSION,
        "chronicleVersion": env!("CARGO_PKG_VERSION"),
        "serverTime": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "serverTimeEpoch": now.timestamp_millis(),
        "apiEnabled": true,
        "careportalEnabled": false,
        "boluscalcEnabled": false,
        "settings": {
            "units": "mg/dl",
            "enable": ["careportal"],
            "authDefaultRoles": "denied",
            "customTitle": "Chronicle",
        },
        "extendedSettings": {},
        "authorized": null,
    }))
}

/// Which credential a request presents, as Nightscout's `verifyauth` tells its clients.
async fn verify_auth(
    State(state): State<AppState>,
    Path(site_id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let site = site(&state, &site_id).await?;
    let can_write = uploader(&state, &site, &headers, &query).await.is_ok();
    let can_read = match presented(&headers, &query).token {
        Some(token) => state
            .store
            .share_link_holder(&token)
            .await?
            .is_some_and(|h| h.patient_id == site.patient_id),
        None => false,
    };
    if !(can_read || can_write) {
        return Err(NightscoutError::unauthorized("UNAUTHORIZED"));
    }
    answer(json!({"status": 200, "message": {
        "canRead": can_read, "canWrite": can_write, "isAdmin": false, "message": "OK",
    }}))
}

async fn unknown_route() -> NightscoutError {
    NightscoutError::new(
        StatusCode::NOT_FOUND,
        "not served by Chronicle's Nightscout API (docs/nightscout.md lists what is)",
    )
}

// ---------------------------------------------------------------------------------------
// Uploads

/// The body of an upload: an array of documents or one document.
fn documents(body: &Bytes) -> Result<Vec<Value>, NightscoutError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(one @ Value::Object(_)) => Ok(vec![one]),
        Ok(_) => Err(NightscoutError::new(
            StatusCode::BAD_REQUEST,
            "expected a JSON array of documents or one document",
        )),
        Err(e) => Err(NightscoutError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        )),
    }
}

/// Submits translated records to the ingest as the uploader device, one message per
/// [`RECORDS_PER_MESSAGE`], and sums the acknowledgements.
async fn submit(
    state: &AppState,
    uploader: &DeviceId,
    records: Vec<Value>,
) -> Result<Ack, NightscoutError> {
    let unavailable =
        || NightscoutError::new(StatusCode::SERVICE_UNAVAILABLE, "the ingest is stopping");
    let mut total = Ack {
        message_id: None,
        stored: 0,
        duplicates: 0,
        rejected: 0,
        rejections: Vec::new(),
        redelivered: false,
    };
    for (chunk_number, chunk) in records.chunks(RECORDS_PER_MESSAGE).enumerate() {
        let payload = serde_json::to_vec(&json!({ "readings": chunk }))
            .map_err(|e| NightscoutError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
        let outcome = state
            .ingest
            .submit(IncomingMessage {
                device_id: uploader.as_str().to_owned(),
                payload: Bytes::from(payload),
                received_at: Utc::now(),
                // The site authenticated the uploader; the ingest checks it again against the
                // registry like any publisher.
                authorization: BrokerAuthorization::Allowed(Publisher::Device(uploader.clone())),
                redelivered: false,
            })
            .await
            .map_err(|_| unavailable())?
            .await
            .map_err(|_| unavailable())?;
        let ack = outcome.ack;
        total.stored += ack.stored;
        total.duplicates += ack.duplicates;
        total.rejected += ack.rejected;
        let offset = chunk_number * RECORDS_PER_MESSAGE;
        total
            .rejections
            .extend(ack.rejections.into_iter().map(|mut r| {
                r.index = r.index.map(|i| i + offset);
                r
            }));
    }
    Ok(total)
}

/// The answer to an upload. Nightscout answers 200 with the documents it took. An upload
/// of which nothing was stored (or already held) and something was refused as invalid (not
/// merely of a type Chronicle does not keep, such as `cal` entries) is refused as a whole with
/// 400 and the reasons, so the uploader shows the error; otherwise 200, the refusals being
/// recorded in the patient's rejected readings either way.
fn upload_answer(documents: Vec<Value>, ack: &Ack) -> Answer {
    let invalid: Vec<String> = ack
        .rejections
        .iter()
        .filter(|r| r.reason != RejectionReason::UnknownType.code())
        .map(|r| format!("{}: {}", r.reason, r.detail))
        .collect();
    if ack.stored + ack.duplicates == 0 && !invalid.is_empty() {
        return Err(NightscoutError::new(
            StatusCode::BAD_REQUEST,
            format!("refused: {}", invalid.join("; ")),
        ));
    }
    answer(Value::Array(documents))
}

async fn upload_entries(
    State(state): State<AppState>,
    Path(site_id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Answer {
    let site = site(&state, &site_id).await?;
    let device = uploader(&state, &site, &headers, &query).await?;
    let documents = documents(&body)?;
    let ack = submit(&state, &device, nightscout::entries_to_records(&documents)).await?;
    upload_answer(documents, &ack)
}

async fn upload_treatments(
    State(state): State<AppState>,
    Path(site_id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Answer {
    let site = site(&state, &site_id).await?;
    let device = uploader(&state, &site, &headers, &query).await?;
    let documents = documents(&body)?;
    let ack = submit(
        &state,
        &device,
        nightscout::treatments_to_records(&documents),
    )
    .await?;
    upload_answer(documents, &ack)
}

/// Device status (a phone's battery, a pump's reservoir, a loop's prediction) is accepted
/// from the uploader and not kept: it describes the moment, not the patient's record, and
/// rejecting it would make uploaders retry for ever.
async fn upload_devicestatus(
    State(state): State<AppState>,
    Path(site_id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Answer {
    let site = site(&state, &site_id).await?;
    uploader(&state, &site, &headers, &query).await?;
    answer(Value::Array(documents(&body)?))
}

/// Nothing of device status is kept, so there is none to read.
async fn devicestatus(State(state): State<AppState>, Path(site_id): Path<String>) -> Answer {
    site(&state, &site_id).await?;
    answer(json!([]))
}

/// Chronicle keeps no Nightscout profile (basal schedules, carb ratios): an empty list.
async fn profile(State(state): State<AppState>, Path(site_id): Path<String>) -> Answer {
    site(&state, &site_id).await?;
    answer(json!([]))
}

// ---------------------------------------------------------------------------------------
// Reads

/// What a read's query asks for.
#[derive(Debug, Default, PartialEq)]
struct Find {
    /// Inclusive.
    from: Option<DateTime<Utc>>,
    /// Exclusive.
    to: Option<DateTime<Utc>>,
    count: Option<i64>,
    /// `find[type]`: `sgv`, `mbg`, `cal`.
    entry_type: Option<String>,
}

/// A time as Nightscout's queries carry it: milliseconds since the epoch, or ISO 8601 (a
/// date alone is its midnight, UTC).
fn query_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(ms) = text.parse::<f64>() {
        return DateTime::from_timestamp_millis(ms as i64);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

/// Reads `count` and the `find[<time field>][$op]` bounds (`$gte`, `$gt`, `$lte`, `$lt`, or
/// equality) of a query; other `find` fields are not filters Chronicle applies.
fn parse_find(query: &[(String, String)], time_fields: &[&str]) -> Result<Find, NightscoutError> {
    let bad = |what: String| NightscoutError::new(StatusCode::BAD_REQUEST, what);
    let mut find = Find::default();
    let one_microsecond = chrono::Duration::microseconds(1);
    for (key, value) in query {
        if key == "count" {
            let count = value
                .parse::<i64>()
                .map_err(|_| bad(format!("count must be a whole number, not {value:?}")))?;
            find.count = Some(count.clamp(1, MAX_COUNT));
            continue;
        }
        let Some(inner) = key.strip_prefix("find[") else {
            continue;
        };
        let (field, operator) = match inner.split_once("][") {
            Some((field, op)) => (field, op.trim_end_matches(']')),
            None => (inner.trim_end_matches(']'), ""),
        };
        if field == "type" {
            find.entry_type = Some(value.clone());
            continue;
        }
        if !time_fields.contains(&field) {
            continue;
        }
        let at = query_time(value).ok_or_else(|| bad(format!("{key}: not a time: {value:?}")))?;
        let (from, to) = match operator {
            "$gte" => (Some(at), None),
            "$gt" => (Some(at + one_microsecond), None),
            "$lte" => (None, Some(at + one_microsecond)),
            "$lt" => (None, Some(at)),
            "" | "$eq" => (Some(at), Some(at + one_microsecond)),
            other => return Err(bad(format!("{key}: unsupported operator {other:?}"))),
        };
        if let Some(from) = from {
            find.from = Some(find.from.map_or(from, |f| f.max(from)));
        }
        if let Some(to) = to {
            find.to = Some(find.to.map_or(to, |t| t.min(to)));
        }
    }
    Ok(find)
}

/// An id in Nightscout's form (24 hex digits, a MongoDB ObjectId's size), stable for a record.
fn object_id(parts: &[&str]) -> String {
    let mut hasher = Sha1::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..12])
}

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Which entries a read wants.
#[derive(Debug, Clone, Copy, PartialEq)]
enum EntryFilter {
    All,
    Sgv,
    Mbg,
    /// Calibration records: Chronicle keeps none as entries.
    Cal,
}

impl EntryFilter {
    fn parse(text: &str) -> Option<EntryFilter> {
        match text {
            "sgv" => Some(EntryFilter::Sgv),
            "mbg" => Some(EntryFilter::Mbg),
            "cal" => Some(EntryFilter::Cal),
            _ => None,
        }
    }

    fn keeps(self, reading: &StoredGlucose) -> bool {
        match self {
            EntryFilter::All => true,
            EntryFilter::Sgv => reading.source == "cgm",
            EntryFilter::Mbg => reading.source != "cgm",
            EntryFilter::Cal => false,
        }
    }
}

async fn entries(
    State(state): State<AppState>,
    Path(site_id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    read_entries(&state, &site_id, &headers, &query, EntryFilter::All, None).await
}

/// `entries/sgv.json`, `entries/mbg`, `entries/cal`, `entries/current.json`.
async fn entries_of_spec(
    State(state): State<AppState>,
    Path((site_id, spec)): Path<(String, String)>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let spec = spec.strip_suffix(".json").unwrap_or(&spec);
    match spec {
        "current" => {
            read_entries(
                &state,
                &site_id,
                &headers,
                &query,
                EntryFilter::Sgv,
                Some(1),
            )
            .await
        }
        other => match EntryFilter::parse(other) {
            Some(filter) => read_entries(&state, &site_id, &headers, &query, filter, None).await,
            None => Err(NightscoutError::new(
                StatusCode::NOT_FOUND,
                format!("no entries of type {other:?}: sgv, mbg, cal and current are served"),
            )),
        },
    }
}

async fn read_entries(
    state: &AppState,
    site_id: &str,
    headers: &HeaderMap,
    query: &[(String, String)],
    filter: EntryFilter,
    fixed_count: Option<i64>,
) -> Answer {
    let site = site(state, site_id).await?;
    let find = parse_find(query, &["date", "dateString", "sysTime", "mills"])?;
    let filter = match (filter, find.entry_type.as_deref()) {
        (EntryFilter::All, Some(t)) => EntryFilter::parse(t).unwrap_or(EntryFilter::Cal),
        (f, _) => f,
    };
    let count = fixed_count.or(find.count).unwrap_or(DEFAULT_ENTRIES);
    let permit = follower_permit(
        state,
        &site,
        &presented(headers, query),
        DataCategory::Glucose,
        AccessAction::ReadGlucoseReadings,
    )
    .await?;
    if filter == EntryFilter::Cal {
        return answer(json!([]));
    }
    // One more than asked, so the oldest entry served has a delta too.
    let wanted = usize::try_from(count + 1).unwrap_or(usize::MAX);
    let mut kept: Vec<StoredGlucose> = Vec::new();
    let mut to = find.to;
    for _ in 0..20 {
        let batch = state
            .store
            .newest_readings::<Glucose>(&permit, find.from, to, count + 1)
            .await?;
        let exhausted = (batch.len() as i64) < count + 1;
        to = batch.last().map(|r| r.measured_at);
        kept.extend(batch.into_iter().filter(|r| filter.keeps(r)));
        if exhausted || kept.len() >= wanted {
            break;
        }
    }
    kept.truncate(wanted);
    let entries: Vec<Value> = (0..kept.len().min(count as usize))
        .map(|i| entry_document(&kept[i], kept[i + 1..].iter()))
        .collect();
    answer(Value::Array(entries))
}

/// Nightscout's trend arrow for a rate of change in mg/dL per minute (the thresholds CGM
/// receivers use: 1, 2 and 3 mg/dL/min).
fn direction(rate: f64) -> &'static str {
    match rate {
        r if r >= 3.0 => "DoubleUp",
        r if r >= 2.0 => "SingleUp",
        r if r >= 1.0 => "FortyFiveUp",
        r if r > -1.0 => "Flat",
        r if r > -2.0 => "FortyFiveDown",
        r if r > -3.0 => "SingleDown",
        _ => "DoubleDown",
    }
}

/// One stored glucose reading as a Nightscout entry; `older` are the readings before it,
/// newest first, from which a CGM value's delta and direction come (the same device's
/// previous value within 15 minutes).
fn entry_document<'a>(
    reading: &StoredGlucose,
    mut older: impl Iterator<Item = &'a StoredGlucose>,
) -> Value {
    let ms = reading.measured_at.timestamp_millis();
    // Nightscout keeps mg/dL as whole numbers.
    let value = reading.value_mg_dl.round() as i64;
    let id = object_id(&[&reading.device_id, &reading.source, &ms.to_string()]);
    if reading.source != "cgm" {
        return json!({
            "_id": id, "type": "mbg", "mbg": value, "date": ms, "mills": ms,
            "dateString": iso(reading.measured_at), "sysTime": iso(reading.measured_at),
            "utcOffset": 0, "device": reading.device_id,
        });
    }
    let previous = older.find(|o| {
        o.source == "cgm"
            && o.device_id == reading.device_id
            && reading.measured_at - o.measured_at <= chrono::Duration::minutes(15)
    });
    let (delta, direction) = match previous {
        Some(p) => {
            let minutes = (reading.measured_at - p.measured_at).num_seconds() as f64 / 60.0;
            let delta = reading.value_mg_dl - p.value_mg_dl;
            let rate = if minutes > 0.0 { delta / minutes } else { 0.0 };
            ((delta * 10.0).round() / 10.0, self::direction(rate))
        }
        None => (0.0, "NONE"),
    };
    let mut entry = json!({
        "_id": id, "type": "sgv", "sgv": value, "delta": delta, "direction": direction,
        "date": ms, "mills": ms, "dateString": iso(reading.measured_at),
        "sysTime": iso(reading.measured_at), "utcOffset": 0, "device": reading.device_id,
    });
    if let Some(flag) = &reading.flag {
        entry["chronicleFlag"] = json!(flag);
    }
    entry
}

async fn treatments(
    State(state): State<AppState>,
    Path(site_id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let site = site(&state, &site_id).await?;
    let find = parse_find(&query, &["created_at", "date", "mills", "timestamp"])?;
    let permit = follower_permit(
        &state,
        &site,
        &presented(&headers, &query),
        DataCategory::Treatments,
        AccessAction::ReadTreatments,
    )
    .await?;
    let rows = state
        .store
        .newest_readings::<Treatments>(
            &permit,
            find.from,
            find.to,
            find.count.unwrap_or(DEFAULT_TREATMENTS),
        )
        .await?;
    answer(Value::Array(rows.iter().map(treatment_document).collect()))
}

/// One stored treatment as a Nightscout treatment.
fn treatment_document(t: &StoredTreatment) -> Value {
    let ms = t.measured_at.timestamp_millis();
    let amount = t.amount;
    let duration = t.duration_minutes.map(f64::from);
    let mut doc = match t.kind.as_str() {
        "bolus_insulin" => json!({"eventType": "Correction Bolus", "insulin": amount}),
        "basal_insulin" => {
            // Stored as what was delivered over the duration; Nightscout speaks of a rate.
            let rate = amount
                .zip(duration.filter(|d| *d > 0.0))
                .map(|(units, minutes)| units * 60.0 / minutes);
            json!({"eventType": "Temp Basal", "absolute": rate, "rate": rate, "insulin": amount})
        }
        "carbohydrates" => json!({"eventType": "Carb Correction", "carbs": amount}),
        "exercise" => json!({"eventType": "Exercise"}),
        "note" => json!({"eventType": "Note"}),
        "sensor_start" => json!({"eventType": "Sensor Start"}),
        "sensor_change" => json!({"eventType": "Sensor Change"}),
        "calibration" => json!({"eventType": "BG Check", "glucose": amount,
            "glucoseType": "Finger", "units": "mg/dl"}),
        other => json!({"eventType": other}),
    };
    let fields = [
        (
            "_id",
            json!(object_id(&[&t.device_id, &t.kind, &ms.to_string()])),
        ),
        ("created_at", json!(iso(t.measured_at))),
        ("date", json!(ms)),
        ("mills", json!(ms)),
        ("utcOffset", json!(0)),
        ("enteredBy", json!(t.device_id)),
        ("duration", json!(duration)),
        ("notes", json!(t.note)),
    ];
    if let Value::Object(map) = &mut doc {
        for (name, value) in fields {
            if !value.is_null() {
                map.insert(name.to_owned(), value);
            }
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn finds_read_nightscout_operators_and_times() {
        let find = parse_find(
            &query(&[
                ("find[date][$gte]", "1772362800000"),
                ("find[dateString][$lt]", "2026-03-02"),
                ("count", "50"),
                ("find[type]", "sgv"),
                ("find[sgv][$gt]", "100"),
            ]),
            &["date", "dateString"],
        )
        .expect("valid");
        assert_eq!(
            find.from.map(|t| t.to_rfc3339()),
            Some("2026-03-01T11:00:00+00:00".into())
        );
        assert_eq!(
            find.to.map(|t| t.to_rfc3339()),
            Some("2026-03-02T00:00:00+00:00".into())
        );
        assert_eq!(
            (find.count, find.entry_type.as_deref()),
            (Some(50), Some("sgv"))
        );
        assert!(parse_find(&query(&[("find[date][$regex]", "1")]), &["date"]).is_err());
        assert!(parse_find(&query(&[("find[date][$gte]", "soon")]), &["date"]).is_err());
        assert!(parse_find(&query(&[("count", "ten")]), &["date"]).is_err());
        let exclusive =
            parse_find(&query(&[("find[date][$gt]", "1000")]), &["date"]).expect("valid");
        assert!(exclusive.from > DateTime::from_timestamp_millis(1000));
    }

    #[test]
    fn credentials_are_told_apart() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "api-secret",
            "A9993E364706816ABA3E25717850C26C9CD0D89D"
                .parse()
                .expect("header"),
        );
        let p = presented(&headers, &[]);
        assert!(p.api_secret.is_some() && p.token.is_none());
        headers.insert("api-secret", "token=follow-me".parse().expect("header"));
        let p = presented(&headers, &query(&[("token", "other")]));
        assert_eq!(
            (p.api_secret, p.token.as_deref()),
            (None, Some("follow-me"))
        );
    }

    #[test]
    fn arrows_follow_the_rate() {
        assert_eq!(direction(0.2), "Flat");
        assert_eq!(direction(-2.5), "SingleDown");
        assert_eq!(direction(3.5), "DoubleUp");
    }
}

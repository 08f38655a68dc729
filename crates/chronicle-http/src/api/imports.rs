//! Imports of vendor exports (Dexcom Clarity CSV, LibreView CSV, Nightscout JSON) by the
//! patient or their guardian, in two steps: a preview (what would be stored, what is already
//! stored, every refused row with its line) and the import itself, which submits the records
//! to the same ingest as MQTT under the patient's import device for the source
//! (`chronicle_storage::imports`). The file is sent both times; nothing is held between the
//! steps. See `docs/interop.md`.

use super::actor;
use super::{PatientPath, PatientRequest};
use crate::AppState;
use crate::error::ApiError;
use crate::error::refusals::{BadRequest, Forbidden, NotFound, Unauthenticated};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query};
use chronicle_domain::Reading;
use chronicle_domain::device::Publisher;
use chronicle_domain::imports::{
    Checked, DateOrder, ImportFormat, ImportOptions, ImportRow, ImportStream, Location,
    ParsedImport, check_rows, parse_import,
};
use chronicle_domain::sharing::AccessAction;
use chronicle_domain::zone::parse_time_zone;
use chronicle_ingest::{BrokerAuthorization, IncomingMessage};
use chronicle_storage::gate::PatientActor;
use chronicle_storage::imports::{ImportDevice, ImportKeys};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// The largest export accepted in one upload: a year of a CGM's readings with room to spare.
pub const MAX_IMPORT_BYTES: usize = 16 * 1024 * 1024;

/// Records per message handed to the ingest, and the payload size a message stays under
/// (both well inside the ingest's limits).
const RECORDS_PER_MESSAGE: usize = 1000;
const MESSAGE_BYTES: usize = 512 * 1024;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(preview_import))
        .routes(routes!(commit_import))
        .layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ImportQuery {
    /// `dexcom_clarity`, `libreview` or `nightscout`.
    format: String,
    /// The IANA zone of the export's local times (Clarity, LibreView); the patient's zone by
    /// default.
    time_zone: Option<String>,
    /// The order of day and month in LibreView's dates (`mdy`, `dmy`, `ymd`), when the file
    /// leaves it open.
    date_order: Option<String>,
}

/// A row not stored, where it is in the file and why.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RefusedRow {
    /// The CSV line, counted from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    /// The JSON element (`entries[3]`), for a Nightscout export.
    #[serde(skip_serializing_if = "Option::is_none")]
    entry: Option<String>,
    /// A stable code: the ingest's (`out_of_range`, `stale_timestamp`, …) or the reader's
    /// (`invalid_timestamp`, `nonexistent_local_time`, `missing_value`, `invalid_value`,
    /// `not_imported`).
    reason: String,
    detail: String,
}

impl RefusedRow {
    fn new(location: &Location, reason: String, detail: String) -> Self {
        let (line, entry) = match location {
            Location::Line(line) => (Some(*line), None),
            Location::Entry { .. } => (None, Some(location.to_string())),
        };
        RefusedRow {
            line,
            entry,
            reason,
            detail,
        }
    }
}

/// What importing the file would do.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ImportPreview {
    format: String,
    /// The zone local times were read in.
    time_zone: String,
    /// Records read from the file (a row may give several, e.g. rapid and long-acting insulin).
    records: usize,
    /// Header and metadata rows, which hold no reading.
    metadata_rows: usize,
    /// Glucose readings the ingest would accept.
    glucose_readings: usize,
    /// Treatments the ingest would accept.
    treatments: usize,
    /// The earliest and latest accepted record.
    first_at: Option<DateTime<Utc>>,
    last_at: Option<DateTime<Utc>>,
    /// Accepted records already stored (an earlier import of the same data) or repeated in
    /// the file: they would not be stored again.
    duplicates: usize,
    /// Accepted records that would be stored.
    new_records: usize,
    /// Glucose readings the patient's other devices (a live sensor, other imports) already
    /// hold between `first_at` and `last_at`: if many, this history may be here already, and
    /// importing it would keep it twice (under two devices).
    other_sources_in_span: usize,
    refused: Vec<RefusedRow>,
}

/// What the import stored.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ImportResult {
    format: String,
    time_zone: String,
    stored: usize,
    /// Already held (the same device, kind and time), not stored again.
    duplicates: usize,
    refused: Vec<RefusedRow>,
    /// The patient's import devices the records were stored under.
    devices: Vec<String>,
}

struct Request {
    format: ImportFormat,
    time_zone: String,
    parsed: ParsedImport,
}

async fn read_request(
    state: &AppState,
    patient_id: Uuid,
    query: &ImportQuery,
    body: &[u8],
) -> Result<Request, ApiError> {
    let format = ImportFormat::parse(&query.format).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unknown format {:?}: expected dexcom_clarity, libreview or nightscout",
            query.format
        ))
    })?;
    let date_order = query
        .date_order
        .as_deref()
        .map(|text| {
            DateOrder::parse(text).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "unknown date_order {text:?}: expected mdy, dmy or ymd"
                ))
            })
        })
        .transpose()?;
    let time_zone = match &query.time_zone {
        Some(zone) => zone.clone(),
        None => {
            state
                .store
                .patient(patient_id)
                .await?
                .ok_or(ApiError::NotFound)?
                .time_zone
        }
    };
    let zone = parse_time_zone(&time_zone).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let options = ImportOptions {
        time_zone: zone,
        date_order,
    };
    let body = body.to_vec();
    // Reading a large export is CPU work: keep it off the async workers.
    let parsed = tokio::task::spawn_blocking(move || parse_import(format, &body, &options))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(Request {
        format,
        time_zone,
        parsed,
    })
}

/// The dedup key of an accepted reading within its stream.
fn key(reading: &Reading) -> (&'static str, DateTime<Utc>) {
    (reading.series(), reading.measured_at())
}

/// Preview an import: what the file holds, what is already stored, and every row that would
/// be refused, with its line. Nothing is stored. The patient or their guardian.
#[utoipa::path(post, path = "/v1/patients/{patient_id}/imports/preview", tag = "imports",
    params(ImportQuery, PatientPath),
    request_body(content = String, content_type = "text/csv",
        description = "The export as downloaded (CSV, or JSON for Nightscout)"),
    responses((status = 200, body = ImportPreview), BadRequest, Unauthenticated, Forbidden,
        NotFound))]
async fn preview_import(upload: ImportUpload) -> Result<Json<ImportPreview>, ApiError> {
    let (actor, request) = upload.open(AccessAction::PreviewImport).await?;
    let state = upload.state();
    let checked = check_rows(
        &request.parsed,
        Utc::now(),
        state.ingest.pipeline().limits(),
    );
    let mut refused = Vec::new();
    let mut glucose_readings = 0;
    let mut treatments = 0;
    let mut first_at: Option<DateTime<Utc>> = None;
    let mut last_at: Option<DateTime<Utc>> = None;
    let mut seen = HashSet::new();
    let mut repeats = 0;
    let mut keys: BTreeMap<ImportStream, ImportKeys> = BTreeMap::new();
    for (row, checked) in request.parsed.rows.iter().zip(checked) {
        match checked {
            Checked::Refused { reason, detail } => {
                refused.push(RefusedRow::new(&row.location, reason, detail));
            }
            Checked::Accepted(reading) => {
                let at = reading.measured_at();
                first_at = Some(first_at.map_or(at, |t| t.min(at)));
                last_at = Some(last_at.map_or(at, |t| t.max(at)));
                match &reading {
                    Reading::Treatment(_) => treatments += 1,
                    _ => glucose_readings += 1,
                }
                let (series, at) = key(&reading);
                if !seen.insert((row.stream, series, at)) {
                    repeats += 1;
                    continue;
                }
                let stream_keys = keys.entry(row.stream).or_default();
                match reading {
                    Reading::Treatment(_) => stream_keys.treatments.push((series.to_owned(), at)),
                    _ => stream_keys.glucose.push(at),
                }
            }
        }
    }
    let mut stored = 0;
    for (stream, keys) in &keys {
        let device = state
            .store
            .import_device(&actor, request.format.as_str(), stream.device_kind())
            .await?;
        if let Some(device) = device {
            stored += state
                .store
                .stored_import_keys(&actor, &device.id, keys)
                .await?;
        }
    }
    let other_sources_in_span = match (first_at, last_at) {
        (Some(from), Some(to)) => {
            state
                .store
                .glucose_from_other_sources(&actor, request.format.as_str(), from, to)
                .await?
        }
        _ => 0,
    };
    let accepted = glucose_readings + treatments;
    Ok(Json(ImportPreview {
        format: request.format.as_str().to_owned(),
        time_zone: request.time_zone,
        records: request.parsed.rows.len(),
        metadata_rows: request.parsed.metadata_rows,
        glucose_readings,
        treatments,
        first_at,
        last_at,
        duplicates: repeats + stored,
        new_records: accepted.saturating_sub(repeats + stored),
        other_sources_in_span,
        refused,
    }))
}

/// Import a file: its records go through the ingest (validation, units, deduplication,
/// recorded refusals) under the patient's import device for the source, so importing the
/// same data again stores nothing twice. The patient or their guardian.
#[utoipa::path(post, path = "/v1/patients/{patient_id}/imports", tag = "imports",
    params(ImportQuery, PatientPath),
    request_body(content = String, content_type = "text/csv",
        description = "The export as downloaded (CSV, or JSON for Nightscout)"),
    responses((status = 200, body = ImportResult), BadRequest, Unauthenticated, Forbidden,
        NotFound))]
async fn commit_import(upload: ImportUpload) -> Result<Json<ImportResult>, ApiError> {
    let (actor, request) = upload.open(AccessAction::ImportReadings).await?;
    let outcome = submit_rows(
        upload.state(),
        &actor,
        request.format.as_str(),
        &request.parsed.rows,
        |stream| import_label(request.format, stream),
    )
    .await?;
    Ok(Json(ImportResult {
        format: request.format.as_str().to_owned(),
        time_zone: request.time_zone,
        stored: outcome.stored,
        duplicates: outcome.duplicates,
        refused: outcome.refused,
        devices: outcome.devices.iter().map(|d| d.id.to_string()).collect(),
    }))
}

/// An uploaded export: the request about the patient, how to read the file (the query), and
/// the file, extracted in that order.
struct ImportUpload {
    patient: PatientRequest,
    query: ImportQuery,
    body: Bytes,
}

impl axum::extract::FromRequest<AppState> for ImportUpload {
    type Rejection = axum::response::Response;

    async fn from_request(
        request: axum::extract::Request,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        use axum::extract::FromRequestParts;
        use axum::response::IntoResponse;
        let (mut parts, body) = request.into_parts();
        let patient = PatientRequest::from_request_parts(&mut parts, state).await?;
        let Query(query) = Query::<ImportQuery>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let request = axum::extract::Request::from_parts(parts, body);
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(ImportUpload {
            patient,
            query,
            body,
        })
    }
}

impl ImportUpload {
    fn state(&self) -> &AppState {
        &self.patient.0
    }

    /// The gate's answer for writing into the patient's record (the patient, or the guardian
    /// they named: a care team reads; it does not write the patient's history), then the file
    /// read as the query says.
    async fn open(&self, action: AccessAction) -> Result<(PatientActor, Request), ApiError> {
        let PatientRequest(state, principal, patient_id) = &self.patient;
        let actor = actor(state, principal, *patient_id, action).await?;
        let request = read_request(state, *patient_id, &self.query, &self.body).await?;
        Ok((actor, request))
    }
}

fn import_label(format: ImportFormat, stream: ImportStream) -> String {
    let source = match format {
        ImportFormat::DexcomClarity => "Dexcom Clarity",
        ImportFormat::Libreview => "LibreView",
        ImportFormat::Nightscout => "Nightscout",
    };
    match stream {
        ImportStream::Cgm => format!("{source} import"),
        ImportStream::Meter => format!("{source} import (finger sticks)"),
    }
}

/// What the ingest did with submitted rows.
pub(crate) struct SubmitOutcome {
    pub stored: usize,
    pub duplicates: usize,
    /// Each refused row, in file order.
    pub refused: Vec<RefusedRow>,
    /// For each submitted row, in order: why it was refused, if it was.
    pub refusals: Vec<Option<(String, String)>>,
    pub devices: Vec<ImportDevice>,
}

/// Submits rows to the ingest under the patient's import devices for `source` (made when
/// missing), in messages the ingest takes, and gathers the outcomes row by row.
pub(crate) async fn submit_rows(
    state: &AppState,
    actor: &PatientActor,
    source: &str,
    rows: &[ImportRow],
    label: impl Fn(ImportStream) -> String,
) -> Result<SubmitOutcome, ApiError> {
    let mut outcome = SubmitOutcome {
        stored: 0,
        duplicates: 0,
        refused: Vec::new(),
        refusals: vec![None; rows.len()],
        devices: Vec::new(),
    };
    let mut pending = Vec::new();
    for stream in ImportStream::ALL {
        let stream_rows: Vec<(usize, &ImportRow)> = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.stream == stream)
            .collect();
        if stream_rows.is_empty() {
            continue;
        }
        let device = state
            .store
            .ensure_import_device(actor, source, stream.device_kind(), &label(stream))
            .await?;
        for chunk in chunks(&stream_rows) {
            let records: Vec<&Value> = chunk.iter().map(|(_, r)| &r.record).collect();
            let payload = serde_json::to_vec(&serde_json::json!({ "readings": records }))
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            let message = IncomingMessage {
                device_id: device.id.to_string(),
                payload: Bytes::from(payload),
                received_at: Utc::now(),
                authorization: BrokerAuthorization::Allowed(Publisher::Device(device.id.clone())),
                redelivered: false,
            };
            let reply = state
                .ingest
                .submit(message)
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            pending.push((chunk, reply));
        }
        outcome.devices.push(device);
    }
    for (chunk, reply) in pending {
        let result = reply
            .await
            .map_err(|_| ApiError::Internal("the ingest stopped before answering".into()))?;
        let ack = result.ack;
        outcome.stored += ack.stored;
        outcome.duplicates += ack.duplicates;
        for rejection in ack.rejections {
            // Without an index the whole message was refused (a revoked import device).
            let refused: Vec<&(usize, &ImportRow)> = match rejection.index {
                Some(index) => chunk.get(index).into_iter().collect(),
                None => chunk.iter().collect(),
            };
            for (position, row) in refused {
                let (reason, detail) = match (&row.refusal, rejection.index) {
                    (Some(r), Some(_)) => (r.reason.clone(), r.detail.clone()),
                    _ => (rejection.reason.clone(), rejection.detail.clone()),
                };
                outcome.refused.push(RefusedRow::new(
                    &row.location,
                    reason.clone(),
                    detail.clone(),
                ));
                if let Some(slot) = outcome.refusals.get_mut(*position) {
                    *slot = Some((reason, detail));
                }
            }
        }
    }
    outcome
        .refused
        .sort_by(|a, b| (a.line, &a.entry).cmp(&(b.line, &b.entry)));
    Ok(outcome)
}

/// Rows in messages of at most [`RECORDS_PER_MESSAGE`] records and about [`MESSAGE_BYTES`].
fn chunks<'a>(rows: &[(usize, &'a ImportRow)]) -> Vec<Vec<(usize, &'a ImportRow)>> {
    let mut chunks = Vec::new();
    let mut current: Vec<(usize, &ImportRow)> = Vec::new();
    let mut bytes = 0;
    for &(position, row) in rows {
        let size = row.record.to_string().len();
        if !current.is_empty()
            && (current.len() >= RECORDS_PER_MESSAGE || bytes + size > MESSAGE_BYTES)
        {
            chunks.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push((position, row));
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

//! The API's errors: every error response, axum's own extractor rejections included, is an
//! RFC 9457 problem (`application/problem+json`):
//!
//! ```json
//! {"type": "urn:chronicle:problem:not_found", "title": "Not Found", "status": 404,
//!  "detail": "not found", "code": "not_found"}
//! ```
//!
//! `code` (an extension member) is stable and machine-readable; `type` is the same code as a
//! URN. Internal errors are logged in full and shown to the client as a bare "internal error".

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chronicle_storage::StorageError;
use http_api_problem::HttpApiProblem;
use serde::Serialize;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";
/// Problem types are this prefix followed by the code.
const PROBLEM_TYPE_PREFIX: &str = "urn:chronicle:problem:";
/// The most of a non-problem error body that is kept as the problem's detail.
const MAX_DETAIL_BYTES: usize = 4096;

#[derive(Debug)]
pub enum ApiError {
    /// No bearer token, or one that is unknown, expired or revoked.
    Unauthenticated,
    InvalidCredentials,
    /// The caller may see that the resource exists but not this part of it.
    Forbidden,
    /// Does not exist, or the caller may not learn whether it exists.
    NotFound,
    BadRequest(String),
    /// The request conflicts with the resource's state (e.g. resolving a resolved alert).
    Conflict(String),
    /// The caller is who they say but may not do this, for the reason given.
    NotPermitted(String),
    /// Too many attempts (log-in, password change, tokens): try again after this long.
    TooManyRequests(std::time::Duration),
    Internal(String),
}

/// The error body every endpoint uses (RFC 9457 problem details), for the API description.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// `urn:chronicle:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// The HTTP status's reason phrase.
    pub title: String,
    pub status: u16,
    /// What went wrong, for a person.
    pub detail: String,
    /// Stable, machine-readable (`not_found`, `bad_request`, `unauthenticated`, …).
    pub code: String,
}

/// The problem response for `status` with the stable `code` and a human `detail`.
pub fn error_response(status: StatusCode, code: &str, detail: impl Into<String>) -> Response {
    HttpApiProblem::new(status)
        .type_url(format!("{PROBLEM_TYPE_PREFIX}{code}"))
        .title(status.canonical_reason().unwrap_or("Error"))
        .detail(detail.into())
        .value("code", &code)
        .into_response()
}

/// The code of a response that carries no problem body: axum's extractor rejections (a
/// missing or malformed body, query or path), an unknown method, a body over its limit, a
/// request that took too long.
fn code_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => "timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        s if s.is_server_error() => "internal",
        _ => "http_error",
    }
}

/// Middleware: turns every error response that is not yet a problem (or a FHIR
/// OperationOutcome) into one, so clients
/// parse one error format whatever produced the error. The original plain-text message
/// becomes the detail (axum's rejection texts say what was wrong with the request); a server
/// error's text is not shown.
pub async fn as_problem(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // The Nightscout front door answers in Nightscout's own error shape, which its clients
    // parse.
    if response
        .extensions()
        .get::<crate::nightscout::NightscoutShaped>()
        .is_some()
    {
        return response;
    }
    // FHIR routes answer their errors as OperationOutcomes, which FHIR clients parse.
    let is_structured = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(PROBLEM_JSON.as_bytes())
                || v.as_bytes().starts_with(b"application/fhir+json")
        });
    if is_structured {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_DETAIL_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let detail = if status.is_server_error() || text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let mut problem = error_response(status, code_for_status(status), detail);
    // Keep what the original response said besides its body (Allow, Retry-After, …).
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}

impl From<crate::login_guard::Throttled> for ApiError {
    fn from(throttled: crate::login_guard::Throttled) -> Self {
        ApiError::TooManyRequests(throttled.retry_after)
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound { .. } => ApiError::NotFound,
            StorageError::Refused(reason) => ApiError::Conflict(reason),
            // A value the database cannot hold came from the request: the caller's to fix.
            other => match other.invalid_value() {
                Some(problem) => ApiError::BadRequest(problem.to_owned()),
                None => ApiError::Internal(other.to_string()),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Unauthenticated => error_response(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "a valid bearer token is required",
            ),
            ApiError::InvalidCredentials => error_response(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "wrong e-mail or password",
            ),
            ApiError::Forbidden => error_response(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the patient's sharing settings do not allow this",
            ),
            ApiError::NotFound => error_response(StatusCode::NOT_FOUND, "not_found", "not found"),
            ApiError::BadRequest(message) => {
                error_response(StatusCode::BAD_REQUEST, "bad_request", message)
            }
            ApiError::Conflict(message) => {
                error_response(StatusCode::CONFLICT, "conflict", message)
            }
            ApiError::NotPermitted(message) => {
                error_response(StatusCode::FORBIDDEN, "forbidden", message)
            }
            ApiError::TooManyRequests(retry_after) => {
                // Whole seconds, rounded up, so a client that waits that long is let in.
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                let mut response = error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    format!("too many attempts; try again in {} s", seconds.max(1)),
                );
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    header::HeaderValue::from(seconds.max(1)),
                );
                response
            }
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

/// The refusals a route can answer, each described once for the API description: a route
/// lists the ones it can give beside its success, as in `responses((status = 200, body = X),
/// Unauthenticated, NotFound)`. Every body is an RFC 9457 problem ([`ErrorBody`]).
pub mod refusals {
    use super::ErrorBody;
    use utoipa::IntoResponses;

    macro_rules! refusal {
        ($(#[$doc:meta])* $name:ident, $status:literal, $description:literal) => {
            $(#[$doc])*
            #[derive(IntoResponses)]
            #[response(status = $status, description = $description,
                content_type = "application/problem+json")]
            pub struct $name(pub ErrorBody);
        };
    }

    refusal!(
        BadRequest,
        400,
        "The request is malformed or a value is invalid; `detail` says which"
    );
    refusal!(
        Unauthenticated,
        401,
        "Not authenticated: no valid bearer token, or wrong credentials"
    );
    refusal!(Forbidden, 403, "The caller is known but may not do this");
    refusal!(
        NotFound,
        404,
        "No such thing, or none the caller may know of"
    );
    refusal!(
        Conflict,
        409,
        "The request contradicts the current state; `detail` says how"
    );
    refusal!(
        TooManyRequests,
        429,
        "Too many attempts; `Retry-After` says when to try again"
    );
}

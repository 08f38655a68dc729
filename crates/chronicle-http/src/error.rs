//! The API's errors: JSON bodies `{"error": {"code", "message"}}` with stable codes. Internal
//! errors are logged in full and shown to the client as a bare "internal error".

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chronicle_storage::StorageError;
use serde::Serialize;

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
    Internal(String),
}

/// The error body every endpoint uses.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable.
    pub code: &'static str,
    pub message: String,
}

pub fn error_response(
    status: StatusCode,
    code: &'static str,
    message: impl Into<String>,
) -> Response {
    (
        status,
        Json(ErrorBody {
            error: ErrorDetail {
                code,
                message: message.into(),
            },
        }),
    )
        .into_response()
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        ApiError::Internal(e.to_string())
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

//! Bearer-token authentication. The check sits behind [`Authenticator`] so another identity
//! provider (OpenID Connect) can replace Chronicle's own tokens without touching handlers.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chronicle_domain::sharing::{Principal, Role};
use chronicle_storage::{StorageError, Store};
use std::future::Future;
use std::pin::Pin;

/// Turns a bearer token into the principal it stands for.
pub trait Authenticator: Send + Sync {
    /// `Ok(None)` for a token that is unknown, expired or revoked.
    fn principal<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Option<Principal>, StorageError>> + Send + 'a>>;
}

/// Chronicle's own tokens, stored hashed in the database.
pub struct StoreAuthenticator(pub Store);

impl Authenticator for StoreAuthenticator {
    fn principal<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Option<Principal>, StorageError>> + Send + 'a>> {
        Box::pin(self.0.principal_for_token(token))
    }
}

/// The authenticated caller; a handler taking it answers 401 to everyone else.
pub struct Authenticated(pub Principal);

/// An authenticated administrator; a handler taking it answers 401 to the unauthenticated and
/// 403 to every other role, before it reads anything else of the request.
pub struct Administrator(pub Principal);

/// The bearer token of a request, if it carries one.
pub(crate) fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or(ApiError::Unauthenticated)?;
        match state.authenticator.principal(token).await? {
            Some(principal) => Ok(Authenticated(principal)),
            None => Err(ApiError::Unauthenticated),
        }
    }
}

impl FromRequestParts<AppState> for Administrator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        if principal.role == Some(Role::Admin) {
            Ok(Administrator(principal))
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

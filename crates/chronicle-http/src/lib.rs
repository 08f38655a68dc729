//! Chronicle's HTTP API.
//!
//! - operations: `/healthz` (the process is up), `/readyz` (database and broker reachable),
//!   `/metrics` (Prometheus text format);
//! - [`dashboard`]: the web dashboard at `/`, a single-page application compiled into the
//!   binary, which uses only the public API;
//! - [`api`]: the JSON API under `/v1` (log-in, me, a patient's readings, alerts and their
//!   live stream, webhooks), authenticated by
//!   bearer tokens ([`auth`]) and authorized per request by the storage gate.
//!
//! Invariant: only this crate knows HTTP. Handlers call the storage and ingest crates; they
//! never write SQL.

mod agp_report;
pub mod api;
pub mod auth;
pub mod cgm_summary;
pub mod client_address;
mod dashboard;
pub mod error;
pub mod export;
pub mod login_guard;
pub mod nightscout;
pub mod tls;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use chronicle_ingest::mqtt::BrokerStatus;
use chronicle_storage::Store;
use error::error_response;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};

/// What the handlers need.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub broker: BrokerStatus,
    /// Every metric of the process, encoded on each scrape.
    pub metrics: Arc<Registry>,
    /// Checks bearer tokens.
    pub authenticator: Arc<dyn auth::Authenticator>,
    /// Live alert events, for the alert stream.
    pub alerts: chronicle_alerts::AlertHub,
    /// Cancelled when the server stops: endless responses (the alert stream) end then, so
    /// the graceful shutdown, which waits for responses in flight, does not wait for ever.
    pub shutdown: CancellationToken,
    /// The MQTT topic prefix, for the broker hooks' topic rules.
    pub mqtt_topic_prefix: String,
    /// The secret an external broker presents to the broker hooks; `None` turns them off.
    pub broker_hooks_secret: Option<String>,
    /// How much of the most recent data research reads withhold (before each study's own
    /// stretch of it).
    pub research_holdback: chrono::Duration,
    /// Where webhooks may be registered beyond public HTTPS (the operator's allow-list).
    pub webhook_destinations: Arc<chronicle_alerts::destinations::Destinations>,
    /// The VAPID public key browsers subscribe to Web Push with (base64url).
    pub vapid_public_key: String,
    /// The SMTP relay, when one is configured: e-mail channels are served, and the codes
    /// confirming their addresses are sent through it.
    pub mailer: Option<chronicle_alerts::mail::Mailer>,
    /// The address people open Chronicle at, linked from confirmation messages.
    pub public_url: Option<String>,
    /// How long a request may take to produce its response ([`REQUEST_TIMEOUT`] by default).
    pub request_timeout: Duration,
    /// Rate limits and back-off on log-in, password change and token issuance.
    pub login_guard: Arc<login_guard::LoginGuard>,
    /// Proxies whose `X-Forwarded-For` names the client ([`client_address`]); none by default.
    pub trusted_proxies: Arc<[std::net::IpAddr]>,
    /// The ingest, for what arrives over HTTP (Nightscout uploads, imports, FHIR submissions):
    /// the same pipeline as MQTT.
    pub ingest: chronicle_ingest::IngestHandle,
}

/// How long a request may take to produce its response (the head: a stream's body, such as
/// the alert stream, runs on afterwards). Beyond it the answer is 503 and the work is dropped.
/// (The default of `AppState::request_timeout`.)
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest request body the JSON API reads. Every request of the API is a small JSON
/// document (a grant, a reason, a note, a webhook): bodies beyond this are refused (413)
/// before they are buffered, so nobody can make the server hold megabytes per request.
pub const MAX_API_BODY_BYTES: usize = 64 * 1024;

/// The header carrying a request's id: taken from the client when it sends one, made
/// otherwise, echoed in the response and recorded on every log line of the request.
const REQUEST_ID: &str = "x-request-id";

/// The OpenAPI document of the API, as `/openapi.json` serves it. The dashboard's API types
/// are generated from it (`dashboards/openapi.json`, kept equal by a test).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    api::routes().1
}

/// The whole HTTP API, apart from any listener so tests can drive it directly.
pub fn router(state: AppState) -> Router {
    let request_timeout = state.request_timeout;
    let (api, openapi) = api::routes();
    let openapi = Arc::new(openapi);
    let request_id = header::HeaderName::from_static(REQUEST_ID);
    Router::new()
        .route(
            "/openapi.json",
            get(move || async move { Json(openapi.as_ref().clone()) }),
        )
        .merge(api.layer(DefaultBodyLimit::max(MAX_API_BODY_BYTES)))
        .merge(nightscout::router())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(dashboard::serve)
        .with_state(state)
        // Innermost first: the timeout's 503, like every other error, becomes a problem;
        // every response gets no-store unless it chose its own caching (the dashboard's
        // hashed assets); the request id frames the trace.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            request_timeout,
        ))
        .layer(axum::middleware::map_response(error::as_problem))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &axum::http::Request<_>| {
                    let id = request
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    // The path only: a query may carry a credential (and a share link's path
                    // does: its token is masked).
                    tracing::info_span!("http_request", request_id = id,
                        method = %request.method(), path = %loggable_path(request.uri().path()))
                })
                .on_request(())
                .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG))
                // A 5xx is not by itself a fault of this process: `/readyz` answers 503 while
                // the server starts or the broker reconnects, and a timeout is the client's
                // wait. Real faults are logged at ERROR where they happen, with their cause.
                .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// A request's path as logs may show it: a share link's token (`/v1/shared/{token}/…`) is a
/// credential, so it is masked.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/v1/shared/") {
        Some(rest) => {
            let after_token = rest.find('/').map_or("", |i| &rest[i..]);
            format!("/v1/shared/***{after_token}").into()
        }
        None => path.into(),
    }
}

/// Serves `router` on `listener`, over TLS with `tls`, until `shutdown`, then lets requests in
/// flight finish. Either way each request knows its TCP peer (`ConnectInfo<SocketAddr>`), the
/// client address the rate limits and authentication events use.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let stopped = async move { shutdown.cancelled().await };
    match tls {
        None => {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stopped)
            .await
        }
        Some(config) => {
            // axum gives `ConnectInfo<SocketAddr>` for a `TcpListener` and for any listener
            // wrapped by `tap_io`; the tap itself does nothing.
            axum::serve(
                tls::TlsListener::new(listener, config)?.tap_io(|_| {}),
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stopped)
            .await
        }
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

#[derive(Debug, Serialize)]
struct Readiness {
    ready: bool,
    database: &'static str,
    broker: &'static str,
}

async fn readyz(State(state): State<AppState>) -> Response {
    // A readiness probe must answer quickly even while the database hangs.
    let database_ok = matches!(
        tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await,
        Ok(Ok(()))
    );
    let broker_ok = state.broker.is_connected();
    let body = Readiness {
        ready: database_ok && broker_ok,
        database: if database_ok { "ok" } else { "unreachable" },
        broker: if broker_ok {
            "connected"
        } else {
            "disconnected"
        },
    };
    let status = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.metrics) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "could not encode metrics");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn share_link_tokens_stay_out_of_logs() {
        assert_eq!(
            loggable_path("/v1/shared/s3cr3t/glucose"),
            "/v1/shared/***/glucose"
        );
        assert_eq!(loggable_path("/v1/shared/s3cr3t"), "/v1/shared/***");
        assert_eq!(loggable_path("/v1/patients"), "/v1/patients");
    }
}

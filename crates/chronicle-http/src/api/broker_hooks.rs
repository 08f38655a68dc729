//! Authentication and authorization for an external broker that asks over HTTP, in the shape
//! EMQX's HTTP authenticator and authorizer use: the broker POSTs the client's credentials (or
//! the topic and action) and Chronicle answers `{"result": "allow" | "deny"}` from the registry,
//! with the same rules the embedded broker enforces (`chronicle_broker::rules`).
//!
//! The hooks exist only when `--broker-hooks-secret` is set, and every call must carry it as
//! `Authorization: Bearer <secret>` (a header configured in the broker): without it they would
//! let anyone test device secrets.

use crate::AppState;
use crate::error::ApiError;
use crate::error::refusals::Unauthenticated;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use chronicle_broker::rules;
use chronicle_domain::{DeviceId, GatewayId, Publisher, topics};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(authenticate))
        .routes(routes!(authorize))
}

/// What EMQX sends to authenticate a CONNECT (configure its body with these placeholders:
/// `{"clientid": "${clientid}", "username": "${username}", "password": "${password}"}`).
#[derive(Debug, Deserialize, ToSchema)]
struct AuthenticateRequest {
    clientid: String,
    username: String,
    password: String,
}

/// What EMQX sends to authorize a publish or subscribe
/// (`{"clientid": "${clientid}", "username": "${username}", "topic": "${topic}",
/// "action": "${action}"}`).
#[derive(Debug, Deserialize, ToSchema)]
struct AuthorizeRequest {
    clientid: String,
    username: String,
    topic: String,
    /// `publish` or `subscribe`.
    action: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct Verdict {
    /// `allow` or `deny`.
    result: &'static str,
    /// Nobody is a superuser: the ingest's rights are spelled out too.
    #[serde(skip_serializing_if = "Option::is_none")]
    is_superuser: Option<bool>,
}

fn verdict(allowed: bool, superuser_field: bool) -> Json<Verdict> {
    Json(Verdict {
        result: if allowed { "allow" } else { "deny" },
        is_superuser: superuser_field.then_some(false),
    })
}

/// Refuses a call that does not carry the configured secret; 404 when hooks are off, so the
/// API does not even say they exist.
fn check_caller(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(secret) = &state.broker_hooks_secret else {
        return Err(ApiError::NotFound);
    };
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Compared in constant time: the secret must not leak through response timing.
    let equal = presented.len() == secret.len()
        && presented
            .bytes()
            .zip(secret.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if equal {
        Ok(())
    } else {
        Err(ApiError::Unauthenticated)
    }
}

/// Who a username names among devices and gateways.
fn identity(username: &str) -> Option<Publisher> {
    if let Ok(gateway) = GatewayId::parse(username) {
        Some(Publisher::Gateway(gateway))
    } else if let Ok(device) = DeviceId::parse(username) {
        Some(Publisher::Device(device))
    } else {
        None
    }
}

/// Authenticate a client for the broker: a device, a gateway, or one of Chronicle's ingest
/// accounts, with its secret and a client id bound to it.
#[utoipa::path(post, path = "/v1/broker/authenticate", tag = "broker", security(()),
    request_body = AuthenticateRequest, responses((status = 200, body = Verdict), Unauthenticated))]
async fn authenticate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<AuthenticateRequest>,
) -> Result<Json<Verdict>, ApiError> {
    check_caller(&state, &headers)?;
    let store = &state.store;
    // Ingest accounts are never named like devices or gateways (the registry refuses
    // dev_… and gw_…), so a name is one or the other.
    let allowed = if store.ingest_account_active(&body.username).await? {
        body.clientid == body.username
            && store
                .authenticate_ingest_account(&body.username, &body.password)
                .await?
    } else {
        match identity(&body.username) {
            Some(identity) => {
                rules::client_id_allowed(&identity, &body.clientid)
                    && store
                        .authenticate_broker_client(&body.username, &body.password)
                        .await?
                        .is_some()
            }
            None => false,
        }
    };
    if !allowed {
        tracing::info!(username = %body.username, clientid = %body.clientid, "broker hook: connection refused");
    }
    Ok(verdict(allowed, true))
}

/// Authorize a publish or subscribe for the broker: a device its own topics, a gateway those
/// of the devices it relays, the ingest every device's readings and acks; nothing else.
#[utoipa::path(post, path = "/v1/broker/authorize", tag = "broker", security(()),
    request_body = AuthorizeRequest, responses((status = 200, body = Verdict), Unauthenticated))]
async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<AuthorizeRequest>,
) -> Result<Json<Verdict>, ApiError> {
    check_caller(&state, &headers)?;
    let prefix = state.mqtt_topic_prefix.as_str();
    let ingest = state.store.ingest_account_active(&body.username).await?;
    let allowed = if ingest {
        body.clientid == body.username && ingest_may(prefix, &body.action, &body.topic)
    } else {
        match identity(&body.username) {
            Some(identity) if rules::client_id_allowed(&identity, &body.clientid) => {
                // Asked afresh each time, so a revocation holds at the next publish (EMQX may
                // cache answers: docs/security.md says how long).
                let principal = state.store.broker_principal(&identity).await?;
                let relays = |device: &str| {
                    principal.as_ref().is_some_and(|p| match &p.identity {
                        Publisher::Device(own) => own.as_str() == device,
                        Publisher::Gateway(_) => p.relays.iter().any(|d| d.as_str() == device),
                    })
                };
                match body.action.as_str() {
                    "publish" => {
                        topics::readings_topic_device(prefix, &body.topic).is_some_and(relays)
                    }
                    "subscribe" => {
                        topics::acks_topic_device(prefix, &body.topic).is_some_and(relays)
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    };
    if !allowed {
        tracing::info!(username = %body.username, topic = %body.topic, action = %body.action, "broker hook: request refused");
    }
    Ok(verdict(allowed, false))
}

/// The ingest subscribes to every device's readings (possibly in a shared group) and
/// publishes acks.
fn ingest_may(prefix: &str, action: &str, topic: &str) -> bool {
    let readings = format!("{prefix}/devices/+/readings");
    match action {
        "subscribe" => {
            topic == readings
                || topic
                    .strip_prefix("$share/")
                    .and_then(|rest| rest.split_once('/'))
                    .is_some_and(|(group, filter)| !group.is_empty() && filter == readings)
        }
        "publish" => topics::acks_topic_device(prefix, topic).is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ingest_may_read_readings_and_write_acks_only() {
        let p = "chronicle/v1";
        assert!(ingest_may(
            p,
            "subscribe",
            "chronicle/v1/devices/+/readings"
        ));
        assert!(ingest_may(
            p,
            "subscribe",
            "$share/ingest/chronicle/v1/devices/+/readings"
        ));
        assert!(ingest_may(p, "publish", "chronicle/v1/devices/dev_a/acks"));
        assert!(!ingest_may(p, "subscribe", "#"));
        assert!(!ingest_may(
            p,
            "subscribe",
            "$share//chronicle/v1/devices/+/readings"
        ));
        assert!(!ingest_may(
            p,
            "publish",
            "chronicle/v1/devices/dev_a/readings"
        ));
        assert!(!ingest_may(p, "subscribe", "chronicle/v1/devices/+/acks"));
    }
}

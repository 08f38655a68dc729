//! A local receiver of signed webhook deliveries (organizations' webhooks, personal
//! webhooks): it checks every `Chronicle-Signature` itself, independently of the server's code,
//! and can be told to fail its first requests.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::sync::{Arc, Mutex};

/// What the receiver was sent; shared with the test.
#[derive(Clone, Default)]
pub struct SignedReceiver {
    /// Requests still to answer 500 before accepting any.
    pub failures_left: Arc<Mutex<u32>>,
    /// The secret signatures are checked with.
    pub secret: Arc<Mutex<String>>,
    /// Every request that got past the failures: whether its signature was valid (and fresh,
    /// within 5 minutes), and its JSON body.
    pub received: Arc<Mutex<Vec<(bool, Value)>>>,
}

impl SignedReceiver {
    /// Serves `POST {path}` on a loopback port; returns the receiver and its URL.
    pub async fn start(path: &str, secret: &str, failures: u32) -> (SignedReceiver, String) {
        let receiver = SignedReceiver::default();
        *receiver.failures_left.lock().expect("lock") = failures;
        *receiver.secret.lock().expect("lock") = secret.to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}{path}", listener.local_addr().expect("addr"));
        let app = axum::Router::new()
            .route(path, post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    /// The bodies received so far.
    pub fn received(&self) -> Vec<(bool, Value)> {
        self.received.lock().expect("lock").clone()
    }
}

/// `Chronicle-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
async fn receive(State(r): State<SignedReceiver>, headers: HeaderMap, body: String) -> StatusCode {
    {
        let mut failures = r.failures_left.lock().expect("lock");
        if *failures > 0 {
            *failures -= 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    let header = headers
        .get("chronicle-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let part = |name: &str| {
        header
            .split(',')
            .find_map(|p| p.strip_prefix(name))
            .unwrap_or_default()
            .to_owned()
    };
    let (timestamp, given) = (part("t="), part("v1="));
    let secret = r.secret.lock().expect("lock").clone();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let valid = hex::decode(&given).is_ok_and(|g| mac.verify_slice(&g).is_ok())
        && timestamp
            .parse::<i64>()
            .is_ok_and(|t| (Utc::now().timestamp() - t).abs() < 300);
    let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    r.received.lock().expect("lock").push((valid, json));
    if valid {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}

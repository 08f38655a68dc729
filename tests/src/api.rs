//! The HTTP API for tests: users with a known password, log-in, JSON calls, and a reader of
//! the Server-Sent Events alert stream.

use anyhow::Context;
use chronicle_domain::sharing::Role;
use chronicle_storage::Store;
use chronicle_storage::credentials::hash_password;
use chronicle_storage::identity::NewUser;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

/// The password of every user [`create_user`] makes.
pub const PASSWORD: &str = "test password of some length";

/// Creates a user who can log in with [`PASSWORD`].
pub async fn create_user(store: &Store, email: &str, role: Role, patient: Option<Uuid>) -> Uuid {
    store
        .create_user(&NewUser {
            email: email.into(),
            display_name: email.into(),
            role,
            password_hash: Some(hash_password(PASSWORD).expect("hash")),
            patient_id: patient,
        })
        .await
        .expect("user")
        .id
}

/// A client of one server's API.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// `base`: the server's URL without a path, e.g. `ChronicleServer::http_url("")`.
    pub fn new(base: String) -> Api {
        Api {
            http: reqwest::Client::new(),
            base,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Logs in and returns the bearer token.
    pub async fn login(&self, email: &str) -> String {
        let (status, body) = self
            .call(
                None,
                Method::POST,
                "/v1/auth/login",
                Some(serde_json::json!({"email": email, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "log-in of {email}: {body}");
        body["token"].as_str().expect("token").to_owned()
    }

    pub async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.call(Some(token), Method::GET, path, None).await
    }

    /// GET that must succeed.
    pub async fn get_ok(&self, token: &str, path: &str) -> Value {
        let (status, body) = self.get(token, path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// Opens the alert stream, resuming after `last_event_id` when given.
    pub async fn alert_stream(
        &self,
        token: &str,
        last_event_id: Option<i64>,
    ) -> anyhow::Result<AlertStream> {
        let mut request = self
            .http
            .get(self.url("/v1/alerts/stream"))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await?;
        anyhow::ensure!(
            response.status() == StatusCode::OK,
            "stream answered {}",
            response.status()
        );
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        anyhow::ensure!(
            content_type.starts_with("text/event-stream"),
            "stream content type {content_type:?}"
        );
        Ok(AlertStream {
            response,
            buffer: String::new(),
        })
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<i64>,
    pub event: String,
    pub data: Value,
}

/// A Server-Sent Events reader.
pub struct AlertStream {
    response: reqwest::Response,
    buffer: String,
}

impl AlertStream {
    /// The next event (keep-alive comments skipped), or `None` after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> anyhow::Result<Option<SseEvent>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_block(&block)? {
                    return Ok(Some(event));
                }
                continue;
            }
            let chunk = match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return Ok(None),
                Ok(chunk) => chunk.context("stream broke")?,
            };
            let chunk = chunk.context("stream ended")?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Every event arriving within `window`.
    pub async fn drain(&mut self, window: Duration) -> anyhow::Result<Vec<SseEvent>> {
        let deadline = tokio::time::Instant::now() + window;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(out);
            }
            match self.next(left).await? {
                Some(event) => out.push(event),
                None => return Ok(out),
            }
        }
    }
}

fn parse_block(block: &str) -> anyhow::Result<Option<SseEvent>> {
    let mut id = None;
    let mut event = String::from("message");
    let mut data = String::new();
    let mut any = false;
    for line in block.lines() {
        if line.starts_with(':') || line.is_empty() {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        any = true;
        match field {
            "id" => id = Some(value.parse().context("event id")?),
            "event" => event = value.to_owned(),
            "data" => {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value);
            }
            _ => {}
        }
    }
    if !any {
        return Ok(None);
    }
    Ok(Some(SseEvent {
        id,
        event,
        data: serde_json::from_str(&data).context("event data is JSON")?,
    }))
}

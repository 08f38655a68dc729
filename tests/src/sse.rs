//! A reader of the Server-Sent Events alert stream (`GET /v1/alerts/stream`).

use crate::api::ApiClient;
use anyhow::Context;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<i64>,
    pub event: String,
    pub data: Value,
}

/// An open alert stream.
pub struct AlertStream {
    response: reqwest::Response,
    buffer: String,
}

impl AlertStream {
    /// Opens the stream as `token`, resuming after `last_event_id` when given.
    pub async fn open(
        api: &ApiClient,
        token: &str,
        last_event_id: Option<i64>,
    ) -> anyhow::Result<AlertStream> {
        let mut request = api
            .http
            .get(api.url("/v1/alerts/stream"))
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
    // A block without data dispatches no event (the stream's opening position, keep-alives).
    if !any || data.is_empty() {
        return Ok(None);
    }
    Ok(Some(SseEvent {
        id,
        event,
        data: serde_json::from_str(&data).context("event data is JSON")?,
    }))
}

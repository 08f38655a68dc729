//! Delivering alert events to organizations' webhooks.
//!
//! Each delivery is a `POST` of the event as JSON, signed with HMAC-SHA256 over
//! `"{timestamp}.{body}"` with the webhook's secret, in the header
//! `Chronicle-Signature: t={timestamp},v1={hex signature}` (the timestamp lets a receiver
//! refuse replays). A 2xx answer delivers it; anything else is retried with exponential
//! backoff until `max_attempts`. Before every attempt the gate asks whether the patient's
//! grant still lets the organization receive the alert (and logs the answer): revoking the
//! grant stops delivery at once, and the delivery is marked `withheld`.

use crate::destinations::Destinations;
use crate::dispatch::{self, DeliveryQueue};
use crate::hub::AlertHub;
use crate::metrics::{AlertMetrics, OutcomeLabel};
use chronicle_domain::alerts::lifecycle::{AlertKind, AlertStatus, Resolution};
use chronicle_domain::alerts::{RuleId, Severity};
use chronicle_domain::sharing::DataCategory;
use chronicle_storage::alerts::{AlertEvent, AlertRecord};
use chronicle_storage::webhooks::{AfterAttempt, AttemptOutcome, DueDelivery};
use chronicle_storage::{StorageError, Store};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "Chronicle-Signature";
/// The event id header (receivers use it to drop a delivery they already processed).
pub const EVENT_ID_HEADER: &str = "Chronicle-Event-Id";

/// How deliveries are attempted.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Attempts before a delivery is given up as failed.
    pub max_attempts: u32,
    /// The wait before the second attempt; it doubles after each failure…
    pub first_retry: Duration,
    /// …up to this.
    pub max_retry: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Where deliveries may go beyond public HTTPS (`--webhook-allow`).
    pub destinations: Arc<Destinations>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            max_attempts: 8,
            first_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
            destinations: Arc::new(Destinations::default()),
        }
    }
}

impl WebhookSettings {
    /// The HTTP client every delivery to a URL goes through (webhooks, personal webhooks, Web
    /// Push): no redirects, and a resolver that hands it only vetted addresses.
    pub fn http_client(&self) -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            .timeout(self.timeout)
            // A redirect would send the patient's data somewhere nobody vetted.
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(self.destinations.resolver())
            .build()
    }

    /// What follows the `attempt`-th (1-based) attempt that did not deliver.
    pub fn after_failure(&self, attempt: u32) -> AfterAttempt {
        if attempt >= self.max_attempts {
            AfterAttempt::Failed
        } else {
            let wait = chrono::Duration::from_std(self.backoff(attempt))
                .unwrap_or(chrono::Duration::hours(1));
            AfterAttempt::RetryAt(Utc::now() + wait)
        }
    }

    /// The wait after the `attempt`-th failure (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doubled = self
            .first_retry
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        doubled.min(self.max_retry)
    }
}

/// The JSON body of a delivery: a public contract of its own (docs/alerts.md), not the stored
/// record, so storage can change without changing what receivers parse.
#[derive(Debug, Serialize)]
pub struct WebhookPayload<'a> {
    /// The event id (also in `Chronicle-Event-Id`): the same on every retry.
    pub id: i64,
    /// `alert.opened`, `alert.retriggered`, `alert.escalated`, `alert.acknowledged`,
    /// `alert.resolved` or `alert.historical`.
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub alert: WebhookAlert<'a>,
}

/// The alert as a webhook receiver sees it after the event.
#[derive(Debug, Serialize)]
pub struct WebhookAlert<'a> {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub rule: RuleId,
    pub category: DataCategory,
    pub severity: Severity,
    /// `alert` (live) or `historical` (late data, never an alarm).
    pub kind: AlertKind,
    pub status: Option<AlertStatus>,
    pub device_id: Option<&'a str>,
    pub triggered_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub cleared_since: Option<DateTime<Utc>>,
    pub trigger_count: i32,
    pub evidence: &'a serde_json::Value,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub acknowledged_by: Option<Uuid>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledgement_note: Option<&'a str>,
    pub resolved_by: Option<Uuid>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution: Option<Resolution>,
    pub resolution_note: Option<&'a str>,
}

impl<'a> From<&'a AlertRecord> for WebhookAlert<'a> {
    fn from(a: &'a AlertRecord) -> Self {
        WebhookAlert {
            id: a.id,
            patient_id: a.patient_id,
            rule: a.rule,
            category: a.category,
            severity: a.severity,
            kind: a.kind,
            status: a.status,
            device_id: a.device_id.as_deref(),
            triggered_at: a.triggered_at,
            last_seen_at: a.last_seen_at,
            cleared_since: a.cleared_since,
            trigger_count: a.trigger_count,
            evidence: &a.evidence,
            opened_at: a.opened_at,
            updated_at: a.updated_at,
            acknowledged_by: a.acknowledged_by,
            acknowledged_at: a.acknowledged_at,
            acknowledgement_note: a.acknowledgement_note.as_deref(),
            resolved_by: a.resolved_by,
            resolved_at: a.resolved_at,
            resolution: a.resolution,
            resolution_note: a.resolution_note.as_deref(),
        }
    }
}

impl<'a> WebhookPayload<'a> {
    pub fn of(event: &'a AlertEvent) -> WebhookPayload<'a> {
        WebhookPayload {
            id: event.id,
            kind: format!("alert.{}", event.kind.as_str()),
            created_at: event.at,
            alert: WebhookAlert::from(&event.alert),
        }
    }
}

/// The hex HMAC-SHA256 of `"{timestamp}.{body}"` under `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The `Chronicle-Signature` header's value.
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", signature(secret, timestamp, body))
}

/// Delivers due webhook deliveries until shutdown, through the shared delivery loop
/// ([`crate::dispatch`]): webhooks are served side by side, each attempt with its own timeout,
/// so a slow receiver holds up only its own deliveries, which go one at a time and in order.
pub async fn run(
    store: Store,
    hub: AlertHub,
    settings: WebhookSettings,
    metrics: AlertMetrics,
    shutdown: CancellationToken,
) {
    let client = match settings.http_client() {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the webhook HTTP client; webhooks are not delivered");
            return;
        }
    };
    let queue = WebhookQueue {
        store,
        client,
        settings: Arc::new(settings),
        metrics,
    };
    dispatch::run(queue, hub, shutdown).await;
}

#[derive(Clone)]
struct WebhookQueue {
    store: Store,
    client: reqwest::Client,
    settings: Arc<WebhookSettings>,
    metrics: AlertMetrics,
}

impl DeliveryQueue for WebhookQueue {
    type Due = DueDelivery;
    const WHAT: &'static str = "webhook";

    fn destination(due: &DueDelivery) -> Uuid {
        due.webhook_id
    }

    async fn lease(&self, room: i64, busy: &[Uuid]) -> Result<Vec<DueDelivery>, StorageError> {
        self.store
            .lease_webhook_deliveries(room, dispatch::lease_for(self.settings.timeout), busy)
            .await
    }

    async fn deliver(&self, due: DueDelivery) -> Result<(), StorageError> {
        deliver(
            &self.store,
            &self.client,
            &self.settings,
            &self.metrics,
            &due,
        )
        .await
    }
}

/// What a delivery log says of a request that got no answer: the kind of failure, never an
/// address or a library's error text.
pub fn request_failure(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect (or the destination is not allowed)"
    } else {
        "the request failed"
    }
}

/// What the delivery log says of an attempt the allow-list refused.
pub const ATTEMPT_REFUSED: &str = "destination not allowed";

/// One attempt of one delivery, recorded.
async fn deliver(
    store: &Store,
    client: &reqwest::Client,
    settings: &WebhookSettings,
    metrics: &AlertMetrics,
    delivery: &DueDelivery,
) -> Result<(), StorageError> {
    let count = |outcome: &'static str| {
        metrics
            .webhook_attempts
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    };
    if !store
        .authorize_webhook(delivery.organization_id, &delivery.event)
        .await?
    {
        tracing::info!(
            delivery = delivery.id,
            "webhook delivery withheld: the patient's grant no longer allows it"
        );
        return store.withhold_webhook_delivery(delivery.id).await;
    }
    let body = match serde_json::to_vec(&WebhookPayload::of(&delivery.event)) {
        Ok(body) => body,
        Err(e) => {
            return Err(StorageError::Corrupt {
                what: "webhook payload",
                value: e.to_string(),
            });
        }
    };
    if let Err(refused) = settings.destinations.check(&delivery.url) {
        // Registered before the allow-list changed, or never vetted: nothing is sent.
        tracing::info!(delivery = delivery.id, %refused, "webhook destination not allowed");
        let outcome = AttemptOutcome {
            status_code: None,
            error: Some(ATTEMPT_REFUSED.to_owned()),
            duration_ms: 0,
        };
        count("failed_attempt");
        return store
            .record_webhook_attempt(
                delivery.id,
                delivery.attempts.saturating_add(1),
                &outcome,
                AfterAttempt::Failed,
            )
            .await;
    }
    let timestamp = Utc::now().timestamp();
    let started = Instant::now();
    let response = client
        .post(&delivery.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            SIGNATURE_HEADER,
            signature_header(&delivery.secret, timestamp, &body),
        )
        .header(EVENT_ID_HEADER, delivery.event.id.to_string())
        .body(body)
        .send()
        .await;
    let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    // The log says what kind of failure it was, never an address or a library's error text.
    let (outcome, delivered) = match response {
        Ok(r) => (
            AttemptOutcome {
                status_code: Some(i32::from(r.status().as_u16())),
                error: (!r.status().is_success())
                    .then(|| format!("the receiver answered {}", r.status().as_u16())),
                duration_ms,
            },
            r.status().is_success(),
        ),
        Err(e) => {
            tracing::debug!(delivery = delivery.id, error = %e, "webhook attempt failed to connect");
            (
                AttemptOutcome {
                    status_code: None,
                    error: Some(request_failure(&e).to_owned()),
                    duration_ms,
                },
                false,
            )
        }
    };
    let attempt = delivery.attempts.saturating_add(1);
    let number = u32::try_from(attempt).unwrap_or(u32::MAX);
    let next = if delivered {
        AfterAttempt::Delivered
    } else {
        settings.after_failure(number)
    };
    count(if delivered {
        "delivered"
    } else {
        "failed_attempt"
    });
    if !delivered {
        tracing::info!(delivery = delivery.id, attempt, error = ?outcome.error, ?next, "webhook attempt failed");
    }
    store
        .record_webhook_attempt(delivery.id, attempt, &outcome, next)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_over_timestamp_and_body() {
        // Computed independently: Python's hmac.new(secret, b'1700000000.{"id":1}', sha256).
        let expected = "f2680d33fd5f84baa319c816ddb23956297bef29a47855116fb922e2aa1dbee9";
        let secret = "s3cret-s3cret-s3cret";
        assert_eq!(signature(secret, 1_700_000_000, b"{\"id\":1}"), expected);
        assert_eq!(
            signature_header(secret, 1_700_000_000, b"{\"id\":1}"),
            format!("t=1700000000,v1={expected}")
        );
        assert_ne!(
            signature(secret, 1_700_000_001, b"{\"id\":1}"),
            expected,
            "the timestamp is signed"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = WebhookSettings {
            first_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(10),
            ..WebhookSettings::default()
        };
        let waits: Vec<u64> = (1..=6).map(|a| s.backoff(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
    }
}

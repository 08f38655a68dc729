//! Delivering alarms to the channels users chose for themselves: Web Push (RFC 8030, payload
//! encrypted per RFC 8291, the server identified by VAPID per RFC 8292), e-mail through an
//! SMTP relay, and personal webhooks signed exactly like organizations' webhooks.
//!
//! Deliveries go through the same loop as webhooks ([`crate::dispatch`]): one channel's
//! deliveries one at a time and in order, every channel side by side, each attempt with its
//! own timeout, retried with the webhooks' backoff, every attempt in the user's delivery log.
//! Before each attempt the gate decides, logged in the patient's access log as
//! `notify_alert`, and its permit decides what the notification tells (see [`Notification`]).

use crate::dispatch::{self, DeliveryQueue};
use crate::hub::AlertHub;
use crate::mail::{MailError, Mailer};
use crate::metrics::{AlertMetrics, OutcomeLabel};
use crate::webhooks::{
    ATTEMPT_REFUSED, EVENT_ID_HEADER, SIGNATURE_HEADER, WebhookSettings, request_failure,
    signature_header,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chronicle_domain::alerts::escalation::DeliveryReason;
use chronicle_domain::alerts::lifecycle::EventKind;
use chronicle_domain::alerts::{RuleId, Severity};
use chronicle_domain::sharing::{Allowance, DataCategory};
use chronicle_storage::alerts::AlertEvent;
use chronicle_storage::notifications::{ChannelTarget, DueNotification, NotificationDecision};
use chronicle_storage::webhooks::{AfterAttempt, AttemptOutcome};
use chronicle_storage::{StorageError, Store};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use web_push_native::jwt_simple::algorithms::{
    ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair,
};
use web_push_native::jwt_simple::claims::Claims;
use web_push_native::jwt_simple::prelude::Duration as JwtDuration;

/// How often a notification held back by quiet hours is looked at again.
const QUIET_RECHECK: chrono::Duration = chrono::Duration::seconds(15);
/// How long a push service keeps an undelivered alarm (its `TTL`).
const PUSH_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// The name the VAPID private key is kept under in `server_keys`.
pub const VAPID_KEY_NAME: &str = "vapid_private_key";

/// The server's VAPID key pair (RFC 8292): browsers bind their subscriptions to its public
/// key, and every push is signed with it.
#[derive(Clone)]
pub struct VapidKey {
    key_pair: Arc<ES256KeyPair>,
    /// `mailto:` or `https:` contact for push services (the JWT's `sub`).
    pub subject: String,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey")
            .field("public_key", &self.public_key())
            .field("subject", &self.subject)
            .finish()
    }
}

impl VapidKey {
    /// A new random private key, base64url (the form it is stored and configured in).
    pub fn generate_private() -> String {
        URL_SAFE_NO_PAD.encode(ES256KeyPair::generate().to_bytes())
    }

    /// The key pair of a base64url private key (32 bytes, the P-256 scalar).
    pub fn from_private(private: &str, subject: String) -> Result<VapidKey, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(private.trim())
            .map_err(|_| "the VAPID private key is not base64url".to_owned())?;
        let key_pair = ES256KeyPair::from_bytes(&bytes)
            .map_err(|_| "the VAPID private key is not a P-256 private key".to_owned())?;
        Ok(VapidKey {
            key_pair: Arc::new(key_pair),
            subject,
        })
    }

    /// The `Authorization` header of a push to `endpoint` (RFC 8292 §3): `vapid t=<JWT>,
    /// k=<public key>`, the JWT (ES256) naming the endpoint's origin as its audience — with
    /// its port when not the default, which the origin includes — and expiring in 12 hours.
    pub fn authorization(&self, endpoint: &str) -> Option<reqwest::header::HeaderValue> {
        let origin = reqwest::Url::parse(endpoint).ok()?.origin();
        if !origin.is_tuple() {
            return None;
        }
        let claims = Claims::create(JwtDuration::from_hours(12))
            .with_audience(origin.ascii_serialization())
            .with_subject(&self.subject);
        let token = self.key_pair.sign(claims).ok()?;
        reqwest::header::HeaderValue::try_from(format!("vapid t={token}, k={}", self.public_key()))
            .ok()
    }

    /// The public key, uncompressed and base64url: what a browser's
    /// `pushManager.subscribe({applicationServerKey})` takes.
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(
            self.key_pair
                .public_key()
                .public_key()
                .to_bytes_uncompressed(),
        )
    }
}

/// The SMTP relay e-mail goes through.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// `smtp://host:port` (STARTTLS when offered; `?tls=required` to insist),
    /// `smtps://host:port` (TLS from the start), credentials as `user:password@`.
    pub relay_url: String,
    /// The sender, `Chronicle <alerts@example.org>`.
    pub from: String,
}

/// How users' channels are served.
#[derive(Debug, Clone, Default)]
pub struct NotificationSettings {
    /// Attempts, backoff, timeout and allowed destinations: the webhooks' own.
    pub delivery: WebhookSettings,
    /// Without it, e-mail deliveries fail (and say why in the log).
    pub email: Option<EmailSettings>,
    /// Without it, Web Push deliveries fail (and say why in the log).
    pub vapid: Option<VapidKey>,
    /// The dashboard's address, linked from every notification ("open Chronicle").
    pub dashboard_url: Option<String>,
}

/// Whether `address` is an e-mail address a channel may use.
pub fn check_email(address: &str) -> Result<(), String> {
    address
        .parse::<lettre::Address>()
        .map(|_| ())
        .map_err(|_| "not an e-mail address".to_owned())
}

/// Whether a push subscription's keys are what RFC 8291 says: `p256dh` a P-256 public key,
/// `auth` 16 bytes, both base64url.
pub fn check_push_keys(p256dh: &str, auth: &str) -> Result<(), String> {
    push_keys(p256dh, auth).map(|_| ())
}

fn push_keys(
    p256dh: &str,
    auth: &str,
) -> Result<(web_push_native::p256::PublicKey, web_push_native::Auth), String> {
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s.trim().trim_end_matches('='));
    let key = decode(p256dh)
        .ok()
        .and_then(|b: Vec<u8>| web_push_native::p256::PublicKey::from_sec1_bytes(&b).ok())
        .ok_or("keys.p256dh is not a base64url P-256 public key")?;
    let auth = decode(auth)
        .ok()
        .filter(|b| b.len() == 16)
        .ok_or("keys.auth is not 16 bytes of base64url")?;
    Ok((key, web_push_native::Auth::clone_from_slice(&auth)))
}

/// What a notification tells its receiver: a public contract (docs/alerts.md), the JSON
/// body of a push and of a personal webhook, and the text of an e-mail.
///
/// A receiver whose grant includes individual readings is told the rule, the device and the
/// evidence (the values). One whose grant is trends only is told that there is an alert of
/// this severity and category for the patient, and to open Chronicle: no rule (a rule such as
/// "very low" states a reading's range), no value, no device.
#[derive(Debug, Serialize)]
pub struct Notification {
    /// The alert event's id (also in `Chronicle-Event-Id` on a webhook).
    pub id: i64,
    /// `alert.opened`, `alert.retriggered` or `alert.escalated`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `alarm` (the alarm itself), `escalation` (the care team's escalation reached this
    /// receiver: nobody acknowledged in time) or `reminder` (still unacknowledged).
    pub reason: DeliveryReason,
    pub created_at: DateTime<Utc>,
    /// `full` (values included) or `summary` (trends-only receivers).
    pub detail: &'static str,
    pub title: String,
    pub body: String,
    /// Where to open Chronicle, when the server knows its address.
    pub url: Option<String>,
    pub patient: NotifiedPatient,
    pub alert: NotifiedAlert,
}

#[derive(Debug, Serialize)]
pub struct NotifiedPatient {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Serialize)]
pub struct NotifiedAlert {
    pub id: Uuid,
    pub category: DataCategory,
    pub severity: Severity,
    pub triggered_at: DateTime<Utc>,
    /// Only for receivers who may see individual readings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<serde_json::Value>,
}

fn rule_words(rule: RuleId) -> &'static str {
    match rule {
        RuleId::GlucoseVeryLow => "very low glucose",
        RuleId::GlucoseLow => "low glucose",
        RuleId::GlucosePredictedLow => "low glucose predicted",
        RuleId::GlucoseVeryHigh => "very high glucose",
        RuleId::GlucoseRapidFall => "glucose falling fast",
        RuleId::BpCrisis => "blood pressure in the crisis range",
        RuleId::BpLow => "low blood pressure",
        RuleId::BpStage2Trend => "blood pressure in the stage 2 range",
        RuleId::NoData => "no data from the devices",
    }
}

fn category_words(category: DataCategory) -> &'static str {
    match category {
        DataCategory::Glucose => "glucose",
        DataCategory::BloodPressure => "blood pressure",
        DataCategory::Treatments => "treatment",
        DataCategory::DeviceInfo => "device",
    }
}

fn severity_words(severity: Severity) -> (&'static str, &'static str) {
    match severity {
        Severity::Urgent => ("Urgent", "an urgent"),
        Severity::Warning => ("Warning", "a"),
        Severity::Info => ("Notice", "a"),
    }
}

impl Notification {
    /// The notification of `event` for a receiver the gate allowed with `allowance`.
    pub fn of(
        event: &AlertEvent,
        reason: DeliveryReason,
        patient_name: &str,
        allowance: &Allowance,
        dashboard_url: Option<&str>,
    ) -> Notification {
        let alert = &event.alert;
        let full = allowance.individual_readings;
        let (severity, article) = severity_words(alert.severity);
        let again = match event.kind {
            EventKind::Retriggered => " (again)",
            EventKind::Escalated => " (escalated)",
            _ => "",
        };
        let at = alert.triggered_at.format("%H:%M UTC");
        let (prefix, unanswered) = match reason {
            DeliveryReason::Alarm => ("", ""),
            DeliveryReason::Escalation => (
                "Escalated to you: ",
                " Nobody has acknowledged it yet; it was escalated to you.",
            ),
            DeliveryReason::Reminder => ("Reminder: ", " Nobody has acknowledged it yet."),
        };
        let (title, body) = if full {
            let what = rule_words(alert.rule);
            (
                format!("{prefix}{severity}: {what}{again} — {patient_name}"),
                format!(
                    "{patient_name}: {what} since {at}.{unanswered} Open Chronicle to see the readings and respond."
                ),
            )
        } else {
            let category = category_words(alert.category);
            (
                format!("{prefix}{severity} {category} alert{again} for {patient_name}"),
                format!(
                    "There is {article} {category} alert for {patient_name} (since {at}).{unanswered} Open Chronicle to see it."
                ),
            )
        };
        Notification {
            id: event.id,
            kind: format!("alert.{}", event.kind.as_str()),
            reason,
            created_at: event.at,
            detail: if full { "full" } else { "summary" },
            title,
            body,
            url: dashboard_url.map(str::to_owned),
            patient: NotifiedPatient {
                id: event.patient_id,
                name: patient_name.to_owned(),
            },
            alert: NotifiedAlert {
                id: alert.id,
                category: alert.category,
                severity: alert.severity,
                triggered_at: alert.triggered_at,
                rule: full.then_some(alert.rule),
                device_id: full.then(|| alert.device_id.clone()).flatten(),
                evidence: full.then(|| alert.evidence.clone()),
            },
        }
    }

    /// The e-mail text: the body, the link, and (for full detail) the evidence.
    pub fn email_text(&self) -> String {
        let mut text = format!("{}\n", self.body);
        if let Some(url) = &self.url {
            text.push_str(&format!("\n{url}\n"));
        }
        if let Some(serde_json::Value::Object(evidence)) = &self.alert.evidence {
            text.push_str("\nDetails:\n");
            for (key, value) in evidence {
                text.push_str(&format!("  {key}: {value}\n"));
            }
        }
        text.push_str(
            "\nYou receive this because you chose e-mail for the alerts shared with you in \
             Chronicle; remove the channel there to stop.\n",
        );
        text
    }
}

/// Delivers due notifications until shutdown.
pub async fn run(
    store: Store,
    hub: AlertHub,
    settings: NotificationSettings,
    metrics: AlertMetrics,
    shutdown: CancellationToken,
) {
    let client = match settings.delivery.http_client() {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the notification HTTP client; notifications are not delivered");
            return;
        }
    };
    let mailer = match &settings.email {
        None => None,
        Some(email) => match Mailer::new(email, settings.delivery.timeout) {
            Ok(mailer) => Some(mailer),
            Err(error) => {
                tracing::error!(%error, "e-mail is not delivered");
                None
            }
        },
    };
    let queue = NotificationQueue {
        store,
        client,
        mailer,
        settings: Arc::new(settings),
        metrics,
    };
    dispatch::run(queue, hub, shutdown).await;
}

#[derive(Clone)]
struct NotificationQueue {
    store: Store,
    client: reqwest::Client,
    mailer: Option<Mailer>,
    settings: Arc<NotificationSettings>,
    metrics: AlertMetrics,
}

/// How one attempt went.
struct Sent {
    outcome: AttemptOutcome,
    delivered: bool,
    /// No retry can succeed (a refused destination, a rejected address, a gone subscription).
    permanent: bool,
    /// The push service says the subscription is gone for good (RFC 8030 §7.3: 404, 410):
    /// the channel is disabled, so later alarms are not queued for it.
    subscription_gone: bool,
}

impl Sent {
    fn failed(error: impl Into<String>, permanent: bool) -> Sent {
        Sent {
            outcome: AttemptOutcome {
                status_code: None,
                error: Some(error.into()),
                duration_ms: 0,
            },
            delivered: false,
            permanent,
            subscription_gone: false,
        }
    }
}

impl DeliveryQueue for NotificationQueue {
    type Due = DueNotification;
    const WHAT: &'static str = "notification";

    fn destination(due: &DueNotification) -> Uuid {
        due.channel_id
    }

    async fn lease(&self, room: i64, busy: &[Uuid]) -> Result<Vec<DueNotification>, StorageError> {
        self.store
            .lease_notifications(
                room,
                dispatch::lease_for(self.settings.delivery.timeout),
                busy,
            )
            .await
    }

    async fn deliver(&self, due: DueNotification) -> Result<(), StorageError> {
        // An escalation or a reminder exists to get an alert acknowledged: once it is, or
        // once it is resolved, it has nothing left to say.
        if due.reason != DeliveryReason::Alarm && !due.alert_open {
            return self
                .store
                .withhold_notification(
                    due.id,
                    "the alert was acknowledged or resolved before this went",
                )
                .await;
        }
        // Quiet hours hold a non-urgent alarm back until they end, asked again every
        // QUIET_RECHECK so a receiver who changes them is followed at once. Before the gate:
        // it decides (and logs) when the notification is about to go.
        let now = Utc::now();
        if let Some(until) = due
            .quiet_hours
            .and_then(|quiet| quiet.holds_back(due.event.alert.severity, now))
        {
            let why = format!(
                "held for the receiver's quiet hours, until {}",
                until.format("%Y-%m-%d %H:%M UTC")
            );
            return self
                .store
                .postpone_notification(due.id, until.min(now + QUIET_RECHECK), &why)
                .await;
        }
        let (decision, refused) = self
            .store
            .authorize_notification(due.user_id, &due.event)
            .await?;
        let permit = match decision {
            NotificationDecision::Send(permit) => permit,
            NotificationDecision::Withhold => {
                let why = match refused {
                    Some(reason) => format!("the gate refused it: {}", reason.as_str()),
                    None => "not for this receiver now (snoozed, outside the grant's window, \
                             or the account is disabled)"
                        .to_owned(),
                };
                tracing::info!(delivery = due.id, %why, "notification withheld");
                return self.store.withhold_notification(due.id, &why).await;
            }
        };
        let notification = Notification::of(
            &due.event,
            due.reason,
            &due.patient_name,
            permit.allowance(),
            self.settings.dashboard_url.as_deref(),
        );
        let started = Instant::now();
        let mut sent = match &due.target {
            ChannelTarget::Webhook { url, secret } => {
                self.webhook(url, secret, &notification).await
            }
            ChannelTarget::WebPush {
                endpoint,
                p256dh,
                auth,
            } => {
                let mut sent = self.push(endpoint, p256dh, auth, &notification).await;
                // RFC 8030 §7.3: 404 and 410 say the subscription is gone for good.
                if matches!(sent.outcome.status_code, Some(404 | 410)) {
                    sent.permanent = true;
                    sent.subscription_gone = true;
                }
                sent
            }
            ChannelTarget::Email { address } => self.email(address, &notification).await,
        };
        sent.outcome.duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let attempt = due.attempts.saturating_add(1);
        let next = if sent.delivered {
            AfterAttempt::Delivered
        } else if sent.permanent {
            AfterAttempt::Failed
        } else {
            self.settings
                .delivery
                .after_failure(u32::try_from(attempt).unwrap_or(u32::MAX))
        };
        self.metrics
            .notification_attempts
            .get_or_create(&OutcomeLabel {
                outcome: if sent.delivered {
                    "delivered"
                } else {
                    "failed_attempt"
                },
            })
            .inc();
        if !sent.delivered {
            tracing::info!(delivery = due.id, attempt, error = ?sent.outcome.error, ?next, "notification attempt failed");
        }
        if sent.subscription_gone {
            tracing::info!(channel = %due.channel_id, "push subscription gone; channel disabled");
            sent.outcome.error = Some(format!(
                "the push service answered {}: the subscription is gone, the channel was disabled",
                sent.outcome.status_code.unwrap_or_default()
            ));
            self.store
                .disable_channel(due.user_id, due.channel_id)
                .await?;
        }
        self.store
            .record_notification_attempt(due.id, attempt, &sent.outcome, next)
            .await
    }
}

impl NotificationQueue {
    /// The answer of an HTTP receiver (a personal webhook, a push service).
    fn answered(response: Result<reqwest::Response, reqwest::Error>) -> Sent {
        match response {
            Ok(r) => {
                let status = r.status();
                Sent {
                    outcome: AttemptOutcome {
                        status_code: Some(i32::from(status.as_u16())),
                        error: (!status.is_success())
                            .then(|| format!("the receiver answered {}", status.as_u16())),
                        duration_ms: 0,
                    },
                    delivered: status.is_success(),
                    permanent: false,
                    subscription_gone: false,
                }
            }
            Err(e) => Sent::failed(request_failure(&e), false),
        }
    }

    async fn webhook(&self, url: &str, secret: &str, notification: &Notification) -> Sent {
        if self.settings.delivery.destinations.check(url).is_err() {
            return Sent::failed(ATTEMPT_REFUSED, true);
        }
        let body = match serde_json::to_vec(notification) {
            Ok(body) => body,
            Err(_) => return Sent::failed("the notification could not be encoded", true),
        };
        let timestamp = Utc::now().timestamp();
        let response = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature_header(secret, timestamp, &body))
            .header(EVENT_ID_HEADER, notification.id.to_string())
            .body(body)
            .send()
            .await;
        Self::answered(response)
    }

    async fn push(
        &self,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
        notification: &Notification,
    ) -> Sent {
        let Some(vapid) = &self.settings.vapid else {
            return Sent::failed("Web Push is not configured on this server", false);
        };
        if self.settings.delivery.destinations.check(endpoint).is_err() {
            return Sent::failed(ATTEMPT_REFUSED, true);
        }
        let (Ok(uri), Ok((key, auth))) = (endpoint.parse(), push_keys(p256dh, auth)) else {
            return Sent::failed("the push subscription is not usable", true);
        };
        let body = match serde_json::to_vec(notification) {
            Ok(body) => body,
            Err(_) => return Sent::failed("the notification could not be encoded", true),
        };
        let request = web_push_native::WebPushBuilder::new(uri, key, auth)
            // An alarm an hour late is no alarm: the push service may drop it after that.
            .with_valid_duration(PUSH_TTL)
            .build(body);
        let (mut request, authorization) = match (
            request.map(reqwest::Request::try_from),
            vapid.authorization(endpoint),
        ) {
            (Ok(Ok(request)), Some(authorization)) => (request, authorization),
            _ => return Sent::failed("the push message could not be built", true),
        };
        request
            .headers_mut()
            .insert(reqwest::header::AUTHORIZATION, authorization);
        // RFC 8030 §5.3: urgent alarms wake the device.
        let urgency = if notification.alert.severity == Severity::Urgent {
            "high"
        } else {
            "normal"
        };
        request.headers_mut().insert(
            "Urgency",
            reqwest::header::HeaderValue::from_static(urgency),
        );
        Self::answered(self.client.execute(request).await)
    }

    async fn email(&self, address: &str, notification: &Notification) -> Sent {
        let Some(mailer) = &self.mailer else {
            return Sent::failed("e-mail is not configured on this server", false);
        };
        match mailer
            .send(address, &notification.title, notification.email_text())
            .await
        {
            Ok(response) => Sent {
                outcome: AttemptOutcome {
                    status_code: Some(i32::from(u16::from(response.code()))),
                    error: None,
                    duration_ms: 0,
                },
                delivered: true,
                permanent: false,
                subscription_gone: false,
            },
            Err(error) => {
                let (code, permanent) = match error {
                    MailError::Relay {
                        code, permanent, ..
                    } => (code.map(i32::from), permanent),
                    MailError::Address | MailError::Message => (None, true),
                };
                Sent {
                    outcome: AttemptOutcome {
                        status_code: code,
                        error: Some(error.to_string()),
                        duration_ms: 0,
                    },
                    delivered: false,
                    permanent,
                    subscription_gone: false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronicle_domain::alerts::lifecycle::{AlertKind, AlertStatus};
    use chronicle_domain::sharing::{Basis, Purpose};
    use chronicle_storage::alerts::AlertRecord;
    use web_push_native::jwt_simple::prelude::{NoCustomClaims, VerificationOptions};

    fn event() -> AlertEvent {
        let at = Utc::now();
        AlertEvent {
            id: 7,
            kind: EventKind::Opened,
            patient_id: Uuid::nil(),
            category: DataCategory::Glucose,
            actor_id: None,
            at,
            alert: AlertRecord {
                id: Uuid::nil(),
                seq: 1,
                patient_id: Uuid::nil(),
                rule: RuleId::GlucoseVeryLow,
                category: DataCategory::Glucose,
                severity: Severity::Urgent,
                kind: AlertKind::Alert,
                status: Some(AlertStatus::Open),
                device_id: Some("cgm-1".into()),
                triggered_at: at,
                last_seen_at: at,
                cleared_since: None,
                trigger_count: 1,
                evidence: serde_json::json!({"value_mg_dl": 48.0}),
                opened_at: at,
                updated_at: at,
                acknowledged_by: None,
                acknowledged_at: None,
                acknowledgement_note: None,
                resolved_by: None,
                resolved_at: None,
                resolution: None,
                resolution_note: None,
                audience_acknowledgement: None,
            },
        }
    }

    fn allowance(individual_readings: bool) -> Allowance {
        Allowance {
            basis: Basis::Grant(Uuid::nil()),
            purpose: Some(Purpose::Caregiving),
            data_since: None,
            individual_readings,
            deidentified: false,
        }
    }

    #[test]
    fn a_trends_only_receiver_is_told_severity_and_category_only() {
        let event = event();
        let full = serde_json::to_value(Notification::of(
            &event,
            DeliveryReason::Alarm,
            "Robin",
            &allowance(true),
            None,
        ))
        .expect("json");
        assert_eq!(full["detail"], "full");
        assert_eq!(full["alert"]["rule"], "glucose_very_low");
        assert_eq!(full["alert"]["evidence"]["value_mg_dl"], 48.0);
        assert_eq!(full["alert"]["device_id"], "cgm-1");
        let summary = Notification::of(
            &event,
            DeliveryReason::Alarm,
            "Robin",
            &allowance(false),
            None,
        );
        assert_eq!(summary.title, "Urgent glucose alert for Robin");
        let summary = serde_json::to_value(summary).expect("json");
        assert_eq!(summary["detail"], "summary");
        for hidden in ["rule", "evidence", "device_id"] {
            assert!(
                summary["alert"].get(hidden).is_none(),
                "{hidden}: {summary}"
            );
        }
        assert!(!summary.to_string().contains("very low"), "{summary}");
    }

    #[test]
    fn escalations_and_reminders_say_that_nobody_has_acknowledged() {
        let event = event();
        let reminder = Notification::of(
            &event,
            DeliveryReason::Reminder,
            "Robin",
            &allowance(true),
            None,
        );
        assert_eq!(reminder.title, "Reminder: Urgent: very low glucose — Robin");
        assert!(
            reminder.body.contains("Nobody has acknowledged it yet."),
            "{}",
            reminder.body
        );
        let escalated = Notification::of(
            &event,
            DeliveryReason::Escalation,
            "Robin",
            &allowance(false),
            None,
        );
        assert_eq!(
            escalated.title,
            "Escalated to you: Urgent glucose alert for Robin"
        );
        let json = serde_json::to_value(&escalated).expect("json");
        assert_eq!(json["reason"], "escalation");
    }

    #[test]
    fn the_vapid_token_names_the_endpoints_origin_and_verifies_with_the_published_key() {
        let key = VapidKey::from_private(
            &VapidKey::generate_private(),
            "mailto:ops@example.org".into(),
        )
        .expect("key");
        let header = key
            .authorization("https://push.example.net:8443/send/abc")
            .expect("header");
        let header = header.to_str().expect("ascii");
        let (token, k) = header
            .strip_prefix("vapid t=")
            .and_then(|rest| rest.split_once(", k="))
            .expect("vapid t=…, k=…");
        assert_eq!(k, key.public_key());
        let public = web_push_native::jwt_simple::algorithms::ES256PublicKey::from_bytes(
            &URL_SAFE_NO_PAD.decode(k).expect("base64url"),
        )
        .expect("a P-256 key");
        let claims = public
            .verify_token::<NoCustomClaims>(token, Some(VerificationOptions::default()))
            .expect("the signature verifies");
        assert_eq!(
            claims.audiences.map(|a| a.into_string().expect("one")),
            Some("https://push.example.net:8443".to_owned())
        );
        assert_eq!(claims.subject.as_deref(), Some("mailto:ops@example.org"));
        assert!(VapidKey::from_private("not a key", String::new()).is_err());
        assert!(key.authorization("not a url").is_none());
    }

    #[test]
    fn push_keys_and_addresses_are_checked() {
        assert!(check_email("robin@example.org").is_ok());
        assert!(check_email("robin").is_err());
        assert!(check_push_keys("BAAA", "AAAAAAAAAAAAAAAAAAAAAA").is_err());
        let browser = ES256KeyPair::generate()
            .public_key()
            .public_key()
            .to_bytes_uncompressed();
        let p256dh = URL_SAFE_NO_PAD.encode(browser);
        assert!(check_push_keys(&p256dh, "AAAAAAAAAAAAAAAAAAAAAA").is_ok());
        assert!(
            check_push_keys(&p256dh, "AAAA").is_err(),
            "auth is 16 bytes"
        );
    }
}

//! Probe patients whose alarms are timed: from the publish of a very-low reading to the alert
//! event on a care team member's live stream (`GET /v1/alerts/stream`). Shared by
//! `chronicle bench alerts` (one probe over paced background devices) and `chronicle bench
//! fleet` (a few probes among a fleet of patients).
//!
//! Each alarm is a clear reading followed by a very low one a millisecond later: the clear
//! reading resolves the previous alarm, so every very low opens (or re-triggers) the probe's
//! alert again and yields one event.

use super::fleet::TOPIC_PREFIX;
use anyhow::Context;
use chronicle_domain::DeviceKind;
use chronicle_domain::sharing::{Access, DataCategory, Grantee, Purpose, Role};
use chronicle_domain::topics::readings_topic;
use chronicle_storage::identity::{NewUser, TokenKind};
use chronicle_storage::sharing::NewGrant;
use chronicle_storage::{DeviceCredentials, NewPatient, Store};
use chrono::{DateTime, SecondsFormat, Utc};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Probe patients, each with a CGM of their own, and the bearer token of a clinician whose care
/// team receives their alerts.
pub struct AlarmProbes {
    probes: Vec<Probe>,
    clinician: Uuid,
    token: String,
}

struct Probe {
    patient_id: Uuid,
    device: DeviceCredentials,
}

/// When and how often the probes raise alarms.
#[derive(Debug, Clone)]
pub struct AlarmSchedule {
    /// Time between two alarms (of the probes taken in turn).
    pub interval: Duration,
    /// At most this many alarms.
    pub alarms: usize,
    /// Raising alarms stops early once this is set.
    pub stop: Arc<AtomicBool>,
    /// How long to wait, after the last alarm, for events still on their way; alarms whose
    /// event has not arrived by then count as missed.
    pub patience: Duration,
}

/// The timed alarms.
#[derive(Debug, Clone, Default)]
pub struct AlarmTimes {
    /// Publish → event on the stream, sorted.
    pub latencies: Vec<Duration>,
    /// Alarms whose event never arrived.
    pub missed: usize,
    /// Every alarm raised, to time it on another path too (a push).
    pub raised: Alarms,
}

/// Alarms raised and not yet answered: per patient, the `measured_at` of each very low sent
/// (as the server keeps it, to the microsecond) and when it was published.
pub type Alarms = BTreeMap<(Uuid, DateTime<Utc>), Instant>;

/// The latencies of the alarms an alert event answers, removed from `pending`: every alarm of
/// `patient` measured at or before the event's `last_seen_at` (alarms raised faster than the
/// engine evaluates come out as one event).
pub fn answer(
    pending: &mut Alarms,
    patient: Uuid,
    last_seen: DateTime<Utc>,
    arrived: Instant,
) -> Vec<Duration> {
    let answered: Vec<(Uuid, DateTime<Utc>)> = pending
        .range((patient, DateTime::<Utc>::MIN_UTC)..=(patient, last_seen))
        .map(|(key, _)| *key)
        .collect();
    answered
        .into_iter()
        .filter_map(|key| pending.remove(&key))
        .map(|published| arrived.saturating_duration_since(published))
        .collect()
}

impl AlarmProbes {
    /// Registers `count` probe patients with a CGM each, one clinic, care team and clinician
    /// receiving their alerts.
    pub async fn register(store: &Store, count: usize) -> anyhow::Result<AlarmProbes> {
        let org = store.create_organization("Benchmark clinic").await?;
        let team = store.create_care_team(org.id, "Benchmark team").await?;
        let clinician = store
            .create_user(&NewUser {
                email: "clinician@bench.example".to_owned(),
                display_name: "Benchmark clinician".to_owned(),
                role: Role::Clinician,
                password_hash: None,
                patient_id: None,
            })
            .await?;
        store.add_team_member(team.id, clinician.id).await?;
        let mut probes = Vec::with_capacity(count);
        for i in 0..count.max(1) {
            let patient = store
                .create_patient(&NewPatient {
                    display_name: format!("Probe {i}"),
                    time_zone: "UTC".to_owned(),
                })
                .await?;
            store
                .create_grant(&NewGrant {
                    patient_id: patient.id,
                    grantee: Grantee::CareTeam(team.id),
                    categories: [DataCategory::Glucose].into_iter().collect(),
                    access: [Access::ReceiveAlerts].into_iter().collect(),
                    purpose: Purpose::Care,
                    data_since: None,
                    expires_at: None,
                    created_by: None,
                })
                .await?;
            let (_, device) = store
                .create_device(patient.id, DeviceKind::Cgm, Some("probe"))
                .await?;
            probes.push(Probe {
                patient_id: patient.id,
                device,
            });
        }
        let token = store
            .issue_token(clinician.id, TokenKind::Api, Some("benchmark"), None)
            .await?;
        Ok(AlarmProbes {
            probes,
            clinician: clinician.id,
            token: token.token,
        })
    }

    /// The clinician whose care team receives the probes' alerts.
    pub fn clinician(&self) -> Uuid {
        self.clinician
    }

    /// The probes' device ids, to tell their readings from the rest.
    pub fn device_ids(&self) -> Vec<&str> {
        self.probes.iter().map(|p| p.device.id.as_str()).collect()
    }

    /// Raises alarms on `schedule` through the broker on `mqtt_port` and times each to its
    /// event on the stream of the server at `http`.
    pub async fn run(
        &self,
        http: SocketAddr,
        mqtt_port: u16,
        schedule: &AlarmSchedule,
    ) -> anyhow::Result<AlarmTimes> {
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let stream = tokio::spawn(read_stream(http, self.token.clone(), events_tx));
        // The stream is open before the first alarm.
        tokio::time::sleep(Duration::from_millis(500)).await;

        let mut clients = Vec::with_capacity(self.probes.len());
        for probe in &self.probes {
            let client = connect_device(mqtt_port, &probe.device, "probe").await?;
            let topic = readings_topic(TOPIC_PREFIX, probe.device.id.as_str());
            clients.push((probe.patient_id, client, topic));
        }
        let mut sent = Alarms::new();
        let mut ticker = tokio::time::interval(schedule.interval);
        for alarm in 0..schedule.alarms {
            ticker.tick().await;
            if schedule.stop.load(Ordering::Relaxed) {
                break;
            }
            let (patient_id, client, topic) = &clients[alarm % clients.len()];
            let now = Utc::now();
            let clear = now - chrono::Duration::milliseconds(1);
            let payload = format!(
                r#"{{"readings":[{{"type":"glucose","value":100,"unit":"mg/dL","measured_at":"{}"}},{{"type":"glucose","value":50,"unit":"mg/dL","measured_at":"{}"}}]}}"#,
                clear.to_rfc3339_opts(SecondsFormat::Micros, true),
                now.to_rfc3339_opts(SecondsFormat::Micros, true)
            );
            // The server keeps microseconds; the event's last_seen_at is this value.
            let truncated = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
            sent.insert((*patient_id, truncated), Instant::now());
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .context("probe publish")?;
        }

        let raised = sent.clone();
        let mut latencies = Vec::new();
        let deadline = tokio::time::Instant::now() + schedule.patience;
        while !sent.is_empty() {
            let Ok(Some((patient_id, last_seen, arrived))) =
                tokio::time::timeout_at(deadline, events.recv()).await
            else {
                break;
            };
            latencies.extend(answer(&mut sent, patient_id, last_seen, arrived));
        }
        stream.abort();
        for (_, client, _) in clients {
            let _ = client.disconnect().await;
        }
        latencies.sort_unstable();
        Ok(AlarmTimes {
            latencies,
            missed: sent.len(),
            raised,
        })
    }
}

/// Connects a device under client id `{device}.{role}`, its acks drained by a task of its own.
pub async fn connect_device(
    port: u16,
    device: &DeviceCredentials,
    role: &str,
) -> anyhow::Result<AsyncClient> {
    let id = device.id.as_str();
    let mut options = MqttOptions::new(format!("{id}.{role}"), "127.0.0.1", port);
    options
        .set_credentials(id, &device.secret)
        .set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    Ok(client)
}

/// Reads the alert stream (HTTP/1.0, so the body is the raw event stream until the server
/// closes it) and sends the patient and `last_seen_at` of every very-low alert event with its
/// arrival.
async fn read_stream(
    addr: SocketAddr,
    token: String,
    events: mpsc::UnboundedSender<(Uuid, DateTime<Utc>, Instant)>,
) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!(
                "GET /v1/alerts/stream HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    let mut lines = BufReader::new(stream).lines();
    while let Some(line) = lines.next_line().await? {
        let Some(data) = line
            .strip_prefix("data: ")
            .or_else(|| line.strip_prefix("data:"))
        else {
            continue;
        };
        let arrived = Instant::now();
        let Ok(event) = serde_json::from_str::<serde_json::Value>(data) else {
            continue;
        };
        if event["alert"]["rule"] != "glucose_very_low" {
            continue;
        }
        let patient = event["alert"]["patient_id"]
            .as_str()
            .and_then(|s| s.parse::<Uuid>().ok());
        let last_seen = event["alert"]["last_seen_at"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
        if let (Some(patient), Some(last_seen)) = (patient, last_seen) {
            let _ = events.send((patient, last_seen.with_timezone(&Utc), arrived));
        }
    }
    Ok(())
}

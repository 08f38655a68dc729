//! The transport-independent ingest pipeline: decode → validate → normalize → deduplicate →
//! store, for one batch of raw messages.

use crate::metrics::{IngestMetrics, KindLabel};
use crate::registry_cache::RegistryCache;
use bytes::Bytes;
use chronicle_domain::alerts::thresholds::may_raise_urgent_alarm;
use chronicle_domain::imports;
use chronicle_domain::wire::{self, Ack, AckRejection, DecodeLimits};
use chronicle_domain::{DeviceId, Publisher, Reading, ReadingKind, Rejection, RejectionReason};
use chronicle_storage::followups::CURRENT_WITHIN;
use chronicle_storage::{
    BatchWrite, DeviceForIngest, IngestBacklog, ReadingRow, RejectionRow, StorageError, Store,
    UrgentPatients, UrgentReadings,
};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::watch;

/// Refused payloads are kept for diagnosis, but an oversized one is cut to this many bytes.
const MAX_STORED_RAW_BYTES: usize = 64 * 1024;

/// A message as a front door received it.
#[derive(Debug, Clone)]
pub struct IncomingMessage {
    /// The device the transport says sent it (for MQTT, the id in the topic). Checked against
    /// the registry; the payload never decides whose record a reading lands in.
    pub device_id: String,
    pub payload: Bytes,
    pub received_at: DateTime<Utc>,
    /// What the broker said about who published it.
    pub authorization: BrokerAuthorization,
    /// Delivered again (MQTT's DUP flag): see [`Ack::redelivered`].
    pub redelivered: bool,
}

/// The broker's word on a message's publisher. The ingest checks it again against the
/// registry: a second line behind the broker's own authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerAuthorization {
    /// The broker does not say who published (an external broker): the broker's ACL is the
    /// only check of the topic.
    NotReported,
    /// The broker authenticated this publisher and let the message through; it is refused
    /// unless the publisher is the device itself or a gateway relaying it.
    Allowed(Publisher),
    /// The broker refused the message (the publisher may not publish for that device); it is
    /// only recorded, with this detail.
    Refused(Publisher, String),
}

/// What happened to one message, once its batch committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageOutcome {
    pub device_id: String,
    pub ack: Ack,
}

/// Runs batches through validation and storage.
#[derive(Debug, Clone)]
pub struct Pipeline {
    store: Store,
    limits: DecodeLimits,
    metrics: IngestMetrics,
    /// Who gets follow-up work for newly stored readings (`chronicle_storage::followups`).
    followup_consumers: Arc<[&'static str]>,
    /// Counts commits that enqueued follow-up work, so consumers in this process start at
    /// once instead of at their next poll.
    followups_enqueued: Arc<watch::Sender<u64>>,
    /// Whether the commits are working through a backlog, for the consumers in this process.
    backlog: IngestBacklog,
    /// Where to announce the patients of newly stored readings that may raise an urgent
    /// alarm: the urgent lane of the alert engine in this process, if it runs one.
    urgent: Option<UrgentPatients>,
    /// The registry as last read, when something follows its announcements; without it every
    /// batch reads the registry.
    registry: Option<Arc<RegistryCache>>,
}

/// A validated reading waiting for the write, with where it came from.
struct Pending {
    message: usize,
    reading: Reading,
    /// Whether this is the first reading in the batch with its idempotency key; later ones are
    /// duplicates whatever the database says.
    first_in_batch: bool,
}

impl Pipeline {
    pub fn new(store: Store, limits: DecodeLimits, metrics: IngestMetrics) -> Pipeline {
        Pipeline {
            store,
            limits,
            metrics,
            followup_consumers: Arc::from(Vec::new()),
            followups_enqueued: Arc::new(watch::Sender::new(0)),
            backlog: IngestBacklog::default(),
            urgent: None,
            registry: None,
        }
    }

    /// Reads the registry through `cache`, which the caller keeps following the registry's
    /// announcements ([`RegistryCache::follow`]).
    pub fn with_registry_cache(mut self, cache: Arc<RegistryCache>) -> Pipeline {
        self.registry = Some(cache);
        self
    }

    /// Enqueues follow-up work for these consumers with every batch that stores readings.
    pub fn with_followup_consumers(mut self, consumers: &[&'static str]) -> Pipeline {
        self.followup_consumers = Arc::from(consumers);
        self
    }

    /// Changes after every commit that enqueued follow-up work.
    pub fn followups_enqueued(&self) -> watch::Receiver<u64> {
        self.followups_enqueued.subscribe()
    }

    /// Whether the commits are working through a backlog ([`IngestBacklog`]).
    pub fn ingest_backlog(&self) -> IngestBacklog {
        self.backlog.clone()
    }

    /// Announces the patients of newly stored readings that may raise an urgent alarm to
    /// `urgent`, which the alert engine of this process takes them from (with follow-up
    /// consumers only: the work it announces is what they queue).
    pub fn with_urgent_lane(mut self, urgent: UrgentPatients) -> Pipeline {
        self.urgent = Some(urgent);
        self
    }

    pub fn limits(&self) -> &DecodeLimits {
        &self.limits
    }

    pub fn metrics(&self) -> &IngestMetrics {
        &self.metrics
    }

    /// Processes a batch in one transaction. On error nothing was committed and the whole
    /// batch may be retried: the result is the same whenever it finally commits.
    pub async fn process(
        &self,
        messages: &[IncomingMessage],
    ) -> Result<Vec<MessageOutcome>, StorageError> {
        let known_ids: Vec<&str> = messages
            .iter()
            .map(|m| m.device_id.as_str())
            .filter(|id| DeviceId::parse(id).is_ok())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let devices = self.devices(&known_ids).await?;
        // Each message's device, looked up once.
        let message_devices: Vec<Option<&DeviceForIngest>> = messages
            .iter()
            .map(|message| devices.get(&message.device_id))
            .collect();
        let relayed = self.relayed(messages).await?;

        let mut outcomes: Vec<MessageOutcome> = Vec::with_capacity(messages.len());
        let mut pending: Vec<Pending> = Vec::new();
        let mut rejection_rows: Vec<RejectionRow> = Vec::new();
        let mut all_rejections: Vec<(usize, Rejection)> = Vec::new();
        let mut claimed: HashSet<(&'static str, &str, DateTime<Utc>)> = HashSet::new();

        for (index, (message, &device)) in messages.iter().zip(&message_devices).enumerate() {
            let (message_id, accepted, rejections) = self.decode(message, device, &relayed);
            tracing::debug!(
                device_id = %message.device_id,
                message_id = message_id.as_deref().unwrap_or(""),
                accepted = accepted.len(),
                rejected = rejections.len(),
                "message validated"
            );
            for rejection in &rejections {
                rejection_rows.push(rejection_row(
                    message,
                    device,
                    message_id.as_deref(),
                    rejection,
                ));
            }
            for accepted in accepted {
                let key = (
                    accepted.series(),
                    message.device_id.as_str(),
                    accepted.measured_at(),
                );
                let first_in_batch = claimed.insert(key);
                pending.push(Pending {
                    message: index,
                    reading: accepted,
                    first_in_batch,
                });
            }
            all_rejections.extend(rejections.into_iter().map(|r| (index, r)));
            outcomes.push(MessageOutcome {
                device_id: message.device_id.clone(),
                ack: Ack {
                    message_id,
                    stored: 0,
                    duplicates: 0,
                    rejected: 0,
                    rejections: Vec::new(),
                    redelivered: message.redelivered,
                },
            });
        }

        let batch = BatchWrite {
            readings: pending
                .iter()
                .filter(|p| p.first_in_batch)
                .filter_map(|p| {
                    message_devices[p.message].map(|device| ReadingRow {
                        device_key: device.key,
                        patient_id: device.patient_id,
                        reading: &p.reading,
                    })
                })
                .collect(),
            rejections: rejection_rows,
            followup_consumers: &self.followup_consumers,
        };
        let started = std::time::Instant::now();
        let inserted = self.store.write_batch(&batch).await?;
        let committed_at = Utc::now();
        if !inserted.is_empty() && !self.followup_consumers.is_empty() {
            // Before the rounds are woken, so the urgent lane starts on its patients first.
            if let Some(urgent) = &self.urgent {
                urgent.announce(pending.iter().filter_map(|p| {
                    let device = message_devices[p.message]?;
                    (p.first_in_batch
                        && may_raise_urgent_alarm(&p.reading, messages[p.message].received_at)
                        && inserted.contains(device.key, &p.reading))
                    .then_some(UrgentReadings {
                        patient_id: device.patient_id,
                        kind: p.reading.kind(),
                        first_measured_at: p.reading.measured_at(),
                    })
                }));
            }
            self.followups_enqueued.send_modify(|n| *n += 1);
        }
        self.metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());

        let late_from = committed_at - CURRENT_WITHIN;
        let mut late = 0;
        let mut stored_by_kind = [0u64; ReadingKind::ALL.len()];
        let mut duplicates = 0;
        for p in &pending {
            let ack = &mut outcomes[p.message].ack;
            let stored = message_devices[p.message]
                .is_some_and(|device| inserted.contains(device.key, &p.reading));
            if p.first_in_batch && stored {
                ack.stored += 1;
                late += usize::from(p.reading.measured_at() < late_from);
                stored_by_kind[p.reading.kind() as usize] += 1;
            } else {
                ack.duplicates += 1;
                duplicates += 1;
            }
        }
        // Counted once a batch: each count of a labelled family takes a lock and a lookup.
        for (kind, count) in ReadingKind::ALL.iter().zip(stored_by_kind) {
            if count > 0 {
                self.metrics
                    .readings_stored
                    .get_or_create(&KindLabel {
                        kind: kind.as_str(),
                    })
                    .inc_by(count);
            }
        }
        self.metrics.readings_duplicate.inc_by(duplicates);
        self.backlog.note_commit(inserted.len(), late);
        for (index, rejection) in &all_rejections {
            let ack = &mut outcomes[*index].ack;
            ack.rejected += rejection.readings_covered;
            ack.rejections.push(AckRejection::from(rejection));
            self.metrics.count_rejected(rejection);
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            for (device, outcome) in message_devices.iter().zip(&outcomes) {
                let patient_id = device.map(|d| d.patient_id);
                tracing::debug!(
                    device_id = %outcome.device_id,
                    patient_id = patient_id.map(tracing::field::display),
                    message_id = outcome.ack.message_id.as_deref().unwrap_or(""),
                    stored = outcome.ack.stored,
                    duplicates = outcome.ack.duplicates,
                    rejected = outcome.ack.rejected,
                    "message committed"
                );
            }
        }
        self.metrics.batch_messages.observe(messages.len() as f64);
        self.metrics.batch_readings.observe(pending.len() as f64);
        for message in messages {
            let lag = (committed_at - message.received_at)
                .num_microseconds()
                .unwrap_or(0);
            self.metrics.lag_seconds.observe(lag.max(0) as f64 / 1e6);
        }
        Ok(outcomes)
    }

    /// Refuses a message the database would not store although it passed validation (the
    /// batcher found it alone in its batch: [`StorageError::is_refused_content`]), records the
    /// refusal, and returns the outcome to answer it with. A second line behind validation:
    /// such a message would otherwise fail its batch on every retry and hold up every
    /// message after it.
    pub async fn refuse_unstorable(
        &self,
        message: &IncomingMessage,
        error: &StorageError,
    ) -> MessageOutcome {
        let (message_id, count) =
            id_and_count(&wire::parse_message(&message.payload, &self.limits));
        tracing::error!(
            device_id = %message.device_id,
            message_id = message_id.as_deref().unwrap_or(""),
            %error,
            "the database refused a validated message; refused as not storable"
        );
        let refusal = Rejection::message(
            RejectionReason::NotStorable,
            "the database cannot store a value of this message; nothing of it was stored",
            count,
        );
        let devices = self.devices(&[message.device_id.as_str()]).await.ok();
        let device = devices.as_ref().and_then(|d| d.get(&message.device_id));
        let row = rejection_row(message, device, message_id.as_deref(), &refusal);
        let record = BatchWrite {
            rejections: vec![row],
            ..BatchWrite::default()
        };
        if let Err(error) = self.store.write_batch(&record).await {
            // Answered all the same: a refusal that cannot be recorded must not hold up the
            // ingest either.
            tracing::error!(%error, device_id = %message.device_id, "could not record a refusal");
        }
        self.metrics.count_rejected(&refusal);
        MessageOutcome {
            device_id: message.device_id.clone(),
            ack: Ack {
                message_id,
                stored: 0,
                duplicates: 0,
                rejected: refusal.readings_covered,
                rejections: vec![AckRejection::from(&refusal)],
                redelivered: message.redelivered,
            },
        }
    }

    /// The registry's entries for these device ids (through the cache, when there is one).
    async fn devices(
        &self,
        ids: &[&str],
    ) -> Result<std::collections::HashMap<String, DeviceForIngest>, StorageError> {
        match &self.registry {
            Some(cache) => cache.devices(&self.store, ids).await,
            None => self.store.devices_for_ingest(ids).await,
        }
    }

    /// The (gateway, device) pairs of the batch where the gateway, as the registry has it now,
    /// relays the device: one query for the whole batch, none without gateways.
    async fn relayed(
        &self,
        messages: &[IncomingMessage],
    ) -> Result<HashSet<(String, String)>, StorageError> {
        let pairs: Vec<(&str, &str)> = messages
            .iter()
            .filter_map(|m| match &m.authorization {
                BrokerAuthorization::Allowed(Publisher::Gateway(g)) => {
                    Some((g.as_str(), m.device_id.as_str()))
                }
                _ => None,
            })
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if pairs.is_empty() {
            return Ok(HashSet::new());
        }
        match &self.registry {
            Some(cache) => cache.relayed(&self.store, &pairs).await,
            None => Ok(self
                .store
                .relayed_pairs(&pairs)
                .await?
                .into_iter()
                .collect()),
        }
    }

    /// Decodes and validates one message for the device the registry knows (if any).
    fn decode(
        &self,
        message: &IncomingMessage,
        device: Option<&DeviceForIngest>,
        relayed: &HashSet<(String, String)>,
    ) -> (Option<String>, Vec<Reading>, Vec<Rejection>) {
        let parsed = wire::parse_message(&message.payload, &self.limits);
        let (message_id, count) = id_and_count(&parsed);
        if let Some(detail) = unauthorized(message, relayed) {
            let refusal = Rejection::message(RejectionReason::NotAuthorized, detail, count);
            return (message_id, Vec::new(), vec![refusal]);
        }
        let device = match device {
            None => {
                let detail = format!("device {:?} is not registered", message.device_id);
                let refusal = Rejection::message(RejectionReason::UnknownDevice, detail, count);
                return (message_id, Vec::new(), vec![refusal]);
            }
            Some(d) if d.revoked => {
                let detail = format!("device {} was revoked", message.device_id);
                let refusal = Rejection::message(RejectionReason::RevokedDevice, detail, count);
                return (message_id, Vec::new(), vec![refusal]);
            }
            Some(d) => d,
        };
        match parsed {
            Err(refused) => (message_id, Vec::new(), vec![refused.rejection]),
            Ok(parsed) => {
                // A patient's import device holds an export's history, older than a live
                // device's readings may be (`chronicle_domain::imports`).
                let import_limits;
                let limits = if device.imported {
                    import_limits = imports::import_limits(&self.limits);
                    &import_limits
                } else {
                    &self.limits
                };
                let (accepted, rejected) =
                    wire::validate_readings(&parsed, device.kind, message.received_at, limits);
                (
                    message_id,
                    accepted.into_iter().map(|r| r.reading).collect(),
                    rejected,
                )
            }
        }
    }
}

/// Why the message's publisher may not publish for the device it names, if it may not.
fn unauthorized(message: &IncomingMessage, relayed: &HashSet<(String, String)>) -> Option<String> {
    match &message.authorization {
        BrokerAuthorization::NotReported => None,
        BrokerAuthorization::Refused(_, detail) => Some(detail.clone()),
        BrokerAuthorization::Allowed(Publisher::Device(d)) if d.as_str() == message.device_id => {
            None
        }
        BrokerAuthorization::Allowed(Publisher::Device(d)) => Some(format!(
            "device {d} may publish only its own readings, not device {:?}'s",
            message.device_id
        )),
        BrokerAuthorization::Allowed(Publisher::Gateway(g)) => {
            (!relayed.contains(&(g.as_str().to_owned(), message.device_id.clone()))).then(|| {
                format!(
                    "gateway {g} does not relay device {:?} (not attached, or revoked)",
                    message.device_id
                )
            })
        }
    }
}

fn rejection_row(
    message: &IncomingMessage,
    device: Option<&DeviceForIngest>,
    message_id: Option<&str>,
    rejection: &Rejection,
) -> RejectionRow {
    // A refused reading keeps its own JSON; a refused message keeps the payload.
    let raw = match &rejection.raw {
        Some(raw) => truncate_utf8(raw.as_bytes()),
        None => truncate_utf8(&message.payload),
    };
    let publisher = match &message.authorization {
        BrokerAuthorization::NotReported => None,
        BrokerAuthorization::Allowed(p) | BrokerAuthorization::Refused(p, _) => {
            Some(storable_text(&p.to_string()))
        }
    };
    // An attempt to write into a record the publisher may not write to is kept as evidence,
    // but not as the named patient's own data.
    let patient_id = match rejection.reason {
        RejectionReason::NotAuthorized => None,
        _ => device.map(|d| d.patient_id),
    };
    // Every text is the sender's, or quotes it: none may stop the batch from committing.
    RejectionRow {
        device_id: storable_text(&message.device_id),
        patient_id,
        publisher,
        message_id: message_id.map(storable_text),
        reading_index: rejection.index.and_then(|i| i32::try_from(i).ok()),
        device_reading_id: rejection.device_reading_id.as_deref().map(storable_text),
        reason: rejection.reason.code(),
        detail: storable_text(&rejection.detail),
        readings_covered: i32::try_from(rejection.readings_covered).unwrap_or(i32::MAX),
        raw,
    }
}

/// Keeps at most [`MAX_STORED_RAW_BYTES`] of a payload as text; bytes that are not UTF-8 are
/// replaced (the database column is text).
fn truncate_utf8(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_STORED_RAW_BYTES)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > MAX_STORED_RAW_BYTES {
        text.push_str(&format!("… [{} bytes in all]", bytes.len()));
    }
    storable_text(&text)
}

/// `text` with each NUL character, which PostgreSQL's text cannot hold, replaced
/// ([`wire::storable`]).
fn storable_text(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

/// A message's own id and how many readings it holds (or its refusal covers).
fn id_and_count(
    parsed: &Result<wire::ParsedMessage<'_>, Box<wire::RefusedMessage>>,
) -> (Option<String>, usize) {
    match parsed {
        Ok(p) => (p.message_id.clone(), p.readings.len()),
        Err(refused) => (
            refused.message_id.clone(),
            refused.rejection.readings_covered,
        ),
    }
}

//! Time: which readings each device sends, when, and in which messages.
//!
//! - **Backfill**: everything in the window at once, each device syncing its memory in batch
//!   messages of up to the protocol's limit (readings and bytes).
//! - **Live**: the real clock. Readings measured before now are sent first as a backlog
//!   (batches), then each reading as a one-reading message when its time comes.
//! - **Accelerated** (N×): a simulated clock that starts at the window's start and runs N
//!   times faster than the real one; each reading is sent when the simulated clock passes it.
//!   It never runs ahead of the real clock (Chronicle refuses readings from the future): once
//!   it has caught up it goes on live.
//!
//! Messages leave through a round-robin dispatcher: each device has a queue and a window of
//! unacknowledged messages, and an optional overall rate (messages per second) applies.
//! Faults ([`crate::faults`]) are injected while messages are built.

use crate::faults::{FaultKind, FaultRates};
use crate::ledger::{Expected, Progress};
use crate::mqtt::{Fleet, Outgoing};
use crate::reading::SimReading;
use crate::rng::{self, SimRng};
use crate::sim::PatientSim;
use chronicle_domain::{RejectionReason, TreatmentKind};
use chrono::{DateTime, Duration as ChronoDuration, SecondsFormat, Utc};
use rand::Rng;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How simulated time relates to the real clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    Backfill,
    Live,
    /// The simulated clock runs this many times faster than the real one.
    Accelerated(f64),
}

/// The server's limits the simulator must respect (or, for faults, exceed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerLimits {
    pub max_message_bytes: usize,
    pub max_readings_per_message: usize,
    pub max_future_skew: ChronoDuration,
}

impl Default for ServerLimits {
    /// `chronicle serve`'s defaults.
    fn default() -> Self {
        ServerLimits {
            max_message_bytes: 1024 * 1024,
            max_readings_per_message: 5000,
            max_future_skew: ChronoDuration::seconds(600),
        }
    }
}

/// What to play.
#[derive(Debug, Clone)]
pub struct Plan {
    pub start: DateTime<Utc>,
    /// `None`: until stopped.
    pub end: Option<DateTime<Utc>>,
    pub pace: Pace,
    /// Readings per message in backfill and backlogs, at most the server's limit.
    pub batch_readings: usize,
    /// Messages per second over all devices; `None`: as fast as the windows allow.
    pub rate: Option<f64>,
    /// Accelerated: where the fast clock starts; what lies before it is sent at once as a
    /// backlog. `None`: at `start`.
    pub clock_start: Option<DateTime<Utc>>,
    pub limits: ServerLimits,
    /// How long to wait for the last acks.
    pub ack_timeout: Duration,
    /// Seed of the fault injector.
    pub seed: u64,
    pub faults: FaultRates,
    /// Print a progress line to stderr this often.
    pub progress_every: Option<Duration>,
}

/// Where a patient's readings come from.
#[derive(Debug)]
pub enum Source {
    /// Simulated as time goes.
    Sim(Box<PatientSim>),
    /// Simulated beforehand (scenarios validate their readings before sending them).
    Fixed(VecDeque<SimReading>),
    /// Simulated beforehand and kept on the device until `release_at`, then synced at once
    /// in batch messages (a meter's memory).
    Held {
        release_at: DateTime<Utc>,
        readings: VecDeque<SimReading>,
    },
}

impl Source {
    fn advance_to(&mut self, until: DateTime<Utc>, out: &mut Vec<SimReading>) {
        match self {
            Source::Sim(sim) => sim.advance_to(until, out),
            Source::Held {
                release_at,
                readings,
            } => {
                if until >= *release_at {
                    out.extend(readings.drain(..));
                }
            }
            Source::Fixed(readings) => {
                while readings
                    .front()
                    .is_some_and(|r| r.measured_at_utc() < until)
                {
                    if let Some(r) = readings.pop_front() {
                        out.push(r);
                    }
                }
            }
        }
    }
}

/// A patient in play.
#[derive(Debug)]
pub struct PlayPatient {
    pub source: Source,
    /// For each of the patient's devices, its index in the fleet (`None`: not sent).
    pub devices: Vec<Option<usize>>,
    /// For each device, send only readings measured after this (what the server holds).
    pub after: Vec<Option<DateTime<Utc>>>,
    /// Registered for this run: the server holds nothing of it, so every reading must be
    /// stored (otherwise it may already be held).
    pub fresh: bool,
    /// Record when each reading was sent.
    pub track: bool,
}

/// A reading as it was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub measured_at: DateTime<Utc>,
    /// When its message first went out.
    pub sent_at: DateTime<Utc>,
}

/// What the player did.
#[derive(Debug, Default)]
pub struct PlayReport {
    /// For tracked patients: per fleet device, every reading sent, in sending order.
    pub deliveries: HashMap<usize, Vec<Delivery>>,
    /// Real readings handed to the devices (faults excluded), per fleet device.
    pub readings: HashMap<usize, usize>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub elapsed: Duration,
    /// Whether every message was answered before the ack timeout.
    pub drained: bool,
    pub stopped: bool,
}

/// One message waiting in a device's queue.
#[derive(Debug)]
enum Queued {
    Message {
        message: Outgoing,
        /// Take the connection over before sending (the `reconnect` fault).
        takeover_first: bool,
        /// Tracked readings: their measured times.
        measured: Vec<DateTime<Utc>>,
    },
    /// Resend the device's last fully stored message (the `duplicate` fault) once there is
    /// one.
    DuplicateOfLast,
}

#[derive(Debug, Default)]
struct Outbox {
    queue: VecDeque<Queued>,
    /// A message held back to go after the next one (the `out_of_order` fault).
    held: Option<Queued>,
    /// Offline until this simulated time; readings meanwhile wait in `backlog`.
    offline_until: Option<DateTime<Utc>>,
    backlog: Vec<(Value, DateTime<Utc>)>,
    /// Keys `(kind, measured_at)` sent in this run, to expect in-run duplicates.
    keys: HashSet<(u8, i64)>,
    messages: u64,
    fresh: bool,
    track: bool,
}

/// Everything the generation step owns; moved to a blocking thread and back.
struct Stage {
    patients: Vec<PlayPatient>,
    outboxes: Vec<Outbox>,
    rng: SimRng,
    run_tag: String,
    readings: HashMap<usize, usize>,
}

/// Plays patients' readings through a fleet.
pub struct Player {
    plan: Plan,
    stage: Option<Stage>,
    caught_up: Option<tokio::sync::oneshot::Sender<Progress>>,
}

impl Player {
    pub fn new(plan: Plan, patients: Vec<PlayPatient>, devices: usize) -> Player {
        let mut outboxes: Vec<Outbox> = (0..devices).map(|_| Outbox::default()).collect();
        for p in &patients {
            for d in p.devices.iter().flatten() {
                if let Some(o) = outboxes.get_mut(*d) {
                    o.fresh = p.fresh;
                    o.track = p.track;
                }
            }
        }
        let mut rng = rng::rng_at(plan.seed, &[0x4641_554c_5453]);
        let run_tag = format!("{:04x}", rng.random::<u16>());
        Player {
            stage: Some(Stage {
                patients,
                outboxes,
                rng,
                run_tag,
                readings: HashMap::new(),
            }),
            plan,
            caught_up: None,
        }
    }

    /// Once the backlog (everything before the live phase) has been sent and answered,
    /// `tx` receives the counts so far.
    pub fn on_caught_up(mut self, tx: tokio::sync::oneshot::Sender<Progress>) -> Player {
        self.caught_up = Some(tx);
        self
    }

    /// Plays until the plan's end (or `stop`), then waits for the last acks.
    pub async fn run(mut self, fleet: &Fleet, stop: &CancellationToken) -> PlayReport {
        let started = Instant::now();
        let mut report = PlayReport {
            started_at: Utc::now(),
            ..PlayReport::default()
        };
        let mut dispatcher = Dispatcher::new(self.plan.rate, self.plan.progress_every);
        let plan = self.plan.clone();
        let now = Utc::now();
        // Phase 1: what lies before the present (or the whole window) as batches.
        let backlog_until = match plan.pace {
            Pace::Backfill => Some(plan.end.unwrap_or(now)),
            Pace::Live => Some(plan.end.map_or(now, |e| e.min(now))),
            Pace::Accelerated(_) => plan.clock_start.filter(|c| *c > plan.start),
        };
        if let Some(until) = backlog_until {
            // Slices bound memory for large populations: a day at a time.
            let patients = self.stage.as_ref().map_or(0, |s| s.patients.len()).max(1);
            let window_days = (until - plan.start).num_days().max(1) as usize;
            let slice = if patients * window_days <= 5000 {
                until - plan.start
            } else {
                ChronoDuration::days(1)
            };
            let mut from = plan.start;
            while from < until && !stop.is_cancelled() {
                let to = (from + slice).min(until);
                self.generate(to, true).await;
                if let Some(stage) = self.stage.as_mut() {
                    dispatcher
                        .dispatch(fleet, &mut stage.outboxes, None, stop, &mut report)
                        .await;
                }
                from = to;
            }
        }
        if let Some(tx) = self.caught_up.take() {
            fleet.drain(plan.ack_timeout).await;
            let _ = tx.send(fleet.ledger().progress());
        }
        // Phase 2: live or accelerated, one reading per message as its time comes.
        if plan.pace != Pace::Backfill {
            let tick = match plan.pace {
                Pace::Accelerated(_) => Duration::from_millis(100),
                _ => Duration::from_millis(500),
            };
            let clock_start = Instant::now();
            let mut sim_now = backlog_until.unwrap_or(plan.start);
            loop {
                if stop.is_cancelled() || plan.end.is_some_and(|e| sim_now >= e) {
                    break;
                }
                let real_now = Utc::now();
                let next = match plan.pace {
                    Pace::Accelerated(speed) => {
                        let ahead = clock_start.elapsed().as_secs_f64() * speed;
                        plan.clock_start.unwrap_or(plan.start)
                            + ChronoDuration::milliseconds((ahead * 1000.0) as i64)
                    }
                    _ => real_now,
                }
                .min(real_now);
                sim_now = plan.end.map_or(next, |e| next.min(e));
                self.generate(sim_now, false).await;
                let deadline = tokio::time::Instant::now() + tick;
                if let Some(stage) = self.stage.as_mut() {
                    dispatcher
                        .dispatch(
                            fleet,
                            &mut stage.outboxes,
                            Some(deadline),
                            stop,
                            &mut report,
                        )
                        .await;
                }
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = stop.cancelled() => {}
                }
            }
        }
        // Finish: release what is held back, then wait for every answer.
        if let Some(stage) = self.stage.as_mut() {
            let limits = plan.limits;
            let batch = plan.batch_readings;
            for (device, outbox) in stage.outboxes.iter_mut().enumerate() {
                flush_backlog(
                    outbox,
                    device,
                    &stage.run_tag,
                    batch,
                    limits.max_message_bytes,
                );
                if let Some(held) = outbox.held.take() {
                    outbox.queue.push_back(held);
                }
            }
            dispatcher
                .dispatch(
                    fleet,
                    &mut stage.outboxes,
                    None,
                    &CancellationToken::new(),
                    &mut report,
                )
                .await;
        }
        // Wait for the last answers, still showing progress.
        let deadline = Instant::now() + plan.ack_timeout;
        report.drained = loop {
            let step = plan
                .progress_every
                .unwrap_or(plan.ack_timeout)
                .min(deadline.saturating_duration_since(Instant::now()));
            if fleet.drain(step).await {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            dispatcher.print_progress(fleet, false);
        };
        dispatcher.print_progress(fleet, true);
        report.stopped = stop.is_cancelled();
        report.elapsed = started.elapsed();
        report.finished_at = Utc::now();
        if let Some(stage) = self.stage.take() {
            report.readings = stage.readings;
        }
        report
    }

    /// Advances every source to `until` and turns the readings into queued messages.
    async fn generate(&mut self, until: DateTime<Utc>, batched: bool) {
        let Some(mut stage) = self.stage.take() else {
            return;
        };
        let plan = self.plan.clone();
        let joined = tokio::task::spawn_blocking(move || {
            stage.generate(&plan, until, batched);
            stage
        })
        .await;
        match joined {
            Ok(stage) => self.stage = Some(stage),
            Err(e) => tracing::error!(error = %e, "reading generation failed"),
        }
    }
}

const KIND_GLUCOSE: u8 = 0;
const KIND_PRESSURE: u8 = 1;
/// Treatment kinds follow, in `TreatmentKind::ALL`'s order.
const KIND_TREATMENTS: u8 = 2;

impl Stage {
    fn generate(&mut self, plan: &Plan, until: DateTime<Utc>, batched: bool) {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Simulating is the expensive part: spread the patients over the cores.
        let mut produced: Vec<Vec<SimReading>> = Vec::with_capacity(self.patients.len());
        if self.patients.len() >= 8 && threads > 1 {
            let chunk = self.patients.len().div_ceil(threads);
            let mut results: Vec<Vec<Vec<SimReading>>> = Vec::new();
            std::thread::scope(|scope| {
                let handles: Vec<_> = self
                    .patients
                    .chunks_mut(chunk)
                    .map(|part| {
                        scope.spawn(move || {
                            part.iter_mut()
                                .map(|p| {
                                    let mut out = Vec::new();
                                    p.source.advance_to(until, &mut out);
                                    out
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                for h in handles {
                    results.push(h.join().unwrap_or_default());
                }
            });
            produced.extend(results.into_iter().flatten());
        } else {
            for p in &mut self.patients {
                let mut out = Vec::new();
                p.source.advance_to(until, &mut out);
                produced.push(out);
            }
        }
        for (p, readings) in produced.into_iter().enumerate() {
            let Some(patient) = self.patients.get(p) else {
                continue;
            };
            // Per device, in time order.
            let mut per_device: HashMap<usize, Vec<SimReading>> = HashMap::new();
            for r in readings {
                let local = r.device();
                let Some(Some(device)) = patient.devices.get(local) else {
                    continue;
                };
                if patient
                    .after
                    .get(local)
                    .copied()
                    .flatten()
                    .is_some_and(|after| r.measured_at_utc() <= after)
                {
                    continue;
                }
                per_device.entry(*device).or_default().push(r);
            }
            let mut devices: Vec<_> = per_device.into_iter().collect();
            devices.sort_by_key(|(d, _)| *d);
            let batched = batched || matches!(patient.source, Source::Held { .. });
            for (device, mut readings) in devices {
                readings.sort_by_key(SimReading::measured_at_utc);
                *self.readings.entry(device).or_insert(0) += readings.len();
                self.enqueue(plan, device, &readings, batched);
            }
        }
    }

    /// Turns one device's readings into messages, with faults.
    fn enqueue(&mut self, plan: &Plan, device: usize, readings: &[SimReading], batched: bool) {
        let Some(outbox) = self.outboxes.get_mut(device) else {
            return;
        };
        let rates = &plan.faults;
        let limits = plan.limits;
        let per_message = if batched {
            plan.batch_readings
                .clamp(1, limits.max_readings_per_message.max(1))
        } else {
            1
        };
        // Leave room for the envelope below the byte limit.
        let max_bytes = limits.max_message_bytes.saturating_sub(256).max(1024);
        let mut pending: Vec<(Value, DateTime<Utc>)> = Vec::new();
        for r in readings {
            let at = r.measured_at_utc();
            let value = r.to_json();
            // A device back from an offline spell syncs its backlog first.
            if let Some(until) = outbox.offline_until
                && at >= until
            {
                outbox.offline_until = None;
                flush_pending(
                    outbox,
                    device,
                    &mut pending,
                    &self.run_tag,
                    &mut self.rng,
                    rates,
                    limits,
                    max_bytes,
                    per_message,
                );
                flush_backlog(
                    outbox,
                    device,
                    &self.run_tag,
                    plan.batch_readings,
                    limits.max_message_bytes,
                );
            }
            // Decided once per message: when a new message would start.
            if outbox.offline_until.is_none()
                && pending.is_empty()
                && rng::chance(&mut self.rng, rates.rate(FaultKind::OfflineBacklog))
            {
                let hours = 2.0 + 4.0 * self.rng.random::<f64>();
                outbox.offline_until =
                    Some(at + ChronoDuration::minutes((hours * 60.0).round() as i64));
            }
            if outbox.offline_until.is_some() {
                outbox.backlog.push((value, at));
                continue;
            }
            pending.push((value, at));
            if pending.len() >= per_message || estimated_bytes(&pending) >= max_bytes {
                flush_pending(
                    outbox,
                    device,
                    &mut pending,
                    &self.run_tag,
                    &mut self.rng,
                    rates,
                    limits,
                    max_bytes,
                    per_message,
                );
            }
        }
        flush_pending(
            outbox,
            device,
            &mut pending,
            &self.run_tag,
            &mut self.rng,
            rates,
            limits,
            max_bytes,
            per_message,
        );
    }
}

fn estimated_bytes(pending: &[(Value, DateTime<Utc>)]) -> usize {
    // A reading serializes to about 120 bytes; exact sizes are checked when building.
    pending.len() * 130
}

/// The kind part of the server's key (device, kind, time): one instant may hold a glucose
/// reading, a bolus and a meal, each its own record.
fn kind_of(value: &Value) -> u8 {
    let field = |name| value.get(name).and_then(Value::as_str);
    let treatment = match (field("type"), field("delivery")) {
        (Some("blood_pressure"), _) => return KIND_PRESSURE,
        (Some("insulin"), Some("basal")) => Some(TreatmentKind::BasalInsulin),
        (Some("insulin"), _) => Some(TreatmentKind::BolusInsulin),
        (Some(other), _) => TreatmentKind::parse(other),
        (None, _) => None,
    };
    treatment
        .and_then(|kind| TreatmentKind::ALL.iter().position(|k| *k == kind))
        .and_then(|index| u8::try_from(index).ok())
        .map_or(KIND_GLUCOSE, |index| KIND_TREATMENTS + index)
}

/// Whether a reading's corrupted copies can be refused for its value or unit: a glucose or
/// blood-pressure reading (a treatment has no unit, and an amount field of its own).
fn is_measurement(value: &Value) -> bool {
    matches!(
        value.get("type").and_then(Value::as_str),
        Some("glucose" | "blood_pressure")
    )
}

fn next_id(outbox: &mut Outbox, device: usize, tag: &str) -> String {
    outbox.messages += 1;
    format!("{tag}-{device}-{}", outbox.messages)
}

/// Serializes readings as one message: a single reading, or a batch.
fn payload(message_id: &str, readings: &[&Value], batch: bool) -> Vec<u8> {
    if !batch && readings.len() == 1 {
        let mut map = match readings[0] {
            Value::Object(m) => m.clone(),
            other => {
                let mut m = Map::new();
                m.insert("reading".into(), other.clone());
                m
            }
        };
        map.insert("message_id".into(), json!(message_id));
        return serde_json::to_vec(&Value::Object(map)).unwrap_or_default();
    }
    let mut out = Vec::with_capacity(readings.len() * 130 + 64);
    out.extend_from_slice(b"{\"message_id\":");
    out.extend_from_slice(json!(message_id).to_string().as_bytes());
    out.extend_from_slice(b",\"readings\":[");
    for (i, r) in readings.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(r.to_string().as_bytes());
    }
    out.extend_from_slice(b"]}");
    out
}

/// Queues the pending readings as one real message, with whatever faults the dice choose.
#[allow(clippy::too_many_arguments)]
fn flush_pending(
    outbox: &mut Outbox,
    device: usize,
    pending: &mut Vec<(Value, DateTime<Utc>)>,
    tag: &str,
    rng: &mut SimRng,
    rates: &FaultRates,
    limits: ServerLimits,
    max_bytes: usize,
    per_message: usize,
) {
    if pending.is_empty() {
        return;
    }
    let taken: Vec<(Value, DateTime<Utc>)> = std::mem::take(pending);
    // Split further if a batch came out larger than the byte limit.
    let mut start = 0;
    while start < taken.len() {
        let mut end = start;
        let mut bytes = 64;
        while end < taken.len() && end - start < per_message {
            let len = taken[end].0.to_string().len() + 1;
            if end > start && bytes + len > max_bytes {
                break;
            }
            bytes += len;
            end += 1;
        }
        queue_real(
            outbox,
            device,
            &taken[start..end],
            tag,
            rng,
            rates,
            limits,
            per_message > 1,
            None,
        );
        start = end;
    }
}

/// Queues a real message and the faults derived from it.
#[allow(clippy::too_many_arguments)]
fn queue_real(
    outbox: &mut Outbox,
    device: usize,
    readings: &[(Value, DateTime<Utc>)],
    tag: &str,
    rng: &mut SimRng,
    rates: &FaultRates,
    limits: ServerLimits,
    batch: bool,
    fault: Option<FaultKind>,
) {
    let id = next_id(outbox, device, tag);
    let values: Vec<&Value> = readings.iter().map(|(v, _)| v).collect();
    let body = payload(&id, &values, batch);
    // Readings this run already sent (same device, kind and time) come back as duplicates.
    let mut repeats = 0;
    for (v, at) in readings {
        if !outbox.keys.insert((kind_of(v), at.timestamp_micros())) {
            repeats += 1;
        }
    }
    let mut expected = Expected::stored(readings.len() - repeats, !outbox.fresh);
    expected.duplicates = repeats;
    let measured = if outbox.track {
        readings.iter().map(|(_, at)| *at).collect()
    } else {
        Vec::new()
    };
    let mut fault = fault;
    let out_of_order = fault.is_none() && rng::chance(rng, rates.rate(FaultKind::OutOfOrder));
    if out_of_order {
        fault = Some(FaultKind::OutOfOrder);
    }
    let takeover_first = rng::chance(rng, rates.rate(FaultKind::Reconnect));
    let real = Queued::Message {
        message: Outgoing {
            device,
            message_id: Some(id.clone()),
            payload: body.clone(),
            expected,
            fault,
        },
        takeover_first,
        measured,
    };
    if out_of_order && outbox.held.is_none() {
        outbox.held = Some(real);
    } else {
        outbox.queue.push_back(real);
        if let Some(held) = outbox.held.take() {
            outbox.queue.push_back(held);
        }
    }
    // Corrupted copies: extra messages, so the real readings still arrive.
    let first = &readings[0].0;
    for kind in [
        FaultKind::MalformedJson,
        FaultKind::OutOfRange,
        FaultKind::WrongUnit,
        FaultKind::MissingField,
        FaultKind::FutureTimestamp,
        FaultKind::Oversized,
    ] {
        if !rng::chance(rng, rates.rate(kind)) {
            continue;
        }
        if matches!(kind, FaultKind::OutOfRange | FaultKind::WrongUnit) && !is_measurement(first) {
            continue;
        }
        let message = corrupt(outbox, device, tag, kind, first, &body, limits);
        outbox.queue.push_back(Queued::Message {
            message,
            takeover_first: false,
            measured: Vec::new(),
        });
    }
    if rng::chance(rng, rates.rate(FaultKind::Duplicate)) {
        outbox.queue.push_back(Queued::DuplicateOfLast);
    }
}

/// A faulty copy of a reading (or of a whole message, for malformed JSON).
fn corrupt(
    outbox: &mut Outbox,
    device: usize,
    tag: &str,
    kind: FaultKind,
    reading: &Value,
    real_payload: &[u8],
    limits: ServerLimits,
) -> Outgoing {
    let reason = kind
        .expected_rejection()
        .unwrap_or(RejectionReason::MalformedJson);
    let expected = Expected::rejected(reason, 1);
    if kind == FaultKind::MalformedJson {
        // Cut in half: an unterminated object is never valid JSON.
        let cut = (real_payload.len() / 2).max(1);
        return Outgoing {
            device,
            message_id: None,
            payload: real_payload[..cut].to_vec(),
            expected,
            fault: Some(kind),
        };
    }
    let mut map = reading.as_object().cloned().unwrap_or_default();
    let pressure = kind_of(reading) == KIND_PRESSURE;
    match kind {
        FaultKind::OutOfRange if pressure => {
            map.insert("systolic".into(), json!(400));
        }
        FaultKind::OutOfRange => {
            map.insert("value".into(), json!(0));
        }
        FaultKind::WrongUnit => {
            map.insert("unit".into(), json!(if pressure { "kPa" } else { "mg" }));
        }
        FaultKind::MissingField => {
            map.remove("measured_at");
        }
        FaultKind::FutureTimestamp => {
            let at = Utc::now() + limits.max_future_skew + ChronoDuration::hours(1);
            map.insert(
                "measured_at".into(),
                json!(at.to_rfc3339_opts(SecondsFormat::Secs, true)),
            );
        }
        FaultKind::Oversized => {
            map.insert(
                "padding".into(),
                json!("x".repeat(limits.max_message_bytes + 1024)),
            );
            // The server refuses it unread: its ack carries no message id.
            return Outgoing {
                device,
                message_id: None,
                payload: serde_json::to_vec(&Value::Object(map)).unwrap_or_default(),
                expected,
                fault: Some(kind),
            };
        }
        _ => {}
    }
    let id = format!("{}-{}", next_id(outbox, device, tag), kind.as_str());
    map.insert("message_id".into(), json!(id));
    Outgoing {
        device,
        message_id: Some(id),
        payload: serde_json::to_vec(&Value::Object(map)).unwrap_or_default(),
        expected,
        fault: Some(kind),
    }
}

/// Queues an offline device's backlog as batch messages (stored, late).
fn flush_backlog(
    outbox: &mut Outbox,
    device: usize,
    tag: &str,
    batch_readings: usize,
    max_message_bytes: usize,
) {
    if outbox.backlog.is_empty() {
        return;
    }
    let backlog = std::mem::take(&mut outbox.backlog);
    let per = batch_readings.max(1).max(backlog.len().min(1000));
    let max_bytes = max_message_bytes.saturating_sub(256).max(1024);
    let mut start = 0;
    while start < backlog.len() {
        let mut end = start;
        let mut bytes = 64;
        while end < backlog.len() && end - start < per {
            let len = backlog[end].0.to_string().len() + 1;
            if end > start && bytes + len > max_bytes {
                break;
            }
            bytes += len;
            end += 1;
        }
        let part = &backlog[start..end];
        let id = next_id(outbox, device, tag);
        let values: Vec<&Value> = part.iter().map(|(v, _)| v).collect();
        let mut repeats = 0;
        for (v, at) in part {
            if !outbox.keys.insert((kind_of(v), at.timestamp_micros())) {
                repeats += 1;
            }
        }
        let mut expected = Expected::stored(part.len() - repeats, !outbox.fresh);
        expected.duplicates = repeats;
        let measured = if outbox.track {
            part.iter().map(|(_, at)| *at).collect()
        } else {
            Vec::new()
        };
        outbox.queue.push_back(Queued::Message {
            message: Outgoing {
                device,
                message_id: Some(id.clone()),
                payload: payload(&id, &values, true),
                expected,
                fault: Some(FaultKind::OfflineBacklog),
            },
            takeover_first: false,
            measured,
        });
        start = end;
    }
}

/// Sends queued messages round-robin over the devices, within their windows and the rate.
struct Dispatcher {
    rate: Option<f64>,
    tokens: f64,
    refilled: Instant,
    progress_every: Option<Duration>,
    last_progress: Instant,
    started: Instant,
    last: Progress,
    latency_seen: usize,
    cursor: usize,
}

impl Dispatcher {
    fn new(rate: Option<f64>, progress_every: Option<Duration>) -> Dispatcher {
        Dispatcher {
            rate: rate.filter(|r| *r > 0.0),
            tokens: 1.0,
            refilled: Instant::now(),
            progress_every,
            last_progress: Instant::now(),
            started: Instant::now(),
            last: Progress::default(),
            latency_seen: 0,
            cursor: 0,
        }
    }

    /// Sends until every queue is empty, or until `deadline`.
    async fn dispatch(
        &mut self,
        fleet: &Fleet,
        outboxes: &mut [Outbox],
        deadline: Option<tokio::time::Instant>,
        stop: &CancellationToken,
        report: &mut PlayReport,
    ) {
        loop {
            if outboxes.iter().all(|o| o.queue.is_empty()) {
                return;
            }
            if stop.is_cancelled() || deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return;
            }
            self.print_progress(fleet, false);
            let mut sent_any = false;
            let n = outboxes.len();
            for step in 0..n {
                let device = (self.cursor + step) % n;
                if !self.take_token() {
                    break;
                }
                match self
                    .send_one(fleet, device, &mut outboxes[device], report)
                    .await
                {
                    SendOutcome::Sent => {
                        sent_any = true;
                        self.tokens -= 1.0;
                    }
                    SendOutcome::Blocked => {}
                }
            }
            self.cursor = (self.cursor + 1) % n.max(1);
            if !sent_any {
                let wait = if self.rate.is_some() && self.tokens < 1.0 {
                    Duration::from_millis(2)
                } else {
                    Duration::from_millis(50)
                };
                fleet.answered(wait).await;
            }
        }
    }

    fn take_token(&mut self) -> bool {
        let Some(rate) = self.rate else {
            return true;
        };
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * rate).min((rate * 0.05).max(1.0));
        self.tokens >= 1.0
    }

    async fn send_one(
        &mut self,
        fleet: &Fleet,
        device: usize,
        outbox: &mut Outbox,
        report: &mut PlayReport,
    ) -> SendOutcome {
        let Some(front) = outbox.queue.front_mut() else {
            return SendOutcome::Blocked;
        };
        if let Queued::DuplicateOfLast = front {
            let Some((_, payload, readings)) = fleet.ledger().last_stored(device) else {
                // Nothing stored yet to resend: let the device's other messages go first;
                // if nothing is left that could be stored, there is nothing to duplicate.
                if outbox.queue.len() > 1 {
                    outbox.queue.rotate_left(1);
                } else if fleet.ledger().unanswered_of(device) == 0 {
                    outbox.queue.pop_front();
                }
                return SendOutcome::Blocked;
            };
            let id = format!("{}-duplicate", next_id_plain(outbox, device));
            let Some(payload) = with_message_id(&payload, &id) else {
                outbox.queue.pop_front();
                return SendOutcome::Blocked;
            };
            if let Some(front) = outbox.queue.front_mut() {
                *front = Queued::Message {
                    message: Outgoing {
                        device,
                        message_id: Some(id),
                        payload,
                        expected: Expected::duplicates(readings),
                        fault: Some(FaultKind::Duplicate),
                    },
                    takeover_first: false,
                    measured: Vec::new(),
                };
            }
        }
        let Some(Queued::Message { takeover_first, .. }) = outbox.queue.front_mut() else {
            return SendOutcome::Blocked;
        };
        if *takeover_first {
            // Resends cannot recover a message the server answers without its id, so the
            // takeover waits until none of those is in flight on this connection.
            if fleet.idless_in_flight(device) {
                return SendOutcome::Blocked;
            }
            *takeover_first = false;
            if let Err(e) = fleet.takeover(device).await {
                tracing::warn!(device = fleet.device_id(device), error = %e, "connection takeover failed");
            }
        }
        let Some(Queued::Message {
            message, measured, ..
        }) = outbox.queue.pop_front()
        else {
            return SendOutcome::Blocked;
        };
        match fleet.try_send(message) {
            Ok(_) => {
                if !measured.is_empty() {
                    let sent_at = Utc::now();
                    report
                        .deliveries
                        .entry(device)
                        .or_default()
                        .extend(measured.into_iter().map(|measured_at| Delivery {
                            measured_at,
                            sent_at,
                        }));
                }
                SendOutcome::Sent
            }
            Err(message) => {
                outbox.queue.push_front(Queued::Message {
                    message: *message,
                    takeover_first: false,
                    measured,
                });
                SendOutcome::Blocked
            }
        }
    }

    fn print_progress(&mut self, fleet: &Fleet, last: bool) {
        let Some(every) = self.progress_every else {
            return;
        };
        if !last && self.last_progress.elapsed() < every {
            return;
        }
        let interval = self.last_progress.elapsed().as_secs_f64().max(1e-3);
        self.last_progress = Instant::now();
        let p = fleet.ledger().progress();
        let mut recent = fleet.ledger().latencies_since(self.latency_seen);
        self.latency_seen += recent.len();
        recent.sort_unstable();
        let l = crate::ledger::LatencySummary::of_sorted(&recent);
        eprintln!(
            "[{:>6.1} s] sent {} msgs ({:.0}/s, {:.0} readings/s), answered {} ({} in flight); stored {}, duplicates {}, rejected {}; latency p50 {:.1} ms p99 {:.1} ms",
            self.started.elapsed().as_secs_f64(),
            p.messages_sent,
            (p.messages_sent - self.last.messages_sent) as f64 / interval,
            (p.readings_sent - self.last.readings_sent) as f64 / interval,
            p.messages_answered,
            p.messages_sent - p.messages_answered,
            p.stored,
            p.duplicates,
            p.rejected,
            l.p50_ms,
            l.p99_ms,
        );
        self.last = p;
    }
}

enum SendOutcome {
    Sent,
    Blocked,
}

fn next_id_plain(outbox: &mut Outbox, device: usize) -> String {
    outbox.messages += 1;
    format!("dup-{device}-{}", outbox.messages)
}

/// The same message under another `message_id`.
fn with_message_id(payload: &[u8], id: &str) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(payload).ok()?;
    value
        .as_object_mut()?
        .insert("message_id".into(), json!(id));
    serde_json::to_vec(&value).ok()
}

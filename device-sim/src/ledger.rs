//! The ledger: every message sent, what Chronicle was expected to answer, what it answered,
//! and the reconciliation at the end.
//!
//! Counts are in readings as the protocol counts them (`docs/protocol.md`, "Acks"): a
//! message's `stored + duplicates + rejected` equals the readings it carried, and a message
//! that cannot be read at all (malformed, oversized) counts as one. So for the whole run
//! `sent = stored + duplicates + rejected`, and each message's answer must match its
//! expectation; anything else is a difference, and a difference is an error.

use crate::faults::FaultKind;
use chronicle_domain::RejectionReason;
use chronicle_domain::sync::lock;
use chronicle_domain::wire::Ack;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What Chronicle must answer to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub stored: usize,
    pub duplicates: usize,
    /// Readings refused, all for one reason (the simulator's faults refuse one way each).
    pub rejected: Option<(RejectionReason, usize)>,
    /// The server may already hold these readings (a device from a devices file that an
    /// earlier run may have fed): `stored` may come back as `duplicates`.
    pub may_be_held: bool,
}

impl Expected {
    /// Every reading stored (or already held when `may_be_held`).
    pub fn stored(readings: usize, may_be_held: bool) -> Expected {
        Expected {
            stored: readings,
            duplicates: 0,
            rejected: None,
            may_be_held,
        }
    }

    /// Every reading a duplicate.
    pub fn duplicates(readings: usize) -> Expected {
        Expected {
            stored: 0,
            duplicates: readings,
            rejected: None,
            may_be_held: false,
        }
    }

    /// `readings` refused for `reason`.
    pub fn rejected(reason: RejectionReason, readings: usize) -> Expected {
        Expected {
            stored: 0,
            duplicates: 0,
            rejected: Some((reason, readings)),
            may_be_held: false,
        }
    }

    /// Readings the message counts for.
    pub fn counted(&self) -> usize {
        self.stored + self.duplicates + self.rejected.map_or(0, |(_, n)| n)
    }
}

/// A message to record.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Index of the device in the fleet.
    pub device: usize,
    /// Index of the connection that carries it.
    pub link: usize,
    /// `None` for messages whose id Chronicle cannot read back (malformed, oversized): their
    /// acks carry no id and are matched in order.
    pub message_id: Option<String>,
    pub expected: Expected,
    pub fault: Option<FaultKind>,
    /// Kept until the message is answered, to resend it after a reconnection.
    pub payload: Vec<u8>,
}

/// Identifies a recorded message.
pub type MessageKey = usize;

#[derive(Debug)]
struct Record {
    device: usize,
    link: usize,
    message_id: Option<String>,
    expected: Expected,
    fault: Option<FaultKind>,
    payload: Option<Vec<u8>>,
    /// Connection epoch of the last send; `None` before the first.
    epoch: Option<u64>,
    first_sent: Option<Instant>,
    resent: u32,
    answer: Option<Answer>,
    repeat_acks: u32,
    /// Readings stored over every answer to this message (copies of a resent message).
    stored_total: usize,
}

#[derive(Debug, Clone)]
struct Answer {
    stored: usize,
    duplicates: usize,
    rejected: BTreeMap<String, usize>,
    /// The ingest saw this message again (see `Ack::redelivered`).
    redelivered: bool,
}

impl Answer {
    fn of(ack: &Ack) -> Answer {
        let mut rejected = BTreeMap::new();
        for r in &ack.rejections {
            *rejected.entry(r.reason.clone()).or_insert(0) += 1;
        }
        // A refused message lists one rejection but counts all its readings.
        if ack.rejected > 0 && ack.rejections.len() == 1 && ack.rejections[0].index.is_none() {
            rejected.insert(ack.rejections[0].reason.clone(), ack.rejected);
        }
        Answer {
            stored: ack.stored,
            duplicates: ack.duplicates,
            rejected,
            redelivered: ack.redelivered,
        }
    }

    fn rejected_total(&self) -> usize {
        self.rejected.values().sum()
    }
}

/// Counters while a run goes on, for progress lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub messages_sent: usize,
    pub messages_answered: usize,
    pub readings_sent: usize,
    pub stored: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub resent: usize,
    /// Latencies recorded so far (their count; see [`Ledger::latencies_since`]).
    pub latencies: usize,
}

#[derive(Debug, Default)]
struct Inner {
    records: Vec<Record>,
    by_id: HashMap<(usize, String), MessageKey>,
    /// Unanswered messages without an id, per device, in sending order.
    idless: HashMap<usize, VecDeque<MessageKey>>,
    /// The last message of each device that was stored in full, for duplicates.
    last_stored: HashMap<usize, MessageKey>,
    /// Unanswered messages per device.
    unanswered: HashMap<usize, usize>,
    progress: Progress,
    /// Publish-to-first-ack, microseconds, in arrival order.
    latencies_us: Vec<u32>,
    unmatched_acks: usize,
    first_unmatched: Option<String>,
    bad_repeats: Vec<String>,
}

/// The shared record of a run's messages. Cheap to lock: every operation is a few map
/// look-ups.
#[derive(Debug, Default)]
pub struct Ledger {
    inner: Mutex<Inner>,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Records a message before it is sent.
    pub fn register(&self, entry: Entry) -> MessageKey {
        let mut inner = self.lock();
        let key = inner.records.len();
        match &entry.message_id {
            Some(id) => {
                inner.by_id.insert((entry.device, id.clone()), key);
            }
            None => inner.idless.entry(entry.device).or_default().push_back(key),
        }
        inner.progress.messages_sent += 1;
        inner.progress.readings_sent += entry.expected.counted();
        *inner.unanswered.entry(entry.device).or_insert(0) += 1;
        inner.records.push(Record {
            device: entry.device,
            link: entry.link,
            message_id: entry.message_id,
            expected: entry.expected,
            fault: entry.fault,
            payload: Some(entry.payload),
            epoch: None,
            first_sent: None,
            resent: 0,
            answer: None,
            repeat_acks: 0,
            stored_total: 0,
        });
        key
    }

    /// Notes that a message goes out on connection epoch `epoch`; returns its device and
    /// payload, or `None` if it was answered meanwhile.
    pub fn mark_sent(&self, key: MessageKey, epoch: u64) -> Option<(usize, Vec<u8>)> {
        let mut inner = self.lock();
        let resend = {
            let record = inner.records.get_mut(key)?;
            if record.answer.is_some() {
                return None;
            }
            let resend = record.epoch.is_some();
            record.epoch = Some(epoch);
            if resend {
                record.resent += 1;
            } else {
                record.first_sent = Some(Instant::now());
            }
            resend
        };
        if resend {
            inner.progress.resent += 1;
        }
        inner
            .records
            .get(key)
            .and_then(|r| Some((r.device, r.payload.clone()?)))
    }

    /// Unanswered messages of `link` last sent before connection epoch `epoch`: after a
    /// reconnection their acks may have been lost, so they are sent again.
    pub fn to_resend(&self, link: usize, epoch: u64) -> Vec<MessageKey> {
        let inner = self.lock();
        inner
            .records
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.link == link && r.answer.is_none() && r.epoch.is_some_and(|e| e < epoch)
            })
            .filter(|(_, r)| r.message_id.is_some())
            .map(|(k, _)| k)
            .collect()
    }

    /// Matches an ack from `device`'s acks topic to its message. Returns the device whose
    /// window the first answer to a message frees.
    pub fn on_ack(&self, device: usize, ack: &Ack) -> Option<usize> {
        let mut inner = self.lock();
        let key = match &ack.message_id {
            Some(id) => inner.by_id.get(&(device, id.clone())).copied(),
            None => inner.idless.get_mut(&device).and_then(VecDeque::pop_front),
        };
        let Some(key) = key else {
            inner.unmatched_acks += 1;
            if inner.first_unmatched.is_none() {
                inner.first_unmatched = Some(format!("{ack:?}"));
            }
            return None;
        };
        let answer = Answer::of(ack);
        let record = inner.records.get_mut(key)?;
        record.stored_total += answer.stored;
        if record.answer.is_some() {
            // The same message answered again (it was resent, or the broker delivered it
            // twice). The copies may be answered in either order, but together they may
            // store each reading only once.
            record.repeat_acks += 1;
            if record.stored_total > record.expected.counted() {
                let what = format!(
                    "message {} of device #{} was answered again with {} readings stored: stored twice",
                    record.message_id.as_deref().unwrap_or("(no id)"),
                    record.device,
                    answer.stored
                );
                inner.bad_repeats.push(what);
            }
            return None;
        }
        let latency = record
            .first_sent
            .map(|t| t.elapsed())
            .unwrap_or(Duration::ZERO);
        let fully_stored = record.expected.rejected.is_none()
            && answer.stored == record.expected.counted()
            && answer.stored > 0;
        let device_of = record.device;
        if let Some(n) = inner.unanswered.get_mut(&device_of) {
            *n = n.saturating_sub(1);
        }
        let record = inner.records.get_mut(key)?;
        record.payload = if fully_stored {
            record.payload.take()
        } else {
            None
        };
        let (stored, duplicates, rejected) =
            (answer.stored, answer.duplicates, answer.rejected_total());
        record.answer = Some(answer);
        if fully_stored
            && let Some(previous) = inner.last_stored.insert(device_of, key)
            && let Some(old) = inner.records.get_mut(previous)
        {
            old.payload = None;
        }
        let p = &mut inner.progress;
        p.messages_answered += 1;
        p.stored += stored;
        p.duplicates += duplicates;
        p.rejected += rejected;
        p.latencies += 1;
        inner
            .latencies_us
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        Some(device_of)
    }

    /// The last message of `device` that was stored in full, with its payload and readings,
    /// for a duplicate.
    pub fn last_stored(&self, device: usize) -> Option<(MessageKey, Vec<u8>, usize)> {
        let inner = self.lock();
        let key = *inner.last_stored.get(&device)?;
        let record = inner.records.get(key)?;
        Some((key, record.payload.clone()?, record.expected.counted()))
    }

    /// Unanswered messages of `device`.
    pub fn unanswered_of(&self, device: usize) -> usize {
        self.lock().unanswered.get(&device).copied().unwrap_or(0)
    }

    /// Whether any of `devices` has a message in flight whose ack will carry no id.
    pub fn idless_in_flight(&self, devices: &[usize]) -> bool {
        let inner = self.lock();
        devices
            .iter()
            .any(|d| inner.idless.get(d).is_some_and(|q| !q.is_empty()))
    }

    pub fn progress(&self) -> Progress {
        self.lock().progress
    }

    /// Whether every message has its answer.
    pub fn all_answered(&self) -> bool {
        let p = self.lock().progress;
        p.messages_answered == p.messages_sent
    }

    /// Latencies recorded from position `from` on.
    pub fn latencies_since(&self, from: usize) -> Vec<Duration> {
        let inner = self.lock();
        inner
            .latencies_us
            .get(from..)
            .unwrap_or_default()
            .iter()
            .map(|us| Duration::from_micros(u64::from(*us)))
            .collect()
    }

    /// The reconciliation.
    pub fn reconcile(&self, reconnections: u64, takeovers: u64) -> Reconciliation {
        let inner = self.lock();
        let mut r = Reconciliation {
            messages: inner.records.len(),
            reconnections,
            ..Reconciliation::default()
        };
        for fault in FaultKind::ALL {
            r.faults
                .insert(fault.as_str().to_owned(), FaultTally::default());
        }
        if let Some(t) = r.faults.get_mut(FaultKind::Reconnect.as_str()) {
            t.injected = usize::try_from(takeovers).unwrap_or(usize::MAX);
        }
        for record in &inner.records {
            let counted = record.expected.counted();
            r.sent += counted;
            let fault = record.fault.filter(|f| *f != FaultKind::Reconnect);
            if let Some(f) = fault
                && let Some(t) = r.faults.get_mut(f.as_str())
            {
                t.injected += 1;
            }
            if record.resent > 0 {
                r.resent_messages += 1;
            }
            r.repeat_acks += record.repeat_acks as usize;
            let Some(answer) = &record.answer else {
                r.unanswered_messages += 1;
                r.unanswered_readings += counted;
                r.difference(format!(
                    "device #{} message {}{}: never answered",
                    record.device,
                    record.message_id.as_deref().unwrap_or("(no id)"),
                    fault_note(record.fault)
                ));
                continue;
            };
            // A message the broker delivered to the ingest again, and that was sent only once,
            // whose first answer reports its readings as duplicates: the first delivery stored
            // them just before a crash and its ack was lost. Stored once, by this message.
            let stored_before_redelivery = answer.redelivered
                && record.resent == 0
                && record.expected.duplicates == 0
                && !record.expected.may_be_held;
            if stored_before_redelivery {
                r.stored += answer.stored + answer.duplicates;
                r.stored_before_redelivery += answer.duplicates;
            } else {
                r.stored += answer.stored;
                r.duplicates += answer.duplicates;
            }
            for (reason, n) in &answer.rejected {
                *r.rejected.entry(reason.clone()).or_insert(0) += n;
            }
            // Where the duplicates come from.
            if stored_before_redelivery {
                // Counted as stored above.
            } else if record.expected.duplicates > 0 {
                r.duplicates_injected += answer.duplicates;
            } else if answer.duplicates > 0 && record.resent > 0 {
                r.duplicates_resent += answer.duplicates;
            } else if answer.duplicates > 0 && record.expected.may_be_held {
                r.duplicates_held += answer.duplicates;
            }
            let delivered_again = record.resent > 0 || answer.redelivered;
            match check(&record.expected, answer, delivered_again) {
                Ok(()) => {
                    if let Some(f) = fault
                        && let Some(t) = r.faults.get_mut(f.as_str())
                    {
                        t.as_expected += 1;
                    }
                }
                Err(what) => r.difference(format!(
                    "device #{} message {}{}: {what}",
                    record.device,
                    record.message_id.as_deref().unwrap_or("(no id)"),
                    fault_note(record.fault)
                )),
            }
        }
        // A takeover is as expected when its connection came back (every message answered
        // is checked above).
        if let Some(t) = r.faults.get_mut(FaultKind::Reconnect.as_str()) {
            t.as_expected = if reconnections >= takeovers {
                t.injected
            } else {
                usize::try_from(reconnections).unwrap_or(0)
            };
            if t.as_expected < t.injected {
                let missing = t.injected - t.as_expected;
                r.difference(format!(
                    "{missing} connection takeover(s) without a reconnection"
                ));
            }
        }
        for what in &inner.bad_repeats {
            r.difference(what.clone());
        }
        if inner.unmatched_acks > 0 {
            r.unmatched_acks = inner.unmatched_acks;
            r.difference(format!(
                "{} ack(s) matched no message sent, first: {}",
                inner.unmatched_acks,
                inner.first_unmatched.as_deref().unwrap_or("")
            ));
        }
        let rejected: usize = r.rejected.values().sum();
        if r.sent != r.stored + r.duplicates + rejected + r.unanswered_readings {
            r.difference(format!(
                "sent {} != stored {} + duplicates {} + rejected {} + unanswered {}",
                r.sent, r.stored, r.duplicates, rejected, r.unanswered_readings
            ));
        }
        let mut latencies: Vec<Duration> = inner
            .latencies_us
            .iter()
            .map(|us| Duration::from_micros(u64::from(*us)))
            .collect();
        latencies.sort_unstable();
        r.latency = LatencySummary::of_sorted(&latencies);
        r
    }
}

fn fault_note(fault: Option<FaultKind>) -> String {
    fault.map(|f| format!(" (fault {f})")).unwrap_or_default()
}

/// Compares an answer with the expectation. A message that was delivered again (resent after
/// a reconnection, or redelivered by the broker), or whose readings the server may already
/// hold, may report stored readings as duplicates.
fn check(expected: &Expected, answer: &Answer, resent: bool) -> Result<(), String> {
    let want_rejected: BTreeMap<String, usize> = expected
        .rejected
        .iter()
        .map(|(reason, n)| (reason.code().to_owned(), *n))
        .collect();
    let tolerant = resent || expected.may_be_held;
    let counts_match = if tolerant {
        answer.stored + answer.duplicates == expected.stored + expected.duplicates
            && answer.stored <= expected.stored + expected.duplicates
    } else {
        answer.stored == expected.stored && answer.duplicates == expected.duplicates
    };
    if counts_match && answer.rejected == want_rejected {
        return Ok(());
    }
    let describe = |stored: usize, duplicates: usize, rejected: &BTreeMap<String, usize>| {
        let mut parts = vec![
            format!("stored {stored}"),
            format!("duplicates {duplicates}"),
        ];
        parts.extend(rejected.iter().map(|(r, n)| format!("rejected {r} {n}")));
        parts.join(", ")
    };
    Err(format!(
        "expected {}, got {}",
        describe(expected.stored, expected.duplicates, &want_rejected),
        describe(answer.stored, answer.duplicates, &answer.rejected)
    ))
}

/// Publish-to-ack latency quantiles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    /// Nearest-rank quantiles of sorted latencies.
    pub fn of_sorted(sorted: &[Duration]) -> LatencySummary {
        let q = |p: f64| {
            if sorted.is_empty() {
                return 0.0;
            }
            let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            sorted[rank - 1].as_secs_f64() * 1000.0
        };
        LatencySummary {
            count: sorted.len(),
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            max_ms: q(1.0),
        }
    }
}

/// One fault's injections and how many got their expected answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FaultTally {
    pub injected: usize,
    pub as_expected: usize,
}

/// The run's reconciliation: `sent = stored + duplicates + rejected`, every duplicate and
/// refusal explained, and every difference listed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reconciliation {
    pub messages: usize,
    /// Readings sent, as the protocol counts them.
    pub sent: usize,
    pub stored: usize,
    pub duplicates: usize,
    /// Readings refused, by reason code.
    pub rejected: BTreeMap<String, usize>,
    pub unanswered_messages: usize,
    pub unanswered_readings: usize,
    /// Duplicates from the `duplicate` fault.
    pub duplicates_injected: usize,
    /// Duplicates of messages resent after a reconnection (their first copy was stored).
    pub duplicates_resent: usize,
    /// Duplicates of readings the server already held from an earlier run.
    pub duplicates_held: usize,
    /// Readings counted as stored although their answer said duplicate: the broker delivered
    /// their message to the ingest again after the first delivery was stored (a crash
    /// between the commit and the ack).
    pub stored_before_redelivery: usize,
    pub faults: BTreeMap<String, FaultTally>,
    pub resent_messages: usize,
    pub repeat_acks: usize,
    pub unmatched_acks: usize,
    pub reconnections: u64,
    pub latency: LatencySummary,
    /// Every difference; the run failed if this is not empty.
    pub differences: Vec<String>,
}

impl Reconciliation {
    fn difference(&mut self, what: String) {
        self.differences.push(what);
    }

    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }

    /// The reconciliation as text.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let rejected: usize = self.rejected.values().sum();
        let _ = writeln!(
            out,
            "Reconciliation (readings as the protocol counts them; {} messages)",
            self.messages
        );
        let _ = writeln!(out, "  sent        {:>9}", self.sent);
        let _ = writeln!(
            out,
            "  stored      {:>9}   (of which answered as duplicates after a redelivery {})",
            self.stored, self.stored_before_redelivery
        );
        let _ = writeln!(
            out,
            "  duplicates  {:>9}   (injected {}, resent after a reconnection {}, already held {})",
            self.duplicates, self.duplicates_injected, self.duplicates_resent, self.duplicates_held
        );
        let _ = writeln!(out, "  rejected    {:>9}", rejected);
        for (reason, n) in &self.rejected {
            let _ = writeln!(out, "    {reason:<20} {n:>7}");
        }
        if self.unanswered_readings > 0 {
            let _ = writeln!(
                out,
                "  unanswered  {:>9}   ({} messages)",
                self.unanswered_readings, self.unanswered_messages
            );
        }
        let balanced = self.sent == self.stored + self.duplicates + rejected;
        let _ = writeln!(
            out,
            "  sent = stored + duplicates + rejected: {} = {} + {} + {}   {}",
            self.sent,
            self.stored,
            self.duplicates,
            rejected,
            if balanced { "ok" } else { "MISMATCH" }
        );
        let injected: Vec<_> = self.faults.iter().filter(|(_, t)| t.injected > 0).collect();
        if !injected.is_empty() {
            let _ = writeln!(out, "Faults injected");
            for (name, t) in injected {
                let outcome = name
                    .parse::<FaultKind>()
                    .map(FaultKind::expected_outcome)
                    .unwrap_or("");
                let _ = writeln!(
                    out,
                    "  {name:<17} {:>6}   {:>6} as expected: {outcome}",
                    t.injected, t.as_expected
                );
            }
        }
        let _ = writeln!(
            out,
            "Connections: {} reconnection(s), {} message(s) resent, {} repeated ack(s)",
            self.reconnections, self.resent_messages, self.repeat_acks
        );
        let l = &self.latency;
        let _ = writeln!(
            out,
            "Latency publish→ack: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} acks)",
            l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.count
        );
        if self.differences.is_empty() {
            let _ = writeln!(out, "Differences: none");
        } else {
            let _ = writeln!(out, "Differences: {}", self.differences.len());
            for d in self.differences.iter().take(50) {
                let _ = writeln!(out, "  {d}");
            }
            if self.differences.len() > 50 {
                let _ = writeln!(out, "  ... and {} more", self.differences.len() - 50);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronicle_domain::wire::AckRejection;

    fn ack(
        id: Option<&str>,
        stored: usize,
        duplicates: usize,
        rejected: Vec<(&str, Option<usize>)>,
    ) -> Ack {
        Ack {
            message_id: id.map(str::to_owned),
            stored,
            duplicates,
            rejected: rejected.len(),
            rejections: rejected
                .into_iter()
                .map(|(reason, index)| AckRejection {
                    index,
                    id: None,
                    reason: reason.to_owned(),
                    detail: String::new(),
                })
                .collect(),
            redelivered: false,
        }
    }

    fn entry(id: Option<&str>, expected: Expected, fault: Option<FaultKind>) -> Entry {
        Entry {
            device: 0,
            link: 0,
            message_id: id.map(str::to_owned),
            expected,
            fault,
            payload: b"{}".to_vec(),
        }
    }

    #[test]
    fn matching_answers_reconcile() {
        let ledger = Ledger::new();
        let a = ledger.register(entry(Some("m1"), Expected::stored(3, false), None));
        let b = ledger.register(entry(
            None,
            Expected::rejected(RejectionReason::MalformedJson, 1),
            Some(FaultKind::MalformedJson),
        ));
        let c = ledger.register(entry(
            Some("m2"),
            Expected::rejected(RejectionReason::OutOfRange, 1),
            Some(FaultKind::OutOfRange),
        ));
        for key in [a, b, c] {
            ledger.mark_sent(key, 1);
        }
        assert_eq!(ledger.on_ack(0, &ack(Some("m1"), 3, 0, vec![])), Some(0));
        ledger.on_ack(0, &ack(None, 0, 0, vec![("malformed_json", None)]));
        ledger.on_ack(0, &ack(Some("m2"), 0, 0, vec![("out_of_range", Some(0))]));
        assert!(ledger.all_answered());
        let r = ledger.reconcile(0, 0);
        assert!(r.is_clean(), "{}", r.render());
        assert_eq!((r.sent, r.stored), (5, 3));
        assert_eq!(
            r.faults["malformed_json"],
            FaultTally {
                injected: 1,
                as_expected: 1
            }
        );
        // A repeated answer that stores nothing is fine; one that stores again is not.
        ledger.on_ack(0, &ack(Some("m1"), 0, 3, vec![]));
        assert!(ledger.reconcile(0, 0).is_clean());
        ledger.on_ack(0, &ack(Some("m1"), 3, 0, vec![]));
        assert!(!ledger.reconcile(0, 0).is_clean());
        // Copies answered the other way round: the duplicate first, then the stored one.
        let ledger = Ledger::new();
        let a = ledger.register(entry(Some("m1"), Expected::stored(2, false), None));
        ledger.mark_sent(a, 1);
        ledger.mark_sent(a, 2);
        ledger.on_ack(0, &ack(Some("m1"), 0, 2, vec![]));
        ledger.on_ack(0, &ack(Some("m1"), 2, 0, vec![]));
        assert!(ledger.reconcile(1, 1).is_clean());
    }

    #[test]
    fn wrong_or_missing_answers_are_differences() {
        let ledger = Ledger::new();
        let a = ledger.register(entry(
            Some("m1"),
            Expected::rejected(RejectionReason::OutOfRange, 1),
            Some(FaultKind::OutOfRange),
        ));
        ledger.register(entry(Some("m2"), Expected::stored(1, false), None));
        ledger.mark_sent(a, 1);
        ledger.on_ack(0, &ack(Some("m1"), 1, 0, vec![]));
        let r = ledger.reconcile(0, 0);
        assert_eq!(r.differences.len(), 2, "{}", r.render());
        assert_eq!(r.unanswered_readings, 1);
        assert!(r.render().contains("never answered"));
    }

    #[test]
    fn resent_messages_may_come_back_as_duplicates() {
        let ledger = Ledger::new();
        let a = ledger.register(entry(Some("m1"), Expected::stored(2, false), None));
        ledger.mark_sent(a, 1);
        assert_eq!(ledger.to_resend(0, 2), vec![a]);
        ledger.mark_sent(a, 2);
        ledger.on_ack(0, &ack(Some("m1"), 0, 2, vec![]));
        let r = ledger.reconcile(1, 1);
        assert!(r.is_clean(), "{}", r.render());
        assert_eq!(r.duplicates_resent, 2);
    }

    #[test]
    fn a_redelivered_message_answered_as_duplicates_was_stored_once() {
        let ledger = Ledger::new();
        let a = ledger.register(entry(Some("m1"), Expected::stored(2, false), None));
        let b = ledger.register(entry(Some("m2"), Expected::stored(1, false), None));
        ledger.mark_sent(a, 1);
        ledger.mark_sent(b, 1);
        let mut redelivered = ack(Some("m1"), 0, 2, vec![]);
        redelivered.redelivered = true;
        ledger.on_ack(0, &redelivered);
        ledger.on_ack(0, &ack(Some("m2"), 1, 0, vec![]));
        let r = ledger.reconcile(0, 0);
        assert!(r.is_clean(), "{}", r.render());
        assert_eq!((r.stored, r.duplicates), (3, 0));
        assert_eq!(r.stored_before_redelivery, 2);
        // Without the broker's word the same answer is a difference.
        let ledger = Ledger::new();
        let a = ledger.register(entry(Some("m1"), Expected::stored(2, false), None));
        ledger.mark_sent(a, 1);
        ledger.on_ack(0, &ack(Some("m1"), 0, 2, vec![]));
        assert!(!ledger.reconcile(0, 0).is_clean());
    }
}

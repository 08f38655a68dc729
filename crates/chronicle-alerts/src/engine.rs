//! The `alerts` follow-up consumer and the evaluation of one patient.
//!
//! The ingest queues one follow-up item per patient and kind of newly stored readings in the
//! same transaction as the readings. This consumer claims items (other servers skip claimed
//! ones), evaluates each touched patient, and completes the claim; a crash in between only
//! means the work is done again, which changes nothing (evaluation is idempotent).
//!
//! The readings the rules look at come from the patient's windows held since this process's
//! last evaluation ([`crate::windows`]) plus what was newly stored, so an evaluation reads
//! only the new readings; a window that may be incomplete is rebuilt from stored data first.

use crate::metrics::{AlertMetrics, KindLabel};
use crate::windows::{Evaluated, PatientWindows, ReadingWindows};
use chronicle_domain::ReadingKind;
use chronicle_domain::alerts::RuleId;
use chronicle_domain::alerts::lifecycle::{reconcile, reconcile_no_data, silence_history};
use chronicle_domain::alerts::rules::{
    glucose_timelines, pressure_timelines, revealed_silences, silent_devices,
};
use chronicle_domain::alerts::window::{
    GLUCOSE_LOOKBACK, PRESSURE_LOOKBACK, ReadingWindow, WindowPoint,
};
use chronicle_domain::sharing::DataCategory;
use chronicle_storage::alerts::AlertEvent;
use chronicle_storage::{IngestBacklog, StorageError, Store, UrgentPatients};
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

/// The follow-up consumer name reserved for alerts.
pub const CONSUMER: &str = "alerts";

/// Patients claimed at once.
const CLAIM_LIMIT: i64 = 200;
/// Patients claimed at once while the engine is behind on current readings (the last round
/// held current readings and its oldest item waited [`KEEPING_UP_WITHIN`] or more): each
/// round's claim, completion and per-batch queries then cover more patients. Not while it
/// works a backlog (no current reading claimed) or the ingest does: the ingest has the
/// database first then ([`next_round`]).
const BEHIND_CLAIM_LIMIT: i64 = 600;
/// Batches of patients evaluated at once. Each holds a database connection while it runs;
/// the pool (10 by default) also serves the ingest, the HTTP API and the other alert tasks.
const CONCURRENT_EVALUATIONS: usize = 3;
/// Most patients in one batch (one transaction, holding their locks).
const BATCH_LIMIT: usize = 100;
/// The least time between the starts of two rounds that found work. Under a steady stream
/// of commits the ones of that time join one round, so a patient whose readings arrive
/// many times a second is evaluated once for them rather than once per commit; a reading
/// after a quiet spell is evaluated at once. It bounds the delay this adds to an alarm.
const ROUND_SPACING: std::time::Duration = std::time::Duration::from_millis(50);
/// The spacing instead while a round holds no current reading
/// ([`FollowupClaim::holds_current`]): the alarms of the current readings, queued in the
/// broker behind the backlog, come sooner when the ingest has the database. The backlog's
/// own readings are evaluated all the same, later.
///
/// [`FollowupClaim::holds_current`]: chronicle_storage::FollowupClaim::holds_current
const BACKLOG_ROUND_SPACING: std::time::Duration = std::time::Duration::from_millis(250);
/// The engine keeps up while the oldest item of a round waited less than this; then it may
/// idle between rounds ([`round_spacing`]).
const KEEPING_UP_WITHIN: std::time::Duration = std::time::Duration::from_millis(500);
/// The longest idle between two rounds.
const MOST_IDLE: std::time::Duration = std::time::Duration::from_millis(200);

/// What to evaluate for a patient.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Glucose rules, for readings measured from here on (and the lookback before).
    pub glucose_from: Option<DateTime<Utc>>,
    /// Blood-pressure rules, likewise.
    pub pressure_from: Option<DateTime<Utc>>,
    /// The writes that stored the glucose readings: each one's earliest `measured_at` and
    /// transaction. Those an earlier evaluation of this engine covered are not evaluated again
    /// (`crate::windows::Evaluated`). `None`: not known (the urgent lane, a caller that names
    /// no write); everything from `glucose_from` on is evaluated. Blood pressure (a few
    /// readings a day) is always evaluated from `pressure_from`.
    pub glucose_writes: Option<Vec<(DateTime<Utc>, i64)>>,
}

impl Scope {
    /// Only what depends on the clock: `no_data` and auto-resolution (always evaluated).
    pub fn time_only() -> Scope {
        Scope::default()
    }

    /// Whether it evaluates newly stored readings.
    fn has_readings(&self) -> bool {
        self.glucose_from.is_some() || self.pressure_from.is_some()
    }

    /// Adds readings of `kind` measured from `from` on, stored by transaction `written_by`
    /// (when known).
    fn include(&mut self, kind: ReadingKind, from: DateTime<Utc>, written_by: Option<i64>) {
        let slot = match kind {
            ReadingKind::Glucose => {
                match (written_by, &mut self.glucose_writes) {
                    (Some(written_by), Some(writes)) => writes.push((from, written_by)),
                    (Some(_), None) => {}
                    (None, writes) => *writes = None,
                }
                &mut self.glucose_from
            }
            ReadingKind::BloodPressure => &mut self.pressure_from,
            // No alert rule reads treatments (and no follow-up work is queued for them).
            ReadingKind::Treatment => return,
        };
        *slot = Some(slot.map_or(from, |f| f.min(from)));
    }

    /// This scope without the glucose writes `evaluated` covers: where its glucose rules are
    /// to look from, if anywhere.
    fn unevaluated(&self, evaluated: Option<&Evaluated>) -> Scope {
        let (Some(writes), Some(evaluated)) = (&self.glucose_writes, evaluated) else {
            return self.clone();
        };
        let left: Vec<(DateTime<Utc>, i64)> = writes
            .iter()
            .filter(|(first, written_by)| !evaluated.covers(*written_by, *first))
            .copied()
            .collect();
        Scope {
            glucose_from: left.iter().map(|(first, _)| *first).min(),
            pressure_from: self.pressure_from,
            glucose_writes: Some(left),
        }
    }
}

/// Evaluates patients from stored data and applies the changes, in one transaction that
/// holds their locks (another server evaluating any of them waits): the reading rules of
/// each patient's scope, the silences late data reveals, `no_data` for the patients whose
/// devices the clock may have silenced or who have a `no_data` alert to clear, and
/// auto-resolution. Every read covers all the patients at once; the readings come from the
/// patients' held `windows` and what was stored since. Returns the events written.
pub async fn evaluate_patients(
    store: &Store,
    windows: &ReadingWindows,
    batch: &[(Uuid, Scope)],
) -> Result<Vec<AlertEvent>, StorageError> {
    let patients: Vec<Uuid> = batch.iter().map(|(p, _)| *p).collect();
    let mut evaluation = store.begin_alert_evaluation(&patients).await?;
    let now = Utc::now();
    let thresholds = evaluation.thresholds().await?;
    let latest = evaluation.latest_alerts().await?;
    let with_readings: Vec<Uuid> = batch
        .iter()
        .filter(|(_, s)| s.has_readings())
        .map(|(p, _)| *p)
        .collect();
    let evaluated_last = evaluation
        .take_over_patients(&with_readings, windows.engine())
        .await?;
    let mut tickets = HashMap::new();
    let mut held: HashMap<Uuid, PatientWindows> = HashMap::new();
    for patient in &with_readings {
        let patient_windows = if let Some(last) = evaluated_last.get(patient) {
            let (ticket, patient_windows) = windows.take(*patient, *last);
            tickets.insert(*patient, ticket);
            patient_windows
        } else {
            // Erased: nothing to hold.
            windows.forget(*patient);
            PatientWindows::default()
        };
        held.insert(*patient, patient_windows);
    }
    // Readings an earlier evaluation covered (it read ahead of the queue) are not evaluated
    // again; a patient left with none is only put back.
    let scopes: Vec<(Uuid, Scope)> = batch
        .iter()
        .map(|(patient, scope)| {
            let evaluated = held.get(patient).and_then(|w| w.glucose_evaluated.as_ref());
            (*patient, scope.unevaluated(evaluated))
        })
        .collect();
    // From the database only what the held windows lack is read.
    let glucose_reads = reads(
        &scopes,
        &held,
        |s| s.glucose_from,
        |w| &w.glucose,
        GLUCOSE_LOOKBACK,
    );
    if !glucose_reads.is_empty() {
        // Taken before the read, so the read returns everything these transactions stored.
        let finished = Arc::new(evaluation.finished_writes().await?);
        let read = evaluation.glucose_since(&glucose_reads).await?;
        tracing::debug!(
            patients = glucose_reads.len(),
            reused = held.values().filter(|w| !w.glucose.is_empty()).count(),
            rows = read.values().map(Vec::len).sum::<usize>(),
            "glucose read for evaluation"
        );
        merge_reads(&mut held, &glucose_reads, read, |w| &mut w.glucose);
        for (patient, scope) in &scopes {
            if let (Some(from), Some(windows)) = (scope.glucose_from, held.get_mut(patient)) {
                windows.glucose_evaluated = Some(Evaluated {
                    finished: finished.clone(),
                    from,
                });
            }
        }
    }
    let pressure_reads = reads(
        &scopes,
        &held,
        |s| s.pressure_from,
        |w| &w.pressure,
        PRESSURE_LOOKBACK,
    );
    if !pressure_reads.is_empty() {
        let read = evaluation.pressure_since(&pressure_reads).await?;
        merge_reads(&mut held, &pressure_reads, read, |w| &mut w.pressure);
    }
    // A reading just arrived proves its device is not silent; other devices' silences are
    // the scheduler's. So `no_data` is evaluated for time checks, and to clear an alert.
    let no_data_of: Vec<Uuid> = batch
        .iter()
        .filter(|(p, s)| {
            !s.has_readings()
                || latest.get(p).is_some_and(|known| {
                    known
                        .iter()
                        .any(|((rule, _), a)| *rule == RuleId::NoData && a.status.is_active())
                })
        })
        .map(|(p, _)| *p)
        .collect();
    let devices = if no_data_of.is_empty() {
        HashMap::new()
    } else {
        evaluation.device_activity(&no_data_of).await?
    };

    let none = HashMap::new();
    let mut resolve_after = HashMap::new();
    for (patient, scope) in &scopes {
        let t = thresholds.get(patient).copied().unwrap_or_default();
        resolve_after.insert(*patient, t.resolve_after());
        let known = latest.get(patient).unwrap_or(&none);
        // The rules look a lookback before the newly stored readings.
        let glucose_start = scope.glucose_from.map(|from| from - GLUCOSE_LOOKBACK);
        let pressure_start = scope.pressure_from.map(|from| from - PRESSURE_LOOKBACK);
        let patient_windows = held.get(patient);
        let glucose = match (glucose_start, patient_windows) {
            (Some(start), Some(w)) => w.glucose.since(start),
            _ => &[],
        };
        let pressure = match (pressure_start, patient_windows) {
            (Some(start), Some(w)) => w.pressure.since(start),
            _ => &[],
        };
        let mut timelines = Vec::new();
        if let Some(window_start) = &glucose_start {
            timelines.extend(
                glucose_timelines(glucose, &t)
                    .into_iter()
                    .map(|tl| (tl, *window_start)),
            );
        }
        if let Some(window_start) = &pressure_start {
            timelines.extend(
                pressure_timelines(pressure, &t)
                    .into_iter()
                    .map(|tl| (tl, *window_start)),
            );
        }
        for (timeline, window_start) in &timelines {
            let alert = known.get(&(timeline.rule, timeline.category));
            for change in reconcile(timeline, alert, t.late_after(), *window_start) {
                evaluation
                    .apply(*patient, timeline.rule, timeline.category, &change)
                    .await?;
            }
        }
        for (category, silence) in revealed_silences(glucose, pressure, &t) {
            evaluation
                .apply(
                    *patient,
                    RuleId::NoData,
                    category,
                    &silence_history(&silence),
                )
                .await?;
        }
        if no_data_of.contains(patient) {
            let activity = devices.get(patient).map(Vec::as_slice).unwrap_or(&[]);
            let silent = silent_devices(activity, &t, now);
            for category in [DataCategory::Glucose, DataCategory::BloodPressure] {
                let finding = silent.get(&category).and_then(Option::as_ref);
                let alert = known.get(&(RuleId::NoData, category));
                if let Some(change) = reconcile_no_data(finding, alert, now) {
                    evaluation
                        .apply(*patient, RuleId::NoData, category, &change)
                        .await?;
                }
            }
        }
    }

    evaluation.resolve_cleared(&resolve_after, now).await?;
    let events = evaluation.commit().await?;
    // Only a committed evaluation's windows are exact.
    for (patient, patient_windows) in held {
        if let Some(ticket) = tickets.remove(&patient) {
            windows.put(patient, ticket, patient_windows);
        }
    }
    for event in &events {
        tracing::info!(
            patient_id = %event.patient_id,
            rule = %event.alert.rule,
            severity = %event.alert.severity,
            kind = event.kind.as_str(),
            event_id = event.id,
            "alert event"
        );
    }
    Ok(events)
}

/// Where to read one kind of reading from for each patient of the batch with newly stored
/// readings of it: what the patient's held window lacks.
fn reads<P: WindowPoint>(
    batch: &[(Uuid, Scope)],
    held: &HashMap<Uuid, PatientWindows>,
    new_from: impl Fn(&Scope) -> Option<DateTime<Utc>>,
    window: impl Fn(&PatientWindows) -> &ReadingWindow<P>,
    lookback: Duration,
) -> Vec<(Uuid, DateTime<Utc>)> {
    batch
        .iter()
        .filter_map(|(patient, scope)| {
            let from = new_from(scope)?;
            Some((
                *patient,
                window(held.get(patient)?).read_from(from, lookback),
            ))
        })
        .collect()
}

/// Merges what was read of one kind into the patients' held windows.
fn merge_reads<P: WindowPoint>(
    held: &mut HashMap<Uuid, PatientWindows>,
    reads: &[(Uuid, DateTime<Utc>)],
    mut read: HashMap<Uuid, Vec<P>>,
    window: impl Fn(&mut PatientWindows) -> &mut ReadingWindow<P>,
) {
    for (patient, from) in reads {
        if let Some(windows) = held.get_mut(patient) {
            window(windows).merge(*from, read.remove(patient).unwrap_or_default());
        }
    }
}

/// [`evaluate_patients`], counted in the metrics.
pub(crate) async fn evaluate_measured(
    store: &Store,
    windows: &ReadingWindows,
    batch: &[(Uuid, Scope)],
    metrics: &AlertMetrics,
) -> Result<Vec<AlertEvent>, StorageError> {
    let started = std::time::Instant::now();
    let result = evaluate_patients(store, windows, batch).await;
    metrics.evaluations.inc_by(batch.len() as u64);
    metrics
        .evaluation_seconds
        .observe(started.elapsed().as_secs_f64());
    match &result {
        Ok(events) => {
            for event in events {
                metrics
                    .events
                    .get_or_create(&KindLabel {
                        kind: event.kind.as_str(),
                    })
                    .inc();
            }
        }
        Err(_) => {
            metrics.evaluation_failures.inc();
        }
    }
    result
}

/// Claims follow-up work and evaluates the touched patients until shutdown.
pub async fn run(
    store: Store,
    windows: Arc<ReadingWindows>,
    mut followups: watch::Receiver<u64>,
    backlog: IngestBacklog,
    poll_interval: std::time::Duration,
    metrics: AlertMetrics,
    shutdown: CancellationToken,
) {
    let mut signalled = true;
    let mut backoff = std::time::Duration::from_millis(200);
    // When the last round that found work started, and the spacing it asks for.
    let mut last_busy_round: Option<(tokio::time::Instant, std::time::Duration)> = None;
    let mut claim_limit = CLAIM_LIMIT;
    loop {
        if let Some((last, spacing)) = last_busy_round {
            tokio::select! {
                () = tokio::time::sleep_until(last + spacing) => {}
                () = shutdown.cancelled() => break,
            }
        }
        let started = tokio::time::Instant::now();
        // A round in hand is dropped at shutdown (its evaluations abort and roll back, its
        // claim stays queued): an evaluation is idempotent, so the next server redoes it.
        let round = tokio::select! {
            () = shutdown.cancelled() => break,
            round = drain(&store, &windows, &metrics, claim_limit) => round,
        };
        match round {
            Ok(round) => {
                backoff = std::time::Duration::from_millis(200);
                if round.items > 0 {
                    // More may have been queued meanwhile.
                    let (spacing, items) =
                        next_round(&round, started.elapsed(), backlog.draining());
                    claim_limit = items;
                    last_busy_round = Some((started, spacing));
                    continue;
                }
                last_busy_round = None;
                claim_limit = CLAIM_LIMIT;
            }
            Err(error) => {
                tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64,
                    "alert evaluation failed; the work stays queued");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.cancelled() => break,
                }
                backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
                continue;
            }
        }
        tokio::select! {
            changed = followups.changed(), if signalled => {
                // The pipeline is gone (shutdown): keep polling only.
                signalled = changed.is_ok();
            }
            () = tokio::time::sleep(poll_interval) => {}
            () = shutdown.cancelled() => break,
        }
    }
    tracing::debug!("alert engine stopped");
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default)]
struct Round {
    /// Follow-up items done.
    items: usize,
    /// The patients they were for (each evaluated once).
    patients: usize,
    /// Whether any of them was for a current reading.
    current: bool,
    /// How long its oldest item had waited when claimed.
    oldest_wait: std::time::Duration,
}

/// The time from a round's start to the next one's, for a round that held current readings
/// and took `took`: at least [`ROUND_SPACING`]; and while the engine keeps up (its oldest
/// item waited under [`KEEPING_UP_WITHIN`]) it idles as long as the round ran, up to
/// [`MOST_IDLE`]. Under load the rounds then leave time to the ingest and the urgent lane,
/// and each covers more commits; an engine that is behind (a slow round, a backlog) works
/// without pause.
fn round_spacing(
    took: std::time::Duration,
    oldest_wait: std::time::Duration,
) -> std::time::Duration {
    let idle = if oldest_wait < KEEPING_UP_WITHIN {
        took.min(MOST_IDLE)
    } else {
        std::time::Duration::ZERO
    };
    ROUND_SPACING.max(took + idle)
}

/// Most items a claim may take per patient it is meant to cover.
const MOST_ITEMS_PER_PATIENT: usize = 20;

/// How many items to claim to cover about `patients` patients, going by how often the last
/// round's items repeated a patient. A claim takes whole queue rows, one per committed batch:
/// where each patient sends many readings (a clinic's few devices, an app uploading), every
/// row holds the same patients, and a claim of as many items as patients would evaluate each
/// patient once per commit; where each reading is another patient's (a fleet), items and
/// patients are the same.
fn items_for_patients(patients: i64, last: &Round) -> i64 {
    let repeats = last
        .items
        .checked_div(last.patients)
        .unwrap_or(1)
        .clamp(1, MOST_ITEMS_PER_PATIENT);
    patients * repeats as i64
}

/// How the round after one that found work (and took `took`) follows it: how long after
/// this one's start it may start, and how many items it claims.
/// - While this process's ingest works through a backlog ([`IngestBacklog::draining`]) the
///   rounds take at most half of the time, with claims of the usual number of items: the
///   backlog is stored sooner (larger claims there took database time from the ingest), and
///   the urgent lane still evaluates the readings that may raise an alarm.
/// - Otherwise claims cover about as many patients as usual ([`items_for_patients`]), or
///   [`BEHIND_CLAIM_LIMIT`] patients for an engine behind on current readings (the oldest
///   item waited [`KEEPING_UP_WITHIN`] or more); a round without current readings is spaced
///   by [`BACKLOG_ROUND_SPACING`], others by [`round_spacing`].
fn next_round(
    round: &Round,
    took: std::time::Duration,
    ingest_draining: bool,
) -> (std::time::Duration, i64) {
    if ingest_draining {
        return (BACKLOG_ROUND_SPACING.max(took * 2), CLAIM_LIMIT);
    }
    if !round.current {
        return (
            BACKLOG_ROUND_SPACING,
            items_for_patients(CLAIM_LIMIT, round),
        );
    }
    let patients = if round.oldest_wait >= KEEPING_UP_WITHIN {
        BEHIND_CLAIM_LIMIT
    } else {
        CLAIM_LIMIT
    };
    (
        round_spacing(took, round.oldest_wait),
        items_for_patients(patients, round),
    )
}

/// One claim of about `limit` items (whole queue rows): evaluates every touched patient, then
/// completes it.
async fn drain(
    store: &Store,
    windows: &Arc<ReadingWindows>,
    metrics: &AlertMetrics,
    limit: i64,
) -> Result<Round, EngineError> {
    let Some(claim) = store.claim_followups(CONSUMER, limit).await? else {
        return Ok(Round::default());
    };
    let current = claim.holds_current();
    let oldest_wait = claim
        .items
        .iter()
        .map(|item| item.enqueued_at)
        .min()
        .and_then(|oldest| (Utc::now() - oldest).to_std().ok())
        .unwrap_or_default();
    // The claim's patients in a few batches evaluated at once: each batch reads its patients'
    // data in one query per kind, and a reading that raises an alarm waits behind few others.
    // A large claim has more batches than run at once: each running batch holds a pooled
    // connection, so the next starts as one ends.
    let patients = scopes(claim.items.iter().map(|item| {
        (
            item.patient_id,
            item.kind,
            item.first_measured_at,
            Some(item.written_by),
        )
    }));
    let claimed_patients = patients.len();
    // Patients whose claimed readings an earlier evaluation all covered (it read ahead of the
    // queue) have nothing left to evaluate: not even their windows are taken out.
    let patients: Vec<(Uuid, Scope)> = patients
        .into_iter()
        .filter(|(patient, scope)| {
            let evaluated = windows.evaluated(*patient);
            evaluated.is_none() || scope.unevaluated(evaluated.as_ref()).has_readings()
        })
        .collect();
    tracing::debug!(
        patients = claimed_patients,
        evaluated = patients.len(),
        limit,
        current,
        "alert round claimed"
    );
    let size = patients
        .len()
        .div_ceil(CONCURRENT_EVALUATIONS)
        .clamp(1, BATCH_LIMIT);
    let mut running = tokio::task::JoinSet::new();
    for chunk in patients.chunks(size) {
        if running.len() >= CONCURRENT_EVALUATIONS {
            joined(running.join_next().await)?;
        }
        let (store, windows, metrics, chunk) = (
            store.clone(),
            windows.clone(),
            metrics.clone(),
            chunk.to_vec(),
        );
        let span = tracing::debug_span!("alert_evaluation", patients = chunk.len());
        running.spawn(
            async move {
                for (patient_id, scope) in &chunk {
                    tracing::debug!(
                        %patient_id,
                        glucose_from = ?scope.glucose_from,
                        pressure_from = ?scope.pressure_from,
                        "evaluating patient"
                    );
                }
                evaluate_measured(&store, &windows, &chunk, &metrics).await
            }
            .instrument(span),
        );
    }
    while let Some(result) = running.join_next().await {
        joined(Some(result))?;
    }
    let items = claim.items.len();
    claim.complete().await?;
    Ok(Round {
        items,
        patients: claimed_patients,
        current,
        oldest_wait,
    })
}

/// What to evaluate for each patient of newly stored readings (patient, kind, earliest
/// `measured_at`, the transaction that stored them if known), in patient order.
fn scopes(
    stored: impl IntoIterator<Item = (Uuid, ReadingKind, DateTime<Utc>, Option<i64>)>,
) -> Vec<(Uuid, Scope)> {
    let mut patients: BTreeMap<Uuid, Scope> = BTreeMap::new();
    for (patient_id, kind, from, written_by) in stored {
        patients
            .entry(patient_id)
            .or_insert_with(|| Scope {
                glucose_writes: Some(Vec::new()),
                ..Scope::default()
            })
            .include(kind, from, written_by);
    }
    patients.into_iter().collect()
}

/// The lane for readings that may raise an urgent alarm: evaluates the patients the ingest
/// of this process announces ([`UrgentPatients`]) at once, beside the rounds, until
/// shutdown. It claims nothing, so a round never waits for it and it never waits for a
/// round's other patients: an alarm is written after one small evaluation instead of after
/// the round in hand and the next. The queued work stays for a round, which evaluates the
/// patient again and finds nothing new (the evaluation's patient lock orders the two).
pub async fn run_urgent(
    store: Store,
    windows: Arc<ReadingWindows>,
    urgent: UrgentPatients,
    metrics: AlertMetrics,
    shutdown: CancellationToken,
) {
    loop {
        let announced = tokio::select! {
            () = shutdown.cancelled() => break,
            announced = urgent.next() => announced,
        };
        // Announced readings name no transaction: evaluated whatever was evaluated before.
        let patients = scopes(
            announced
                .iter()
                .map(|r| (r.patient_id, r.kind, r.first_measured_at, None)),
        );
        for chunk in patients.chunks(BATCH_LIMIT) {
            tracing::debug!(patients = chunk.len(), "urgent evaluation");
            // Dropped at shutdown like a round: the work stays queued.
            let outcome = tokio::select! {
                () = shutdown.cancelled() => return,
                outcome = evaluate_measured(&store, &windows, chunk, &metrics) => outcome,
            };
            if let Err(error) = outcome {
                // The work stays queued; the rounds evaluate it.
                tracing::warn!(%error, patients = chunk.len(),
                    "urgent evaluation failed; the work stays queued");
            }
        }
    }
    tracing::debug!("urgent alert lane stopped");
}

/// Why a round of evaluations failed (its claim is dropped and the work done again).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("an evaluation task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The outcome of one spawned evaluation.
fn joined(
    result: Option<Result<Result<Vec<AlertEvent>, StorageError>, tokio::task::JoinError>>,
) -> Result<(), EngineError> {
    match result {
        None => Ok(()),
        Some(outcome) => {
            outcome??;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as StdDuration;

    fn minute(m: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + 60 * m, 0).unwrap_or_default()
    }

    #[test]
    fn writes_an_evaluation_covered_are_left_out_of_the_scope() {
        let patient = Uuid::from_u128(1);
        let glucose = |m: i64, written_by: Option<i64>| {
            (patient, ReadingKind::Glucose, minute(m), written_by)
        };
        let [(_, known)] = &scopes([glucose(30, Some(50)), glucose(20, Some(99))])[..] else {
            panic!("one patient");
        };
        assert_eq!(known.glucose_from, Some(minute(20)));
        // An evaluation that read from minute 10 after every transaction below 100 finished.
        let evaluated = Evaluated {
            finished: Arc::new(
                chronicle_storage::FinishedWrites::parse("100:100:").expect("a snapshot"),
            ),
            from: minute(10),
        };
        let left = known.unevaluated(Some(&evaluated));
        assert_eq!((left.glucose_from, left.has_readings()), (None, false));
        // A write that finished after it, or of readings older than it evaluated, is left.
        let [(_, later)] = &scopes([glucose(30, Some(100)), glucose(20, Some(50))])[..] else {
            panic!("one patient");
        };
        assert_eq!(
            later.unevaluated(Some(&evaluated)).glucose_from,
            Some(minute(30))
        );
        let [(_, older)] = &scopes([glucose(5, Some(50)), glucose(20, Some(60))])[..] else {
            panic!("one patient");
        };
        assert_eq!(
            older.unevaluated(Some(&evaluated)).glucose_from,
            Some(minute(5))
        );
        // Blood pressure is always evaluated.
        let [(_, mixed)] = &scopes([
            glucose(20, Some(50)),
            (patient, ReadingKind::BloodPressure, minute(25), Some(50)),
        ])[..] else {
            panic!("one patient");
        };
        let left = mixed.unevaluated(Some(&evaluated));
        assert_eq!(
            (left.glucose_from, left.pressure_from),
            (None, Some(minute(25)))
        );
        // Writes not known (the urgent lane), or nothing evaluated before: all is evaluated.
        let [(_, unknown)] = &scopes([glucose(20, None), glucose(30, Some(50))])[..] else {
            panic!("one patient");
        };
        assert_eq!(unknown.glucose_writes, None);
        assert_eq!(unknown.unevaluated(Some(&evaluated)), *unknown);
        assert_eq!(known.unevaluated(None), *known);
    }

    #[test]
    fn rounds_idle_as_long_as_they_ran_only_while_the_engine_keeps_up() {
        let ms = StdDuration::from_millis;
        // A quick round: the least spacing.
        assert_eq!(round_spacing(ms(10), ms(30)), ROUND_SPACING);
        // Keeping up: as long idle as busy, at most MOST_IDLE.
        assert_eq!(round_spacing(ms(120), ms(300)), ms(240));
        assert_eq!(round_spacing(ms(900), ms(300)), ms(900) + MOST_IDLE);
        // Behind: the next round starts as soon as this one ends.
        assert_eq!(round_spacing(ms(120), ms(2_000)), ms(120));
    }

    #[test]
    fn claims_grow_when_behind_or_repeating_unless_the_ingest_drains_a_backlog() {
        let ms = StdDuration::from_millis;
        let round = |current, oldest_wait| Round {
            items: 10,
            patients: 10,
            current,
            oldest_wait,
        };
        // Keeping up: the usual claims, spaced by round_spacing.
        assert_eq!(
            next_round(&round(true, ms(100)), ms(120), false),
            (ms(240), CLAIM_LIMIT)
        );
        // Behind on current readings: larger claims, back to back.
        assert_eq!(
            next_round(&round(true, ms(2_000)), ms(120), false),
            (ms(120), BEHIND_CLAIM_LIMIT)
        );
        // Only a backlog's readings: the usual claims, spaced.
        assert_eq!(
            next_round(&round(false, ms(2_000)), ms(120), false),
            (BACKLOG_ROUND_SPACING, CLAIM_LIMIT)
        );
        // The ingest drains a backlog: at most half the time, the usual claims.
        assert_eq!(
            next_round(&round(true, ms(2_000)), ms(400), true),
            (ms(800), CLAIM_LIMIT)
        );
        assert_eq!(
            next_round(&round(true, ms(2_000)), ms(20), true),
            (BACKLOG_ROUND_SPACING, CLAIM_LIMIT)
        );
        // Items that repeated a patient three times: claims of three times the items,
        // except while the ingest drains a backlog.
        let repeating = Round {
            items: 30,
            ..round(true, ms(100))
        };
        assert_eq!(
            next_round(&repeating, ms(120), false),
            (ms(240), 3 * CLAIM_LIMIT)
        );
        assert_eq!(
            next_round(&repeating, ms(120), true),
            (BACKLOG_ROUND_SPACING, CLAIM_LIMIT)
        );
    }

    #[test]
    fn claims_grow_with_how_often_items_repeat_a_patient() {
        let round = |items, patients| Round {
            items,
            patients,
            ..Round::default()
        };
        // A fleet: every item another patient's.
        assert_eq!(items_for_patients(200, &round(180, 180)), 200);
        // A few devices sending many readings each: every row holds the same patients.
        assert_eq!(items_for_patients(200, &round(300, 100)), 600);
        // Bounded, and nothing to go by after an empty round.
        assert_eq!(
            items_for_patients(200, &round(10_000, 10)),
            200 * MOST_ITEMS_PER_PATIENT as i64
        );
        assert_eq!(items_for_patients(200, &round(0, 0)), 200);
    }
}

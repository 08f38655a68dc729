//! The ingest's follow-up queue (`ingest_followup_batches`): a transactional outbox. The
//! statement that stores a batch's readings also enqueues, for every registered consumer
//! (alert evaluation, trend rollups), one item per patient and kind with the range of
//! `measured_at` it newly stored, a few hundred items to a row. A consumer claims rows, does
//! their items' work, and completes the claim; until then the rows stay queued, so a crash in
//! between only means the work is done again. Consumers must therefore be idempotent, must
//! lock the patients they work on (two claims may hold items of one patient), and must read
//! what they need from the stored data rather than from the item (which says only where to
//! look).

use crate::{StorageError, Store};
use chronicle_domain::ReadingKind;
use chronicle_domain::sync::lock;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// One piece of follow-up work: readings of `kind` newly stored for `patient_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followup {
    pub id: i64,
    pub patient_id: Uuid,
    pub kind: ReadingKind,
    /// The earliest and latest `measured_at` of the newly stored readings.
    pub first_measured_at: DateTime<Utc>,
    pub last_measured_at: DateTime<Utc>,
    pub readings: i32,
    /// When the batch committed (the statement's transaction time).
    pub enqueued_at: DateTime<Utc>,
    /// The transaction that stored the readings (a 64-bit transaction id).
    pub written_by: i64,
}

/// Which transactions had finished (committed or rolled back) at one moment: a PostgreSQL
/// snapshot, taken by [`crate::alerts::AlertEvaluation::finished_writes`]. A read that begins
/// after it returns whatever any of them stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedWrites {
    /// Every transaction below this one had finished…
    xmin: i64,
    /// …and none from this one on…
    xmax: i64,
    /// …and of those between, all but these.
    running: Box<[i64]>,
}

impl FinishedWrites {
    /// From a snapshot's text form, `xmin:xmax:running,…`.
    pub fn parse(text: &str) -> Option<FinishedWrites> {
        let mut parts = text.split(':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let running = match parts.next()? {
            "" => Box::default(),
            list => list
                .split(',')
                .map(|x| x.parse().ok())
                .collect::<Option<Box<[i64]>>>()?,
        };
        if parts.next().is_some() || xmax < xmin {
            return None;
        }
        Some(FinishedWrites {
            xmin,
            xmax,
            running,
        })
    }

    /// Whether transaction `written_by` had finished.
    pub fn include(&self, written_by: i64) -> bool {
        written_by < self.xmin || (written_by < self.xmax && !self.running.contains(&written_by))
    }
}

/// Claimed items, held by an open transaction that has deleted them. [`complete`] commits
/// the deletion; dropping the claim (or a crash) rolls it back and the items are queued again.
/// Other servers skip claimed items, so no two take the same one.
///
/// [`complete`]: FollowupClaim::complete
pub struct FollowupClaim {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    pub items: Vec<Followup>,
}

/// A reading measured this recently is current (a device publishes as it measures).
pub const CURRENT_WITHIN: chrono::Duration = chrono::Duration::seconds(60);

impl FollowupClaim {
    /// Whether any item is for a reading measured within [`CURRENT_WITHIN`]. A claim without
    /// one means the ingest is working through a backlog (after an outage the broker delivers
    /// its queue first and the current readings behind it): consumers then space their
    /// rounds and leave the database to the ingest, so the current readings come sooner.
    pub fn holds_current(&self) -> bool {
        let current_from = Utc::now() - CURRENT_WITHIN;
        self.items
            .iter()
            .any(|item| item.last_measured_at >= current_from)
    }

    /// The work is done: the items leave the queue for good.
    pub async fn complete(self) -> Result<(), StorageError> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl FollowupClaim {
    /// The claim of the deleted `rows`, oldest item first; `None` (the transaction rolled
    /// back) when there are none.
    async fn of_rows(
        tx: sqlx::Transaction<'static, sqlx::Postgres>,
        rows: Vec<FollowupRow>,
    ) -> Result<Option<FollowupClaim>, StorageError> {
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok(None);
        }
        let mut items = rows
            .into_iter()
            .map(|r| {
                let kind = match r.kind.as_str() {
                    "glucose" => ReadingKind::Glucose,
                    "blood_pressure" => ReadingKind::BloodPressure,
                    other => {
                        return Err(StorageError::Corrupt {
                            what: "follow-up kind",
                            value: other.to_owned(),
                        });
                    }
                };
                Ok(Followup {
                    id: r.id,
                    patient_id: r.patient_id,
                    kind,
                    first_measured_at: r.first_measured_at,
                    last_measured_at: r.last_measured_at,
                    readings: r.readings,
                    enqueued_at: r.enqueued_at,
                    written_by: r.written_by,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        items.sort_by_key(|f| f.id);
        Ok(Some(FollowupClaim { tx, items }))
    }
}

/// Newly stored readings that may raise an urgent alarm
/// (`chronicle_domain::alerts::thresholds::may_raise_urgent_alarm`), announced by this
/// process's ingest so the alert engine evaluates their patients at once, ahead of its rounds
/// over everyone else's readings. Only a hint that shortens the wait: the work itself stays in
/// the queue and a round evaluates it again (evaluations are idempotent), so an announcement
/// lost with the process costs nothing but time.
#[derive(Debug, Clone, Default)]
pub struct UrgentPatients {
    shared: std::sync::Arc<UrgentShared>,
}

/// What to evaluate at once: readings of `kind` stored for `patient_id`, measured from
/// `first_measured_at` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrgentReadings {
    pub patient_id: Uuid,
    pub kind: ReadingKind,
    pub first_measured_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct UrgentShared {
    waiting: std::sync::Mutex<HashMap<(Uuid, ReadingKind), DateTime<Utc>>>,
    announced: tokio::sync::Notify,
}

/// Most patients and kinds waiting to be taken; beyond, announcements are dropped (the
/// rounds do the work), so a flood of low readings cannot grow the set without bound.
pub const URGENT_PATIENTS_LIMIT: usize = 10_000;

impl UrgentPatients {
    /// Adds readings to be evaluated at once.
    pub fn announce(&self, readings: impl IntoIterator<Item = UrgentReadings>) {
        let mut added = false;
        {
            let mut waiting = lock(&self.shared.waiting);
            for r in readings {
                let key = (r.patient_id, r.kind);
                if let Some(from) = waiting.get_mut(&key) {
                    *from = (*from).min(r.first_measured_at);
                } else if waiting.len() < URGENT_PATIENTS_LIMIT {
                    waiting.insert(key, r.first_measured_at);
                    added = true;
                }
            }
        }
        if added {
            self.shared.announced.notify_one();
        }
    }

    /// Waits until readings were announced and takes them all.
    pub async fn next(&self) -> Vec<UrgentReadings> {
        loop {
            let taken: Vec<UrgentReadings> = lock(&self.shared.waiting)
                .drain()
                .map(|((patient_id, kind), first_measured_at)| UrgentReadings {
                    patient_id,
                    kind,
                    first_measured_at,
                })
                .collect();
            if !taken.is_empty() {
                return taken;
            }
            // A permit stored by an announcement made since the take wakes this at once.
            self.shared.announced.notified().await;
        }
    }
}

/// Whether this process's ingest is working through a backlog: a commit of mostly readings
/// measured longer than [`CURRENT_WITHIN`] before (the broker redelivering what queued while
/// the ingest was down, an app uploading its history) starts or continues a backlog, and the
/// signal holds a while after the last such commit. The follow-up consumers of the process
/// then take at most half of the time, so the ingest (and the urgent lane, which this does
/// not slow) has the database and the CPU first and the backlog is stored sooner.
///
/// The hold is a third of how long the backlog has been draining, between
/// [`BACKLOG_LEAST_HOLD`] and [`BACKLOG_MOST_HOLD`]: the readings published while it drained
/// queue behind it and are current when they arrive, yet they are the backlog's tail. At a
/// drain four times as fast as devices publish (a fleet after an outage), that tail takes a
/// third of the drain.
#[derive(Debug, Clone, Default)]
pub struct IngestBacklog {
    episode: std::sync::Arc<std::sync::Mutex<Option<BacklogEpisode>>>,
}

/// The least time [`IngestBacklog::draining`] holds after a commit of mostly late readings: a
/// backlog commits many times a second, and a lone upload should slow nothing for long.
pub const BACKLOG_LEAST_HOLD: Duration = Duration::from_secs(1);
/// The longest hold, however long the backlog drained (an import running for hours).
pub const BACKLOG_MOST_HOLD: Duration = Duration::from_secs(300);

/// A run of commits of mostly late readings, each within the hold of the one before.
#[derive(Debug, Clone, Copy)]
struct BacklogEpisode {
    since: Instant,
    last_late_commit: Instant,
}

impl BacklogEpisode {
    fn holds_at(&self, now: Instant) -> bool {
        let hold =
            ((self.last_late_commit - self.since) / 3).clamp(BACKLOG_LEAST_HOLD, BACKLOG_MOST_HOLD);
        now.saturating_duration_since(self.last_late_commit) < hold
    }
}

impl IngestBacklog {
    /// Notes a commit that stored `late` readings measured longer than [`CURRENT_WITHIN`]
    /// before it, of `stored` in all.
    pub fn note_commit(&self, stored: usize, late: usize) {
        self.note_commit_at(Instant::now(), stored, late);
    }

    fn note_commit_at(&self, now: Instant, stored: usize, late: usize) {
        if late * 2 <= stored {
            return;
        }
        let mut episode = lock(&self.episode);
        match episode.as_mut() {
            Some(going_on) if going_on.holds_at(now) => going_on.last_late_commit = now,
            _ => {
                tracing::debug!(stored, late, "the ingest is working through a backlog");
                *episode = Some(BacklogEpisode {
                    since: now,
                    last_late_commit: now,
                });
            }
        }
    }

    /// Whether the ingest is working through a backlog now.
    pub fn draining(&self) -> bool {
        self.draining_at(Instant::now())
    }

    fn draining_at(&self, now: Instant) -> bool {
        lock(&self.episode).is_some_and(|episode| episode.holds_at(now))
    }
}

#[derive(sqlx::FromRow)]
struct FollowupRow {
    id: i64,
    patient_id: Uuid,
    kind: String,
    first_measured_at: DateTime<Utc>,
    last_measured_at: DateTime<Utc>,
    readings: i32,
    enqueued_at: DateTime<Utc>,
    written_by: i64,
}

impl Store {
    /// Claims queued rows of `consumer` holding about `limit` items (at least one row),
    /// with their items; `None` when none is free. Up to half come from the rows with the
    /// most recent current readings (measured within [`CURRENT_WITHIN`]), the rest from the
    /// oldest rows (the backlog always drains): a reading measured now is worked on at once
    /// even behind a backlog (after an outage the broker redelivers minutes of readings at
    /// once; an alarm for a current reading must not wait for them). Readings that are not
    /// current are claimed oldest first, in the order they were stored: a patient's work then
    /// comes in order, so the consumers continue from what they did last (the alert engine's
    /// held window, the rollups' latest day) instead of going back over it for work that
    /// a claim of fresher rows overtook. Items of one patient may sit in several rows, and so
    /// in two claims at once: consumers lock the patients they work on.
    ///
    /// The locked rows are deleted by their `ctid` (a lock holds the row where it is): a TID
    /// scan instead of a second primary-key lookup per row. Rows are inserted and deleted;
    /// only an erasure updates one, and a row it updated while the claim began is not
    /// deleted, so it stays queued for the next claim.
    pub async fn claim_followups(
        &self,
        consumer: &str,
        limit: i64,
    ) -> Result<Option<FollowupClaim>, StorageError> {
        let mut tx = self.begin_claim().await?;
        let rows: Vec<FollowupRow> = sqlx::query_as(
            "WITH freshest AS (
                 SELECT id, items FROM (
                     SELECT id, items,
                         sum(items) OVER (ORDER BY freshest_measured_at DESC, id DESC)
                             - items AS before
                     FROM ingest_followup_batches
                     WHERE consumer = $1 AND freshest_measured_at >= $4
                     ORDER BY freshest_measured_at DESC, id DESC LIMIT $3) current
                 WHERE before < $3
             ), oldest AS (
                 SELECT id FROM (
                     SELECT id, sum(items) OVER (ORDER BY id) - items AS before
                     FROM ingest_followup_batches
                     WHERE consumer = $1 AND id NOT IN (SELECT id FROM freshest)
                     ORDER BY id LIMIT $2) queued
                 -- At least the other half, whatever the freshest rows hold: the backlog
                 -- always drains.
                 WHERE before < $2 - least((SELECT coalesce(sum(items), 0) FROM freshest), $3)
             ), candidates AS (
                 SELECT id FROM freshest UNION SELECT id FROM oldest
             ), claimed AS (
                 SELECT ctid FROM ingest_followup_batches
                 WHERE consumer = $1 AND id IN (SELECT id FROM candidates)
                 FOR UPDATE SKIP LOCKED
             ), deleted AS (
                 DELETE FROM ingest_followup_batches f USING claimed
                 WHERE f.ctid = claimed.ctid
                 RETURNING f.id, f.enqueued_at, f.patient_ids, f.kinds, f.first_measured_at,
                     f.last_measured_at, f.readings, f.written_by
             )
             SELECT d.id, i.patient_id, i.kind, i.first_measured_at, i.last_measured_at,
                 i.readings, d.enqueued_at, d.written_by::text::int8 AS written_by
             FROM deleted d CROSS JOIN LATERAL UNNEST(d.patient_ids, d.kinds,
                 d.first_measured_at, d.last_measured_at, d.readings)
                 AS i (patient_id, kind, first_measured_at, last_measured_at, readings)",
        )
        .bind(consumer)
        .bind(limit.max(1))
        .bind(limit / 2)
        .bind(Utc::now() - CURRENT_WITHIN)
        .fetch_all(&mut *tx)
        .await?;
        FollowupClaim::of_rows(tx, rows).await
    }

    /// How many items wait for `consumer` (for metrics and tests).
    pub async fn pending_followups(&self, consumer: &str) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT coalesce(sum(items), 0)::int8 FROM ingest_followup_batches
             WHERE consumer = $1",
        )
        .bind(consumer)
        .fetch_one(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glucose_of(patient: u128, second: i64) -> UrgentReadings {
        UrgentReadings {
            patient_id: Uuid::from_u128(patient),
            kind: ReadingKind::Glucose,
            first_measured_at: DateTime::from_timestamp(second, 0).expect("time"),
        }
    }

    #[tokio::test]
    async fn announced_readings_are_taken_once_per_patient_and_kind_from_the_earliest() {
        let urgent = UrgentPatients::default();
        let pressure = UrgentReadings {
            kind: ReadingKind::BloodPressure,
            ..glucose_of(1, 50)
        };
        urgent.announce([
            glucose_of(1, 20),
            glucose_of(2, 30),
            glucose_of(1, 10),
            pressure,
        ]);
        let mut taken = urgent.next().await;
        taken.sort_by_key(|r| (r.patient_id, r.first_measured_at));
        assert_eq!(taken, vec![glucose_of(1, 10), pressure, glucose_of(2, 30)]);
        // Nothing announced since: the next take waits for the next announcement.
        let waiting = tokio::spawn({
            let urgent = urgent.clone();
            async move { urgent.next().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        urgent.announce([glucose_of(2, 40)]);
        let taken = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken by the announcement")
            .expect("task");
        assert_eq!(taken, vec![glucose_of(2, 40)]);
    }

    #[test]
    fn a_backlog_is_signalled_by_commits_of_mostly_late_readings_and_holds_for_its_tail() {
        let backlog = IngestBacklog::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert!(!backlog.draining_at(t0), "nothing committed yet");
        backlog.note_commit_at(t0, 10, 5);
        assert!(!backlog.draining_at(t0), "half late is not mostly late");
        backlog.note_commit_at(t0, 0, 0);
        assert!(
            !backlog.draining_at(t0),
            "a commit that stored nothing says nothing"
        );
        backlog.note_commit_at(t0, 10, 6);
        assert!(backlog.draining_at(t0));
        // A lone late commit holds the least time.
        assert!(backlog.draining_at(at(999)));
        assert!(!backlog.draining_at(at(1_000)));

        // A backlog draining for 30 s, a late commit every half second…
        let start = at(2_000);
        for step in 0..=60 {
            backlog.note_commit_at(start + Duration::from_millis(500 * step), 100, 90);
        }
        let last = start + Duration::from_secs(30);
        // …then only current readings (its tail): the signal holds a third as long again.
        backlog.note_commit_at(last + Duration::from_secs(1), 100, 0);
        assert!(backlog.draining_at(last + Duration::from_millis(9_999)));
        assert!(!backlog.draining_at(last + Duration::from_secs(10)));
        // A backlog of hours holds at most BACKLOG_MOST_HOLD.
        let hours = last + Duration::from_secs(20);
        for step in 0..=14_400 {
            backlog.note_commit_at(hours + Duration::from_millis(500 * step), 10, 10);
        }
        let end = hours + Duration::from_secs(7_200);
        assert!(backlog.draining_at(end + BACKLOG_MOST_HOLD - Duration::from_millis(1)));
        assert!(!backlog.draining_at(end + BACKLOG_MOST_HOLD));
        // The next late commit starts a new backlog, with the least hold again.
        let later = end + Duration::from_secs(600);
        backlog.note_commit_at(later, 1, 1);
        assert!(backlog.draining_at(later));
        assert!(!backlog.draining_at(later + BACKLOG_LEAST_HOLD));
    }

    #[test]
    fn finished_writes_are_those_below_xmin_and_those_below_xmax_not_running() {
        let some_running = FinishedWrites::parse("100:120:105,110").expect("a snapshot");
        assert!(some_running.include(99) && some_running.include(106));
        assert!(!some_running.include(105) && !some_running.include(110));
        assert!(!some_running.include(120) && !some_running.include(121));
        let none_running = FinishedWrites::parse("7:7:").expect("a snapshot");
        assert!(none_running.include(6) && !none_running.include(7));
        for damaged in ["", "7", "7:7", "8:7:", "7:9:x", "7:9:8:1"] {
            assert_eq!(FinishedWrites::parse(damaged), None, "{damaged}");
        }
    }

    #[tokio::test]
    async fn the_waiting_set_is_bounded() {
        let urgent = UrgentPatients::default();
        urgent.announce((0..URGENT_PATIENTS_LIMIT as u128 + 5).map(|p| glucose_of(p, 0)));
        assert_eq!(urgent.next().await.len(), URGENT_PATIENTS_LIMIT);
    }
}

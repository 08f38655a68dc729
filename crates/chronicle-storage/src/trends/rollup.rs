//! The "trends" follow-up consumer: recomputes the day rollups that new readings, zone changes
//! and targets changes made stale.

use super::kind::{GlucoseTotalsRow, PatientDay, TrendKind};
use super::read::{RawDays, raw_days};
use super::{RawRange, TRENDS_CONSUMER, TrendSubject, corrupt_running, load_points, zone_of};
use crate::readings::{BloodPressure, Glucose};
use crate::{StorageError, Store};
use chronicle_domain::ReadingKind;
use chronicle_domain::trends::calendar::{DayBounds, local_date};
use chronicle_domain::trends::{GlucoseDay, GlucoseRunning, cgm_slot_start, continue_glucose_day};
use chronicle_domain::zone::Tz;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

/// A rebuild recomputes at most this many days per raw query, so a long history never loads
/// at once.
const REBUILD_CHUNK_DAYS: usize = 31;

/// What one [`Store::refresh_trends`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefreshReport {
    /// Follow-up items completed.
    pub followups: usize,
    /// Patients rebuilt from scratch.
    pub rebuilds: usize,
    /// Patient-days recomputed or continued.
    pub days: usize,
    /// Of those, days continued from their rollup with readings that arrived in order.
    pub continued: usize,
    /// Whether the claimed items held a current reading (`FollowupClaim::holds_current`).
    pub current: bool,
}

impl RefreshReport {
    /// Nothing was waiting.
    pub fn is_idle(&self) -> bool {
        self.followups == 0 && self.rebuilds == 0
    }
}

/// A range of newly stored readings of one kind: (kind, first, last `measured_at`).
type TouchedRange = (ReadingKind, DateTime<Utc>, DateTime<Utc>);

fn dates_between(zone: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<NaiveDate> {
    let first = local_date(zone, from);
    let last = local_date(zone, to);
    first.iter_days().take_while(|d| *d <= last).collect()
}

/// The days of kind `K` that new readings in `[first, last]` change: their own, and those
/// their reach extends into on either side (glucose durations cross midnight).
pub(super) fn dates_touched<K: TrendKind>(
    zone: Tz,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
) -> Vec<NaiveDate> {
    dates_between(zone, first - K::reach(), last + K::reach())
}

impl Store {
    /// One round of the trends consumer: rebuilds up to `limit` patients that wait for it,
    /// then takes up to `limit` follow-up items and recomputes the days they touched. Each
    /// patient's days are written in their own transaction; the claims are completed only
    /// after, so a crash in between only means the work is done again.
    pub async fn refresh_trends(&self, limit: i64) -> Result<RefreshReport, StorageError> {
        let mut report = RefreshReport::default();

        let mut claim = self.begin_claim().await?;
        let rebuilds: Vec<Uuid> = sqlx::query_scalar(
            "DELETE FROM trend_rebuilds WHERE patient_id IN (
                 SELECT patient_id FROM trend_rebuilds ORDER BY requested_at
                 LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING patient_id",
        )
        .bind(limit)
        .fetch_all(&mut *claim)
        .await?;
        for patient_id in &rebuilds {
            report.days += self.rebuild_trends(*patient_id).await?;
        }
        claim.commit().await?;
        report.rebuilds = rebuilds.len();

        if let Some(claim) = self.claim_followups(TRENDS_CONSUMER, limit).await? {
            report.current = claim.holds_current();
            let mut touched: BTreeMap<Uuid, Vec<TouchedRange>> = BTreeMap::new();
            for item in &claim.items {
                touched.entry(item.patient_id).or_default().push((
                    item.kind,
                    item.first_measured_at,
                    item.last_measured_at,
                ));
            }
            let (days, continued) = self.recompute_touched(&touched).await?;
            report.days += days;
            report.continued += continued;
            report.followups = claim.items.len();
            claim.complete().await?;
        }
        Ok(report)
    }

    /// Recomputes (or continues) the days the touched ranges change, for every patient of a
    /// claim in one transaction: one query loads each kind's readings, one statement writes
    /// each table. Returns the days written, and how many of them were continued.
    async fn recompute_touched(
        &self,
        touched: &BTreeMap<Uuid, Vec<TouchedRange>>,
    ) -> Result<(usize, usize), StorageError> {
        let mut tx = self.begin_rollup().await?;
        let patients: Vec<Uuid> = touched.keys().copied().collect();
        // Patients erased since have nothing to roll up.
        let subjects = self.lock_subjects(&mut tx, &patients).await?;
        // Readings that arrive in order continue their day; the rest are computed again.
        let continued = continue_glucose_days(&mut tx, &subjects, touched).await?;
        let days = continued.len()
            + recompute_kind::<Glucose>(&mut tx, &subjects, touched, &continued).await?
            + recompute_kind::<BloodPressure>(&mut tx, &subjects, touched, &HashSet::new()).await?;
        tx.commit().await?;
        Ok((days, continued.len()))
    }

    /// Recomputes every day of a patient from the raw readings, replacing all their rollups.
    async fn rebuild_trends(&self, patient_id: Uuid) -> Result<usize, StorageError> {
        let mut tx = self.begin_rollup().await?;
        let Some(subject) = self.lock_subject(&mut tx, patient_id).await? else {
            return Ok(0);
        };
        let days = rebuild_kind::<Glucose>(&mut tx, &subject).await?
            + rebuild_kind::<BloodPressure>(&mut tx, &subject).await?;
        tx.commit().await?;
        Ok(days)
    }

    /// A transaction for rollup work. Its statements find a patient's days by the key: each
    /// is planned once per connection (see [`Store::connect_lazy`]), and a plan made while the
    /// rollup tables were still small would scan them whole for as long as it is kept, which
    /// on a new site filling fast is minutes of a core.
    async fn begin_rollup(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StorageError> {
        let mut tx = self.begin().await?;
        sqlx::query("SET LOCAL enable_seqscan = off")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Locks the patient's row against a concurrent recomputation or zone change (without
    /// blocking the ingest's foreign-key checks) and returns their zone and targets; `None`
    /// if the patient no longer exists.
    async fn lock_subject(
        &self,
        conn: &mut PgConnection,
        patient_id: Uuid,
    ) -> Result<Option<TrendSubject>, StorageError> {
        Ok(self.lock_subjects(conn, &[patient_id]).await?.pop())
    }

    /// [`Store::lock_subject`] for several patients, locked in id order (so two consumers
    /// never wait on each other in a cycle); those that no longer exist are left out.
    async fn lock_subjects(
        &self,
        conn: &mut PgConnection,
        patients: &[Uuid],
    ) -> Result<Vec<TrendSubject>, StorageError> {
        let zones: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT id, time_zone FROM patients WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
        )
        .bind(patients)
        .fetch_all(&mut *conn)
        .await?;
        // Read after taking the locks: a targets change committed before is seen, one
        // committed after queues a rebuild that waits for these locks.
        let ids: Vec<Uuid> = zones.iter().map(|(id, _)| *id).collect();
        let mut targets = self.glucose_targets(&ids).await?;
        zones
            .into_iter()
            .map(|(patient_id, zone)| {
                Ok(TrendSubject {
                    patient_id,
                    time_zone: zone_of(&zone)?,
                    targets: targets.remove(&patient_id).unwrap_or_default(),
                })
            })
            .collect()
    }
}

/// Recomputes the days of kind `K` the touched ranges change, for every subject but those
/// already `done`, from the readings up to [`ceilings`].
async fn recompute_kind<K: TrendKind>(
    conn: &mut PgConnection,
    subjects: &[TrendSubject],
    touched: &BTreeMap<Uuid, Vec<TouchedRange>>,
    done: &HashSet<Uuid>,
) -> Result<usize, StorageError> {
    let subjects: Vec<&TrendSubject> = subjects
        .iter()
        .filter(|subject| !done.contains(&subject.patient_id))
        .collect();
    let ceilings = ceilings::<K>(conn, &subjects, touched).await?;
    let wanted = subjects
        .into_iter()
        .map(|subject| RawDays {
            subject,
            floor: None,
            ceiling: ceilings.get(&subject.patient_id).copied().flatten(),
            dates: touched
                .get(&subject.patient_id)
                .into_iter()
                .flatten()
                .filter(|(kind, _, _)| *kind == K::KIND)
                .flat_map(|(_, first, last)| dates_touched::<K>(subject.time_zone, *first, *last))
                .collect(),
        })
        .collect();
    write_days::<K>(conn, wanted).await
}

/// The newest new reading of kind `K` of each patient in the claim (none without any).
fn newest_touched<K: TrendKind>(ranges: &[TouchedRange]) -> Option<DateTime<Utc>> {
    ranges
        .iter()
        .filter(|(kind, _, _)| *kind == K::KIND)
        .map(|(_, _, last)| *last)
        .max()
}

/// How far each patient's days of kind `K` are computed this round: up to the claim's newest
/// new reading, or the newest one the stored days hold if that is later (`None`: no bound).
///
/// A consumer behind the ingest would otherwise read ahead of its queue: a day computed
/// from everything stored so far holds readings whose own work is still queued, which then
/// arrive "before the day's latest reading" and have the day computed again, and again, each
/// time with everything stored since. Bounded, each round computes the days as they were
/// when its newest reading was stored, and the next round's readings continue them. Readings
/// after the bound are not in the days yet and their work is queued (no round did it: the
/// days would hold them), so reads take those days from the raw readings until it is done.
async fn ceilings<K: TrendKind>(
    conn: &mut PgConnection,
    subjects: &[&TrendSubject],
    touched: &BTreeMap<Uuid, Vec<TouchedRange>>,
) -> Result<HashMap<Uuid, Option<DateTime<Utc>>>, StorageError> {
    let newest: HashMap<Uuid, DateTime<Utc>> = subjects
        .iter()
        .filter_map(|subject| {
            let ranges = touched.get(&subject.patient_id)?;
            Some((subject.patient_id, newest_touched::<K>(ranges)?))
        })
        .collect();
    if newest.is_empty() {
        return Ok(HashMap::new());
    }
    let patients: Vec<Uuid> = newest.keys().copied().collect();
    // The latest day holds the newest reading the days hold.
    let held: HashMap<Uuid, Option<DateTime<Utc>>> = sqlx::query_as(&format!(
        "SELECT p.id, d.latest_at FROM UNNEST($1::uuid[]) AS p (id)
         CROSS JOIN LATERAL (
             SELECT latest_at FROM {} WHERE patient_id = p.id ORDER BY day DESC LIMIT 1
         ) d",
        K::DAYS_TABLE
    ))
    .bind(&patients)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    Ok(newest
        .into_iter()
        .map(|(patient, newest)| {
            let ceiling = match held.get(&patient) {
                None => Some(newest),
                Some(Some(held)) => Some(newest.max(*held)),
                // A day without its latest reading: computed from everything.
                Some(None) => None,
            };
            (patient, ceiling)
        })
        .collect())
}

/// A patient's latest stored glucose day, as [`continue_glucose_days`] reads it.
#[derive(sqlx::FromRow)]
struct LatestGlucoseDay {
    patient_id: Uuid,
    time_zone: String,
    running: Vec<u8>,
    samples: Vec<u8>,
    #[sqlx(flatten)]
    totals: GlucoseTotalsRow,
}

/// A stored day that new readings may continue.
struct Continuable<'s> {
    subject: &'s TrendSubject,
    bounds: DayBounds,
    day: GlucoseDay,
    /// When the day's latest reading was measured.
    latest: DateTime<Utc>,
    /// The newest new reading of the claim.
    newest: DateTime<Utc>,
    running: GlucoseRunning,
}

/// The one day a patient's new glucose readings touch, with the first and the last of them.
type NewInOneDay<'s> = (&'s TrendSubject, DayBounds, DateTime<Utc>, DateTime<Utc>);

/// Continues each patient's latest stored glucose day with the new readings of the claim,
/// without reading the day again ([`continue_glucose_day`]), where that gives what computing
/// it again would: all the patient's new glucose readings lie in that one day, after its
/// latest reading and more than a cap before its end. That is the usual case of a device
/// sending as it measures; the day's running totals change by the day's difference. Returns
/// the patients whose glucose days are done; the others' are computed again.
async fn continue_glucose_days(
    conn: &mut PgConnection,
    subjects: &[TrendSubject],
    touched: &BTreeMap<Uuid, Vec<TouchedRange>>,
) -> Result<HashSet<Uuid>, StorageError> {
    let mut candidates: HashMap<Uuid, NewInOneDay<'_>> = HashMap::new();
    for subject in subjects {
        let ranges = touched.get(&subject.patient_id).into_iter().flatten();
        let glucose: Vec<_> = ranges
            .filter(|(kind, _, _)| *kind == ReadingKind::Glucose)
            .collect();
        let first = glucose.iter().map(|(_, first, _)| *first).min();
        let last = glucose.iter().map(|(_, _, last)| *last).max();
        let (Some(first), Some(last)) = (first, last) else {
            continue;
        };
        if let [date] = dates_touched::<Glucose>(subject.time_zone, first, last)[..] {
            let bounds = DayBounds::of(subject.time_zone, date);
            candidates.insert(subject.patient_id, (subject, bounds, first, last));
        }
    }
    if candidates.is_empty() {
        return Ok(HashSet::new());
    }
    let (patients, dates): (Vec<Uuid>, Vec<NaiveDate>) = candidates
        .iter()
        .map(|(patient, (_, bounds, _, _))| (*patient, bounds.date))
        .unzip();
    let stored: Vec<LatestGlucoseDay> = sqlx::query_as(
        // Only a patient's latest day: the running totals of no later day then change.
        "SELECT d.*, s.samples
         FROM UNNEST($1::uuid[], $2::date[]) AS c (patient_id, day)
         CROSS JOIN LATERAL (
             SELECT * FROM glucose_days g
             WHERE g.patient_id = c.patient_id AND g.day >= c.day
             ORDER BY g.day DESC LIMIT 1
         ) d
         JOIN glucose_day_samples s ON s.patient_id = d.patient_id AND s.day = d.day
         WHERE d.day = c.day",
    )
    .bind(&patients)
    .bind(&dates)
    .fetch_all(&mut *conn)
    .await?;
    let mut continuable = Vec::new();
    for row in stored {
        let Some((subject, bounds, first, last)) = candidates.get(&row.patient_id) else {
            continue;
        };
        let Some(day) = Glucose::stored_day(&row.totals, Some(&row.samples))? else {
            continue;
        };
        let Ok(running) = GlucoseRunning::decode(&row.running) else {
            continue;
        };
        let Some((latest, _)) = day.latest() else {
            continue;
        };
        if row.time_zone == subject.time_zone.name() && latest < *first {
            continuable.push(Continuable {
                subject,
                bounds: *bounds,
                day,
                latest,
                newest: *last,
                running,
            });
        }
    }
    // From the slot of each day's latest reading (for its CGM slots) to a cap past the day, or
    // to the claim's newest reading if that is sooner ([`ceilings`] says why: the day is then
    // as it was when that reading was stored, which the next readings continue).
    let ranges: Vec<RawRange> = continuable
        .iter()
        .enumerate()
        .map(|(i, c)| RawRange {
            tag: i as i32,
            patient_id: c.subject.patient_id,
            from: cgm_slot_start(c.latest).max(c.bounds.start),
            to: (c.bounds.end + Glucose::reach()).min(c.newest),
        })
        .collect();
    let loaded = load_points::<Glucose>(&mut *conn, &ranges).await?;
    let mut done = HashSet::new();
    let mut days = Vec::new();
    for (c, points) in continuable.iter().zip(&loaded) {
        let split = points.partition_point(|p| p.at <= c.latest);
        let (tail, new) = points.split_at(split);
        let Some(day) = continue_glucose_day(&c.day, &c.bounds, tail, new, &c.subject.targets)
        else {
            continue;
        };
        let mut running = c.running;
        running.totals -= &c.day.totals;
        running.add_day(&day.totals, day.latest());
        done.insert(c.subject.patient_id);
        days.push((c.subject, day, running.encode()));
    }
    if days.is_empty() {
        return Ok(done);
    }
    // The day is the patient's latest, so its running totals are the only ones that change:
    // they are written with it.
    let rows: Vec<PatientDay<'_, GlucoseDay>> = days
        .iter()
        .map(|(subject, day, running)| PatientDay {
            patient_id: subject.patient_id,
            zone: subject.time_zone,
            day,
            running: Some(running),
        })
        .collect();
    Glucose::upsert_days(conn, &rows).await?;
    Ok(done)
}

/// Replaces every stored day of kind `K` of the patient, a chunk of days at a time.
async fn rebuild_kind<K: TrendKind>(
    conn: &mut PgConnection,
    subject: &TrendSubject,
) -> Result<usize, StorageError> {
    // Table and view names are the kind's constants.
    sqlx::query(&format!(
        "DELETE FROM {} WHERE patient_id = $1",
        K::DAYS_TABLE
    ))
    .bind(subject.patient_id)
    .execute(&mut *conn)
    .await?;
    let (first, last): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = sqlx::query_as(&format!(
        "SELECT min(measured_at), max(measured_at) FROM {} WHERE patient_id = $1",
        K::READINGS_VIEW
    ))
    .bind(subject.patient_id)
    .fetch_one(&mut *conn)
    .await?;
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(0);
    };
    let mut days = 0;
    for chunk in dates_touched::<K>(subject.time_zone, first, last).chunks(REBUILD_CHUNK_DAYS) {
        let wanted = vec![RawDays {
            subject,
            floor: None,
            ceiling: None,
            dates: chunk.iter().copied().collect(),
        }];
        days += write_days::<K>(conn, wanted).await?;
    }
    Ok(days)
}

/// Recomputes the asked days of kind `K` from the raw readings and stores them (days left
/// with nothing are deleted), then each patient's running totals from the first of them on:
/// a fixed number of statements for any number of patients. Returns how many days were
/// computed.
async fn write_days<K: TrendKind>(
    conn: &mut PgConnection,
    wanted: Vec<RawDays<'_>>,
) -> Result<usize, StorageError> {
    let wanted: Vec<RawDays<'_>> = wanted.into_iter().filter(|w| !w.dates.is_empty()).collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let computed = raw_days::<K>(&mut *conn, &wanted).await?;
    let mut kept = Vec::new();
    let (mut empty_patients, mut empty_days) = (Vec::new(), Vec::new());
    let mut count = 0;
    for (w, days) in wanted.iter().zip(&computed) {
        count += days.len();
        for day in days {
            if K::is_empty(K::day_totals(day)) {
                empty_patients.push(w.subject.patient_id);
                empty_days.push(K::day_date(day));
            } else {
                kept.push(PatientDay {
                    patient_id: w.subject.patient_id,
                    zone: w.subject.time_zone,
                    day,
                    // Refreshed below, from the first day asked for on.
                    running: None,
                });
            }
        }
    }
    if !empty_days.is_empty() {
        sqlx::query(&format!(
            "DELETE FROM {} d USING UNNEST($1::uuid[], $2::date[]) AS e (patient_id, day)
             WHERE d.patient_id = e.patient_id AND d.day = e.day",
            K::DAYS_TABLE
        ))
        .bind(&empty_patients)
        .bind(&empty_days)
        .execute(&mut *conn)
        .await?;
    }
    if !kept.is_empty() {
        K::upsert_days(conn, &kept).await?;
    }
    let from: Vec<(Uuid, NaiveDate)> = wanted
        .iter()
        .filter_map(|w| Some((w.subject.patient_id, *w.dates.first()?)))
        .collect();
    refresh_running::<K>(conn, &from).await?;
    Ok(count)
}

/// A stored day's totals with the patient they belong to.
struct PatientTotals<R> {
    patient_id: Uuid,
    totals: R,
}

impl<'r, R: sqlx::FromRow<'r, PgRow>> sqlx::FromRow<'r, PgRow> for PatientTotals<R> {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(PatientTotals {
            patient_id: row.try_get("patient_id")?,
            totals: R::from_row(row)?,
        })
    }
}

/// Rewrites the running totals of each patient's days from their date on: the totals of the
/// patient's last day before it, plus each day in date order. Three statements for all.
async fn refresh_running<K: TrendKind>(
    conn: &mut PgConnection,
    from: &[(Uuid, NaiveDate)],
) -> Result<(), StorageError> {
    if from.is_empty() {
        return Ok(());
    }
    let table = K::DAYS_TABLE;
    let (patients, firsts): (Vec<Uuid>, Vec<NaiveDate>) = from.iter().copied().unzip();
    let bases: Vec<(Uuid, Vec<u8>)> = sqlx::query_as(&format!(
        // Per patient through the key, whatever the planner knows of the table's size (a
        // plan made while the table was small would otherwise scan all of it).
        "SELECT f.patient_id, b.running
         FROM UNNEST($1::uuid[], $2::date[]) AS f (patient_id, first_day)
         CROSS JOIN LATERAL (
             SELECT d.running FROM {table} d
             WHERE d.patient_id = f.patient_id AND d.day < f.first_day
             ORDER BY d.day DESC LIMIT 1
         ) b"
    ))
    .bind(&patients)
    .bind(&firsts)
    .fetch_all(&mut *conn)
    .await?;
    let mut bases: HashMap<Uuid, Vec<u8>> = bases.into_iter().collect();
    let rows: Vec<PatientTotals<K::TotalsRow>> = sqlx::query_as(&format!(
        "SELECT f.patient_id, t.*
         FROM UNNEST($1::uuid[], $2::date[]) AS f (patient_id, first_day)
         CROSS JOIN LATERAL (
             SELECT {columns} FROM {table} d
             WHERE d.patient_id = f.patient_id AND d.day >= f.first_day
         ) t
         ORDER BY f.patient_id, t.day",
        columns = K::TOTALS_COLUMNS
    ))
    .bind(&patients)
    .bind(&firsts)
    .fetch_all(&mut *conn)
    .await?;
    let mut updated = Vec::with_capacity(rows.len());
    let mut current: Option<(Uuid, K::Running)> = None;
    for row in &rows {
        let running = match &mut current {
            Some((patient, running)) if *patient == row.patient_id => running,
            _ => {
                let base = bases
                    .remove(&row.patient_id)
                    .map(|b| K::decode(&b))
                    .transpose()
                    .map_err(corrupt_running)?
                    .unwrap_or_default();
                &mut current.insert((row.patient_id, base)).1
            }
        };
        K::add_day(running, &row.totals);
        updated.push((row.patient_id, K::row_day(&row.totals), K::encode(running)));
    }
    store_running::<K>(conn, updated).await
}

/// Stores the running totals of patient-days of kind `K`.
async fn store_running<K: TrendKind>(
    conn: &mut PgConnection,
    updated: Vec<(Uuid, NaiveDate, Vec<u8>)>,
) -> Result<(), StorageError> {
    let table = K::DAYS_TABLE;
    let (mut row_patients, mut row_days, mut encoded) = (Vec::new(), Vec::new(), Vec::new());
    for (patient, day, running) in updated {
        row_patients.push(patient);
        row_days.push(day);
        encoded.push(running);
    }
    sqlx::query(&format!(
        // `patient_id = ANY($1)` lets the planner find the rows by the key even when it
        // thinks the table small.
        "UPDATE {table} d SET running = u.running
         FROM UNNEST($1::uuid[], $2::date[], $3::bytea[]) AS u (patient_id, day, running)
         WHERE d.patient_id = ANY($1) AND d.patient_id = u.patient_id AND d.day = u.day"
    ))
    .bind(&row_patients)
    .bind(&row_days)
    .bind(&encoded)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

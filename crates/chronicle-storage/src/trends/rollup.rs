//! The "trends" follow-up consumer: recomputes the day rollups that new readings, zone changes
//! and targets changes made stale.

use super::kind::TrendKind;
use super::read::{RawDays, raw_days};
use super::{TRENDS_CONSUMER, TrendSubject, corrupt_running, zone_of};
use crate::readings::{BloodPressure, Glucose};
use crate::{StorageError, Store};
use chronicle_domain::ReadingKind;
use chronicle_domain::trends::calendar::local_date;
use chronicle_domain::zone::Tz;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use std::collections::{BTreeMap, BTreeSet};
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
    /// Patient-days recomputed.
    pub days: usize,
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

        let mut claim = self.pool().begin().await?;
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
            let mut touched: BTreeMap<Uuid, Vec<TouchedRange>> = BTreeMap::new();
            for item in &claim.items {
                touched.entry(item.patient_id).or_default().push((
                    item.kind,
                    item.first_measured_at,
                    item.last_measured_at,
                ));
            }
            for (patient_id, touched) in &touched {
                report.days += self.recompute_touched(*patient_id, touched).await?;
            }
            report.followups = claim.items.len();
            claim.complete().await?;
        }
        Ok(report)
    }

    async fn recompute_touched(
        &self,
        patient_id: Uuid,
        touched: &[TouchedRange],
    ) -> Result<usize, StorageError> {
        let mut tx = self.pool().begin().await?;
        let Some(subject) = self.lock_subject(&mut tx, patient_id).await? else {
            // Erased since: nothing to roll up.
            return Ok(0);
        };
        let days = recompute_kind::<Glucose>(&mut tx, &subject, touched).await?
            + recompute_kind::<BloodPressure>(&mut tx, &subject, touched).await?;
        tx.commit().await?;
        Ok(days)
    }

    /// Recomputes every day of a patient from the raw readings, replacing all their rollups.
    async fn rebuild_trends(&self, patient_id: Uuid) -> Result<usize, StorageError> {
        let mut tx = self.pool().begin().await?;
        let Some(subject) = self.lock_subject(&mut tx, patient_id).await? else {
            return Ok(0);
        };
        let days = rebuild_kind::<Glucose>(&mut tx, &subject).await?
            + rebuild_kind::<BloodPressure>(&mut tx, &subject).await?;
        tx.commit().await?;
        Ok(days)
    }

    /// Locks the patient's row against a concurrent recomputation or zone change (without
    /// blocking the ingest's foreign-key checks) and returns their zone and targets; `None`
    /// if the patient no longer exists.
    async fn lock_subject(
        &self,
        conn: &mut PgConnection,
        patient_id: Uuid,
    ) -> Result<Option<TrendSubject>, StorageError> {
        let zone: Option<String> =
            sqlx::query_scalar("SELECT time_zone FROM patients WHERE id = $1 FOR NO KEY UPDATE")
                .bind(patient_id)
                .fetch_optional(&mut *conn)
                .await?;
        let Some(zone) = zone else {
            return Ok(None);
        };
        // Read after taking the lock: a targets change committed before is seen, one committed
        // after queues a rebuild that waits for this lock.
        let targets = self
            .glucose_targets(&[patient_id])
            .await?
            .remove(&patient_id)
            .unwrap_or_default();
        Ok(Some(TrendSubject {
            patient_id,
            time_zone: zone_of(&zone)?,
            targets,
        }))
    }
}

/// Recomputes the days of kind `K` the touched ranges change.
async fn recompute_kind<K: TrendKind>(
    conn: &mut PgConnection,
    subject: &TrendSubject,
    touched: &[TouchedRange],
) -> Result<usize, StorageError> {
    let dates: BTreeSet<NaiveDate> = touched
        .iter()
        .filter(|(kind, _, _)| *kind == K::KIND)
        .flat_map(|(_, first, last)| dates_touched::<K>(subject.time_zone, *first, *last))
        .collect();
    write_days::<K>(conn, subject, dates).await
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
        days += write_days::<K>(conn, subject, chunk.iter().copied().collect()).await?;
    }
    Ok(days)
}

/// Recomputes the days `dates` of kind `K` from the raw readings and stores them (days left
/// with nothing are deleted), then the running totals from the first of them on. Returns how
/// many days were computed.
async fn write_days<K: TrendKind>(
    conn: &mut PgConnection,
    subject: &TrendSubject,
    dates: BTreeSet<NaiveDate>,
) -> Result<usize, StorageError> {
    let Some(first) = dates.first().copied() else {
        return Ok(0);
    };
    let days = raw_days::<K>(
        &mut *conn,
        &[RawDays {
            subject,
            floor: None,
            dates,
        }],
    )
    .await?
    .pop()
    .unwrap_or_default();
    let (kept, empty): (Vec<&K::Day>, Vec<&K::Day>) =
        days.iter().partition(|d| !K::is_empty(K::day_totals(d)));
    sqlx::query(&format!(
        "DELETE FROM {} WHERE patient_id = $1 AND day = ANY($2)",
        K::DAYS_TABLE
    ))
    .bind(subject.patient_id)
    .bind(empty.iter().map(|d| K::day_date(d)).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    if !kept.is_empty() {
        K::upsert_days(conn, subject.patient_id, subject.time_zone, &kept).await?;
    }
    refresh_running::<K>(conn, subject.patient_id, first).await?;
    Ok(days.len())
}

/// Rewrites the running totals of the patient's days from `from` on: the totals of the last
/// day before it, plus each day in date order.
async fn refresh_running<K: TrendKind>(
    conn: &mut PgConnection,
    patient_id: Uuid,
    from: NaiveDate,
) -> Result<(), StorageError> {
    let table = K::DAYS_TABLE;
    let base: Option<Vec<u8>> = sqlx::query_scalar(&format!(
        "SELECT running FROM {table} WHERE patient_id = $1 AND day < $2
         ORDER BY day DESC LIMIT 1"
    ))
    .bind(patient_id)
    .bind(from)
    .fetch_optional(&mut *conn)
    .await?;
    let mut running = base
        .map(|b| K::decode(&b))
        .transpose()
        .map_err(corrupt_running)?
        .unwrap_or_default();
    let rows: Vec<K::TotalsRow> = sqlx::query_as(&format!(
        "SELECT {columns} FROM {table}
         WHERE patient_id = $1 AND day >= $2 ORDER BY day",
        columns = K::TOTALS_COLUMNS
    ))
    .bind(patient_id)
    .bind(from)
    .fetch_all(&mut *conn)
    .await?;
    let mut encoded = Vec::with_capacity(rows.len());
    for row in &rows {
        K::add_day(&mut running, row);
        encoded.push(K::encode(&running));
    }
    sqlx::query(&format!(
        "UPDATE {table} d SET running = u.running
         FROM UNNEST($2::date[], $3::bytea[]) AS u (day, running)
         WHERE d.patient_id = $1 AND d.day = u.day"
    ))
    .bind(patient_id)
    .bind(rows.iter().map(K::row_day).collect::<Vec<_>>())
    .bind(encoded)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

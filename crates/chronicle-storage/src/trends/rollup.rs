//! The "trends" follow-up consumer: recomputes the day rollups that new readings, zone changes
//! and targets changes made stale.

use super::{
    BP_TOTALS_COLUMNS, BpTotalsRow, GLUCOSE_TOTALS_COLUMNS, GlucoseTotalsRow, RawRange,
    TRENDS_CONSUMER, bp_points_in, bp_ranges, corrupt_running, glucose_points_near, glucose_ranges,
    load_bp_points, load_glucose_points, max_cap, zone_of,
};
use crate::{StorageError, Store};
use chronicle_domain::ReadingKind;
use chronicle_domain::targets::GlucoseTargets;
use chronicle_domain::trends::calendar::{DayBounds, local_date};
use chronicle_domain::trends::running::CorruptRunning;
use chronicle_domain::trends::{
    BpDay, BpRunning, GlucoseDay, GlucoseRunning, bp_day, glucose_day, samples,
};
use chronicle_domain::zone::Tz;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// A rebuild recomputes at most this many days per raw query, so a long history never loads
/// at once.
const REBUILD_CHUNK_DAYS: u64 = 31;

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

/// The days of one patient a batch of follow-ups touched.
#[derive(Default)]
struct Touched {
    /// (first, last) `measured_at` of newly stored readings.
    glucose: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    blood_pressure: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

fn dates_between(zone: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<NaiveDate> {
    let first = local_date(zone, from);
    let last = local_date(zone, to);
    first.iter_days().take_while(|d| *d <= last).collect()
}

/// The glucose days new readings in `[first, last]` change: their own, those whose readings
/// they end (a cap before), and those their durations reach into (a cap after).
pub(super) fn glucose_dates_touched(
    zone: Tz,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
) -> Vec<NaiveDate> {
    dates_between(zone, first - max_cap(), last + max_cap())
}

pub(super) fn bp_dates_touched(
    zone: Tz,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
) -> Vec<NaiveDate> {
    dates_between(zone, first, last)
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
            let mut touched: BTreeMap<Uuid, Touched> = BTreeMap::new();
            for item in &claim.items {
                let entry = touched.entry(item.patient_id).or_default();
                let range = (item.first_measured_at, item.last_measured_at);
                match item.kind {
                    ReadingKind::Glucose => entry.glucose.push(range),
                    ReadingKind::BloodPressure => entry.blood_pressure.push(range),
                }
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
        touched: &Touched,
    ) -> Result<usize, StorageError> {
        let mut tx = self.pool().begin().await?;
        let Some((zone, targets)) = self.lock_subject(&mut tx, patient_id).await? else {
            // Erased since: nothing to roll up.
            return Ok(0);
        };
        let glucose: BTreeSet<NaiveDate> = touched
            .glucose
            .iter()
            .flat_map(|(first, last)| glucose_dates_touched(zone, *first, *last))
            .collect();
        let blood_pressure: BTreeSet<NaiveDate> = touched
            .blood_pressure
            .iter()
            .flat_map(|(first, last)| bp_dates_touched(zone, *first, *last))
            .collect();
        let days = write_glucose_days(&mut tx, patient_id, zone, &targets, &glucose).await?
            + write_bp_days(&mut tx, patient_id, zone, &blood_pressure).await?;
        tx.commit().await?;
        Ok(days)
    }

    /// Recomputes every day of a patient from the raw readings, replacing all their rollups.
    async fn rebuild_trends(&self, patient_id: Uuid) -> Result<usize, StorageError> {
        let mut tx = self.pool().begin().await?;
        let Some((zone, targets)) = self.lock_subject(&mut tx, patient_id).await? else {
            return Ok(0);
        };
        for table in ["glucose_days", "blood_pressure_days"] {
            // Table names come from the list above.
            sqlx::query(&format!("DELETE FROM {table} WHERE patient_id = $1"))
                .bind(patient_id)
                .execute(&mut *tx)
                .await?;
        }
        #[derive(sqlx::FromRow)]
        struct Spans {
            glucose_first: Option<DateTime<Utc>>,
            glucose_last: Option<DateTime<Utc>>,
            bp_first: Option<DateTime<Utc>>,
            bp_last: Option<DateTime<Utc>>,
        }
        let spans: Spans = sqlx::query_as(
            "SELECT
                 (SELECT min(measured_at) FROM glucose_readings WHERE patient_id = $1)
                     AS glucose_first,
                 (SELECT max(measured_at) FROM glucose_readings WHERE patient_id = $1)
                     AS glucose_last,
                 (SELECT min(measured_at) FROM blood_pressure_readings WHERE patient_id = $1)
                     AS bp_first,
                 (SELECT max(measured_at) FROM blood_pressure_readings WHERE patient_id = $1)
                     AS bp_last",
        )
        .bind(patient_id)
        .fetch_one(&mut *tx)
        .await?;
        let mut days = 0;
        if let (Some(first), Some(last)) = (spans.glucose_first, spans.glucose_last) {
            for chunk in chunks(&glucose_dates_touched(zone, first, last)) {
                days += write_glucose_days(&mut tx, patient_id, zone, &targets, &chunk).await?;
            }
        }
        if let (Some(first), Some(last)) = (spans.bp_first, spans.bp_last) {
            for chunk in chunks(&bp_dates_touched(zone, first, last)) {
                days += write_bp_days(&mut tx, patient_id, zone, &chunk).await?;
            }
        }
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
    ) -> Result<Option<(Tz, GlucoseTargets)>, StorageError> {
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
        Ok(Some((zone_of(&zone)?, targets)))
    }
}

fn chunks(dates: &[NaiveDate]) -> Vec<BTreeSet<NaiveDate>> {
    dates
        .chunks(REBUILD_CHUNK_DAYS as usize)
        .map(|c| c.iter().copied().collect())
        .collect()
}

/// Recomputes the glucose days `dates` from the raw readings and stores them (days left with
/// nothing are deleted). Returns how many days were computed.
async fn write_glucose_days(
    conn: &mut PgConnection,
    patient_id: Uuid,
    zone: Tz,
    targets: &GlucoseTargets,
    dates: &BTreeSet<NaiveDate>,
) -> Result<usize, StorageError> {
    if dates.is_empty() {
        return Ok(0);
    }
    let ranges = glucose_ranges(0, patient_id, zone, dates);
    let raw: Vec<RawRange> = ranges.iter().map(|(r, _)| *r).collect();
    let loaded = load_glucose_points(&mut *conn, &raw).await?;
    let mut days: Vec<GlucoseDay> = Vec::with_capacity(dates.len());
    for ((_, (first, last)), points) in ranges.iter().zip(&loaded) {
        for date in first.iter_days().take_while(|d| d <= last) {
            let bounds = DayBounds::of(zone, date);
            days.push(glucose_day(
                &bounds,
                glucose_points_near(points, &bounds),
                None,
                targets,
            ));
        }
    }
    let (kept, empty): (Vec<&GlucoseDay>, Vec<&GlucoseDay>) =
        days.iter().partition(|d| !d.totals.is_empty());
    let empty_dates: Vec<NaiveDate> = empty.iter().map(|d| d.date).collect();
    sqlx::query("DELETE FROM glucose_days WHERE patient_id = $1 AND day = ANY($2)")
        .bind(patient_id)
        .bind(&empty_dates)
        .execute(&mut *conn)
        .await?;
    if !kept.is_empty() {
        upsert_glucose_days(conn, patient_id, zone, &kept).await?;
    }
    if let Some(first) = dates.first() {
        refresh_running::<GlucoseDays>(conn, patient_id, *first).await?;
    }
    Ok(days.len())
}

async fn upsert_glucose_days(
    conn: &mut PgConnection,
    patient_id: Uuid,
    zone: Tz,
    days: &[&GlucoseDay],
) -> Result<(), StorageError> {
    let int = |f: fn(&GlucoseDay) -> i64| -> Result<Vec<i32>, StorageError> {
        days.iter()
            .map(|d| {
                i32::try_from(f(d)).map_err(|_| StorageError::Corrupt {
                    what: "glucose day count",
                    value: f(d).to_string(),
                })
            })
            .collect()
    };
    let big = |f: fn(&GlucoseDay) -> i64| -> Vec<i64> { days.iter().map(|d| f(d)).collect() };
    let sum_sq: Vec<i64> = days
        .iter()
        .map(|d| {
            i64::try_from(d.totals.sum_sq_milli).map_err(|_| StorageError::Corrupt {
                what: "glucose day sum of squares",
                value: d.totals.sum_sq_milli.to_string(),
            })
        })
        .collect::<Result<_, _>>()?;
    sqlx::query(
        "INSERT INTO glucose_days (patient_id, time_zone, day, readings, cgm_readings,
             meter_readings, lab_readings, cgm_slots, sum_milli, sum_sq_milli, very_low_us,
             low_us, in_range_us, high_us, very_high_us, below_target_us, in_target_us,
             above_target_us, latest_at, latest_mg_dl, running)
         SELECT $1, $2, u.*, ''::bytea FROM UNNEST($3::date[], $4::int4[], $5::int4[], $6::int4[],
             $7::int4[], $8::int4[], $9::int8[], $10::int8[], $11::int8[], $12::int8[],
             $13::int8[], $14::int8[], $15::int8[], $16::int8[], $17::int8[], $18::int8[],
             $19::timestamptz[], $20::float8[]) AS u
         ON CONFLICT (patient_id, day) DO UPDATE SET time_zone = excluded.time_zone,
             readings = excluded.readings, cgm_readings = excluded.cgm_readings,
             meter_readings = excluded.meter_readings, lab_readings = excluded.lab_readings,
             cgm_slots = excluded.cgm_slots, sum_milli = excluded.sum_milli,
             sum_sq_milli = excluded.sum_sq_milli, very_low_us = excluded.very_low_us,
             low_us = excluded.low_us, in_range_us = excluded.in_range_us,
             high_us = excluded.high_us, very_high_us = excluded.very_high_us,
             below_target_us = excluded.below_target_us, in_target_us = excluded.in_target_us,
             above_target_us = excluded.above_target_us, latest_at = excluded.latest_at,
             latest_mg_dl = excluded.latest_mg_dl, computed_at = now()",
    )
    .bind(patient_id)
    .bind(zone.name())
    .bind(days.iter().map(|d| d.date).collect::<Vec<_>>())
    .bind(int(|d| d.totals.readings)?)
    .bind(int(|d| d.totals.cgm_readings)?)
    .bind(int(|d| d.totals.meter_readings)?)
    .bind(int(|d| d.totals.lab_readings)?)
    .bind(int(|d| d.totals.cgm_slots)?)
    .bind(big(|d| d.totals.sum_milli))
    .bind(sum_sq)
    .bind(big(|d| d.totals.band_us[0]))
    .bind(big(|d| d.totals.band_us[1]))
    .bind(big(|d| d.totals.band_us[2]))
    .bind(big(|d| d.totals.band_us[3]))
    .bind(big(|d| d.totals.band_us[4]))
    .bind(big(|d| d.totals.target_us[0]))
    .bind(big(|d| d.totals.target_us[1]))
    .bind(big(|d| d.totals.target_us[2]))
    .bind(
        days.iter()
            .map(|d| d.latest().map(|l| l.0))
            .collect::<Vec<_>>(),
    )
    .bind(
        days.iter()
            .map(|d| d.latest().map(|l| l.1))
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO glucose_day_samples (patient_id, day, samples)
         SELECT $1, u.* FROM UNNEST($2::date[], $3::bytea[]) AS u
         ON CONFLICT (patient_id, day) DO UPDATE SET samples = excluded.samples",
    )
    .bind(patient_id)
    .bind(days.iter().map(|d| d.date).collect::<Vec<_>>())
    .bind(
        days.iter()
            .map(|d| samples::encode(&d.samples))
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Recomputes the blood-pressure days `dates` and stores them; returns how many.
async fn write_bp_days(
    conn: &mut PgConnection,
    patient_id: Uuid,
    zone: Tz,
    dates: &BTreeSet<NaiveDate>,
) -> Result<usize, StorageError> {
    if dates.is_empty() {
        return Ok(0);
    }
    let ranges = bp_ranges(0, patient_id, zone, dates);
    let raw: Vec<RawRange> = ranges.iter().map(|(r, _)| *r).collect();
    let loaded = load_bp_points(&mut *conn, &raw).await?;
    let mut days: Vec<BpDay> = Vec::with_capacity(dates.len());
    for ((_, (first, last)), points) in ranges.iter().zip(&loaded) {
        for date in first.iter_days().take_while(|d| d <= last) {
            let bounds = DayBounds::of(zone, date);
            days.push(bp_day(&bounds, bp_points_in(points, &bounds), None, zone));
        }
    }
    let (kept, empty): (Vec<&BpDay>, Vec<&BpDay>) =
        days.iter().partition(|d| d.totals.readings > 0);
    sqlx::query("DELETE FROM blood_pressure_days WHERE patient_id = $1 AND day = ANY($2)")
        .bind(patient_id)
        .bind(empty.iter().map(|d| d.date).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    if kept.is_empty() {
        if let Some(first) = dates.first() {
            refresh_running::<BloodPressureDays>(conn, patient_id, *first).await?;
        }
        return Ok(days.len());
    }
    let int = |f: fn(&BpDay) -> i64| -> Result<Vec<i32>, StorageError> {
        kept.iter()
            .map(|d| {
                i32::try_from(f(d)).map_err(|_| StorageError::Corrupt {
                    what: "blood-pressure day count",
                    value: f(d).to_string(),
                })
            })
            .collect()
    };
    let big = |f: fn(&BpDay) -> i64| -> Vec<i64> { kept.iter().map(|d| f(d)).collect() };
    sqlx::query(
        "INSERT INTO blood_pressure_days (patient_id, time_zone, day, readings, sum_systolic,
             sum_sq_systolic, sum_diastolic, sum_sq_diastolic, morning_readings,
             morning_sum_systolic, morning_sum_diastolic, evening_readings,
             evening_sum_systolic, evening_sum_diastolic, at_or_above_130_80,
             at_or_above_135_85, pulse_readings, sum_pulse, sum_sq_pulse, latest_at,
             latest_systolic, latest_diastolic, running)
         SELECT $1, $2, u.*, ''::bytea FROM UNNEST($3::date[], $4::int4[], $5::int8[],
             $6::int8[], $7::int8[], $8::int8[], $9::int4[], $10::int8[], $11::int8[],
             $12::int4[], $13::int8[], $14::int8[], $15::int4[], $16::int4[], $17::int4[],
             $18::int8[], $19::int8[], $20::timestamptz[], $21::int2[], $22::int2[]) AS u
         ON CONFLICT (patient_id, day) DO UPDATE SET time_zone = excluded.time_zone,
             readings = excluded.readings, sum_systolic = excluded.sum_systolic,
             sum_sq_systolic = excluded.sum_sq_systolic, sum_diastolic = excluded.sum_diastolic,
             sum_sq_diastolic = excluded.sum_sq_diastolic,
             morning_readings = excluded.morning_readings,
             morning_sum_systolic = excluded.morning_sum_systolic,
             morning_sum_diastolic = excluded.morning_sum_diastolic,
             evening_readings = excluded.evening_readings,
             evening_sum_systolic = excluded.evening_sum_systolic,
             evening_sum_diastolic = excluded.evening_sum_diastolic,
             at_or_above_130_80 = excluded.at_or_above_130_80,
             at_or_above_135_85 = excluded.at_or_above_135_85,
             pulse_readings = excluded.pulse_readings, sum_pulse = excluded.sum_pulse,
             sum_sq_pulse = excluded.sum_sq_pulse, latest_at = excluded.latest_at,
             latest_systolic = excluded.latest_systolic,
             latest_diastolic = excluded.latest_diastolic, computed_at = now()",
    )
    .bind(patient_id)
    .bind(zone.name())
    .bind(kept.iter().map(|d| d.date).collect::<Vec<_>>())
    .bind(int(|d| d.totals.readings)?)
    .bind(big(|d| d.totals.sum_systolic))
    .bind(big(|d| d.totals.sum_sq_systolic))
    .bind(big(|d| d.totals.sum_diastolic))
    .bind(big(|d| d.totals.sum_sq_diastolic))
    .bind(int(|d| d.totals.morning.readings)?)
    .bind(big(|d| d.totals.morning.sum_systolic))
    .bind(big(|d| d.totals.morning.sum_diastolic))
    .bind(int(|d| d.totals.evening.readings)?)
    .bind(big(|d| d.totals.evening.sum_systolic))
    .bind(big(|d| d.totals.evening.sum_diastolic))
    .bind(int(|d| d.totals.at_or_above_130_80)?)
    .bind(int(|d| d.totals.at_or_above_135_85)?)
    .bind(int(|d| d.totals.pulse_readings)?)
    .bind(big(|d| d.totals.sum_pulse))
    .bind(big(|d| d.totals.sum_sq_pulse))
    .bind(
        kept.iter()
            .map(|d| d.latest.map(|l| l.0))
            .collect::<Vec<_>>(),
    )
    .bind(
        kept.iter()
            .map(|d| d.latest.map(|l| pressure(l.1)))
            .collect::<Vec<_>>(),
    )
    .bind(
        kept.iter()
            .map(|d| d.latest.map(|l| pressure(l.2)))
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await?;
    if let Some(first) = dates.first() {
        refresh_running::<BloodPressureDays>(conn, patient_id, *first).await?;
    }
    Ok(days.len())
}

/// Validated pressures lie within 20–300 mm[Hg].
fn pressure(value: i64) -> i16 {
    i16::try_from(value).unwrap_or(i16::MAX)
}

/// A day rollup table whose rows also carry the running totals up to and including the day
/// (`glucose_days`, `blood_pressure_days`): what differs between the two for
/// [`refresh_running`].
trait RunningDays {
    const TABLE: &'static str;
    const TOTALS_COLUMNS: &'static str;
    type Row: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin;
    type Running: Default;
    fn day(row: &Self::Row) -> NaiveDate;
    fn add_day(running: &mut Self::Running, row: &Self::Row);
    fn encode(running: &Self::Running) -> Vec<u8>;
    fn decode(bytes: &[u8]) -> Result<Self::Running, CorruptRunning>;
}

struct GlucoseDays;

impl RunningDays for GlucoseDays {
    const TABLE: &'static str = "glucose_days";
    const TOTALS_COLUMNS: &'static str = GLUCOSE_TOTALS_COLUMNS;
    type Row = GlucoseTotalsRow;
    type Running = GlucoseRunning;
    fn day(row: &GlucoseTotalsRow) -> NaiveDate {
        row.day
    }
    fn add_day(running: &mut GlucoseRunning, row: &GlucoseTotalsRow) {
        running.add_day(&row.totals(), row.latest());
    }
    fn encode(running: &GlucoseRunning) -> Vec<u8> {
        running.encode()
    }
    fn decode(bytes: &[u8]) -> Result<GlucoseRunning, CorruptRunning> {
        GlucoseRunning::decode(bytes)
    }
}

struct BloodPressureDays;

impl RunningDays for BloodPressureDays {
    const TABLE: &'static str = "blood_pressure_days";
    const TOTALS_COLUMNS: &'static str = BP_TOTALS_COLUMNS;
    type Row = BpTotalsRow;
    type Running = BpRunning;
    fn day(row: &BpTotalsRow) -> NaiveDate {
        row.day
    }
    fn add_day(running: &mut BpRunning, row: &BpTotalsRow) {
        running.add_day(&row.totals(), row.latest());
    }
    fn encode(running: &BpRunning) -> Vec<u8> {
        running.encode()
    }
    fn decode(bytes: &[u8]) -> Result<BpRunning, CorruptRunning> {
        BpRunning::decode(bytes)
    }
}

/// Rewrites the running totals of the patient's days from `from` on: the totals of the last
/// day before it, plus each day in date order.
async fn refresh_running<D: RunningDays>(
    conn: &mut PgConnection,
    patient_id: Uuid,
    from: NaiveDate,
) -> Result<(), StorageError> {
    let table = D::TABLE;
    let base: Option<Vec<u8>> = sqlx::query_scalar(&format!(
        "SELECT running FROM {table} WHERE patient_id = $1 AND day < $2
         ORDER BY day DESC LIMIT 1"
    ))
    .bind(patient_id)
    .bind(from)
    .fetch_optional(&mut *conn)
    .await?;
    let mut running = base
        .map(|b| D::decode(&b))
        .transpose()
        .map_err(corrupt_running)?
        .unwrap_or_default();
    let rows: Vec<D::Row> = sqlx::query_as(&format!(
        "SELECT {columns} FROM {table}
         WHERE patient_id = $1 AND day >= $2 ORDER BY day",
        columns = D::TOTALS_COLUMNS
    ))
    .bind(patient_id)
    .bind(from)
    .fetch_all(&mut *conn)
    .await?;
    let mut encoded = Vec::with_capacity(rows.len());
    for row in &rows {
        D::add_day(&mut running, row);
        encoded.push(D::encode(&running));
    }
    sqlx::query(&format!(
        "UPDATE {table} d SET running = u.running
         FROM UNNEST($2::date[], $3::bytea[]) AS u (day, running)
         WHERE d.patient_id = $1 AND d.day = u.day"
    ))
    .bind(patient_id)
    .bind(rows.iter().map(D::day).collect::<Vec<_>>())
    .bind(encoded)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

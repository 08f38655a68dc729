//! What trends need of each kind of reading: its day rollups, the readings a day is computed
//! from, how a stored day reads back, and its running totals. The reads, the panel and the
//! rollup worker are written once over [`TrendKind`]; glucose and blood pressure are its two
//! implementations.

use super::{PanelPatient, PanelSeries, TrendSubject, max_cap, source_of};
use crate::StorageError;
use crate::readings::{BloodPressure, Glucose, ReadingSeries};
use chronicle_domain::trends::blood_pressure::SessionTotals;
use chronicle_domain::trends::calendar::DayBounds;
use chronicle_domain::trends::running::{CorruptRunning, LatestGlucose};
use chronicle_domain::trends::{
    BpDay, BpPoint, BpRunning, BpTotals, GlucoseDay, GlucosePoint, GlucoseRunning, GlucoseTotals,
    TrendWindow, bp_day, glucose_day, samples,
};
use chronicle_domain::zone::Tz;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use std::future::Future;
use std::ops::{AddAssign, SubAssign};
use uuid::Uuid;

/// The trend side of a kind of reading.
pub(crate) trait TrendKind: ReadingSeries {
    /// The day rollups, one row per patient-day with the running totals up to it.
    const DAYS_TABLE: &'static str;
    /// The totals columns of a stored day, as [`Self::TotalsRow`] reads them.
    const TOTALS_COLUMNS: &'static str;
    /// Selects a patient's stored days (`$1` the patient, `$2`..`$3` the dates, in date
    /// order): the totals columns, `time_zone`, and `samples` (NULL where the kind keeps none).
    const STORED_DAYS: &'static str;
    /// The reading columns a day is computed from ([`Self::PointRow`]).
    const POINT_COLUMNS: &'static str;
    /// How refusals name the kind's trends.
    const TRENDS_NAME: &'static str;

    type Point: Send + Sync;
    type PointRow: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin;
    type Totals: Default
        + Clone
        + Send
        + Sync
        + for<'t> AddAssign<&'t Self::Totals>
        + for<'t> SubAssign<&'t Self::Totals>;
    type TotalsRow: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin;
    type Day: Send + Sync;
    type Running: Default;
    /// The latest reading a panel shows.
    type Latest: Copy + Send;

    /// How far beyond a day's bounds readings still count for it.
    fn reach() -> Duration;
    fn point(row: Self::PointRow) -> Result<Self::Point, StorageError>;
    /// The readings of `points` (in time order) that a day depends on.
    fn points_of_day<'p>(points: &'p [Self::Point], day: &DayBounds) -> &'p [Self::Point];
    /// Computes a day from its readings, ignoring those before `floor`.
    fn compute_day(
        day: &DayBounds,
        points: &[Self::Point],
        floor: Option<DateTime<Utc>>,
        subject: &TrendSubject,
    ) -> Self::Day;
    fn empty_day(date: NaiveDate) -> Self::Day;
    fn day_date(day: &Self::Day) -> NaiveDate;
    fn day_totals(day: &Self::Day) -> &Self::Totals;
    /// A day with nothing to store.
    fn is_empty(totals: &Self::Totals) -> bool;
    /// Whether a grant's `data_since` cuts into a day, so that its stored totals cannot serve.
    fn clipped(window: &TrendWindow, day: &DayBounds) -> bool;

    fn row_day(row: &Self::TotalsRow) -> NaiveDate;
    fn row_totals(row: &Self::TotalsRow) -> Self::Totals;
    /// A stored day as [`Self::STORED_DAYS`] reads it; `None` when it lacks what a trend
    /// needs (then it is computed from the readings).
    fn stored_day(
        row: &Self::TotalsRow,
        samples: Option<&[u8]>,
    ) -> Result<Option<Self::Day>, StorageError>;

    fn add_day(running: &mut Self::Running, row: &Self::TotalsRow);
    fn encode(running: &Self::Running) -> Vec<u8>;
    fn decode(bytes: &[u8]) -> Result<Self::Running, CorruptRunning>;
    fn running_totals(running: &Self::Running) -> &Self::Totals;
    fn running_latest(running: &Self::Running) -> Option<Self::Latest>;
    /// A reading as a panel's latest.
    fn latest_of(point: &Self::Point) -> Self::Latest;
    fn latest_at(latest: &Self::Latest) -> DateTime<Utc>;

    /// The kind's series on a panel row.
    fn panel(patient: &PanelPatient) -> Option<&PanelSeries<Self::Totals, Self::Latest>>;
    fn panel_mut(
        patient: &mut PanelPatient,
    ) -> Option<&mut PanelSeries<Self::Totals, Self::Latest>>;

    /// Writes computed days (none of them empty, of any number of patients, each patient-day
    /// once) into [`Self::DAYS_TABLE`] in one statement, replacing what was stored for those
    /// dates; the running totals are left to the caller.
    fn upsert_days(
        conn: &mut PgConnection,
        days: &[PatientDay<'_, Self::Day>],
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
}

/// A computed day of one patient, to store.
pub(crate) struct PatientDay<'d, D> {
    pub patient_id: Uuid,
    pub zone: Tz,
    pub day: &'d D,
    /// The patient's running totals through this day, when known. Without them the day is
    /// stored with none, and the caller refreshes them in the same transaction
    /// (`refresh_running`).
    pub running: Option<&'d [u8]>,
}

/// The columns an upsert binds for `rows`: patients, zones, days and running totals (empty
/// when not known).
type OwnerColumns<'d, D> = (Vec<Uuid>, Vec<&'static str>, Vec<&'d D>, Vec<&'d [u8]>);

/// The patients, zones, days and running totals of `rows`, as the columns an upsert binds.
fn owners<'d, D>(rows: &[PatientDay<'d, D>]) -> OwnerColumns<'d, D> {
    (
        rows.iter().map(|r| r.patient_id).collect(),
        rows.iter().map(|r| r.zone.name()).collect(),
        rows.iter().map(|r| r.day).collect(),
        rows.iter().map(|r| r.running.unwrap_or_default()).collect(),
    )
}

/// The columns of `days` selected by `f`, as 32-bit counts (what the rollup tables store).
fn counts<D>(days: &[&D], what: &'static str, f: fn(&D) -> i64) -> Result<Vec<i32>, StorageError> {
    days.iter()
        .map(|d| i32::try_from(f(d)).map_err(|_| StorageError::corrupt(what, f(d))))
        .collect()
}

/// The columns of `days` selected by `f`, as 64-bit sums.
fn sums<D>(days: &[&D], f: fn(&D) -> i64) -> Vec<i64> {
    days.iter().map(|d| f(d)).collect()
}

/// Validated pressures lie within 20–300 mm[Hg].
fn pressure(value: i64) -> i16 {
    i16::try_from(value).unwrap_or(i16::MAX)
}

/// A glucose reading as a day is computed from it.
#[derive(sqlx::FromRow)]
pub(crate) struct GlucosePointRow {
    measured_at: DateTime<Utc>,
    value_mg_dl: f64,
    source: String,
}

/// A stored glucose day's totals and latest reading.
#[derive(sqlx::FromRow)]
pub(crate) struct GlucoseTotalsRow {
    day: NaiveDate,
    readings: i32,
    cgm_readings: i32,
    meter_readings: i32,
    lab_readings: i32,
    cgm_slots: i32,
    sum_milli: i64,
    sum_sq_milli: i64,
    very_low_us: i64,
    low_us: i64,
    in_range_us: i64,
    high_us: i64,
    very_high_us: i64,
    below_target_us: i64,
    in_target_us: i64,
    above_target_us: i64,
    latest_at: Option<DateTime<Utc>>,
    latest_mg_dl: Option<f64>,
}

impl TrendKind for Glucose {
    const DAYS_TABLE: &'static str = "glucose_days";
    const TOTALS_COLUMNS: &'static str = "day, readings, cgm_readings, meter_readings, \
         lab_readings, cgm_slots, sum_milli, sum_sq_milli, very_low_us, low_us, in_range_us, \
         high_us, very_high_us, below_target_us, in_target_us, above_target_us, latest_at, \
         latest_mg_dl";
    const STORED_DAYS: &'static str = "SELECT d.*, s.samples FROM glucose_days d
         LEFT JOIN glucose_day_samples s ON s.patient_id = d.patient_id AND s.day = d.day
         WHERE d.patient_id = $1 AND d.day >= $2 AND d.day <= $3 ORDER BY d.day";
    const POINT_COLUMNS: &'static str = "measured_at, value_mg_dl, source";
    const TRENDS_NAME: &'static str = "glucose trends";

    type Point = GlucosePoint;
    type PointRow = GlucosePointRow;
    type Totals = GlucoseTotals;
    type TotalsRow = GlucoseTotalsRow;
    type Day = GlucoseDay;
    type Running = GlucoseRunning;
    type Latest = LatestGlucose;

    /// A reading stands for the time until the next one, up to a cap: readings a cap before
    /// a day reach into it, and one a cap after it ends the day's last duration.
    fn reach() -> Duration {
        max_cap()
    }

    fn point(row: GlucosePointRow) -> Result<GlucosePoint, StorageError> {
        Ok(GlucosePoint {
            at: row.measured_at,
            mg_dl: row.value_mg_dl,
            source: source_of(&row.source)?,
        })
    }

    fn points_of_day<'p>(points: &'p [GlucosePoint], day: &DayBounds) -> &'p [GlucosePoint] {
        let from = day.start - max_cap();
        let to = day.end + max_cap();
        let lo = points.partition_point(|p| p.at < from);
        let hi = points.partition_point(|p| p.at <= to);
        &points[lo..hi.max(lo)]
    }

    fn compute_day(
        day: &DayBounds,
        points: &[GlucosePoint],
        floor: Option<DateTime<Utc>>,
        subject: &TrendSubject,
    ) -> GlucoseDay {
        glucose_day(day, points, floor, &subject.targets)
    }

    fn empty_day(date: NaiveDate) -> GlucoseDay {
        GlucoseDay::empty(date)
    }

    fn day_date(day: &GlucoseDay) -> NaiveDate {
        day.date
    }

    fn day_totals(day: &GlucoseDay) -> &GlucoseTotals {
        &day.totals
    }

    fn is_empty(totals: &GlucoseTotals) -> bool {
        totals.is_empty()
    }

    fn clipped(window: &TrendWindow, day: &DayBounds) -> bool {
        window.clips(day)
    }

    fn row_day(row: &GlucoseTotalsRow) -> NaiveDate {
        row.day
    }

    fn row_totals(row: &GlucoseTotalsRow) -> GlucoseTotals {
        GlucoseTotals {
            readings: i64::from(row.readings),
            cgm_readings: i64::from(row.cgm_readings),
            meter_readings: i64::from(row.meter_readings),
            lab_readings: i64::from(row.lab_readings),
            cgm_slots: i64::from(row.cgm_slots),
            days_with_data: i64::from(row.readings > 0),
            days_with_cgm: i64::from(row.cgm_readings > 0),
            sum_milli: row.sum_milli,
            sum_sq_milli: i128::from(row.sum_sq_milli),
            band_us: [
                row.very_low_us,
                row.low_us,
                row.in_range_us,
                row.high_us,
                row.very_high_us,
            ],
            target_us: [row.below_target_us, row.in_target_us, row.above_target_us],
        }
    }

    /// A glucose day serves a trend only with its samples (the AGP and episodes need them).
    fn stored_day(
        row: &GlucoseTotalsRow,
        samples: Option<&[u8]>,
    ) -> Result<Option<GlucoseDay>, StorageError> {
        let Some(bytes) = samples else {
            return Ok(None);
        };
        let samples =
            samples::decode(bytes).map_err(|e| StorageError::corrupt("glucose day samples", e))?;
        Ok(Some(GlucoseDay {
            date: row.day,
            totals: Self::row_totals(row),
            samples,
        }))
    }

    fn add_day(running: &mut GlucoseRunning, row: &GlucoseTotalsRow) {
        running.add_day(&Self::row_totals(row), row.latest_at.zip(row.latest_mg_dl));
    }

    fn encode(running: &GlucoseRunning) -> Vec<u8> {
        running.encode()
    }

    fn decode(bytes: &[u8]) -> Result<GlucoseRunning, CorruptRunning> {
        GlucoseRunning::decode(bytes)
    }

    fn running_totals(running: &GlucoseRunning) -> &GlucoseTotals {
        &running.totals
    }

    fn running_latest(running: &GlucoseRunning) -> Option<LatestGlucose> {
        running.latest
    }

    fn latest_of(point: &GlucosePoint) -> LatestGlucose {
        (point.at, point.mg_dl)
    }

    fn latest_at(latest: &LatestGlucose) -> DateTime<Utc> {
        latest.0
    }

    fn panel(patient: &PanelPatient) -> Option<&PanelSeries<GlucoseTotals, LatestGlucose>> {
        patient.glucose.as_ref()
    }

    fn panel_mut(
        patient: &mut PanelPatient,
    ) -> Option<&mut PanelSeries<GlucoseTotals, LatestGlucose>> {
        patient.glucose.as_mut()
    }

    async fn upsert_days(
        conn: &mut PgConnection,
        rows: &[PatientDay<'_, GlucoseDay>],
    ) -> Result<(), StorageError> {
        const COUNT: &str = "glucose day count";
        let (patients, zones, days, runnings) = owners(rows);
        let days = days.as_slice();
        let sum_sq: Vec<i64> = days
            .iter()
            .map(|d| {
                i64::try_from(d.totals.sum_sq_milli).map_err(|_| {
                    StorageError::corrupt("glucose day sum of squares", d.totals.sum_sq_milli)
                })
            })
            .collect::<Result<_, _>>()?;
        sqlx::query(
            "INSERT INTO glucose_days (patient_id, time_zone, day, readings, cgm_readings,
                 meter_readings, lab_readings, cgm_slots, sum_milli, sum_sq_milli, very_low_us,
                 low_us, in_range_us, high_us, very_high_us, below_target_us, in_target_us,
                 above_target_us, latest_at, latest_mg_dl, running)
             SELECT u.* FROM UNNEST($1::uuid[], $2::text[], $3::date[], $4::int4[],
                 $5::int4[], $6::int4[], $7::int4[], $8::int4[], $9::int8[], $10::int8[], $11::int8[],
                 $12::int8[], $13::int8[], $14::int8[], $15::int8[], $16::int8[], $17::int8[],
                 $18::int8[], $19::timestamptz[], $20::float8[], $21::bytea[]) AS u
             ON CONFLICT (patient_id, day) DO UPDATE SET time_zone = excluded.time_zone,
                 readings = excluded.readings, cgm_readings = excluded.cgm_readings,
                 meter_readings = excluded.meter_readings, lab_readings = excluded.lab_readings,
                 cgm_slots = excluded.cgm_slots, sum_milli = excluded.sum_milli,
                 sum_sq_milli = excluded.sum_sq_milli, very_low_us = excluded.very_low_us,
                 low_us = excluded.low_us, in_range_us = excluded.in_range_us,
                 high_us = excluded.high_us, very_high_us = excluded.very_high_us,
                 below_target_us = excluded.below_target_us,
                 in_target_us = excluded.in_target_us,
                 above_target_us = excluded.above_target_us, latest_at = excluded.latest_at,
                 latest_mg_dl = excluded.latest_mg_dl, running = excluded.running,
                 computed_at = now()",
        )
        .bind(&patients)
        .bind(&zones)
        .bind(days.iter().map(|d| d.date).collect::<Vec<_>>())
        .bind(counts(days, COUNT, |d| d.totals.readings)?)
        .bind(counts(days, COUNT, |d| d.totals.cgm_readings)?)
        .bind(counts(days, COUNT, |d| d.totals.meter_readings)?)
        .bind(counts(days, COUNT, |d| d.totals.lab_readings)?)
        .bind(counts(days, COUNT, |d| d.totals.cgm_slots)?)
        .bind(sums(days, |d| d.totals.sum_milli))
        .bind(sum_sq)
        .bind(sums(days, |d| d.totals.band_us[0]))
        .bind(sums(days, |d| d.totals.band_us[1]))
        .bind(sums(days, |d| d.totals.band_us[2]))
        .bind(sums(days, |d| d.totals.band_us[3]))
        .bind(sums(days, |d| d.totals.band_us[4]))
        .bind(sums(days, |d| d.totals.target_us[0]))
        .bind(sums(days, |d| d.totals.target_us[1]))
        .bind(sums(days, |d| d.totals.target_us[2]))
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
        .bind(&runnings)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO glucose_day_samples (patient_id, day, samples)
             SELECT u.* FROM UNNEST($1::uuid[], $2::date[], $3::bytea[]) AS u
             ON CONFLICT (patient_id, day) DO UPDATE SET samples = excluded.samples",
        )
        .bind(&patients)
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
}

/// A blood-pressure reading as a day is computed from it.
#[derive(sqlx::FromRow)]
pub(crate) struct BpPointRow {
    measured_at: DateTime<Utc>,
    systolic: i16,
    diastolic: i16,
    pulse: Option<i16>,
}

/// A stored blood-pressure day's totals and latest reading.
#[derive(sqlx::FromRow)]
pub(crate) struct BpTotalsRow {
    day: NaiveDate,
    readings: i32,
    sum_systolic: i64,
    sum_sq_systolic: i64,
    sum_diastolic: i64,
    sum_sq_diastolic: i64,
    morning_readings: i32,
    morning_sum_systolic: i64,
    morning_sum_diastolic: i64,
    evening_readings: i32,
    evening_sum_systolic: i64,
    evening_sum_diastolic: i64,
    at_or_above_130_80: i32,
    at_or_above_135_85: i32,
    pulse_readings: i32,
    sum_pulse: i64,
    sum_sq_pulse: i64,
    latest_at: Option<DateTime<Utc>>,
    latest_systolic: Option<i16>,
    latest_diastolic: Option<i16>,
}

impl BpTotalsRow {
    fn latest(&self) -> Option<(DateTime<Utc>, i64, i64)> {
        match (self.latest_at, self.latest_systolic, self.latest_diastolic) {
            (Some(at), Some(s), Some(d)) => Some((at, i64::from(s), i64::from(d))),
            _ => None,
        }
    }
}

/// A panel's latest blood-pressure reading: when, systolic, diastolic.
pub type LatestPressure = (DateTime<Utc>, i16, i16);

impl TrendKind for BloodPressure {
    const DAYS_TABLE: &'static str = "blood_pressure_days";
    const TOTALS_COLUMNS: &'static str = "day, readings, sum_systolic, sum_sq_systolic, \
         sum_diastolic, sum_sq_diastolic, morning_readings, morning_sum_systolic, \
         morning_sum_diastolic, evening_readings, evening_sum_systolic, evening_sum_diastolic, \
         at_or_above_130_80, at_or_above_135_85, pulse_readings, sum_pulse, sum_sq_pulse, \
         latest_at, latest_systolic, latest_diastolic";
    const STORED_DAYS: &'static str = "SELECT *, NULL::bytea AS samples FROM blood_pressure_days
         WHERE patient_id = $1 AND day >= $2 AND day <= $3 ORDER BY day";
    const POINT_COLUMNS: &'static str = "measured_at, systolic, diastolic, pulse";
    const TRENDS_NAME: &'static str = "blood-pressure trends";

    type Point = BpPoint;
    type PointRow = BpPointRow;
    type Totals = BpTotals;
    type TotalsRow = BpTotalsRow;
    type Day = BpDay;
    type Running = BpRunning;
    type Latest = LatestPressure;

    /// A blood-pressure reading counts for the day it was taken on only.
    fn reach() -> Duration {
        Duration::zero()
    }

    fn point(row: BpPointRow) -> Result<BpPoint, StorageError> {
        Ok(BpPoint {
            at: row.measured_at,
            systolic: i64::from(row.systolic),
            diastolic: i64::from(row.diastolic),
            pulse: row.pulse.map(i64::from),
        })
    }

    fn points_of_day<'p>(points: &'p [BpPoint], day: &DayBounds) -> &'p [BpPoint] {
        let lo = points.partition_point(|p| p.at < day.start);
        let hi = points.partition_point(|p| p.at < day.end);
        &points[lo..hi.max(lo)]
    }

    fn compute_day(
        day: &DayBounds,
        points: &[BpPoint],
        floor: Option<DateTime<Utc>>,
        subject: &TrendSubject,
    ) -> BpDay {
        bp_day(day, points, floor, subject.time_zone)
    }

    fn empty_day(date: NaiveDate) -> BpDay {
        BpDay::empty(date)
    }

    fn day_date(day: &BpDay) -> NaiveDate {
        day.date
    }

    fn day_totals(day: &BpDay) -> &BpTotals {
        &day.totals
    }

    fn is_empty(totals: &BpTotals) -> bool {
        totals.readings == 0
    }

    /// A blood-pressure day depends on nothing outside itself: a floor cuts into it only
    /// when it falls after the day's start.
    fn clipped(window: &TrendWindow, day: &DayBounds) -> bool {
        window.floor.is_some_and(|f| f > day.start)
    }

    fn row_day(row: &BpTotalsRow) -> NaiveDate {
        row.day
    }

    fn row_totals(row: &BpTotalsRow) -> BpTotals {
        BpTotals {
            readings: i64::from(row.readings),
            days_with_data: i64::from(row.readings > 0),
            sum_systolic: row.sum_systolic,
            sum_sq_systolic: row.sum_sq_systolic,
            sum_diastolic: row.sum_diastolic,
            sum_sq_diastolic: row.sum_sq_diastolic,
            morning: SessionTotals {
                readings: i64::from(row.morning_readings),
                sum_systolic: row.morning_sum_systolic,
                sum_diastolic: row.morning_sum_diastolic,
            },
            evening: SessionTotals {
                readings: i64::from(row.evening_readings),
                sum_systolic: row.evening_sum_systolic,
                sum_diastolic: row.evening_sum_diastolic,
            },
            at_or_above_130_80: i64::from(row.at_or_above_130_80),
            at_or_above_135_85: i64::from(row.at_or_above_135_85),
            pulse_readings: i64::from(row.pulse_readings),
            sum_pulse: row.sum_pulse,
            sum_sq_pulse: row.sum_sq_pulse,
        }
    }

    fn stored_day(
        row: &BpTotalsRow,
        _samples: Option<&[u8]>,
    ) -> Result<Option<BpDay>, StorageError> {
        Ok(Some(BpDay {
            date: row.day,
            totals: Self::row_totals(row),
            latest: row.latest(),
        }))
    }

    fn add_day(running: &mut BpRunning, row: &BpTotalsRow) {
        running.add_day(&Self::row_totals(row), row.latest());
    }

    fn encode(running: &BpRunning) -> Vec<u8> {
        running.encode()
    }

    fn decode(bytes: &[u8]) -> Result<BpRunning, CorruptRunning> {
        BpRunning::decode(bytes)
    }

    fn running_totals(running: &BpRunning) -> &BpTotals {
        &running.totals
    }

    fn running_latest(running: &BpRunning) -> Option<LatestPressure> {
        running
            .latest
            .map(|(at, s, d)| (at, pressure(s), pressure(d)))
    }

    fn latest_of(point: &BpPoint) -> LatestPressure {
        (
            point.at,
            pressure(point.systolic),
            pressure(point.diastolic),
        )
    }

    fn latest_at(latest: &LatestPressure) -> DateTime<Utc> {
        latest.0
    }

    fn panel(patient: &PanelPatient) -> Option<&PanelSeries<BpTotals, LatestPressure>> {
        patient.blood_pressure.as_ref()
    }

    fn panel_mut(patient: &mut PanelPatient) -> Option<&mut PanelSeries<BpTotals, LatestPressure>> {
        patient.blood_pressure.as_mut()
    }

    async fn upsert_days(
        conn: &mut PgConnection,
        rows: &[PatientDay<'_, BpDay>],
    ) -> Result<(), StorageError> {
        const COUNT: &str = "blood-pressure day count";
        let (patients, zones, days, runnings) = owners(rows);
        let days = days.as_slice();
        sqlx::query(
            "INSERT INTO blood_pressure_days (patient_id, time_zone, day, readings,
                 sum_systolic, sum_sq_systolic, sum_diastolic, sum_sq_diastolic,
                 morning_readings, morning_sum_systolic, morning_sum_diastolic,
                 evening_readings, evening_sum_systolic, evening_sum_diastolic,
                 at_or_above_130_80, at_or_above_135_85, pulse_readings, sum_pulse,
                 sum_sq_pulse, latest_at, latest_systolic, latest_diastolic, running)
             SELECT u.* FROM UNNEST($1::uuid[], $2::text[], $3::date[], $4::int4[],
                 $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::int4[], $10::int8[], $11::int8[],
                 $12::int4[], $13::int8[], $14::int8[], $15::int4[], $16::int4[], $17::int4[],
                 $18::int8[], $19::int8[], $20::timestamptz[], $21::int2[], $22::int2[],
                 $23::bytea[]) AS u
             ON CONFLICT (patient_id, day) DO UPDATE SET time_zone = excluded.time_zone,
                 readings = excluded.readings, sum_systolic = excluded.sum_systolic,
                 sum_sq_systolic = excluded.sum_sq_systolic,
                 sum_diastolic = excluded.sum_diastolic,
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
                 latest_diastolic = excluded.latest_diastolic, running = excluded.running,
                 computed_at = now()",
        )
        .bind(&patients)
        .bind(&zones)
        .bind(days.iter().map(|d| d.date).collect::<Vec<_>>())
        .bind(counts(days, COUNT, |d| d.totals.readings)?)
        .bind(sums(days, |d| d.totals.sum_systolic))
        .bind(sums(days, |d| d.totals.sum_sq_systolic))
        .bind(sums(days, |d| d.totals.sum_diastolic))
        .bind(sums(days, |d| d.totals.sum_sq_diastolic))
        .bind(counts(days, COUNT, |d| d.totals.morning.readings)?)
        .bind(sums(days, |d| d.totals.morning.sum_systolic))
        .bind(sums(days, |d| d.totals.morning.sum_diastolic))
        .bind(counts(days, COUNT, |d| d.totals.evening.readings)?)
        .bind(sums(days, |d| d.totals.evening.sum_systolic))
        .bind(sums(days, |d| d.totals.evening.sum_diastolic))
        .bind(counts(days, COUNT, |d| d.totals.at_or_above_130_80)?)
        .bind(counts(days, COUNT, |d| d.totals.at_or_above_135_85)?)
        .bind(counts(days, COUNT, |d| d.totals.pulse_readings)?)
        .bind(sums(days, |d| d.totals.sum_pulse))
        .bind(sums(days, |d| d.totals.sum_sq_pulse))
        .bind(
            days.iter()
                .map(|d| d.latest.map(|l| l.0))
                .collect::<Vec<_>>(),
        )
        .bind(
            days.iter()
                .map(|d| d.latest.map(|l| pressure(l.1)))
                .collect::<Vec<_>>(),
        )
        .bind(
            days.iter()
                .map(|d| d.latest.map(|l| pressure(l.2)))
                .collect::<Vec<_>>(),
        )
        .bind(&runnings)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

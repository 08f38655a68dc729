//! Trend rollups and trend reads.
//!
//! The unit is one patient-day in the patient's zone (`chronicle_domain::trends`). The
//! "trends" follow-up consumer ([`Store::refresh_trends`]) recomputes, from the raw readings,
//! every day a newly stored batch touches — with the neighbouring day when a reading's duration
//! crosses midnight — into `glucose_days` (+ `glucose_day_samples`) and `blood_pressure_days`.
//! A zone or targets change queues a full rebuild of the patient (`trend_rebuilds`, filled by
//! triggers).
//!
//! Reads ([`Store::glucose_trend_days`], [`Store::blood_pressure_trend_days`],
//! [`Store::panel`]) run in one repeatable-read snapshot: days the queue still lists, days of a
//! patient awaiting a rebuild, and days a grant's `data_since` cuts into are computed from the
//! raw readings with the same function the worker uses; every other day comes from its rollup.
//! So an answer is exact whether or not the worker has caught up.

mod read;
mod rollup;

pub use read::{PanelBloodPressure, PanelGlucose, PanelPatient, TrendDays};
pub use rollup::RefreshReport;

use crate::StorageError;
use crate::gate::Permit;
use chronicle_domain::GlucoseSource;
use chronicle_domain::sharing::{Access, DataCategory};
use chronicle_domain::targets::GlucoseTargets;
use chronicle_domain::trends::blood_pressure::SessionTotals;
use chronicle_domain::trends::calendar::DayBounds;
use chronicle_domain::trends::{
    BpPoint, BpTotals, GlucosePoint, GlucoseTotals, MAX_DURATION_CAP_US,
};
use chronicle_domain::zone::{Tz, parse_time_zone};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use sqlx::PgConnection;
use std::collections::BTreeSet;
use uuid::Uuid;

/// The follow-up consumer name trends register with the ingest pipeline.
pub const TRENDS_CONSUMER: &str = "trends";

/// Where a trend's day figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaySource {
    /// Day rollups, with the raw readings for days not (yet) rolled up: the normal path.
    Rollups,
    /// The raw readings for every day: the baseline benchmarks and tests compare against.
    Raw,
}

/// What a trend needs to know about its patient.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendSubject {
    pub patient_id: Uuid,
    pub time_zone: Tz,
    pub targets: GlucoseTargets,
}

fn max_cap() -> Duration {
    Duration::microseconds(MAX_DURATION_CAP_US)
}

fn zone_of(name: &str) -> Result<Tz, StorageError> {
    parse_time_zone(name).map_err(|_| StorageError::Corrupt {
        what: "patient time zone",
        value: name.to_owned(),
    })
}

fn source_of(text: &str) -> Result<GlucoseSource, StorageError> {
    GlucoseSource::parse(text).ok_or_else(|| StorageError::Corrupt {
        what: "glucose source",
        value: text.to_owned(),
    })
}

/// Refuses a permit that does not cover trends of `category` (or serves de-identified reads,
/// which trends with true dates are not).
fn check_trend_permit(permit: &Permit, category: DataCategory) -> Result<(), StorageError> {
    let covers = permit.category() == category
        && matches!(permit.access(), Access::ViewTrends | Access::ViewReadings)
        && !permit.allowance().deidentified;
    if covers {
        Ok(())
    } else {
        Err(StorageError::NotPermitted(match category {
            DataCategory::BloodPressure => "blood-pressure trends",
            _ => "glucose trends",
        }))
    }
}

/// The runs of consecutive dates in `dates`.
fn runs(dates: &BTreeSet<NaiveDate>) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    for &d in dates {
        match out.last_mut() {
            Some((_, last)) if last.succ_opt() == Some(d) => *last = d,
            _ => out.push((d, d)),
        }
    }
    out
}

/// The readings a glucose day depends on: those within a cap of its bounds.
fn glucose_points_near<'a>(points: &'a [GlucosePoint], day: &DayBounds) -> &'a [GlucosePoint] {
    let from = day.start - max_cap();
    let to = day.end + max_cap();
    let lo = points.partition_point(|p| p.at < from);
    let hi = points.partition_point(|p| p.at <= to);
    &points[lo..hi.max(lo)]
}

fn bp_points_in<'a>(points: &'a [BpPoint], day: &DayBounds) -> &'a [BpPoint] {
    let lo = points.partition_point(|p| p.at < day.start);
    let hi = points.partition_point(|p| p.at < day.end);
    &points[lo..hi.max(lo)]
}

/// One time range of one patient's readings to load; `tag` says what it is for.
#[derive(Debug, Clone, Copy)]
struct RawRange {
    tag: i32,
    patient_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// Loads the glucose readings of every range (both ends included), each range's readings in
/// time order (ties by device), in one query.
async fn load_glucose_points(
    conn: &mut PgConnection,
    ranges: &[RawRange],
) -> Result<Vec<Vec<GlucosePoint>>, StorageError> {
    let mut out = vec![Vec::new(); ranges.len()];
    if ranges.is_empty() {
        return Ok(out);
    }
    let rows: Vec<(i32, DateTime<Utc>, f64, String)> = sqlx::query_as(
        "SELECT r.tag, g.measured_at, g.value_mg_dl, g.source
         FROM UNNEST($1::int4[], $2::uuid[], $3::timestamptz[], $4::timestamptz[])
             AS r (tag, patient_id, lo, hi)
         JOIN LATERAL (
             SELECT measured_at, value_mg_dl, source, device_id FROM glucose_readings
             WHERE patient_id = r.patient_id AND measured_at >= r.lo AND measured_at <= r.hi
         ) g ON true
         ORDER BY r.tag, g.measured_at, g.device_id",
    )
    .bind((0..ranges.len() as i32).collect::<Vec<i32>>())
    .bind(ranges.iter().map(|r| r.patient_id).collect::<Vec<_>>())
    .bind(ranges.iter().map(|r| r.from).collect::<Vec<_>>())
    .bind(ranges.iter().map(|r| r.to).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    for (index, at, mg_dl, source) in rows {
        out[index as usize].push(GlucosePoint {
            at,
            mg_dl,
            source: source_of(&source)?,
        });
    }
    Ok(out)
}

/// Loads the blood-pressure readings of every range (both ends included), in time order.
async fn load_bp_points(
    conn: &mut PgConnection,
    ranges: &[RawRange],
) -> Result<Vec<Vec<BpPoint>>, StorageError> {
    let mut out = vec![Vec::new(); ranges.len()];
    if ranges.is_empty() {
        return Ok(out);
    }
    type Row = (i32, DateTime<Utc>, i16, i16, Option<i16>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT r.tag, b.measured_at, b.systolic, b.diastolic, b.pulse
         FROM UNNEST($1::int4[], $2::uuid[], $3::timestamptz[], $4::timestamptz[])
             AS r (tag, patient_id, lo, hi)
         JOIN LATERAL (
             SELECT measured_at, systolic, diastolic, pulse, device_id
             FROM blood_pressure_readings
             WHERE patient_id = r.patient_id AND measured_at >= r.lo AND measured_at <= r.hi
         ) b ON true
         ORDER BY r.tag, b.measured_at, b.device_id",
    )
    .bind((0..ranges.len() as i32).collect::<Vec<i32>>())
    .bind(ranges.iter().map(|r| r.patient_id).collect::<Vec<_>>())
    .bind(ranges.iter().map(|r| r.from).collect::<Vec<_>>())
    .bind(ranges.iter().map(|r| r.to).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    for (index, at, systolic, diastolic, pulse) in rows {
        out[index as usize].push(BpPoint {
            at,
            systolic: i64::from(systolic),
            diastolic: i64::from(diastolic),
            pulse: pulse.map(i64::from),
        });
    }
    Ok(out)
}

/// Ranges loading the readings the glucose days in `dates` depend on, one per run of
/// consecutive dates (tagged with `tag`).
fn glucose_ranges(
    tag: i32,
    patient_id: Uuid,
    zone: Tz,
    dates: &BTreeSet<NaiveDate>,
) -> Vec<(RawRange, (NaiveDate, NaiveDate))> {
    runs(dates)
        .into_iter()
        .map(|(first, last)| {
            let range = RawRange {
                tag,
                patient_id,
                from: DayBounds::of(zone, first).start - max_cap(),
                to: DayBounds::of(zone, last).end + max_cap(),
            };
            (range, (first, last))
        })
        .collect()
}

fn bp_ranges(
    tag: i32,
    patient_id: Uuid,
    zone: Tz,
    dates: &BTreeSet<NaiveDate>,
) -> Vec<(RawRange, (NaiveDate, NaiveDate))> {
    runs(dates)
        .into_iter()
        .map(|(first, last)| {
            let range = RawRange {
                tag,
                patient_id,
                from: DayBounds::of(zone, first).start,
                to: DayBounds::of(zone, last).end,
            };
            (range, (first, last))
        })
        .collect()
}

/// Rows and bytes of the reading tables and the trend rollups (for benchmarks and operators).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct TrendStorage {
    pub glucose_readings: i64,
    pub blood_pressure_readings: i64,
    pub glucose_days: i64,
    /// `pg_total_relation_size`: heap, indexes and TOAST.
    pub glucose_bytes: i64,
    pub blood_pressure_bytes: i64,
    pub rollup_bytes: i64,
}

impl crate::Store {
    /// How much trend work waits: follow-up items of the trends consumer plus patients
    /// awaiting a rebuild. Zero means the rollups have caught up.
    pub async fn pending_trend_work(&self) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM ingest_followups WHERE consumer = $1)
                  + (SELECT count(*) FROM trend_rebuilds)",
        )
        .bind(TRENDS_CONSUMER)
        .fetch_one(self.pool())
        .await?)
    }

    /// Counts and sizes of the reading tables and the rollups.
    pub async fn trend_storage(&self) -> Result<TrendStorage, StorageError> {
        let (hypertables,): (bool,) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')",
        )
        .fetch_one(self.pool())
        .await?;
        // A hypertable's rows live in its chunks (compressed ones apart): TimescaleDB's own
        // size function counts them all; plain tables are measured directly.
        let size = if hypertables {
            "hypertable_size"
        } else {
            "pg_total_relation_size"
        };
        Ok(sqlx::query_as(&format!(
            "SELECT (SELECT count(*) FROM glucose_samples) AS glucose_readings,
                    (SELECT count(*) FROM blood_pressure_samples) AS blood_pressure_readings,
                    (SELECT count(*) FROM glucose_days) AS glucose_days,
                    {size}('glucose_samples') AS glucose_bytes,
                    {size}('blood_pressure_samples') AS blood_pressure_bytes,
                    pg_total_relation_size('glucose_days')
                        + pg_total_relation_size('glucose_day_samples')
                        + pg_total_relation_size('blood_pressure_days') AS rollup_bytes"
        ))
        .fetch_one(self.pool())
        .await?)
    }
}

/// The totals columns of a stored glucose day (`glucose_days`).
pub(crate) const GLUCOSE_TOTALS_COLUMNS: &str = "day, readings, cgm_readings, meter_readings, \
     lab_readings, cgm_slots, sum_milli, sum_sq_milli, very_low_us, low_us, in_range_us, \
     high_us, very_high_us, below_target_us, in_target_us, above_target_us, latest_at, \
     latest_mg_dl";

/// A stored glucose day's totals and latest reading.
#[derive(sqlx::FromRow)]
struct GlucoseTotalsRow {
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

impl GlucoseTotalsRow {
    fn totals(&self) -> GlucoseTotals {
        GlucoseTotals {
            readings: i64::from(self.readings),
            cgm_readings: i64::from(self.cgm_readings),
            meter_readings: i64::from(self.meter_readings),
            lab_readings: i64::from(self.lab_readings),
            cgm_slots: i64::from(self.cgm_slots),
            days_with_data: i64::from(self.readings > 0),
            days_with_cgm: i64::from(self.cgm_readings > 0),
            sum_milli: self.sum_milli,
            sum_sq_milli: i128::from(self.sum_sq_milli),
            band_us: [
                self.very_low_us,
                self.low_us,
                self.in_range_us,
                self.high_us,
                self.very_high_us,
            ],
            target_us: [
                self.below_target_us,
                self.in_target_us,
                self.above_target_us,
            ],
        }
    }

    fn latest(&self) -> Option<(DateTime<Utc>, f64)> {
        self.latest_at.zip(self.latest_mg_dl)
    }
}

/// The totals columns of a stored blood-pressure day (`blood_pressure_days`).
pub(crate) const BP_TOTALS_COLUMNS: &str = "day, readings, sum_systolic, sum_sq_systolic, \
     sum_diastolic, sum_sq_diastolic, morning_readings, morning_sum_systolic, \
     morning_sum_diastolic, evening_readings, evening_sum_systolic, evening_sum_diastolic, \
     at_or_above_130_80, at_or_above_135_85, pulse_readings, sum_pulse, sum_sq_pulse, \
     latest_at, latest_systolic, latest_diastolic";

/// A stored blood-pressure day's totals and latest reading.
#[derive(sqlx::FromRow)]
struct BpTotalsRow {
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
    fn totals(&self) -> BpTotals {
        BpTotals {
            readings: i64::from(self.readings),
            days_with_data: i64::from(self.readings > 0),
            sum_systolic: self.sum_systolic,
            sum_sq_systolic: self.sum_sq_systolic,
            sum_diastolic: self.sum_diastolic,
            sum_sq_diastolic: self.sum_sq_diastolic,
            morning: SessionTotals {
                readings: i64::from(self.morning_readings),
                sum_systolic: self.morning_sum_systolic,
                sum_diastolic: self.morning_sum_diastolic,
            },
            evening: SessionTotals {
                readings: i64::from(self.evening_readings),
                sum_systolic: self.evening_sum_systolic,
                sum_diastolic: self.evening_sum_diastolic,
            },
            at_or_above_130_80: i64::from(self.at_or_above_130_80),
            at_or_above_135_85: i64::from(self.at_or_above_135_85),
            pulse_readings: i64::from(self.pulse_readings),
            sum_pulse: self.sum_pulse,
            sum_sq_pulse: self.sum_sq_pulse,
        }
    }

    fn latest(&self) -> Option<(DateTime<Utc>, i64, i64)> {
        match (self.latest_at, self.latest_systolic, self.latest_diastolic) {
            (Some(at), Some(s), Some(d)) => Some((at, i64::from(s), i64::from(d))),
            _ => None,
        }
    }
}

fn corrupt_running(e: chronicle_domain::trends::running::CorruptRunning) -> StorageError {
    StorageError::Corrupt {
        what: "running totals",
        value: e.to_string(),
    }
}

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

mod kind;
mod read;
mod rollup;

pub use kind::LatestPressure;
pub use read::{
    PanelBloodPressure, PanelGlucose, PanelPatient, PanelPeriod, PanelSeries, TrendDays,
};
pub use rollup::RefreshReport;

use kind::TrendKind;

use crate::StorageError;
use crate::gate::Permit;
use chronicle_domain::GlucoseSource;
use chronicle_domain::sharing::Access;
use chronicle_domain::targets::GlucoseTargets;
use chronicle_domain::trends::MAX_DURATION_CAP_US;
use chronicle_domain::trends::calendar::DayBounds;
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

/// Refuses a permit that does not cover trends of kind `K` (or serves de-identified reads,
/// which trends with true dates are not).
fn check_trend_permit<K: TrendKind>(permit: &Permit) -> Result<(), StorageError> {
    let covers = permit.category() == K::CATEGORY
        && matches!(permit.access(), Access::ViewTrends | Access::ViewReadings)
        && !permit.allowance().deidentified;
    if covers {
        Ok(())
    } else {
        Err(StorageError::NotPermitted(K::TRENDS_NAME))
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

/// One time range of one patient's readings to load; `tag` says what it is for.
#[derive(Debug, Clone, Copy)]
struct RawRange {
    tag: i32,
    patient_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// A row with the tag of the request it answers.
#[derive(sqlx::FromRow)]
struct Tagged<T> {
    tag: i32,
    #[sqlx(flatten)]
    row: T,
}

/// Loads the readings of kind `K` of every range (both ends included), each range's readings
/// in time order (ties by device), in one query.
async fn load_points<K: TrendKind>(
    conn: &mut PgConnection,
    ranges: &[RawRange],
) -> Result<Vec<Vec<K::Point>>, StorageError> {
    let mut out: Vec<Vec<K::Point>> = ranges.iter().map(|_| Vec::new()).collect();
    if ranges.is_empty() {
        return Ok(out);
    }
    let rows: Vec<Tagged<K::PointRow>> = sqlx::query_as(&format!(
        "SELECT r.tag, p.* FROM UNNEST($1::int4[], $2::uuid[], $3::timestamptz[],
             $4::timestamptz[]) AS r (tag, patient_id, lo, hi)
         JOIN LATERAL (
             SELECT {columns}, device_id FROM {view}
             WHERE patient_id = r.patient_id AND measured_at >= r.lo AND measured_at <= r.hi
             OFFSET 0 -- a fence, as in the alert engine's `glucose_since`
         ) p ON true
         ORDER BY r.tag, p.measured_at, p.device_id",
        columns = K::POINT_COLUMNS,
        view = K::READINGS_VIEW,
    ))
    .bind((0..ranges.len() as i32).collect::<Vec<i32>>())
    .bind(ranges.iter().map(|r| r.patient_id).collect::<Vec<_>>())
    .bind(ranges.iter().map(|r| r.from).collect::<Vec<_>>())
    .bind(ranges.iter().map(|r| r.to).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    for Tagged { tag, row } in rows {
        if let Some(points) = usize::try_from(tag).ok().and_then(|i| out.get_mut(i)) {
            points.push(K::point(row)?);
        }
    }
    Ok(out)
}

/// Ranges loading the readings of kind `K` that the days in `dates` depend on, one per run of
/// consecutive dates (tagged with `tag`).
fn ranges_of<K: TrendKind>(
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
                from: DayBounds::of(zone, first).start - K::reach(),
                to: DayBounds::of(zone, last).end + K::reach(),
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
            "SELECT (SELECT coalesce(sum(items), 0) FROM ingest_followup_batches
                     WHERE consumer = $1)::int8
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

fn corrupt_running(e: chronicle_domain::trends::running::CorruptRunning) -> StorageError {
    StorageError::Corrupt {
        what: "running totals",
        value: e.to_string(),
    }
}

//! Trend reads: one patient's days for a trend, and the panel's per-patient totals. Each read
//! runs in one repeatable-read snapshot, takes rollups where they are current and computes the
//! other days from the raw readings.

use super::rollup::{bp_dates_touched, glucose_dates_touched};
use super::{
    DaySource, RawRange, TRENDS_CONSUMER, TrendSubject, bp_points_in, bp_ranges,
    check_trend_permit, glucose_points_near, glucose_ranges, load_bp_points, load_glucose_points,
    zone_of,
};
use crate::{StorageError, Store};
use chronicle_domain::ReadingKind;
use chronicle_domain::sharing::{
    Access, AccessRequest, DataCategory, DenyReason, Permit, Principal, Purpose,
};
use chronicle_domain::trends::blood_pressure::SessionTotals;
use chronicle_domain::trends::calendar::{DayBounds, local_date};
use chronicle_domain::trends::{
    BpDay, BpTotals, GlucoseDay, GlucoseTotals, TrendWindow, bp_day, glucose_day, samples,
};
use chronicle_domain::zone::Tz;
use chrono::{DateTime, Days, NaiveDate, Utc};
use sqlx::{PgConnection, Postgres, Transaction};
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

/// Which local days a trend covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrendDays {
    /// The last `n` days, today included.
    Last(u32),
    /// From one date to another, both included.
    Between(NaiveDate, NaiveDate),
}

impl TrendDays {
    fn window(self, zone: Tz, floor: Option<DateTime<Utc>>, now: DateTime<Utc>) -> TrendWindow {
        match self {
            TrendDays::Last(n) => TrendWindow::ending_today(zone, n, floor, now),
            TrendDays::Between(first, last) => TrendWindow::new(zone, first, last, floor, now),
        }
    }
}

/// Days of a patient whose rollups cannot be used.
enum Pending {
    /// A rebuild is queued: every day.
    All,
    Dates(BTreeSet<NaiveDate>),
}

impl Pending {
    fn contains(&self, date: NaiveDate) -> bool {
        match self {
            Pending::All => true,
            Pending::Dates(dates) => dates.contains(&date),
        }
    }
}

/// The days of each patient the follow-up queue or a pending rebuild makes stale, for `kind`.
async fn pending(
    conn: &mut PgConnection,
    subjects: &[&TrendSubject],
    kind: ReadingKind,
) -> Result<HashMap<Uuid, Pending>, StorageError> {
    let ids: Vec<Uuid> = subjects.iter().map(|s| s.patient_id).collect();
    let zones: HashMap<Uuid, Tz> = subjects
        .iter()
        .map(|s| (s.patient_id, s.time_zone))
        .collect();
    let mut out: HashMap<Uuid, Pending> = HashMap::new();
    let rebuilding: Vec<Uuid> =
        sqlx::query_scalar("SELECT patient_id FROM trend_rebuilds WHERE patient_id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
    for id in rebuilding {
        out.insert(id, Pending::All);
    }
    let queued: Vec<(Uuid, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT patient_id, first_measured_at, last_measured_at FROM ingest_followups
         WHERE consumer = $1 AND kind = $2 AND patient_id = ANY($3)",
    )
    .bind(TRENDS_CONSUMER)
    .bind(kind.as_str())
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    for (id, first, last) in queued {
        let Some(zone) = zones.get(&id) else { continue };
        let dates = match kind {
            ReadingKind::Glucose => glucose_dates_touched(*zone, first, last),
            ReadingKind::BloodPressure => bp_dates_touched(*zone, first, last),
        };
        match out
            .entry(id)
            .or_insert_with(|| Pending::Dates(BTreeSet::new()))
        {
            Pending::All => {}
            Pending::Dates(set) => set.extend(dates),
        }
    }
    Ok(out)
}

/// A consistent, read-only view of the database for one read.
async fn snapshot(store: &Store) -> Result<Transaction<'static, Postgres>, StorageError> {
    let mut tx = store.pool().begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

async fn subjects(
    conn: &mut PgConnection,
    patient_ids: &[Uuid],
) -> Result<HashMap<Uuid, TrendSubject>, StorageError> {
    let rows: Vec<(Uuid, String, Option<serde_json::Value>)> = sqlx::query_as(
        "SELECT p.id, p.time_zone, t.glucose FROM patients p
         LEFT JOIN patient_targets t ON t.patient_id = p.id WHERE p.id = ANY($1)",
    )
    .bind(patient_ids)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(id, zone, targets)| {
            Ok((
                id,
                TrendSubject {
                    patient_id: id,
                    time_zone: zone_of(&zone)?,
                    targets: targets
                        .map(crate::targets::decode)
                        .transpose()?
                        .unwrap_or_default(),
                },
            ))
        })
        .collect()
}

/// Days of one patient to compute from the raw readings, ignoring readings before `floor`.
struct RawDays<'a> {
    subject: &'a TrendSubject,
    floor: Option<DateTime<Utc>>,
    dates: BTreeSet<NaiveDate>,
}

/// Computes from the raw readings the glucose days each request asks for.
async fn raw_glucose_days(
    conn: &mut PgConnection,
    wanted: &[RawDays<'_>],
) -> Result<Vec<Vec<GlucoseDay>>, StorageError> {
    let mut ranges = Vec::new();
    for (i, RawDays { subject, dates, .. }) in wanted.iter().enumerate() {
        ranges.extend(glucose_ranges(
            i as i32,
            subject.patient_id,
            subject.time_zone,
            dates,
        ));
    }
    let raw: Vec<RawRange> = ranges.iter().map(|(r, _)| *r).collect();
    let loaded = load_glucose_points(conn, &raw).await?;
    let mut out = vec![Vec::new(); wanted.len()];
    for ((range, (first, last)), points) in ranges.iter().zip(&loaded) {
        let RawDays { subject, floor, .. } = &wanted[range.tag as usize];
        for date in first.iter_days().take_while(|d| d <= last) {
            let bounds = DayBounds::of(subject.time_zone, date);
            out[range.tag as usize].push(glucose_day(
                &bounds,
                glucose_points_near(points, &bounds),
                *floor,
                &subject.targets,
            ));
        }
    }
    Ok(out)
}

async fn raw_bp_days(
    conn: &mut PgConnection,
    wanted: &[RawDays<'_>],
) -> Result<Vec<Vec<BpDay>>, StorageError> {
    let mut ranges = Vec::new();
    for (i, RawDays { subject, dates, .. }) in wanted.iter().enumerate() {
        ranges.extend(bp_ranges(
            i as i32,
            subject.patient_id,
            subject.time_zone,
            dates,
        ));
    }
    let raw: Vec<RawRange> = ranges.iter().map(|(r, _)| *r).collect();
    let loaded = load_bp_points(conn, &raw).await?;
    let mut out = vec![Vec::new(); wanted.len()];
    for ((range, (first, last)), points) in ranges.iter().zip(&loaded) {
        let RawDays { subject, floor, .. } = &wanted[range.tag as usize];
        for date in first.iter_days().take_while(|d| d <= last) {
            let bounds = DayBounds::of(subject.time_zone, date);
            out[range.tag as usize].push(bp_day(
                &bounds,
                bp_points_in(points, &bounds),
                *floor,
                subject.time_zone,
            ));
        }
    }
    Ok(out)
}

/// A stored glucose day.
#[derive(sqlx::FromRow)]
struct GlucoseDayRow {
    day: NaiveDate,
    time_zone: String,
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
    samples: Option<Vec<u8>>,
}

impl GlucoseDayRow {
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
}

#[derive(sqlx::FromRow)]
struct BpDayRow {
    day: NaiveDate,
    time_zone: String,
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
}

impl BpDayRow {
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
}

/// Parses a `numeric` sum sent as text (sums of bigints may exceed 64 bits in SQL).
fn parse_sum(text: Option<String>) -> Result<i128, StorageError> {
    text.map_or(Ok(0), |t| {
        t.parse().map_err(|_| StorageError::Corrupt {
            what: "rollup sum",
            value: t,
        })
    })
}

/// One patient on a panel, with what the caller may see of them.
#[derive(Debug, Clone)]
pub struct PanelPatient {
    pub patient_id: Uuid,
    pub display_name: String,
    pub subject: TrendSubject,
    /// `None` when the caller may not see the patient's glucose trends.
    pub glucose: Option<PanelGlucose>,
    /// `None` when the caller may not see the patient's blood-pressure trends.
    pub blood_pressure: Option<PanelBloodPressure>,
}

#[derive(Debug, Clone)]
pub struct PanelGlucose {
    pub permit: Permit,
    pub window: TrendWindow,
    pub totals: GlucoseTotals,
    /// The period of the same length just before `window`.
    pub previous_window: TrendWindow,
    pub previous_totals: GlucoseTotals,
    /// The latest reading the permit allows: when, and its value in mg/dL.
    pub latest: Option<(DateTime<Utc>, f64)>,
}

#[derive(Debug, Clone)]
pub struct PanelBloodPressure {
    pub permit: Permit,
    pub window: TrendWindow,
    pub totals: BpTotals,
    /// The latest reading the permit allows: when, systolic, diastolic.
    pub latest: Option<(DateTime<Utc>, i16, i16)>,
}

const GLUCOSE_DAY_COLUMNS: &str = "d.day, d.time_zone, d.readings, d.cgm_readings, \
     d.meter_readings, d.lab_readings, d.cgm_slots, d.sum_milli, d.sum_sq_milli, d.very_low_us, \
     d.low_us, d.in_range_us, d.high_us, d.very_high_us, d.below_target_us, d.in_target_us, \
     d.above_target_us";

impl Store {
    /// One patient's glucose days for a trend under `permit` (view trends or readings on
    /// glucose): the window in the patient's zone, clamped to the grant's `data_since`, and one
    /// day per calendar day of it.
    pub async fn glucose_trend_days(
        &self,
        permit: &Permit,
        days: TrendDays,
        now: DateTime<Utc>,
        source: DaySource,
    ) -> Result<(TrendSubject, TrendWindow, Vec<GlucoseDay>), StorageError> {
        check_trend_permit(permit, DataCategory::Glucose)?;
        let patient_id = permit.patient_id();
        let mut tx = snapshot(self).await?;
        let subject = subjects(&mut tx, &[patient_id])
            .await?
            .remove(&patient_id)
            .ok_or_else(|| StorageError::NotFound {
                what: "patient",
                id: patient_id.to_string(),
            })?;
        let window = days.window(subject.time_zone, permit.clamp_from(None), now);
        let mut stored: HashMap<NaiveDate, GlucoseDay> = HashMap::new();
        let mut from_raw: BTreeSet<NaiveDate> = window.days.iter().map(|d| d.date).collect();
        if source == DaySource::Rollups {
            let stale = pending(&mut tx, &[&subject], ReadingKind::Glucose)
                .await?
                .remove(&patient_id)
                .unwrap_or(Pending::Dates(BTreeSet::new()));
            let rows: Vec<GlucoseDayRow> = sqlx::query_as(&format!(
                "SELECT {GLUCOSE_DAY_COLUMNS}, s.samples FROM glucose_days d
                 LEFT JOIN glucose_day_samples s ON s.patient_id = d.patient_id AND s.day = d.day
                 WHERE d.patient_id = $1 AND d.day >= $2 AND d.day <= $3 ORDER BY d.day"
            ))
            .bind(patient_id)
            .bind(window.first_date())
            .bind(window.last_date())
            .fetch_all(&mut *tx)
            .await?;
            for row in rows {
                let usable = row.time_zone == subject.time_zone.name() && !stale.contains(row.day);
                let Some(bytes) = row.samples.as_deref().filter(|_| usable) else {
                    continue;
                };
                let samples = samples::decode(bytes).map_err(|e| StorageError::Corrupt {
                    what: "glucose day samples",
                    value: e.to_string(),
                })?;
                stored.insert(
                    row.day,
                    GlucoseDay {
                        date: row.day,
                        totals: row.totals(),
                        samples,
                    },
                );
            }
            from_raw = window
                .days
                .iter()
                .filter(|d| window.clips(d) || stale.contains(d.date))
                .map(|d| d.date)
                .collect();
        }
        let computed = raw_glucose_days(
            &mut tx,
            &[RawDays {
                subject: &subject,
                floor: window.floor,
                dates: from_raw,
            }],
        )
        .await?
        .pop()
        .unwrap_or_default();
        tx.commit().await?;
        for day in computed {
            stored.insert(day.date, day);
        }
        let days = window
            .days
            .iter()
            .map(|d| {
                stored
                    .remove(&d.date)
                    .unwrap_or_else(|| GlucoseDay::empty(d.date))
            })
            .collect();
        Ok((subject, window, days))
    }

    /// One patient's blood-pressure days for a trend under `permit`.
    pub async fn blood_pressure_trend_days(
        &self,
        permit: &Permit,
        days: TrendDays,
        now: DateTime<Utc>,
        source: DaySource,
    ) -> Result<(TrendSubject, TrendWindow, Vec<BpDay>), StorageError> {
        check_trend_permit(permit, DataCategory::BloodPressure)?;
        let patient_id = permit.patient_id();
        let mut tx = snapshot(self).await?;
        let subject = subjects(&mut tx, &[patient_id])
            .await?
            .remove(&patient_id)
            .ok_or_else(|| StorageError::NotFound {
                what: "patient",
                id: patient_id.to_string(),
            })?;
        let window = days.window(subject.time_zone, permit.clamp_from(None), now);
        let mut stored: HashMap<NaiveDate, BpDay> = HashMap::new();
        let mut from_raw: BTreeSet<NaiveDate> = window.days.iter().map(|d| d.date).collect();
        if source == DaySource::Rollups {
            let stale = pending(&mut tx, &[&subject], ReadingKind::BloodPressure)
                .await?
                .remove(&patient_id)
                .unwrap_or(Pending::Dates(BTreeSet::new()));
            let rows: Vec<BpDayRow> = sqlx::query_as(
                "SELECT * FROM blood_pressure_days
                 WHERE patient_id = $1 AND day >= $2 AND day <= $3 ORDER BY day",
            )
            .bind(patient_id)
            .bind(window.first_date())
            .bind(window.last_date())
            .fetch_all(&mut *tx)
            .await?;
            for row in rows {
                if row.time_zone == subject.time_zone.name() && !stale.contains(row.day) {
                    stored.insert(
                        row.day,
                        BpDay {
                            date: row.day,
                            totals: row.totals(),
                        },
                    );
                }
            }
            from_raw = window
                .days
                .iter()
                .filter(|d| bp_clipped(&window, d) || stale.contains(d.date))
                .map(|d| d.date)
                .collect();
        }
        let computed = raw_bp_days(
            &mut tx,
            &[RawDays {
                subject: &subject,
                floor: window.floor,
                dates: from_raw,
            }],
        )
        .await?
        .pop()
        .unwrap_or_default();
        tx.commit().await?;
        for day in computed {
            stored.insert(day.date, day);
        }
        let days = window
            .days
            .iter()
            .map(|d| {
                stored.remove(&d.date).unwrap_or(BpDay {
                    date: d.date,
                    totals: BpTotals::default(),
                })
            })
            .collect();
        Ok((subject, window, days))
    }

    /// The patient panel of `principal`: every patient they may see (their own record, those
    /// they are guardian of, those whose active grant names them for their purpose — research
    /// grants excepted, since the panel is identified), with the glucose and blood-pressure
    /// totals of the last `days` days (and glucose of the `days` before) they may see. One
    /// gate decision per patient and category is made and logged (action `read_panel`), with
    /// a fixed number of queries whatever the number of patients. `source` chooses rollups
    /// (the normal path) or raw readings only (a baseline for benchmarks).
    pub async fn panel(
        &self,
        principal: &Principal,
        days: u32,
        now: DateTime<Utc>,
        source: DaySource,
    ) -> Result<Vec<PanelPatient>, StorageError> {
        let mut tx = snapshot(self).await?;
        let candidates = panel_candidates(&mut tx, principal).await?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let requests: Vec<AccessRequest> = candidates
            .iter()
            .flat_map(|(subject, _)| {
                [DataCategory::Glucose, DataCategory::BloodPressure].map(|category| AccessRequest {
                    patient_id: subject.patient_id,
                    category,
                    access: Access::ViewTrends,
                    at: now,
                    identified: true,
                })
            })
            .collect();
        let (decisions, log) = self.decide_many(principal, &requests, "read_panel").await?;
        let mut out: Vec<PanelPatient> = candidates
            .into_iter()
            .zip(decisions.chunks(2))
            .map(|((subject, name), pair)| {
                let zone = subject.time_zone;
                let today = local_date(zone, now);
                let before = today
                    .checked_sub_days(Days::new(u64::from(days)))
                    .unwrap_or(today);
                PanelPatient {
                    patient_id: subject.patient_id,
                    display_name: name,
                    glucose: allowed(&pair[0]).map(|permit| {
                        let floor = permit.clamp_from(None);
                        PanelGlucose {
                            permit,
                            window: TrendWindow::ending_on(zone, today, days, floor, now),
                            totals: GlucoseTotals::default(),
                            previous_window: TrendWindow::ending_on(zone, before, days, floor, now),
                            previous_totals: GlucoseTotals::default(),
                            latest: None,
                        }
                    }),
                    blood_pressure: allowed(&pair[1]).map(|permit| PanelBloodPressure {
                        window: TrendWindow::ending_on(
                            zone,
                            today,
                            days,
                            permit.clamp_from(None),
                            now,
                        ),
                        permit,
                        totals: BpTotals::default(),
                        latest: None,
                    }),
                    subject,
                }
            })
            .collect();
        // Every decision is logged before anything is answered; the log is written while the
        // figures are read, on another connection, to spare the panel the INSERT's time.
        let read = async {
            panel_glucose(&mut tx, &mut out, source).await?;
            panel_blood_pressure(&mut tx, &mut out, source).await?;
            tx.commit().await?;
            Ok::<_, StorageError>(())
        };
        tokio::try_join!(self.append_access_log_many(&log), read)?;
        Ok(out)
    }
}

/// The patients a panel lists for `principal` — their own record, those they are guardian
/// of, and those whose active grant names them for their purpose (research excepted) — with
/// their names, in name order.
async fn panel_candidates(
    conn: &mut PgConnection,
    principal: &Principal,
) -> Result<Vec<(TrendSubject, String)>, StorageError> {
    let own: Vec<Uuid> = principal
        .patient_id
        .into_iter()
        .chain(principal.guardian_of.iter().copied())
        .collect();
    let purpose = principal
        .role
        .and_then(Purpose::for_role)
        .filter(|p| *p != Purpose::Research);
    let rows: Vec<(Uuid, String, String, Option<serde_json::Value>)> = sqlx::query_as(
        "SELECT p.id, p.display_name, p.time_zone, t.glucose FROM patients p
         LEFT JOIN patient_targets t ON t.patient_id = p.id
         WHERE p.id = ANY($1) OR p.id IN (
             SELECT g.patient_id FROM grants g
             WHERE $2::text IS NOT NULL AND g.purpose = $2 AND g.revoked_at IS NULL
               AND (g.expires_at IS NULL OR g.expires_at > now()) AND g.created_at <= now()
               AND ((g.grantee_type = 'user' AND g.grantee_id = $3)
                 OR (g.grantee_type = 'care_team' AND g.grantee_id = ANY($4))
                 OR (g.grantee_type = 'organization' AND g.grantee_id = ANY($5))))
         ORDER BY p.display_name, p.id",
    )
    .bind(&own)
    .bind(purpose.map(|p| p.as_str()))
    .bind(principal.user_id)
    .bind(&principal.care_teams)
    .bind(&principal.organizations)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(id, name, zone, targets)| {
            Ok((
                TrendSubject {
                    patient_id: id,
                    time_zone: zone_of(&zone)?,
                    targets: targets
                        .map(crate::targets::decode)
                        .transpose()?
                        .unwrap_or_default(),
                },
                name,
            ))
        })
        .collect()
}

/// Whether a grant's `data_since` cuts into a blood-pressure day (which depends on nothing
/// outside itself).
fn bp_clipped(window: &TrendWindow, day: &DayBounds) -> bool {
    window.floor.is_some_and(|f| f > day.start)
}

fn allowed(decision: &Result<Permit, DenyReason>) -> Option<Permit> {
    decision.as_ref().ok().copied()
}

/// Fills the panel's glucose totals (current and previous window) and latest readings.
async fn panel_glucose(
    conn: &mut PgConnection,
    patients: &mut [PanelPatient],
    source: DaySource,
) -> Result<(), StorageError> {
    let seen: Vec<usize> = (0..patients.len())
        .filter(|i| patients[*i].glucose.is_some())
        .collect();
    if seen.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = seen.iter().map(|i| patients[*i].patient_id).collect();
    let subjects: Vec<&TrendSubject> = seen.iter().map(|i| &patients[*i].subject).collect();
    let stale = pending(conn, &subjects, ReadingKind::Glucose).await?;

    // Windows to sum from rollups (tag: 2 × position + 0 current / 1 previous), and the days
    // to compute from raw readings instead.
    let mut tags = Vec::new();
    let mut window_ids = Vec::new();
    let mut firsts = Vec::new();
    let mut lasts = Vec::new();
    let mut skip_ids = Vec::new();
    let mut skip_days = Vec::new();
    let mut wanted = Vec::new();
    for (position, &i) in seen.iter().enumerate() {
        let p = &patients[i];
        let Some(g) = &p.glucose else { continue };
        let mut raw = BTreeSet::new();
        for (which, window) in [&g.window, &g.previous_window].into_iter().enumerate() {
            tags.push((2 * position + which) as i32);
            window_ids.push(p.patient_id);
            firsts.push(window.first_date());
            lasts.push(window.last_date());
            for day in &window.days {
                let stale_day = stale
                    .get(&p.patient_id)
                    .is_some_and(|s| s.contains(day.date));
                if source == DaySource::Raw || window.clips(day) || stale_day {
                    raw.insert(day.date);
                    skip_ids.push(p.patient_id);
                    skip_days.push(day.date);
                }
            }
        }
        wanted.push(RawDays {
            subject: &p.subject,
            floor: g.window.floor,
            dates: raw,
        });
    }
    #[derive(sqlx::FromRow)]
    struct Sums {
        tag: i32,
        readings: Option<i64>,
        cgm_readings: Option<i64>,
        meter_readings: Option<i64>,
        lab_readings: Option<i64>,
        cgm_slots: Option<i64>,
        days_with_data: Option<i64>,
        days_with_cgm: Option<i64>,
        sum_milli: Option<String>,
        sum_sq_milli: Option<String>,
        very_low_us: Option<i64>,
        low_us: Option<i64>,
        in_range_us: Option<i64>,
        high_us: Option<i64>,
        very_high_us: Option<i64>,
        below_target_us: Option<i64>,
        in_target_us: Option<i64>,
        above_target_us: Option<i64>,
    }
    let sums: Vec<Sums> = sqlx::query_as(
        "SELECT w.tag, sum(d.readings)::int8 AS readings, sum(d.cgm_readings)::int8 AS cgm_readings,
             sum(d.meter_readings)::int8 AS meter_readings,
             sum(d.lab_readings)::int8 AS lab_readings, sum(d.cgm_slots)::int8 AS cgm_slots,
             count(*) FILTER (WHERE d.readings > 0) AS days_with_data,
             count(*) FILTER (WHERE d.cgm_readings > 0) AS days_with_cgm,
             sum(d.sum_milli)::text AS sum_milli, sum(d.sum_sq_milli)::text AS sum_sq_milli,
             sum(d.very_low_us)::int8 AS very_low_us, sum(d.low_us)::int8 AS low_us,
             sum(d.in_range_us)::int8 AS in_range_us, sum(d.high_us)::int8 AS high_us,
             sum(d.very_high_us)::int8 AS very_high_us,
             sum(d.below_target_us)::int8 AS below_target_us,
             sum(d.in_target_us)::int8 AS in_target_us,
             sum(d.above_target_us)::int8 AS above_target_us
         FROM UNNEST($1::int4[], $2::uuid[], $3::date[], $4::date[])
             AS w (tag, patient_id, first_day, last_day)
         JOIN glucose_days d ON d.patient_id = w.patient_id
             AND d.day >= w.first_day AND d.day <= w.last_day
         WHERE NOT EXISTS (SELECT 1 FROM UNNEST($5::uuid[], $6::date[]) AS x (patient_id, day)
                           WHERE x.patient_id = d.patient_id AND x.day = d.day)
         GROUP BY w.tag",
    )
    .bind(&tags)
    .bind(&window_ids)
    .bind(&firsts)
    .bind(&lasts)
    .bind(&skip_ids)
    .bind(&skip_days)
    .fetch_all(&mut *conn)
    .await?;
    let computed = raw_glucose_days(conn, &wanted).await?;
    for s in sums {
        let position = s.tag as usize / 2;
        let Some(g) = patients[seen[position]].glucose.as_mut() else {
            continue;
        };
        let totals = GlucoseTotals {
            readings: s.readings.unwrap_or(0),
            cgm_readings: s.cgm_readings.unwrap_or(0),
            meter_readings: s.meter_readings.unwrap_or(0),
            lab_readings: s.lab_readings.unwrap_or(0),
            cgm_slots: s.cgm_slots.unwrap_or(0),
            days_with_data: s.days_with_data.unwrap_or(0),
            days_with_cgm: s.days_with_cgm.unwrap_or(0),
            sum_milli: i64::try_from(parse_sum(s.sum_milli)?).map_err(|_| {
                StorageError::Corrupt {
                    what: "rollup sum",
                    value: "sum of glucose values out of range".into(),
                }
            })?,
            sum_sq_milli: parse_sum(s.sum_sq_milli)?,
            band_us: [
                s.very_low_us,
                s.low_us,
                s.in_range_us,
                s.high_us,
                s.very_high_us,
            ]
            .map(|v| v.unwrap_or(0)),
            target_us: [s.below_target_us, s.in_target_us, s.above_target_us]
                .map(|v| v.unwrap_or(0)),
        };
        if s.tag % 2 == 0 {
            g.totals += &totals;
        } else {
            g.previous_totals += &totals;
        }
    }
    for (position, days) in computed.into_iter().enumerate() {
        let Some(g) = patients[seen[position]].glucose.as_mut() else {
            continue;
        };
        for day in days {
            if g.window.days.iter().any(|d| d.date == day.date) {
                g.totals += &day.totals;
            } else {
                g.previous_totals += &day.totals;
            }
        }
    }

    let floors: Vec<Option<DateTime<Utc>>> = seen
        .iter()
        .map(|i| patients[*i].glucose.as_ref().and_then(|g| g.window.floor))
        .collect();
    let latest: Vec<(i32, DateTime<Utc>, f64)> = sqlx::query_as(
        "SELECT r.position, g.measured_at, g.value_mg_dl
         FROM UNNEST($1::int4[], $2::uuid[], $3::timestamptz[]) AS r (position, patient_id, floor)
         JOIN LATERAL (
             SELECT measured_at, value_mg_dl FROM glucose_readings
             WHERE patient_id = r.patient_id AND (r.floor IS NULL OR measured_at >= r.floor)
             ORDER BY measured_at DESC LIMIT 1
         ) g ON true",
    )
    .bind((0..seen.len() as i32).collect::<Vec<_>>())
    .bind(&ids)
    .bind(&floors)
    .fetch_all(&mut *conn)
    .await?;
    for (position, at, value) in latest {
        if let Some(g) = patients[seen[position as usize]].glucose.as_mut() {
            g.latest = Some((at, value));
        }
    }
    Ok(())
}

/// Fills the panel's blood-pressure totals and latest readings.
async fn panel_blood_pressure(
    conn: &mut PgConnection,
    patients: &mut [PanelPatient],
    source: DaySource,
) -> Result<(), StorageError> {
    let seen: Vec<usize> = (0..patients.len())
        .filter(|i| patients[*i].blood_pressure.is_some())
        .collect();
    if seen.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = seen.iter().map(|i| patients[*i].patient_id).collect();
    let subjects: Vec<&TrendSubject> = seen.iter().map(|i| &patients[*i].subject).collect();
    let stale = pending(conn, &subjects, ReadingKind::BloodPressure).await?;
    let mut firsts = Vec::new();
    let mut lasts = Vec::new();
    let mut skip_ids = Vec::new();
    let mut skip_days = Vec::new();
    let mut wanted = Vec::new();
    for &i in &seen {
        let p = &patients[i];
        let Some(b) = &p.blood_pressure else { continue };
        firsts.push(b.window.first_date());
        lasts.push(b.window.last_date());
        let mut raw = BTreeSet::new();
        for day in &b.window.days {
            let stale_day = stale
                .get(&p.patient_id)
                .is_some_and(|s| s.contains(day.date));
            if source == DaySource::Raw || bp_clipped(&b.window, day) || stale_day {
                raw.insert(day.date);
                skip_ids.push(p.patient_id);
                skip_days.push(day.date);
            }
        }
        wanted.push(RawDays {
            subject: &p.subject,
            floor: b.window.floor,
            dates: raw,
        });
    }
    #[derive(sqlx::FromRow)]
    struct Sums {
        position: i32,
        readings: Option<i64>,
        days_with_data: Option<i64>,
        sum_systolic: Option<i64>,
        sum_sq_systolic: Option<i64>,
        sum_diastolic: Option<i64>,
        sum_sq_diastolic: Option<i64>,
        morning_readings: Option<i64>,
        morning_sum_systolic: Option<i64>,
        morning_sum_diastolic: Option<i64>,
        evening_readings: Option<i64>,
        evening_sum_systolic: Option<i64>,
        evening_sum_diastolic: Option<i64>,
        at_or_above_130_80: Option<i64>,
        at_or_above_135_85: Option<i64>,
        pulse_readings: Option<i64>,
        sum_pulse: Option<i64>,
        sum_sq_pulse: Option<i64>,
    }
    let sums: Vec<Sums> = sqlx::query_as(
        "SELECT w.position, sum(d.readings)::int8 AS readings,
             count(*) FILTER (WHERE d.readings > 0) AS days_with_data,
             sum(d.sum_systolic)::int8 AS sum_systolic,
             sum(d.sum_sq_systolic)::int8 AS sum_sq_systolic,
             sum(d.sum_diastolic)::int8 AS sum_diastolic,
             sum(d.sum_sq_diastolic)::int8 AS sum_sq_diastolic,
             sum(d.morning_readings)::int8 AS morning_readings,
             sum(d.morning_sum_systolic)::int8 AS morning_sum_systolic,
             sum(d.morning_sum_diastolic)::int8 AS morning_sum_diastolic,
             sum(d.evening_readings)::int8 AS evening_readings,
             sum(d.evening_sum_systolic)::int8 AS evening_sum_systolic,
             sum(d.evening_sum_diastolic)::int8 AS evening_sum_diastolic,
             sum(d.at_or_above_130_80)::int8 AS at_or_above_130_80,
             sum(d.at_or_above_135_85)::int8 AS at_or_above_135_85,
             sum(d.pulse_readings)::int8 AS pulse_readings, sum(d.sum_pulse)::int8 AS sum_pulse,
             sum(d.sum_sq_pulse)::int8 AS sum_sq_pulse
         FROM UNNEST($1::int4[], $2::uuid[], $3::date[], $4::date[])
             AS w (position, patient_id, first_day, last_day)
         JOIN blood_pressure_days d ON d.patient_id = w.patient_id
             AND d.day >= w.first_day AND d.day <= w.last_day
         WHERE NOT EXISTS (SELECT 1 FROM UNNEST($5::uuid[], $6::date[]) AS x (patient_id, day)
                           WHERE x.patient_id = d.patient_id AND x.day = d.day)
         GROUP BY w.position",
    )
    .bind((0..seen.len() as i32).collect::<Vec<_>>())
    .bind(&ids)
    .bind(&firsts)
    .bind(&lasts)
    .bind(&skip_ids)
    .bind(&skip_days)
    .fetch_all(&mut *conn)
    .await?;
    let computed = raw_bp_days(conn, &wanted).await?;
    for s in sums {
        let Some(b) = patients[seen[s.position as usize]].blood_pressure.as_mut() else {
            continue;
        };
        let v = |x: Option<i64>| x.unwrap_or(0);
        b.totals += &BpTotals {
            readings: v(s.readings),
            days_with_data: v(s.days_with_data),
            sum_systolic: v(s.sum_systolic),
            sum_sq_systolic: v(s.sum_sq_systolic),
            sum_diastolic: v(s.sum_diastolic),
            sum_sq_diastolic: v(s.sum_sq_diastolic),
            morning: SessionTotals {
                readings: v(s.morning_readings),
                sum_systolic: v(s.morning_sum_systolic),
                sum_diastolic: v(s.morning_sum_diastolic),
            },
            evening: SessionTotals {
                readings: v(s.evening_readings),
                sum_systolic: v(s.evening_sum_systolic),
                sum_diastolic: v(s.evening_sum_diastolic),
            },
            at_or_above_130_80: v(s.at_or_above_130_80),
            at_or_above_135_85: v(s.at_or_above_135_85),
            pulse_readings: v(s.pulse_readings),
            sum_pulse: v(s.sum_pulse),
            sum_sq_pulse: v(s.sum_sq_pulse),
        };
    }
    for (position, days) in computed.into_iter().enumerate() {
        if let Some(b) = patients[seen[position]].blood_pressure.as_mut() {
            for day in days {
                b.totals += &day.totals;
            }
        }
    }
    let floors: Vec<Option<DateTime<Utc>>> = seen
        .iter()
        .map(|i| {
            patients[*i]
                .blood_pressure
                .as_ref()
                .and_then(|b| b.window.floor)
        })
        .collect();
    let latest: Vec<(i32, DateTime<Utc>, i16, i16)> = sqlx::query_as(
        "SELECT r.position, b.measured_at, b.systolic, b.diastolic
         FROM UNNEST($1::int4[], $2::uuid[], $3::timestamptz[]) AS r (position, patient_id, floor)
         JOIN LATERAL (
             SELECT measured_at, systolic, diastolic FROM blood_pressure_readings
             WHERE patient_id = r.patient_id AND (r.floor IS NULL OR measured_at >= r.floor)
             ORDER BY measured_at DESC LIMIT 1
         ) b ON true",
    )
    .bind((0..seen.len() as i32).collect::<Vec<_>>())
    .bind(&ids)
    .bind(&floors)
    .fetch_all(&mut *conn)
    .await?;
    for (position, at, systolic, diastolic) in latest {
        if let Some(b) = patients[seen[position as usize]].blood_pressure.as_mut() {
            b.latest = Some((at, systolic, diastolic));
        }
    }
    Ok(())
}

//! Trend reads: one patient's days for a trend, and the panel's per-patient totals. Each read
//! runs in one repeatable-read snapshot, takes rollups where they are current and computes the
//! other days from the raw readings.

use super::kind::TrendKind;
use super::{
    DaySource, RawRange, TRENDS_CONSUMER, TrendSubject, check_trend_permit, corrupt_running,
    load_points, ranges_of, zone_of,
};
use crate::alerts::OpenAlertCounts;
use crate::gate::Permit;
use crate::readings::{BloodPressure, Glucose};
use crate::{StorageError, Store};
use chronicle_domain::sharing::AccessAction;
use chronicle_domain::sharing::{
    Access, AccessRequest, DataCategory, DenyReason, Principal, Purpose,
};
use chronicle_domain::trends::calendar::{DayBounds, local_date};
use chronicle_domain::trends::running::LatestGlucose;
use chronicle_domain::trends::{BpDay, BpTotals, GlucoseDay, GlucoseTotals, TrendWindow};
use chronicle_domain::zone::Tz;
use chrono::{DateTime, Days, NaiveDate, Utc};
use sqlx::{PgConnection, Postgres, Transaction};
use std::collections::{BTreeSet, HashMap, HashSet};
use uuid::Uuid;

use super::kind::LatestPressure;
use super::rollup::dates_touched;

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

/// A patient's queued range of measurement times; none for a pending rebuild.
type QueuedRange = (Uuid, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The days of each patient the follow-up queue or a pending rebuild makes stale, for kind `K`.
async fn pending<K: TrendKind>(
    conn: &mut PgConnection,
    subjects: &[&TrendSubject],
) -> Result<HashMap<Uuid, Pending>, StorageError> {
    let ids: Vec<Uuid> = subjects.iter().map(|s| s.patient_id).collect();
    let zones: HashMap<Uuid, Tz> = subjects
        .iter()
        .map(|s| (s.patient_id, s.time_zone))
        .collect();
    let mut out: HashMap<Uuid, Pending> = HashMap::new();
    // A rebuild has no range (NULLs): every day.
    let queued: Vec<QueuedRange> = sqlx::query_as(
        "SELECT patient_id, NULL::timestamptz, NULL::timestamptz FROM trend_rebuilds
         WHERE patient_id = ANY($3)
         UNION ALL
         SELECT i.patient_id, i.first_measured_at, i.last_measured_at
         FROM ingest_followup_batches f CROSS JOIN LATERAL UNNEST(f.patient_ids, f.kinds,
             f.first_measured_at, f.last_measured_at)
             AS i (patient_id, kind, first_measured_at, last_measured_at)
         WHERE f.consumer = $1 AND f.patient_ids && $3 AND i.kind = $2
             AND i.patient_id = ANY($3)",
    )
    .bind(TRENDS_CONSUMER)
    .bind(K::KIND.as_str())
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    for (id, first, last) in queued {
        let (Some(first), Some(last)) = (first, last) else {
            out.insert(id, Pending::All);
            continue;
        };
        let Some(zone) = zones.get(&id) else { continue };
        let dates = dates_touched::<K>(*zone, first, last);
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
    let mut tx = store.begin().await?;
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
        .map(|(id, zone, targets)| Ok((id, TrendSubject::stored(id, &zone, targets)?)))
        .collect()
}

impl TrendSubject {
    /// A subject as stored: the patient's zone name and their glucose targets (JSON), if set.
    fn stored(
        patient_id: Uuid,
        zone: &str,
        targets: Option<serde_json::Value>,
    ) -> Result<TrendSubject, StorageError> {
        Ok(TrendSubject {
            patient_id,
            time_zone: zone_of(zone)?,
            targets: targets
                .map(crate::targets::decode)
                .transpose()?
                .unwrap_or_default(),
        })
    }
}

/// Days of one patient to compute from the raw readings, ignoring readings before `floor`
/// and after `ceiling`.
pub(super) struct RawDays<'a> {
    pub subject: &'a TrendSubject,
    pub floor: Option<DateTime<Utc>>,
    pub ceiling: Option<DateTime<Utc>>,
    pub dates: BTreeSet<NaiveDate>,
}

/// Computes from the raw readings the days of kind `K` each request asks for, in one query.
pub(super) async fn raw_days<K: TrendKind>(
    conn: &mut PgConnection,
    wanted: &[RawDays<'_>],
) -> Result<Vec<Vec<K::Day>>, StorageError> {
    let mut ranges = Vec::new();
    for (i, wanted) in wanted.iter().enumerate() {
        let subject = wanted.subject;
        ranges.extend(
            ranges_of::<K>(
                i as i32,
                subject.patient_id,
                subject.time_zone,
                &wanted.dates,
            )
            .into_iter()
            .map(|(range, dates)| {
                let to = wanted.ceiling.map_or(range.to, |c| range.to.min(c));
                (RawRange { to, ..range }, dates)
            }),
        );
    }
    let raw: Vec<RawRange> = ranges.iter().map(|(r, _)| *r).collect();
    let loaded = load_points::<K>(conn, &raw).await?;
    let mut out: Vec<Vec<K::Day>> = wanted.iter().map(|_| Vec::new()).collect();
    for ((range, (first, last)), points) in ranges.iter().zip(&loaded) {
        let RawDays { subject, floor, .. } = &wanted[range.tag as usize];
        for date in first.iter_days().take_while(|d| d <= last) {
            let bounds = DayBounds::of(subject.time_zone, date);
            out[range.tag as usize].push(K::compute_day(
                &bounds,
                K::points_of_day(points, &bounds),
                *floor,
                subject,
            ));
        }
    }
    Ok(out)
}

/// A stored day as a trend reads it: its totals, the zone it was computed in, and its
/// samples where the kind keeps them.
#[derive(sqlx::FromRow)]
struct StoredDayRow<T> {
    #[sqlx(flatten)]
    stored: T,
    time_zone: String,
    samples: Option<Vec<u8>>,
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
    /// Unresolved alerts in the categories whose alerts the caller receives; `None` when
    /// they receive none of the patient's alerts.
    pub open_alerts: Option<OpenAlertCounts>,
}

/// One kind of reading of a patient on the panel: the totals of the window, and the latest
/// reading the permit allows.
#[derive(Debug, Clone)]
pub struct PanelSeries<T, L> {
    pub permit: Permit,
    pub window: TrendWindow,
    pub totals: T,
    /// The period of the same length just before `window`, for kinds the panel compares
    /// with the period before (glucose).
    pub previous: Option<PanelPeriod<T>>,
    pub latest: Option<L>,
}

/// A window and its totals.
#[derive(Debug, Clone)]
pub struct PanelPeriod<T> {
    pub window: TrendWindow,
    pub totals: T,
}

/// Glucose on the panel; the latest reading is its time and value in mg/dL.
pub type PanelGlucose = PanelSeries<GlucoseTotals, LatestGlucose>;
/// Blood pressure on the panel; the latest reading is its time, systolic and diastolic.
pub type PanelBloodPressure = PanelSeries<BpTotals, LatestPressure>;

impl<T: Default, L> PanelSeries<T, L> {
    /// The `days` ending `today` (and the `days` before, when `compare`), empty until read.
    fn new(
        permit: Permit,
        zone: Tz,
        (today, days): (NaiveDate, u32),
        now: DateTime<Utc>,
        compare: bool,
    ) -> Self {
        let floor = permit.clamp_from(None);
        let previous = compare.then(|| {
            let before = today
                .checked_sub_days(Days::new(u64::from(days)))
                .unwrap_or(today);
            PanelPeriod {
                window: TrendWindow::ending_on(zone, before, days, floor, now),
                totals: T::default(),
            }
        });
        PanelSeries {
            permit,
            window: TrendWindow::ending_on(zone, today, days, floor, now),
            totals: T::default(),
            previous,
            latest: None,
        }
    }
}

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
        self.trend_days::<Glucose>(permit, days, now, source).await
    }

    /// One patient's blood-pressure days for a trend under `permit`.
    pub async fn blood_pressure_trend_days(
        &self,
        permit: &Permit,
        days: TrendDays,
        now: DateTime<Utc>,
        source: DaySource,
    ) -> Result<(TrendSubject, TrendWindow, Vec<BpDay>), StorageError> {
        self.trend_days::<BloodPressure>(permit, days, now, source)
            .await
    }

    async fn trend_days<K: TrendKind>(
        &self,
        permit: &Permit,
        days: TrendDays,
        now: DateTime<Utc>,
        source: DaySource,
    ) -> Result<(TrendSubject, TrendWindow, Vec<K::Day>), StorageError> {
        check_trend_permit::<K>(permit)?;
        let patient_id = permit.patient_id();
        let mut tx = snapshot(self).await?;
        let subject = subject_of(&mut tx, patient_id).await?;
        let window = days.window(subject.time_zone, permit.clamp_from(None), now);
        let mut stored: HashMap<NaiveDate, K::Day> = HashMap::new();
        let mut from_raw: BTreeSet<NaiveDate> = window.days.iter().map(|d| d.date).collect();
        if source == DaySource::Rollups {
            let stale = pending::<K>(&mut tx, &[&subject])
                .await?
                .remove(&patient_id);
            let rows: Vec<StoredDayRow<K::TotalsRow>> = sqlx::query_as(K::STORED_DAYS)
                .bind(patient_id)
                .bind(window.first_date())
                .bind(window.last_date())
                .fetch_all(&mut *tx)
                .await?;
            for row in rows {
                let date = K::row_day(&row.stored);
                let usable = row.time_zone == subject.time_zone.name()
                    && !stale.as_ref().is_some_and(|s| s.contains(date));
                if !usable {
                    continue;
                }
                if let Some(day) = K::stored_day(&row.stored, row.samples.as_deref())? {
                    stored.insert(date, day);
                }
            }
            from_raw = unusable_days::<K>(&window, stale.as_ref());
        }
        let computed = raw_days::<K>(
            &mut tx,
            &[RawDays {
                subject: &subject,
                floor: window.floor,
                ceiling: None,
                dates: from_raw,
            }],
        )
        .await?
        .pop()
        .unwrap_or_default();
        tx.commit().await?;
        for day in computed {
            stored.insert(K::day_date(&day), day);
        }
        let days = window
            .days
            .iter()
            .map(|d| {
                stored
                    .remove(&d.date)
                    .unwrap_or_else(|| K::empty_day(d.date))
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
                PANEL_REQUESTS.map(|(category, access, _)| AccessRequest {
                    patient_id: subject.patient_id,
                    category,
                    access,
                    at: now,
                    identified: true,
                })
            })
            .collect();
        let (decisions, mut log) = self
            .decide_many(principal, &requests, AccessAction::ReadPanel)
            .await?;
        for (entry, (_, _, action)) in log.iter_mut().zip(PANEL_REQUESTS.iter().cycle()) {
            entry.action = *action;
        }
        let alert_permits: Vec<Permit> = decisions
            .chunks(PANEL_REQUESTS.len())
            .flat_map(|d| d[2..].iter().filter_map(allowed))
            .collect();
        let receives_alerts: HashSet<Uuid> = alert_permits.iter().map(Permit::patient_id).collect();
        let mut out: Vec<PanelPatient> = candidates
            .into_iter()
            .zip(decisions.chunks(PANEL_REQUESTS.len()))
            .map(|((subject, name), pair)| {
                let zone = subject.time_zone;
                let today = local_date(zone, now);
                PanelPatient {
                    patient_id: subject.patient_id,
                    display_name: name,
                    glucose: allowed(&pair[0])
                        .map(|permit| PanelSeries::new(permit, zone, (today, days), now, true)),
                    blood_pressure: allowed(&pair[1])
                        .map(|permit| PanelSeries::new(permit, zone, (today, days), now, false)),
                    open_alerts: receives_alerts
                        .contains(&subject.patient_id)
                        .then(OpenAlertCounts::default),
                    subject,
                }
            })
            .collect();
        // Every decision is logged before anything is answered; the log is written while the
        // figures are read, on another connection, to spare the panel the INSERT's time.
        let read = async {
            panel_series::<Glucose>(&mut tx, &mut out, source).await?;
            panel_series::<BloodPressure>(&mut tx, &mut out, source).await?;
            tx.commit().await?;
            Ok::<_, StorageError>(())
        };
        let (_, (), counts) = tokio::try_join!(
            self.append_access_log_many(&log),
            read,
            self.open_alert_counts(&alert_permits)
        )?;
        for patient in &mut out {
            if let (Some(slot), Some(counts)) = (
                patient.open_alerts.as_mut(),
                counts.get(&patient.patient_id),
            ) {
                *slot = *counts;
            }
        }
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
        .map(|(id, name, zone, targets)| Ok((TrendSubject::stored(id, &zone, targets)?, name)))
        .collect()
}

/// One patient's trend subject (zone and targets).
async fn subject_of(
    conn: &mut PgConnection,
    patient_id: Uuid,
) -> Result<TrendSubject, StorageError> {
    subjects(conn, &[patient_id])
        .await?
        .remove(&patient_id)
        .ok_or_else(|| StorageError::NotFound {
            what: "patient",
            id: patient_id.to_string(),
        })
}

/// What the panel asks the gate for each patient, in this order, and the action each is
/// logged as: the trends of each category, then whether the caller receives its alerts.
const PANEL_REQUESTS: [(DataCategory, Access, AccessAction); 4] = [
    (
        DataCategory::Glucose,
        Access::ViewTrends,
        AccessAction::ReadPanel,
    ),
    (
        DataCategory::BloodPressure,
        Access::ViewTrends,
        AccessAction::ReadPanel,
    ),
    (
        DataCategory::Glucose,
        Access::ReceiveAlerts,
        AccessAction::ReadPanelAlerts,
    ),
    (
        DataCategory::BloodPressure,
        Access::ReceiveAlerts,
        AccessAction::ReadPanelAlerts,
    ),
];

fn allowed(decision: &Result<Permit, DenyReason>) -> Option<Permit> {
    decision.as_ref().ok().copied()
}

/// One window of one patient on the panel, and where its totals go.
struct PanelWindow {
    /// Index of the patient in the panel, and among the patients the category is read for.
    patient: usize,
    position: usize,
    patient_id: Uuid,
    /// The first and last day.
    first: NaiveDate,
    last: NaiveDate,
    /// Index of the window's running totals before its first day and on its last day in
    /// the probe list.
    before: usize,
    end: usize,
    /// The period before the series' window, rather than the window itself.
    previous: bool,
}

/// Probes for running totals: the latest stored day on or before a date, per patient.
#[derive(Default)]
struct Probes {
    patient_ids: Vec<Uuid>,
    days: Vec<NaiveDate>,
    /// Windows that meet (the previous period ends where the current one begins) share a
    /// probe.
    known: HashMap<(Uuid, NaiveDate), usize>,
}

impl Probes {
    fn add(&mut self, patient_id: Uuid, day: NaiveDate) -> usize {
        *self.known.entry((patient_id, day)).or_insert_with(|| {
            self.patient_ids.push(patient_id);
            self.days.push(day);
            self.patient_ids.len() - 1
        })
    }

    /// The stored running totals of every probe (`None` where the patient has no day that
    /// early), in one query: an index probe each, whatever the window's length.
    async fn load(
        &self,
        conn: &mut PgConnection,
        table: &str,
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(&format!(
            "SELECT r.probe, d.running
             FROM UNNEST($1::uuid[], $2::date[]) WITH ORDINALITY AS r (patient_id, day, probe)
             JOIN LATERAL (
                 SELECT running FROM {table}
                 WHERE patient_id = r.patient_id AND day <= r.day
                 ORDER BY day DESC LIMIT 1
             ) d ON true"
        ))
        .bind(&self.patient_ids)
        .bind(&self.days)
        .fetch_all(&mut *conn)
        .await?;
        let mut out = vec![None; self.patient_ids.len()];
        for (probe, running) in rows {
            if let Some(slot) = usize::try_from(probe - 1).ok().and_then(|i| out.get_mut(i)) {
                *slot = Some(running);
            }
        }
        Ok(out)
    }
}

fn window_probes(
    probes: &mut Probes,
    (patient, position): (usize, usize),
    patient_id: Uuid,
    (window, previous): (&TrendWindow, bool),
) -> PanelWindow {
    let first = window.first_date();
    let last = window.last_date();
    PanelWindow {
        patient,
        position,
        patient_id,
        first,
        last,
        before: probes.add(patient_id, first.pred_opt().unwrap_or(first)),
        end: probes.add(patient_id, last),
        previous,
    }
}

/// Days whose stored totals a window cannot use: stale (queued or awaiting a rebuild) or cut
/// by the grant's `data_since`.
fn unusable_days<K: TrendKind>(
    window: &TrendWindow,
    stale: Option<&Pending>,
) -> BTreeSet<NaiveDate> {
    window
        .days
        .iter()
        .filter(|d| K::clipped(window, d) || stale.is_some_and(|s| s.contains(d.date)))
        .map(|d| d.date)
        .collect()
}

/// A stored row with its patient.
#[derive(sqlx::FromRow)]
struct Keyed<T> {
    patient_id: Uuid,
    #[sqlx(flatten)]
    row: T,
}

/// Loads the stored rows of the given (patient, day) keys from `table`.
async fn stored_rows<R>(
    conn: &mut PgConnection,
    table: &str,
    columns: &str,
    keys: &[(Uuid, NaiveDate)],
) -> Result<Vec<(Uuid, R)>, StorageError>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Keyed<R>> = sqlx::query_as(&format!(
        "SELECT patient_id, {columns} FROM {table}
         WHERE (patient_id, day) IN (SELECT * FROM UNNEST($1::uuid[], $2::date[]))"
    ))
    .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|k| (k.patient_id, k.row)).collect())
}

/// Fills the panel's totals (each window, and the period before where the kind has one) and
/// latest readings of kind `K`: each window is its last day's running totals minus those of
/// the day before it, corrected for the days its stored rows cannot give (their stored totals
/// out, their raw totals in).
async fn panel_series<K: TrendKind>(
    conn: &mut PgConnection,
    patients: &mut [PanelPatient],
    source: DaySource,
) -> Result<(), StorageError> {
    let seen: Vec<usize> = (0..patients.len())
        .filter(|i| K::panel(&patients[*i]).is_some())
        .collect();
    if seen.is_empty() {
        return Ok(());
    }
    let subjects: Vec<&TrendSubject> = seen.iter().map(|i| &patients[*i].subject).collect();
    let stale = pending::<K>(conn, &subjects).await?;
    let mut probes = Probes::default();
    let mut windows = Vec::new();
    let mut keys = Vec::new();
    let mut wanted = Vec::new();
    for (position, &i) in seen.iter().enumerate() {
        let p = &patients[i];
        let Some(series) = K::panel(p) else { continue };
        let mut raw = BTreeSet::new();
        let periods = std::iter::once((&series.window, false)).chain(
            series
                .previous
                .as_ref()
                .map(|before| (&before.window, true)),
        );
        for (window, previous) in periods {
            windows.push(window_probes(
                &mut probes,
                (i, position),
                p.patient_id,
                (window, previous),
            ));
            let days = if source == DaySource::Raw {
                window.days.iter().map(|d| d.date).collect()
            } else {
                unusable_days::<K>(window, stale.get(&p.patient_id))
            };
            keys.extend(days.iter().map(|d| (p.patient_id, *d)));
            raw.extend(days);
        }
        wanted.push(RawDays {
            subject: &p.subject,
            floor: series.window.floor,
            ceiling: None,
            dates: raw,
        });
    }
    let running = probes.load(conn, K::DAYS_TABLE).await?;
    let stored: HashMap<(Uuid, NaiveDate), K::Totals> =
        stored_rows::<K::TotalsRow>(conn, K::DAYS_TABLE, K::TOTALS_COLUMNS, &keys)
            .await?
            .into_iter()
            .map(|(id, row)| ((id, K::row_day(&row)), K::row_totals(&row)))
            .collect();
    let computed = raw_days::<K>(conn, &wanted).await?;

    let decode = |i: usize| -> Result<K::Running, StorageError> {
        running[i]
            .as_deref()
            .map(K::decode)
            .transpose()
            .map_err(corrupt_running)
            .map(Option::unwrap_or_default)
    };
    for w in &windows {
        let end = decode(w.end)?;
        let mut totals = K::running_totals(&end).clone();
        totals -= K::running_totals(&decode(w.before)?);
        for day in computed.get(w.position).into_iter().flatten() {
            let date = K::day_date(day);
            if (w.first..=w.last).contains(&date) {
                if let Some(old) = stored.get(&(w.patient_id, date)) {
                    totals -= old;
                }
                totals += K::day_totals(day);
            }
        }
        let Some(series) = K::panel_mut(&mut patients[w.patient]) else {
            continue;
        };
        if w.previous {
            if let Some(before) = series.previous.as_mut() {
                before.totals = totals;
            }
        } else {
            let floor = series.window.floor;
            series.totals = totals;
            series.latest =
                K::running_latest(&end).filter(|l| floor.is_none_or(|f| K::latest_at(l) >= f));
        }
    }

    // A patient with work queued may have readings newer than their stored days: their latest
    // reading comes from the readings themselves.
    let unsettled: Vec<usize> = seen
        .iter()
        .copied()
        .filter(|i| source == DaySource::Raw || stale.contains_key(&patients[*i].patient_id))
        .collect();
    let bounds: Vec<(Uuid, Option<DateTime<Utc>>, DateTime<Utc>)> = unsettled
        .iter()
        .filter_map(|i| {
            let p = &patients[*i];
            K::panel(p).map(|s| (p.patient_id, s.window.floor, s.window.end()))
        })
        .collect();
    if bounds.is_empty() {
        return Ok(());
    }
    let latest: Vec<Numbered<K::PointRow>> = sqlx::query_as(&format!(
        "SELECT r.n, l.*
         FROM UNNEST($1::uuid[], $2::timestamptz[], $3::timestamptz[])
             WITH ORDINALITY AS r (patient_id, floor, until, n)
         JOIN LATERAL (
             SELECT {columns} FROM {view}
             WHERE patient_id = r.patient_id AND measured_at < r.until
               AND (r.floor IS NULL OR measured_at >= r.floor)
             ORDER BY measured_at DESC, device_id DESC LIMIT 1
         ) l ON true",
        columns = K::POINT_COLUMNS,
        view = K::READINGS_VIEW,
    ))
    .bind(bounds.iter().map(|b| b.0).collect::<Vec<_>>())
    .bind(bounds.iter().map(|b| b.1).collect::<Vec<_>>())
    .bind(bounds.iter().map(|b| b.2).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    for &i in &unsettled {
        if let Some(series) = K::panel_mut(&mut patients[i]) {
            series.latest = None;
        }
    }
    for Numbered { n, row } in latest {
        let i = usize::try_from(n - 1)
            .ok()
            .and_then(|k| unsettled.get(k).copied());
        if let Some(series) = i.and_then(|i| K::panel_mut(&mut patients[i])) {
            series.latest = Some(K::latest_of(&K::point(row)?));
        }
    }
    Ok(())
}

/// A row with its position (1-based) among the requests of a query.
#[derive(sqlx::FromRow)]
struct Numbered<T> {
    n: i64,
    #[sqlx(flatten)]
    row: T,
}

//! Trends: one patient's glucose and blood-pressure trends, and the care team's patient panel.
//!
//! Trends are read with `view_trends` (which `view_readings` includes) through the gate, and
//! clamped to the grant's `data_since`. They hold aggregates only. Under a trends-only grant no
//! individual reading is shown: an episode's nadir or peak keeps its value (an extreme of many
//! readings) but not its time, and the panel's latest reading shows its age, not its value or
//! time. Metric definitions: `docs/trends.md`.

use super::vocabulary::{GlucoseUnitName, PanelFlagName};
use super::{PatientPath, PatientRequest, page_limit, parse_name, parse_unit, permit};
use crate::AppState;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::error::refusals::{BadRequest, Forbidden, NotFound, Unauthenticated};
use axum::Json;
use axum::extract::{Query, State};
use chronicle_domain::GlucoseUnit;
use chronicle_domain::sharing::AccessAction;
use chronicle_domain::sharing::{Access, DataCategory, Principal};
use chronicle_domain::targets::GlucoseTargets;
use chronicle_domain::trends::agp::nearest_bin_width;
use chronicle_domain::trends::{
    BpSummary, GlucoseBand, GlucoseDay, GlucoseSummary, GlucoseTrend, PanelFacts, PanelFlag,
    TrendWindow, bp_summary, bp_trend, glucose_summary, glucose_trend, panel_flags, risk_score,
};
use chronicle_storage::gate::Permit;
use chronicle_storage::trends::{DaySource, PanelPatient, TrendDays, TrendSubject};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// The longest window a trend may cover, in days.
const MAX_TREND_DAYS: i64 = 366;
/// The panel's default period.
const PANEL_DAYS: u32 = 14;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(glucose_trend_endpoint))
        .routes(routes!(blood_pressure_trend_endpoint))
        .routes(routes!(panel))
}

#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct TrendQuery {
    /// The last N local days, today included (1–366, default 14). Ignored with `from`/`to`.
    days: Option<u32>,
    /// First local day (patient's zone), with `to`.
    from: Option<NaiveDate>,
    /// Last local day, included, with `from`.
    to: Option<NaiveDate>,
    /// `mg/dL` (default) or `mmol/L` (glucose values; percentages are unit-free).
    unit: Option<String>,
    /// AGP bin width in minutes: 5, 10, 15 (default), 20, 30, 60, 120 or 180.
    agp_bin_minutes: Option<u32>,
}

impl TrendQuery {
    pub(crate) fn days(&self) -> Result<TrendDays, ApiError> {
        trend_days(self.days, self.from, self.to)
    }

    /// The AGP bin width asked for, as the nearest supported width.
    pub(crate) fn agp_bin_minutes(&self) -> u32 {
        nearest_bin_width(self.agp_bin_minutes.unwrap_or(15))
    }

    pub(crate) fn unit(&self) -> Result<GlucoseUnit, ApiError> {
        parse_unit(self.unit.as_deref())
    }
}

/// The local days a period names: the last `days` (default 14), or `from`–`to` (both
/// included, at most a year).
pub(crate) fn trend_days(
    days: Option<u32>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<TrendDays, ApiError> {
    match (from, to) {
        (Some(from), Some(to)) => {
            if to < from {
                return Err(ApiError::BadRequest("to must not be before from".into()));
            }
            if (to - from).num_days() >= MAX_TREND_DAYS {
                return Err(ApiError::BadRequest(format!(
                    "a trend covers at most {MAX_TREND_DAYS} days"
                )));
            }
            Ok(TrendDays::Between(from, to))
        }
        (None, None) => {
            let days = days.unwrap_or(14);
            if !(1..=MAX_TREND_DAYS as u32).contains(&days) {
                return Err(ApiError::BadRequest(format!(
                    "days must be between 1 and {MAX_TREND_DAYS}"
                )));
            }
            Ok(TrendDays::Last(days))
        }
        _ => Err(ApiError::BadRequest(
            "give both from and to, or neither".into(),
        )),
    }
}

/// The window a trend covers.
#[derive(Debug, Serialize, ToSchema)]
struct WindowBody {
    /// First and last local day (patient's zone).
    first_day: NaiveDate,
    last_day: NaiveDate,
    /// The instants the window spans; `start` is later than the first day's midnight when the
    /// grant's `data_since` cuts into it.
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    calendar_days: usize,
    /// Set when the grant hides data before this instant.
    data_since: Option<DateTime<Utc>>,
}

impl WindowBody {
    fn of(window: &TrendWindow) -> WindowBody {
        WindowBody {
            first_day: window.first_date(),
            last_day: window.last_date(),
            start: window.start(),
            end: window.end(),
            calendar_days: window.calendar_days(),
            data_since: window.floor,
        }
    }
}

/// The patient's glucose targets, values in the response's unit.
#[derive(Debug, Serialize, ToSchema)]
struct TrendTargetsBody {
    preset: &'static str,
    range_low: f64,
    range_high: f64,
    time_in_range_min_percent: f64,
    time_below_range_max_percent: f64,
    time_below_54_max_percent: f64,
    time_above_range_max_percent: f64,
    time_above_250_max_percent: f64,
    cv_max_percent: f64,
}

impl TrendTargetsBody {
    fn of(t: &GlucoseTargets, unit: GlucoseUnit) -> TrendTargetsBody {
        TrendTargetsBody {
            preset: t.preset.as_str(),
            range_low: unit.from_mg_dl(t.range_low_mg_dl),
            range_high: unit.from_mg_dl(t.range_high_mg_dl),
            time_in_range_min_percent: t.time_in_range_min_percent,
            time_below_range_max_percent: t.time_below_range_max_percent,
            time_below_54_max_percent: t.time_below_54_max_percent,
            time_above_range_max_percent: t.time_above_range_max_percent,
            time_above_250_max_percent: t.time_above_250_max_percent,
            cv_max_percent: t.cv_max_percent,
        }
    }
}

/// Glucose metrics over a period (International Consensus on Time in Range, 2019). Times in
/// ranges are shares of the time covered by readings (each reading stands for the time until
/// the next, at most 15 minutes). `null` where there is no data.
#[derive(Debug, Serialize, ToSchema)]
struct GlucoseMetrics {
    readings: i64,
    cgm_readings: i64,
    meter_readings: i64,
    lab_readings: i64,
    days_with_data: i64,
    days_with_cgm: i64,
    calendar_days: usize,
    /// Time data could have been recorded in (up to now), and time covered by readings.
    observed_minutes: f64,
    data_minutes: f64,
    mean: Option<f64>,
    /// Sample standard deviation.
    sd: Option<f64>,
    cv_percent: Option<f64>,
    gmi_percent: Option<f64>,
    /// Below 54 mg/dL (3.0 mmol/L).
    time_very_low_percent: Option<f64>,
    /// 54 to below 70 mg/dL.
    time_low_percent: Option<f64>,
    /// 70–180 mg/dL.
    time_in_range_percent: Option<f64>,
    /// Above 180 to 250 mg/dL.
    time_high_percent: Option<f64>,
    /// Above 250 mg/dL.
    time_very_high_percent: Option<f64>,
    time_below_70_percent: Option<f64>,
    time_above_180_percent: Option<f64>,
    /// Against the patient's own target range.
    time_below_target_percent: Option<f64>,
    time_in_target_percent: Option<f64>,
    time_above_target_percent: Option<f64>,
    /// 5-minute slots with a CGM reading / slots in the observed time.
    cgm_active_percent: Option<f64>,
    /// 14 days and CGM active 70 %: otherwise the metrics are shown but marked insufficient.
    sufficient: bool,
    /// `fewer_than_14_days`, `cgm_active_below_70_percent`.
    insufficient_reasons: Vec<&'static str>,
}

impl GlucoseMetrics {
    fn of(s: &GlucoseSummary, unit: GlucoseUnit) -> GlucoseMetrics {
        let t = &s.totals;
        GlucoseMetrics {
            readings: t.readings,
            cgm_readings: t.cgm_readings,
            meter_readings: t.meter_readings,
            lab_readings: t.lab_readings,
            days_with_data: t.days_with_data,
            days_with_cgm: t.days_with_cgm,
            calendar_days: s.calendar_days,
            observed_minutes: s.observed_minutes,
            data_minutes: s.data_minutes,
            mean: s.mean_mg_dl.map(|v| unit.from_mg_dl(v)),
            sd: s.sd_mg_dl.map(|v| unit.from_mg_dl(v)),
            cv_percent: s.cv_percent,
            gmi_percent: s.gmi_percent,
            time_very_low_percent: s.percent_of(GlucoseBand::VeryLow),
            time_low_percent: s.percent_of(GlucoseBand::Low),
            time_in_range_percent: s.percent_of(GlucoseBand::InRange),
            time_high_percent: s.percent_of(GlucoseBand::High),
            time_very_high_percent: s.percent_of(GlucoseBand::VeryHigh),
            time_below_70_percent: s.below_70_percent(),
            time_above_180_percent: s.above_180_percent(),
            time_below_target_percent: s.below_target_percent(),
            time_in_target_percent: s.in_target_percent(),
            time_above_target_percent: s.above_target_percent(),
            cgm_active_percent: s.cgm_active_percent,
            sufficient: s.sufficient(),
            insufficient_reasons: s.insufficient.iter().map(|r| r.as_str()).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct DailyGlucose {
    date: NaiveDate,
    /// 23, 24 or 25 (daylight-saving days).
    hours: f64,
    #[serde(flatten)]
    metrics: GlucoseMetrics,
}

#[derive(Debug, Serialize, ToSchema)]
struct AgpBinBody {
    /// Local time of day the bin starts, `HH:MM`.
    start: String,
    readings: usize,
    p5: Option<f64>,
    p25: Option<f64>,
    p50: Option<f64>,
    p75: Option<f64>,
    p95: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct AgpBody {
    bin_minutes: u32,
    bins: Vec<AgpBinBody>,
}

#[derive(Debug, Serialize, ToSchema)]
struct EpisodeBody {
    /// `low` (< 70 mg/dL), `very_low` (< 54), `high` (> 180), `very_high` (> 250).
    kind: &'static str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    duration_minutes: f64,
    /// The lowest value of a hypo, the highest of a hyper.
    extreme: f64,
    /// When the extreme was measured; only for callers who may see individual readings.
    extreme_at: Option<DateTime<Utc>>,
    /// A hypoglycaemic episode of 120 minutes or more.
    prolonged: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GlucoseTrendBody {
    patient_id: Uuid,
    time_zone: String,
    #[schema(value_type = GlucoseUnitName)]
    unit: &'static str,
    /// Whether the caller may also read individual readings (else trends only).
    individual_readings: bool,
    window: WindowBody,
    targets: TrendTargetsBody,
    metrics: GlucoseMetrics,
    daily: Vec<DailyGlucose>,
    agp: AgpBody,
    episodes: Vec<EpisodeBody>,
}

/// The gate's answer to "may the caller see trends of this category?" (`view_trends`, which
/// `view_readings` includes), logged as `action`: each kind's trend and each rendering of it
/// (the AGP report, the FHIR CGM summary) is its own action in the patient's access log.
async fn trends_permit(
    state: &AppState,
    principal: &Principal,
    patient_id: Uuid,
    category: DataCategory,
    action: AccessAction,
) -> Result<Permit, ApiError> {
    permit(
        state,
        principal,
        patient_id,
        category,
        Access::ViewTrends,
        action,
    )
    .await
}

/// A patient's glucose trend as the trend API computes it, read under a glucose `view_trends`
/// permit (the AGP report and the FHIR CGM summary print these same figures).
pub(crate) struct GlucoseTrendRead {
    pub(crate) subject: TrendSubject,
    pub(crate) window: TrendWindow,
    pub(crate) trend: GlucoseTrend,
    /// The days as stored (their readings drive the report's daily profiles).
    pub(crate) days: Vec<GlucoseDay>,
    /// Whether the caller may also see individual readings (else trends only).
    pub(crate) individual: bool,
}

/// Asks the gate for the caller's glucose trends of `patient_id` (logged as `action`) and
/// computes the trend of `days` with AGP bins of `agp_bin_minutes`.
pub(crate) async fn read_glucose_trend(
    state: &AppState,
    principal: &Principal,
    patient_id: Uuid,
    action: AccessAction,
    days: TrendDays,
    agp_bin_minutes: u32,
) -> Result<GlucoseTrendRead, ApiError> {
    let permit = trends_permit(state, principal, patient_id, DataCategory::Glucose, action).await?;
    let (subject, window, days) = state
        .store
        .glucose_trend_days(&permit, days, Utc::now(), DaySource::Rollups)
        .await?;
    let trend = glucose_trend(&window, &days, agp_bin_minutes);
    Ok(GlucoseTrendRead {
        subject,
        window,
        trend,
        days,
        individual: permit.allowance().individual_readings,
    })
}

/// One patient's glucose trend: consensus metrics, a daily series, the Ambulatory Glucose
/// Profile and hypo-/hyperglycaemic episodes, over local days in the patient's zone.
#[utoipa::path(get, path = "/v1/patients/{patient_id}/trends/glucose", tag = "trends",
    params(TrendQuery, PatientPath),
    responses((status = 200, body = GlucoseTrendBody), BadRequest, Unauthenticated, Forbidden,
        NotFound))]
async fn glucose_trend_endpoint(
    PatientRequest(state, principal, patient_id): PatientRequest,
    Query(query): Query<TrendQuery>,
) -> Result<Json<GlucoseTrendBody>, ApiError> {
    glucose_trend_answer(&state, &principal, patient_id, &query).await
}

/// One patient's glucose trend as the API answers it, for `principal` (a user, or a share
/// link's holder).
pub(crate) async fn glucose_trend_answer(
    state: &AppState,
    principal: &Principal,
    patient_id: Uuid,
    query: &TrendQuery,
) -> Result<Json<GlucoseTrendBody>, ApiError> {
    let state = state.clone();
    let unit = query.unit()?;
    let GlucoseTrendRead {
        subject,
        window,
        trend,
        individual,
        ..
    } = read_glucose_trend(
        &state,
        principal,
        patient_id,
        AccessAction::ReadGlucoseTrend,
        query.days()?,
        query.agp_bin_minutes(),
    )
    .await?;
    let bin_minutes = query.agp_bin_minutes();
    Ok(Json(GlucoseTrendBody {
        patient_id,
        time_zone: subject.time_zone.name().to_owned(),
        unit: unit.as_str(),
        individual_readings: individual,
        window: WindowBody::of(&window),
        targets: TrendTargetsBody::of(&subject.targets, unit),
        metrics: GlucoseMetrics::of(&trend.summary, unit),
        daily: trend
            .daily
            .iter()
            .map(|(bounds, s)| DailyGlucose {
                date: bounds.date,
                hours: bounds.length_us() as f64 / 3.6e9,
                metrics: GlucoseMetrics::of(s, unit),
            })
            .collect(),
        agp: AgpBody {
            bin_minutes,
            bins: trend
                .agp
                .iter()
                .map(|b| {
                    let p = |i: usize| b.percentiles.map(|p| unit.from_mg_dl(p[i]));
                    AgpBinBody {
                        start: format!("{:02}:{:02}", b.start_minute / 60, b.start_minute % 60),
                        readings: b.readings,
                        p5: p(0),
                        p25: p(1),
                        p50: p(2),
                        p75: p(3),
                        p95: p(4),
                    }
                })
                .collect(),
        },
        episodes: trend
            .episodes
            .iter()
            .map(|e| EpisodeBody {
                kind: e.kind.as_str(),
                start: e.start,
                end: e.end,
                duration_minutes: e.duration_us() as f64 / 6e7,
                extreme: unit.from_mg_dl(e.extreme_mg_dl),
                extreme_at: individual.then_some(e.extreme_at),
                prolonged: e.prolonged,
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
struct PressurePair {
    readings: i64,
    systolic: f64,
    diastolic: f64,
}

#[derive(Debug, Serialize, ToSchema)]
struct PulseBody {
    readings: i64,
    mean: Option<f64>,
    sd: Option<f64>,
}

/// Blood-pressure metrics (mm[Hg]). The category is ACC/AHA 2017's for the mean, with the
/// guideline's home thresholds (130/80, 135/85); the higher of systolic and diastolic wins.
#[derive(Debug, Serialize, ToSchema)]
struct BloodPressureMetrics {
    readings: i64,
    days_with_data: i64,
    calendar_days: usize,
    mean_systolic: Option<f64>,
    mean_diastolic: Option<f64>,
    sd_systolic: Option<f64>,
    sd_diastolic: Option<f64>,
    /// Readings 04:00–11:59 local time.
    morning: Option<PressurePair>,
    /// Readings 16:00–23:59 local time.
    evening: Option<PressurePair>,
    /// `normal`, `elevated`, `stage_1`, `stage_2`, `crisis`.
    category: Option<&'static str>,
    /// The mean is below 90 systolic or 60 diastolic.
    low: bool,
    /// Readings with systolic ≥ 130 or diastolic ≥ 80.
    at_or_above_130_80_percent: Option<f64>,
    /// Readings with systolic ≥ 135 or diastolic ≥ 85.
    at_or_above_135_85_percent: Option<f64>,
    pulse: PulseBody,
}

impl BloodPressureMetrics {
    fn of(s: &BpSummary) -> BloodPressureMetrics {
        let pair = |n: i64, means: Option<(f64, f64)>| {
            means.map(|(systolic, diastolic)| PressurePair {
                readings: n,
                systolic,
                diastolic,
            })
        };
        BloodPressureMetrics {
            readings: s.totals.readings,
            days_with_data: s.totals.days_with_data,
            calendar_days: s.calendar_days,
            mean_systolic: s.mean_systolic,
            mean_diastolic: s.mean_diastolic,
            sd_systolic: s.sd_systolic,
            sd_diastolic: s.sd_diastolic,
            morning: pair(s.totals.morning.readings, s.morning),
            evening: pair(s.totals.evening.readings, s.evening),
            category: s.category.map(|c| c.as_str()),
            low: s.low,
            at_or_above_130_80_percent: s.at_or_above_130_80_percent,
            at_or_above_135_85_percent: s.at_or_above_135_85_percent,
            pulse: PulseBody {
                readings: s.totals.pulse_readings,
                mean: s.mean_pulse,
                sd: s.sd_pulse,
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct DailyBloodPressure {
    date: NaiveDate,
    #[serde(flatten)]
    metrics: BloodPressureMetrics,
}

/// The 7-day home-monitoring protocol: morning and evening readings of 7 consecutive days,
/// day 1 discarded, days 2–7 averaged.
#[derive(Debug, Serialize, ToSchema)]
struct HomeProtocolBody {
    discarded_day: NaiveDate,
    first_day: NaiveDate,
    last_day: NaiveDate,
    morning: Option<PressurePair>,
    evening: Option<PressurePair>,
    mean_systolic: f64,
    mean_diastolic: f64,
    category: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
struct BloodPressureTrendBody {
    patient_id: Uuid,
    time_zone: String,
    window: WindowBody,
    metrics: BloodPressureMetrics,
    daily: Vec<DailyBloodPressure>,
    /// The most recent complete 7-day run in the window; `null` when the data hold none.
    home_protocol: Option<HomeProtocolBody>,
}

/// One patient's blood-pressure trend: means (all, morning, evening), SD, category of the
/// mean with home thresholds, shares above 130/80 and 135/85, pulse, a daily series, and the
/// 7-day home protocol when the data allow.
#[utoipa::path(get, path = "/v1/patients/{patient_id}/trends/blood-pressure", tag = "trends",
    params(TrendQuery, PatientPath),
    responses((status = 200, body = BloodPressureTrendBody), BadRequest, Unauthenticated, Forbidden,
        NotFound))]
async fn blood_pressure_trend_endpoint(
    PatientRequest(state, principal, patient_id): PatientRequest,
    Query(query): Query<TrendQuery>,
) -> Result<Json<BloodPressureTrendBody>, ApiError> {
    let days = query.days()?;
    let permit = trends_permit(
        &state,
        &principal,
        patient_id,
        DataCategory::BloodPressure,
        AccessAction::ReadBloodPressureTrend,
    )
    .await?;
    let (subject, window, days) = state
        .store
        .blood_pressure_trend_days(&permit, days, Utc::now(), DaySource::Rollups)
        .await?;
    let trend = bp_trend(&window, &days);
    Ok(Json(BloodPressureTrendBody {
        patient_id,
        time_zone: subject.time_zone.name().to_owned(),
        window: WindowBody::of(&window),
        metrics: BloodPressureMetrics::of(&trend.summary),
        daily: trend
            .daily
            .iter()
            .map(|(bounds, s)| DailyBloodPressure {
                date: bounds.date,
                metrics: BloodPressureMetrics::of(s),
            })
            .collect(),
        home_protocol: trend.home_protocol.map(|h| {
            let pair = |t: &chronicle_domain::trends::blood_pressure::SessionTotals| {
                t.means().map(|(systolic, diastolic)| PressurePair {
                    readings: t.readings,
                    systolic,
                    diastolic,
                })
            };
            HomeProtocolBody {
                discarded_day: h.discarded_day,
                first_day: h.first_day,
                last_day: h.last_day,
                morning: pair(&h.morning),
                evening: pair(&h.evening),
                mean_systolic: h.mean_systolic,
                mean_diastolic: h.mean_diastolic,
                category: h.category.as_str(),
            }
        }),
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum PanelSort {
    Risk,
    Name,
    TimeInRange,
    // snake_case alone would spell these `time_below70` and `time_below54`.
    #[serde(rename = "time_below_70")]
    TimeBelow70,
    #[serde(rename = "time_below_54")]
    TimeBelow54,
    Cv,
    CgmActive,
    Latest,
    BloodPressure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum SortOrder {
    Asc,
    Desc,
}

#[derive(Debug, Deserialize, IntoParams)]
struct PanelQuery {
    /// `risk` (default: riskiest first), `name`, `time_in_range` (lowest first),
    /// `time_below_70`, `time_below_54`, `cv` (highest first), `cgm_active` (lowest first),
    /// `latest` (longest silent first), `blood_pressure` (highest mean systolic first).
    #[param(inline)]
    sort: Option<PanelSort>,
    /// Reverses the sort's natural order when given against it. Rows without the value go last.
    #[param(inline)]
    order: Option<SortOrder>,
    /// Only patients with any of these flags (comma-separated), e.g. `below_54,low_wear`.
    flag: Option<String>,
    /// Only patients with at least one flag (`true`) or none (`false`).
    flagged: Option<bool>,
    /// Only patients whose name contains this (case-insensitive).
    q: Option<String>,
    /// The period in days (7–90, default 14); the previous period has the same length.
    days: Option<u32>,
    /// `mg/dL` (default) or `mmol/L`.
    unit: Option<String>,
    /// Rows per page, 1–5000 (default 50).
    limit: Option<i64>,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
}

/// What the caller may see of a category on the panel.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum AccessLevel {
    /// Individual readings too.
    Readings,
    /// Aggregates only.
    Trends,
    None,
}

fn access_level(permit: Option<&Permit>) -> AccessLevel {
    match permit {
        Some(p) if p.allowance().individual_readings => AccessLevel::Readings,
        Some(_) => AccessLevel::Trends,
        None => AccessLevel::None,
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct PanelAccess {
    glucose: AccessLevel,
    blood_pressure: AccessLevel,
}

/// The latest reading: its value and time only for callers who may see individual readings;
/// everyone who may see trends gets its age.
#[derive(Debug, Serialize, ToSchema)]
struct LatestGlucose {
    age_minutes: i64,
    measured_at: Option<DateTime<Utc>>,
    value: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct LatestBloodPressure {
    age_minutes: i64,
    measured_at: Option<DateTime<Utc>>,
    systolic: Option<i16>,
    diastolic: Option<i16>,
}

#[derive(Debug, Serialize, ToSchema)]
struct PanelGlucoseBody {
    readings: i64,
    time_in_range_percent: Option<f64>,
    time_below_70_percent: Option<f64>,
    time_below_54_percent: Option<f64>,
    time_above_180_percent: Option<f64>,
    time_above_250_percent: Option<f64>,
    /// Against the patient's target range (70–180 unless their targets say otherwise), now
    /// and in the previous period.
    time_in_target_percent: Option<f64>,
    previous_time_in_target_percent: Option<f64>,
    target_preset: &'static str,
    mean: Option<f64>,
    cv_percent: Option<f64>,
    gmi_percent: Option<f64>,
    /// `null` when the patient wore no CGM in the period (meter only): wear does not apply.
    cgm_active_percent: Option<f64>,
    /// 14 days with the CGM active 70 % of the time.
    sufficient: bool,
    latest: Option<LatestGlucose>,
}

#[derive(Debug, Serialize, ToSchema)]
struct PanelBloodPressureBody {
    readings: i64,
    mean_systolic: Option<f64>,
    mean_diastolic: Option<f64>,
    /// ACC/AHA category of the mean (home thresholds).
    category: Option<&'static str>,
    latest: Option<LatestBloodPressure>,
}

#[derive(Debug, Serialize, ToSchema)]
struct PanelItem {
    patient_id: Uuid,
    display_name: String,
    time_zone: String,
    access: PanelAccess,
    /// `null` when the caller may not see the patient's glucose.
    glucose: Option<PanelGlucoseBody>,
    /// `null` when the caller may not see the patient's blood pressure.
    blood_pressure: Option<PanelBloodPressureBody>,
    /// Unresolved alerts in the categories whose alerts the caller receives; `null` when they
    /// receive none of this patient's alerts.
    open_alerts: Option<PanelAlertsBody>,
    /// Most severe first.
    #[schema(value_type = Vec<PanelFlagName>)]
    flags: Vec<&'static str>,
    /// Each flag outweighs all less severe flags together; higher is riskier.
    risk_score: u32,
}

#[derive(Debug, Serialize, ToSchema)]
struct PanelAlertsBody {
    /// Open, not yet acknowledged.
    open: u32,
    /// Of the open ones, the urgent.
    open_urgent: u32,
    /// Acknowledged, not yet resolved.
    acknowledged: u32,
}

#[derive(Debug, Serialize, ToSchema)]
struct PanelBody {
    items: Vec<PanelItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
    /// Rows matching the filters, over all pages.
    total: usize,
    period_days: u32,
    #[schema(value_type = GlucoseUnitName)]
    unit: &'static str,
}

/// A row with what sorting and filtering need.
struct Row {
    item: PanelItem,
    /// The name as sorted and searched (lower case).
    name_key: String,
    flags: Vec<PanelFlag>,
    below_54: Option<f64>,
    below_70: Option<f64>,
    time_in_range: Option<f64>,
    cv: Option<f64>,
    cgm_active: Option<f64>,
    latest_age: Option<i64>,
    systolic: Option<f64>,
}

fn age_minutes(now: DateTime<Utc>, at: DateTime<Utc>) -> i64 {
    (now - at).num_minutes().max(0)
}

fn panel_row(p: &PanelPatient, unit: GlucoseUnit, now: DateTime<Utc>) -> Row {
    let TrendSubject {
        time_zone, targets, ..
    } = &p.subject;
    let glucose = p.glucose.as_ref().map(|g| {
        (
            g,
            glucose_summary(&g.totals, &g.window),
            g.previous
                .as_ref()
                .map(|before| glucose_summary(&before.totals, &before.window)),
        )
    });
    let blood_pressure = p
        .blood_pressure
        .as_ref()
        .map(|b| (b, bp_summary(&b.totals, &b.window)));
    let flags = panel_flags(&PanelFacts {
        targets,
        glucose: glucose.as_ref().map(|(_, s, _)| s),
        previous_glucose: glucose.as_ref().and_then(|(_, _, s)| s.as_ref()),
        blood_pressure: blood_pressure.as_ref().map(|(_, s)| s),
        latest_glucose_at: glucose.as_ref().and_then(|(g, _, _)| g.latest.map(|l| l.0)),
        open_alerts: p.open_alerts.map_or(0, |a| a.open),
        open_urgent_alerts: p.open_alerts.map_or(0, |a| a.open_urgent),
        now,
    });
    let glucose_body = glucose.as_ref().map(|(g, s, previous)| {
        let individual = g.permit.allowance().individual_readings;
        PanelGlucoseBody {
            readings: s.totals.readings,
            time_in_range_percent: s.percent_of(GlucoseBand::InRange),
            time_below_70_percent: s.below_70_percent(),
            time_below_54_percent: s.percent_of(GlucoseBand::VeryLow),
            time_above_180_percent: s.above_180_percent(),
            time_above_250_percent: s.percent_of(GlucoseBand::VeryHigh),
            time_in_target_percent: s.in_target_percent(),
            previous_time_in_target_percent: previous
                .as_ref()
                .and_then(|before| before.in_target_percent()),
            target_preset: targets.preset.as_str(),
            mean: s.mean_mg_dl.map(|v| unit.from_mg_dl(v)),
            cv_percent: s.cv_percent,
            gmi_percent: s.gmi_percent,
            cgm_active_percent: s.cgm_active_percent.filter(|_| s.totals.cgm_readings > 0),
            sufficient: s.sufficient(),
            latest: g.latest.map(|(at, value)| LatestGlucose {
                age_minutes: age_minutes(now, at),
                measured_at: individual.then_some(at),
                value: individual.then(|| unit.from_mg_dl(value)),
            }),
        }
    });
    let bp_body = blood_pressure.as_ref().map(|(b, s)| {
        let individual = b.permit.allowance().individual_readings;
        PanelBloodPressureBody {
            readings: s.totals.readings,
            mean_systolic: s.mean_systolic,
            mean_diastolic: s.mean_diastolic,
            category: s.category.map(|c| c.as_str()),
            latest: b
                .latest
                .map(|(at, systolic, diastolic)| LatestBloodPressure {
                    age_minutes: age_minutes(now, at),
                    measured_at: individual.then_some(at),
                    systolic: individual.then_some(systolic),
                    diastolic: individual.then_some(diastolic),
                }),
        }
    });
    let latest_age = [
        glucose_body
            .as_ref()
            .and_then(|g| g.latest.as_ref().map(|l| l.age_minutes)),
        bp_body
            .as_ref()
            .and_then(|b| b.latest.as_ref().map(|l| l.age_minutes)),
    ]
    .into_iter()
    .flatten()
    .min();
    let summary = glucose.as_ref().map(|(_, s, _)| s);
    Row {
        below_54: summary.and_then(|s| s.percent_of(GlucoseBand::VeryLow)),
        below_70: summary.and_then(|s| s.below_70_percent()),
        time_in_range: summary.and_then(|s| s.percent_of(GlucoseBand::InRange)),
        cv: summary.and_then(|s| s.cv_percent),
        cgm_active: summary
            .filter(|s| s.totals.cgm_readings > 0)
            .and_then(|s| s.cgm_active_percent),
        latest_age,
        systolic: blood_pressure.as_ref().and_then(|(_, s)| s.mean_systolic),
        name_key: p.display_name.to_lowercase(),
        item: PanelItem {
            patient_id: p.patient_id,
            display_name: p.display_name.clone(),
            time_zone: time_zone.name().to_owned(),
            access: PanelAccess {
                glucose: access_level(p.glucose.as_ref().map(|g| &g.permit)),
                blood_pressure: access_level(p.blood_pressure.as_ref().map(|b| &b.permit)),
            },
            glucose: glucose_body,
            blood_pressure: bp_body,
            open_alerts: p.open_alerts.map(|a| PanelAlertsBody {
                open: a.open,
                open_urgent: a.open_urgent,
                acknowledged: a.acknowledged,
            }),
            flags: flags.iter().map(|f| f.as_str()).collect(),
            risk_score: risk_score(&flags),
        },
        flags,
    }
}

/// Compares optional values with `None` last whatever the order.
fn by_value(a: Option<f64>, b: Option<f64>, order: SortOrder) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => {
            let o = x.total_cmp(&y);
            if order == SortOrder::Desc {
                o.reverse()
            } else {
                o
            }
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// The care team's patient panel: every patient the caller may see, with the latest reading
/// and its age, time in range, below and above range, CV, CGM wear and the blood-pressure
/// category over the last 14 days, flags, and a risk order. Sortable, filterable, paginated.
/// Each patient's glucose and blood-pressure decisions are in their access log
/// (`read_panel`).
#[utoipa::path(get, path = "/v1/panel", tag = "trends", params(PanelQuery),
    responses((status = 200, body = PanelBody), BadRequest, Unauthenticated))]
async fn panel(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(query): Query<PanelQuery>,
) -> Result<Json<PanelBody>, ApiError> {
    let unit = parse_unit(query.unit.as_deref())?;
    let days = query.days.unwrap_or(PANEL_DAYS);
    if !(7..=90).contains(&days) {
        return Err(ApiError::BadRequest("days must be between 7 and 90".into()));
    }
    let limit = page_limit(query.limit, 50)?;
    let offset: usize = match query.cursor.as_deref() {
        None => 0,
        Some(c) => c
            .parse()
            .map_err(|_| ApiError::BadRequest("invalid cursor".into()))?,
    };
    let wanted_flags: Vec<PanelFlag> = query
        .flag
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|f| parse_name(f, "flag", PanelFlag::parse))
        .collect::<Result<_, _>>()?;
    let name_filter = query.q.as_deref().map(str::to_lowercase);

    let now = Utc::now();
    let patients = state
        .store
        .panel(&principal, days, now, DaySource::Rollups)
        .await?;
    let mut rows: Vec<Row> = patients
        .iter()
        .map(|p| panel_row(p, unit, now))
        .filter(|r| wanted_flags.is_empty() || r.flags.iter().any(|f| wanted_flags.contains(f)))
        .filter(|r| query.flagged.is_none_or(|want| want != r.flags.is_empty()))
        .filter(|r| {
            name_filter
                .as_deref()
                .is_none_or(|q| r.name_key.contains(q))
        })
        .collect();

    let sort = query.sort.unwrap_or(PanelSort::Risk);
    let natural = match sort {
        PanelSort::Name | PanelSort::TimeInRange | PanelSort::CgmActive => SortOrder::Asc,
        _ => SortOrder::Desc,
    };
    let order = query.order.unwrap_or(natural);
    rows.sort_by(|a, b| {
        let primary = match sort {
            PanelSort::Risk => {
                let o = a.item.risk_score.cmp(&b.item.risk_score);
                let o = if order == SortOrder::Desc {
                    o.reverse()
                } else {
                    o
                };
                // Within a score: more time below 54, then below 70, then less in range.
                o.then(by_value(a.below_54, b.below_54, SortOrder::Desc))
                    .then(by_value(a.below_70, b.below_70, SortOrder::Desc))
                    .then(by_value(a.time_in_range, b.time_in_range, SortOrder::Asc))
            }
            PanelSort::Name => Ordering::Equal,
            PanelSort::TimeInRange => by_value(a.time_in_range, b.time_in_range, order),
            PanelSort::TimeBelow70 => by_value(a.below_70, b.below_70, order),
            PanelSort::TimeBelow54 => by_value(a.below_54, b.below_54, order),
            PanelSort::Cv => by_value(a.cv, b.cv, order),
            PanelSort::CgmActive => by_value(a.cgm_active, b.cgm_active, order),
            PanelSort::Latest => by_value(
                a.latest_age.map(|v| v as f64),
                b.latest_age.map(|v| v as f64),
                order,
            ),
            PanelSort::BloodPressure => by_value(a.systolic, b.systolic, order),
        };
        let names = a.name_key.cmp(&b.name_key);
        let names = if sort == PanelSort::Name && order == SortOrder::Desc {
            names.reverse()
        } else {
            names
        };
        primary
            .then(names)
            .then(a.item.patient_id.cmp(&b.item.patient_id))
    });
    let total = rows.len();
    let end = offset.saturating_add(limit as usize).min(total);
    let items: Vec<PanelItem> = rows
        .into_iter()
        .skip(offset)
        .take(end.saturating_sub(offset))
        .map(|r| r.item)
        .collect();
    Ok(Json(PanelBody {
        items,
        next_cursor: (end < total).then(|| end.to_string()),
        total,
        period_days: days,
        unit: unit.as_str(),
    }))
}

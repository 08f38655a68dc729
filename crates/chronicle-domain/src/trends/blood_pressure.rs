//! Blood-pressure summaries for home monitoring: means (all, morning, evening), SD, the
//! ACC/AHA 2017 category of the mean with the guideline's home thresholds, shares of readings
//! at or above 130/80 and 135/85, pulse, and the 7-day home protocol.
//!
//! As for glucose, a window is a sum of per-day [`BpTotals`]: integers (pressures are whole
//! mm[Hg]), so stored days and raw readings give the same numbers exactly.

use super::calendar::{DayBounds, TrendWindow};
use super::glucose::mean_sd;
use chrono::{DateTime, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use std::ops::{AddAssign, SubAssign};

/// A blood-pressure reading as trends use it (mm[Hg], pulse per minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpPoint {
    pub at: DateTime<Utc>,
    pub systolic: i64,
    pub diastolic: i64,
    pub pulse: Option<i64>,
}

/// When a home reading was taken, by the patient's local clock. Home monitoring asks for a
/// morning session (after waking, before medication) and an evening one; readings at other
/// times count in the overall figures only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// 04:00–11:59 local time.
    Morning,
    /// 16:00–23:59 local time.
    Evening,
}

pub fn session_of(at: DateTime<Utc>, zone: Tz) -> Option<Session> {
    match at.with_timezone(&zone).hour() {
        4..=11 => Some(Session::Morning),
        16..=23 => Some(Session::Evening),
        _ => None,
    }
}

/// Sums of one session's readings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionTotals {
    pub readings: i64,
    pub sum_systolic: i64,
    pub sum_diastolic: i64,
}

impl SessionTotals {
    fn add(&mut self, p: &BpPoint) {
        self.readings += 1;
        self.sum_systolic += p.systolic;
        self.sum_diastolic += p.diastolic;
    }

    /// Mean systolic and diastolic.
    pub fn means(&self) -> Option<(f64, f64)> {
        (self.readings > 0).then(|| {
            (
                self.sum_systolic as f64 / self.readings as f64,
                self.sum_diastolic as f64 / self.readings as f64,
            )
        })
    }
}

impl AddAssign<&SessionTotals> for SessionTotals {
    fn add_assign(&mut self, o: &SessionTotals) {
        self.readings += o.readings;
        self.sum_systolic += o.sum_systolic;
        self.sum_diastolic += o.sum_diastolic;
    }
}

impl SubAssign<&SessionTotals> for SessionTotals {
    fn sub_assign(&mut self, o: &SessionTotals) {
        self.readings -= o.readings;
        self.sum_systolic -= o.sum_systolic;
        self.sum_diastolic -= o.sum_diastolic;
    }
}

/// Additive sums over days; a day's are stored as its rollup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BpTotals {
    pub readings: i64,
    pub days_with_data: i64,
    pub sum_systolic: i64,
    pub sum_sq_systolic: i64,
    pub sum_diastolic: i64,
    pub sum_sq_diastolic: i64,
    pub morning: SessionTotals,
    pub evening: SessionTotals,
    /// Readings with systolic ≥ 130 or diastolic ≥ 80 (stage 1 or more, home and office).
    pub at_or_above_130_80: i64,
    /// Readings with systolic ≥ 135 or diastolic ≥ 85 (home stage 2, office 140/90).
    pub at_or_above_135_85: i64,
    pub pulse_readings: i64,
    pub sum_pulse: i64,
    pub sum_sq_pulse: i64,
}

impl AddAssign<&BpTotals> for BpTotals {
    fn add_assign(&mut self, o: &BpTotals) {
        self.readings += o.readings;
        self.days_with_data += o.days_with_data;
        self.sum_systolic += o.sum_systolic;
        self.sum_sq_systolic += o.sum_sq_systolic;
        self.sum_diastolic += o.sum_diastolic;
        self.sum_sq_diastolic += o.sum_sq_diastolic;
        self.morning += &o.morning;
        self.evening += &o.evening;
        self.at_or_above_130_80 += o.at_or_above_130_80;
        self.at_or_above_135_85 += o.at_or_above_135_85;
        self.pulse_readings += o.pulse_readings;
        self.sum_pulse += o.sum_pulse;
        self.sum_sq_pulse += o.sum_sq_pulse;
    }
}

impl SubAssign<&BpTotals> for BpTotals {
    fn sub_assign(&mut self, o: &BpTotals) {
        self.readings -= o.readings;
        self.days_with_data -= o.days_with_data;
        self.sum_systolic -= o.sum_systolic;
        self.sum_sq_systolic -= o.sum_sq_systolic;
        self.sum_diastolic -= o.sum_diastolic;
        self.sum_sq_diastolic -= o.sum_sq_diastolic;
        self.morning -= &o.morning;
        self.evening -= &o.evening;
        self.at_or_above_130_80 -= o.at_or_above_130_80;
        self.at_or_above_135_85 -= o.at_or_above_135_85;
        self.pulse_readings -= o.pulse_readings;
        self.sum_pulse -= o.sum_pulse;
        self.sum_sq_pulse -= o.sum_sq_pulse;
    }
}

/// One local day of a patient's blood pressure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpDay {
    pub date: NaiveDate,
    pub totals: BpTotals,
    /// The day's latest reading: when, systolic, diastolic.
    pub latest: Option<(DateTime<Utc>, i64, i64)>,
}

impl BpDay {
    pub fn empty(date: NaiveDate) -> BpDay {
        BpDay {
            date,
            totals: BpTotals::default(),
            latest: None,
        }
    }
}

/// Computes one day from readings (any superset of the day's, in any order); readings before
/// `floor` are ignored.
pub fn bp_day(
    day: &DayBounds,
    points: &[BpPoint],
    floor: Option<DateTime<Utc>>,
    zone: Tz,
) -> BpDay {
    let from = floor.map_or(day.start, |f| f.max(day.start));
    let mut t = BpTotals::default();
    let mut latest: Option<(DateTime<Utc>, i64, i64)> = None;
    for p in points.iter().filter(|p| p.at >= from && p.at < day.end) {
        if latest.is_none_or(|(at, _, _)| p.at >= at) {
            latest = Some((p.at, p.systolic, p.diastolic));
        }
        t.readings += 1;
        t.sum_systolic += p.systolic;
        t.sum_sq_systolic += p.systolic * p.systolic;
        t.sum_diastolic += p.diastolic;
        t.sum_sq_diastolic += p.diastolic * p.diastolic;
        match session_of(p.at, zone) {
            Some(Session::Morning) => t.morning.add(p),
            Some(Session::Evening) => t.evening.add(p),
            None => {}
        }
        t.at_or_above_130_80 += i64::from(p.systolic >= 130 || p.diastolic >= 80);
        t.at_or_above_135_85 += i64::from(p.systolic >= 135 || p.diastolic >= 85);
        if let Some(pulse) = p.pulse {
            t.pulse_readings += 1;
            t.sum_pulse += pulse;
            t.sum_sq_pulse += pulse * pulse;
        }
    }
    t.days_with_data = i64::from(t.readings > 0);
    BpDay {
        date: day.date,
        totals: t,
        latest,
    }
}

/// ACC/AHA 2017 blood-pressure categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BpCategory {
    Normal,
    Elevated,
    Stage1,
    Stage2,
    /// Hypertensive crisis: systolic > 180 and/or diastolic > 120.
    Crisis,
}

impl BpCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            BpCategory::Normal => "normal",
            BpCategory::Elevated => "elevated",
            BpCategory::Stage1 => "stage_1",
            BpCategory::Stage2 => "stage_2",
            BpCategory::Crisis => "crisis",
        }
    }
}

/// The category of a home mean with the 2017 guideline's home-equivalent thresholds (office
/// 130/80 ↔ home 130/80, office 140/90 ↔ home 135/85). Systolic and diastolic are judged
/// apart and the higher category wins. The mean is compared unrounded: 134.9 is stage 1.
pub fn home_category(systolic: f64, diastolic: f64) -> BpCategory {
    let by_systolic = if systolic > 180.0 {
        BpCategory::Crisis
    } else if systolic >= 135.0 {
        BpCategory::Stage2
    } else if systolic >= 130.0 {
        BpCategory::Stage1
    } else if systolic >= 120.0 {
        BpCategory::Elevated
    } else {
        BpCategory::Normal
    };
    // "Elevated" is defined by systolic pressure alone.
    let by_diastolic = if diastolic > 120.0 {
        BpCategory::Crisis
    } else if diastolic >= 85.0 {
        BpCategory::Stage2
    } else if diastolic >= 80.0 {
        BpCategory::Stage1
    } else {
        BpCategory::Normal
    };
    by_systolic.max(by_diastolic)
}

/// Hypotension: systolic < 90 or diastolic < 60.
pub fn is_low(systolic: f64, diastolic: f64) -> bool {
    systolic < 90.0 || diastolic < 60.0
}

/// Blood-pressure metrics over a period.
#[derive(Debug, Clone, PartialEq)]
pub struct BpSummary {
    pub totals: BpTotals,
    pub calendar_days: usize,
    pub mean_systolic: Option<f64>,
    pub mean_diastolic: Option<f64>,
    pub sd_systolic: Option<f64>,
    pub sd_diastolic: Option<f64>,
    pub morning: Option<(f64, f64)>,
    pub evening: Option<(f64, f64)>,
    /// The category of the mean (home thresholds); `None` without readings.
    pub category: Option<BpCategory>,
    /// The mean is hypotensive.
    pub low: bool,
    pub at_or_above_130_80_percent: Option<f64>,
    pub at_or_above_135_85_percent: Option<f64>,
    pub mean_pulse: Option<f64>,
    pub sd_pulse: Option<f64>,
}

pub fn bp_summary(t: &BpTotals, window: &TrendWindow) -> BpSummary {
    let sums =
        |sum: i64, sum_sq: i64| mean_sd(t.readings, i128::from(sum), i128::from(sum_sq), 1.0);
    let (mean_systolic, sd_systolic) = sums(t.sum_systolic, t.sum_sq_systolic);
    let (mean_diastolic, sd_diastolic) = sums(t.sum_diastolic, t.sum_sq_diastolic);
    let (mean_pulse, sd_pulse) = mean_sd(
        t.pulse_readings,
        i128::from(t.sum_pulse),
        i128::from(t.sum_sq_pulse),
        1.0,
    );
    let share = |n: i64| (t.readings > 0).then(|| n as f64 / t.readings as f64 * 100.0);
    let means = mean_systolic.zip(mean_diastolic);
    BpSummary {
        totals: *t,
        calendar_days: window.calendar_days(),
        mean_systolic,
        mean_diastolic,
        sd_systolic,
        sd_diastolic,
        morning: t.morning.means(),
        evening: t.evening.means(),
        category: means.map(|(s, d)| home_category(s, d)),
        low: means.is_some_and(|(s, d)| is_low(s, d)),
        at_or_above_130_80_percent: share(t.at_or_above_130_80),
        at_or_above_135_85_percent: share(t.at_or_above_135_85),
        mean_pulse,
        sd_pulse,
    }
}

/// Days a home-monitoring run lasts; its first day is discarded.
pub const HOME_PROTOCOL_DAYS: usize = 7;

/// A 7-day home-monitoring result: days 2–7 of a run averaged, morning and evening apart.
#[derive(Debug, Clone, PartialEq)]
pub struct HomeProtocol {
    /// The run's first day, discarded (readings on a first day run high).
    pub discarded_day: NaiveDate,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub morning: SessionTotals,
    pub evening: SessionTotals,
    /// Mean of the morning and evening readings of days 2–7.
    pub mean_systolic: f64,
    pub mean_diastolic: f64,
    pub category: BpCategory,
}

/// The most recent 7-day home-monitoring run in `days` (one entry per calendar day, oldest
/// first): 7 consecutive days of which days 2–7 each have at least one morning and one evening
/// reading. `None` when the data hold no such run.
pub fn home_protocol(days: &[BpDay]) -> Option<HomeProtocol> {
    if days.len() < HOME_PROTOCOL_DAYS {
        return None;
    }
    let complete = |d: &BpDay| d.totals.morning.readings > 0 && d.totals.evening.readings > 0;
    for end in (HOME_PROTOCOL_DAYS - 1..days.len()).rev() {
        let run = &days[end + 1 - HOME_PROTOCOL_DAYS..=end];
        let consecutive = run
            .windows(2)
            .all(|w| w[0].date.succ_opt() == Some(w[1].date));
        if !consecutive || !run[1..].iter().all(complete) {
            continue;
        }
        let mut morning = SessionTotals::default();
        let mut evening = SessionTotals::default();
        for d in &run[1..] {
            morning += &d.totals.morning;
            evening += &d.totals.evening;
        }
        let n = (morning.readings + evening.readings) as f64;
        let mean_systolic = (morning.sum_systolic + evening.sum_systolic) as f64 / n;
        let mean_diastolic = (morning.sum_diastolic + evening.sum_diastolic) as f64 / n;
        return Some(HomeProtocol {
            discarded_day: run[0].date,
            first_day: run[1].date,
            last_day: run[HOME_PROTOCOL_DAYS - 1].date,
            morning,
            evening,
            mean_systolic,
            mean_diastolic,
            category: home_category(mean_systolic, mean_diastolic),
        });
    }
    None
}

/// A blood-pressure trend: the window's summary, one summary per day, the home protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct BpTrend {
    pub summary: BpSummary,
    pub daily: Vec<(DayBounds, BpSummary)>,
    pub home_protocol: Option<HomeProtocol>,
}

/// The trend of `window` from its days (matched by date; missing days are empty).
pub fn bp_trend(window: &TrendWindow, days: &[BpDay]) -> BpTrend {
    let aligned: Vec<BpDay> = window
        .days
        .iter()
        .map(|d| {
            days.iter()
                .find(|x| x.date == d.date)
                .copied()
                .unwrap_or_else(|| BpDay::empty(d.date))
        })
        .collect();
    let mut totals = BpTotals::default();
    for d in &aligned {
        totals += &d.totals;
    }
    BpTrend {
        summary: bp_summary(&totals, window),
        daily: window
            .days
            .iter()
            .zip(&aligned)
            .map(|(bounds, d)| (*bounds, bp_summary(&d.totals, &window.single_day(bounds))))
            .collect(),
        home_protocol: home_protocol(&aligned),
    }
}

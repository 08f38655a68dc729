//! Glucose metrics of the International Consensus on Time in Range (Battelino et al., Diabetes
//! Care 2019): mean, SD, CV, GMI, time in the five ranges by duration, CGM active time and
//! data sufficiency, per day and over a window.
//!
//! Everything a window needs is a sum of per-day [`GlucoseTotals`], which are integers
//! (counts, microseconds, thousandths of mg/dL), so adding them in any order — in Rust or in
//! SQL — gives the same result, and a trend from stored day rollups equals one from the raw
//! readings exactly.

use super::calendar::{DayBounds, MICROS_PER_MINUTE, TrendWindow, micros};
use super::samples::Sample;
use crate::reading::GlucoseSource;
use crate::targets::GlucoseTargets;
use chrono::{DateTime, NaiveDate, Utc};
use std::ops::{AddAssign, SubAssign};

/// How long a reading may stand for. Each reading stands for the time until the next one, at
/// most this long; a longer silence is a gap, counted as no data. For a CGM, 15 minutes bridges
/// up to two missed 5-minute readings and exactly covers sensors that send every 15 minutes.
/// A finger-stick or laboratory value says nothing about glucose much later either: it stands
/// for at most the same quarter hour, so a meter user's readings weigh equally (time in range
/// "by readings", as the consensus allows for self-monitoring).
pub fn duration_cap_us(source: GlucoseSource) -> i64 {
    match source {
        GlucoseSource::Cgm => 15 * MICROS_PER_MINUTE,
        GlucoseSource::Meter => 15 * MICROS_PER_MINUTE,
        GlucoseSource::Lab => 15 * MICROS_PER_MINUTE,
    }
}

/// The longest cap of any source: how far a day's computation looks into its neighbours.
pub const MAX_DURATION_CAP_US: i64 = 15 * MICROS_PER_MINUTE;

/// The nominal CGM interval of the consensus (288 readings a day): CGM active time counts the
/// 5-minute slots holding at least one CGM reading.
pub const CGM_SLOT_US: i64 = 5 * MICROS_PER_MINUTE;

/// The start of the 5-minute CGM slot `at` lies in.
pub fn cgm_slot_start(at: DateTime<Utc>) -> DateTime<Utc> {
    super::calendar::from_micros(micros(at).div_euclid(CGM_SLOT_US) * CGM_SLOT_US)
}

/// Data sufficiency (consensus): at least 14 days, with the CGM active at least 70 % of the time.
pub const SUFFICIENT_DAYS: usize = 14;
pub const SUFFICIENT_ACTIVE_PERCENT: f64 = 70.0;

/// The five consensus ranges, exact in mg/dL: very low < 54, low 54–<70, in range 70–180,
/// high >180–250, very high > 250. 53.9 is very low, 54 low, 70 and 180 in range, 180.1 high,
/// 250 high, 250.1 very high. Values in mmol/L are converted to mg/dL before classifying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GlucoseBand {
    VeryLow,
    Low,
    InRange,
    High,
    VeryHigh,
}

impl GlucoseBand {
    pub const ALL: [GlucoseBand; 5] = [
        GlucoseBand::VeryLow,
        GlucoseBand::Low,
        GlucoseBand::InRange,
        GlucoseBand::High,
        GlucoseBand::VeryHigh,
    ];

    pub fn of(mg_dl: f64) -> GlucoseBand {
        if mg_dl < 54.0 {
            GlucoseBand::VeryLow
        } else if mg_dl < 70.0 {
            GlucoseBand::Low
        } else if mg_dl <= 180.0 {
            GlucoseBand::InRange
        } else if mg_dl <= 250.0 {
            GlucoseBand::High
        } else {
            GlucoseBand::VeryHigh
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GlucoseBand::VeryLow => "very_low",
            GlucoseBand::Low => "low",
            GlucoseBand::InRange => "in_range",
            GlucoseBand::High => "high",
            GlucoseBand::VeryHigh => "very_high",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where a value lies against the patient's own target range (inclusive at both ends).
fn target_index(mg_dl: f64, targets: &GlucoseTargets) -> usize {
    if mg_dl < targets.range_low_mg_dl {
        0
    } else if mg_dl <= targets.range_high_mg_dl {
        1
    } else {
        2
    }
}

/// A glucose reading as trends use it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GlucosePoint {
    pub at: DateTime<Utc>,
    pub mg_dl: f64,
    pub source: GlucoseSource,
}

/// A value in thousandths of mg/dL: the resolution of the sums behind mean and SD, so they are
/// exact integers (values are validated to lie in (0, 1000] mg/dL).
pub fn milli_mg_dl(mg_dl: f64) -> i64 {
    (mg_dl * 1000.0).round() as i64
}

/// Additive sums over days. A day's totals are stored as its rollup; a window's are the sum of
/// its days'.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GlucoseTotals {
    /// Readings measured in the period, of every source.
    pub readings: i64,
    pub cgm_readings: i64,
    pub meter_readings: i64,
    pub lab_readings: i64,
    /// 5-minute slots (of the Unix epoch) holding at least one CGM reading.
    pub cgm_slots: i64,
    /// Days with at least one reading, and with at least one CGM reading.
    pub days_with_data: i64,
    pub days_with_cgm: i64,
    /// Σ value and Σ value², values in thousandths of mg/dL.
    pub sum_milli: i64,
    pub sum_sq_milli: i128,
    /// Time within the period each consensus band held, microseconds (index: [`GlucoseBand`]).
    pub band_us: [i64; 5],
    /// Time below, within and above the patient's target range, microseconds.
    pub target_us: [i64; 3],
}

impl GlucoseTotals {
    /// Time covered by readings.
    pub fn data_us(&self) -> i64 {
        self.band_us.iter().sum()
    }

    /// Whether the period holds any reading or any time covered by one.
    pub fn is_empty(&self) -> bool {
        self.readings == 0 && self.data_us() == 0
    }
}

impl AddAssign<&GlucoseTotals> for GlucoseTotals {
    fn add_assign(&mut self, other: &GlucoseTotals) {
        self.readings += other.readings;
        self.cgm_readings += other.cgm_readings;
        self.meter_readings += other.meter_readings;
        self.lab_readings += other.lab_readings;
        self.cgm_slots += other.cgm_slots;
        self.days_with_data += other.days_with_data;
        self.days_with_cgm += other.days_with_cgm;
        self.sum_milli += other.sum_milli;
        self.sum_sq_milli += other.sum_sq_milli;
        for i in 0..5 {
            self.band_us[i] += other.band_us[i];
        }
        for i in 0..3 {
            self.target_us[i] += other.target_us[i];
        }
    }
}

impl SubAssign<&GlucoseTotals> for GlucoseTotals {
    fn sub_assign(&mut self, other: &GlucoseTotals) {
        self.readings -= other.readings;
        self.cgm_readings -= other.cgm_readings;
        self.meter_readings -= other.meter_readings;
        self.lab_readings -= other.lab_readings;
        self.cgm_slots -= other.cgm_slots;
        self.days_with_data -= other.days_with_data;
        self.days_with_cgm -= other.days_with_cgm;
        self.sum_milli -= other.sum_milli;
        self.sum_sq_milli -= other.sum_sq_milli;
        for i in 0..5 {
            self.band_us[i] -= other.band_us[i];
        }
        for i in 0..3 {
            self.target_us[i] -= other.target_us[i];
        }
    }
}

/// One local day of a patient's glucose: its totals and its readings (for the AGP and
/// episodes). This is what a day rollup stores.
#[derive(Debug, Clone, PartialEq)]
pub struct GlucoseDay {
    pub date: NaiveDate,
    pub totals: GlucoseTotals,
    pub samples: Vec<Sample>,
}

impl GlucoseDay {
    /// The day's latest reading: when, and its value.
    pub fn latest(&self) -> Option<(DateTime<Utc>, f64)> {
        self.samples.last().map(|s| (s.at, s.mg_dl))
    }

    pub fn empty(date: NaiveDate) -> GlucoseDay {
        GlucoseDay {
            date,
            totals: GlucoseTotals::default(),
            samples: Vec::new(),
        }
    }
}

/// A day being summed up, one reading at a time, in time order.
struct DayFold<'t> {
    /// The day's usable time (from its start or the floor) to its end, in microseconds.
    from: i64,
    to: i64,
    targets: &'t GlucoseTargets,
    totals: GlucoseTotals,
    samples: Vec<Sample>,
    /// The 5-minute slot of the day's latest CGM reading so far.
    last_cgm_slot: Option<i64>,
}

impl DayFold<'_> {
    /// Adds a reading that stands for `duration`: its time within the day goes to its band
    /// and target range, and a reading measured within the day counts itself.
    fn add(&mut self, p: &GlucosePoint, duration: i64) {
        let at = micros(p.at);
        let covered = ((at + duration).min(self.to) - at.max(self.from)).max(0);
        self.cover(p.mg_dl, covered);
        if at < self.from {
            return;
        }
        let totals = &mut self.totals;
        totals.readings += 1;
        match p.source {
            GlucoseSource::Cgm => {
                totals.cgm_readings += 1;
                let slot = at.div_euclid(CGM_SLOT_US);
                if self.last_cgm_slot != Some(slot) {
                    totals.cgm_slots += 1;
                    self.last_cgm_slot = Some(slot);
                }
            }
            GlucoseSource::Meter => totals.meter_readings += 1,
            GlucoseSource::Lab => totals.lab_readings += 1,
        }
        let milli = milli_mg_dl(p.mg_dl);
        totals.sum_milli += milli;
        totals.sum_sq_milli += i128::from(milli) * i128::from(milli);
        self.samples.push(Sample {
            at: p.at,
            mg_dl: p.mg_dl,
            duration_us: duration,
        });
    }

    /// Counts `us` more (or, negative, less) of the day's time at `mg_dl`.
    fn cover(&mut self, mg_dl: f64, us: i64) {
        self.totals.band_us[GlucoseBand::of(mg_dl).index()] += us;
        self.totals.target_us[target_index(mg_dl, self.targets)] += us;
    }

    fn finish(mut self, date: NaiveDate) -> GlucoseDay {
        self.totals.days_with_data = i64::from(self.totals.readings > 0);
        self.totals.days_with_cgm = i64::from(self.totals.cgm_readings > 0);
        GlucoseDay {
            date,
            totals: self.totals,
            samples: self.samples,
        }
    }
}

/// How long each of `points` (in time order) stands for: until the next one, at most its cap.
fn durations(points: &[&GlucosePoint]) -> impl Iterator<Item = i64> {
    points.iter().enumerate().map(|(i, p)| {
        let cap = duration_cap_us(p.source);
        points
            .get(i + 1)
            .map_or(cap, |next| (micros(next.at) - micros(p.at)).min(cap))
    })
}

/// Computes one day from the readings around it.
///
/// `points` must be sorted by time and hold every reading from `day.start − cap` to
/// `day.end + cap` (more is fine): the readings just before the day stand for time within it,
/// and the first reading after it ends the last reading's duration. Each reading's duration is
/// split at the day's boundaries. Readings before `floor` are ignored as if they did not exist.
pub fn glucose_day(
    day: &DayBounds,
    points: &[GlucosePoint],
    floor: Option<DateTime<Utc>>,
    targets: &GlucoseTargets,
) -> GlucoseDay {
    let usable: Vec<&GlucosePoint> = points
        .iter()
        .filter(|p| floor.is_none_or(|f| p.at >= f))
        .collect();
    let day_start = micros(day.start);
    let mut fold = DayFold {
        from: floor.map_or(day_start, |f| micros(f).max(day_start)),
        to: micros(day.end),
        targets,
        totals: GlucoseTotals::default(),
        samples: Vec::new(),
        last_cgm_slot: None,
    };
    for (p, duration) in usable.iter().zip(durations(&usable)) {
        let at = micros(p.at);
        if at + duration_cap_us(p.source) < fold.from || at >= fold.to {
            continue;
        }
        fold.add(p, duration);
    }
    fold.finish(day.date)
}

/// Continues `day` (computed by [`glucose_day`] without a floor) with `new` readings, measured
/// after all of its own, without reading the day again: what a rollup does when a patient's
/// readings arrive in order. `tail` holds the day's readings from the start of the 5-minute
/// slot of its latest reading on (that reading included), `new` every reading measured after
/// it up to a cap beyond the day; both in time order, ties by device as [`glucose_day`] gets
/// them.
///
/// The result equals [`glucose_day`] over all the readings. That holds when nothing of the
/// change reaches the neighbouring days: the day's latest reading and every new one end more
/// than their cap before midnight. Otherwise (or when `tail` does not end in the day's latest
/// reading) the answer is `None`, and the day is to be computed again.
pub fn continue_glucose_day(
    day: &GlucoseDay,
    bounds: &DayBounds,
    tail: &[GlucosePoint],
    new: &[GlucosePoint],
    targets: &GlucoseTargets,
) -> Option<GlucoseDay> {
    let to = micros(bounds.end);
    let before_midnight = |p: &GlucosePoint| micros(p.at) + duration_cap_us(p.source) < to;
    let latest = tail.last()?;
    let stored = day.samples.last()?;
    let first_new = new.first()?;
    let continues = stored.at == latest.at
        && stored.mg_dl.to_bits() == latest.mg_dl.to_bits()
        // Nothing followed it within its cap when the day was computed.
        && stored.duration_us == duration_cap_us(latest.source)
        && first_new.at > latest.at
        && new.windows(2).all(|w| w[0].at <= w[1].at)
        && before_midnight(latest)
        && new.iter().all(before_midnight);
    if !continues {
        return None;
    }
    let day_start = micros(bounds.start);
    let mut fold = DayFold {
        from: day_start,
        to,
        targets,
        totals: day.totals,
        samples: day.samples.clone(),
        // Readings before the tail lie in earlier slots; the day counts its own slots only.
        last_cgm_slot: tail
            .iter()
            .rev()
            .find(|p| p.source == GlucoseSource::Cgm && micros(p.at) >= day_start)
            .map(|p| micros(p.at).div_euclid(CGM_SLOT_US)),
    };
    // The day's latest reading now stands until the first new one.
    let shortened = (micros(first_new.at) - micros(latest.at)).min(stored.duration_us);
    fold.cover(latest.mg_dl, shortened - stored.duration_us);
    if let Some(last) = fold.samples.last_mut() {
        last.duration_us = shortened;
    }
    let new: Vec<&GlucosePoint> = new.iter().collect();
    for (p, duration) in new.iter().zip(durations(&new)) {
        fold.add(p, duration);
    }
    Some(fold.finish(day.date))
}

/// Why metrics are marked insufficient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insufficiency {
    /// The window covers fewer than 14 days.
    FewerThan14Days,
    /// The CGM was active less than 70 % of the window.
    CgmActiveBelow70Percent,
}

impl Insufficiency {
    pub fn as_str(self) -> &'static str {
        match self {
            Insufficiency::FewerThan14Days => "fewer_than_14_days",
            Insufficiency::CgmActiveBelow70Percent => "cgm_active_below_70_percent",
        }
    }
}

/// Glucose metrics over a period. Values in mg/dL, shares in percent.
#[derive(Debug, Clone, PartialEq)]
pub struct GlucoseSummary {
    pub totals: GlucoseTotals,
    /// Calendar days of the period (a daylight-saving day counts as one).
    pub calendar_days: usize,
    /// Time data could have been recorded in (the period up to now), minutes.
    pub observed_minutes: f64,
    /// Time covered by readings, minutes.
    pub data_minutes: f64,
    /// Mean and standard deviation (sample SD, n − 1) of all readings; `None` without readings
    /// (SD: with fewer than two).
    pub mean_mg_dl: Option<f64>,
    pub sd_mg_dl: Option<f64>,
    /// SD / mean × 100.
    pub cv_percent: Option<f64>,
    /// Glucose management indicator: 3.31 + 0.02392 × mean (mg/dL) (Bergenstal et al. 2018).
    pub gmi_percent: Option<f64>,
    /// Share of the covered time in each consensus band (index: [`GlucoseBand`]).
    pub band_percent: Option<[f64; 5]>,
    /// Share of the covered time below, within and above the patient's target range.
    pub target_percent: Option<[f64; 3]>,
    /// CGM slots with a reading / 5-minute slots in the observed time, at most 100.
    pub cgm_active_percent: Option<f64>,
    /// Empty when the data suffice (14 days, CGM active 70 %).
    pub insufficient: Vec<Insufficiency>,
}

impl GlucoseSummary {
    pub fn sufficient(&self) -> bool {
        self.insufficient.is_empty()
    }

    pub fn percent_of(&self, band: GlucoseBand) -> Option<f64> {
        self.band_percent.map(|p| p[band.index()])
    }

    /// Time below 70 mg/dL (low and very low).
    pub fn below_70_percent(&self) -> Option<f64> {
        self.band_percent.map(|p| p[0] + p[1])
    }

    /// Time above 180 mg/dL (high and very high).
    pub fn above_180_percent(&self) -> Option<f64> {
        self.band_percent.map(|p| p[3] + p[4])
    }

    pub fn below_target_percent(&self) -> Option<f64> {
        self.target_percent.map(|p| p[0])
    }

    pub fn in_target_percent(&self) -> Option<f64> {
        self.target_percent.map(|p| p[1])
    }

    pub fn above_target_percent(&self) -> Option<f64> {
        self.target_percent.map(|p| p[2])
    }
}

/// Mean and sample SD from integer sums, exactly: the same sums give the same bits.
pub(crate) fn mean_sd(n: i64, sum: i128, sum_sq: i128, scale: f64) -> (Option<f64>, Option<f64>) {
    if n <= 0 {
        return (None, None);
    }
    let mean = sum as f64 / n as f64 / scale;
    if n < 2 {
        return (Some(mean), None);
    }
    let n = i128::from(n);
    let numerator = (n * sum_sq - sum * sum).max(0);
    let variance = numerator as f64 / (n * (n - 1)) as f64 / (scale * scale);
    (Some(mean), Some(variance.sqrt()))
}

fn percents<const N: usize>(parts: [i64; N]) -> Option<[f64; N]> {
    let total: i64 = parts.iter().sum();
    (total > 0).then(|| parts.map(|p| p as f64 / total as f64 * 100.0))
}

/// The metrics of `totals` over `window` (its observed time, calendar days and sufficiency).
pub fn glucose_summary(totals: &GlucoseTotals, window: &TrendWindow) -> GlucoseSummary {
    let (mean, sd) = mean_sd(
        totals.readings,
        i128::from(totals.sum_milli),
        totals.sum_sq_milli,
        1000.0,
    );
    let observed = window.total_observed_us();
    let cgm_active = (observed > 0).then(|| {
        let expected = observed as f64 / CGM_SLOT_US as f64;
        (totals.cgm_slots as f64 / expected * 100.0).min(100.0)
    });
    let calendar_days = window.calendar_days();
    let mut insufficient = Vec::new();
    if calendar_days < SUFFICIENT_DAYS {
        insufficient.push(Insufficiency::FewerThan14Days);
    }
    if cgm_active.is_none_or(|a| a < SUFFICIENT_ACTIVE_PERCENT) {
        insufficient.push(Insufficiency::CgmActiveBelow70Percent);
    }
    GlucoseSummary {
        totals: *totals,
        calendar_days,
        observed_minutes: observed as f64 / MICROS_PER_MINUTE as f64,
        data_minutes: totals.data_us() as f64 / MICROS_PER_MINUTE as f64,
        mean_mg_dl: mean,
        sd_mg_dl: sd,
        cv_percent: mean.zip(sd).map(|(m, s)| s / m * 100.0),
        gmi_percent: mean.map(|m| 3.31 + 0.02392 * m),
        band_percent: percents(totals.band_us),
        target_percent: percents(totals.target_us),
        cgm_active_percent: cgm_active,
        insufficient,
    }
}

/// Sums the totals of `days`.
pub fn sum_totals<'a>(days: impl IntoIterator<Item = &'a GlucoseDay>) -> GlucoseTotals {
    let mut totals = GlucoseTotals::default();
    for day in days {
        totals += &day.totals;
    }
    totals
}

//! Days and windows in a patient's IANA time zone. A day runs from one local midnight to the
//! next, so a daylight-saving day lasts 23 or 25 hours; a window is a run of such days.

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

pub(crate) const MICROS_PER_SECOND: i64 = 1_000_000;
pub(crate) const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;

/// Microseconds since the Unix epoch: the resolution readings are stored with.
pub(crate) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(crate) fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// One local calendar day: `[start, end)` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayBounds {
    pub date: NaiveDate,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl DayBounds {
    /// The day `date` in `zone`.
    pub fn of(zone: Tz, date: NaiveDate) -> DayBounds {
        let next = date.checked_add_days(Days::new(1)).unwrap_or(date);
        DayBounds {
            date,
            start: local_midnight(zone, date),
            end: local_midnight(zone, next),
        }
    }

    /// The day's length in microseconds (23, 24 or 25 hours around daylight-saving changes).
    pub fn length_us(&self) -> i64 {
        micros(self.end) - micros(self.start)
    }
}

/// The instant a local day begins. Where midnight does not exist (a zone that springs forward
/// at 00:00) the day begins at the first local time that does; where it exists twice, at the
/// first of them.
fn local_midnight(zone: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut local = date.and_time(NaiveTime::MIN);
    // Daylight-saving gaps last at most a few hours; a day has 1440 minutes.
    for _ in 0..1440 {
        if let Some(at) = zone.from_local_datetime(&local).earliest() {
            return at.with_timezone(&Utc);
        }
        local += chrono::Duration::minutes(1);
    }
    date.and_time(NaiveTime::MIN).and_utc()
}

/// The local calendar date of an instant.
pub fn local_date(zone: Tz, at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&zone).date_naive()
}

/// The days a trend looks at, in the patient's zone, with the limits every read applies.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendWindow {
    pub zone: Tz,
    /// The calendar days, oldest first; never empty.
    pub days: Vec<DayBounds>,
    /// Nothing measured before this instant is used (a sharing grant's `data_since`).
    pub floor: Option<DateTime<Utc>>,
    /// The time of the request: data cannot be expected after it.
    pub now: DateTime<Utc>,
}

impl TrendWindow {
    /// The local days `first..=last` (swapped if given backwards), without the days that end
    /// at or before `floor`. When the floor removes every day, the window keeps the last day,
    /// which then holds nothing that may be used.
    pub fn new(
        zone: Tz,
        first: NaiveDate,
        last: NaiveDate,
        floor: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> TrendWindow {
        let (first, last) = if first <= last {
            (first, last)
        } else {
            (last, first)
        };
        let mut days: Vec<DayBounds> = first
            .iter_days()
            .take_while(|d| *d <= last)
            .map(|d| DayBounds::of(zone, d))
            .filter(|d| floor.is_none_or(|f| d.end > f))
            .collect();
        if days.is_empty() {
            days.push(DayBounds::of(zone, last));
        }
        TrendWindow {
            zone,
            days,
            floor,
            now,
        }
    }

    /// The `days` local days ending today (today included), as a panel or a default trend
    /// shows them.
    pub fn ending_today(
        zone: Tz,
        days: u32,
        floor: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> TrendWindow {
        let today = local_date(zone, now);
        TrendWindow::ending_on(zone, today, days, floor, now)
    }

    /// The `days` local days ending on `last` (included).
    pub fn ending_on(
        zone: Tz,
        last: NaiveDate,
        days: u32,
        floor: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> TrendWindow {
        let first = last
            .checked_sub_days(Days::new(u64::from(days.max(1) - 1)))
            .unwrap_or(last);
        TrendWindow::new(zone, first, last, floor, now)
    }

    pub fn first_date(&self) -> NaiveDate {
        self.days[0].date
    }

    pub fn last_date(&self) -> NaiveDate {
        self.days[self.days.len() - 1].date
    }

    /// Where the window begins: the first day's start, or the floor when it lies later.
    pub fn start(&self) -> DateTime<Utc> {
        let start = self.days[0].start;
        self.floor.map_or(start, |f| f.max(start))
    }

    pub fn end(&self) -> DateTime<Utc> {
        self.days[self.days.len() - 1].end
    }

    /// How many calendar days the window covers (the floor's day counts).
    pub fn calendar_days(&self) -> usize {
        self.days.iter().filter(|d| self.observed_us(d) > 0).count()
    }

    /// The part of `day` that lies in the window and in the past: the time data could have
    /// been recorded in.
    pub fn observed_us(&self, day: &DayBounds) -> i64 {
        let from = self.floor.map_or(day.start, |f| f.max(day.start));
        let to = day.end.min(self.now);
        (micros(to) - micros(from)).max(0)
    }

    /// The observed time of the whole window.
    pub fn total_observed_us(&self) -> i64 {
        self.days.iter().map(|d| self.observed_us(d)).sum()
    }

    /// Whether `day` must be computed from the raw readings because the floor cuts into the
    /// readings it depends on (its own, or the previous day's last ones whose durations reach
    /// into it). Stored day rollups are only ever used for days the floor leaves whole.
    pub fn clips(&self, day: &DayBounds) -> bool {
        self.floor
            .is_some_and(|f| micros(f) > micros(day.start) - super::glucose::MAX_DURATION_CAP_US)
    }

    /// The same window reduced to one of its days (for daily series).
    pub fn single_day(&self, day: &DayBounds) -> TrendWindow {
        TrendWindow {
            zone: self.zone,
            days: vec![*day],
            floor: self.floor,
            now: self.now,
        }
    }
}

//! Quiet hours: a daily span, in the receiver's own time zone, in which their non-urgent
//! alert notifications wait until it ends. Urgent alarms are never held back: a very low
//! glucose at 3 a.m. is exactly what must wake someone.

use super::Severity;
use crate::zone::Tz;
use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub starts: NaiveTime,
    pub ends: NaiveTime,
    pub zone: Tz,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum InvalidQuietHours {
    #[error("quiet hours must start and end at different times")]
    Empty,
}

impl QuietHours {
    /// A span from `starts` to `ends` local time; it crosses midnight when `ends` is earlier.
    pub fn new(
        starts: NaiveTime,
        ends: NaiveTime,
        zone: Tz,
    ) -> Result<QuietHours, InvalidQuietHours> {
        if starts == ends {
            return Err(InvalidQuietHours::Empty);
        }
        Ok(QuietHours { starts, ends, zone })
    }

    /// When the span `now` falls in ends, or `None` outside it.
    pub fn end_of_span(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&self.zone);
        let time = local.time();
        let date = local.date_naive();
        let end_date = if self.starts < self.ends {
            (self.starts <= time && time < self.ends).then_some(date)?
        } else if time >= self.starts {
            date.succ_opt()?
        } else if time < self.ends {
            date
        } else {
            return None;
        };
        let end = end_date.and_time(self.ends);
        // A local time the clocks skip (spring forward) ends the span an hour later.
        let resolved = self.zone.from_local_datetime(&end).earliest().or_else(|| {
            self.zone
                .from_local_datetime(&(end + Duration::hours(1)))
                .earliest()
        })?;
        Some(resolved.with_timezone(&Utc))
    }

    /// Until when a notification of `severity` waits at `now`: never for an urgent one.
    pub fn holds_back(&self, severity: Severity, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if severity == Severity::Urgent {
            return None;
        }
        self.end_of_span(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn night(zone: Tz) -> QuietHours {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).expect("time");
        QuietHours::new(t(22, 0), t(7, 0), zone).expect("quiet hours")
    }

    #[test]
    fn a_night_span_crosses_midnight_in_the_receivers_zone() {
        let q = night(Tz::Europe__Berlin);
        // 23:30 in Berlin (UTC+1 in December): until 07:00 the next morning.
        assert_eq!(
            q.end_of_span(at("2026-12-04T22:30:00Z")),
            Some(at("2026-12-05T06:00:00Z"))
        );
        // 03:00 in Berlin: until 07:00 the same morning.
        assert_eq!(
            q.end_of_span(at("2026-12-05T02:00:00Z")),
            Some(at("2026-12-05T06:00:00Z"))
        );
        // 12:00 in Berlin: not quiet; 07:00 exactly is no longer quiet.
        assert_eq!(q.end_of_span(at("2026-12-05T11:00:00Z")), None);
        assert_eq!(q.end_of_span(at("2026-12-05T06:00:00Z")), None);
        assert_eq!(
            q.end_of_span(at("2026-12-04T21:00:00Z")),
            Some(at("2026-12-05T06:00:00Z")),
            "22:00 starts it"
        );
    }

    #[test]
    fn a_daytime_span_and_a_spring_forward_night() {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).expect("time");
        let nap = QuietHours::new(t(13, 0), t(14, 30), Tz::UTC).expect("quiet hours");
        assert_eq!(
            nap.end_of_span(at("2026-06-01T13:10:00Z")),
            Some(at("2026-06-01T14:30:00Z"))
        );
        assert_eq!(nap.end_of_span(at("2026-06-01T12:59:00Z")), None);
        // Quiet until 02:30 on the night Berlin skips from 02:00 to 03:00: it ends at 03:30.
        let short = QuietHours::new(t(22, 0), t(2, 30), Tz::Europe__Berlin).expect("quiet hours");
        assert_eq!(
            short.end_of_span(at("2026-03-28T23:00:00Z")),
            Some(at("2026-03-29T01:30:00Z"))
        );
        assert_eq!(
            QuietHours::new(t(8, 0), t(8, 0), Tz::UTC),
            Err(InvalidQuietHours::Empty)
        );
    }

    #[test]
    fn urgent_alarms_are_never_held_back() {
        let q = night(Tz::UTC);
        let three_am = at("2026-12-05T03:00:00Z");
        assert_eq!(q.holds_back(Severity::Urgent, three_am), None);
        assert_eq!(
            q.holds_back(Severity::Warning, three_am),
            Some(at("2026-12-05T07:00:00Z"))
        );
        assert_eq!(
            q.holds_back(Severity::Info, three_am),
            Some(at("2026-12-05T07:00:00Z"))
        );
    }
}

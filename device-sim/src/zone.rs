//! Patients' time zones.
//!
//! A patient lives in one IANA zone and its devices stamp readings with that zone's UTC offset;
//! meals, sleep and measurements follow local clock time. To stay exact without a time-zone
//! database, the built-in zones are ones that keep **one offset all year** (no daylight saving
//! time), so the name and the offset never disagree. A caller may build any [`Zone`] it likes.

use chrono::{DateTime, FixedOffset, Offset, Utc};
use thiserror::Error;

/// A named time zone with a fixed UTC offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// The IANA name, e.g. `Asia/Kolkata`.
    pub name: String,
    offset: FixedOffset,
}

/// The offset is not a whole number of minutes within ±18 h.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("UTC offset of {minutes} minutes for zone {name:?} is outside ±18 h")]
pub struct InvalidOffset {
    pub name: String,
    pub minutes: i32,
}

impl Zone {
    /// A zone called `name` whose clocks are `offset_minutes` ahead of UTC.
    pub fn new(name: impl Into<String>, offset_minutes: i32) -> Result<Zone, InvalidOffset> {
        let name = name.into();
        match offset_minutes
            .checked_mul(60)
            .and_then(FixedOffset::east_opt)
        {
            Some(offset) => Ok(Zone { name, offset }),
            None => Err(InvalidOffset {
                name,
                minutes: offset_minutes,
            }),
        }
    }

    /// UTC itself.
    pub fn utc() -> Zone {
        Zone {
            name: "Etc/UTC".into(),
            offset: Utc.fix(),
        }
    }

    /// The UTC offset, as a chrono offset.
    pub fn offset(&self) -> FixedOffset {
        self.offset
    }

    /// Minutes the local clock is ahead of UTC.
    pub fn offset_minutes(&self) -> i32 {
        self.offset.local_minus_utc() / 60
    }

    /// `instant` on this zone's clock.
    pub fn local(&self, instant: DateTime<Utc>) -> DateTime<FixedOffset> {
        instant.with_timezone(&self.offset)
    }

    /// The built-in zone called `name` (any letter case), if there is one.
    pub fn builtin_named(name: &str) -> Option<Zone> {
        Zone::builtin()
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            // Every built-in offset is valid (the module's tests build them all).
            .and_then(|(n, offset)| Zone::new(*n, *offset).ok())
    }

    /// Zones without daylight saving time (as of tzdata 2024), used for generated patients:
    /// their fixed offset is always right.
    pub fn builtin() -> &'static [(&'static str, i32)] {
        &[
            ("Etc/UTC", 0),
            ("Africa/Lagos", 60),
            ("Africa/Johannesburg", 120),
            ("Africa/Nairobi", 180),
            ("Asia/Dubai", 240),
            ("Asia/Karachi", 300),
            ("Asia/Kolkata", 330),
            ("Asia/Singapore", 480),
            ("Asia/Tokyo", 540),
            ("Australia/Brisbane", 600),
            ("America/Sao_Paulo", -180),
            ("America/Bogota", -300),
            ("America/Regina", -360),
            ("America/Phoenix", -420),
            ("Pacific/Honolulu", -600),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_checked() {
        assert_eq!(
            Zone::new("Asia/Kolkata", 330)
                .expect("valid offset")
                .offset_minutes(),
            330
        );
        assert!(Zone::new("Nowhere", 24 * 60).is_err());
        for (name, minutes) in Zone::builtin() {
            assert!(Zone::new(*name, *minutes).is_ok());
        }
    }
}

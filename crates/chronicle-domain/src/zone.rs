//! Patients' time zones. Each patient has an IANA zone (`Europe/Berlin`), never a fixed
//! offset: days and times of day in trends follow the zone, so a daylight-saving day has 23 or
//! 25 hours.

pub use chrono_tz::Tz;

/// The text is not an IANA time zone name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {0:?}: use an IANA name such as Europe/Berlin or America/New_York")]
pub struct UnknownTimeZone(pub String);

/// Parses an IANA zone name (exact spelling, e.g. `America/Phoenix`, or `UTC`).
pub fn parse_time_zone(name: &str) -> Result<Tz, UnknownTimeZone> {
    name.parse::<Tz>()
        .map_err(|_| UnknownTimeZone(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iana_names_only() {
        assert_eq!(parse_time_zone("Europe/Berlin"), Ok(Tz::Europe__Berlin));
        assert_eq!(parse_time_zone("UTC"), Ok(Tz::UTC));
        assert!(parse_time_zone("+01:00").is_err());
        assert!(parse_time_zone("Mars/Olympus").is_err());
    }
}

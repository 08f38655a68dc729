//! Devices: who publishes readings, and what kind of readings they may publish.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A device identifier as it appears in MQTT topics and the registry: 1–64 characters of
/// lowercase ASCII letters, digits, `-` and `_`, so it is safe inside a topic level and a URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DeviceId(String);

/// The text is not a valid device id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid device id {0:?}: use 1-64 characters of a-z, 0-9, '-' and '_'")]
pub struct InvalidDeviceId(pub String);

impl DeviceId {
    pub fn parse(s: &str) -> Result<Self, InvalidDeviceId> {
        let valid = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if valid {
            Ok(DeviceId(s.to_owned()))
        } else {
            Err(InvalidDeviceId(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DeviceId {
    type Err = InvalidDeviceId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeviceId::parse(s)
    }
}

impl<'de> Deserialize<'de> for DeviceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DeviceId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What a device measures. A device only publishes readings of its own kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// Continuous glucose monitor.
    Cgm,
    /// Finger-stick glucometer.
    Meter,
    /// Blood-pressure cuff.
    Bp,
}

impl DeviceKind {
    pub const ALL: [DeviceKind; 3] = [DeviceKind::Cgm, DeviceKind::Meter, DeviceKind::Bp];

    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Cgm => "cgm",
            DeviceKind::Meter => "meter",
            DeviceKind::Bp => "bp",
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not a device kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown device kind {0:?}: expected cgm, meter or bp")]
pub struct UnknownDeviceKind(pub String);

impl FromStr for DeviceKind {
    type Err = UnknownDeviceKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeviceKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownDeviceKind(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids() {
        assert!(DeviceId::parse("dev_abc-123").is_ok());
        for bad in ["", "UPPER", "a/b", "a+b", "#", &"x".repeat(65)] {
            assert!(DeviceId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn device_kinds_round_trip() {
        for kind in DeviceKind::ALL {
            assert_eq!(kind.as_str().parse(), Ok(kind));
        }
        assert!("pump".parse::<DeviceKind>().is_err());
    }
}

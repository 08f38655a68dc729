//! Devices: who publishes readings, and what kind of readings they may publish.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The text forms of an identifier newtype whose `parse` checks it: `as_str`, `Display`,
/// `FromStr`, and a `Deserialize` that refuses what `parse` refuses.
macro_rules! text_id {
    ($id:ident, $invalid:ident) => {
        impl $id {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $id {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $id {
            type Err = $invalid;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $id::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $id {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $id::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

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
}

text_id!(DeviceId, InvalidDeviceId);

/// A gateway identifier: `gw_` and 12 characters of a-z and 0-9. A gateway is one MQTT
/// identity (a patient's phone app, a home hub, a clinic's bedside gateway, the simulator's
/// load mode) that relays readings for the devices registered with it. The prefix keeps the
/// gateways' and the devices' names apart in the broker's one username space.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct GatewayId(String);

/// The text is not a valid gateway id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid gateway id {0:?}: expected gw_ and 12 characters of a-z and 0-9")]
pub struct InvalidGatewayId(pub String);

impl GatewayId {
    pub const PREFIX: &'static str = "gw_";

    pub fn parse(s: &str) -> Result<Self, InvalidGatewayId> {
        let valid = s.strip_prefix(Self::PREFIX).is_some_and(|rest| {
            rest.len() == 12
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
        if valid {
            Ok(GatewayId(s.to_owned()))
        } else {
            Err(InvalidGatewayId(s.to_owned()))
        }
    }
}

text_id!(GatewayId, InvalidGatewayId);

/// Who put a message on the wire, as the broker authenticated it: the device itself, or a
/// gateway relaying for it. Where the broker says (the embedded one does), the ingest checks
/// it against the registry as a second line behind the broker's own authorization.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Publisher {
    Device(DeviceId),
    Gateway(GatewayId),
}

impl Publisher {
    /// The identity's name: its MQTT username.
    pub fn as_str(&self) -> &str {
        match self {
            Publisher::Device(id) => id.as_str(),
            Publisher::Gateway(id) => id.as_str(),
        }
    }
}

impl fmt::Display for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
    /// A Nightscout uploader (xDrip+, AndroidAPS, Loop, a vendor-cloud bridge): an app that
    /// relays a patient's CGM and meter glucose and treatments over HTTP. It has no MQTT login:
    /// its only front door is the patient's Nightscout site (docs/nightscout.md).
    Uploader,
}

impl DeviceKind {
    pub const ALL: [DeviceKind; 4] = [
        DeviceKind::Cgm,
        DeviceKind::Meter,
        DeviceKind::Bp,
        DeviceKind::Uploader,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Cgm => "cgm",
            DeviceKind::Meter => "meter",
            DeviceKind::Bp => "bp",
            DeviceKind::Uploader => "uploader",
        }
    }

    /// Whether the kind logs in to the MQTT broker (an uploader only speaks HTTP).
    pub fn uses_mqtt(self) -> bool {
        self != DeviceKind::Uploader
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not a device kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown device kind {0:?}: expected cgm, meter, bp or uploader")]
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
    fn gateway_ids() {
        assert!(GatewayId::parse("gw_k3v9q2m8x1ab").is_ok());
        for bad in [
            "",
            "gw_",
            "gw_short",
            "gw_K3V9Q2M8X1AB",
            "dev_k3v9q2m8x1ab",
            "gw_k3v9q2m8x1ab0",
        ] {
            assert!(GatewayId::parse(bad).is_err(), "{bad:?} should be rejected");
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

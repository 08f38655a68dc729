//! Fault injection: what can go wrong between a device and Chronicle, each switchable with a
//! rate, and what Chronicle must answer to each.
//!
//! Faults that corrupt a message are injected as **extra** messages derived from a real one
//! (a truncated copy, a copy with a value out of range, ...), so the real readings still
//! arrive intact and what is stored can be compared with the simulated trace. Faults that
//! change delivery (duplicates, reordering, an offline spell, a reconnection) act on the real
//! messages and must lose nothing.

use chronicle_domain::RejectionReason;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// A kind of fault the simulator can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// A copy of a message cut in half: not JSON.
    MalformedJson,
    /// A copy of a reading with an impossible value (glucose 0, systolic 400).
    OutOfRange,
    /// A copy of a reading in a unit Chronicle does not accept (`mg`, `kPa`).
    WrongUnit,
    /// A copy of a reading without its `measured_at`.
    MissingField,
    /// A copy of a reading stamped an hour beyond the allowed clock skew.
    FutureTimestamp,
    /// A message resent after it was acknowledged.
    Duplicate,
    /// A message held back and sent after the device's next one.
    OutOfOrder,
    /// The device goes offline for 2–6 hours (simulated) and then syncs its backlog in
    /// batch messages.
    OfflineBacklog,
    /// A copy of a reading padded beyond the server's message limit.
    Oversized,
    /// A second connection with the device's client id takes over its session; the device
    /// resends whatever was not acknowledged.
    Reconnect,
}

impl FaultKind {
    pub const ALL: [FaultKind; 10] = [
        FaultKind::MalformedJson,
        FaultKind::OutOfRange,
        FaultKind::WrongUnit,
        FaultKind::MissingField,
        FaultKind::FutureTimestamp,
        FaultKind::Duplicate,
        FaultKind::OutOfOrder,
        FaultKind::OfflineBacklog,
        FaultKind::Oversized,
        FaultKind::Reconnect,
    ];

    /// The name on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::MalformedJson => "malformed_json",
            FaultKind::OutOfRange => "out_of_range",
            FaultKind::WrongUnit => "wrong_unit",
            FaultKind::MissingField => "missing_field",
            FaultKind::FutureTimestamp => "future_timestamp",
            FaultKind::Duplicate => "duplicate",
            FaultKind::OutOfOrder => "out_of_order",
            FaultKind::OfflineBacklog => "offline_backlog",
            FaultKind::Oversized => "oversized",
            FaultKind::Reconnect => "reconnect",
        }
    }

    /// The refusal Chronicle must answer the fault with, if any (`docs/protocol.md`).
    pub fn expected_rejection(self) -> Option<RejectionReason> {
        match self {
            FaultKind::MalformedJson => Some(RejectionReason::MalformedJson),
            FaultKind::OutOfRange => Some(RejectionReason::OutOfRange),
            FaultKind::WrongUnit => Some(RejectionReason::UnknownUnit),
            FaultKind::MissingField => Some(RejectionReason::MissingField),
            FaultKind::FutureTimestamp => Some(RejectionReason::FutureTimestamp),
            FaultKind::Oversized => Some(RejectionReason::MessageTooLarge),
            FaultKind::Duplicate
            | FaultKind::OutOfOrder
            | FaultKind::OfflineBacklog
            | FaultKind::Reconnect => None,
        }
    }

    /// The expected outcome in words, for reports and `--help`.
    pub fn expected_outcome(self) -> &'static str {
        match self {
            FaultKind::MalformedJson => "rejected malformed_json (whole message, counted 1)",
            FaultKind::OutOfRange => "rejected out_of_range",
            FaultKind::WrongUnit => "rejected unknown_unit",
            FaultKind::MissingField => "rejected missing_field",
            FaultKind::FutureTimestamp => "rejected future_timestamp",
            FaultKind::Duplicate => "every reading a duplicate, none stored twice",
            FaultKind::OutOfOrder => "stored",
            FaultKind::OfflineBacklog => "stored (late)",
            FaultKind::Oversized => "rejected message_too_large (whole message, counted 1)",
            FaultKind::Reconnect => "nothing lost: every message answered once reconnected",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `--fault` argument that could not be read.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FaultSpecError {
    #[error("unknown fault {0:?}: expected all or one of {names}", names = FaultKind::ALL.map(FaultKind::as_str).join(", "))]
    UnknownFault(String),
    #[error("fault rate in {0:?} must be a probability between 0 and 1 (NAME=RATE)")]
    BadRate(String),
}

impl FromStr for FaultKind {
    type Err = FaultSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().replace('-', "_");
        FaultKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(&s))
            .ok_or(FaultSpecError::UnknownFault(s))
    }
}

/// The rate of each enabled fault: the probability per real message that it is injected
/// (for `offline_backlog`, that the device goes offline at that message; for `reconnect`,
/// that its connection is taken over before it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultRates(BTreeMap<FaultKind, f64>);

impl FaultRates {
    pub fn none() -> FaultRates {
        FaultRates::default()
    }

    /// Every fault at `rate`.
    pub fn all(rate: f64) -> FaultRates {
        FaultRates(FaultKind::ALL.into_iter().map(|k| (k, rate)).collect())
    }

    pub fn set(&mut self, kind: FaultKind, rate: f64) {
        if rate > 0.0 {
            self.0.insert(kind, rate.min(1.0));
        } else {
            self.0.remove(&kind);
        }
    }

    pub fn rate(&self, kind: FaultKind) -> f64 {
        self.0.get(&kind).copied().unwrap_or(0.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn enabled(&self) -> impl Iterator<Item = (FaultKind, f64)> + '_ {
        self.0.iter().map(|(k, r)| (*k, *r))
    }

    /// Adds one `NAME=RATE` (or `all=RATE`) specification.
    pub fn add_spec(&mut self, spec: &str) -> Result<(), FaultSpecError> {
        let (name, rate) = spec
            .split_once('=')
            .ok_or_else(|| FaultSpecError::BadRate(spec.to_owned()))?;
        let rate: f64 = rate
            .trim()
            .parse()
            .ok()
            .filter(|r: &f64| (0.0..=1.0).contains(r))
            .ok_or_else(|| FaultSpecError::BadRate(spec.to_owned()))?;
        if name.trim().eq_ignore_ascii_case("all") {
            for kind in FaultKind::ALL {
                self.set(kind, rate);
            }
        } else {
            self.set(name.parse()?, rate);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let mut rates = FaultRates::none();
        rates.add_spec("all=0.1").expect("valid");
        rates.add_spec("duplicate=0.5").expect("valid");
        rates.add_spec("out-of-order=0").expect("valid");
        assert_eq!(rates.rate(FaultKind::Duplicate), 0.5);
        assert_eq!(rates.rate(FaultKind::MalformedJson), 0.1);
        assert_eq!(rates.rate(FaultKind::OutOfOrder), 0.0);
        assert!(rates.add_spec("gremlins=0.1").is_err());
        assert!(rates.add_spec("duplicate=2").is_err());
        assert!(rates.add_spec("duplicate").is_err());
    }
}

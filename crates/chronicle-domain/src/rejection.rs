//! Why Chronicle refused a reading or a whole message. The codes are part of the public
//! protocol (`docs/protocol.md`): devices and dashboards match on them, so never rename one.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionReason {
    /// The payload is not a JSON object, or not one of the documented shapes.
    MalformedJson,
    /// The payload is larger than the ingest's message limit.
    MessageTooLarge,
    /// A batch holds more readings than the ingest's per-message limit.
    TooManyReadings,
    /// A batch with no readings in it.
    EmptyBatch,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type or an unparseable value.
    InvalidField,
    /// The reading's `type` is not one Chronicle knows.
    UnknownType,
    /// The unit is not one Chronicle accepts for that measurement.
    UnknownUnit,
    /// A value outside the plausible range for the measurement.
    OutOfRange,
    /// `measured_at` is not RFC 3339 with an explicit UTC offset.
    InvalidTimestamp,
    /// `measured_at` lies further in the future than the allowed clock skew.
    FutureTimestamp,
    /// `measured_at` lies further in the past than the ingest accepts: a clock reset to its
    /// epoch, or history that belongs in an import rather than a device's upload.
    StaleTimestamp,
    /// The device is not in the registry.
    UnknownDevice,
    /// The device was revoked.
    RevokedDevice,
    /// The reading's type or source does not match the kind of device that sent it.
    WrongDeviceKind,
    /// The identity that published the message may not publish for the device it names: the
    /// broker refused it, or the ingest's own check of the broker's word did.
    NotAuthorized,
    /// The database refused to store the message although it passed validation (it holds a
    /// value the database cannot hold). Refused alone, so it holds up no other message.
    NotStorable,
}

impl RejectionReason {
    pub const ALL: [RejectionReason; 17] = [
        RejectionReason::MalformedJson,
        RejectionReason::MessageTooLarge,
        RejectionReason::TooManyReadings,
        RejectionReason::EmptyBatch,
        RejectionReason::MissingField,
        RejectionReason::InvalidField,
        RejectionReason::UnknownType,
        RejectionReason::UnknownUnit,
        RejectionReason::OutOfRange,
        RejectionReason::InvalidTimestamp,
        RejectionReason::FutureTimestamp,
        RejectionReason::StaleTimestamp,
        RejectionReason::UnknownDevice,
        RejectionReason::RevokedDevice,
        RejectionReason::WrongDeviceKind,
        RejectionReason::NotAuthorized,
        RejectionReason::NotStorable,
    ];

    /// The stable code used on the wire, in the database and in metrics labels.
    pub fn code(self) -> &'static str {
        match self {
            RejectionReason::MalformedJson => "malformed_json",
            RejectionReason::MessageTooLarge => "message_too_large",
            RejectionReason::TooManyReadings => "too_many_readings",
            RejectionReason::EmptyBatch => "empty_batch",
            RejectionReason::MissingField => "missing_field",
            RejectionReason::InvalidField => "invalid_field",
            RejectionReason::UnknownType => "unknown_type",
            RejectionReason::UnknownUnit => "unknown_unit",
            RejectionReason::OutOfRange => "out_of_range",
            RejectionReason::InvalidTimestamp => "invalid_timestamp",
            RejectionReason::FutureTimestamp => "future_timestamp",
            RejectionReason::StaleTimestamp => "stale_timestamp",
            RejectionReason::UnknownDevice => "unknown_device",
            RejectionReason::RevokedDevice => "revoked_device",
            RejectionReason::WrongDeviceKind => "wrong_device_kind",
            RejectionReason::NotAuthorized => "not_authorized",
            RejectionReason::NotStorable => "not_storable",
        }
    }

    /// Whether the reason refuses the whole message rather than one reading of it.
    pub fn is_message_level(self) -> bool {
        matches!(
            self,
            RejectionReason::MalformedJson
                | RejectionReason::MessageTooLarge
                | RejectionReason::TooManyReadings
                | RejectionReason::EmptyBatch
                | RejectionReason::UnknownDevice
                | RejectionReason::RevokedDevice
                | RejectionReason::NotAuthorized
                | RejectionReason::NotStorable
        )
    }
}

impl fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One refusal: of a single reading (with its position in the message) or of a whole message.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub reason: RejectionReason,
    /// A sentence for a human, naming the field and the value.
    pub detail: String,
    /// The reading's position in a batch (0 for a single-reading message); `None` when the
    /// whole message was refused.
    pub index: Option<usize>,
    /// The device's own id for the reading, when it sent one.
    pub device_reading_id: Option<String>,
    /// The refused reading as the device sent it, kept so nothing is silently dropped.
    /// `None` for message-level refusals, whose raw payload is kept by the caller.
    pub raw: Option<String>,
    /// How many readings this refusal covers: 1 for a reading, the message's count (or 1 if
    /// it could not be counted) for a whole message.
    pub readings_covered: usize,
}

impl Rejection {
    pub fn message(reason: RejectionReason, detail: impl Into<String>, covered: usize) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
            index: None,
            device_reading_id: None,
            raw: None,
            readings_covered: covered.max(1),
        }
    }
}

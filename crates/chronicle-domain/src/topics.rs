//! The protocol's two MQTT topics, in one exact shape: a device publishes readings on
//! `{prefix}/devices/{device_id}/readings` and reads the answers on
//! `{prefix}/devices/{device_id}/acks`. The prefix is configurable (`--mqtt-topic-prefix`).

use crate::DeviceId;

/// The topic prefix unless configured otherwise.
pub const DEFAULT_TOPIC_PREFIX: &str = "chronicle/v1";

/// The topic a device publishes its readings to.
pub fn readings_topic(prefix: &str, device_id: &str) -> String {
    format!("{prefix}/devices/{device_id}/readings")
}

/// The topic a device's acks are published to.
pub fn acks_topic(prefix: &str, device_id: &str) -> String {
    format!("{prefix}/devices/{device_id}/acks")
}

/// The subscription filter for every device's readings (the ingest's).
pub fn all_readings_filter(prefix: &str) -> String {
    format!("{prefix}/devices/+/readings")
}

/// The device a readings topic names: exactly `{prefix}/devices/{device_id}/readings` with a
/// valid device id, or `None`.
pub fn readings_topic_device<'t>(prefix: &str, topic: &'t str) -> Option<&'t str> {
    device_level(prefix, topic, "readings")
}

/// The device an acks topic (or subscription filter) names: exactly
/// `{prefix}/devices/{device_id}/acks` with a valid device id, or `None`. A filter with a
/// wildcard never matches.
pub fn acks_topic_device<'t>(prefix: &str, topic: &'t str) -> Option<&'t str> {
    device_level(prefix, topic, "acks")
}

fn device_level<'t>(prefix: &str, topic: &'t str, leaf: &str) -> Option<&'t str> {
    topic
        .strip_prefix(prefix)?
        .strip_prefix("/devices/")?
        .strip_suffix(leaf)?
        .strip_suffix('/')
        .filter(|id| DeviceId::parse(id).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = DEFAULT_TOPIC_PREFIX;

    #[test]
    fn topics_have_one_exact_shape() {
        assert_eq!(
            readings_topic_device(P, "chronicle/v1/devices/dev_a/readings"),
            Some("dev_a")
        );
        assert_eq!(
            acks_topic_device(P, "chronicle/v1/devices/dev_a/acks"),
            Some("dev_a")
        );
        for bad in [
            "chronicle/v1/devices/+/readings",
            "chronicle/v1/devices/#",
            "chronicle/v1/devices//readings",
            "chronicle/v1/devices/a/b/readings",
            "chronicle/v1/devices/dev_a/readings/x",
            "chronicle/v1/devices/dev_a/acks",
            "chronicle/v1/devices/DEV_A/readings",
            "other/devices/dev_a/readings",
            "chronicle/v1/devices/dev_areadings",
            "$SYS/broker/clients",
            "#",
        ] {
            assert_eq!(readings_topic_device(P, bad), None, "{bad}");
        }
        for bad in [
            "chronicle/v1/devices/+/acks",
            "chronicle/v1/devices/#",
            "chronicle/v1/+/dev_a/acks",
            "chronicle/v1/devices/dev_a/readings",
            "#",
            "+/+/+/+/+",
        ] {
            assert_eq!(acks_topic_device(P, bad), None, "{bad}");
        }
        assert_eq!(acks_topic(P, "dev_a"), "chronicle/v1/devices/dev_a/acks");
        assert_eq!(all_readings_filter(P), "chronicle/v1/devices/+/readings");
        assert_eq!(
            readings_topic(P, "dev_a"),
            "chronicle/v1/devices/dev_a/readings"
        );
    }
}

//! The messages the benchmark's devices send, and the same readings as rows for the COPY
//! ceiling. Generated before any clock starts, so no phase times its own input.

use anyhow::Context;
use chronicle_domain::wire::{self, DecodeLimits};
use chronicle_domain::{DeviceKind, Reading};
use chrono::{DateTime, Duration, SecondsFormat, Utc};

/// Every reading lies in the past (no future-skew refusals), one second apart per device, so
/// no two readings of a device share the idempotency key and none is a duplicate.
pub fn base_time() -> DateTime<Utc> {
    let now = Utc::now() - Duration::days(30);
    DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
}

/// A glucose reading as a device sends it, in mg/dL, with a value that varies.
fn reading_json(at: DateTime<Utc>, sequence: u64) -> String {
    format!(
        r#""type":"glucose","measured_at":"{}","value":{},"unit":"mg/dL""#,
        at.to_rfc3339_opts(SecondsFormat::Secs, true),
        70 + sequence % 180
    )
}

/// `count` one-reading messages; message `i` has `message_id` "i" (the ack echoes it, which
/// is how latencies are matched) and is measured at `base + i` seconds.
pub fn single_messages(base: DateTime<Utc>, count: usize) -> Vec<Vec<u8>> {
    (0..count as u64)
        .map(|i| {
            let at = base + Duration::seconds(i as i64);
            format!(r#"{{"message_id":"{i}",{}}}"#, reading_json(at, i)).into_bytes()
        })
        .collect()
}

/// `count` batch messages of `readings` readings each; reading `j` of message `i` is measured
/// at `base + i × readings + j` seconds.
pub fn batch_messages(base: DateTime<Utc>, count: usize, readings: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut text = String::with_capacity(readings * 96 + 32);
            text.push_str(&format!(r#"{{"message_id":"{i}","readings":["#));
            for j in 0..readings {
                let sequence = (i * readings + j) as u64;
                let at = base + Duration::seconds(sequence as i64);
                if j > 0 {
                    text.push(',');
                }
                text.push('{');
                text.push_str(&reading_json(at, sequence));
                text.push('}');
            }
            text.push_str("]}");
            text.into_bytes()
        })
        .collect()
}

/// The readings of a message as the ingest would store them for a CGM, through the same
/// decoder and validation, so the COPY ceiling writes the very rows the ingest writes.
pub fn decode_readings(payload: &[u8]) -> anyhow::Result<Vec<Reading>> {
    let limits = DecodeLimits::default();
    let parsed = wire::parse_message(payload, &limits)
        .map_err(|refused| anyhow::anyhow!("{}", refused.rejection.detail))
        .context("the benchmark generated an invalid message")?;
    let (accepted, rejected) =
        wire::validate_readings(&parsed, DeviceKind::Cgm, Utc::now(), &limits);
    anyhow::ensure!(
        rejected.is_empty(),
        "the benchmark generated invalid readings: {}",
        rejected
            .first()
            .map(|r| r.detail.as_str())
            .unwrap_or_default()
    );
    Ok(accepted.into_iter().map(|r| r.reading).collect())
}

/// Splits `total` items over `parts` as evenly as possible (the first get one more).
pub fn spread(total: usize, parts: usize) -> Vec<usize> {
    let parts = parts.max(1);
    (0..parts)
        .map(|p| total / parts + usize::from(p < total % parts))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_messages_decode_into_distinct_readings() {
        let base = base_time();
        let singles = single_messages(base, 3);
        let readings = decode_readings(&singles[2]).expect("valid message");
        assert_eq!(readings.len(), 1);
        assert_eq!(readings[0].measured_at(), base + Duration::seconds(2));

        let batches = batch_messages(base, 2, 5);
        let second = decode_readings(&batches[1]).expect("valid batch");
        assert_eq!(second.len(), 5);
        assert_eq!(second[0].measured_at(), base + Duration::seconds(5));
        assert_eq!(spread(50, 10), vec![5; 10]);
        assert_eq!(spread(7, 3), vec![3, 2, 2]);
    }
}

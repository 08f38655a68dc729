//! A day's glucose readings in compact binary form, as day rollups keep them for the Ambulatory
//! Glucose Profile and for episodes. The encoding is exact: decoding gives back every instant
//! to the microsecond, every value bit for bit and every duration, so a trend computed from
//! stored days equals one computed from the raw readings.
//!
//! Layout (version 1): a version byte, the count (varint), the first instant (8 bytes, little
//! endian, microseconds since the epoch), then per reading: the time since the previous one
//! (a [time code](encode_micros), omitted for the first), the value (varint `v << 1` for a whole
//! number of mg/dL below 2^40, else the varint 1 and the 8 bytes of the `f64`), and the
//! duration (varint 0 when it equals the time to the next reading of the day, else 1 + its
//! time code). A 5-minute CGM day of whole mg/dL values takes about 5 bytes a reading.

use super::calendar::{from_micros, micros};
use chrono::{DateTime, Utc};

const VERSION: u8 = 1;

/// One reading as a day rollup keeps it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub mg_dl: f64,
    /// How long the reading stands for: until the next reading, at most its source's cap.
    pub duration_us: i64,
}

/// The bytes are not samples this code wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt glucose samples: {0}")]
pub struct CorruptSamples(pub &'static str);

pub fn encode(samples: &[Sample]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + samples.len() * 6);
    out.push(VERSION);
    put_varint(&mut out, samples.len() as u64);
    let Some(first) = samples.first() else {
        return out;
    };
    out.extend_from_slice(&micros(first.at).to_le_bytes());
    for (i, s) in samples.iter().enumerate() {
        if i > 0 {
            let delta = micros(s.at) - micros(samples[i - 1].at);
            put_varint(&mut out, encode_micros(delta));
        }
        if s.mg_dl.fract() == 0.0 && s.mg_dl >= 0.0 && s.mg_dl < (1u64 << 40) as f64 {
            put_varint(&mut out, (s.mg_dl as u64) << 1);
        } else {
            put_varint(&mut out, 1);
            out.extend_from_slice(&s.mg_dl.to_le_bytes());
        }
        let until_next = samples
            .get(i + 1)
            .map(|next| micros(next.at) - micros(s.at));
        if until_next == Some(s.duration_us) {
            put_varint(&mut out, 0);
        } else {
            put_varint(&mut out, 1 + encode_micros(s.duration_us));
        }
    }
    out
}

pub fn decode(bytes: &[u8]) -> Result<Vec<Sample>, CorruptSamples> {
    let mut input = Reader { bytes, at: 0 };
    if input.byte()? != VERSION {
        return Err(CorruptSamples("unknown version"));
    }
    let count = usize::try_from(input.varint()?).map_err(|_| CorruptSamples("count"))?;
    if count > bytes.len() {
        return Err(CorruptSamples("count larger than the data"));
    }
    let mut at_us = Vec::with_capacity(count);
    let mut values = Vec::with_capacity(count);
    let mut durations: Vec<Option<i64>> = Vec::with_capacity(count);
    if count > 0 {
        at_us.push(i64::from_le_bytes(input.array()?));
    }
    for i in 0..count {
        if i > 0 {
            let delta = decode_micros(input.varint()?)?;
            let previous = at_us[i - 1];
            at_us.push(
                previous
                    .checked_add(delta)
                    .ok_or(CorruptSamples("instant out of range"))?,
            );
        }
        let code = input.varint()?;
        values.push(if code & 1 == 0 {
            (code >> 1) as f64
        } else if code == 1 {
            f64::from_le_bytes(input.array()?)
        } else {
            return Err(CorruptSamples("value code"));
        });
        durations.push(match input.varint()? {
            0 => None,
            code => Some(decode_micros(code - 1)?),
        });
    }
    if input.at != bytes.len() {
        return Err(CorruptSamples("trailing bytes"));
    }
    (0..count)
        .map(|i| {
            let duration_us = match durations[i] {
                Some(d) => d,
                None => at_us
                    .get(i + 1)
                    .map(|next| next - at_us[i])
                    .ok_or(CorruptSamples("last duration missing"))?,
            };
            Ok(Sample {
                at: from_micros(at_us[i]),
                mg_dl: values[i],
                duration_us,
            })
        })
        .collect()
}

/// A non-negative span of microseconds as a varint payload: whole seconds (the usual case)
/// as `seconds << 1`, anything else as `micros << 1 | 1`.
fn encode_micros(us: i64) -> u64 {
    let us = us.max(0) as u64;
    if us.is_multiple_of(1_000_000) {
        (us / 1_000_000) << 1
    } else {
        (us << 1) | 1
    }
}

fn decode_micros(code: u64) -> Result<i64, CorruptSamples> {
    let us = if code & 1 == 0 {
        (code >> 1)
            .checked_mul(1_000_000)
            .ok_or(CorruptSamples("span out of range"))?
    } else {
        code >> 1
    };
    i64::try_from(us).map_err(|_| CorruptSamples("span out of range"))
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, CorruptSamples> {
        let b = *self.bytes.get(self.at).ok_or(CorruptSamples("truncated"))?;
        self.at += 1;
        Ok(b)
    }

    fn array(&mut self) -> Result<[u8; 8], CorruptSamples> {
        let slice = self
            .bytes
            .get(self.at..self.at + 8)
            .ok_or(CorruptSamples("truncated"))?;
        self.at += 8;
        let mut out = [0u8; 8];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn varint(&mut self) -> Result<u64, CorruptSamples> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CorruptSamples("varint too long"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(us: i64, mg_dl: f64, duration_us: i64) -> Sample {
        Sample {
            at: from_micros(us),
            mg_dl,
            duration_us,
        }
    }

    #[test]
    fn a_cgm_day_is_small_and_exact() {
        let start = 1_772_323_200_000_000; // 2026-03-01T00:00:00Z
        let samples: Vec<Sample> = (0..288)
            .map(|i| {
                let value = if i % 7 == 0 {
                    5.6 * 18.01559
                } else {
                    100.0 + i as f64
                };
                sample(start + i * 300_000_000, value, 300_000_000)
            })
            .collect();
        let bytes = encode(&samples);
        assert!(bytes.len() < 288 * 8, "{} bytes", bytes.len());
        assert_eq!(decode(&bytes), Ok(samples));
        assert_eq!(decode(&encode(&[])), Ok(vec![]));
    }

    #[test]
    fn corrupt_bytes_are_refused() {
        let bytes = encode(&[sample(0, 100.0, 5), sample(10, 101.5, 900_000_000)]);
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        let mut versioned = bytes.clone();
        versioned[0] = 9;
        assert!(decode(&versioned).is_err());
        let mut trailing = bytes;
        trailing.push(0);
        assert!(decode(&trailing).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(
            start in -10_000_000_000_000_000i64..10_000_000_000_000_000,
            steps in prop::collection::vec(
                (0i64..4_000_000_000, prop_oneof![(1u32..1000).prop_map(f64::from), 0.1f64..1000.0], 0i64..1_000_000_000, any::<bool>()),
                0..50),
        ) {
            let mut at = start;
            let samples: Vec<Sample> = steps
                .iter()
                .map(|&(delta, value, duration, round)| {
                    at += if round { delta / 1_000_000 * 1_000_000 } else { delta };
                    sample(at, value, if round { duration / 1_000_000 * 1_000_000 } else { duration })
                })
                .collect();
            prop_assert_eq!(decode(&encode(&samples)), Ok(samples));
        }
    }
}

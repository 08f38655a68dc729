//! Running totals: a patient's day totals summed from their first day up to and including a
//! day, with the latest reading so far. A window's totals are then the difference of two
//! running totals (the window's last day, and the day before its first), so a panel reads two
//! stored rows per patient and window instead of every day. Integers subtract exactly, so the
//! difference equals the sum of the days.
//!
//! Stored as bytes (a version byte, then fixed-width little-endian fields), since nothing but
//! this code reads them.

use super::blood_pressure::{BpTotals, SessionTotals};
use super::calendar::{from_micros, micros};
use super::glucose::GlucoseTotals;
use chrono::{DateTime, Utc};

const VERSION: u8 = 1;

/// The stored bytes are not running totals this code wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt running totals: {0}")]
pub struct CorruptRunning(pub &'static str);

/// A patient's latest glucose reading: when, and its value in mg/dL.
pub type LatestGlucose = (DateTime<Utc>, f64);
/// A patient's latest blood-pressure reading: when, systolic, diastolic.
pub type LatestBloodPressure = (DateTime<Utc>, i64, i64);

/// Glucose totals of every day up to one day, and the latest reading among them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GlucoseRunning {
    pub totals: GlucoseTotals,
    pub latest: Option<LatestGlucose>,
}

impl GlucoseRunning {
    /// Adds the next day (days must come in date order).
    pub fn add_day(&mut self, totals: &GlucoseTotals, latest: Option<LatestGlucose>) {
        self.totals += totals;
        if let Some(l) = latest
            && self.latest.is_none_or(|(at, _)| l.0 >= at)
        {
            self.latest = Some(l);
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let t = &self.totals;
        let mut out = Writer::new();
        for v in [
            t.readings,
            t.cgm_readings,
            t.meter_readings,
            t.lab_readings,
            t.cgm_slots,
            t.days_with_data,
            t.days_with_cgm,
            t.sum_milli,
        ] {
            out.i64(v);
        }
        out.i128(t.sum_sq_milli);
        for v in t.band_us.iter().chain(&t.target_us) {
            out.i64(*v);
        }
        match self.latest {
            Some((at, value)) => {
                out.0.push(1);
                out.i64(micros(at));
                out.0.extend_from_slice(&value.to_le_bytes());
            }
            None => out.0.push(0),
        }
        out.0
    }

    pub fn decode(bytes: &[u8]) -> Result<GlucoseRunning, CorruptRunning> {
        let mut r = Reader::new(bytes)?;
        let mut t = GlucoseTotals {
            readings: r.i64()?,
            cgm_readings: r.i64()?,
            meter_readings: r.i64()?,
            lab_readings: r.i64()?,
            cgm_slots: r.i64()?,
            days_with_data: r.i64()?,
            days_with_cgm: r.i64()?,
            sum_milli: r.i64()?,
            sum_sq_milli: r.i128()?,
            ..GlucoseTotals::default()
        };
        for v in t.band_us.iter_mut().chain(t.target_us.iter_mut()) {
            *v = r.i64()?;
        }
        let latest = match r.byte()? {
            0 => None,
            1 => Some((from_micros(r.i64()?), f64::from_le_bytes(r.array()?))),
            _ => return Err(CorruptRunning("latest flag")),
        };
        r.end()?;
        Ok(GlucoseRunning { totals: t, latest })
    }
}

/// Blood-pressure totals of every day up to one day, and the latest reading among them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BpRunning {
    pub totals: BpTotals,
    pub latest: Option<LatestBloodPressure>,
}

impl BpRunning {
    /// Adds the next day (days must come in date order).
    pub fn add_day(&mut self, totals: &BpTotals, latest: Option<LatestBloodPressure>) {
        self.totals += totals;
        if let Some(l) = latest
            && self.latest.is_none_or(|(at, _, _)| l.0 >= at)
        {
            self.latest = Some(l);
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let t = &self.totals;
        let mut out = Writer::new();
        for v in bp_fields(t) {
            out.i64(v);
        }
        match self.latest {
            Some((at, systolic, diastolic)) => {
                out.0.push(1);
                out.i64(micros(at));
                out.i64(systolic);
                out.i64(diastolic);
            }
            None => out.0.push(0),
        }
        out.0
    }

    pub fn decode(bytes: &[u8]) -> Result<BpRunning, CorruptRunning> {
        let mut r = Reader::new(bytes)?;
        let mut v = [0i64; 16];
        for x in &mut v {
            *x = r.i64()?;
        }
        let totals = BpTotals {
            readings: v[0],
            days_with_data: v[1],
            sum_systolic: v[2],
            sum_sq_systolic: v[3],
            sum_diastolic: v[4],
            sum_sq_diastolic: v[5],
            morning: SessionTotals {
                readings: v[6],
                sum_systolic: v[7],
                sum_diastolic: v[8],
            },
            evening: SessionTotals {
                readings: v[9],
                sum_systolic: v[10],
                sum_diastolic: v[11],
            },
            at_or_above_130_80: v[12],
            at_or_above_135_85: v[13],
            pulse_readings: v[14],
            sum_pulse: v[15],
            sum_sq_pulse: 0,
        };
        let sum_sq_pulse = r.i64()?;
        let latest = match r.byte()? {
            0 => None,
            1 => Some((from_micros(r.i64()?), r.i64()?, r.i64()?)),
            _ => return Err(CorruptRunning("latest flag")),
        };
        r.end()?;
        Ok(BpRunning {
            totals: BpTotals {
                sum_sq_pulse,
                ..totals
            },
            latest,
        })
    }
}

fn bp_fields(t: &BpTotals) -> [i64; 17] {
    [
        t.readings,
        t.days_with_data,
        t.sum_systolic,
        t.sum_sq_systolic,
        t.sum_diastolic,
        t.sum_sq_diastolic,
        t.morning.readings,
        t.morning.sum_systolic,
        t.morning.sum_diastolic,
        t.evening.readings,
        t.evening.sum_systolic,
        t.evening.sum_diastolic,
        t.at_or_above_130_80,
        t.at_or_above_135_85,
        t.pulse_readings,
        t.sum_pulse,
        t.sum_sq_pulse,
    ]
}

struct Writer(Vec<u8>);

impl Writer {
    fn new() -> Writer {
        let mut bytes = Vec::with_capacity(200);
        bytes.push(VERSION);
        Writer(bytes)
    }

    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn i128(&mut self, v: i128) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Result<Reader<'a>, CorruptRunning> {
        let mut r = Reader { bytes, at: 0 };
        if r.byte()? != VERSION {
            return Err(CorruptRunning("unknown version"));
        }
        Ok(r)
    }

    fn byte(&mut self) -> Result<u8, CorruptRunning> {
        let b = *self.bytes.get(self.at).ok_or(CorruptRunning("truncated"))?;
        self.at += 1;
        Ok(b)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], CorruptRunning> {
        let slice = self
            .bytes
            .get(self.at..self.at + N)
            .ok_or(CorruptRunning("truncated"))?;
        self.at += N;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn array(&mut self) -> Result<[u8; 8], CorruptRunning> {
        self.take()
    }

    fn i64(&mut self) -> Result<i64, CorruptRunning> {
        Ok(i64::from_le_bytes(self.take()?))
    }

    fn i128(&mut self) -> Result<i128, CorruptRunning> {
        Ok(i128::from_le_bytes(self.take()?))
    }

    fn end(&self) -> Result<(), CorruptRunning> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(CorruptRunning("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let glucose = GlucoseRunning {
            totals: GlucoseTotals {
                readings: 3,
                cgm_readings: 2,
                meter_readings: 1,
                lab_readings: 0,
                cgm_slots: 2,
                days_with_data: 1,
                days_with_cgm: 1,
                sum_milli: 300_000,
                sum_sq_milli: 30_000_000_000_000_000_000,
                band_us: [1, 2, 3, 4, 5],
                target_us: [6, 7, 8],
            },
            latest: Some((from_micros(1_772_323_200_123_456), 99.08574)),
        };
        assert_eq!(GlucoseRunning::decode(&glucose.encode()), Ok(glucose));
        let empty = GlucoseRunning::default();
        assert_eq!(GlucoseRunning::decode(&empty.encode()), Ok(empty));
        let bp = BpRunning {
            totals: BpTotals {
                readings: 2,
                days_with_data: 1,
                sum_systolic: 260,
                sum_sq_systolic: 33_800,
                sum_diastolic: 160,
                sum_sq_diastolic: 12_800,
                morning: SessionTotals {
                    readings: 1,
                    sum_systolic: 130,
                    sum_diastolic: 80,
                },
                evening: SessionTotals::default(),
                at_or_above_130_80: 2,
                at_or_above_135_85: 0,
                pulse_readings: 1,
                sum_pulse: 70,
                sum_sq_pulse: 4_900,
            },
            latest: Some((from_micros(5), 130, 80)),
        };
        assert_eq!(BpRunning::decode(&bp.encode()), Ok(bp));
        assert!(GlucoseRunning::decode(&bp.encode()).is_err());
        assert!(BpRunning::decode(&[]).is_err());
    }
}

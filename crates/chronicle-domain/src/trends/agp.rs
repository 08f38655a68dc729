//! The Ambulatory Glucose Profile: every day of a window laid over one 24-hour clock in the
//! patient's zone, and for each time-of-day bin the 5th, 25th, 50th, 75th and 95th
//! percentiles of the readings in it (International Consensus on Time in Range, 2019).

use super::glucose::GlucoseDay;
use chrono::Timelike;
use chrono_tz::Tz;

/// Bin widths an AGP may use: they divide the day evenly.
pub const AGP_BIN_MINUTES: [u32; 8] = [5, 10, 15, 20, 30, 60, 120, 180];

/// One time-of-day bin.
#[derive(Debug, Clone, PartialEq)]
pub struct AgpBin {
    /// Local minutes after midnight where the bin starts.
    pub start_minute: u32,
    pub readings: usize,
    /// The 5th, 25th, 50th, 75th and 95th percentiles, mg/dL; `None` for an empty bin.
    pub percentiles: Option<[f64; 5]>,
}

pub const AGP_PERCENTILES: [f64; 5] = [0.05, 0.25, 0.5, 0.75, 0.95];

/// The profile of `days` in bins of `bin_minutes` (one of [`AGP_BIN_MINUTES`]; other widths
/// are rounded to the nearest divisor of the day). A reading falls in the bin of its local
/// clock time, so on a daylight-saving day the repeated hour adds to the same bins twice and
/// the skipped hour adds nothing.
pub fn agp(days: &[GlucoseDay], zone: Tz, bin_minutes: u32) -> Vec<AgpBin> {
    let width = nearest_bin_width(bin_minutes);
    let bins = (1440 / width) as usize;
    let mut values: Vec<Vec<f64>> = vec![Vec::new(); bins];
    for sample in days.iter().flat_map(|d| &d.samples) {
        let local = sample.at.with_timezone(&zone);
        let minute = local.hour() * 60 + local.minute();
        values[(minute / width) as usize].push(sample.mg_dl);
    }
    values
        .into_iter()
        .enumerate()
        .map(|(i, mut v)| {
            v.sort_by(f64::total_cmp);
            AgpBin {
                start_minute: i as u32 * width,
                readings: v.len(),
                percentiles: (!v.is_empty()).then(|| AGP_PERCENTILES.map(|p| percentile(&v, p))),
            }
        })
        .collect()
}

pub fn nearest_bin_width(minutes: u32) -> u32 {
    AGP_BIN_MINUTES
        .into_iter()
        .min_by_key(|w| w.abs_diff(minutes))
        .unwrap_or(15)
}

/// The `p` quantile of sorted values by linear interpolation between the closest ranks
/// (Hyndman and Fan's type 7, the default of R and NumPy).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.len() == 1 {
        return sorted[0];
    }
    let h = (sorted.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

//! Trends: what a care team reads instead of individual readings. Pure functions, no I/O.
//!
//! - [`calendar`]: local days (23/24/25 hours) and windows in the patient's IANA zone.
//! - [`glucose`]: the consensus metrics by duration, per day ([`glucose_day`]) and over a
//!   window ([`glucose_summary`]); [`agp`] and [`episodes`] from the day's readings.
//! - [`blood_pressure`]: means, SD, ACC/AHA category with home thresholds, 7-day protocol.
//! - [`panel`]: the panel's flags and risk ordering.
//! - [`samples`]: the exact binary form of a day's readings that day rollups store.
//! - [`running`]: running totals from a patient's first day, so a window is a difference.
//!
//! The unit of work is one patient-day. A window's figures are sums of its days' integer
//! totals, so the storage layer may keep each day as a rollup, recompute only the days new
//! readings touch, and still answer exactly what the raw readings give. `docs/trends.md`
//! defines every metric.

pub mod agp;
pub mod blood_pressure;
pub mod calendar;
pub mod episodes;
pub mod glucose;
pub mod panel;
pub mod running;
pub mod samples;

pub use agp::{AgpBin, agp};
pub use blood_pressure::{
    BpCategory, BpDay, BpPoint, BpSummary, BpTotals, BpTrend, HomeProtocol, bp_day, bp_summary,
    bp_trend, home_category,
};
pub use calendar::{DayBounds, TrendWindow, local_date};
pub use episodes::{Episode, EpisodeKind, episodes};
pub use glucose::{
    GlucoseBand, GlucoseDay, GlucosePoint, GlucoseSummary, GlucoseTotals, Insufficiency,
    MAX_DURATION_CAP_US, cgm_slot_start, continue_glucose_day, duration_cap_us, glucose_day,
    glucose_summary, sum_totals,
};
pub use panel::{PanelFacts, PanelFlag, panel_flags, risk_score};
pub use running::{BpRunning, GlucoseRunning};
pub use samples::Sample;

/// A glucose trend: the window's metrics, one summary per day, the AGP and the episodes.
#[derive(Debug, Clone, PartialEq)]
pub struct GlucoseTrend {
    pub summary: GlucoseSummary,
    pub daily: Vec<(DayBounds, GlucoseSummary)>,
    pub agp: Vec<AgpBin>,
    pub episodes: Vec<Episode>,
}

/// The trend of `window` from its days (matched by date; a missing day is empty).
pub fn glucose_trend(
    window: &TrendWindow,
    days: &[GlucoseDay],
    agp_bin_minutes: u32,
) -> GlucoseTrend {
    let aligned: Vec<GlucoseDay> = window
        .days
        .iter()
        .map(|d| {
            days.iter()
                .find(|x| x.date == d.date)
                .cloned()
                .unwrap_or_else(|| GlucoseDay::empty(d.date))
        })
        .collect();
    let samples: Vec<Sample> = aligned
        .iter()
        .flat_map(|d| d.samples.iter().copied())
        .collect();
    GlucoseTrend {
        summary: glucose_summary(&sum_totals(&aligned), window),
        daily: window
            .days
            .iter()
            .zip(&aligned)
            .map(|(bounds, d)| {
                (
                    *bounds,
                    glucose_summary(&d.totals, &window.single_day(bounds)),
                )
            })
            .collect(),
        agp: agp(&aligned, window.zone, agp_bin_minutes),
        episodes: episodes(&samples, window.end()),
    }
}

#[cfg(test)]
mod tests;

//! The forecast behind `glucose_predicted_low`: a least-squares line through one CGM's
//! readings of the last 20–30 minutes, extended `horizon` minutes past the latest reading.
//!
//! Why a line and not the AR(2) model on log(BG/140) with coefficients [-0.723, 1.716] (the
//! one a popular open-source monitor uses): the AR(2) model forecasts from the last two
//! readings only, so one noisy CGM reading (±10 mg/dL is common) swings its 20-minute forecast
//! by tens of mg/dL; the rule's definition ("forecast from the last 20–30 min of CGM data")
//! asks for a fit over that window, and a line through 5–7 readings averages the noise out.
//! The price is a slower reaction to a turn, which the `glucose_rapid_fall` and
//! `glucose_very_low` rules cover.
//!
//! Never from stale data: the caller forecasts only at a live reading (received within the
//! late threshold of its measurement), and only from readings of the same device without a
//! gap.

use super::rules::MAX_GAP;
use chrono::{DateTime, Duration, Utc};

/// Readings up to this long before the latest one take part in the fit…
pub const WINDOW: Duration = Duration::minutes(30);
/// …and they must span at least this long, so two readings never make a trend.
pub const MIN_SPAN: Duration = Duration::minutes(20);

/// The least-squares line through one device's readings of the last [`WINDOW`], kept as
/// running sums while readings are pushed in time order: each forecast costs the same
/// however dense the readings, so judging a series is linear in its length.
#[derive(Debug, Default)]
pub struct SlidingFit {
    /// The readings in the window, oldest first, in minutes since `origin` less `base`.
    points: std::collections::VecDeque<(f64, f64)>,
    origin: Option<DateTime<Utc>>,
    /// Moved up to the oldest reading now and then, so the sums stay small and exact.
    base: f64,
    /// Readings that left the window since the sums were last computed afresh.
    evicted: usize,
    sum_x: f64,
    sum_y: f64,
    sum_xx: f64,
    sum_xy: f64,
    /// Consecutive pairs in the window further apart than [`MAX_GAP`].
    holes: usize,
}

impl SlidingFit {
    /// Adds the reading measured at `at` (not before the last one pushed), and lets the
    /// readings older than [`WINDOW`] before it leave the window.
    pub fn push(&mut self, at: DateTime<Utc>, value: f64) {
        let origin = *self.origin.get_or_insert(at);
        let x = minutes(at - origin) - self.base;
        if let Some((last_x, _)) = self.points.back()
            && x - last_x > minutes(MAX_GAP)
        {
            self.holes += 1;
        }
        self.points.push_back((x, value));
        self.sum_x += x;
        self.sum_y += value;
        self.sum_xx += x * x;
        self.sum_xy += x * value;
        let cutoff = x - minutes(WINDOW);
        while let Some(&(oldest_x, oldest_y)) = self.points.front() {
            if oldest_x >= cutoff - 1e-9 {
                break;
            }
            self.points.pop_front();
            self.sum_x -= oldest_x;
            self.sum_y -= oldest_y;
            self.sum_xx -= oldest_x * oldest_x;
            self.sum_xy -= oldest_x * oldest_y;
            if let Some((next_x, _)) = self.points.front()
                && next_x - oldest_x > minutes(MAX_GAP)
            {
                self.holes -= 1;
            }
            self.evicted += 1;
        }
        // Adding and removing leaves rounding behind; once as many readings have left as the
        // window holds, the sums are computed afresh from the oldest reading on (amortized
        // constant work).
        if self.evicted > self.points.len() + 64 {
            self.rebase();
        }
    }

    fn rebase(&mut self) {
        let shift = self.points.front().map_or(0.0, |(x, _)| *x);
        self.base += shift;
        self.evicted = 0;
        (self.sum_x, self.sum_y, self.sum_xx, self.sum_xy) = (0.0, 0.0, 0.0, 0.0);
        for (x, y) in self.points.iter_mut() {
            *x -= shift;
            self.sum_x += *x;
            self.sum_y += *y;
            self.sum_xx += *x * *x;
            self.sum_xy += *x * *y;
        }
    }

    /// The line's value `horizon` after the newest reading; `None` when the window does not
    /// span [`MIN_SPAN`], holds fewer than three readings, or has a hole.
    pub fn forecast(&self, horizon: Duration) -> Option<f64> {
        let (first_x, _) = *self.points.front()?;
        let (last_x, _) = *self.points.back()?;
        if last_x - first_x < minutes(MIN_SPAN) - 1e-9 || self.points.len() < 3 || self.holes > 0 {
            return None;
        }
        let n = self.points.len() as f64;
        let mean_x = self.sum_x / n;
        let mean_y = self.sum_y / n;
        let sxx = self.sum_xx - n * mean_x * mean_x;
        let sxy = self.sum_xy - n * mean_x * mean_y;
        // Equal times cannot occur (one device, deduplicated), so a zero spread is rounding.
        if sxx <= 1e-9 {
            return None;
        }
        let slope = sxy / sxx;
        Some(mean_y + slope * (last_x + minutes(horizon) - mean_x))
    }
}

fn minutes(d: Duration) -> f64 {
    d.num_milliseconds() as f64 / 60_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forecast at the last of `points` (one device, ascending by time).
    fn linear_forecast(points: &[(DateTime<Utc>, f64)], horizon: Duration) -> Option<f64> {
        let mut fit = SlidingFit::default();
        for (at, value) in points {
            fit.push(*at, *value);
        }
        fit.forecast(horizon)
    }

    fn series(values: &[f64], step_minutes: i64) -> Vec<(DateTime<Utc>, f64)> {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (t0 + Duration::minutes(step_minutes * i as i64), *v))
            .collect()
    }

    #[test]
    fn forecasts_along_the_line() {
        // Falling 2 mg/dL per minute: 20 minutes after 90 comes 50.
        let falling = series(&[140.0, 130.0, 120.0, 110.0, 100.0, 90.0], 5);
        let f = linear_forecast(&falling, Duration::minutes(20)).expect("forecast");
        assert!((f - 50.0).abs() < 1e-9, "{f}");
        let flat = series(&[100.0; 7], 5);
        assert_eq!(linear_forecast(&flat, Duration::minutes(20)), Some(100.0));
    }

    #[test]
    fn averages_out_one_noisy_reading() {
        // A steady 100 with one reading 12 mg/dL low at the end: the line dips a little,
        // nowhere near a predicted low (AR(2) on the last two readings would extrapolate a
        // fall of 12 per 5 minutes to about 52 mg/dL).
        let noisy = series(&[100.0, 100.0, 100.0, 100.0, 100.0, 88.0], 5);
        let f = linear_forecast(&noisy, Duration::minutes(20)).expect("forecast");
        assert!(f > 80.0, "{f}");
    }

    #[test]
    fn refuses_short_or_broken_series() {
        // (values, step minutes, forecast expected?)
        let cases: [(&[f64], i64, bool); 5] = [
            (&[100.0, 90.0], 5, false), // two readings, 5 minutes: no trend
            (&[100.0, 95.0, 90.0, 85.0], 5, false), // 15 minutes < MIN_SPAN
            (&[100.0, 95.0, 90.0, 85.0, 80.0], 5, true), // 20 minutes
            (&[100.0, 90.0, 80.0], 20, false), // holes larger than MAX_GAP
            (&[100.0, 90.0, 80.0], 10, true),
        ];
        for (values, step, expected) in cases {
            assert_eq!(
                linear_forecast(&series(values, step), Duration::minutes(20)).is_some(),
                expected,
                "{values:?} every {step} min"
            );
        }
        assert_eq!(linear_forecast(&[], Duration::minutes(20)), None);
    }

    #[test]
    fn only_the_window_counts() {
        // An old fall followed by 30 flat minutes: the window sees only the flat part.
        let mut values = vec![200.0, 180.0, 160.0];
        values.extend([100.0; 7]);
        let f = linear_forecast(&series(&values, 5), Duration::minutes(20)).expect("forecast");
        assert!((f - 100.0).abs() < 1e-9, "{f}");
    }

    /// The line fitted directly, as a reference for the running sums.
    fn direct(points: &[(f64, f64)], horizon: f64) -> f64 {
        let n = points.len() as f64;
        let mean_x = points.iter().map(|(x, _)| x).sum::<f64>() / n;
        let mean_y = points.iter().map(|(_, y)| y).sum::<f64>() / n;
        let sxx: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
        let sxy: f64 = points
            .iter()
            .map(|(x, y)| (x - mean_x) * (y - mean_y))
            .sum();
        let last = points.last().map_or(0.0, |(x, _)| *x);
        mean_y + sxy / sxx * (last + horizon - mean_x)
    }

    #[test]
    fn the_sliding_fit_equals_a_direct_fit_over_long_dense_series() {
        // Three days of readings every 7 to 61 seconds with a wandering value: every
        // forecast equals the line fitted afresh through the same window.
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        let mut fit = SlidingFit::default();
        let mut all: Vec<(f64, f64)> = Vec::new();
        let mut seconds = 0i64;
        let horizon = Duration::minutes(20);
        for i in 0..20_000u64 {
            seconds += 7 + (i * 7919 % 55) as i64;
            let value = 120.0 + 60.0 * ((i as f64) / 40.0).sin() + (i * 31 % 9) as f64;
            fit.push(t0 + Duration::seconds(seconds), value);
            all.push((seconds as f64 / 60.0, value));
            if i % 97 == 0 && i > 100 {
                let last = seconds as f64 / 60.0;
                let window: Vec<(f64, f64)> = all
                    .iter()
                    .copied()
                    .filter(|(x, _)| *x >= last - 30.0 - 1e-9)
                    .collect();
                let expected = direct(&window, 20.0);
                let got = fit.forecast(horizon).expect("a full window");
                assert!((got - expected).abs() < 1e-6, "{i}: {got} vs {expected}");
            }
        }
    }
}

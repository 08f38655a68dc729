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

/// The value the line through `points` (one device, ascending by time, the last being the
/// reading the forecast is made at) reaches `horizon` after the last point; `None` when the
/// points of the window do not span [`MIN_SPAN`] or have a hole.
pub fn linear_forecast(points: &[(DateTime<Utc>, f64)], horizon: Duration) -> Option<f64> {
    let (last_at, _) = *points.last()?;
    let window: Vec<(f64, f64)> = points
        .iter()
        .filter(|(at, _)| *at >= last_at - WINDOW && *at <= last_at)
        .map(|(at, value)| (minutes_between(last_at, *at), *value))
        .collect();
    let first = window.first()?;
    if -first.0 < minutes(MIN_SPAN) - 1e-9 || window.len() < 3 {
        return None;
    }
    if window
        .windows(2)
        .any(|pair| pair[1].0 - pair[0].0 > minutes(MAX_GAP))
    {
        return None;
    }
    let n = window.len() as f64;
    let mean_x = window.iter().map(|(x, _)| x).sum::<f64>() / n;
    let mean_y = window.iter().map(|(_, y)| y).sum::<f64>() / n;
    let sxx: f64 = window.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    let sxy: f64 = window
        .iter()
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = mean_y - slope * mean_x;
    Some(intercept + slope * minutes(horizon))
}

/// Minutes from `origin` to `at` (negative when `at` is earlier).
fn minutes_between(origin: DateTime<Utc>, at: DateTime<Utc>) -> f64 {
    minutes(at - origin)
}

fn minutes(d: Duration) -> f64 {
    d.num_milliseconds() as f64 / 60_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

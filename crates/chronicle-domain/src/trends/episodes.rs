//! Hypo- and hyperglycaemic episodes, following the consensus definition of CGM events
//! (Battelino et al. 2019; Danne et al. 2017): an episode begins with at least 15 consecutive
//! minutes beyond the threshold and ends with at least 15 consecutive minutes back within it.
//! A short return (under 15 minutes) does not end it. A gap in the data (a silence longer
//! than a reading's cap) ends it at the last covered instant, since what happened in the gap
//! is unknown.

use super::calendar::{MICROS_PER_MINUTE, from_micros, micros};
use super::samples::Sample;
use chrono::{DateTime, Utc};

/// The shortest run beyond a threshold that is an episode, and the shortest return that ends
/// one.
pub const EPISODE_MIN_US: i64 = 15 * MICROS_PER_MINUTE;
/// A hypoglycaemic episode this long is prolonged (consensus: 120 minutes).
pub const PROLONGED_HYPO_US: i64 = 120 * MICROS_PER_MINUTE;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EpisodeKind {
    /// Below 70 mg/dL (level 1 hypoglycaemia and below).
    Low,
    /// Below 54 mg/dL (level 2 hypoglycaemia).
    VeryLow,
    /// Above 180 mg/dL.
    High,
    /// Above 250 mg/dL.
    VeryHigh,
}

impl EpisodeKind {
    pub const ALL: [EpisodeKind; 4] = [
        EpisodeKind::Low,
        EpisodeKind::VeryLow,
        EpisodeKind::High,
        EpisodeKind::VeryHigh,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EpisodeKind::Low => "low",
            EpisodeKind::VeryLow => "very_low",
            EpisodeKind::High => "high",
            EpisodeKind::VeryHigh => "very_high",
        }
    }

    /// Whether a value lies beyond this kind's threshold (exact in mg/dL, as the bands).
    pub fn beyond(self, mg_dl: f64) -> bool {
        match self {
            EpisodeKind::Low => mg_dl < 70.0,
            EpisodeKind::VeryLow => mg_dl < 54.0,
            EpisodeKind::High => mg_dl > 180.0,
            EpisodeKind::VeryHigh => mg_dl > 250.0,
        }
    }

    pub fn is_hypo(self) -> bool {
        matches!(self, EpisodeKind::Low | EpisodeKind::VeryLow)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub kind: EpisodeKind,
    /// The first reading beyond the threshold.
    pub start: DateTime<Utc>,
    /// The end of the last reading beyond it (its time plus its duration).
    pub end: DateTime<Utc>,
    /// The lowest value for a hypo, the highest for a hyper, and when it was measured (the
    /// first time, if repeated).
    pub extreme_mg_dl: f64,
    pub extreme_at: DateTime<Utc>,
    /// A hypoglycaemic episode of 120 minutes or more.
    pub prolonged: bool,
}

impl Episode {
    pub fn duration_us(&self) -> i64 {
        micros(self.end) - micros(self.start)
    }
}

/// A run of contiguous readings on one side of the threshold.
struct Run {
    beyond: bool,
    start: i64,
    end: i64,
    extreme: Option<(f64, i64)>,
    /// A gap in the data lies just before this run.
    after_gap: bool,
}

/// The episodes of every kind in `samples` (in time order, as days store them), with each
/// reading's time clipped at `until` (the window's end). Sorted by start, then kind.
pub fn episodes(samples: &[Sample], until: DateTime<Utc>) -> Vec<Episode> {
    let mut out: Vec<Episode> = EpisodeKind::ALL
        .into_iter()
        .flat_map(|kind| episodes_of(kind, samples, micros(until)))
        .collect();
    out.sort_by_key(|e| (e.start, e.kind));
    out
}

fn runs(kind: EpisodeKind, samples: &[Sample], until: i64) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut previous_end: Option<i64> = None;
    for s in samples {
        let at = micros(s.at);
        if at >= until {
            break;
        }
        let end = (at + s.duration_us).min(until);
        let beyond = kind.beyond(s.mg_dl);
        let contiguous = previous_end == Some(at);
        let better = |extreme: Option<(f64, i64)>| match extreme {
            None => true,
            Some((v, _)) if kind.is_hypo() => s.mg_dl < v,
            Some((v, _)) => s.mg_dl > v,
        };
        match runs.last_mut() {
            Some(run) if contiguous && run.beyond == beyond => {
                run.end = end;
                if beyond && better(run.extreme) {
                    run.extreme = Some((s.mg_dl, at));
                }
            }
            _ => runs.push(Run {
                beyond,
                start: at,
                end,
                extreme: beyond.then_some((s.mg_dl, at)),
                after_gap: !contiguous,
            }),
        }
        previous_end = Some(end);
    }
    runs
}

fn episodes_of(kind: EpisodeKind, samples: &[Sample], until: i64) -> Vec<Episode> {
    let mut out = Vec::new();
    let mut open: Option<Run> = None;
    let close = |run: Run, out: &mut Vec<Episode>| {
        let (value, at) = run.extreme.unwrap_or((f64::NAN, run.start));
        out.push(Episode {
            kind,
            start: from_micros(run.start),
            end: from_micros(run.end),
            extreme_mg_dl: value,
            extreme_at: from_micros(at),
            prolonged: kind.is_hypo() && run.end - run.start >= PROLONGED_HYPO_US,
        });
    };
    for run in runs(kind, samples, until) {
        if run.after_gap
            && let Some(episode) = open.take()
        {
            close(episode, &mut out);
        }
        let long = run.end - run.start >= EPISODE_MIN_US;
        match (&mut open, run.beyond) {
            (Some(episode), true) => {
                episode.end = run.end;
                let better = match (episode.extreme, run.extreme) {
                    (Some((a, _)), Some((b, _))) if kind.is_hypo() => b < a,
                    (Some((a, _)), Some((b, _))) => b > a,
                    (None, Some(_)) => true,
                    _ => false,
                };
                if better {
                    episode.extreme = run.extreme;
                }
            }
            (Some(_), false) => {
                if long && let Some(episode) = open.take() {
                    close(episode, &mut out);
                }
            }
            (None, true) if long => open = Some(run),
            (None, _) => {}
        }
    }
    if let Some(episode) = open {
        close(episode, &mut out);
    }
    out
}

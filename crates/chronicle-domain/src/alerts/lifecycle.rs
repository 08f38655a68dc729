//! An alert's life: **open** → **acknowledged** (by a named user, with an optional note) →
//! **resolved** (by hand, or automatically once the condition has been clear for the set
//! time). One alert per patient, rule and category is active (open or acknowledged) at a
//! time; the condition returning after a clear re-triggers it (count, last seen) instead of
//! opening another, and re-opens it if it was acknowledged.
//!
//! [`reconcile`] compares what the stored readings show ([`Timeline`] episodes) with the
//! patient's latest alert of the rule and returns the changes to make. It is idempotent:
//! run again on the same data with the changes applied, it returns nothing. The *watermark*
//! that makes it so is the latest alert's `last_seen_at`: only an episode that starts after
//! it is new.

use super::Severity;
use super::rules::{Episode, Finding, Timeline};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

string_enum!(
    /// What a stored alert row is: a live `alert` with a lifecycle, or a `historical` record
    /// of a condition that late data revealed (no status, never an alarm).
    AlertKind {
        Alert => "alert",
        Historical => "historical",
    }
);

string_enum!(
    /// How a resolved alert was resolved.
    Resolution {
        /// By a user.
        Manual => "manual",
        /// The condition stayed clear for the set time.
        Auto => "auto",
    }
);

string_enum!(
    /// Where an alert is in its life.
    AlertStatus {
        Open => "open",
        Acknowledged => "acknowledged",
        Resolved => "resolved",
    }
);

impl AlertStatus {
    /// Open or acknowledged: the alert still needs someone.
    pub fn is_active(self) -> bool {
        self != AlertStatus::Resolved
    }
}

/// The latest stored alert of a patient, rule and category.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownAlert {
    pub id: Uuid,
    pub status: AlertStatus,
    pub severity: Severity,
    pub triggered_at: DateTime<Utc>,
    /// The newest instant the condition was seen to hold: the watermark.
    pub last_seen_at: DateTime<Utc>,
    /// Since when the condition has been clear, if it is.
    pub cleared_since: Option<DateTime<Utc>>,
    pub trigger_count: u32,
    /// The `last_seen_at` of the rule's alert before this one: episodes up to it belong to
    /// that one.
    pub floor: Option<DateTime<Utc>>,
}

/// A new alert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    /// The reading (or silence) that raised it.
    pub trigger: Finding,
    pub severity: Severity,
    pub triggered_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// More than one when several new episodes came in one evaluation.
    pub trigger_count: u32,
    pub cleared_since: Option<DateTime<Utc>>,
}

/// Changes to an active alert. Only the fields that are `Some` (or non-zero) change.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertUpdate {
    pub alert_id: Uuid,
    /// New episodes since the last evaluation.
    pub retriggers: u32,
    /// The newest re-triggering finding, for the event.
    pub retrigger: Option<Finding>,
    /// A higher severity than the alert had.
    pub escalate_to: Option<Severity>,
    /// An earlier trigger than the stored one (a reading that arrived after later ones).
    pub triggered_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// `Some(None)`: the condition holds again; `Some(Some(t))`: clear since `t`.
    pub cleared_since: Option<Option<DateTime<Utc>>>,
    /// An acknowledged alert that re-triggered or escalated needs attention again.
    pub reopen: bool,
}

impl AlertUpdate {
    /// Whether the care team should hear about it (a new episode or a higher severity).
    pub fn is_notable(&self) -> bool {
        self.retriggers > 0 || self.escalate_to.is_some()
    }

    fn is_empty(&self) -> bool {
        !self.is_notable()
            && self.triggered_at.is_none()
            && self.last_seen_at.is_none()
            && self.cleared_since.is_none()
    }
}

/// What late data showed: recorded, never a live alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoricalEvent {
    pub first: Finding,
    pub severity: Severity,
    pub started_at: DateTime<Utc>,
    pub last_hold_at: DateTime<Utc>,
}

/// One change to a patient's alerts.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Open(NewAlert),
    Update(AlertUpdate),
    Historical(HistoricalEvent),
}

/// The changes a rule's timeline asks for, given the latest stored alert of the rule (any
/// status). `late_after` separates live readings from late ones; `window_start` is the
/// earliest instant the timeline covers (the readings before it were not loaded).
pub fn reconcile(
    timeline: &Timeline,
    latest: Option<&KnownAlert>,
    late_after: Duration,
    window_start: DateTime<Utc>,
) -> Vec<Change> {
    let episodes = timeline.episodes(late_after);
    let watermark = latest.map(|a| a.last_seen_at);
    let is_new = |e: &Episode| watermark.is_none_or(|w| e.started_at() > w);
    let new_live: Vec<&Episode> = episodes
        .iter()
        .filter(|e| e.first_live.is_some() && is_new(e))
        .collect();
    let newest_hold = timeline.last_hold_at();
    let mut changes = Vec::new();
    // The span of the alert the live episodes belong to, so late data inside it is not
    // recorded a second time as history.
    let mut covered: Option<(DateTime<Utc>, DateTime<Utc>)> =
        latest.map(|a| (a.triggered_at, a.last_seen_at));

    match latest.filter(|a| a.status.is_active()) {
        Some(alert) => {
            // The live episodes of this alert's era: after the previous alert of the rule.
            let era: Vec<&Episode> = episodes
                .iter()
                .filter(|e| {
                    e.first_live.is_some() && alert.floor.is_none_or(|f| e.started_at() > f)
                })
                .collect();
            // When the timeline covers the alert's whole life, its episodes are counted from
            // the data, so a reading that arrives late (another server, a redelivery) and
            // splits an episode, or comes before the first, counts as if it had arrived in
            // order. Otherwise only episodes after the watermark are new.
            let whole_life = window_start <= alert.triggered_at;
            let count = if whole_life {
                (era.len() as u32).max(alert.trigger_count)
            } else {
                alert.trigger_count + new_live.len() as u32
            };
            let retriggers = count - alert.trigger_count;
            let earliest = era
                .first()
                .and_then(|e| e.first_live.as_ref())
                .map(|f| f.at)
                .filter(|at| whole_life && *at < alert.triggered_at);
            let last_seen = era
                .iter()
                .map(|e| e.last_hold_at)
                .fold(alert.last_seen_at, DateTime::max);
            let severity = era
                .iter()
                .filter_map(|e| e.live_severity)
                .fold(alert.severity, Severity::max);
            let cleared = next_cleared_since(alert.cleared_since, newest_hold, last_seen, timeline);
            let escalate_to = (severity > alert.severity).then_some(severity);
            let update = AlertUpdate {
                alert_id: alert.id,
                retriggers,
                retrigger: (retriggers > 0)
                    .then(|| era.last().and_then(|e| e.first_live.clone()))
                    .flatten(),
                escalate_to,
                triggered_at: earliest,
                last_seen_at: (last_seen > alert.last_seen_at).then_some(last_seen),
                cleared_since: (cleared != alert.cleared_since).then_some(cleared),
                reopen: alert.status == AlertStatus::Acknowledged
                    && (retriggers > 0 || escalate_to.is_some()),
            };
            covered = Some((earliest.unwrap_or(alert.triggered_at), last_seen));
            if !update.is_empty() {
                changes.push(Change::Update(update));
            }
        }
        None => {
            if let Some(first) = new_live.first().and_then(|e| e.first_live.clone()) {
                let last_seen = new_live
                    .iter()
                    .map(|e| e.last_hold_at)
                    .fold(first.at, DateTime::max);
                let severity = new_live
                    .iter()
                    .filter_map(|e| e.live_severity)
                    .fold(first.severity, Severity::max);
                covered = Some((first.at, last_seen));
                changes.push(Change::Open(NewAlert {
                    severity,
                    triggered_at: first.at,
                    last_seen_at: last_seen,
                    trigger_count: new_live.len() as u32,
                    cleared_since: next_cleared_since(None, newest_hold, last_seen, timeline),
                    trigger: first,
                }));
            }
        }
    }

    for e in episodes.iter().filter(|e| e.first_live.is_none()) {
        let inside =
            covered.is_some_and(|(from, to)| e.started_at() <= to && e.last_hold_at >= from);
        if !inside {
            changes.push(Change::Historical(HistoricalEvent {
                first: e.first.clone(),
                severity: e.severity,
                started_at: e.started_at(),
                last_hold_at: e.last_hold_at,
            }));
        }
    }
    changes
}

/// Since when the condition is clear. A recorded clear stands until the condition is seen
/// to hold after it; then the timeline decides (clear since its first clear after the newest
/// hold, or not clear).
fn next_cleared_since(
    recorded: Option<DateTime<Utc>>,
    newest_hold: Option<DateTime<Utc>>,
    last_seen: DateTime<Utc>,
    timeline: &Timeline,
) -> Option<DateTime<Utc>> {
    let held_after_recorded = match (recorded, newest_hold) {
        (Some(clear), Some(hold)) => hold > clear,
        (Some(_), None) => false,
        (None, _) => true,
    };
    if !held_after_recorded {
        return recorded;
    }
    let reference = newest_hold.map_or(last_seen, |h| h.max(last_seen));
    timeline.clear_since(reference)
}

/// `no_data` for one category: `silent` is the most recently silenced device of the
/// category (see `rules::silent_devices`), `None` when every device that has sent is
/// current. The watermark is the silent device's last reading: the same silence never
/// raises a second alert, even after one was resolved by hand.
pub fn reconcile_no_data(
    silent: Option<&Finding>,
    latest: Option<&KnownAlert>,
    now: DateTime<Utc>,
) -> Option<Change> {
    let last_reading = |f: &Finding| f.evidence.last_reading_at.unwrap_or(f.at);
    match (silent, latest.filter(|a| a.status.is_active())) {
        (Some(finding), Some(alert)) => {
            let newer = last_reading(finding) > alert.last_seen_at;
            let retriggered = newer && alert.cleared_since.is_some();
            let update = AlertUpdate {
                alert_id: alert.id,
                retriggers: u32::from(retriggered),
                retrigger: retriggered.then(|| finding.clone()),
                escalate_to: None,
                triggered_at: None,
                last_seen_at: newer.then(|| last_reading(finding)),
                cleared_since: alert.cleared_since.is_some().then_some(None),
                reopen: retriggered && alert.status == AlertStatus::Acknowledged,
            };
            (!update.is_empty()).then_some(Change::Update(update))
        }
        (Some(finding), None) => {
            let new_silence = latest.is_none_or(|a| last_reading(finding) > a.last_seen_at);
            new_silence.then(|| {
                Change::Open(NewAlert {
                    severity: finding.severity,
                    triggered_at: finding.at,
                    last_seen_at: last_reading(finding),
                    trigger_count: 1,
                    cleared_since: None,
                    trigger: finding.clone(),
                })
            })
        }
        (None, Some(alert)) if alert.cleared_since.is_none() => Some(Change::Update(AlertUpdate {
            alert_id: alert.id,
            cleared_since: Some(Some(now)),
            ..AlertUpdate::default()
        })),
        (None, _) => None,
    }
}

/// A silence late data revealed (`rules::revealed_silences`), as a historical `no_data`
/// event: it was never seen live, so it raises no alarm.
pub fn silence_history(silence: &Finding) -> Change {
    Change::Historical(HistoricalEvent {
        first: silence.clone(),
        severity: silence.severity,
        started_at: silence.at,
        last_hold_at: silence.at,
    })
}

/// Whether an active alert resolves by itself now: its condition has been clear for
/// `resolve_after`.
pub fn due_for_auto_resolve(
    alert: &KnownAlert,
    resolve_after: Duration,
    now: DateTime<Utc>,
) -> bool {
    alert.status.is_active()
        && alert
            .cleared_since
            .is_some_and(|since| now - since >= resolve_after)
}

/// A transition a user asked for that the alert's status does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an alert that is {from} cannot be {to}")]
pub struct InvalidTransition {
    pub from: AlertStatus,
    pub to: AlertStatus,
}

/// A user acknowledges: only an open alert can be.
pub fn acknowledge(status: AlertStatus) -> Result<AlertStatus, InvalidTransition> {
    match status {
        AlertStatus::Open => Ok(AlertStatus::Acknowledged),
        from => Err(InvalidTransition {
            from,
            to: AlertStatus::Acknowledged,
        }),
    }
}

/// A user resolves: an open or acknowledged alert.
pub fn resolve(status: AlertStatus) -> Result<AlertStatus, InvalidTransition> {
    match status {
        AlertStatus::Open | AlertStatus::Acknowledged => Ok(AlertStatus::Resolved),
        from => Err(InvalidTransition {
            from,
            to: AlertStatus::Resolved,
        }),
    }
}

/// The kinds of event an alert's life produces (the stream's and webhooks' `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Opened,
    Retriggered,
    Escalated,
    Acknowledged,
    Resolved,
    /// Late data showed a condition: recorded, no live alarm.
    Historical,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::Opened,
        EventKind::Retriggered,
        EventKind::Escalated,
        EventKind::Acknowledged,
        EventKind::Resolved,
        EventKind::Historical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Opened => "opened",
            EventKind::Retriggered => "retriggered",
            EventKind::Escalated => "escalated",
            EventKind::Acknowledged => "acknowledged",
            EventKind::Resolved => "resolved",
            EventKind::Historical => "historical",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Whether the event raises an alarm (what a user's snooze silences). State changes
    /// (acknowledged, resolved) are always delivered so every screen stays current.
    pub fn raises_alarm(self) -> bool {
        matches!(
            self,
            EventKind::Opened | EventKind::Retriggered | EventKind::Escalated
        )
    }
}

#[cfg(test)]
mod tests;

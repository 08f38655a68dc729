//! A care team's escalation policy: who of the team is notified of an urgent alert first,
//! who next when nobody has acknowledged it after some time, and how often those already
//! notified are reminded while it stays unacknowledged.
//!
//! The policy is pure data and arithmetic here; the storage keeps each urgent alert's
//! progress through it (which step was notified, how many reminders went) and the alert
//! engine's escalation worker asks [`EscalationPolicy::due`] what to send next.

use chrono::{DateTime, Duration, Utc};
use thiserror::Error;
use uuid::Uuid;

/// At most this many steps: a chain longer than a team has people is a mistake.
pub const MAX_STEPS: usize = 10;
/// The longest wait a step or a reminder interval may have: one day.
pub const MAX_WAIT_SECONDS: i64 = 86_400;
/// Reminders closer than this would flood a phone that is already ringing.
pub const MIN_REMINDER_SECONDS: i64 = 5;
/// The longest duty name (`nurse`, `on call`, `diabetes educator`).
pub const MAX_DUTY_LENGTH: usize = 60;

string_enum!(
    /// Why a notification was queued.
    DeliveryReason {
        /// The alarm itself (opened, retriggered, escalated in severity).
        Alarm => "alarm",
        /// A later step of the team's escalation: nobody acknowledged in time.
        Escalation => "escalation",
        /// A reminder to everyone told so far: still unacknowledged.
        Reminder => "reminder",
    }
);

/// Whom one step notifies: named members of the team, and every member with one of the
/// named duties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationStep {
    /// How long after the alert became urgent this step is notified; 0 for the first step.
    pub after: Duration,
    pub members: Vec<Uuid>,
    pub duties: Vec<String>,
}

impl EscalationStep {
    /// Whether a member with `duty` is named by this step.
    pub fn names(&self, user_id: Uuid, duty: Option<&str>) -> bool {
        self.members.contains(&user_id)
            || duty.is_some_and(|duty| self.duties.iter().any(|d| d == duty))
    }
}

/// A team's policy. Without one, every member who receives the patient's alerts is notified
/// at once and never reminded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationPolicy {
    pub steps: Vec<EscalationStep>,
    /// Everyone notified so far is notified again this often while the alert stays open.
    pub remind_every: Option<Duration>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum InvalidPolicy {
    #[error("an escalation policy needs at least one step")]
    NoSteps,
    #[error("an escalation policy has at most {MAX_STEPS} steps")]
    TooManySteps,
    #[error("the first step is notified when the alert opens: its after_seconds must be 0")]
    FirstStepWaits,
    #[error(
        "step {0}: after_seconds must be later than the step before and at most {MAX_WAIT_SECONDS}"
    )]
    StepOutOfOrder(usize),
    #[error("step {0} names nobody: give members or duties")]
    EmptyStep(usize),
    #[error("step {0}: a duty is 1 to {MAX_DUTY_LENGTH} characters")]
    BadDuty(usize),
    #[error("renotify_every_seconds must be from {MIN_REMINDER_SECONDS} to {MAX_WAIT_SECONDS}")]
    BadReminderInterval,
}

/// What is due for one alert at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The steps whose time has come and that were not notified yet, in order.
    pub steps: std::ops::Range<usize>,
    /// Whether a reminder round is due (and which, counting from 1).
    pub reminder: Option<u32>,
    /// When to look again; `None` when nothing more can ever be due.
    pub next_at: Option<DateTime<Utc>>,
}

impl EscalationPolicy {
    /// A policy as a team wrote it, checked.
    pub fn new(
        steps: Vec<EscalationStep>,
        remind_every: Option<Duration>,
    ) -> Result<EscalationPolicy, InvalidPolicy> {
        if steps.is_empty() {
            return Err(InvalidPolicy::NoSteps);
        }
        if steps.len() > MAX_STEPS {
            return Err(InvalidPolicy::TooManySteps);
        }
        if steps[0].after != Duration::zero() {
            return Err(InvalidPolicy::FirstStepWaits);
        }
        for (index, step) in steps.iter().enumerate() {
            let number = index + 1;
            if index > 0
                && (step.after <= steps[index - 1].after
                    || step.after > Duration::seconds(MAX_WAIT_SECONDS))
            {
                return Err(InvalidPolicy::StepOutOfOrder(number));
            }
            if step.members.is_empty() && step.duties.is_empty() {
                return Err(InvalidPolicy::EmptyStep(number));
            }
            if step
                .duties
                .iter()
                .any(|d| d.trim().is_empty() || d.chars().count() > MAX_DUTY_LENGTH)
            {
                return Err(InvalidPolicy::BadDuty(number));
            }
        }
        if remind_every.is_some_and(|every| {
            every < Duration::seconds(MIN_REMINDER_SECONDS)
                || every > Duration::seconds(MAX_WAIT_SECONDS)
        }) {
            return Err(InvalidPolicy::BadReminderInterval);
        }
        Ok(EscalationPolicy {
            steps,
            remind_every,
        })
    }

    /// The first step that names a member, if any: the member is notified from that step on.
    pub fn first_step_of(&self, user_id: Uuid, duty: Option<&str>) -> Option<usize> {
        self.steps.iter().position(|s| s.names(user_id, duty))
    }

    /// What is due at `now` for an alert that became urgent at `started`, after `notified`
    /// steps and reminder rounds up to number `reminders` went out. Reminders count from
    /// `started`: round n is due at `started + n × remind_every`; rounds missed while no
    /// server was running are skipped, so one round goes however many were missed (a phone
    /// is not rung five times at once) and the cadence stays.
    pub fn due(
        &self,
        started: DateTime<Utc>,
        notified: usize,
        reminders: u32,
        now: DateTime<Utc>,
    ) -> Due {
        let reached = self
            .steps
            .iter()
            .take_while(|s| started + s.after <= now)
            .count();
        let steps = notified..reached.max(notified);
        let next_step_at = self.steps.get(reached).map(|s| started + s.after);
        let (reminder, next_reminder_at) = match self.remind_every {
            None => (None, None),
            Some(every) => {
                let elapsed_rounds = (now - started).num_milliseconds() / every.num_milliseconds();
                let elapsed_rounds = u32::try_from(elapsed_rounds.max(0)).unwrap_or(u32::MAX);
                let round = (elapsed_rounds > reminders).then_some(elapsed_rounds);
                let done = elapsed_rounds.max(reminders);
                let next = started + every * i32::try_from(done + 1).unwrap_or(i32::MAX);
                (round, Some(next))
            }
        };
        let next_at = match (next_step_at, next_reminder_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Due {
            steps,
            reminder,
            next_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(after: i64, members: &[Uuid]) -> EscalationStep {
        EscalationStep {
            after: Duration::seconds(after),
            members: members.to_vec(),
            duties: Vec::new(),
        }
    }

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("a valid instant")
    }

    #[test]
    fn policies_are_checked() {
        let a = Uuid::from_u128(1);
        assert_eq!(
            EscalationPolicy::new(vec![], None),
            Err(InvalidPolicy::NoSteps)
        );
        assert_eq!(
            EscalationPolicy::new(vec![step(5, &[a])], None),
            Err(InvalidPolicy::FirstStepWaits)
        );
        assert_eq!(
            EscalationPolicy::new(vec![step(0, &[a]), step(0, &[a])], None),
            Err(InvalidPolicy::StepOutOfOrder(2))
        );
        assert_eq!(
            EscalationPolicy::new(vec![step(0, &[a]), step(MAX_WAIT_SECONDS + 1, &[a])], None),
            Err(InvalidPolicy::StepOutOfOrder(2))
        );
        assert_eq!(
            EscalationPolicy::new(vec![step(0, &[])], None),
            Err(InvalidPolicy::EmptyStep(1))
        );
        let blank_duty = EscalationStep {
            after: Duration::zero(),
            members: vec![],
            duties: vec![" ".into()],
        };
        assert_eq!(
            EscalationPolicy::new(vec![blank_duty], None),
            Err(InvalidPolicy::BadDuty(1))
        );
        assert_eq!(
            EscalationPolicy::new(vec![step(0, &[a])], Some(Duration::seconds(4))),
            Err(InvalidPolicy::BadReminderInterval)
        );
        assert!(EscalationPolicy::new(vec![step(0, &[a])], Some(Duration::seconds(5))).is_ok());
        assert_eq!(
            EscalationPolicy::new(vec![step(0, &[a]); MAX_STEPS + 1], None),
            Err(InvalidPolicy::TooManySteps)
        );
    }

    #[test]
    fn members_are_named_by_id_or_duty() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let policy = EscalationPolicy::new(
            vec![
                step(0, &[a]),
                EscalationStep {
                    after: Duration::minutes(10),
                    members: vec![],
                    duties: vec!["physician".into()],
                },
            ],
            None,
        )
        .expect("a valid policy");
        assert_eq!(policy.first_step_of(a, Some("physician")), Some(0));
        assert_eq!(policy.first_step_of(b, Some("physician")), Some(1));
        assert_eq!(policy.first_step_of(b, Some("nurse")), None);
        assert_eq!(policy.first_step_of(c, None), None);
    }

    #[test]
    fn steps_come_due_in_order_and_each_once() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let policy =
            EscalationPolicy::new(vec![step(0, &[a]), step(600, &[b]), step(900, &[c])], None)
                .expect("a valid policy");
        // The first step goes with the alarm itself.
        let due = policy.due(t(0), 1, 0, t(1));
        assert_eq!(due.steps, 1..1);
        assert_eq!(due.next_at, Some(t(600)));
        // Exactly at the wait, the second step.
        let due = policy.due(t(0), 1, 0, t(600));
        assert_eq!(due.steps, 1..2);
        assert_eq!(due.next_at, Some(t(900)));
        // A worker that was away sends every step that came due, in order.
        let due = policy.due(t(0), 1, 0, t(1000));
        assert_eq!(due.steps, 1..3);
        assert_eq!(due.next_at, None);
        // Nothing twice.
        let due = policy.due(t(0), 3, 0, t(5000));
        assert!(due.steps.is_empty());
        assert_eq!(due.reminder, None);
        assert_eq!(due.next_at, None);
    }

    #[test]
    fn reminders_repeat_until_the_alert_is_acknowledged_and_never_pile_up() {
        let a = Uuid::from_u128(1);
        let policy = EscalationPolicy::new(vec![step(0, &[a])], Some(Duration::seconds(300)))
            .expect("a valid policy");
        let due = policy.due(t(0), 1, 0, t(299));
        assert_eq!(due.reminder, None);
        assert_eq!(due.next_at, Some(t(300)));
        let due = policy.due(t(0), 1, 0, t(300));
        assert_eq!(due.reminder, Some(1));
        assert_eq!(due.next_at, Some(t(600)));
        // After a long outage: one round (the missed ones skipped), then the same cadence.
        let due = policy.due(t(0), 1, 1, t(1510));
        assert_eq!(due.reminder, Some(5));
        assert_eq!(due.next_at, Some(t(1800)));
        let due = policy.due(t(0), 1, 5, t(1511));
        assert_eq!(due.reminder, None);
        assert_eq!(due.next_at, Some(t(1800)));
    }

    #[test]
    fn the_next_look_is_the_earlier_of_the_next_step_and_the_next_reminder() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let policy = EscalationPolicy::new(
            vec![step(0, &[a]), step(600, &[b])],
            Some(Duration::seconds(240)),
        )
        .expect("a valid policy");
        assert_eq!(policy.due(t(0), 1, 0, t(10)).next_at, Some(t(240)));
        assert_eq!(policy.due(t(0), 1, 2, t(490)).next_at, Some(t(600)));
        assert_eq!(policy.due(t(0), 2, 2, t(600)).next_at, Some(t(720)));
    }
}

//! Care teams' escalation policies, members' duties, and each urgent alert's progress through
//! the policies it falls under. The alarm itself is queued to the first step's members with
//! the alert event (`notifications::queue_notifications`, which also starts the alert's
//! escalation); [`Store::escalate_due`] queues the later steps and the reminders as their
//! time comes, for as long as the alert stays unacknowledged.

use crate::alerts::AlertEvent;
use crate::notifications::{
    AlarmOf, CandidateRow, allowed_channels, insert_deliveries, notification_candidates,
};
use crate::{StorageError, Store};
use chronicle_domain::alerts::escalation::{DeliveryReason, EscalationPolicy, EscalationStep};
use chronicle_domain::sharing::{Access, Allowance, Basis, DataCategory, Grant, Grantee};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::HashMap;
use uuid::Uuid;

/// A member of a care team as the team sees its own members.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TeamMember {
    pub user_id: Uuid,
    pub display_name: String,
    pub duty: Option<String>,
}

/// A team's policy with the duty of each of its members.
#[derive(Debug, Clone)]
struct TeamPolicy {
    policy: EscalationPolicy,
    duties: HashMap<Uuid, Option<String>>,
}

impl TeamPolicy {
    /// The first step naming `user_id`; `None` for a member no step names (or a non-member).
    fn first_step_of(&self, user_id: Uuid) -> Option<usize> {
        let duty = self.duties.get(&user_id)?;
        self.policy.first_step_of(user_id, duty.as_deref())
    }
}

/// The escalation policies of the teams concerned by some patients' alarms.
#[derive(Debug, Default)]
pub(crate) struct TeamPolicies(HashMap<Uuid, TeamPolicy>);

#[derive(sqlx::FromRow)]
struct StepRow {
    team_id: Uuid,
    renotify_every_seconds: Option<i32>,
    after_seconds: i32,
    members: Vec<Uuid>,
    duties: Vec<String>,
}

impl TeamPolicies {
    /// The policies of the teams named by a grant of one of `patient_ids`.
    pub(crate) async fn of_patients(
        tx: &mut sqlx::PgConnection,
        patient_ids: &[Uuid],
    ) -> Result<TeamPolicies, StorageError> {
        let teams: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT e.team_id FROM care_team_escalation e
             JOIN grants g ON g.grantee_type = 'care_team' AND g.grantee_id = e.team_id
             WHERE g.patient_id = ANY($1) AND g.revoked_at IS NULL",
        )
        .bind(patient_ids)
        .fetch_all(&mut *tx)
        .await?;
        Self::of_teams(tx, &teams).await
    }

    async fn of_teams(
        tx: &mut sqlx::PgConnection,
        teams: &[Uuid],
    ) -> Result<TeamPolicies, StorageError> {
        if teams.is_empty() {
            return Ok(TeamPolicies::default());
        }
        let steps: Vec<StepRow> = sqlx::query_as(
            "SELECT e.team_id, e.renotify_every_seconds, s.after_seconds, s.members, s.duties
             FROM care_team_escalation e JOIN care_team_escalation_steps s USING (team_id)
             WHERE e.team_id = ANY($1) ORDER BY e.team_id, s.position",
        )
        .bind(teams)
        .fetch_all(&mut *tx)
        .await?;
        let members: Vec<(Uuid, Uuid, Option<String>)> = sqlx::query_as(
            "SELECT team_id, user_id, duty FROM care_team_members WHERE team_id = ANY($1)",
        )
        .bind(teams)
        .fetch_all(&mut *tx)
        .await?;
        let mut by_team: HashMap<Uuid, (Option<i32>, Vec<EscalationStep>)> = HashMap::new();
        for row in steps {
            let entry = by_team
                .entry(row.team_id)
                .or_insert((row.renotify_every_seconds, Vec::new()));
            entry.1.push(EscalationStep {
                after: Duration::seconds(i64::from(row.after_seconds)),
                members: row.members,
                duties: row.duties,
            });
        }
        let mut policies = HashMap::new();
        for (team_id, (renotify, steps)) in by_team {
            let policy =
                EscalationPolicy::new(steps, renotify.map(|s| Duration::seconds(i64::from(s))))
                    .map_err(|e| StorageError::corrupt("escalation policy", e))?;
            policies.insert(
                team_id,
                TeamPolicy {
                    policy,
                    duties: HashMap::new(),
                },
            );
        }
        for (team_id, user_id, duty) in members {
            if let Some(team) = policies.get_mut(&team_id) {
                team.duties.insert(user_id, duty);
            }
        }
        Ok(TeamPolicies(policies))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The team whose grant `allowance` came through, when that team has a policy.
    fn policy_behind(&self, grants: &[Grant], allowance: &Allowance) -> Option<&TeamPolicy> {
        let Basis::Grant(grant_id) = allowance.basis else {
            return None;
        };
        match grants.iter().find(|g| g.id == grant_id)?.grantee {
            Grantee::CareTeam(team_id) => self.0.get(&team_id),
            _ => None,
        }
    }

    /// Whether a receiver allowed with `allowance` is sent the alarm itself: everyone except
    /// the members of a team with a policy whose first step does not name them (they are told
    /// when their step comes, if the alert is still unacknowledged then).
    pub(crate) fn notified_with_the_alarm(
        &self,
        grants: &[Grant],
        user_id: Uuid,
        allowance: &Allowance,
    ) -> bool {
        self.policy_behind(grants, allowance)
            .is_none_or(|team| team.first_step_of(user_id) == Some(0))
    }

    /// Starts the escalation of an urgent alarm for every team with a policy whose grant
    /// lets it receive the alarm. An alert already escalating keeps its course.
    pub(crate) async fn start(
        &self,
        tx: &mut sqlx::PgConnection,
        grants: &[Grant],
        event: &AlertEvent,
    ) -> Result<(), StorageError> {
        let now = Utc::now();
        for grant in grants {
            let Grantee::CareTeam(team_id) = grant.grantee else {
                continue;
            };
            let Some(team) = self.0.get(&team_id) else {
                continue;
            };
            if !grant.is_active(now)
                || !grant.categories.contains(&event.category)
                || !grant.access.contains(&Access::ReceiveAlerts)
            {
                continue;
            }
            let next_at = team.policy.due(now, 1, 0, now).next_at;
            sqlx::query(
                "INSERT INTO alert_escalations (alert_id, team_id, event_id, started_at, next_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(event.alert.id)
            .bind(team_id)
            .bind(event.id)
            .bind(now)
            .bind(next_at)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct DueRow {
    alert_id: Uuid,
    team_id: Uuid,
    event_id: i64,
    started_at: DateTime<Utc>,
    notified: i16,
    reminders: i32,
    still_open: bool,
    patient_id: Uuid,
    category: String,
    triggered_at: DateTime<Utc>,
}

impl Store {
    /// A team's escalation policy, if it has one.
    pub async fn escalation_policy(
        &self,
        team_id: Uuid,
    ) -> Result<Option<EscalationPolicy>, StorageError> {
        let mut conn = self.pool().acquire().await?;
        Ok(TeamPolicies::of_teams(&mut conn, &[team_id])
            .await?
            .0
            .remove(&team_id)
            .map(|team| team.policy))
    }

    /// Sets (or replaces) a team's policy. Alerts escalating already follow the new steps
    /// from where they are.
    pub async fn set_escalation_policy(
        &self,
        team_id: Uuid,
        policy: &EscalationPolicy,
        updated_by: Uuid,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO care_team_escalation (team_id, renotify_every_seconds, updated_by)
             VALUES ($1, $2, $3)
             ON CONFLICT (team_id) DO UPDATE SET
                 renotify_every_seconds = excluded.renotify_every_seconds,
                 updated_by = excluded.updated_by, updated_at = now()",
        )
        .bind(team_id)
        .bind(policy.remind_every.map(seconds))
        .bind(updated_by)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM care_team_escalation_steps WHERE team_id = $1")
            .bind(team_id)
            .execute(&mut *tx)
            .await?;
        for (position, step) in policy.steps.iter().enumerate() {
            sqlx::query(
                "INSERT INTO care_team_escalation_steps
                     (team_id, position, after_seconds, members, duties)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(team_id)
            .bind(i16::try_from(position).unwrap_or(i16::MAX))
            .bind(seconds(step.after))
            .bind(&step.members)
            .bind(&step.duties)
            .execute(&mut *tx)
            .await?;
        }
        // Escalations under way look again now, with the new steps.
        sqlx::query("UPDATE alert_escalations SET next_at = now() WHERE team_id = $1")
            .bind(team_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a team's policy (every member is told at once again); whether there was one.
    /// Escalations under way stop.
    pub async fn clear_escalation_policy(&self, team_id: Uuid) -> Result<bool, StorageError> {
        let mut tx = self.begin().await?;
        let removed = sqlx::query("DELETE FROM care_team_escalation WHERE team_id = $1")
            .bind(team_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        sqlx::query("DELETE FROM alert_escalations WHERE team_id = $1")
            .bind(team_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// The team's members with their duties, by name.
    pub async fn team_members_with_duties(
        &self,
        team_id: Uuid,
    ) -> Result<Vec<TeamMember>, StorageError> {
        Ok(sqlx::query_as(
            "SELECT u.id AS user_id, u.display_name, m.duty
             FROM care_team_members m JOIN users u ON u.id = m.user_id
             WHERE m.team_id = $1 ORDER BY u.display_name, u.id",
        )
        .bind(team_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Sets a member's duty (`None` clears it); false when they are not a member.
    pub async fn set_member_duty(
        &self,
        team_id: Uuid,
        user_id: Uuid,
        duty: Option<&str>,
    ) -> Result<bool, StorageError> {
        Ok(sqlx::query(
            "UPDATE care_team_members SET duty = $3 WHERE team_id = $1 AND user_id = $2",
        )
        .bind(team_id)
        .bind(user_id)
        .bind(duty)
        .execute(self.pool())
        .await?
        .rows_affected()
            > 0)
    }

    /// Queues what came due of the escalations under way (later steps, reminder rounds) and
    /// ends those whose alert was acknowledged or resolved; up to `limit` alerts per call,
    /// leased so that several servers share the work. How many alerts were looked at.
    pub async fn escalate_due(&self, limit: i64) -> Result<usize, StorageError> {
        let mut tx = self.begin_claim().await?;
        let due: Vec<DueRow> = sqlx::query_as(
            "SELECT x.alert_id, x.team_id, x.event_id, x.started_at, x.notified, x.reminders,
                 a.status = 'open' AS still_open, a.patient_id, a.category, a.triggered_at
             FROM alert_escalations x JOIN alerts a ON a.id = x.alert_id
             WHERE x.next_at <= now()
             ORDER BY x.next_at LIMIT $1
             FOR UPDATE OF x SKIP LOCKED",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let looked_at = due.len();
        for row in due {
            let team = TeamPolicies::of_teams(&mut tx, &[row.team_id])
                .await?
                .0
                .remove(&row.team_id);
            let Some(team) = team.filter(|_| row.still_open) else {
                end_escalation(&mut tx, row.alert_id, row.team_id).await?;
                continue;
            };
            let notified = usize::try_from(row.notified).unwrap_or(0);
            let reminders = u32::try_from(row.reminders).unwrap_or(0);
            let due = team
                .policy
                .due(row.started_at, notified, reminders, Utc::now());
            let category = DataCategory::parse(&row.category)
                .ok_or_else(|| StorageError::corrupt("alert category", &row.category))?;
            let alarm = AlarmOf {
                patient_id: row.patient_id,
                category,
                triggered_at: row.triggered_at,
            };
            let candidates = notification_candidates(&mut tx, &[row.patient_id]).await?;
            let grants = self.grants_for_patient(row.patient_id).await?;
            let team_members = |c: &CandidateRow| c.care_teams_include(row.team_id);
            for step in due.steps.clone() {
                let channels = allowed_channels(&candidates, &grants, alarm, |c, _| {
                    team_members(c) && team.first_step_of(c.user_id) == Some(step)
                });
                let events = vec![row.event_id; channels.len()];
                insert_deliveries(&mut tx, &channels, &events, 0, DeliveryReason::Escalation)
                    .await?;
            }
            let reached = due.steps.end.max(notified);
            if let Some(round) = due.reminder {
                let channels = allowed_channels(&candidates, &grants, alarm, |c, _| {
                    team_members(c) && team.first_step_of(c.user_id).is_some_and(|s| s < reached)
                });
                let events = vec![row.event_id; channels.len()];
                let round = i32::try_from(round).unwrap_or(i32::MAX);
                insert_deliveries(&mut tx, &channels, &events, round, DeliveryReason::Reminder)
                    .await?;
            }
            if due.next_at.is_none() {
                end_escalation(&mut tx, row.alert_id, row.team_id).await?;
                continue;
            }
            sqlx::query(
                "UPDATE alert_escalations SET notified = $3, reminders = $4, next_at = $5
                 WHERE alert_id = $1 AND team_id = $2",
            )
            .bind(row.alert_id)
            .bind(row.team_id)
            .bind(i16::try_from(reached).unwrap_or(i16::MAX))
            .bind(
                due.reminder
                    .map_or(row.reminders, |r| i32::try_from(r).unwrap_or(i32::MAX)),
            )
            .bind(due.next_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(looked_at)
    }
}

async fn end_escalation(
    tx: &mut sqlx::PgConnection,
    alert_id: Uuid,
    team_id: Uuid,
) -> Result<(), StorageError> {
    sqlx::query("DELETE FROM alert_escalations WHERE alert_id = $1 AND team_id = $2")
        .bind(alert_id)
        .bind(team_id)
        .execute(tx)
        .await?;
    Ok(())
}

/// A duration as whole seconds for the database (policies are checked to fit).
fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.num_seconds()).unwrap_or(i32::MAX)
}

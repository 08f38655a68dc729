//! A care team's escalation: its members' duties, and who of them an urgent alert reaches
//! first, who next when nobody acknowledges it in time, and how often it is repeated. Any
//! member of the team reads and sets it; nobody else learns whether the team exists. The
//! policy names members, never patients: it reveals no patient data.

use super::invitations::member_of;
use super::{TeamPath, TeamRequest};
use crate::AppState;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::error::refusals::{BadRequest, NotFound, Unauthenticated};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chronicle_domain::alerts::escalation::{
    EscalationPolicy, EscalationStep, MAX_DUTY_LENGTH, MAX_WAIT_SECONDS,
};
use chronicle_storage::escalation::TeamMember;
use chrono::Duration;
use o2o::o2o;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(team_members))
        .routes(routes!(set_duty))
        .routes(routes!(escalation, set_escalation, clear_escalation))
}

/// A member of the team, with their duty.
#[derive(Debug, Serialize, ToSchema, o2o)]
#[from_owned(TeamMember)]
struct TeamMemberItem {
    user_id: Uuid,
    display_name: String,
    /// What they do in the team (`nurse`, `physician`, `on call`), which escalation steps
    /// can name instead of people.
    duty: Option<String>,
}

/// The team's members and their duties (members of the team).
#[utoipa::path(get, path = "/v1/care-teams/{team_id}/members", tag = "escalation", params(TeamPath),
    responses((status = 200, body = [TeamMemberItem]), Unauthenticated, NotFound))]
async fn team_members(
    TeamRequest(state, principal, team_id): TeamRequest,
) -> Result<Json<Vec<TeamMemberItem>>, ApiError> {
    let team_id = member_of(&principal, team_id)?;
    Ok(super::json_list(
        state.store.team_members_with_duties(team_id).await?,
        TeamMemberItem::from,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
struct DutyBody {
    /// 1–60 characters; `null` clears it.
    duty: Option<String>,
}

/// Set a member's duty in the team (members of the team).
#[utoipa::path(put, path = "/v1/care-teams/{team_id}/members/{user_id}/duty", tag = "escalation",
    request_body = DutyBody,
    responses((status = 204, description = "Set"), BadRequest, Unauthenticated, NotFound))]
async fn set_duty(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((team_id, user_id)): Path<(Uuid, Uuid)>,
    Json(body): Json<DutyBody>,
) -> Result<StatusCode, ApiError> {
    let team_id = member_of(&principal, team_id)?;
    let duty = body.duty.as_deref().map(duty_name).transpose()?;
    if state
        .store
        .set_member_duty(team_id, user_id, duty.as_deref())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// A duty as stored: trimmed, lower case, 1–60 characters.
fn duty_name(text: &str) -> Result<String, ApiError> {
    let duty = text.trim().to_lowercase();
    if duty.is_empty() || duty.chars().count() > MAX_DUTY_LENGTH {
        return Err(ApiError::BadRequest(format!(
            "a duty is 1 to {MAX_DUTY_LENGTH} characters"
        )));
    }
    Ok(duty)
}

/// One step of the chain.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
struct StepBody {
    /// Seconds after the alert became urgent; 0 (or absent) for the first step, which goes
    /// with the alarm. Each later step waits longer than the one before, at most a day.
    #[serde(default)]
    after_seconds: i64,
    /// Members of the team this step notifies.
    #[serde(default)]
    members: Vec<Uuid>,
    /// Duties this step notifies: every member with one of them.
    #[serde(default)]
    duties: Vec<String>,
}

/// A team's escalation policy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
struct PolicyBody {
    /// 1–10 steps, in order.
    steps: Vec<StepBody>,
    /// While the alert stays unacknowledged, everyone told so far is told again this often
    /// (5 s – 1 day); absent: no reminders.
    renotify_every_seconds: Option<i64>,
}

impl From<EscalationPolicy> for PolicyBody {
    fn from(p: EscalationPolicy) -> Self {
        PolicyBody {
            steps: p
                .steps
                .into_iter()
                .map(|s| StepBody {
                    after_seconds: s.after.num_seconds(),
                    members: s.members,
                    duties: s.duties,
                })
                .collect(),
            renotify_every_seconds: p.remind_every.map(|d| d.num_seconds()),
        }
    }
}

/// The team's policy, or none.
#[derive(Debug, Serialize, ToSchema)]
struct EscalationItem {
    /// `null`: no policy; every member who receives a patient's alerts is told at once and
    /// never reminded.
    policy: Option<PolicyBody>,
}

/// The team's escalation policy (members of the team).
#[utoipa::path(get, path = "/v1/care-teams/{team_id}/escalation", tag = "escalation", params(TeamPath),
    responses((status = 200, body = EscalationItem), Unauthenticated, NotFound))]
async fn escalation(
    TeamRequest(state, principal, team_id): TeamRequest,
) -> Result<Json<EscalationItem>, ApiError> {
    let team_id = member_of(&principal, team_id)?;
    Ok(Json(EscalationItem {
        policy: state
            .store
            .escalation_policy(team_id)
            .await?
            .map(PolicyBody::from),
    }))
}

/// Set (or replace) the team's escalation policy (members of the team). Alerts escalating
/// already continue under the new steps from where they are.
#[utoipa::path(put, path = "/v1/care-teams/{team_id}/escalation", tag = "escalation", params(TeamPath),
    request_body = PolicyBody,
    responses((status = 200, body = EscalationItem), BadRequest, Unauthenticated, NotFound))]
async fn set_escalation(
    TeamRequest(state, principal, team_id): TeamRequest,
    Json(body): Json<PolicyBody>,
) -> Result<Json<EscalationItem>, ApiError> {
    let team_id = member_of(&principal, team_id)?;
    let members: HashSet<Uuid> = state
        .store
        .team_members_with_duties(team_id)
        .await?
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    let seconds = |value: i64, what: &str| {
        if (0..=MAX_WAIT_SECONDS).contains(&value) {
            Ok(Duration::seconds(value))
        } else {
            Err(ApiError::BadRequest(format!(
                "{what} must be from 0 to {MAX_WAIT_SECONDS}"
            )))
        }
    };
    let mut steps = Vec::with_capacity(body.steps.len());
    for (index, step) in body.steps.iter().enumerate() {
        if let Some(stranger) = step.members.iter().find(|m| !members.contains(m)) {
            return Err(ApiError::BadRequest(format!(
                "step {}: {stranger} is not a member of the team",
                index + 1
            )));
        }
        let mut duties = step
            .duties
            .iter()
            .map(|d| duty_name(d))
            .collect::<Result<Vec<_>, _>>()?;
        duties.sort();
        duties.dedup();
        let mut step_members = step.members.clone();
        step_members.sort();
        step_members.dedup();
        steps.push(EscalationStep {
            after: seconds(step.after_seconds, "after_seconds")?,
            members: step_members,
            duties,
        });
    }
    let remind_every = body
        .renotify_every_seconds
        .map(|s| seconds(s, "renotify_every_seconds"))
        .transpose()?;
    let policy = EscalationPolicy::new(steps, remind_every)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    state
        .store
        .set_escalation_policy(team_id, &policy, principal.user_id)
        .await?;
    Ok(Json(EscalationItem {
        policy: Some(policy.into()),
    }))
}

/// Remove the team's policy (members of the team): every member is told at once again, and
/// escalations under way stop.
#[utoipa::path(delete, path = "/v1/care-teams/{team_id}/escalation", tag = "escalation", params(TeamPath),
    responses((status = 204, description = "Removed"), Unauthenticated, NotFound))]
async fn clear_escalation(
    TeamRequest(state, principal, team_id): TeamRequest,
) -> Result<StatusCode, ApiError> {
    let team_id = member_of(&principal, team_id)?;
    if state.store.clear_escalation_policy(team_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

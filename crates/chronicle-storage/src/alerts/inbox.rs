//! The care side: alert lists and counts through the gate's permits, acknowledgement and
//! resolution, and who receives a patient's alerts.

use super::{ALERT_COLUMNS, AlertRecord, AlertRow};
use crate::gate::Permit;
use crate::{StorageError, Store};
use chronicle_domain::alerts::lifecycle::AlertKind;
use chronicle_domain::alerts::lifecycle::{self, AlertStatus, EventKind, InvalidTransition};
use chronicle_domain::alerts::{RuleId, Severity};
use chronicle_domain::sharing::{Access, DataCategory};
use chronicle_domain::sharing::{AcknowledgementHolder, AlertAudience, Principal};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use uuid::Uuid;

impl Store {
    /// Unresolved alert counts of each permit's patient, within what the permits allow (their
    /// categories and `data_since`). Patients without any are absent.
    pub async fn open_alert_counts(
        &self,
        permits: &[Permit],
    ) -> Result<HashMap<Uuid, OpenAlertCounts>, StorageError> {
        permits_for_alerts(permits)?;
        if permits.is_empty() {
            return Ok(HashMap::new());
        }
        let patients: Vec<Uuid> = permits.iter().map(Permit::patient_id).collect();
        let categories: Vec<&str> = permits.iter().map(|p| p.category().as_str()).collect();
        let since: Vec<Option<DateTime<Utc>>> =
            permits.iter().map(|p| p.clamp_from(None)).collect();
        let rows: Vec<(Uuid, i64, i64, i64)> = sqlx::query_as(
            "SELECT a.patient_id,
                    count(*) FILTER (WHERE a.status = 'open'),
                    count(*) FILTER (WHERE a.status = 'open' AND a.severity = 'urgent'),
                    count(*) FILTER (WHERE a.status = 'acknowledged')
             FROM alerts a
             JOIN UNNEST($1::uuid[], $2::text[], $3::timestamptz[]) AS p (patient_id, category, since)
               ON a.patient_id = p.patient_id AND a.category = p.category
              AND (p.since IS NULL OR a.triggered_at >= p.since)
             WHERE a.kind = 'alert' AND a.status IN ('open', 'acknowledged')
             GROUP BY a.patient_id",
        )
        .bind(&patients)
        .bind(&categories)
        .bind(&since)
        .fetch_all(self.pool())
        .await?;
        let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(rows
            .into_iter()
            .map(|(patient, open, urgent, acknowledged)| {
                (
                    patient,
                    OpenAlertCounts {
                        open: count(open),
                        open_urgent: count(urgent),
                        acknowledged: count(acknowledged),
                    },
                )
            })
            .collect())
    }

    /// Alerts (and historical events) of the permits' patients and categories, newest first,
    /// within each grant's window.
    pub async fn alerts_for(
        &self,
        permits: &[Permit],
        filter: &AlertFilter,
    ) -> Result<Vec<AlertRecord>, StorageError> {
        permits_for_alerts(permits)?;
        let patients: Vec<Uuid> = permits.iter().map(Permit::patient_id).collect();
        let categories: Vec<&str> = permits.iter().map(|p| p.category().as_str()).collect();
        let since: Vec<Option<DateTime<Utc>>> =
            permits.iter().map(|p| p.clamp_from(None)).collect();
        let audiences: Vec<&str> = permits
            .iter()
            .map(|p| p.allowance().alert_audience().as_str())
            .collect();
        let holders: Vec<Option<Uuid>> = permits
            .iter()
            .map(|p| {
                p.allowance()
                    .acknowledgement_holder()
                    .and_then(AcknowledgementHolder::grant_id)
            })
            .collect();
        let statuses: Option<Vec<&str>> = filter
            .statuses
            .as_ref()
            .map(|s| s.iter().map(|s| s.as_str()).collect());
        let kind = filter.historical.map(|h| {
            if h {
                AlertKind::Historical
            } else {
                AlertKind::Alert
            }
            .as_str()
        });
        sqlx::query_as::<_, AlertRow>(&format!(
            "SELECT {columns}, k.audience, k.acknowledged_by AS audience_acknowledged_by,
                    k.acknowledged_at AS audience_acknowledged_at, k.note AS audience_note
             FROM alerts a
             JOIN UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $10::text[], $12::uuid[])
                 AS p (patient_id, category, since, audience, grant_id)
               ON a.patient_id = p.patient_id AND a.category = p.category
              AND (p.since IS NULL OR a.triggered_at >= p.since)
             LEFT JOIN alert_acknowledgements k ON k.alert_id = a.id AND k.audience = p.audience
              AND k.grant_id IS NOT DISTINCT FROM p.grant_id
             WHERE ($4::text IS NULL OR a.kind = $4)
               AND ($5::text[] IS NULL OR a.status = ANY($5))
               AND ($6::text IS NULL OR a.rule = $6)
               AND ($7::text IS NULL OR a.severity = $7)
               AND ($8::bigint IS NULL OR a.seq < $8)
               AND ($11::uuid IS NULL OR a.id = $11)
             ORDER BY a.seq DESC LIMIT $9",
            columns = ALERT_COLUMNS
                .split(", ")
                .map(|c| format!("a.{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(&patients)
        .bind(&categories)
        .bind(&since)
        .bind(kind)
        .bind(statuses)
        .bind(filter.rule.map(RuleId::as_str))
        .bind(filter.severity.map(Severity::as_str))
        .bind(filter.before_seq)
        .bind(filter.limit)
        .bind(&audiences)
        .bind(filter.id)
        .bind(&holders)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(AlertRecord::try_from)
        .collect()
    }

    /// The category of a patient's alert, so the caller can ask the gate for the right one;
    /// `None` when the patient has no such alert. Reveals nothing but the category.
    pub async fn alert_category(
        &self,
        patient_id: Uuid,
        alert_id: Uuid,
    ) -> Result<Option<DataCategory>, StorageError> {
        let category: Option<String> =
            sqlx::query_scalar("SELECT category FROM alerts WHERE id = $1 AND patient_id = $2")
                .bind(alert_id)
                .bind(patient_id)
                .fetch_optional(self.pool())
                .await?;
        category
            .map(|c| {
                DataCategory::parse(&c).ok_or_else(|| StorageError::corrupt("alert category", &c))
            })
            .transpose()
    }

    /// Acknowledges or resolves an alert as `user_id`, with an optional note. Serialized with
    /// the engine's evaluation of the patient. The alert's own state is the care team's: the
    /// patient's side acknowledges for the family, a caregiver or peer supporter for their own
    /// grant only, and only the care team resolves.
    pub async fn act_on_alert(
        &self,
        permit: &Permit,
        alert_id: Uuid,
        action: AlertAction,
        user_id: Uuid,
        note: Option<&str>,
    ) -> Result<Result<AlertRecord, AlertActionError>, StorageError> {
        permits_for_alerts(std::slice::from_ref(permit))?;
        let audience = permit.allowance().alert_audience();
        if audience != AlertAudience::CareTeam {
            return match action {
                AlertAction::Resolve => Ok(Err(AlertActionError::CareTeamOnly)),
                AlertAction::Acknowledge => {
                    self.acknowledge_for_audience(permit, alert_id, user_id, note)
                        .await
                }
            };
        }
        let mut evaluation = self.begin_alert_evaluation(&[permit.patient_id()]).await?;
        let row: Option<(String, Option<String>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT kind, status, triggered_at FROM alerts
             WHERE id = $1 AND patient_id = $2 AND category = $3 FOR UPDATE",
        )
        .bind(alert_id)
        .bind(permit.patient_id())
        .bind(permit.category().as_str())
        .fetch_optional(&mut *evaluation.tx)
        .await?;
        // Historical events have no lifecycle: nothing to acknowledge or resolve.
        let Some((_, Some(status), triggered_at)) = row.filter(|(kind, _, _)| kind == "alert")
        else {
            return Ok(Err(AlertActionError::NotFound));
        };
        if permit
            .clamp_from(None)
            .is_some_and(|since| triggered_at < since)
        {
            return Ok(Err(AlertActionError::NotFound));
        }
        let status = AlertStatus::parse(&status)
            .ok_or_else(|| StorageError::corrupt("alert status", &status))?;
        let next = match action {
            AlertAction::Acknowledge => lifecycle::acknowledge(status),
            AlertAction::Resolve => lifecycle::resolve(status),
        };
        if let Err(invalid) = next {
            return Ok(Err(invalid.into()));
        }
        let (statement, kind) = match action {
            AlertAction::Acknowledge => (
                "UPDATE alerts SET status = 'acknowledged', acknowledged_by = $2,
                     acknowledged_at = now(), acknowledgement_note = $3, updated_at = now()
                 WHERE id = $1",
                EventKind::Acknowledged,
            ),
            AlertAction::Resolve => (
                "UPDATE alerts SET status = 'resolved', resolved_by = $2, resolved_at = now(),
                     resolution = 'manual', resolution_note = $3, updated_at = now()
                 WHERE id = $1",
                EventKind::Resolved,
            ),
        };
        sqlx::query(statement)
            .bind(alert_id)
            .bind(user_id)
            .bind(note)
            .execute(&mut *evaluation.tx)
            .await?;
        // The team has it: its escalation ends now, so that a later re-trigger (which
        // reopens the alert) starts the chain afresh rather than where this one stopped.
        sqlx::query("DELETE FROM alert_escalations WHERE alert_id = $1")
            .bind(alert_id)
            .execute(&mut *evaluation.tx)
            .await?;
        evaluation.events.push((alert_id, kind, Some(user_id)));
        let events = evaluation.commit().await?;
        match events.into_iter().next() {
            Some(event) => Ok(Ok(event.alert)),
            None => Err(StorageError::corrupt("alert event", "none written")),
        }
    }

    /// Records the reader's own acknowledgement of a live alert (the family's, or the one of
    /// their grant), leaving the alert's (the care team's) state as it is.
    async fn acknowledge_for_audience(
        &self,
        permit: &Permit,
        alert_id: Uuid,
        user_id: Uuid,
        note: Option<&str>,
    ) -> Result<Result<AlertRecord, AlertActionError>, StorageError> {
        let audience = permit.allowance().alert_audience();
        let holder =
            permit
                .allowance()
                .acknowledgement_holder()
                .ok_or(StorageError::NotPermitted(
                    "acknowledgement without a grant",
                ))?;
        let inserted = sqlx::query(
            "INSERT INTO alert_acknowledgements (alert_id, audience, grant_id, acknowledged_by, note)
             SELECT a.id, $4, $8, $5, $6 FROM alerts a
             WHERE a.id = $1 AND a.patient_id = $2 AND a.category = $3 AND a.kind = 'alert'
               AND ($7::timestamptz IS NULL OR a.triggered_at >= $7)
             ON CONFLICT DO NOTHING",
        )
        .bind(alert_id)
        .bind(permit.patient_id())
        .bind(permit.category().as_str())
        .bind(audience.as_str())
        .bind(user_id)
        .bind(note)
        .bind(permit.clamp_from(None))
        .bind(holder.grant_id())
        .execute(self.pool())
        .await?
        .rows_affected()
            > 0;
        let found = self
            .alerts_for(
                std::slice::from_ref(permit),
                &AlertFilter {
                    id: Some(alert_id),
                    historical: Some(false),
                    limit: 1,
                    ..AlertFilter::default()
                },
            )
            .await?
            .pop();
        Ok(match found {
            None => Err(AlertActionError::NotFound),
            Some(_) if !inserted => Err(AlertActionError::AlreadyAcknowledged),
            Some(alert) => Ok(alert),
        })
    }

    /// The (patient, category) pairs whose alerts a principal may receive, to ask the gate
    /// about: their own record and those they are guardian of (both categories), and every
    /// active grant naming them (directly, or through a current team or organization) that
    /// allows `receive_alerts`. The gate still decides each pair.
    pub async fn alert_candidates(
        &self,
        principal: &Principal,
    ) -> Result<Vec<(Uuid, DataCategory)>, StorageError> {
        let rows: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT DISTINCT g.patient_id, c.category
             FROM grants g CROSS JOIN UNNEST(g.categories) AS c (category)
             WHERE g.revoked_at IS NULL AND (g.expires_at IS NULL OR g.expires_at > now())
               AND g.created_at <= now() AND 'receive_alerts' = ANY(g.access)
               AND c.category IN ('glucose', 'blood_pressure')
               AND ((g.grantee_type = 'user' AND g.grantee_id = $1)
                 OR (g.grantee_type = 'care_team' AND g.grantee_id = ANY($2))
                 OR (g.grantee_type = 'organization' AND g.grantee_id = ANY($3)))
             ORDER BY 1, 2",
        )
        .bind(principal.user_id)
        .bind(&principal.care_teams)
        .bind(&principal.organizations)
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<(Uuid, DataCategory)> = principal
            .patient_id
            .into_iter()
            .chain(principal.guardian_of.iter().copied())
            .flat_map(|p| [(p, DataCategory::Glucose), (p, DataCategory::BloodPressure)])
            .collect();
        for (patient_id, category) in rows {
            let category = DataCategory::parse(&category).ok_or_else(|| StorageError::Corrupt {
                what: "grant category",
                value: category.clone(),
            })?;
            if !out.contains(&(patient_id, category)) {
                out.push((patient_id, category));
            }
        }
        Ok(out)
    }
}

/// What a user asked of an alert that cannot be done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlertActionError {
    /// No such alert of this patient in the permit's category.
    #[error("no such alert")]
    NotFound,
    #[error(transparent)]
    Transition(#[from] InvalidTransition),
    /// Only the care team resolves an alert; other audiences acknowledge for themselves.
    #[error("only the care team resolves an alert; acknowledge it for yourself instead")]
    CareTeamOnly,
    /// The caller (the family, or this caregiver's grant) acknowledged this alert already.
    #[error("already acknowledged on your side")]
    AlreadyAcknowledged,
}

/// A user's action on an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    Acknowledge,
    Resolve,
}

/// Which alerts a list shows.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Any of these statuses (historical events have none and are left out when set).
    pub statuses: Option<Vec<AlertStatus>>,
    /// `Some(false)`: live alerts only; `Some(true)`: historical events only.
    pub historical: Option<bool>,
    pub rule: Option<RuleId>,
    pub severity: Option<Severity>,
    /// Continue after this position (the previous page's last `seq`).
    pub before_seq: Option<i64>,
    pub limit: i64,
    /// One alert only.
    pub id: Option<Uuid>,
}

pub(super) fn permits_for_alerts(permits: &[Permit]) -> Result<(), StorageError> {
    if permits.iter().all(|p| {
        p.access() == Access::ReceiveAlerts
            && matches!(
                p.category(),
                DataCategory::Glucose | DataCategory::BloodPressure
            )
    }) {
        Ok(())
    } else {
        Err(StorageError::NotPermitted("alerts"))
    }
}

/// A patient's unresolved alerts in the categories the caller receives alerts for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenAlertCounts {
    /// Open (not yet acknowledged) alerts.
    pub open: u32,
    /// Of those, the urgent ones.
    pub open_urgent: u32,
    /// Acknowledged, not yet resolved.
    pub acknowledged: u32,
}

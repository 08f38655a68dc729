//! A user's snoozes of a patient's alarms.

use super::inbox::permits_for_alerts;
use crate::gate::Permit;
use crate::{StorageError, Store};
use chronicle_domain::alerts::RuleId;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

impl Store {
    /// Snoozes the permit's patient's alarms for `user_id` (one rule, or all) until `until`.
    pub async fn snooze_alerts(
        &self,
        permit: &Permit,
        user_id: Uuid,
        rule: Option<RuleId>,
        until: DateTime<Utc>,
    ) -> Result<Snooze, StorageError> {
        permits_for_alerts(std::slice::from_ref(permit))?;
        sqlx::query(
            "INSERT INTO alert_snoozes (user_id, patient_id, rule, until) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, patient_id, rule) DO UPDATE SET until = excluded.until,
                 created_at = now()",
        )
        .bind(user_id)
        .bind(permit.patient_id())
        .bind(rule.map_or(ALL_RULES, RuleId::as_str))
        .bind(until)
        .execute(self.pool())
        .await?;
        Ok(Snooze {
            patient_id: permit.patient_id(),
            rule: rule.map(|r| r.as_str().to_owned()),
            until,
        })
    }

    /// Ends the user's snoozes of the patient (of one rule, or all of them); how many ended.
    pub async fn unsnooze_alerts(
        &self,
        permit: &Permit,
        user_id: Uuid,
        rule: Option<RuleId>,
    ) -> Result<u64, StorageError> {
        permits_for_alerts(std::slice::from_ref(permit))?;
        Ok(sqlx::query(
            "DELETE FROM alert_snoozes WHERE user_id = $1 AND patient_id = $2
                 AND ($3::text IS NULL OR rule = $3)",
        )
        .bind(user_id)
        .bind(permit.patient_id())
        .bind(rule.map(RuleId::as_str))
        .execute(self.pool())
        .await?
        .rows_affected())
    }

    /// The user's snoozes still running.
    pub async fn snoozes_of(&self, user_id: Uuid) -> Result<Vec<Snooze>, StorageError> {
        let rows: Vec<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT patient_id, rule, until FROM alert_snoozes
             WHERE user_id = $1 AND until > now() ORDER BY until, patient_id, rule",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(patient_id, rule, until)| Snooze {
                patient_id,
                rule: (rule != ALL_RULES).then_some(rule),
                until,
            })
            .collect())
    }

    /// Whether the user snoozed this patient's alarms of `rule` (or all) at `at`.
    pub async fn is_snoozed(
        &self,
        user_id: Uuid,
        patient_id: Uuid,
        rule: RuleId,
        at: DateTime<Utc>,
    ) -> Result<bool, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM alert_snoozes WHERE user_id = $1 AND patient_id = $2
                 AND rule IN ($3, '*') AND until > $4)",
        )
        .bind(user_id)
        .bind(patient_id)
        .bind(rule.as_str())
        .bind(at)
        .fetch_one(self.pool())
        .await?)
    }
}

/// A user's snooze of a patient's alarms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snooze {
    pub patient_id: Uuid,
    /// `None`: every rule.
    pub rule: Option<String>,
    pub until: DateTime<Utc>,
}

/// Every rule, in a snooze row.
const ALL_RULES: &str = "*";

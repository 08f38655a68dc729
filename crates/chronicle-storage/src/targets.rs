//! Each patient's glucose targets, with the record of every change. Absent a row, a patient
//! has the standard preset.

use crate::{StorageError, Store};
use chronicle_domain::targets::GlucoseTargets;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use uuid::Uuid;

/// One change of a patient's targets.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetChange {
    pub targets: GlucoseTargets,
    pub changed_by: Option<Uuid>,
    pub changed_at: DateTime<Utc>,
}

pub(crate) fn decode(json: serde_json::Value) -> Result<GlucoseTargets, StorageError> {
    serde_json::from_value(json.clone()).map_err(|_| StorageError::Corrupt {
        what: "glucose targets",
        value: json.to_string(),
    })
}

impl Store {
    /// The targets of each of `patient_ids` (the standard preset for those without any).
    pub async fn glucose_targets(
        &self,
        patient_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, GlucoseTargets>, StorageError> {
        let rows: Vec<(Uuid, serde_json::Value)> = sqlx::query_as(
            "SELECT patient_id, glucose FROM patient_targets WHERE patient_id = ANY($1)",
        )
        .bind(patient_ids)
        .fetch_all(self.pool())
        .await?;
        let mut targets: HashMap<Uuid, GlucoseTargets> = patient_ids
            .iter()
            .map(|id| (*id, GlucoseTargets::standard()))
            .collect();
        for (patient_id, json) in rows {
            targets.insert(patient_id, decode(json)?);
        }
        Ok(targets)
    }

    /// Sets a patient's targets (already validated) and records the change.
    pub async fn set_glucose_targets(
        &self,
        patient_id: Uuid,
        targets: &GlucoseTargets,
        changed_by: Option<Uuid>,
    ) -> Result<(), StorageError> {
        let json = serde_json::to_value(targets).map_err(|e| StorageError::Corrupt {
            what: "glucose targets",
            value: e.to_string(),
        })?;
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO patient_targets (patient_id, preset, glucose, changed_by)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (patient_id) DO UPDATE SET preset = excluded.preset,
                 glucose = excluded.glucose, changed_by = excluded.changed_by,
                 changed_at = now()",
        )
        .bind(patient_id)
        .bind(targets.preset.as_str())
        .bind(&json)
        .bind(changed_by)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO patient_target_changes (patient_id, preset, glucose, alert_thresholds,
                 changed_by)
             SELECT patient_id, preset, glucose, alert_thresholds, changed_by
             FROM patient_targets WHERE patient_id = $1",
        )
        .bind(patient_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every change of a patient's targets, newest first.
    pub async fn glucose_target_changes(
        &self,
        patient_id: Uuid,
    ) -> Result<Vec<TargetChange>, StorageError> {
        let rows: Vec<(serde_json::Value, Option<Uuid>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT glucose, changed_by, changed_at FROM patient_target_changes
             WHERE patient_id = $1 ORDER BY changed_at DESC, id DESC",
        )
        .bind(patient_id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(json, changed_by, changed_at)| {
                Ok(TargetChange {
                    targets: decode(json)?,
                    changed_by,
                    changed_at,
                })
            })
            .collect()
    }
}

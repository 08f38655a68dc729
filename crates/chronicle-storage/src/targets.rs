//! Each patient's glucose targets and alert thresholds, with the record of every change.
//! Absent a row, a patient has the standard preset; absent custom alert thresholds, the
//! thresholds of their targets' preset.

use crate::alerts::decode_thresholds;
use crate::{StorageError, Store};
use chronicle_domain::alerts::thresholds::AlertThresholds;
use chronicle_domain::targets::GlucoseTargets;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use uuid::Uuid;

/// One change of a patient's targets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetChange {
    pub targets: GlucoseTargets,
    /// The custom alert thresholds set with the change; `None`: the preset's.
    pub alert_thresholds: Option<AlertThresholds>,
    pub changed_by: Option<Uuid>,
    pub changed_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ChangeRow {
    glucose: serde_json::Value,
    alert_thresholds: Option<serde_json::Value>,
    changed_by: Option<Uuid>,
    changed_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct TargetsRow {
    preset: String,
    glucose: serde_json::Value,
    alert_thresholds: Option<serde_json::Value>,
    changed_by: Option<Uuid>,
    changed_at: DateTime<Utc>,
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

    /// Sets a patient's targets (already validated) and records the change; custom alert
    /// thresholds, if any, stay.
    pub async fn set_glucose_targets(
        &self,
        patient_id: Uuid,
        targets: &GlucoseTargets,
        changed_by: Option<Uuid>,
    ) -> Result<(), StorageError> {
        self.write_targets(patient_id, targets, None, changed_by)
            .await
    }

    /// Every change of a patient's targets, newest first.
    pub async fn glucose_target_changes(
        &self,
        patient_id: Uuid,
    ) -> Result<Vec<TargetChange>, StorageError> {
        let rows: Vec<ChangeRow> = sqlx::query_as(
            "SELECT glucose, alert_thresholds, changed_by, changed_at FROM patient_target_changes
             WHERE patient_id = $1 ORDER BY changed_at DESC, id DESC",
        )
        .bind(patient_id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(TargetChange {
                    targets: decode(r.glucose)?,
                    alert_thresholds: r
                        .alert_thresholds
                        .map(|t| decode_thresholds(None, Some(t)))
                        .transpose()?,
                    changed_by: r.changed_by,
                    changed_at: r.changed_at,
                })
            })
            .collect()
    }
}

/// A patient's targets and alert thresholds as they stand.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatientTargets {
    pub glucose: GlucoseTargets,
    /// The thresholds in force: the custom ones, else the preset's.
    pub alert_thresholds: AlertThresholds,
    /// Whether the care team set custom thresholds.
    pub custom_thresholds: bool,
    pub changed_by: Option<Uuid>,
    pub changed_at: Option<DateTime<Utc>>,
}

impl Store {
    /// A patient's targets and alert thresholds (the standard preset for a patient without).
    pub async fn patient_targets(&self, patient_id: Uuid) -> Result<PatientTargets, StorageError> {
        let row: Option<TargetsRow> = sqlx::query_as(
            "SELECT preset, glucose, alert_thresholds, changed_by, changed_at
             FROM patient_targets WHERE patient_id = $1",
        )
        .bind(patient_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            None => PatientTargets {
                glucose: GlucoseTargets::standard(),
                alert_thresholds: decode_thresholds(None, None)?,
                custom_thresholds: false,
                changed_by: None,
                changed_at: None,
            },
            Some(r) => PatientTargets {
                glucose: decode(r.glucose)?,
                custom_thresholds: r.alert_thresholds.is_some(),
                alert_thresholds: decode_thresholds(Some(&r.preset), r.alert_thresholds)?,
                changed_by: r.changed_by,
                changed_at: Some(r.changed_at),
            },
        })
    }

    /// Sets a patient's targets and alert thresholds (already validated; `None`: those of the
    /// targets' preset) in one change, recorded with who made it.
    pub async fn set_patient_targets(
        &self,
        patient_id: Uuid,
        targets: &GlucoseTargets,
        thresholds: Option<&AlertThresholds>,
        changed_by: Option<Uuid>,
    ) -> Result<(), StorageError> {
        self.write_targets(patient_id, targets, Some(thresholds), changed_by)
            .await
    }

    /// Writes the targets, and the thresholds unless `thresholds` is `None` (keep them), then
    /// appends the result to the history, in one transaction.
    async fn write_targets(
        &self,
        patient_id: Uuid,
        targets: &GlucoseTargets,
        thresholds: Option<Option<&AlertThresholds>>,
        changed_by: Option<Uuid>,
    ) -> Result<(), StorageError> {
        let corrupt =
            |what: &'static str| move |e: serde_json::Error| StorageError::corrupt(what, e);
        let glucose = serde_json::to_value(targets).map_err(corrupt("glucose targets"))?;
        let custom = thresholds
            .flatten()
            .map(serde_json::to_value)
            .transpose()
            .map_err(corrupt("alert thresholds"))?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO patient_targets (patient_id, preset, glucose, alert_thresholds, changed_by)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (patient_id) DO UPDATE SET preset = excluded.preset,
                 glucose = excluded.glucose,
                 alert_thresholds = CASE WHEN $6 THEN excluded.alert_thresholds
                                         ELSE patient_targets.alert_thresholds END,
                 changed_by = excluded.changed_by, changed_at = now()",
        )
        .bind(patient_id)
        .bind(targets.preset.as_str())
        .bind(&glucose)
        .bind(&custom)
        .bind(changed_by)
        .bind(thresholds.is_some())
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
}

//! The gate every read of patient data passes: load the patient's grants (and the caller's
//! emergency accesses), let `chronicle_domain::sharing::authorize` decide, append the attempt
//! to the access log, and hand out a [`Permit`]. The patient-data queries below take a
//! `Permit` and apply its limits (category, trends only, window), so they cannot run without a
//! logged decision.

use crate::sharing::NewAccessLogEntry;
use crate::{StorageError, Store};
use chronicle_domain::sharing::{
    AccessRequest, Basis, DataCategory, DenyReason, Permit, Principal, Role, authorize,
};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A stored glucose reading as a permitted reader sees it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct StoredGlucose {
    pub device_id: String,
    pub measured_at: DateTime<Utc>,
    pub value_mg_dl: f64,
    pub original_value: Option<f64>,
    pub original_unit: String,
    pub source: String,
    pub flag: Option<String>,
}

/// A page request over a time range, ordered by (`measured_at`, `device_id`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PageRequest<'a> {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Continue after this key (the last item of the previous page).
    pub after: Option<(DateTime<Utc>, &'a str)>,
    pub limit: i64,
}

impl Store {
    /// Decides `request` for `principal`, records the attempt as `action` in the patient's
    /// access log, and returns the permit or why it was refused.
    pub async fn authorize(
        &self,
        principal: &Principal,
        request: AccessRequest,
        action: &str,
    ) -> Result<Result<Permit, DenyReason>, StorageError> {
        let grants = self.grants_for_patient(request.patient_id).await?;
        let emergencies = if principal.role == Some(Role::Clinician) {
            self.emergency_accesses(principal.user_id, request.patient_id)
                .await?
        } else {
            Vec::new()
        };
        let decision = authorize(principal, &request, &grants, &emergencies);
        let (grant_id, emergency_id) = match decision.as_ref().map(|p| p.allowance().basis) {
            Ok(Basis::Grant(id)) => (Some(id), None),
            Ok(Basis::Emergency(id)) => (None, Some(id)),
            _ => (None, None),
        };
        self.append_access_log(&NewAccessLogEntry {
            actor_id: Some(principal.user_id),
            actor_role: principal.role.map(|r| r.as_str().to_owned()),
            patient_id: request.patient_id,
            action: action.to_owned(),
            category: Some(request.category),
            purpose: decision.as_ref().ok().and_then(|p| p.allowance().purpose),
            grant_id,
            emergency_id,
            allowed: decision.is_ok(),
            reason: decision.as_ref().err().map(|r| r.as_str().to_owned()),
        })
        .await?;
        Ok(decision)
    }

    /// Glucose readings of the permit's patient, within its window.
    pub async fn glucose_readings(
        &self,
        permit: &Permit,
        page: PageRequest<'_>,
    ) -> Result<Vec<StoredGlucose>, StorageError> {
        if !permit.allows_readings_of(DataCategory::Glucose) {
            return Err(StorageError::NotPermitted("individual glucose readings"));
        }
        let (after_at, after_device) = page.after.unzip();
        Ok(sqlx::query_as::<_, StoredGlucose>(
            "SELECT device_id, measured_at, value_mg_dl, original_value, original_unit, source, flag
             FROM glucose_readings
             WHERE patient_id = $1
               AND ($2::timestamptz IS NULL OR measured_at >= $2)
               AND ($3::timestamptz IS NULL OR measured_at < $3)
               AND ($4::timestamptz IS NULL OR (measured_at, device_id) > ($4, $5))
             ORDER BY measured_at, device_id
             LIMIT $6",
        )
        .bind(permit.patient_id())
        .bind(permit.clamp_from(page.from))
        .bind(page.to)
        .bind(after_at)
        .bind(after_device)
        .bind(page.limit)
        .fetch_all(self.pool())
        .await?)
    }
}

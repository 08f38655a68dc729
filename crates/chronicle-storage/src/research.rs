//! De-identified reads for research studies: a pseudonym names the patient within a study,
//! and the study's own grant decides.

use crate::gate::Permit;
use crate::readings::{Glucose, PageRequest, StoredGlucose};
use crate::{StorageError, Store};
use chronicle_domain::sharing::{Basis, DataCategory, Principal, deidentify};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

impl Store {
    /// The patient behind a research pseudonym and the study (research grant) it belongs to,
    /// for a principal holding that active grant; `None` otherwise (an unknown pseudonym and a
    /// missing grant look alike).
    pub async fn research_subject(
        &self,
        principal: &Principal,
        pseudonym: Uuid,
    ) -> Result<Option<ResearchSubject>, StorageError> {
        let grants: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT id, patient_id FROM grants
             WHERE purpose = 'research' AND revoked_at IS NULL
               AND (expires_at IS NULL OR expires_at > now()) AND created_at <= now()
               AND ((grantee_type = 'user' AND grantee_id = $1)
                 OR (grantee_type = 'care_team' AND grantee_id = ANY($2))
                 OR (grantee_type = 'organization' AND grantee_id = ANY($3)))",
        )
        .bind(principal.user_id)
        .bind(&principal.care_teams)
        .bind(&principal.organizations)
        .fetch_all(self.pool())
        .await?;
        Ok(grants
            .into_iter()
            .find(|(grant_id, patient_id)| {
                deidentify::pseudonym(*grant_id, patient_id.as_bytes()) == pseudonym
            })
            .map(|(study, patient_id)| ResearchSubject { patient_id, study }))
    }

    /// Glucose readings for research under a de-identified permit: pseudonymous device ids,
    /// times moved back by the study's secret shift and rounded to the minute, within the
    /// grant's window and without the most recent days (`holdback`, stretched per study).
    pub async fn research_glucose_readings(
        &self,
        permit: &Permit,
        (holdback, now): (Duration, DateTime<Utc>),
        limit: i64,
    ) -> Result<Vec<StoredGlucose>, StorageError> {
        let Basis::Grant(study) = permit.allowance().basis else {
            return Err(StorageError::NotPermitted(
                "research reads without a research grant",
            ));
        };
        if !permit.allowance().deidentified || !permit.allows_readings_of(DataCategory::Glucose) {
            return Err(StorageError::NotPermitted("de-identified glucose readings"));
        }
        let secrets: Option<(Option<i64>, Option<f64>)> = sqlx::query_as(
            "SELECT research_shift_seconds, research_holdback_fraction FROM grants WHERE id = $1",
        )
        .bind(study)
        .fetch_optional(self.pool())
        .await?;
        let Some((Some(shift), Some(fraction))) = secrets else {
            return Err(StorageError::corrupt(
                "research grant without its de-identification secrets",
                study,
            ));
        };
        let page = PageRequest {
            from: permit.clamp_from(None),
            to: Some(now - deidentify::holdback(holdback, fraction)),
            limit,
            ..PageRequest::default()
        };
        Ok(self
            .query_readings::<Glucose>(permit.patient_id(), page)
            .await?
            .into_iter()
            .map(|r| StoredGlucose {
                device_id: deidentify::pseudonym(study, r.device_id.as_bytes()).to_string(),
                measured_at: deidentify::shifted(r.measured_at, shift),
                ..r
            })
            .collect())
    }
}

/// The patient behind a research pseudonym, and the study it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResearchSubject {
    pub patient_id: Uuid,
    /// The research grant, which is the study.
    pub study: Uuid,
}

//! De-identified reads for research studies: a pseudonym names the patient within a study,
//! and the study's own grant decides.

use crate::gate::Permit;
use crate::readings::{Glucose, PageRequest, StoredGlucose};
use crate::{StorageError, Store};
use chronicle_domain::sharing::{Basis, DataCategory, Principal, deidentify};
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

    /// Glucose readings for research under a de-identified permit: pseudonymous device ids and
    /// times moved back by the patient's shift, within the grant's window.
    pub async fn research_glucose_readings(
        &self,
        permit: &Permit,
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
        let page = PageRequest {
            from: permit.clamp_from(None),
            limit,
            ..PageRequest::default()
        };
        let shift = chrono::Duration::days(deidentify::shift_days(study, permit.patient_id()));
        Ok(self
            .query_readings::<Glucose>(permit.patient_id(), page)
            .await?
            .into_iter()
            .map(|r| StoredGlucose {
                device_id: deidentify::pseudonym(study, r.device_id.as_bytes()).to_string(),
                measured_at: r.measured_at - shift,
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

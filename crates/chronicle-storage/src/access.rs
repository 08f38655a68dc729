//! The gate every read of patient data passes: load the patient's grants (and the caller's
//! emergency accesses), let `chronicle_domain::sharing::authorize` decide, append the attempt
//! to the access log, and hand out a [`Permit`]. The patient-data queries below take a
//! `Permit` and apply its limits (category, trends only, window), so they cannot run without a
//! logged decision.

use crate::registry::{Device, DeviceCredentials};
use crate::sharing::NewAccessLogEntry;
use crate::sharing::{AccessLogEntry, NewGrant};
use crate::{StorageError, Store};
use chronicle_domain::sharing::{
    Access, AccessRequest, Basis, DataCategory, DenyReason, EmergencyAccess, Grant, Grantee,
    PatientActor, Permit, Principal, Purpose, Role, act_as, authorize, deidentify,
};
use chronicle_domain::{DeviceId, DeviceKind};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

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
        self.append_access_log(&decision_entry(principal, &request, &decision, action))
            .await?;
        Ok(decision)
    }

    /// Decides many requests of one principal at once (a panel of patients): one query for the
    /// patients' grants, one for the caller's emergency accesses, and one statement appending
    /// every attempt to the access log, one entry per request as [`Store::authorize`] writes.
    /// The decisions come back in the order of `requests`.
    pub async fn authorize_many(
        &self,
        principal: &Principal,
        requests: &[AccessRequest],
        action: &str,
    ) -> Result<Vec<Result<Permit, DenyReason>>, StorageError> {
        let (decisions, entries) = self.decide_many(principal, requests, action).await?;
        self.append_access_log_many(&entries).await?;
        Ok(decisions)
    }

    /// [`Store::authorize_many`] without the logging: the decisions and the access-log entries
    /// the caller must append before revealing anything (the panel appends them while it
    /// reads, and answers only once both are done).
    pub(crate) async fn decide_many(
        &self,
        principal: &Principal,
        requests: &[AccessRequest],
        action: &str,
    ) -> Result<(Vec<Result<Permit, DenyReason>>, Vec<NewAccessLogEntry>), StorageError> {
        let mut patient_ids: Vec<Uuid> = requests.iter().map(|r| r.patient_id).collect();
        patient_ids.sort();
        patient_ids.dedup();
        // Only grants naming the principal (or their teams or organizations) can decide for
        // them, so only those are loaded.
        let grants = self.grants_naming(principal, &patient_ids).await?;
        let emergencies = if principal.role == Some(Role::Clinician) {
            self.emergency_accesses_to(principal.user_id, &patient_ids)
                .await?
        } else {
            Vec::new()
        };
        let decisions: Vec<Result<Permit, DenyReason>> = requests
            .iter()
            .map(|request| {
                let theirs = grants
                    .get(&request.patient_id)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                authorize(principal, request, theirs, &emergencies)
            })
            .collect();
        let entries: Vec<NewAccessLogEntry> = requests
            .iter()
            .zip(&decisions)
            .map(|(request, decision)| decision_entry(principal, request, decision, action))
            .collect();
        Ok((decisions, entries))
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
        let page = PageRequest {
            from: permit.clamp_from(page.from),
            ..page
        };
        self.query_glucose(permit.patient_id(), page).await
    }

    async fn query_glucose(
        &self,
        patient_id: Uuid,
        page: PageRequest<'_>,
    ) -> Result<Vec<StoredGlucose>, StorageError> {
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
        .bind(patient_id)
        .bind(page.from)
        .bind(page.to)
        .bind(after_at)
        .bind(after_device)
        .bind(page.limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Decides whether `principal` acts as the patient (own record or guardian), records the
    /// attempt as `action`, and returns the proof or why not.
    pub async fn authorize_as_patient(
        &self,
        principal: &Principal,
        patient_id: Uuid,
        action: &str,
    ) -> Result<Result<PatientActor, DenyReason>, StorageError> {
        let decision = act_as(principal, patient_id);
        self.append_access_log(&NewAccessLogEntry {
            actor_id: Some(principal.user_id),
            actor_role: principal.role.map(|r| r.as_str().to_owned()),
            patient_id,
            action: action.to_owned(),
            category: None,
            purpose: None,
            grant_id: None,
            emergency_id: None,
            allowed: decision.is_ok(),
            reason: decision.as_ref().err().map(|r| r.as_str().to_owned()),
        })
        .await?;
        Ok(decision)
    }

    /// Blood-pressure readings of the permit's patient, within its window.
    pub async fn blood_pressure_readings(
        &self,
        permit: &Permit,
        page: PageRequest<'_>,
    ) -> Result<Vec<StoredBloodPressure>, StorageError> {
        if !permit.allows_readings_of(DataCategory::BloodPressure) {
            return Err(StorageError::NotPermitted(
                "individual blood-pressure readings",
            ));
        }
        let page = PageRequest {
            from: permit.clamp_from(page.from),
            ..page
        };
        self.query_blood_pressure(permit.patient_id(), page).await
    }

    async fn query_blood_pressure(
        &self,
        patient_id: Uuid,
        page: PageRequest<'_>,
    ) -> Result<Vec<StoredBloodPressure>, StorageError> {
        let (after_at, after_device) = page.after.unzip();
        Ok(sqlx::query_as::<_, StoredBloodPressure>(
            "SELECT device_id, measured_at, systolic, diastolic, pulse
             FROM blood_pressure_readings
             WHERE patient_id = $1
               AND ($2::timestamptz IS NULL OR measured_at >= $2)
               AND ($3::timestamptz IS NULL OR measured_at < $3)
               AND ($4::timestamptz IS NULL OR (measured_at, device_id) > ($4, $5))
             ORDER BY measured_at, device_id
             LIMIT $6",
        )
        .bind(patient_id)
        .bind(page.from)
        .bind(page.to)
        .bind(after_at)
        .bind(after_device)
        .bind(page.limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Everything held about the patient, for their export.
    pub async fn everything_of(&self, actor: &PatientActor) -> Result<PatientRecord, StorageError> {
        let patient_id = actor.patient_id();
        let patient = self
            .patient(patient_id)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                what: "patient",
                id: patient_id.to_string(),
            })?;
        let all = PageRequest {
            limit: i64::MAX,
            ..PageRequest::default()
        };
        Ok(PatientRecord {
            devices: self.list_devices(Some(patient_id)).await?,
            glucose: self.query_glucose(patient_id, all).await?,
            blood_pressure: self.query_blood_pressure(patient_id, all).await?,
            grants: self.grants_for_patient(patient_id).await?,
            patient,
        })
    }

    /// Erases everything held about the patient: readings, refusals, devices, grants,
    /// emergency accesses, guardians and the record itself, in one transaction. The patient's
    /// user accounts are disabled. The access log is kept (it holds no health data, and it is
    /// the record of who saw what).
    pub async fn erase(&self, actor: &PatientActor) -> Result<(), StorageError> {
        let patient_id = actor.patient_id();
        let mut tx = self.pool().begin().await?;
        for statement in [
            "DELETE FROM glucose_readings WHERE patient_id = $1",
            "DELETE FROM blood_pressure_readings WHERE patient_id = $1",
            "DELETE FROM rejected_readings WHERE patient_id = $1
                 OR device_id IN (SELECT id FROM devices WHERE patient_id = $1)",
            "DELETE FROM devices WHERE patient_id = $1",
            "DELETE FROM ingest_followups WHERE patient_id = $1",
            "UPDATE users SET disabled_at = coalesce(disabled_at, now()) WHERE patient_id = $1",
            "UPDATE auth_tokens SET revoked_at = coalesce(revoked_at, now())
                 WHERE user_id IN (SELECT id FROM users WHERE patient_id = $1)",
            // Grants, emergency accesses and guardians go with the record (ON DELETE CASCADE).
            "DELETE FROM patients WHERE id = $1",
        ] {
            sqlx::query(statement)
                .bind(patient_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The patient's devices, for a permit on device information.
    pub async fn devices_of(&self, permit: &Permit) -> Result<Vec<Device>, StorageError> {
        if permit.category() != DataCategory::DeviceInfo
            || !matches!(permit.access(), Access::ViewReadings | Access::ViewTrends)
        {
            return Err(StorageError::NotPermitted("device information"));
        }
        self.list_devices(Some(permit.patient_id())).await
    }

    /// The patient's grants, in any state.
    pub async fn grants_of(&self, actor: &PatientActor) -> Result<Vec<Grant>, StorageError> {
        self.grants_for_patient(actor.patient_id()).await
    }

    /// A grant the patient (or their guardian) makes.
    pub async fn grant_as(
        &self,
        actor: &PatientActor,
        grant: GrantSpec,
    ) -> Result<Grant, StorageError> {
        self.create_grant(&NewGrant {
            patient_id: actor.patient_id(),
            grantee: grant.grantee,
            categories: grant.categories,
            access: grant.access,
            purpose: grant.purpose,
            data_since: grant.data_since,
            expires_at: grant.expires_at,
            created_by: Some(actor.user_id()),
        })
        .await
    }

    /// Revokes one of the patient's grants; `None` if the patient has no such grant.
    pub async fn revoke_grant_as(
        &self,
        actor: &PatientActor,
        grant_id: Uuid,
    ) -> Result<Option<Grant>, StorageError> {
        self.revoke_grant(actor.patient_id(), grant_id).await
    }

    /// The patient's access log, newest first.
    pub async fn access_log_of(
        &self,
        actor: &PatientActor,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AccessLogEntry>, StorageError> {
        self.access_log(actor.patient_id(), before_id, limit).await
    }

    /// Pairs a new device for the patient and returns its one-time credentials.
    pub async fn pair_device_as(
        &self,
        actor: &PatientActor,
        kind: DeviceKind,
        label: Option<&str>,
    ) -> Result<(Device, DeviceCredentials), StorageError> {
        self.create_device(actor.patient_id(), kind, label).await
    }

    /// Revokes one of the patient's devices; `None` if the patient has no such device.
    pub async fn revoke_device_as(
        &self,
        actor: &PatientActor,
        device_id: &DeviceId,
    ) -> Result<Option<Device>, StorageError> {
        let owned = self
            .list_devices(Some(actor.patient_id()))
            .await?
            .into_iter()
            .any(|d| &d.id == device_id);
        if !owned {
            return Ok(None);
        }
        self.revoke_device(device_id).await.map(Some)
    }

    /// Opens an emergency access for a clinician and records it in the patient's access log;
    /// `None` if there is no such patient.
    pub async fn open_emergency_access_as(
        &self,
        principal: &Principal,
        patient_id: Uuid,
        reason: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Option<EmergencyAccess>, StorageError> {
        if principal.role != Some(Role::Clinician) || self.patient(patient_id).await?.is_none() {
            return Ok(None);
        }
        let opened = self
            .open_emergency_access(patient_id, principal.user_id, reason, expires_at)
            .await?;
        self.append_access_log(&NewAccessLogEntry {
            actor_id: Some(principal.user_id),
            actor_role: Some(Role::Clinician.as_str().to_owned()),
            patient_id,
            action: "open_emergency_access".to_owned(),
            category: None,
            purpose: Some(Purpose::Care),
            grant_id: None,
            emergency_id: Some(opened.id),
            allowed: true,
            reason: Some(reason.to_owned()),
        })
        .await?;
        Ok(Some(opened))
    }

    /// The patient behind a research pseudonym, for a principal holding an active research
    /// grant on them; `None` otherwise (an unknown pseudonym and a missing grant look alike).
    pub async fn research_subject(
        &self,
        principal: &Principal,
        pseudonym: Uuid,
    ) -> Result<Option<Uuid>, StorageError> {
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
            .map(|(_, patient_id)| patient_id))
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
            .query_glucose(permit.patient_id(), page)
            .await?
            .into_iter()
            .map(|r| StoredGlucose {
                device_id: deidentify::pseudonym(study, r.device_id.as_bytes()).to_string(),
                measured_at: r.measured_at - shift,
                ..r
            })
            .collect())
    }

    /// The patients a principal may see in a list: their own record, those they are guardian
    /// of, and those with an active grant naming them (directly, or through a current team or
    /// organization). Research grants show no name. Each listed patient gets an access-log
    /// entry, since a name is patient data too.
    pub async fn visible_patients(
        &self,
        principal: &Principal,
    ) -> Result<Vec<VisiblePatient>, StorageError> {
        let rows: Vec<(Uuid, String, String, Uuid)> = sqlx::query_as(
            "SELECT p.id, p.display_name, g.purpose, g.id
             FROM grants g JOIN patients p ON p.id = g.patient_id
             WHERE g.revoked_at IS NULL AND (g.expires_at IS NULL OR g.expires_at > now())
               AND g.created_at <= now()
               AND ((g.grantee_type = 'user' AND g.grantee_id = $1)
                 OR (g.grantee_type = 'care_team' AND g.grantee_id = ANY($2))
                 OR (g.grantee_type = 'organization' AND g.grantee_id = ANY($3)))
             ORDER BY p.display_name, p.id, g.created_at, g.id",
        )
        .bind(principal.user_id)
        .bind(&principal.care_teams)
        .bind(&principal.organizations)
        .fetch_all(self.pool())
        .await?;
        let own: Vec<Uuid> = principal
            .patient_id
            .into_iter()
            .chain(principal.guardian_of.iter().copied())
            .collect();
        let mut out: Vec<VisiblePatient> = Vec::new();
        for patient_id in &own {
            if let Some(p) = self.patient(*patient_id).await? {
                out.push(VisiblePatient {
                    patient_id: p.id,
                    record_id: p.id,
                    display_name: Some(p.display_name),
                    purposes: Vec::new(),
                    basis: if principal.patient_id == Some(p.id) {
                        "own"
                    } else {
                        "guardian"
                    },
                });
            }
        }
        let purpose = principal.role.and_then(Purpose::for_role);
        for (patient_id, name, grant_purpose, grant_id) in rows {
            // Only grants for the purpose the principal reads for make the patient visible.
            let Some(grant_purpose) = Purpose::parse(&grant_purpose) else {
                continue;
            };
            if Some(grant_purpose) != purpose || own.contains(&patient_id) {
                continue;
            }
            let research = grant_purpose == Purpose::Research;
            match out.iter_mut().find(|v| v.record_id == patient_id) {
                Some(v) if !v.purposes.contains(&grant_purpose) => v.purposes.push(grant_purpose),
                Some(_) => {}
                None => out.push(VisiblePatient {
                    // Research sees a pseudonym, stable for the grant (the study) and
                    // unlinkable without the grant id, which researchers never see.
                    patient_id: if research {
                        deidentify::pseudonym(grant_id, patient_id.as_bytes())
                    } else {
                        patient_id
                    },
                    record_id: patient_id,
                    display_name: (!research).then_some(name),
                    purposes: vec![grant_purpose],
                    basis: "grant",
                }),
            }
        }
        for v in &out {
            self.append_access_log(&NewAccessLogEntry {
                actor_id: Some(principal.user_id),
                actor_role: principal.role.map(|r| r.as_str().to_owned()),
                patient_id: v.record_id,
                action: "list_patients".to_owned(),
                category: None,
                purpose,
                grant_id: None,
                emergency_id: None,
                allowed: true,
                reason: None,
            })
            .await?;
        }
        Ok(out)
    }
}

/// The access-log entry recording one decision of the gate.
fn decision_entry(
    principal: &Principal,
    request: &AccessRequest,
    decision: &Result<Permit, DenyReason>,
    action: &str,
) -> NewAccessLogEntry {
    let (grant_id, emergency_id) = match decision.as_ref().map(|p| p.allowance().basis) {
        Ok(Basis::Grant(id)) => (Some(id), None),
        Ok(Basis::Emergency(id)) => (None, Some(id)),
        _ => (None, None),
    };
    NewAccessLogEntry {
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
    }
}

/// What a patient asks for when sharing; the patient is the actor's.
#[derive(Debug, Clone)]
pub struct GrantSpec {
    pub grantee: Grantee,
    pub categories: std::collections::BTreeSet<DataCategory>,
    pub access: std::collections::BTreeSet<Access>,
    pub purpose: Purpose,
    pub data_since: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Everything held about one patient.
#[derive(Debug, Clone)]
pub struct PatientRecord {
    pub patient: crate::Patient,
    pub devices: Vec<Device>,
    pub glucose: Vec<StoredGlucose>,
    pub blood_pressure: Vec<StoredBloodPressure>,
    pub grants: Vec<Grant>,
}

/// A stored blood-pressure reading as a permitted reader sees it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct StoredBloodPressure {
    pub device_id: String,
    pub measured_at: DateTime<Utc>,
    pub systolic: i16,
    pub diastolic: i16,
    pub pulse: Option<i16>,
}

/// A patient in a principal's list.
#[derive(Debug, Clone, Serialize)]
pub struct VisiblePatient {
    /// The id to show: the record's id, or for research access a pseudonym.
    pub patient_id: Uuid,
    /// The record's real id, for the access log; never shown to a research reader.
    #[serde(skip)]
    pub record_id: Uuid,
    /// Absent for research access, which is pseudonymous.
    pub display_name: Option<String>,
    /// The purposes of the grants that make the patient visible.
    pub purposes: Vec<Purpose>,
    /// `own`, `guardian` or `grant`.
    pub basis: &'static str,
}

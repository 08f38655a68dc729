//! The gate every read of patient data passes: load the patient's grants (and the caller's
//! emergency accesses), let `chronicle_domain::sharing::authorize` decide, append the attempt
//! to the access log, and hand out a [`Permit`]. The patient-data queries below take a
//! `Permit` and apply its limits (category, trends only, window), so they cannot run without a
//! logged decision.

use crate::alerts::AlertEvent;
use crate::identity::User;
use crate::registry::{Device, DeviceCredentials};
use crate::sharing::NewAccessLogEntry;
use crate::sharing::{AccessLogEntry, NewGrant};
use crate::{StorageError, Store};
use chronicle_domain::sharing::{
    Access, AccessRequest, Basis, DataCategory, DenyReason, EmergencyAccess, Grant, Grantee,
    PatientActor, Permit, Principal, Purpose, Role, act_as, authorize, deidentify,
    organization_receives_alerts,
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
        self.decide_and_log(principal, request, action, true).await
    }

    /// [`authorize`](Self::authorize) for a fan-out that offers every event to every
    /// listener (the alert stream): a refusal because the principal holds nothing at all for
    /// the patient (no grant, no purpose) is not an attempt of theirs and is not written to
    /// that patient's log. Every permit, and every other refusal, is logged.
    pub async fn authorize_for_fanout(
        &self,
        principal: &Principal,
        request: AccessRequest,
        action: &str,
    ) -> Result<Result<Permit, DenyReason>, StorageError> {
        self.decide_and_log(principal, request, action, false).await
    }

    async fn decide_and_log(
        &self,
        principal: &Principal,
        request: AccessRequest,
        action: &str,
        log_unrelated: bool,
    ) -> Result<Result<Permit, DenyReason>, StorageError> {
        let grants = self.grants_for_patient(request.patient_id).await?;
        let emergencies = if principal.role == Some(Role::Clinician) {
            self.emergency_accesses(principal.user_id, request.patient_id)
                .await?
        } else {
            Vec::new()
        };
        let decision = authorize(principal, &request, &grants, &emergencies);
        if !log_unrelated && matches!(decision, Err(DenyReason::NoGrant | DenyReason::NoPurpose)) {
            return Ok(decision);
        }
        self.log_decision(principal, &request, &decision, action)
            .await?;
        Ok(decision)
    }

    /// As [`Store::authorize`], but deciding under one grant only: a research study reads
    /// under its own grant, so its pseudonyms and time shift are always that study's.
    pub async fn authorize_under_grant(
        &self,
        principal: &Principal,
        request: AccessRequest,
        grant_id: Uuid,
        action: &str,
    ) -> Result<Result<Permit, DenyReason>, StorageError> {
        let grants: Vec<Grant> = self
            .grants_for_patient(request.patient_id)
            .await?
            .into_iter()
            .filter(|g| g.id == grant_id)
            .collect();
        let decision = authorize(principal, &request, &grants, &[]);
        self.log_decision(principal, &request, &decision, action)
            .await?;
        Ok(decision)
    }

    async fn log_decision(
        &self,
        principal: &Principal,
        request: &AccessRequest,
        decision: &Result<Permit, DenyReason>,
        action: &str,
    ) -> Result<(), StorageError> {
        self.append_access_log(&decision_entry(principal, request, decision, action))
            .await
    }

    /// Whether an organization's webhook may receive an alert event now: decided by
    /// `organization_receives_alerts` on the patient's current grants, and appended to the
    /// patient's access log whatever the outcome (the organization as the actor).
    pub async fn authorize_webhook(
        &self,
        organization_id: Uuid,
        event: &AlertEvent,
    ) -> Result<bool, StorageError> {
        let grants = self.grants_for_patient(event.patient_id).await?;
        let teams = self.teams_of_organization(organization_id).await?;
        let grant = organization_receives_alerts(
            organization_id,
            &teams,
            event.patient_id,
            event.category,
            event.alert.triggered_at,
            &grants,
            Utc::now(),
        );
        self.append_access_log(&NewAccessLogEntry {
            actor_id: Some(organization_id),
            actor_role: Some("organization_webhook".to_owned()),
            patient_id: event.patient_id,
            action: "webhook_alert".to_owned(),
            category: Some(event.category),
            purpose: grant.map(|_| Purpose::Care),
            grant_id: grant.map(|g| g.id),
            emergency_id: None,
            allowed: grant.is_some(),
            reason: grant
                .is_none()
                .then(|| DenyReason::NoGrant.as_str().to_owned()),
        })
        .await?;
        Ok(grant.is_some())
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

    /// What a grantee holding `export` access may take away: the categories of `permits`
    /// (each an export permit of the same patient), within their windows. The patient's
    /// sharing settings are not part of it.
    pub async fn exported_record(&self, permits: &[Permit]) -> Result<PatientRecord, StorageError> {
        let Some(first) = permits.first() else {
            return Err(StorageError::NotPermitted("an export without a permit"));
        };
        let patient_id = first.patient_id();
        if permits
            .iter()
            .any(|p| p.patient_id() != patient_id || p.access() != Access::Export)
        {
            return Err(StorageError::NotPermitted(
                "an export with other permits than export permits of one patient",
            ));
        }
        let patient = self
            .patient(patient_id)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                what: "patient",
                id: patient_id.to_string(),
            })?;
        let window = |category| {
            permits
                .iter()
                .find(|p| p.category() == category)
                .map(|p| PageRequest {
                    from: p.clamp_from(None),
                    limit: i64::MAX,
                    ..PageRequest::default()
                })
        };
        let mut record = PatientRecord {
            patient,
            devices: Vec::new(),
            glucose: Vec::new(),
            blood_pressure: Vec::new(),
            grants: Vec::new(),
        };
        if let Some(page) = window(DataCategory::Glucose) {
            record.glucose = self.query_glucose(patient_id, page).await?;
        }
        if let Some(page) = window(DataCategory::BloodPressure) {
            record.blood_pressure = self.query_blood_pressure(patient_id, page).await?;
        }
        if window(DataCategory::DeviceInfo).is_some() {
            record.devices = self.list_devices(Some(patient_id)).await?;
        }
        Ok(record)
    }

    /// Erases everything held about the patient: readings, refusals, devices, grants,
    /// emergency accesses, guardians and the record itself, in one transaction. The patient's
    /// user accounts are disabled. The access log is kept (it holds no health data, and it is
    /// the record of who saw what).
    pub async fn erase(&self, actor: &PatientActor) -> Result<(), StorageError> {
        let patient_id = actor.patient_id();
        let mut tx = self.pool().begin().await?;
        for statement in [
            "DELETE FROM glucose_samples
                 WHERE device_key IN (SELECT key FROM devices WHERE patient_id = $1)",
            "DELETE FROM blood_pressure_samples
                 WHERE device_key IN (SELECT key FROM devices WHERE patient_id = $1)",
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

    /// The patient's own gateways (their phone app, a home hub).
    pub async fn gateways_as(
        &self,
        actor: &PatientActor,
    ) -> Result<Vec<crate::Gateway>, StorageError> {
        self.list_gateways(Some(actor.patient_id())).await
    }

    /// Registers a gateway of the patient's own relaying `devices` (which must be theirs) and
    /// returns its one-time credentials.
    pub async fn create_gateway_as(
        &self,
        actor: &PatientActor,
        label: Option<&str>,
        devices: &[DeviceId],
    ) -> Result<(crate::Gateway, crate::GatewayCredentials), StorageError> {
        self.create_gateway(Some(actor.patient_id()), label, devices)
            .await
    }

    /// Revokes one of the patient's gateways; `None` if the patient has no such gateway.
    pub async fn revoke_gateway_as(
        &self,
        actor: &PatientActor,
        gateway_id: &chronicle_domain::GatewayId,
    ) -> Result<Option<crate::Gateway>, StorageError> {
        match self.gateway(gateway_id).await? {
            Some(g) if g.patient_id == Some(actor.patient_id()) => {
                self.revoke_gateway(gateway_id).await.map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The guardians the patient named.
    pub async fn guardians_as(&self, actor: &PatientActor) -> Result<Vec<User>, StorageError> {
        self.guardians_of(actor.patient_id()).await
    }

    /// Names `user_id` the patient's guardian. Only the patient names guardians, never a
    /// guardian on their behalf.
    pub async fn name_guardian_as(
        &self,
        actor: &PatientActor,
        user_id: Uuid,
    ) -> Result<(), StorageError> {
        if actor.basis() != Basis::Own {
            return Err(StorageError::NotPermitted(
                "naming a guardian for someone else",
            ));
        }
        self.add_guardian(actor.patient_id(), user_id).await
    }

    /// Removes a guardian; `false` if the user was none. Only the patient does this.
    pub async fn remove_guardian_as(
        &self,
        actor: &PatientActor,
        user_id: Uuid,
    ) -> Result<bool, StorageError> {
        if actor.basis() != Basis::Own {
            return Err(StorageError::NotPermitted(
                "removing a guardian for someone else",
            ));
        }
        self.remove_guardian(actor.patient_id(), user_id).await
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

    /// The patients a principal may see in a list: their own record, those they are guardian
    /// of, and those with an active grant naming them (directly, or through a current team or
    /// organization), each with what is shared with the principal. A research grant is a
    /// study: each lists its patient under the study's own pseudonym, without a name. Each
    /// listed patient gets an access-log entry, since a name is patient data too.
    pub async fn visible_patients(
        &self,
        principal: &Principal,
    ) -> Result<Vec<VisiblePatient>, StorageError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            patient_id: Uuid,
            display_name: String,
            time_zone: String,
            grant_id: Uuid,
            purpose: String,
            categories: Vec<String>,
            access: Vec<String>,
            data_since: Option<DateTime<Utc>>,
            expires_at: Option<DateTime<Utc>>,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT p.id AS patient_id, p.display_name, p.time_zone, g.id AS grant_id, g.purpose,
                 g.categories, g.access, g.data_since, g.expires_at
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
                    time_zone: Some(p.time_zone),
                    purposes: Vec::new(),
                    basis: if principal.patient_id == Some(p.id) {
                        "own"
                    } else {
                        "guardian"
                    },
                    shared: Vec::new(),
                });
            }
        }
        let purpose = principal.role.and_then(Purpose::for_role);
        for row in rows {
            // Only grants for the purpose the principal reads for make the patient visible.
            let Some(grant_purpose) = Purpose::parse(&row.purpose) else {
                continue;
            };
            if Some(grant_purpose) != purpose || own.contains(&row.patient_id) {
                continue;
            }
            let research = grant_purpose == Purpose::Research;
            // Research sees a pseudonym, stable for the study and unlinkable without the grant
            // id, which researchers never see.
            let shown_id = if research {
                deidentify::pseudonym(row.grant_id, row.patient_id.as_bytes())
            } else {
                row.patient_id
            };
            let shared = SharedWithMe {
                categories: parse_names(&row.categories, DataCategory::parse),
                access: parse_names(&row.access, Access::parse),
                purpose: grant_purpose,
                data_since: row.data_since,
                expires_at: row.expires_at,
            };
            match out.iter_mut().find(|v| v.patient_id == shown_id) {
                Some(v) => {
                    if !v.purposes.contains(&grant_purpose) {
                        v.purposes.push(grant_purpose);
                    }
                    v.shared.push(shared);
                }
                None => out.push(VisiblePatient {
                    patient_id: shown_id,
                    record_id: row.patient_id,
                    display_name: (!research).then_some(row.display_name),
                    time_zone: (!research).then_some(row.time_zone),
                    purposes: vec![grant_purpose],
                    basis: "grant",
                    shared: vec![shared],
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

/// Parses stored names (validated by the schema's CHECKs), skipping any unknown one.
fn parse_names<T: Ord>(names: &[String], parse: fn(&str) -> Option<T>) -> Vec<T> {
    let mut parsed: Vec<T> = names.iter().filter_map(|n| parse(n)).collect();
    parsed.sort();
    parsed
}

/// The patient behind a research pseudonym, and the study it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResearchSubject {
    pub patient_id: Uuid,
    /// The research grant, which is the study.
    pub study: Uuid,
}

/// What one grant shares with the principal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SharedWithMe {
    pub categories: Vec<DataCategory>,
    pub access: Vec<Access>,
    pub purpose: Purpose,
    pub data_since: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
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
    /// The patient's IANA time zone, in which their days are counted; absent for research
    /// access (a zone narrows down where someone lives).
    pub time_zone: Option<String>,
    /// The purposes of the grants that make the patient visible.
    pub purposes: Vec<Purpose>,
    /// `own`, `guardian` or `grant`.
    pub basis: &'static str,
    /// For `grant`: what each grant naming the principal shares.
    pub shared: Vec<SharedWithMe>,
}

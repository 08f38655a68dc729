//! The gate every read of patient data passes: load the patient's grants (and the caller's
//! emergency accesses), let `chronicle_domain::sharing::decide` decide, append the attempt to
//! the access log, and hand out a [`Permit`] (or a [`PatientActor`] for the patient's own
//! settings). Only this module can make either: their fields are private to it. The queries of
//! patient data, beside their subjects, take one and apply its limits (category, trends only,
//! window), so they cannot run without a logged decision.

use crate::alerts::AlertEvent;
use crate::sharing::AccessAttempt;
use crate::{StorageError, Store};
use chronicle_domain::sharing::{
    Access, AccessAction, AccessRequest, Allowance, Basis, DataCategory, Decision, DenyReason,
    EmergencyAccess, Grant, Principal, Purpose, Role, acting_basis, decide,
    organization_receives_alerts,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Proof that the gate allowed a request and logged it. Its fields are private to this module,
/// so a read that requires a `Permit` cannot run without a logged decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    request: AccessRequest,
    allowance: Allowance,
}

impl Permit {
    pub fn patient_id(&self) -> Uuid {
        self.request.patient_id
    }

    pub fn category(&self) -> DataCategory {
        self.request.category
    }

    pub fn access(&self) -> Access {
        self.request.access
    }

    pub fn allowance(&self) -> &Allowance {
        &self.allowance
    }

    /// Whether individual readings of `category` may be read under this permit.
    pub fn allows_readings_of(&self, category: DataCategory) -> bool {
        self.request.category == category
            && self.request.access == Access::ViewReadings
            && self.allowance.individual_readings
    }

    /// The earliest instant data may come from: the later of `from` and the grant's window.
    pub fn clamp_from(&self, from: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        self.allowance.clamp_from(from)
    }
}

/// Proof that the gate found a principal acting as a patient (their own record, or as the
/// guardian the patient named) and logged it. Needed to see and change grants, read the
/// access log and manage devices. Made only here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatientActor {
    patient_id: Uuid,
    user_id: Uuid,
    basis: Basis,
}

impl PatientActor {
    pub fn patient_id(&self) -> Uuid {
        self.patient_id
    }

    pub fn user_id(&self) -> Uuid {
        self.user_id
    }

    pub fn basis(&self) -> Basis {
        self.basis
    }
}

/// The domain's decision on `request`, as a permit when it allows.
fn authorize(
    principal: &Principal,
    request: &AccessRequest,
    grants: &[Grant],
    emergencies: &[EmergencyAccess],
) -> Result<Permit, DenyReason> {
    match decide(principal, request, grants, emergencies) {
        Decision::Allow(allowance) => Ok(Permit {
            request: *request,
            allowance,
        }),
        Decision::Deny(reason) => Err(reason),
    }
}

impl Store {
    /// Decides `request` for `principal`, records the attempt as `action` in the patient's
    /// access log, and returns the permit or why it was refused.
    pub async fn authorize(
        &self,
        principal: &Principal,
        request: AccessRequest,
        action: AccessAction,
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
        action: AccessAction,
    ) -> Result<Result<Permit, DenyReason>, StorageError> {
        self.decide_and_log(principal, request, action, false).await
    }

    async fn decide_and_log(
        &self,
        principal: &Principal,
        request: AccessRequest,
        action: AccessAction,
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
        action: AccessAction,
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
        action: AccessAction,
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
        self.append_access_log(&AccessAttempt {
            actor_id: Some(organization_id),
            actor_role: Some("organization_webhook".to_owned()),
            patient_id: event.patient_id,
            action: AccessAction::WebhookAlert,
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
        action: AccessAction,
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
        action: AccessAction,
    ) -> Result<(Vec<Result<Permit, DenyReason>>, Vec<AccessAttempt>), StorageError> {
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
        let entries: Vec<AccessAttempt> = requests
            .iter()
            .zip(&decisions)
            .map(|(request, decision)| decision_entry(principal, request, decision, action))
            .collect();
        Ok((decisions, entries))
    }

    /// Decides whether `principal` acts as the patient (own record or guardian), records the
    /// attempt as `action`, and returns the proof or why not.
    pub async fn authorize_as_patient(
        &self,
        principal: &Principal,
        patient_id: Uuid,
        action: AccessAction,
    ) -> Result<Result<PatientActor, DenyReason>, StorageError> {
        let decision = acting_basis(principal, patient_id).map(|basis| PatientActor {
            patient_id,
            user_id: principal.user_id,
            basis,
        });
        self.append_access_log(&AccessAttempt {
            actor_id: Some(principal.user_id),
            actor_role: principal.role.map(|r| r.as_str().to_owned()),
            patient_id,
            action,
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
}

/// What the access log records the actor as: their role, or `share_link` for whoever holds a
/// share link's secret (the actor id is then the link's).
pub fn actor_role(principal: &Principal) -> Option<String> {
    if principal.share_link {
        Some(SHARE_LINK_ACTOR.to_owned())
    } else {
        principal.role.map(|r| r.as_str().to_owned())
    }
}

/// The access log's `actor_role` of a share link's reads.
pub const SHARE_LINK_ACTOR: &str = "share_link";

/// The access-log entry recording one decision of the gate.
fn decision_entry(
    principal: &Principal,
    request: &AccessRequest,
    decision: &Result<Permit, DenyReason>,
    action: AccessAction,
) -> AccessAttempt {
    let (grant_id, emergency_id) = match decision.as_ref().map(|p| p.allowance().basis) {
        Ok(Basis::Grant(id)) => (Some(id), None),
        Ok(Basis::Emergency(id)) => (None, Some(id)),
        _ => (None, None),
    };
    AccessAttempt {
        actor_id: Some(principal.user_id),
        actor_role: actor_role(principal),
        patient_id: request.patient_id,
        action,
        category: Some(request.category),
        purpose: decision.as_ref().ok().and_then(|p| p.allowance().purpose),
        grant_id,
        emergency_id,
        allowed: decision.is_ok(),
        reason: decision.as_ref().err().map(|r| r.as_str().to_owned()),
    }
}

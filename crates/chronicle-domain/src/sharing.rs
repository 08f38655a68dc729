//! Patient-controlled sharing: who may read what of whose data, decided in one pure function.
//!
//! The patient decides. Nothing is shared by default; a patient shares through [`Grant`]s,
//! each naming a grantee (a user, a care team or an organization), the data categories, what
//! the grantee may do with them, the purpose, an optional window (`data_since`) and an
//! optional expiry. A revoked or expired grant allows nothing from the next request on.
//!
//! [`decide`] is the only place that answers "may this principal do this to this patient's
//! data now?". Every read path (HTTP handlers, exports, alert fan-out, dashboards) asks it and
//! applies the returned [`Allowance`] (window, trends only, de-identification). It does no I/O,
//! so the authorization matrix can be tested exhaustively.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

string_enum!(
    /// What a user is in Chronicle. A role alone never grants access to a patient's data.
    Role {
        Patient => "patient",
        Clinician => "clinician",
        Caregiver => "caregiver",
        Researcher => "researcher",
        /// Manages accounts and organizations; sees no patient data without a grant.
        Admin => "admin",
    }
);

string_enum!(
    /// A kind of patient data a grant can cover.
    DataCategory {
        Glucose => "glucose",
        BloodPressure => "blood_pressure",
        /// Insulin, carbohydrates, exercise, notes, sensor starts and changes, calibrations.
        Treatments => "treatments",
        DeviceInfo => "device_info",
    }
);

string_enum!(
    /// What a grant lets the grantee do with the data.
    Access {
        /// Individual readings (and everything derived from them).
        ViewReadings => "view_readings",
        /// Aggregates only (metrics, profiles), never an individual reading.
        ViewTrends => "view_trends",
        ReceiveAlerts => "receive_alerts",
        Export => "export",
    }
);

string_enum!(
    /// Why the data is shared; a request is only served by a grant of the same purpose.
    Purpose {
        Care => "care",
        Caregiving => "caregiving",
        Research => "research",
        PeerSupport => "peer_support",
    }
);

string_enum!(
    /// What an access-log entry records as attempted: every way a patient's data, or their
    /// settings, can be reached. The patient reads these in their access log.
    AccessAction {
        ReadGlucoseReadings => "read_glucose_readings",
        ReadBloodPressureReadings => "read_blood_pressure_readings",
        ReadTreatments => "read_treatments",
        ReadGlucoseTrend => "read_glucose_trend",
        ReadBloodPressureTrend => "read_blood_pressure_trend",
        /// The printable Ambulatory Glucose Profile report (PDF).
        ReadGlucoseReport => "read_glucose_report",
        /// The FHIR CGM summary (HL7 FHIR CGM implementation guide).
        ReadCgmSummary => "read_cgm_summary",
        /// Seen in a list of patients.
        ListPatients => "list_patients",
        /// A Nightscout uploader's credential was made or revoked.
        CreateNightscoutUploader => "create_nightscout_uploader",
        ReadShareLinks => "read_share_links",
        CreateShareLink => "create_share_link",
        RevokeShareLink => "revoke_share_link",
        /// A summary in a care team's panel.
        ReadPanel => "read_panel",
        /// Open alert counts in a care team's panel.
        ReadPanelAlerts => "read_panel_alerts",
        ReadDevices => "read_devices",
        PairDevice => "pair_device",
        RevokeDevice => "revoke_device",
        /// A vendor export read to preview its import (what is already stored is read).
        PreviewImport => "preview_import",
        /// A vendor export imported into the record.
        ImportReadings => "import_readings",
        /// CGM data submitted as the FHIR CGM guide's transaction Bundle.
        SubmitCgmBundle => "submit_cgm_bundle",
        ReadGateways => "read_gateways",
        RegisterGateway => "register_gateway",
        RevokeGateway => "revoke_gateway",
        ReadGrants => "read_grants",
        CreateGrant => "create_grant",
        RevokeGrant => "revoke_grant",
        ReadAccessLog => "read_access_log",
        OpenEmergencyAccess => "open_emergency_access",
        /// The list of emergency accesses to the record.
        ReadEmergencyAccesses => "read_emergency_accesses",
        /// Someone joined a care team (or organization) the patient's active grant names:
        /// who can read the record widened.
        GranteeMemberAdded => "grantee_member_added",
        /// Someone left a care team the patient's active grant names.
        GranteeMemberRemoved => "grantee_member_removed",
        ReadGuardians => "read_guardians",
        NameGuardian => "name_guardian",
        RemoveGuardian => "remove_guardian",
        ExportFhir => "export_fhir",
        ExportCsv => "export_csv",
        /// The complete record in Chronicle's own JSON: alerts, targets and this log included.
        ExportJson => "export_json",
        Erase => "erase",
        ReadAlerts => "read_alerts",
        /// Alerts in a list across patients.
        ListAlerts => "list_alerts",
        /// An alert offered on the live stream.
        ReceiveAlert => "receive_alert",
        AcknowledgeAlert => "acknowledge_alert",
        ResolveAlert => "resolve_alert",
        SnoozeAlerts => "snooze_alerts",
        /// An alert sent to an organization's webhook.
        WebhookAlert => "webhook_alert",
        /// An alarm sent to one of a user's own channels (Web Push, e-mail, personal webhook).
        NotifyAlert => "notify_alert",
        ReadTargets => "read_targets",
        ReadTargetChanges => "read_target_changes",
        UpdateTargets => "update_targets",
        ReadResearchGlucose => "read_research_glucose",
    }
);

impl Purpose {
    /// The purpose a user of `role` reads other people's data for. Admins have none: they
    /// manage accounts, not care.
    pub fn for_role(role: Role) -> Option<Purpose> {
        match role {
            Role::Clinician => Some(Purpose::Care),
            Role::Caregiver => Some(Purpose::Caregiving),
            Role::Researcher => Some(Purpose::Research),
            Role::Patient => Some(Purpose::PeerSupport),
            Role::Admin => None,
        }
    }
}

/// Who a grant is for. A grant to a care team follows the team's membership at the time of
/// each request; one to an organization covers its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Grantee {
    User(Uuid),
    CareTeam(Uuid),
    Organization(Uuid),
    /// A share link (a read-only link or a Nightscout follower token the patient handed out):
    /// whoever holds its secret reads what its one grant allows, for caregiving.
    ShareLink(Uuid),
}

/// A patient's decision to share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub grantee: Grantee,
    pub categories: BTreeSet<DataCategory>,
    pub access: BTreeSet<Access>,
    pub purpose: Purpose,
    /// Data measured before this instant is never revealed through this grant.
    pub data_since: Option<DateTime<Utc>>,
    /// The grant allows nothing from this instant on.
    pub expires_at: Option<DateTime<Utc>>,
    /// Set when the patient revoked the grant; it allows nothing from then on.
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Grant {
    /// Whether the grant is in force at `at`.
    pub fn is_active(&self, at: DateTime<Utc>) -> bool {
        self.revoked_at.is_none_or(|revoked| at < revoked)
            && self.expires_at.is_none_or(|expires| at < expires)
            && self.created_at <= at
    }

    fn allows(&self, access: Access) -> bool {
        match access {
            // Readings include everything derived from them.
            Access::ViewTrends => {
                self.access.contains(&Access::ViewTrends)
                    || self.access.contains(&Access::ViewReadings)
            }
            other => self.access.contains(&other),
        }
    }
}

/// What is wrong with a grant a patient tries to create.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidGrant {
    #[error("a grant must cover at least one data category")]
    NoCategory,
    #[error("a grant must allow at least one kind of access")]
    NoAccess,
    #[error("the expiry must lie in the future")]
    ExpiryInPast,
}

/// Checks a grant before it is stored.
pub fn validate_new_grant(
    categories: &BTreeSet<DataCategory>,
    access: &BTreeSet<Access>,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), InvalidGrant> {
    if categories.is_empty() {
        return Err(InvalidGrant::NoCategory);
    }
    if access.is_empty() {
        return Err(InvalidGrant::NoAccess);
    }
    if expires_at.is_some_and(|e| e <= now) {
        return Err(InvalidGrant::ExpiryInPast);
    }
    Ok(())
}

/// The user making a request, with the memberships current at the time of the request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Principal {
    pub user_id: Uuid,
    pub role: Option<Role>,
    /// The patient record this user is, for a patient.
    pub patient_id: Option<Uuid>,
    /// Patients who named this user their guardian: the user acts as that patient.
    pub guardian_of: Vec<Uuid>,
    pub care_teams: Vec<Uuid>,
    pub organizations: Vec<Uuid>,
    /// The holder of a share link's secret, not a user: `user_id` is then the link's id, and
    /// only grants naming that link (`Grantee::ShareLink`) can allow anything.
    pub share_link: bool,
}

impl Principal {
    /// Whoever presents the secret of share link `link_id`.
    pub fn share_link(link_id: Uuid) -> Principal {
        Principal {
            user_id: link_id,
            share_link: true,
            ..Principal::default()
        }
    }

    fn is(&self, grantee: Grantee) -> bool {
        match grantee {
            Grantee::User(id) => !self.share_link && id == self.user_id,
            Grantee::CareTeam(id) => self.care_teams.contains(&id),
            Grantee::Organization(id) => self.organizations.contains(&id),
            Grantee::ShareLink(id) => self.share_link && id == self.user_id,
        }
    }

    /// What the principal reads other people's data for: a share link is handed to people
    /// who look after the patient (caregiving); a user reads for their role's purpose.
    fn purpose(&self) -> Option<Purpose> {
        if self.share_link {
            Some(Purpose::Caregiving)
        } else {
            self.role.and_then(Purpose::for_role)
        }
    }
}

/// A clinician's time-limited access to a record without a grant, opened by stating a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyAccess {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub clinician_id: Uuid,
    pub reason: String,
    pub opened_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRequest {
    pub patient_id: Uuid,
    pub category: DataCategory,
    pub access: Access,
    pub at: DateTime<Utc>,
    /// Whether the read serves identified data (names, device ids, true times). A research
    /// grant allows only de-identified reads, so an identified read under it is refused.
    pub identified: bool,
}

/// Why access was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Basis {
    /// The patient's own data.
    Own,
    /// A guardian acting for the patient.
    Guardian,
    Grant(Uuid),
    Emergency(Uuid),
}

/// Who keeps an acknowledgement made outside the care team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcknowledgementHolder {
    /// The patient and their guardians, together.
    Family,
    /// The grantee of this grant (a grant to one user is that person).
    Grant(Uuid),
}

impl AcknowledgementHolder {
    /// The grant that keys the acknowledgement; `None` for the family's.
    pub fn grant_id(self) -> Option<Uuid> {
        match self {
            AcknowledgementHolder::Family => None,
            AcknowledgementHolder::Grant(grant) => Some(grant),
        }
    }
}

/// Access given, and the limits every read path must apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    pub basis: Basis,
    pub purpose: Option<Purpose>,
    /// Never reveal data measured before this instant.
    pub data_since: Option<DateTime<Utc>>,
    /// False for trends-only access: aggregates, never an individual reading.
    pub individual_readings: bool,
    /// Research access: pseudonymous ids, no names, contacts or device serials, shifted times.
    pub deidentified: bool,
}

string_enum!(
    /// Who an alert reaches: an acknowledgement speaks for its own audience only (and for
    /// caregivers and peer supporters, for the one grant only). The alert's lifecycle
    /// (acknowledged, resolved) is the care team's.
    AlertAudience {
        /// Clinicians reading for care: the alert's own state is theirs.
        CareTeam => "care",
        /// The patient and their guardians.
        Patient => "patient",
        Caregivers => "caregiving",
        PeerSupport => "peer_support",
    }
);

impl Allowance {
    /// The audience a reader with this allowance belongs to, for alerts.
    pub fn alert_audience(&self) -> AlertAudience {
        match (self.basis, self.purpose) {
            (Basis::Own | Basis::Guardian, _) => AlertAudience::Patient,
            (_, Some(Purpose::Caregiving)) => AlertAudience::Caregivers,
            (_, Some(Purpose::PeerSupport)) => AlertAudience::PeerSupport,
            _ => AlertAudience::CareTeam,
        }
    }

    /// Whose acknowledgement of an alert this reader keeps, outside the care team (whose
    /// acknowledgement is the alert's own): the patient and their guardians share the
    /// family's ([`AcknowledgementHolder::Family`]); a caregiver or peer supporter keeps one
    /// per grant. `None` for the care team, and for an audience without a grant to key it by.
    pub fn acknowledgement_holder(&self) -> Option<AcknowledgementHolder> {
        match (self.alert_audience(), self.basis) {
            (AlertAudience::Patient, _) => Some(AcknowledgementHolder::Family),
            (AlertAudience::Caregivers | AlertAudience::PeerSupport, Basis::Grant(grant)) => {
                Some(AcknowledgementHolder::Grant(grant))
            }
            _ => None,
        }
    }

    /// The earliest instant data may come from: the later of `from` and the grant's window.
    pub fn clamp_from(&self, from: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        match (from, self.data_since) {
            (Some(f), Some(s)) => Some(f.max(s)),
            (f, s) => f.or(s),
        }
    }
}

/// Why access was refused (for the access log; clients are told less).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyReason {
    /// No grant names this user, their teams or organizations for this patient and purpose.
    NoGrant,
    /// A grant exists but not for this data category.
    CategoryNotGranted,
    /// A grant covers the category but not this kind of access (e.g. trends only).
    AccessNotGranted,
    /// The user's role reads other people's data for no purpose (administrators).
    NoPurpose,
    /// Only de-identified data may be read (research), and this read serves identified data.
    DeidentifiedOnly,
}

impl DenyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::NoGrant => "no_grant",
            DenyReason::CategoryNotGranted => "category_not_granted",
            DenyReason::AccessNotGranted => "access_not_granted",
            DenyReason::NoPurpose => "no_purpose",
            DenyReason::DeidentifiedOnly => "deidentified_only",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow(Allowance),
    Deny(DenyReason),
}

impl Decision {
    pub fn allowance(&self) -> Option<&Allowance> {
        match self {
            Decision::Allow(a) => Some(a),
            Decision::Deny(_) => None,
        }
    }
}

/// Decides a request. `grants` are the patient's grants (any state; inactive ones are
/// ignored here, so a caller cannot forget to filter them); `emergencies` the principal's
/// emergency accesses.
pub fn decide(
    principal: &Principal,
    request: &AccessRequest,
    grants: &[Grant],
    emergencies: &[EmergencyAccess],
) -> Decision {
    if principal.patient_id == Some(request.patient_id) {
        return Decision::Allow(full(Basis::Own));
    }
    if principal.guardian_of.contains(&request.patient_id) {
        return Decision::Allow(full(Basis::Guardian));
    }
    let Some(purpose) = principal.purpose() else {
        return Decision::Deny(DenyReason::NoPurpose);
    };

    let mine: Vec<&Grant> = grants
        .iter()
        .filter(|g| {
            g.patient_id == request.patient_id
                && g.is_active(request.at)
                && g.purpose == purpose
                && principal.is(g.grantee)
        })
        .collect();
    // A study reads de-identified data only. An identified request is refused whatever its
    // category or access, so the reason never tells a researcher which of their study's
    // records a record id is.
    if purpose == Purpose::Research && request.identified {
        return Decision::Deny(if mine.is_empty() {
            DenyReason::NoGrant
        } else {
            DenyReason::DeidentifiedOnly
        });
    }
    let in_category: Vec<&Grant> = mine
        .iter()
        .copied()
        .filter(|g| g.categories.contains(&request.category))
        .collect();
    let best = in_category
        .iter()
        .copied()
        .filter(|g| g.allows(request.access))
        // Prefer individual readings, then the widest window, then the oldest grant, so the
        // choice is deterministic.
        .min_by_key(|g| {
            (
                !g.access.contains(&Access::ViewReadings),
                g.data_since,
                g.created_at,
                g.id,
            )
        });
    if let Some(grant) = best {
        return Decision::Allow(Allowance {
            basis: Basis::Grant(grant.id),
            purpose: Some(purpose),
            data_since: grant.data_since,
            individual_readings: grant.access.contains(&Access::ViewReadings),
            deidentified: purpose == Purpose::Research,
        });
    }

    let emergency_covers = matches!(request.access, Access::ViewReadings | Access::ViewTrends)
        && principal.role == Some(Role::Clinician);
    if emergency_covers
        && let Some(emergency) = emergencies.iter().find(|e| {
            e.patient_id == request.patient_id
                && e.clinician_id == principal.user_id
                && e.opened_at <= request.at
                && request.at < e.expires_at
        })
    {
        return Decision::Allow(Allowance {
            basis: Basis::Emergency(emergency.id),
            purpose: Some(Purpose::Care),
            data_since: None,
            individual_readings: true,
            deidentified: false,
        });
    }

    Decision::Deny(if mine.is_empty() {
        DenyReason::NoGrant
    } else if in_category.is_empty() {
        DenyReason::CategoryNotGranted
    } else {
        DenyReason::AccessNotGranted
    })
}

/// Whether `principal` may act as the patient: their own record, or as the guardian the patient
/// named. Acting as the patient is needed to see and change grants, read the access log and
/// manage devices; the storage gate turns a yes into its proof, a `PatientActor`.
pub fn acting_basis(principal: &Principal, patient_id: Uuid) -> Result<Basis, DenyReason> {
    if principal.patient_id == Some(patient_id) {
        Ok(Basis::Own)
    } else if principal.guardian_of.contains(&patient_id) {
        Ok(Basis::Guardian)
    } else {
        Err(DenyReason::NoGrant)
    }
}

/// De-identification for research: stable pseudonyms per study (a research grant is a study),
/// and times moved by a secret shift of the study's own, rounded to the minute, with the most
/// recent days withheld (see docs/sharing.md for what stays linkable).
pub mod deidentify {
    use chrono::{DateTime, Duration, DurationRound, Utc};
    use uuid::Uuid;

    /// The shortest and longest shift, in seconds (30 to 395 days).
    pub const SHIFT_RANGE_SECONDS: std::ops::Range<i64> = 30 * DAY..395 * DAY;

    const DAY: i64 = 86_400;

    /// A study's shift drawn from `draw` (uniform in `0..1`): within [`SHIFT_RANGE_SECONDS`]
    /// and at least half an hour away from a whole number of days, so neither dates nor
    /// clock times carry over.
    pub fn shift_seconds(draw: f64) -> i64 {
        let span = (SHIFT_RANGE_SECONDS.end - SHIFT_RANGE_SECONDS.start) as f64;
        let seconds = SHIFT_RANGE_SECONDS.start + (draw.clamp(0.0, 1.0) * span) as i64;
        let into_day = seconds.rem_euclid(DAY).clamp(DAY / 48, DAY - DAY / 48);
        (seconds - seconds.rem_euclid(DAY) + into_day).min(SHIFT_RANGE_SECONDS.end - DAY / 48)
    }

    /// A true time as a study sees it: moved back by the study's shift, rounded down to the
    /// minute (seconds would let readings be matched across studies and sources).
    pub fn shifted(at: DateTime<Utc>, shift_seconds: i64) -> DateTime<Utc> {
        let moved = at - Duration::seconds(shift_seconds);
        moved.duration_trunc(Duration::minutes(1)).unwrap_or(moved)
    }

    /// How recent data a study does not get: `base`, plus up to half again drawn per study
    /// (`fraction` in `0..1`), so the newest reading served does not give the shift away.
    pub fn holdback(base: Duration, fraction: f64) -> Duration {
        base + Duration::seconds(
            (base.num_seconds() as f64 * fraction.clamp(0.0, 1.0) / 2.0) as i64,
        )
    }

    /// The pseudonym of an identifier (a patient or a device) within one study. Stable, and
    /// unlinkable to the identifier without the grant id, which research readers never see.
    pub fn pseudonym(study: Uuid, id: &[u8]) -> Uuid {
        Uuid::new_v5(&study, id)
    }
}

/// The grant through which an organization's webhook may receive the patient's alerts of
/// `category` about data measured at `data_at`: an active grant naming the organization, or
/// one of its care teams (`teams`), for care, covering the category, allowing
/// `receive_alerts`, and whose window includes `data_at`. A webhook posts identified data to
/// a system the organization runs, so only care grants count. `None`: nothing may be sent.
pub fn organization_receives_alerts<'a>(
    organization_id: Uuid,
    teams: &[Uuid],
    patient_id: Uuid,
    category: DataCategory,
    data_at: DateTime<Utc>,
    grants: &'a [Grant],
    at: DateTime<Utc>,
) -> Option<&'a Grant> {
    grants
        .iter()
        .filter(|g| {
            g.patient_id == patient_id
                && g.is_active(at)
                && g.purpose == Purpose::Care
                && match g.grantee {
                    Grantee::Organization(id) => id == organization_id,
                    Grantee::CareTeam(id) => teams.contains(&id),
                    Grantee::User(_) | Grantee::ShareLink(_) => false,
                }
                && g.categories.contains(&category)
                && g.allows(Access::ReceiveAlerts)
                && g.data_since.is_none_or(|since| since <= data_at)
        })
        .min_by_key(|g| (g.created_at, g.id))
}

fn full(basis: Basis) -> Allowance {
    Allowance {
        basis,
        purpose: None,
        data_since: None,
        individual_readings: true,
        deidentified: false,
    }
}

#[cfg(test)]
mod tests;

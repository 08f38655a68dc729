//! A clinic for alert tests: an organization with a care team and a clinician, patients who
//! share their glucose and blood pressure with the team (readings and alerts), their devices,
//! and the JSON of readings.

use crate::api::create_user;
use chronicle_domain::DeviceKind;
use chronicle_domain::sharing::{Access, DataCategory, Grantee, Purpose, Role};
use chronicle_storage::sharing::NewGrant;
use chronicle_storage::{DeviceCredentials, NewPatient, Store};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

/// The password of every user the alert tests create.
pub const PASSWORD: &str = "test password of some length";

pub struct Clinic {
    pub store: Store,
    pub organization: Uuid,
    pub team: Uuid,
    pub clinician: Uuid,
    pub clinician_email: String,
}

impl Clinic {
    /// An organization `name` with one care team and one clinician in it.
    pub async fn new(store: &Store, name: &str) -> Clinic {
        let organization = store.create_organization(name).await.expect("org").id;
        let team = store
            .create_care_team(organization, &format!("{name} team"))
            .await
            .expect("team")
            .id;
        let clinician_email = format!(
            "clinician@{}.example",
            name.to_lowercase().replace(' ', "-")
        );
        let clinician = create_user(store, &clinician_email, Role::Clinician, None, PASSWORD).await;
        store
            .add_team_member(team, clinician)
            .await
            .expect("member");
        store
            .add_organization_member(organization, clinician)
            .await
            .expect("member");
        Clinic {
            store: store.clone(),
            organization,
            team,
            clinician,
            clinician_email,
        }
    }

    /// A patient sharing glucose and blood pressure (readings and alerts) with the team for
    /// care; returns the patient and the grant.
    pub async fn patient(&self, name: &str) -> (Uuid, Uuid) {
        let patient = self
            .store
            .create_patient(&NewPatient {
                display_name: name.into(),
                time_zone: "UTC".into(),
            })
            .await
            .expect("patient")
            .id;
        let grant = self
            .store
            .create_grant(&NewGrant {
                patient_id: patient,
                grantee: Grantee::CareTeam(self.team),
                categories: [DataCategory::Glucose, DataCategory::BloodPressure]
                    .into_iter()
                    .collect(),
                access: [Access::ViewReadings, Access::ReceiveAlerts]
                    .into_iter()
                    .collect(),
                purpose: Purpose::Care,
                data_since: None,
                expires_at: None,
                created_by: None,
            })
            .await
            .expect("grant")
            .id;
        (patient, grant)
    }

    pub async fn device(&self, patient: Uuid, kind: DeviceKind) -> DeviceCredentials {
        self.store
            .create_device(patient, kind, None)
            .await
            .expect("device")
            .1
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A glucose reading in mg/dL.
pub fn glucose(at: DateTime<Utc>, value: f64) -> Value {
    json!({"type": "glucose", "value": value, "unit": "mg/dL", "measured_at": time(at)})
}

/// A CGM "HI" (above the sensor's range).
pub fn glucose_hi(at: DateTime<Utc>) -> Value {
    json!({"type": "glucose", "value": "HI", "unit": "mg/dL", "measured_at": time(at)})
}

pub fn pressure(at: DateTime<Utc>, systolic: u16, diastolic: u16) -> Value {
    json!({"type": "blood_pressure", "systolic": systolic, "diastolic": diastolic,
           "measured_at": time(at)})
}

/// A batch message.
pub fn batch(readings: &[Value]) -> String {
    json!({"readings": readings}).to_string()
}

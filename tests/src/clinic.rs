//! A clinic for alert tests: an organization with a care team and a clinician, patients who
//! share their glucose and blood pressure with the team (readings and alerts), their devices,
//! the JSON of readings, and a population stored in bulk.

use crate::api::create_user;
use chronicle_domain::reading::{GlucoseMgDl, GlucoseReading, GlucoseSource};
use chronicle_domain::sharing::{Access, DataCategory, Grantee, Purpose, Role};
use chronicle_domain::units::GlucoseUnit;
use chronicle_domain::{DeviceKind, Reading};
use chronicle_storage::population::{PopulationDevice, PopulationPlan};
use chronicle_storage::readings::{BatchWrite, ReadingRow};
use chronicle_storage::sharing::NewGrant;
use chronicle_storage::{DeviceCredentials, DeviceForIngest, NewPatient, Store};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::collections::HashMap;
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

/// Registers `patients` CGM wearers (named `name_prefix` and their number) relayed by one new
/// gateway, and stores one glucose reading of each, measured at `measured_at`, worth
/// `value_of(device)`, in one batch written as the ingest writes it, queuing follow-up work for
/// `consumers`. Returns the registered devices.
pub async fn population_with_a_reading_each(
    store: &Store,
    patients: u64,
    name_prefix: &str,
    measured_at: DateTime<Utc>,
    value_of: impl Fn(&PopulationDevice) -> f64,
    consumers: &[&str],
) -> Vec<PopulationDevice> {
    let (gateway, _) = store
        .create_gateway(None, Some(name_prefix), &[])
        .await
        .expect("gateway");
    let devices = store
        .register_population(&PopulationPlan {
            patients,
            meter_percent: 0,
            cuff_percent: 0,
            gateways: std::slice::from_ref(&gateway.id),
            name_prefix,
        })
        .await
        .expect("population");
    let ids: Vec<&str> = devices.iter().map(|d| d.device_id.as_str()).collect();
    let keys = store.devices_for_ingest(&ids).await.expect("device keys");
    let readings: Vec<Reading> = devices
        .iter()
        .map(|device| cgm_glucose(measured_at, value_of(device)))
        .collect();
    store
        .write_batch(&batch_for(&devices, &keys, &readings, consumers))
        .await
        .expect("stored");
    devices
}

/// A CGM's glucose reading in mg/dL, as validated.
pub fn cgm_glucose(measured_at: DateTime<Utc>, value: f64) -> Reading {
    Reading::Glucose(GlucoseReading {
        measured_at,
        utc_offset_minutes: 0,
        value: GlucoseMgDl::new(value).expect("plausible"),
        original_value: Some(value),
        original_unit: GlucoseUnit::MgDl,
        source: GlucoseSource::Cgm,
        flag: None,
        device_reading_id: None,
    })
}

/// The batch the ingest writes for `readings[i]` of `devices[i]` (`keys`: the registry's
/// entries of the devices), queuing follow-up work for `consumers`.
pub fn batch_for<'a>(
    devices: &[PopulationDevice],
    keys: &HashMap<String, DeviceForIngest>,
    readings: &'a [Reading],
    consumers: &'a [&'a str],
) -> BatchWrite<'a> {
    BatchWrite {
        readings: devices
            .iter()
            .zip(readings)
            .map(|(device, reading)| ReadingRow {
                device_key: keys[device.device_id.as_str()].key,
                patient_id: device.patient_id,
                reading,
            })
            .collect(),
        rejections: Vec::new(),
        followup_consumers: consumers,
    }
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

//! Operator commands that work before any UI exists: migrations, patients and devices.

use crate::cli::{DatabaseSettings, DeviceCommand, PatientCommand};
use crate::database::Database;
use chronicle_storage::NewPatient;

pub async fn migrate(settings: &DatabaseSettings) -> anyhow::Result<()> {
    let mut database = Database::open(settings).await?;
    println!("database at {} is up to date", database.endpoint);
    database.close().await;
    Ok(())
}

pub async fn patient(settings: &DatabaseSettings, command: PatientCommand) -> anyhow::Result<()> {
    let mut database = Database::open(settings).await?;
    let result = run_patient(&database, command).await;
    database.close().await;
    result
}

async fn run_patient(database: &Database, command: PatientCommand) -> anyhow::Result<()> {
    match command {
        PatientCommand::Add {
            name,
            time_zone,
            json,
        } => {
            anyhow::ensure!(!name.trim().is_empty(), "--name must not be empty");
            let patient = database
                .store
                .create_patient(&NewPatient {
                    display_name: name,
                    time_zone,
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&patient)?);
            } else {
                println!("patient {} ({})", patient.id, patient.display_name);
            }
        }
        PatientCommand::List { json } => {
            let patients = database.store.list_patients().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&patients)?);
            } else {
                for p in patients {
                    println!("{}\t{}\t{}", p.id, p.display_name, p.time_zone);
                }
            }
        }
    }
    Ok(())
}

pub async fn device(settings: &DatabaseSettings, command: DeviceCommand) -> anyhow::Result<()> {
    let mut database = Database::open(settings).await?;
    let result = run_device(&database, command).await;
    database.close().await;
    result
}

async fn run_device(database: &Database, command: DeviceCommand) -> anyhow::Result<()> {
    match command {
        DeviceCommand::Add {
            patient,
            kind,
            label,
            json,
        } => {
            let (device, credentials) = database
                .store
                .create_device(patient, kind, label.as_deref())
                .await?;
            if json {
                let out = serde_json::json!({
                    "device_id": device.id,
                    "patient_id": device.patient_id,
                    "kind": device.kind,
                    "mqtt_username": credentials.device_id,
                    "mqtt_password": credentials.secret,
                    "readings_topic": format!("chronicle/v1/devices/{}/readings", device.id),
                    "acks_topic": format!("chronicle/v1/devices/{}/acks", device.id),
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("device id:      {}", device.id);
                println!("kind:           {}", device.kind);
                println!("patient:        {}", device.patient_id);
                println!("MQTT username:  {}", credentials.device_id);
                println!(
                    "MQTT password:  {}   (shown once; only its hash is stored)",
                    credentials.secret
                );
                println!(
                    "publish to:     chronicle/v1/devices/{}/readings",
                    device.id
                );
                println!("acks on:        chronicle/v1/devices/{}/acks", device.id);
            }
        }
        DeviceCommand::List { patient, json } => {
            let devices = database.store.list_devices(patient).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&devices)?);
            } else {
                for d in devices {
                    let state = match d.revoked_at {
                        Some(at) => format!("revoked {}", at.to_rfc3339()),
                        None => "active".to_owned(),
                    };
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        d.id,
                        d.kind,
                        d.patient_id,
                        state,
                        d.label.unwrap_or_default()
                    );
                }
            }
        }
        DeviceCommand::Revoke { device } => {
            let revoked = database.store.revoke_device(&device).await?;
            println!(
                "device {} revoked at {}",
                revoked.id,
                revoked
                    .revoked_at
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

//! Operator commands that work before any UI exists: migrations, patients, devices, gateways,
//! ingest accounts, users, organizations and teams.

use crate::cli::{
    DatabaseSettings, DeviceCommand, GatewayCommand, IngestAccountCommand, OrgCommand,
    PatientCommand, TeamCommand, UserCommand,
};
use crate::database::Database;
use anyhow::Context;
use chronicle_domain::accounts::{api_token_days, check_password};
use chronicle_storage::NewPatient;
use chronicle_storage::credentials::{hash_password, random_secret};
use chronicle_storage::identity::{NewUser, TokenKind};

pub async fn migrate(settings: &DatabaseSettings) -> anyhow::Result<()> {
    let mut database = Database::open(settings).await?;
    println!("database at {} is up to date", database.endpoint);
    database.close().await;
    Ok(())
}

pub async fn patient(settings: &DatabaseSettings, command: PatientCommand) -> anyhow::Result<()> {
    with_database(settings, async |database| {
        run_patient(database, command).await
    })
    .await
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
        PatientCommand::Import => import_patients(database).await?,
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
        PatientCommand::SetTimeZone { patient, time_zone } => {
            let moved = database
                .store
                .set_patient_time_zone(patient, &time_zone)
                .await?
                .with_context(|| format!("no patient {patient}"))?;
            println!(
                "patient {} now in {} (trends are being recomputed)",
                moved.id, moved.time_zone
            );
        }
    }
    Ok(())
}

/// One line of `chronicle patient import`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportPatient {
    name: String,
    #[serde(default = "utc")]
    time_zone: String,
    #[serde(default)]
    devices: Vec<ImportDevice>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportDevice {
    kind: chronicle_domain::DeviceKind,
    label: Option<String>,
}

fn utc() -> String {
    "UTC".to_owned()
}

async fn import_patients(database: &Database) -> anyhow::Result<()> {
    use std::io::{BufRead, Write};
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for (number, line) in stdin.lock().lines().enumerate() {
        let line = line.context("cannot read standard input")?;
        if line.trim().is_empty() {
            continue;
        }
        let wanted: ImportPatient = serde_json::from_str(&line)
            .with_context(|| format!("line {}: not a patient to import", number + 1))?;
        anyhow::ensure!(
            !wanted.name.trim().is_empty(),
            "line {}: the name must not be empty",
            number + 1
        );
        chronicle_domain::zone::parse_time_zone(&wanted.time_zone)
            .map_err(|e| anyhow::anyhow!("line {}: {e}", number + 1))?;
        let patient = database
            .store
            .create_patient(&NewPatient {
                display_name: wanted.name,
                time_zone: wanted.time_zone,
            })
            .await?;
        let mut devices = Vec::with_capacity(wanted.devices.len());
        for d in wanted.devices {
            let (device, credentials) = database
                .store
                .create_device(patient.id, d.kind, d.label.as_deref())
                .await?;
            devices.push(serde_json::json!({
                "device_id": device.id,
                "kind": device.kind,
                "mqtt_password": credentials.secret,
            }));
        }
        let line = serde_json::json!({
            "patient_id": patient.id,
            "name": patient.display_name,
            "time_zone": patient.time_zone,
            "devices": devices,
        });
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok(())
}

pub async fn device(settings: &DatabaseSettings, command: DeviceCommand) -> anyhow::Result<()> {
    with_database(settings, async |database| {
        run_device(database, command).await
    })
    .await
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
                    "mqtt_username": credentials.id,
                    "mqtt_password": credentials.secret,
                    "readings_topic": format!("chronicle/v1/devices/{}/readings", device.id),
                    "acks_topic": format!("chronicle/v1/devices/{}/acks", device.id),
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("device id:      {}", device.id);
                println!("kind:           {}", device.kind);
                println!("patient:        {}", device.patient_id);
                println!("MQTT username:  {}", credentials.id);
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
        DeviceCommand::RotateSecret { device, json } => {
            let credentials = database.store.rotate_device_secret(&device).await?;
            print_credentials(json, "device", credentials.id.as_str(), &credentials.secret)?;
        }
    }
    Ok(())
}

/// Prints an identity's MQTT credentials, the secret shown this once.
fn print_credentials(json: bool, what: &str, username: &str, secret: &str) -> anyhow::Result<()> {
    if json {
        let out = serde_json::json!({ "mqtt_username": username, "mqtt_password": secret });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{what}:{}{username}",
            " ".repeat(15usize.saturating_sub(what.len() + 1))
        );
        println!("MQTT username:  {username}");
        println!("MQTT password:  {secret}   (shown once; only its hash is stored)");
    }
    Ok(())
}

pub async fn gateway(settings: &DatabaseSettings, command: GatewayCommand) -> anyhow::Result<()> {
    with_database(settings, async |database| {
        let store = &database.store;
        match command {
            GatewayCommand::Add {
                patient,
                label,
                devices,
                json,
            } => {
                let (gateway, credentials) = store
                    .create_gateway(patient, label.as_deref(), &devices)
                    .await?;
                if json {
                    let out = serde_json::json!({
                        "gateway_id": gateway.id,
                        "patient_id": gateway.patient_id,
                        "devices": gateway.devices,
                        "mqtt_username": credentials.id,
                        "mqtt_password": credentials.secret,
                    });
                    println!("{}", serde_json::to_string_pretty(&out)?);
                } else {
                    print_credentials(
                        false,
                        "gateway id",
                        gateway.id.as_str(),
                        &credentials.secret,
                    )?;
                    print_gateway_devices(&gateway);
                }
            }
            GatewayCommand::List { patient, json } => {
                let gateways = store.list_gateways(patient).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&gateways)?);
                } else {
                    for g in gateways {
                        let state = match g.revoked_at {
                            Some(at) => format!("revoked {}", at.to_rfc3339()),
                            None => "active".to_owned(),
                        };
                        let owner = g.patient_id.map(|p| p.to_string()).unwrap_or_default();
                        let devices: Vec<&str> = g.devices.iter().map(|d| d.as_str()).collect();
                        println!(
                            "{}\t{}\t{}\t{}\t{}",
                            g.id,
                            owner,
                            state,
                            g.label.unwrap_or_default(),
                            devices.join(",")
                        );
                    }
                }
            }
            GatewayCommand::Attach { gateway, devices } => {
                print_gateway_devices(&store.attach_devices(&gateway, &devices).await?);
            }
            GatewayCommand::Detach { gateway, devices } => {
                print_gateway_devices(&store.detach_devices(&gateway, &devices).await?);
            }
            GatewayCommand::Revoke { gateway } => {
                let revoked = store.revoke_gateway(&gateway).await?;
                println!(
                    "gateway {} revoked at {}",
                    revoked.id,
                    revoked
                        .revoked_at
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default()
                );
            }
        }
        Ok(())
    })
    .await
}

fn print_gateway_devices(gateway: &chronicle_storage::Gateway) {
    let devices: Vec<&str> = gateway.devices.iter().map(|d| d.as_str()).collect();
    println!("gateway {} relays: {}", gateway.id, devices.join(" "));
}

pub async fn ingest_account(
    settings: &DatabaseSettings,
    command: IngestAccountCommand,
) -> anyhow::Result<()> {
    with_database(settings, async |database| {
        let store = &database.store;
        match command {
            IngestAccountCommand::Add { name, json } => {
                let (account, secret) = store.create_ingest_account(&name).await?;
                print_credentials(json, "ingest account", &account.name, &secret)?;
            }
            IngestAccountCommand::List { json } => {
                let accounts = store.list_ingest_accounts().await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&accounts)?);
                } else {
                    for a in accounts {
                        let state = match a.revoked_at {
                            Some(at) => format!("revoked {}", at.to_rfc3339()),
                            None => "active".to_owned(),
                        };
                        println!("{}\t{}", a.name, state);
                    }
                }
            }
            IngestAccountCommand::Revoke { name } => {
                let revoked = store.revoke_ingest_account(&name).await?;
                println!(
                    "ingest account {} revoked at {}",
                    revoked.name,
                    revoked
                        .revoked_at
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default()
                );
            }
        }
        Ok(())
    })
    .await
}

/// Opens the database, runs one command, and closes it whatever the outcome.
async fn with_database<F>(settings: &DatabaseSettings, run: F) -> anyhow::Result<()>
where
    F: AsyncFnOnce(&Database) -> anyhow::Result<()>,
{
    let mut database = Database::open(settings).await?;
    let result = run(&database).await;
    database.close().await;
    result
}

pub async fn user(settings: &DatabaseSettings, command: UserCommand) -> anyhow::Result<()> {
    with_database(settings, async |database| match command {
        UserCommand::Add { email, name, role, patient, password_stdin, json } => {
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).context("cannot read the password from standard input")?;
                let password = line.trim_end_matches(['\r', '\n']).to_owned();
                check_password(&password, &[&email, &name]).map_err(|weak| anyhow::anyhow!("{weak}"))?;
                (password, false)
            } else {
                (random_secret(20), true)
            };
            let hash = tokio::task::spawn_blocking(move || hash_password(&password).map(|h| (h, password)))
                .await?
                .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
            let user = database
                .store
                .create_user(&NewUser { email, display_name: name, role, password_hash: Some(hash.0), patient_id: patient })
                .await?;
            if json {
                let mut out = serde_json::json!({"id": user.id, "email": user.email, "role": user.role.as_str(), "patient_id": user.patient_id});
                if generated {
                    out["password"] = serde_json::Value::String(hash.1);
                }
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("user {} ({}, {})", user.id, user.email, user.role);
                if generated {
                    println!("password: {}   (shown once)", hash.1);
                }
            }
            Ok(())
        }
        UserCommand::Guardian { patient, user } => {
            database.store.add_guardian(patient, user).await?;
            println!("user {user} is now guardian of patient {patient}");
            Ok(())
        }
        UserCommand::Token { user, label, expires_days } => {
            let days = api_token_days(expires_days)?;
            let expires_at = chrono::Utc::now() + chrono::Duration::days(i64::from(days));
            let issued = database.store.issue_token(user, TokenKind::Api, label.as_deref(), Some(expires_at)).await?;
            println!("{}", issued.token);
            Ok(())
        }
        UserCommand::Disable { user } => {
            anyhow::ensure!(database.store.disable_user(user, None, None).await?, "no user {user}");
            println!("user {user} is disabled; every session and API token of it is revoked");
            Ok(())
        }
        UserCommand::Enable { user } => {
            anyhow::ensure!(database.store.enable_user(user, None, None).await?, "no user {user}");
            println!("user {user} is enabled (its revoked tokens stay revoked)");
            Ok(())
        }
    })
    .await
}

pub async fn org(settings: &DatabaseSettings, command: OrgCommand) -> anyhow::Result<()> {
    with_database(settings, async |database| match command {
        OrgCommand::Add { name, json } => {
            let org = database.store.create_organization(&name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&org)?);
            } else {
                println!("organization {} ({})", org.id, org.name);
            }
            Ok(())
        }
    })
    .await
}

pub async fn team(settings: &DatabaseSettings, command: TeamCommand) -> anyhow::Result<()> {
    with_database(settings, async |database| match command {
        TeamCommand::Add { org, name, json } => {
            let team = database.store.create_care_team(org, &name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&team)?);
            } else {
                println!("care team {} ({})", team.id, team.name);
            }
            Ok(())
        }
        TeamCommand::AddMember { team, user } => {
            database.store.add_team_member(team, user).await?;
            println!("user {user} added to care team {team}");
            Ok(())
        }
        TeamCommand::RemoveMember { team, user } => {
            let removed = database.store.remove_team_member(team, user).await?;
            anyhow::ensure!(removed, "user {user} is not a member of care team {team}");
            println!("user {user} removed from care team {team}");
            Ok(())
        }
    })
    .await
}

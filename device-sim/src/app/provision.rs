//! Registering simulated patients and devices through the `chronicle` admin commands.

use super::cli::ServerArgs;
use anyhow::{Context, bail};
use chronicle_domain::DeviceKind;
use chronicle_sim::devices_file::{DevicesFile, FileDevice, FilePatient};
use chronicle_sim::mqtt::GatewayCredentials;
use serde::Deserialize;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A patient to register.
pub struct Wanted {
    pub index: u64,
    pub persona: Option<String>,
    pub name: String,
    pub time_zone: String,
    pub kinds: Vec<DeviceKind>,
}

#[derive(Deserialize)]
struct Imported {
    patient_id: uuid::Uuid,
    name: String,
    time_zone: String,
    devices: Vec<ImportedDevice>,
}

#[derive(Deserialize)]
struct ImportedDevice {
    device_id: String,
    kind: DeviceKind,
    mqtt_password: String,
}

/// The `chronicle` binary: the flag, else the one next to this binary, else PATH's.
pub fn chronicle_binary(flag: Option<&PathBuf>) -> PathBuf {
    if let Some(path) = flag {
        return path.clone();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("chronicle")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("chronicle"))
}

/// A `chronicle` admin command on the server's database.
fn chronicle_command(server: &ServerArgs) -> (PathBuf, tokio::process::Command) {
    let binary = chronicle_binary(server.chronicle_bin.as_ref());
    let mut command = tokio::process::Command::new(&binary);
    if let Some(dir) = &server.data_dir {
        command.arg("--data-dir").arg(dir);
    }
    if let Some(url) = &server.database_url {
        command.arg("--database-url").arg(url);
    }
    (binary, command)
}

/// Runs a `chronicle` admin command to completion and returns its standard output.
async fn run_chronicle(server: &ServerArgs, args: &[String]) -> anyhow::Result<String> {
    let (binary, mut command) = chronicle_command(server);
    let output = command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| {
            format!(
                "cannot run {} (set --chronicle-bin, or use --devices-file)",
                binary.display()
            )
        })?;
    if !output.status.success() {
        bail!(
            "{} {} failed ({}): {}",
            binary.display(),
            args.first().map(String::as_str).unwrap_or_default(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Devices named on one command line, well below the kernel's argument limit.
const DEVICES_PER_COMMAND: usize = 1000;

#[derive(Deserialize)]
struct AddedGateway {
    gateway_id: String,
    mqtt_password: String,
}

/// Registers `count` gateways (operator gateways, not any one patient's) that between them
/// relay `devices`, device *i* on gateway *i mod count*, as a phone app or a clinic's
/// gateway relays for many devices over one connection.
pub async fn register_gateways(
    server: &ServerArgs,
    devices: &[String],
    count: usize,
) -> anyhow::Result<Vec<GatewayCredentials>> {
    let count = count.clamp(1, devices.len().max(1));
    let mut gateways = Vec::with_capacity(count);
    for k in 0..count {
        let members: Vec<String> = devices.iter().skip(k).step_by(count).cloned().collect();
        let mut chunks = members.chunks(DEVICES_PER_COMMAND);
        let mut args: Vec<String> = [
            "gateway",
            "add",
            "--json",
            "--label",
            &format!("chronicle-sim gateway {} of {count}", k + 1),
        ]
        .map(str::to_owned)
        .to_vec();
        for device in chunks.next().unwrap_or_default() {
            args.extend(["--device".to_owned(), device.clone()]);
        }
        let out = run_chronicle(server, &args).await?;
        let added: AddedGateway = serde_json::from_str(&out)
            .with_context(|| format!("unexpected output of chronicle gateway add: {out}"))?;
        for chunk in chunks {
            let mut args = vec![
                "gateway".to_owned(),
                "attach".to_owned(),
                added.gateway_id.clone(),
            ];
            args.extend(chunk.iter().cloned());
            run_chronicle(server, &args).await?;
        }
        gateways.push(GatewayCredentials {
            gateway_id: added.gateway_id,
            secret: added.mqtt_password,
            devices: members,
        });
    }
    Ok(gateways)
}

/// Registers the patients with `chronicle patient import` (one process for all of them) and
/// returns them as a devices file.
pub async fn register(
    server: &ServerArgs,
    seed: u64,
    wanted: Vec<Wanted>,
) -> anyhow::Result<DevicesFile> {
    let (binary, mut command) = chronicle_command(server);
    command
        .args(["patient", "import"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().with_context(|| {
        format!(
            "cannot run {} (set --chronicle-bin, or use --devices-file)",
            binary.display()
        )
    })?;
    let mut stdin = child.stdin.take().context("no stdin for chronicle")?;
    let lines: Vec<String> = wanted
        .iter()
        .map(|w| {
            serde_json::json!({
                "name": w.name,
                "time_zone": w.time_zone,
                "devices": w.kinds.iter().map(|k| serde_json::json!({"kind": k, "label": "chronicle-sim"})).collect::<Vec<_>>(),
            })
            .to_string()
        })
        .collect();
    let writer = tokio::spawn(async move {
        for line in lines {
            stdin.write_all(line.as_bytes()).await?;
            stdin.write_all(b"\n").await?;
        }
        stdin.shutdown().await
    });
    let stdout = child.stdout.take().context("no stdout for chronicle")?;
    let mut reader = BufReader::new(stdout).lines();
    let mut patients = Vec::with_capacity(wanted.len());
    for w in &wanted {
        let Some(line) = reader.next_line().await? else {
            break;
        };
        let imported: Imported = serde_json::from_str(&line)
            .with_context(|| format!("unexpected output of chronicle patient import: {line}"))?;
        patients.push(FilePatient {
            index: w.index,
            persona: w.persona.clone(),
            patient_id: Some(imported.patient_id),
            name: Some(imported.name),
            time_zone: Some(imported.time_zone),
            devices: imported
                .devices
                .into_iter()
                .map(|d| FileDevice {
                    device_id: d.device_id,
                    kind: d.kind,
                    secret: d.mqtt_password,
                })
                .collect(),
        });
    }
    let output = child.wait_with_output().await?;
    let _ = writer.await;
    if !output.status.success() || patients.len() != wanted.len() {
        bail!(
            "{} patient import failed ({}): {}",
            binary.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(DevicesFile {
        seed,
        created_at: Some(chrono::Utc::now()),
        patients,
        gateways: Vec::new(),
    })
}

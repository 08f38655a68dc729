//! The devices file: registered patients and their devices' MQTT credentials, so the
//! simulator can drive a server it did not provision (someone else's, or `chronicle demo`'s).
//!
//! ```json
//! {"seed": 42,
//!  "patients": [
//!    {"index": 0, "persona": "type1-cgm", "patient_id": "6f1c…", "name": "…",
//!     "time_zone": "Asia/Kolkata",
//!     "devices": [{"device_id": "dev_k3v9q2m8x1ab", "kind": "cgm", "secret": "…"}]}]}
//! ```
//!
//!
//! With `--connections` below the number of devices, the simulator also registers gateways
//! and keeps them in the file (`"gateways": [{"gateway_id", "secret", "devices": [ids]}]`),
//! so the next run over the same devices reuses them.
//!
//! Patient `index` of population `seed` is the simulated patient (the same seed and index give
//! the same readings); `persona` is optional (inferred from the device kinds when absent).
//! Unknown fields are ignored, so other tools may keep more in the file. It holds secrets:
//! the simulator writes it readable by its owner only.

use crate::devices::{CgmSpec, CuffSpec, DeviceSpec, MeterSchedule, MeterSpec};
use crate::mqtt::{DeviceCredentials, GatewayCredentials};
use crate::patient::{Patient, Persona};
use chronicle_domain::{DeviceKind, GlucoseUnit};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DevicesFile {
    /// The population seed the patients were generated from.
    pub seed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    pub patients: Vec<FilePatient>,
    /// Gateways relaying these devices over fewer connections than devices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<GatewayCredentials>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FilePatient {
    /// Position in the population (the seed path of the simulated patient).
    pub index: u64,
    /// A persona name (`type1-cgm`, …); inferred from the devices when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persona: Option<String>,
    /// The patient's id in Chronicle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_id: Option<uuid::Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    pub devices: Vec<FileDevice>,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct FileDevice {
    pub device_id: String,
    pub kind: DeviceKind,
    /// The MQTT password.
    pub secret: String,
}

impl std::fmt::Debug for FileDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDevice")
            .field("device_id", &self.device_id)
            .field("kind", &self.kind)
            .field("secret", &"***")
            .finish()
    }
}

impl FileDevice {
    pub fn credentials(&self) -> DeviceCredentials {
        DeviceCredentials {
            device_id: self.device_id.clone(),
            secret: self.secret.clone(),
        }
    }
}

#[derive(Debug, Error)]
pub enum DevicesFileError {
    #[error("cannot read the devices file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the devices file {path} is not valid: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("cannot write the devices file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("patient {index} of the devices file: {reason}")]
    Patient { index: u64, reason: String },
}

impl DevicesFile {
    pub fn read(path: &Path) -> Result<DevicesFile, DevicesFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| DevicesFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| DevicesFileError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// Writes the file readable by its owner only (it holds device secrets).
    pub fn write(&self, path: &Path) -> Result<(), DevicesFileError> {
        let error = |source| DevicesFileError::Write {
            path: path.display().to_string(),
            source,
        };
        let text =
            serde_json::to_string_pretty(self).map_err(|e| error(std::io::Error::other(e)))?;
        let temp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&temp).map_err(error)?;
            file.write_all(text.as_bytes()).map_err(error)?;
            file.write_all(b"\n").map_err(error)?;
        }
        std::fs::rename(&temp, path).map_err(error)
    }
}

impl FilePatient {
    /// The persona: named, or inferred from the device kinds.
    pub fn persona(&self) -> Result<Persona, DevicesFileError> {
        if let Some(name) = &self.persona {
            return name
                .parse()
                .map_err(|e: crate::SimError| DevicesFileError::Patient {
                    index: self.index,
                    reason: e.to_string(),
                });
        }
        let has = |k| self.devices.iter().any(|d| d.kind == k);
        let glucose = has(DeviceKind::Cgm) || has(DeviceKind::Meter);
        Ok(match (glucose, has(DeviceKind::Bp)) {
            (true, true) => Persona::Type2Hypertension,
            (false, true) => Persona::Hypertension,
            (true, false) if has(DeviceKind::Cgm) => Persona::Type1Cgm,
            (true, false) => Persona::Type2Meter,
            (false, false) => {
                return Err(DevicesFileError::Patient {
                    index: self.index,
                    reason: "no devices".into(),
                });
            }
        })
    }

    /// The simulated patient, with its devices in the file's order: a device of a kind the
    /// generated patient lacks (a CGM for a patient generated with a meter) replaces it.
    pub fn patient(&self, seed: u64) -> Result<Patient, DevicesFileError> {
        let generated = Patient::generate(self.persona()?, seed, self.index);
        let unit = generated
            .devices
            .iter()
            .find_map(DeviceSpec::glucose_unit)
            .unwrap_or(GlucoseUnit::MgDl);
        let mut used = vec![false; generated.devices.len()];
        let mut devices = Vec::with_capacity(self.devices.len());
        for d in &self.devices {
            let found = generated
                .devices
                .iter()
                .enumerate()
                .find(|(i, spec)| !used[*i] && spec.kind() == d.kind);
            let spec = match found {
                Some((i, spec)) => {
                    used[i] = true;
                    spec.clone()
                }
                None => match d.kind {
                    // The simulator speaks MQTT; an uploader's readings are a CGM's.
                    DeviceKind::Cgm | DeviceKind::Uploader => {
                        DeviceSpec::Cgm(CgmSpec::ten_day(unit))
                    }
                    DeviceKind::Meter => DeviceSpec::Meter(MeterSpec::iso_15197(
                        unit,
                        0.0,
                        MeterSchedule {
                            before_breakfast: 0.8,
                            before_lunch: 0.3,
                            before_dinner: 0.5,
                            bedtime: 0.3,
                        },
                    )),
                    DeviceKind::Bp => DeviceSpec::Cuff(CuffSpec::default()),
                },
            };
            devices.push(spec);
        }
        generated
            .with_devices(devices)
            .map_err(|e| DevicesFileError::Patient {
                index: self.index,
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_builds_patients() {
        let file = DevicesFile {
            seed: 7,
            created_at: None,
            patients: vec![FilePatient {
                index: 3,
                persona: None,
                patient_id: None,
                name: Some("Sim 3".into()),
                time_zone: None,
                devices: vec![
                    FileDevice {
                        device_id: "dev_aaaaaaaaaaaa".into(),
                        kind: DeviceKind::Cgm,
                        secret: "s".into(),
                    },
                    FileDevice {
                        device_id: "dev_bbbbbbbbbbbb".into(),
                        kind: DeviceKind::Bp,
                        secret: "t".into(),
                    },
                ],
            }],
            gateways: vec![GatewayCredentials {
                gateway_id: "gw_cccccccccccc".into(),
                secret: "u".into(),
                devices: vec!["dev_aaaaaaaaaaaa".into()],
            }],
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("devices.json");
        file.write(&path).expect("write");
        let back = DevicesFile::read(&path).expect("read");
        assert_eq!(back, file);
        let patient = back.patients[0].patient(7).expect("patient");
        assert_eq!(patient.persona, Persona::Type2Hypertension);
        let kinds: Vec<_> = patient.devices.iter().map(DeviceSpec::kind).collect();
        assert_eq!(kinds, vec![DeviceKind::Cgm, DeviceKind::Bp]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}

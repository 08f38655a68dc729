//! `chronicle demo`: `chronicle serve` with a demo clinic that lives in it.
//!
//! On first run it provisions, directly through the storage crate, an organization, a care
//! team, clinicians with a password, and simulated patients of mixed personas, each with a
//! patient account, devices, and a grant of their data to the care team. Their history is
//! then backfilled **through MQTT** (batch messages into the real ingest), and every device
//! stays live on the real clock until Ctrl-C. The clinic's ids, the demo password and the
//! devices' secrets are kept in `DATA_DIR/demo.json` (readable by its owner only; also a
//! `chronicle-sim` devices file), so a second run finds the clinic and only fills the gap
//! since the last stored reading of each device.
//!
//! So that the dashboard opens onto open alerts, two more patients play one of the
//! simulator's scenarios on every run (a hypertensive crisis, a nocturnal hypoglycaemia),
//! timed so that the alarming reading is measured a few minutes before the devices go live:
//! it arrives as a live reading, and the alert engine raises a real alert from it.

use crate::cli::{DatabaseSettings, ServeSettings};
use crate::database::Database;
use crate::serve::{self, Endpoints};
use anyhow::Context;
use chronicle_domain::DeviceId;
use chronicle_domain::sharing::{Access, DataCategory, Grantee, Purpose, Role};
use chronicle_sim::devices_file::{DevicesFile, FileDevice, FilePatient};
use chronicle_sim::mqtt::{Broker, Fleet, FleetOptions, GatewayCredentials as SimGateway};
use chronicle_sim::player::{Pace, Plan, PlayPatient, Player, ServerLimits, Source};
use chronicle_sim::scenario::{self, Scenario, ScenarioKind};
use chronicle_sim::{PatientSim, PersonaMix, Population, Zone};
use chronicle_storage::credentials::{hash_password, random_secret};
use chronicle_storage::identity::NewUser;
use chronicle_storage::sharing::NewGrant;
use chronicle_storage::{NewPatient, Store};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const ORGANIZATION: &str = "Chronicle Demo Clinic";
const CARE_TEAM: &str = "Diabetes and Hypertension Care";
const EMAIL_DOMAIN: &str = "demo.chronicle.example";

/// What `chronicle demo` was asked for.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub patients: usize,
    pub backfill_days: u32,
    pub seed: u64,
}

/// The demo's state file: a `chronicle-sim` devices file plus the clinic.
#[derive(Debug, Serialize, Deserialize)]
struct DemoState {
    #[serde(flatten)]
    devices: DevicesFile,
    demo: Clinic,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Clinic {
    organization_id: Uuid,
    care_team_id: Uuid,
    /// The password of every demo account (a demo, shown on every start).
    password: String,
    clinicians: Vec<DemoUser>,
    /// The patients' own accounts, in the order of the patients.
    patient_users: Vec<DemoUser>,
    /// The patients who play a scenario on every run (added to older state files too).
    #[serde(default)]
    scenarios: Vec<ScenarioPatient>,
}

/// A patient whose one device plays a simulator scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ScenarioPatient {
    /// The scenario's name (`hypertensive_crisis`, …).
    scenario: String,
    patient_id: Uuid,
    name: String,
    /// A zone without daylight saving time (the simulator's zones have fixed offsets).
    time_zone: String,
    device: FileDevice,
}

/// The scenarios every run plays, the rule whose first reading is timed to just before the
/// devices go live, and the patient's name and zone.
const LIVE_SCENARIOS: [(ScenarioKind, &str, &str, &str); 2] = [
    (
        ScenarioKind::HypertensiveCrisis,
        chronicle_sim::oracle::rules::BP_CRISIS,
        "Walter Okoye",
        "Africa/Lagos",
    ),
    (
        ScenarioKind::NocturnalHypoglycemia,
        chronicle_sim::oracle::rules::GLUCOSE_VERY_LOW,
        "Zoe Lindqvist",
        "Asia/Dubai",
    ),
];

/// How long before the devices go live the alarming reading is measured: recent enough to be
/// a live reading (late readings only make history), old enough to be sent in the backfill.
const ALARM_LEAD_MINUTES: i64 = 4;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DemoUser {
    id: Uuid,
    email: String,
    name: String,
}

const CLINICIANS: [(&str, &str); 2] = [
    ("Dr. Amara Okafor", "amara.okafor"),
    ("Dr. Lukas Weber", "lukas.weber"),
];

const FIRST_NAMES: [&str; 20] = [
    "Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Femi", "Greta", "Hiro", "Ines", "Jonas", "Kavya",
    "Liam", "Mei", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tariq",
];
const LAST_NAMES: [&str; 20] = [
    "Lovelace", "Costa", "Ricci", "Ivanov", "Yilmaz", "Adeyemi", "Larsen", "Tanaka", "Moreau",
    "Becker", "Iyer", "Walsh", "Chen", "Haddad", "Farouk", "Nair", "Dubois", "Alvarez", "Berg",
    "Aziz",
];

pub async fn run(
    database_settings: DatabaseSettings,
    settings: ServeSettings,
    options: DemoOptions,
) -> anyhow::Result<()> {
    let mut database = Database::open(&database_settings).await?;
    let state_path = database_settings.data_dir.join("demo.json");
    let limits = ServerLimits {
        max_message_bytes: settings.max_message_bytes,
        max_readings_per_message: settings.max_readings_per_message,
        max_future_skew: Duration::from_std(settings.max_future_skew)
            .unwrap_or(Duration::minutes(10)),
    };
    let result = serve::serve(&database, &settings, |running| {
        demo(running, state_path, options, limits)
    })
    .await;
    database.close().await;
    result
}

async fn demo(
    running: Endpoints,
    state_path: PathBuf,
    options: DemoOptions,
    limits: ServerLimits,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let signal = stop.clone();
    tokio::spawn(async move {
        serve::wait_for_signal().await;
        signal.cancel();
    });
    let state = tokio::select! {
        state = clinic(&running.store, &state_path, &options) => state?,
        () = stop.cancelled() => return Ok(()),
    };
    let url = format!("http://{}/", running.http_addr);
    let clinic = &state.demo;
    println!();
    println!(
        "Demo clinic \"{ORGANIZATION}\", care team \"{CARE_TEAM}\": {} patients, and {} whose devices raise alerts as the demo opens ({})",
        state.devices.patients.len(),
        clinic.scenarios.len(),
        clinic
            .scenarios
            .iter()
            .map(|s| format!("{}: {}", s.name, s.scenario.replace('_', " ")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("Open {url} and log in (every demo account has the same password):");
    for c in &clinic.clinicians {
        println!("  clinician  {}  password {}", c.email, clinic.password);
    }
    if let Some(p) = clinic.patient_users.first() {
        println!(
            "  patient    {}  password {}   (patients patient01 … patient{:02})",
            p.email,
            clinic.password,
            clinic.patient_users.len()
        );
    }
    println!(
        "  API: POST {url}v1/auth/login {{\"email\": \"{}\", \"password\": \"{}\"}}",
        clinic.clinicians.first().map_or("", |c| c.email.as_str()),
        clinic.password
    );
    println!("(kept in {})", state_path.display());

    // Each device resumes after what the server already holds.
    let devices: Vec<String> = state
        .devices
        .patients
        .iter()
        .flat_map(|p| p.devices.iter().map(|d| d.device_id.clone()))
        .chain(clinic.scenarios.iter().map(|s| s.device.device_id.clone()))
        .collect();
    let latest = running.store.latest_measured_at(&devices).await?;
    let now = Utc::now();
    let earliest = now - Duration::days(i64::from(options.backfill_days));
    let mut credentials = Vec::new();
    let mut play = Vec::new();
    let mut start_all = now;
    let mut patients = Vec::new();
    for p in &state.devices.patients {
        patients.push(p.patient(state.devices.seed)?);
    }
    let starts: Vec<_> = state
        .devices
        .patients
        .iter()
        .map(|p| {
            p.devices
                .iter()
                .map(|d| latest.get(&d.device_id).copied())
                .collect::<Vec<_>>()
        })
        .collect();
    let sims = {
        let jobs: Vec<(chronicle_sim::Patient, chrono::DateTime<Utc>)> = patients
            .iter()
            .zip(&starts)
            .map(|(patient, after)| {
                let start = after
                    .iter()
                    .map(|a| a.unwrap_or(earliest).max(earliest))
                    .min()
                    .unwrap_or(earliest);
                (patient.clone(), start)
            })
            .collect();
        tokio::task::spawn_blocking(move || {
            jobs.iter()
                .map(|(p, start)| PatientSim::new(p, *start))
                .collect::<Vec<_>>()
        })
        .await?
    };
    for ((file_patient, sim), after) in state.devices.patients.iter().zip(sims).zip(starts) {
        start_all = start_all.min(sim.now());
        let mut indexes = Vec::new();
        for d in &file_patient.devices {
            credentials.push(d.credentials());
            indexes.push(Some(credentials.len() - 1));
        }
        play.push(PlayPatient {
            source: Source::Sim(Box::new(sim)),
            devices: indexes,
            after,
            fresh: false,
            track: false,
        });
    }
    let scenarios = {
        let patients = clinic.scenarios.clone();
        let seed = state.devices.seed;
        tokio::task::spawn_blocking(move || {
            patients
                .iter()
                .enumerate()
                .map(|(i, p)| timed_scenario(p, seed, i as u64, now))
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .await??
    };
    for (patient, built) in clinic.scenarios.iter().zip(scenarios) {
        credentials.push(patient.device.credentials());
        start_all = start_all.min(built.window_start.max(earliest));
        play.push(PlayPatient {
            source: Source::Fixed(built.readings.into_iter().collect()),
            devices: vec![Some(credentials.len() - 1)],
            after: vec![latest.get(&patient.device.device_id).copied()],
            fresh: false,
            track: false,
        });
    }
    let broker = Broker {
        host: running.mqtt_host.clone(),
        port: running.mqtt_port,
        topic_prefix: running.topic_prefix.clone(),
    };
    let fleet = Fleet::connect(
        broker,
        &credentials,
        &state.devices.gateways,
        &FleetOptions {
            window: 4,
            ..FleetOptions::default()
        },
    )
    .await
    .context("the demo devices cannot connect to the broker")?;
    println!(
        "Backfilling up to {} days of history over MQTT ({} devices) ...",
        options.backfill_days,
        credentials.len()
    );
    let backfill_started = std::time::Instant::now();
    let plan = Plan {
        start: start_all,
        end: None,
        pace: Pace::Live,
        batch_readings: limits.max_readings_per_message,
        rate: None,
        clock_start: None,
        limits,
        ack_timeout: std::time::Duration::from_secs(120),
        seed: state.devices.seed,
        faults: chronicle_sim::faults::FaultRates::none(),
        progress_every: None,
    };
    let (caught_up_tx, caught_up_rx) = tokio::sync::oneshot::channel();
    let player = Player::new(plan, play, credentials.len()).on_caught_up(caught_up_tx);
    let announce = async move {
        if let Ok(p) = caught_up_rx.await {
            println!(
                "Backfilled {} readings in {} messages in {:.1} s: {} stored, {} duplicates, {} rejected.",
                p.readings_sent,
                p.messages_sent,
                backfill_started.elapsed().as_secs_f64(),
                p.stored,
                p.duplicates,
                p.rejected
            );
            println!(
                "Devices are live: CGMs every 5 minutes, meters and cuffs at the patients' usual times. Ctrl-C stops the demo."
            );
        }
    };
    let (report, ()) = tokio::join!(player.run(&fleet, &stop), announce);
    let reconciliation = fleet.reconcile();
    fleet.close().await;
    if !reconciliation.is_clean() {
        tracing::warn!(
            differences = reconciliation.differences.len(),
            first = reconciliation
                .differences
                .first()
                .map(String::as_str)
                .unwrap_or(""),
            "some demo readings were not answered as expected"
        );
    }
    tracing::info!(
        stored = reconciliation.stored,
        seconds = report.elapsed.as_secs_f64(),
        "demo devices stopped"
    );
    Ok(())
}

/// The demo clinic: found from the state file, or provisioned now.
async fn clinic(store: &Store, path: &Path, options: &DemoOptions) -> anyhow::Result<DemoState> {
    let existing = if path.exists() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let state: DemoState = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a demo state file", path.display()))?;
        match store.organization(state.demo.organization_id).await? {
            Some(_) => Some(state),
            None => {
                tracing::warn!(path = %path.display(), "the demo clinic of the state file is not in the database; provisioning a new one");
                None
            }
        }
    } else {
        None
    };
    let mut state = match existing {
        Some(state) => {
            println!(
                "Found the demo clinic from an earlier run ({} patients); filling the gap since then.",
                state.devices.patients.len()
            );
            state
        }
        None => {
            anyhow::ensure!(
                store.organization_named(ORGANIZATION).await?.is_none(),
                "the database already holds \"{ORGANIZATION}\" but {} is missing (it keeps the demo devices' secrets): \
                 use the data directory of the earlier run, or a fresh database",
                path.display()
            );
            println!("Provisioning the demo clinic ...");
            new_clinic(store, options).await?
        }
    };
    // More patients than an earlier run asked for: add them.
    let have = state.devices.patients.len();
    if options.patients > have {
        add_patients(store, &mut state, have, options.patients).await?;
    }
    if state.demo.scenarios.is_empty() {
        add_scenario_patients(store, &mut state).await?;
    }
    add_phone_gateways(store, &mut state).await?;
    write_state(path, &state)?;
    Ok(state)
}

fn write_state(path: &Path, state: &DemoState) -> anyhow::Result<()> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(state)?;
    let temp = path.with_extension("json.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&temp)
        .with_context(|| format!("cannot write {}", temp.display()))?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    drop(file);
    std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

async fn new_clinic(store: &Store, options: &DemoOptions) -> anyhow::Result<DemoState> {
    let organization = store.create_organization(ORGANIZATION).await?;
    let team = store.create_care_team(organization.id, CARE_TEAM).await?;
    let password = random_secret(16);
    let mut state = DemoState {
        devices: DevicesFile {
            seed: options.seed,
            created_at: Some(Utc::now()),
            patients: Vec::new(),
            gateways: Vec::new(),
        },
        demo: Clinic {
            organization_id: organization.id,
            care_team_id: team.id,
            password,
            clinicians: Vec::new(),
            patient_users: Vec::new(),
            scenarios: Vec::new(),
        },
    };
    let hash = password_hash(&state.demo.password).await?;
    for (name, local) in CLINICIANS {
        let user = store
            .create_user(&NewUser {
                email: format!("{local}@{EMAIL_DOMAIN}"),
                display_name: name.to_owned(),
                role: Role::Clinician,
                password_hash: Some(hash.clone()),
                patient_id: None,
            })
            .await?;
        store.add_team_member(team.id, user.id).await?;
        state.demo.clinicians.push(DemoUser {
            id: user.id,
            email: user.email,
            name: user.display_name,
        });
    }
    add_patients(store, &mut state, 0, options.patients).await?;
    Ok(state)
}

/// Each demo patient's phone app relays their devices, as a patient's own gateway (it can
/// relay only their devices); patients of older state files get theirs too. The scenario
/// patients' devices connect as themselves.
async fn add_phone_gateways(store: &Store, state: &mut DemoState) -> anyhow::Result<()> {
    let relayed: std::collections::HashSet<String> = state
        .devices
        .gateways
        .iter()
        .flat_map(|g| g.devices.iter().cloned())
        .collect();
    for patient in &state.devices.patients {
        if patient
            .devices
            .iter()
            .any(|d| relayed.contains(&d.device_id))
        {
            continue;
        }
        let devices = patient
            .devices
            .iter()
            .map(|d| d.device_id.parse::<DeviceId>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("a device id of the demo state file: {e}"))?;
        let label = format!("{}'s phone", patient.name.as_deref().unwrap_or("patient"));
        let (gateway, credentials) = store
            .create_gateway(patient.patient_id, Some(&label), &devices)
            .await?;
        state.devices.gateways.push(SimGateway {
            gateway_id: gateway.id.to_string(),
            secret: credentials.secret,
            devices: patient
                .devices
                .iter()
                .map(|d| d.device_id.clone())
                .collect(),
        });
    }
    Ok(())
}

async fn password_hash(password: &str) -> anyhow::Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await?
        .map_err(|e| anyhow::anyhow!("cannot hash the demo password: {e}"))
}

/// Patients `from..to` of the demo population: record, devices, account and grant.
async fn add_patients(
    store: &Store,
    state: &mut DemoState,
    from: usize,
    to: usize,
) -> anyhow::Result<()> {
    let population = Population::generate(state.devices.seed, to, &PersonaMix::default());
    // One hash for every demo account: they share the demo password.
    let hash = password_hash(&state.demo.password).await?;
    for patient in population.patients.iter().skip(from) {
        let i = patient.index as usize;
        let name = format!(
            "{} {}",
            FIRST_NAMES[i % FIRST_NAMES.len()],
            LAST_NAMES[(i * 7 + i / LAST_NAMES.len()) % LAST_NAMES.len()]
        );
        let record = store
            .create_patient(&NewPatient {
                display_name: name.clone(),
                time_zone: patient.zone.name.clone(),
            })
            .await?;
        let mut devices = Vec::new();
        for spec in &patient.devices {
            let (device, credentials) = store
                .create_device(record.id, spec.kind(), Some("demo device"))
                .await?;
            devices.push(FileDevice {
                device_id: device.id.to_string(),
                kind: device.kind,
                secret: credentials.secret,
            });
        }
        let user = store
            .create_user(&NewUser {
                email: format!("patient{:02}@{EMAIL_DOMAIN}", i + 1),
                display_name: name.clone(),
                role: Role::Patient,
                password_hash: Some(hash.clone()),
                patient_id: Some(record.id),
            })
            .await?;
        store
            .create_grant(&care_grant(
                record.id,
                state.demo.care_team_id,
                Some(user.id),
            ))
            .await?;
        state.devices.patients.push(FilePatient {
            index: patient.index,
            persona: Some(patient.persona.as_str().to_owned()),
            patient_id: Some(record.id),
            name: Some(name.clone()),
            time_zone: Some(patient.zone.name.clone()),
            devices,
        });
        state.demo.patient_users.push(DemoUser {
            id: user.id,
            email: user.email,
            name,
        });
    }
    Ok(())
}

/// The grant every demo patient gives the care team.
fn care_grant(patient_id: Uuid, care_team_id: Uuid, created_by: Option<Uuid>) -> NewGrant {
    NewGrant {
        patient_id,
        grantee: Grantee::CareTeam(care_team_id),
        categories: [
            DataCategory::Glucose,
            DataCategory::BloodPressure,
            DataCategory::DeviceInfo,
        ]
        .into_iter()
        .collect(),
        access: [
            Access::ViewReadings,
            Access::ViewTrends,
            Access::ReceiveAlerts,
        ]
        .into_iter()
        .collect(),
        purpose: Purpose::Care,
        data_since: None,
        expires_at: None,
        created_by,
    }
}

/// The scenario patients: a record, the scenario's one device, and the grant to the team.
async fn add_scenario_patients(store: &Store, state: &mut DemoState) -> anyhow::Result<()> {
    for (kind, _, name, zone) in LIVE_SCENARIOS {
        let record = store
            .create_patient(&NewPatient {
                display_name: name.to_owned(),
                time_zone: zone.to_owned(),
            })
            .await?;
        let (device, credentials) = store
            .create_device(record.id, kind.device_kind(), Some("demo device"))
            .await?;
        store
            .create_grant(&care_grant(record.id, state.demo.care_team_id, None))
            .await?;
        state.demo.scenarios.push(ScenarioPatient {
            scenario: kind.as_str().to_owned(),
            patient_id: record.id,
            name: name.to_owned(),
            time_zone: zone.to_owned(),
            device: FileDevice {
                device_id: device.id.to_string(),
                kind: device.kind,
                secret: credentials.secret,
            },
        });
    }
    Ok(())
}

/// The patient's scenario, timed so that the first reading of its alarm is measured
/// `ALARM_LEAD_MINUTES` before `now` ([`timed`]).
fn timed_scenario(
    patient: &ScenarioPatient,
    seed: u64,
    index: u64,
    now: DateTime<Utc>,
) -> anyhow::Result<Scenario> {
    let (kind, rule, _, _) = LIVE_SCENARIOS
        .iter()
        .find(|(kind, ..)| kind.as_str() == patient.scenario)
        .with_context(|| format!("unknown demo scenario {:?}", patient.scenario))?;
    let zone = Zone::builtin_named(&patient.time_zone).with_context(|| {
        format!(
            "the demo patient's zone {:?} is not one of the simulator's",
            patient.time_zone
        )
    })?;
    timed(
        *kind,
        rule,
        seed,
        index,
        &zone,
        now - Duration::minutes(ALARM_LEAD_MINUTES),
    )
}

/// How far from the wanted moment a scenario may be built when none of its variants is
/// clear there, in steps of [`BUILD_STEP`] either way.
const BUILD_STEPS: i32 = 24;
const BUILD_STEP: Duration = Duration::minutes(30);

/// Scenario `kind` with the first reading of its `rule` alarm measured at `wanted`: built
/// there, then moved by however far the alarm landed from it (the simulated patient's day
/// decides how long the event takes). Where the patient's routine leaves every variant
/// ambiguous (a meal in the middle of the event), it is built half an hour earlier or later,
/// and so on, and moved the same way.
fn timed(
    kind: ScenarioKind,
    rule: &str,
    seed: u64,
    index: u64,
    zone: &Zone,
    wanted: DateTime<Utc>,
) -> anyhow::Result<Scenario> {
    let alarm = |s: &Scenario| {
        s.assessment
            .firings
            .iter()
            .filter(|f| f.rule == rule)
            .map(|f| f.first_trigger)
            .min()
            .with_context(|| format!("the {kind} scenario raised no {rule}"))
    };
    // The wanted moment first, then half an hour earlier, later, an hour earlier, …
    let mut moments = std::iter::once(0)
        .chain((1..=BUILD_STEPS).flat_map(|step| [-step, step]))
        .map(|step| wanted + BUILD_STEP * step);
    let mut first_refusal = None;
    let built = moments.find_map(|at| match scenario::build(kind, seed, index, at, zone) {
        Ok(built) => Some(built),
        Err(refusal) => {
            first_refusal.get_or_insert(refusal);
            None
        }
    });
    let Some(built) = built else {
        return Err(
            first_refusal.map_or_else(|| anyhow::anyhow!("no {kind} scenario tried"), Into::into)
        );
    };
    let error = wanted - alarm(&built)?;
    let timed = built.shifted(error);
    let landed = alarm(&timed)?;
    anyhow::ensure!(
        landed == wanted,
        "the {kind} scenario's {rule} moved to {landed} instead of {wanted}"
    );
    Ok(timed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn live_scenarios_are_timed_at_every_minute_of_a_day() {
        // The demo times its scenarios to whenever it starts; at some minutes the patient's
        // routine (dinner during a bedtime overdose) leaves every variant built there
        // ambiguous, so this sweeps a whole day in 10-minute steps with the demo's default seed
        // and another.
        let start = Utc
            .with_ymd_and_hms(2026, 12, 5, 0, 1, 0)
            .single()
            .expect("date");
        let mut failures = Vec::new();
        for (index, (kind, rule, _, zone_name)) in LIVE_SCENARIOS.iter().enumerate() {
            let zone = Zone::builtin_named(zone_name).expect("a built-in zone");
            for seed in [2026, 3] {
                for step in 0..24 * 6 {
                    let wanted = start + Duration::minutes(10 * step);
                    match timed(*kind, rule, seed, index as u64, &zone, wanted) {
                        Ok(s) => assert!(s.readings.iter().any(|r| r.measured_at() == wanted)),
                        Err(e) => failures.push(format!("{kind} seed {seed} at {wanted}: {e}")),
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }
}

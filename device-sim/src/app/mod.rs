//! The commands of `chronicle-sim`.

pub mod cli;
mod provision;

use anyhow::Context;
use chronicle_sim::devices_file::DevicesFile;
use chronicle_sim::faults::FaultRates;
use chronicle_sim::ledger::Reconciliation;
use chronicle_sim::mqtt::{Broker, DeviceCredentials, Fleet, FleetOptions};
use chronicle_sim::player::{Pace, Plan, PlayPatient, PlayReport, Player, ServerLimits, Source};
use chronicle_sim::scenario::{self, GroundTruth};
use chronicle_sim::{Patient, PatientSim, PersonaMix, Population, Zone};
use chrono::{DateTime, Duration, Utc};
use cli::{BrokerArgs, Cli, Command, Mode, PopulationArgs, ServerArgs};
use provision::Wanted;
use serde_json::json;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run_population(*args).await,
        Command::Scenario(args) => run_scenarios(*args).await,
        Command::Load(args) => run_load(*args).await,
        Command::Provision(args) => provision_only(*args).await,
    }
}

fn broker(b: &BrokerArgs) -> Broker {
    Broker {
        host: b.mqtt_host.clone(),
        port: b.mqtt_port,
        topic_prefix: b.topic_prefix.clone(),
    }
}

fn limits(b: &BrokerArgs) -> ServerLimits {
    ServerLimits {
        max_message_bytes: b.max_message_bytes,
        max_readings_per_message: b.max_readings_per_message,
        max_future_skew: Duration::seconds(b.max_future_skew_seconds),
    }
}

fn fleet_options(b: &BrokerArgs) -> FleetOptions {
    FleetOptions {
        window: b.window,
        ..FleetOptions::default()
    }
}

/// Connects `credentials` (devices of `file`): one connection per device, or with
/// `--connections` below the number of devices, that many gateways relaying for them. The
/// file's gateways are reused when they are that many and relay exactly these devices;
/// otherwise new ones are registered and written with the file to `keep_in`.
async fn connect_fleet(
    broker_args: &BrokerArgs,
    server: &ServerArgs,
    file: &mut DevicesFile,
    credentials: &[DeviceCredentials],
    keep_in: Option<&std::path::Path>,
) -> anyhow::Result<Fleet> {
    let wanted = broker_args
        .connections
        .filter(|c| *c > 0 && *c < credentials.len());
    let gateways = match wanted {
        None => Vec::new(),
        Some(count) => {
            let ids: Vec<String> = credentials.iter().map(|c| c.device_id.clone()).collect();
            let relayed: std::collections::BTreeSet<&String> =
                file.gateways.iter().flat_map(|g| &g.devices).collect();
            let reusable = file.gateways.len() == count
                && relayed.len() == ids.len()
                && ids.iter().all(|id| relayed.contains(id));
            if !reusable {
                file.gateways = provision::register_gateways(server, &ids, count)
                    .await
                    .context("registering the gateways that relay for the devices")?;
                if let Some(path) = keep_in {
                    file.write(path)?;
                    eprintln!(
                        "chronicle-sim: {count} gateways registered; kept in {}",
                        path.display()
                    );
                }
            }
            file.gateways.clone()
        }
    };
    Ok(Fleet::connect(
        broker(broker_args),
        credentials,
        &gateways,
        &fleet_options(broker_args),
    )
    .await?)
}

/// Cancelled on Ctrl-C or SIGTERM.
fn stop_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let stop = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("chronicle-sim: stopping; waiting for the last acks");
        stop.cancel();
    });
    token
}

/// The population's devices file: read, or registered now (`true`: fresh devices).
async fn devices_for(
    population: &PopulationArgs,
    server: &ServerArgs,
) -> anyhow::Result<(DevicesFile, bool)> {
    if let Some(path) = &server.devices_file {
        return Ok((DevicesFile::read(path)?, false));
    }
    let mix: PersonaMix = match &population.mix {
        Some(text) => text.parse()?,
        None => PersonaMix::default(),
    };
    let generated = Population::generate(population.seed, population.patients, &mix);
    let wanted = generated
        .patients
        .iter()
        .map(|p| Wanted {
            index: p.index,
            persona: Some(p.persona.as_str().to_owned()),
            name: format!(
                "Sim {} {:04} (seed {})",
                p.persona, p.index, population.seed
            ),
            time_zone: p.zone.name.clone(),
            kinds: p.devices.iter().map(|d| d.kind()).collect(),
        })
        .collect();
    let file = provision::register(server, population.seed, wanted).await?;
    if let Some(path) = &server.write_devices_file {
        file.write(path)?;
    }
    Ok((file, true))
}

/// A devices file as the player needs it.
struct FleetPlan {
    patients: Vec<Patient>,
    credentials: Vec<DeviceCredentials>,
    /// For each patient, the fleet index of each of its devices.
    indexes: Vec<Vec<Option<usize>>>,
}

/// Patients and credentials of a devices file, with each patient's fleet device indexes.
fn fleet_of(file: &DevicesFile) -> anyhow::Result<FleetPlan> {
    let mut patients = Vec::new();
    let mut credentials = Vec::new();
    let mut indexes = Vec::new();
    for p in &file.patients {
        patients.push(p.patient(file.seed)?);
        indexes.push(
            p.devices
                .iter()
                .map(|d| {
                    credentials.push(d.credentials());
                    Some(credentials.len() - 1)
                })
                .collect(),
        );
    }
    Ok(FleetPlan {
        patients,
        credentials,
        indexes,
    })
}

/// Every patient simulated from `start`, ready to play through their fleet devices
/// (`indexes`, per patient); `fresh`: registered for this run, so every reading must be stored.
async fn simulated_players(
    patients: Vec<Patient>,
    start: DateTime<Utc>,
    indexes: Vec<Vec<Option<usize>>>,
    fresh: bool,
) -> anyhow::Result<Vec<PlayPatient>> {
    Ok(simulators(patients, start)
        .await?
        .into_iter()
        .zip(indexes)
        .map(|(sim, devices)| PlayPatient {
            after: vec![None; devices.len()],
            source: Source::Sim(Box::new(sim)),
            devices,
            fresh,
            track: false,
        })
        .collect())
}

/// Simulators for every patient from `start` (each runs a day of burn-in), on all cores.
async fn simulators(
    patients: Vec<Patient>,
    start: DateTime<Utc>,
) -> anyhow::Result<Vec<PatientSim>> {
    tokio::task::spawn_blocking(move || {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = patients.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = patients
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|p| PatientSim::new(p, start))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        })
    })
    .await
    .context("simulator set-up failed")
}

fn write_json(path: &std::path::Path, value: &serde_json::Value) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}

fn exit_for(reconciliation: &Reconciliation) -> ExitCode {
    if reconciliation.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn progress(seconds: u64) -> Option<std::time::Duration> {
    (seconds > 0).then(|| std::time::Duration::from_secs(seconds))
}

async fn run_population(args: cli::RunArgs) -> anyhow::Result<ExitCode> {
    let rates = args.faults.rates()?;
    let (mut file, fresh) = devices_for(&args.population, &args.server).await?;
    let FleetPlan {
        patients,
        credentials,
        indexes,
    } = fleet_of(&file)?;
    let now = Utc::now();
    let days = args.days.unwrap_or(match args.mode {
        Mode::Live => 0.0,
        Mode::Backfill | Mode::Accelerated => 1.0,
    });
    let start = now - Duration::milliseconds((days * 86_400_000.0) as i64);
    let end = match args.mode {
        Mode::Backfill => Some(now),
        Mode::Live | Mode::Accelerated => args.duration.map(|d| start + d),
    };
    let pace = match args.mode {
        Mode::Live => Pace::Live,
        Mode::Backfill => Pace::Backfill,
        Mode::Accelerated => Pace::Accelerated(args.speed.max(1.0)),
    };
    eprintln!(
        "chronicle-sim: {} patients, {} devices, {:?} from {}{}",
        patients.len(),
        credentials.len(),
        args.mode,
        start.to_rfc3339(),
        end.map(|e| format!(" to {}", e.to_rfc3339()))
            .unwrap_or_default()
    );
    let fleet = connect_fleet(
        &args.broker,
        &args.server,
        &mut file,
        &credentials,
        args.server.devices_file_to_keep(),
    )
    .await?;
    let play = simulated_players(patients, start, indexes, fresh).await?;
    let plan = Plan {
        start,
        end,
        pace,
        batch_readings: args.batch_readings,
        rate: None,
        clock_start: None,
        limits: limits(&args.broker),
        ack_timeout: std::time::Duration::from_secs(args.broker.ack_timeout_seconds),
        seed: file.seed,
        faults: rates,
        progress_every: progress(args.progress_seconds),
    };
    let stop = stop_on_signal();
    let report = Player::new(plan, play, credentials.len())
        .run(&fleet, &stop)
        .await;
    let reconciliation = fleet.reconcile();
    fleet.close().await;
    print!("{}", reconciliation.render());
    println!("Elapsed: {:.1} s", report.elapsed.as_secs_f64());
    if let Some(path) = &args.report_json {
        write_json(
            path,
            &json!({"reconciliation": reconciliation, "elapsed_seconds": report.elapsed.as_secs_f64()}),
        )?;
    }
    Ok(exit_for(&reconciliation))
}

async fn run_load(args: cli::LoadArgs) -> anyhow::Result<ExitCode> {
    let rates = args.faults.rates()?;
    let population = PopulationArgs {
        patients: args.patients,
        mix: Some(args.mix.clone()),
        seed: args.seed,
    };
    let provision_started = std::time::Instant::now();
    let (mut file, fresh) = devices_for(&population, &args.server).await?;
    let FleetPlan {
        patients,
        credentials,
        indexes,
    } = fleet_of(&file)?;
    eprintln!(
        "chronicle-sim load: {} devices of {} patients ready in {:.1} s; connecting",
        credentials.len(),
        patients.len(),
        provision_started.elapsed().as_secs_f64()
    );
    let now = Utc::now();
    let start = now - Duration::milliseconds((args.days * 86_400_000.0) as i64);
    let connect_started = std::time::Instant::now();
    let fleet = connect_fleet(
        &args.broker,
        &args.server,
        &mut file,
        &credentials,
        args.server.devices_file_to_keep(),
    )
    .await?;
    let connect_seconds = connect_started.elapsed().as_secs_f64();
    let play = simulated_players(patients, start, indexes, fresh).await?;
    let plan = Plan {
        start,
        end: Some(now),
        pace: Pace::Backfill,
        batch_readings: args.readings_per_message.max(1),
        rate: args.rate,
        clock_start: None,
        limits: limits(&args.broker),
        ack_timeout: std::time::Duration::from_secs(args.broker.ack_timeout_seconds),
        seed: file.seed,
        faults: rates,
        progress_every: progress(args.progress_seconds),
    };
    let stop = stop_on_signal();
    if let Some(seconds) = args.duration_seconds {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
            stop.cancel();
        });
    }
    let report = Player::new(plan, play, credentials.len())
        .run(&fleet, &stop)
        .await;
    let reconciliation = fleet.reconcile();
    let connections = fleet.connections();
    fleet.close().await;
    let seconds = report.elapsed.as_secs_f64().max(1e-6);
    let rejected: usize = reconciliation.rejected.values().sum();
    let summary = json!({
        "devices": credentials.len(),
        "connections": connections,
        "connect_seconds": connect_seconds,
        "messages": reconciliation.messages,
        "readings": reconciliation.sent,
        "stored": reconciliation.stored,
        "duplicates": reconciliation.duplicates,
        "rejected": rejected,
        "rejected_by_reason": reconciliation.rejected,
        "unanswered_messages": reconciliation.unanswered_messages,
        "elapsed_seconds": seconds,
        "messages_per_second": reconciliation.messages as f64 / seconds,
        "readings_per_second": reconciliation.sent as f64 / seconds,
        "latency_ms": reconciliation.latency,
        "reconnections": reconciliation.reconnections,
        "differences": reconciliation.differences.len(),
        "target_rate": args.rate,
    });
    println!("Load summary");
    println!(
        "  devices {} over {} connection(s) (connected in {:.1} s)",
        credentials.len(),
        connections,
        connect_seconds
    );
    println!(
        "  {} messages, {} readings in {:.1} s: {:.0} messages/s, {:.0} readings/s",
        reconciliation.messages,
        reconciliation.sent,
        seconds,
        reconciliation.messages as f64 / seconds,
        reconciliation.sent as f64 / seconds
    );
    print!("{}", reconciliation.render());
    if let Some(path) = &args.summary_json {
        write_json(path, &summary)?;
    }
    Ok(exit_for(&reconciliation))
}

async fn provision_only(args: cli::ProvisionArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.server.write_devices_file.is_some(),
        "provision needs --write-devices-file FILE"
    );
    anyhow::ensure!(
        args.server.devices_file.is_none(),
        "provision registers new devices; --devices-file is for the other commands"
    );
    let (file, _) = devices_for(&args.population, &args.server).await?;
    let devices: usize = file.patients.iter().map(|p| p.devices.len()).sum();
    println!(
        "registered {} patients and {} devices; written to {}",
        file.patients.len(),
        devices,
        args.server
            .write_devices_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// A builtin zone by name (zones without daylight saving time, so offsets are exact).
fn zone_named(name: &str) -> anyhow::Result<Zone> {
    if name.eq_ignore_ascii_case("utc") {
        return Ok(Zone::utc());
    }
    Zone::builtin_named(name).with_context(|| {
        format!(
            "unknown zone {name:?}: use one without daylight saving time: {}",
            Zone::builtin()
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

async fn run_scenarios(args: cli::ScenarioArgs) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    let zone = zone_named(&args.zone)?;
    let requested = cli::parse_scenarios(&args.scenarios, now).map_err(anyhow::Error::msg)?;
    let past = args.mode == Mode::Backfill;
    let mut scenarios = Vec::new();
    for (i, (kind, at)) in requested.iter().enumerate() {
        let at = at.unwrap_or_else(|| kind.default_at(&zone, now, past, Duration::minutes(2)));
        let built = scenario::build(*kind, args.seed, i as u64, at, &zone).with_context(|| {
            format!(
                "the patient's day leaves {kind} ambiguous at {at}: try another time \
                 (--scenario {kind}@TIME) or --seed"
            )
        })?;
        if past {
            let last = built.sync_at.unwrap_or(built.window_end);
            anyhow::ensure!(
                last <= now,
                "{kind} at {at} ends at {last}, in the future: backfill needs a past time (or use --mode live)"
            );
        }
        scenarios.push(built);
    }
    // Each scenario's patient and its device.
    let mut file = match &args.server.devices_file {
        Some(path) => {
            let file = DevicesFile::read(path)?;
            let mut used = vec![false; file.patients.len()];
            let mut chosen = Vec::new();
            for s in &scenarios {
                let kind = s.kind.device_kind();
                let found = file
                    .patients
                    .iter()
                    .enumerate()
                    .find(|(i, p)| !used[*i] && p.devices.iter().any(|d| d.kind == kind))
                    .with_context(|| {
                        format!(
                            "the devices file has no unused patient with a {kind} device for {}",
                            s.kind
                        )
                    })?;
                used[found.0] = true;
                let mut p = found.1.clone();
                p.devices.retain(|d| d.kind == kind);
                p.devices.truncate(1);
                chosen.push(p);
            }
            DevicesFile {
                seed: args.seed,
                created_at: file.created_at,
                patients: chosen,
                gateways: file.gateways,
            }
        }
        None => {
            let wanted = scenarios
                .iter()
                .enumerate()
                .map(|(i, s)| Wanted {
                    index: i as u64,
                    persona: None,
                    name: format!("Scenario {} (seed {})", s.kind, args.seed),
                    time_zone: s.patient.zone.name.clone(),
                    kinds: vec![s.kind.device_kind()],
                })
                .collect();
            let file = provision::register(&args.server, args.seed, wanted).await?;
            if let Some(path) = &args.server.write_devices_file {
                file.write(path)?;
            }
            file
        }
    };
    let credentials: Vec<DeviceCredentials> = file
        .patients
        .iter()
        .map(|p| p.devices[0].credentials())
        .collect();
    let fleet = connect_fleet(
        &args.broker,
        &args.server,
        &mut file,
        &credentials,
        // A subset of a given devices file is not written over it.
        args.server.write_devices_file.as_deref(),
    )
    .await?;
    let play: Vec<PlayPatient> = scenarios
        .iter()
        .enumerate()
        .map(|(i, s)| PlayPatient {
            source: match s.sync_at {
                Some(release_at) => Source::Held {
                    release_at,
                    readings: s.readings.iter().cloned().collect(),
                },
                None => Source::Fixed(s.readings.iter().cloned().collect()),
            },
            devices: vec![Some(i)],
            after: vec![None],
            fresh: args.server.devices_file.is_none(),
            track: true,
        })
        .collect();
    let start = scenarios
        .iter()
        .map(|s| s.window_start)
        .min()
        .unwrap_or(now);
    let end = scenarios
        .iter()
        .map(|s| s.sync_at.unwrap_or(s.window_end).max(s.window_end))
        .max()
        .unwrap_or(now);
    let pace = match args.mode {
        Mode::Live => Pace::Live,
        Mode::Backfill => Pace::Backfill,
        Mode::Accelerated => Pace::Accelerated(args.speed.max(1.0)),
    };
    let clock_start = scenarios.iter().map(|s| s.at - Duration::hours(1)).min();
    for s in &scenarios {
        eprintln!(
            "chronicle-sim: {} at {} ({} readings, {} expected alert(s))",
            s.kind,
            s.at.to_rfc3339(),
            s.readings.len(),
            s.assessment.firings.len()
        );
    }
    let plan = Plan {
        start,
        end: Some(end),
        pace,
        batch_readings: args.broker.max_readings_per_message,
        rate: None,
        clock_start,
        limits: limits(&args.broker),
        ack_timeout: std::time::Duration::from_secs(args.broker.ack_timeout_seconds),
        seed: args.seed,
        faults: FaultRates::none(),
        progress_every: None,
    };
    let stop = stop_on_signal();
    let report: PlayReport = Player::new(plan, play, credentials.len())
        .run(&fleet, &stop)
        .await;
    let reconciliation = fleet.reconcile();
    fleet.close().await;
    let late_after = Duration::minutes(args.late_after_minutes);
    let truth = GroundTruth {
        seed: args.seed,
        generated_at: Utc::now(),
        scenarios: scenarios
            .iter()
            .zip(&file.patients)
            .enumerate()
            .map(|(i, (s, p))| {
                s.truth(
                    &p.patient_id.map(|id| id.to_string()).unwrap_or_default(),
                    &p.devices[0].device_id,
                    report
                        .deliveries
                        .get(&i)
                        .map(Vec::as_slice)
                        .unwrap_or_default(),
                    late_after,
                    report.finished_at,
                )
            })
            .collect(),
    };
    write_json(&args.ground_truth, &serde_json::to_value(&truth)?)?;
    for t in &truth.scenarios {
        println!("{}: {}", t.scenario, t.description);
        for a in &t.expected_alerts {
            println!(
                "  expect {} ({}) between {} and {}{}",
                a.rule,
                a.severity,
                a.not_before.to_rfc3339(),
                a.not_after.to_rfc3339(),
                if a.live {
                    ", live"
                } else {
                    ", late (no live alarm)"
                }
            );
        }
    }
    print!("{}", reconciliation.render());
    if let Some(path) = &args.report_json {
        write_json(path, &json!({"reconciliation": reconciliation}))?;
    }
    Ok(exit_for(&reconciliation))
}

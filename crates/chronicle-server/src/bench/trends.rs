//! `chronicle bench trends`: trends at clinic scale.
//!
//! 1. A private PostgreSQL, `chronicle serve` as a child process, and a care team holding a
//!    grant for every simulated patient (type 2 diabetes with hypertension, each wearing a
//!    5-minute CGM and using a home cuff morning and evening).
//! 2. Load: the simulator's backfill of every patient, sent by their devices as backlog
//!    messages through MQTT and the real ingest, a wave of patients at a time; the server's
//!    trends consumer rolls the days up as they arrive. Then wait until the queue is empty.
//! 3. Measure, warm: the panel and one patient's trends over HTTP (what a client sees), and
//!    in-process the same reads through the rollups and, as the baseline measured in the same
//!    run, computed from the raw readings only. Storage per reading from the table sizes.

use super::fleet::{self, DevicePlan, Fleet, FleetOptions};
use super::server::{ServerUnderTest, http_get_as};
use super::{BenchReport, RunHeader, open_store, run_and_publish};
use crate::cli::{BenchTrendsArgs, DatabaseSettings};
use anyhow::{Context, bail};
use chronicle_domain::DeviceKind;
use chronicle_domain::sharing::AccessAction;
use chronicle_domain::sharing::{Access, AccessRequest, DataCategory, Grantee, Purpose, Role};
use chronicle_domain::trends::{bp_trend, glucose_trend};
use chronicle_embedded::PrivatePostgres;
use chronicle_sim::{CgmSpec, DeviceSpec, Persona, PersonaMix, Population, SimReading, batch_json};
use chronicle_storage::identity::{NewUser, TokenKind};
use chronicle_storage::sharing::NewGrant;
use chronicle_storage::trends::{DaySource, TrendDays};
use chronicle_storage::{DeviceCredentials, NewPatient, Store};
use chrono::{DateTime, DurationRound, Utc};
use serde::Serialize;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Requests before the measured ones, so caches and connections are warm.
const WARM_UP: usize = 20;
/// Different patients the per-patient trend is asked for, in turn.
const TREND_PATIENTS: usize = 20;
/// The raw-readings panel reads every reading of the period: slow, so measured few times.
const RAW_PANEL_SAMPLES: usize = 3;
/// The panel's period, as the API's default.
const PANEL_DAYS: u32 = 14;

pub async fn run(database: &DatabaseSettings, args: &BenchTrendsArgs) -> anyhow::Result<()> {
    run_and_publish(
        "trends",
        database,
        &args.run,
        async |_, work, postgres| measure(args, work, postgres).await,
        |run, measured| Report {
            run,
            patients: args.patients,
            days: args.days,
            measured,
        },
    )
    .await
}

/// A simulated patient as registered.
struct Registered {
    patient: chronicle_sim::Patient,
    id: Uuid,
    /// The credentials of each simulated device, in the patient's device order.
    devices: Vec<DeviceCredentials>,
}

/// Latencies of one kind of request, milliseconds.
#[derive(Debug, Clone, Serialize)]
struct Latency {
    samples: usize,
    p50_ms: f64,
    p95_ms: f64,
    max_ms: f64,
}

impl Latency {
    fn of(mut times: Vec<Duration>) -> Latency {
        times.sort_unstable();
        let ms = |q| fleet::quantile(&times, q).map_or(0.0, |d| d.as_secs_f64() * 1e3);
        Latency {
            samples: times.len(),
            p50_ms: ms(0.5),
            p95_ms: ms(0.95),
            max_ms: ms(1.0),
        }
    }
}

#[derive(Debug, Serialize)]
struct Measured {
    glucose_readings: i64,
    blood_pressure_readings: i64,
    load_seconds: f64,
    load_readings_per_second: f64,
    /// From the last backlog message's ack until the trends queue was empty.
    rollup_catch_up_seconds: f64,
    rollup_days: i64,
    /// 1-minute load average of the machine before loading, before measuring, at the end.
    load_average: [f64; 3],
    glucose_table_bytes: i64,
    blood_pressure_table_bytes: i64,
    rollup_bytes: i64,
    glucose_bytes_per_reading: f64,
    rollup_bytes_per_glucose_reading: f64,
    panel_http: Latency,
    glucose_trend_http: Latency,
    blood_pressure_trend_http: Latency,
    panel_rollups: Latency,
    panel_raw: Latency,
    glucose_trend_rollups: Latency,
    glucose_trend_raw: Latency,
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

async fn measure(
    args: &BenchTrendsArgs,
    work: &std::path::Path,
    postgres: &PrivatePostgres,
) -> anyhow::Result<Measured> {
    let load_before = load_average();
    let store = open_store(&postgres.database_url()).await?;
    println!("registering {} patients", args.patients);
    let (registered, token) = register(&store, args).await?;

    let server =
        ServerUnderTest::start(&postgres.database_url(), work, None, &args.run.serve_args).await?;
    let outcome = async {
        let started = Instant::now();
        let (sent, last_ack) = load(&server, &registered, args).await?;
        let load_seconds = last_ack.duration_since(started).as_secs_f64();
        println!("waiting for the trend rollups to catch up");
        let deadline = started + Duration::from_secs(args.timeout_seconds);
        loop {
            let waiting = store.pending_trend_work().await?;
            if waiting == 0 {
                break;
            }
            if Instant::now() > deadline {
                bail!("rollups not caught up: {waiting} items of work waiting");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let rollup_catch_up_seconds = last_ack.elapsed().as_secs_f64();
        let counts = store.trend_storage().await?;
        println!(
            "loaded {} glucose and {} blood-pressure readings ({sent} sent) in {load_seconds:.0} s; \
             rollups caught up {rollup_catch_up_seconds:.1} s after the last ack",
            counts.glucose_readings, counts.blood_pressure_readings
        );
        let load_measuring = load_average();
        let latencies = latencies(&store, server.http_addr(), &token, &registered, args).await?;
        let glucose = counts.glucose_readings.max(1) as f64;
        anyhow::Ok(Measured {
            glucose_readings: counts.glucose_readings,
            blood_pressure_readings: counts.blood_pressure_readings,
            load_seconds,
            load_readings_per_second: (counts.glucose_readings + counts.blood_pressure_readings)
                as f64
                / load_seconds.max(1e-9),
            rollup_catch_up_seconds,
            rollup_days: counts.glucose_days,
            load_average: [load_before, load_measuring, load_average()],
            glucose_table_bytes: counts.glucose_bytes,
            blood_pressure_table_bytes: counts.blood_pressure_bytes,
            rollup_bytes: counts.rollup_bytes,
            glucose_bytes_per_reading: counts.glucose_bytes as f64 / glucose,
            rollup_bytes_per_glucose_reading: counts.rollup_bytes as f64 / glucose,
            panel_http: latencies.panel_http,
            glucose_trend_http: latencies.glucose_trend_http,
            blood_pressure_trend_http: latencies.blood_pressure_trend_http,
            panel_rollups: latencies.panel_rollups,
            panel_raw: latencies.panel_raw,
            glucose_trend_rollups: latencies.glucose_trend_rollups,
            glucose_trend_raw: latencies.glucose_trend_raw,
        })
    }
    .await;
    let log_tail = server.log_tail();
    let measured = outcome.with_context(|| format!("server log:\n{log_tail}"))?;
    let status = server.terminate().await?;
    if !status.success() {
        tracing::warn!(%status, "chronicle serve did not exit cleanly");
    }
    store.close().await;
    Ok(measured)
}

/// Registers the simulated patients, their CGM and cuff, a clinician in a care team, and a
/// grant to the team for each patient. Returns the clinician's API token.
async fn register(
    store: &Store,
    args: &BenchTrendsArgs,
) -> anyhow::Result<(Vec<Registered>, String)> {
    let org = store.create_organization("Benchmark clinic").await?;
    let team = store.create_care_team(org.id, "Diabetes team").await?;
    let clinician = store
        .create_user(&NewUser {
            email: "clinician@bench.example".into(),
            display_name: "Benchmark clinician".into(),
            role: Role::Clinician,
            password_hash: None,
            patient_id: None,
        })
        .await?;
    store.add_team_member(team.id, clinician.id).await?;
    let token = store
        .issue_token(clinician.id, TokenKind::Api, Some("bench"), None)
        .await?
        .token;

    let population = Population::generate(
        args.seed,
        args.patients as usize,
        &PersonaMix::only(Persona::Type2Hypertension),
    );
    let mut registered = Vec::with_capacity(population.patients.len());
    for (i, patient) in population.patients.into_iter().enumerate() {
        // Everyone wears a CGM (a meter user gets one in the meter's unit) and keeps the cuff.
        let devices: Vec<DeviceSpec> = patient
            .devices
            .iter()
            .map(|d| match d {
                DeviceSpec::Meter(m) => DeviceSpec::Cgm(CgmSpec::fourteen_day(m.unit)),
                other => other.clone(),
            })
            .collect();
        let patient = patient
            .with_devices(devices)
            .context("a simulated patient's devices")?;
        let id = store
            .create_patient(&NewPatient {
                display_name: format!("Patient {i:04}"),
                time_zone: patient.zone.name.clone(),
            })
            .await?
            .id;
        let mut credentials = Vec::with_capacity(patient.devices.len());
        for device in &patient.devices {
            let kind = match device {
                DeviceSpec::Cgm(_) => DeviceKind::Cgm,
                DeviceSpec::Meter(_) => DeviceKind::Meter,
                DeviceSpec::Cuff(_) => DeviceKind::Bp,
            };
            credentials.push(store.create_device(id, kind, Some("bench")).await?.1);
        }
        store
            .create_grant(&NewGrant {
                patient_id: id,
                grantee: Grantee::CareTeam(team.id),
                categories: [DataCategory::Glucose, DataCategory::BloodPressure].into(),
                access: [Access::ViewReadings].into(),
                purpose: Purpose::Care,
                data_since: None,
                expires_at: None,
                created_by: None,
            })
            .await?;
        registered.push(Registered {
            patient,
            id,
            devices: credentials,
        });
    }
    Ok((registered, token))
}

/// Simulates and sends every patient's history, a wave at a time. Returns the readings sent
/// and when the last ack arrived.
async fn load(
    server: &ServerUnderTest,
    registered: &[Registered],
    args: &BenchTrendsArgs,
) -> anyhow::Result<(usize, Instant)> {
    let end = Utc::now()
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap_or_else(|_| Utc::now());
    let start = end - chrono::Duration::days(i64::from(args.days));
    let options = FleetOptions {
        port: server.mqtt_port(),
        window: 4,
        expect_stored: false,
        timeout: Duration::from_secs(args.timeout_seconds),
    };
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let per_message = args.readings_per_message as usize;
    let waves = registered.chunks(args.wave as usize);
    let count = waves.len();
    let began = Instant::now();
    let mut sent = 0;
    let mut last_ack = began;
    for (w, wave) in waves.enumerate() {
        let patients: Vec<chronicle_sim::Patient> =
            wave.iter().map(|r| r.patient.clone()).collect();
        let readings = tokio::task::spawn_blocking(move || simulate(patients, start, end, threads))
            .await
            .context("the simulator failed")?;
        let mut plans = Vec::new();
        for (registered, readings) in wave.iter().zip(readings) {
            for (index, credentials) in registered.devices.iter().enumerate() {
                let own: Vec<&SimReading> =
                    readings.iter().filter(|r| r.device() == index).collect();
                sent += own.len();
                let payloads = own
                    .chunks(per_message)
                    .enumerate()
                    .map(|(i, chunk)| {
                        batch_json(Some(&i.to_string()), chunk.iter().copied())
                            .to_string()
                            .into_bytes()
                    })
                    .collect();
                plans.push(DevicePlan {
                    device_id: credentials.id.as_str().to_owned(),
                    secret: credentials.secret.clone(),
                    payloads,
                    readings_per_message: per_message,
                });
            }
        }
        let run = Fleet::connect(plans, &options).await?.run().await?;
        last_ack = Instant::now();
        println!(
            "wave {}/{count}: {} messages; {sent} readings sent in {:.0} s ({:.0} readings/s)",
            w + 1,
            run.messages,
            began.elapsed().as_secs_f64(),
            sent as f64 / began.elapsed().as_secs_f64()
        );
    }
    Ok((sent, last_ack))
}

/// Every patient's readings over `[start, end)`, in the patients' order.
fn simulate(
    patients: Vec<chronicle_sim::Patient>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    threads: usize,
) -> Vec<Vec<SimReading>> {
    let population = Population { seed: 0, patients };
    let out = std::sync::Mutex::new(vec![Vec::new(); population.patients.len()]);
    population.simulate(start, end, threads, |patient, readings| {
        if let Some(i) = population
            .patients
            .iter()
            .position(|p| p.index == patient.index)
            && let Ok(mut out) = out.lock()
        {
            out[i] = readings;
        }
    });
    out.into_inner().unwrap_or_default()
}

struct Latencies {
    panel_http: Latency,
    glucose_trend_http: Latency,
    blood_pressure_trend_http: Latency,
    panel_rollups: Latency,
    panel_raw: Latency,
    glucose_trend_rollups: Latency,
    glucose_trend_raw: Latency,
}

/// Times `n` calls after `WARM_UP` unmeasured ones; call `i` gets `i`.
async fn timed<F, Fut>(n: usize, warm_up: usize, mut call: F) -> anyhow::Result<Latency>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for i in 0..warm_up {
        call(i).await?;
    }
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let began = Instant::now();
        call(i).await?;
        times.push(began.elapsed());
    }
    Ok(Latency::of(times))
}

async fn latencies(
    store: &Store,
    http: SocketAddr,
    token: &str,
    registered: &[Registered],
    args: &BenchTrendsArgs,
) -> anyhow::Result<Latencies> {
    let n = args.samples as usize;
    let patients = args.patients as usize;
    let trend_patients: Vec<Uuid> = registered
        .iter()
        .take(TREND_PATIENTS)
        .map(|r| r.id)
        .collect();
    let get = |path: String| async move {
        let (status, body) = http_get_as(http, &path, Some(token)).await?;
        if status != 200 {
            bail!("GET {path} answered {status}: {body}");
        }
        anyhow::Ok(body)
    };

    println!("measuring the panel over HTTP");
    let first = get("/v1/panel?limit=50".into()).await?;
    let listed = serde_json::from_str::<serde_json::Value>(&first)?["total"].as_u64();
    if listed != Some(patients as u64) {
        bail!("the panel lists {listed:?} patients, expected {patients}");
    }
    let panel_http = timed(n, WARM_UP, |_| async {
        get("/v1/panel?limit=50".into()).await.map(drop)
    })
    .await?;
    println!("measuring one patient's {}-day trends over HTTP", args.days);
    let days = args.days;
    let glucose_trend_http = timed(n, WARM_UP, |i| {
        let id = trend_patients[i % trend_patients.len()];
        let get = &get;
        async move {
            get(format!("/v1/patients/{id}/trends/glucose?days={days}"))
                .await
                .map(drop)
        }
    })
    .await?;
    let blood_pressure_trend_http = timed(n, WARM_UP, |i| {
        let id = trend_patients[i % trend_patients.len()];
        let get = &get;
        async move {
            get(format!(
                "/v1/patients/{id}/trends/blood-pressure?days={days}"
            ))
            .await
            .map(drop)
        }
    })
    .await?;

    println!("measuring in-process: rollups and the raw-readings baseline");
    let principal = store
        .principal_for_token(token)
        .await?
        .context("the benchmark's token")?;
    let mut permits = Vec::new();
    for id in &trend_patients {
        let permit = store
            .authorize(
                &principal,
                AccessRequest {
                    patient_id: *id,
                    category: DataCategory::Glucose,
                    access: Access::ViewTrends,
                    at: Utc::now(),
                    identified: true,
                },
                AccessAction::ReadGlucoseTrend,
            )
            .await?
            .map_err(|reason| anyhow::anyhow!("no permit: {}", reason.as_str()))?;
        permits.push(permit);
    }
    let trend_from = |source: DaySource| {
        let permits = &permits;
        move |i: usize| {
            let permit = permits[i % permits.len()];
            async move {
                let (_, window, days) = store
                    .glucose_trend_days(&permit, TrendDays::Last(days), Utc::now(), source)
                    .await?;
                std::hint::black_box(glucose_trend(&window, &days, 15));
                anyhow::Ok(())
            }
        }
    };
    let glucose_trend_rollups = timed(n, WARM_UP, trend_from(DaySource::Rollups)).await?;
    let glucose_trend_raw = timed(n.min(30), 3, trend_from(DaySource::Raw)).await?;
    let panel_from = |source: DaySource| {
        let principal = &principal;
        move |_| async move {
            let rows = store
                .panel(principal, PANEL_DAYS, Utc::now(), source)
                .await?;
            std::hint::black_box(rows.len());
            anyhow::Ok(())
        }
    };
    let panel_rollups = timed(n, WARM_UP, panel_from(DaySource::Rollups)).await?;
    let panel_raw = timed(RAW_PANEL_SAMPLES, 1, panel_from(DaySource::Raw)).await?;
    // The blood-pressure trend's domain step, so it is exercised in-process too.
    if let Ok(permit) = store
        .authorize(
            &principal,
            AccessRequest {
                patient_id: trend_patients[0],
                category: DataCategory::BloodPressure,
                access: Access::ViewTrends,
                at: Utc::now(),
                identified: true,
            },
            AccessAction::ReadGlucoseTrend,
        )
        .await?
    {
        let (_, window, days) = store
            .blood_pressure_trend_days(
                &permit,
                TrendDays::Last(days),
                Utc::now(),
                DaySource::Rollups,
            )
            .await?;
        std::hint::black_box(bp_trend(&window, &days));
    }
    Ok(Latencies {
        panel_http,
        glucose_trend_http,
        blood_pressure_trend_http,
        panel_rollups,
        panel_raw,
        glucose_trend_rollups,
        glucose_trend_raw,
    })
}

#[derive(Debug, Serialize)]
struct Report {
    #[serde(flatten)]
    run: RunHeader,
    patients: u32,
    days: u32,
    measured: Measured,
}

impl BenchReport for Report {
    fn text(&self) -> String {
        let m = &self.measured;
        let mut out = self.run.title("trends");
        out += &format!(
            "load average (1 min): {:.2} before loading, {:.2} before measuring, {:.2} at the end\n\n",
            m.load_average[0], m.load_average[1], m.load_average[2]
        );
        out += &format!(
            "data: {} patients × {} days: {} glucose and {} blood-pressure readings, {} glucose day rollups\n\
             load through MQTT and the ingest: {:.0} s ({:.0} readings/s); rollups caught up {:.1} s after the last ack\n\
             storage: glucose_readings {:.1} MiB ({:.0} bytes/reading), blood_pressure_readings {:.1} MiB, \
             rollups {:.1} MiB ({:.1} bytes per glucose reading)\n\n",
            self.patients,
            self.days,
            m.glucose_readings,
            m.blood_pressure_readings,
            m.rollup_days,
            m.load_seconds,
            m.load_readings_per_second,
            m.rollup_catch_up_seconds,
            m.glucose_table_bytes as f64 / 1048576.0,
            m.glucose_bytes_per_reading,
            m.blood_pressure_table_bytes as f64 / 1048576.0,
            m.rollup_bytes as f64 / 1048576.0,
            m.rollup_bytes_per_glucose_reading,
        );
        out += &format!(
            "{:<58} {:>7} {:>9} {:>9} {:>9} {:>8}\n",
            "warm latency", "samples", "p50 ms", "p95 ms", "max ms", "target"
        );
        let rows = [
            ("panel, HTTP (rollups)", &m.panel_http, "<= 100"),
            ("  panel, in-process (rollups)", &m.panel_rollups, ""),
            (
                "  panel, in-process from raw readings (baseline)",
                &m.panel_raw,
                "",
            ),
            (
                "one patient's glucose trend, HTTP (rollups)",
                &m.glucose_trend_http,
                "<= 30",
            ),
            (
                "  glucose trend, in-process (rollups)",
                &m.glucose_trend_rollups,
                "",
            ),
            (
                "  glucose trend, in-process from raw readings (baseline)",
                &m.glucose_trend_raw,
                "",
            ),
            (
                "one patient's blood-pressure trend, HTTP (rollups)",
                &m.blood_pressure_trend_http,
                "",
            ),
        ];
        for (name, l, target) in rows {
            out += &format!(
                "{:<58} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>8}\n",
                name, l.samples, l.p50_ms, l.p95_ms, l.max_ms, target
            );
        }
        let verdict = |met: bool| if met { "met" } else { "MISSED" };
        out += &format!(
            "\npanel p95 {:.1} ms (target <= 100 ms: {}); {}-day glucose trend p95 {:.1} ms (target <= 30 ms: {})\n",
            m.panel_http.p95_ms,
            verdict(m.panel_http.p95_ms <= 100.0),
            self.days,
            m.glucose_trend_http.p95_ms,
            verdict(m.glucose_trend_http.p95_ms <= 30.0)
        );
        out
    }
}

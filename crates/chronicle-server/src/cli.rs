//! Command line, environment and configuration file, merged into typed settings.
//!
//! Every setting can be given three ways; a flag overrides the environment variable, which
//! overrides the file. File keys are the flag names with `_` for `-` (`--http-addr` is
//! `http_addr = "..."`), all at the top level of the TOML file.

use anyhow::Context;
use chronicle_domain::sharing::Role;
use chronicle_domain::wire::DEFAULT_MAX_AGE_DAYS;
use chronicle_domain::{DeviceId, DeviceKind, GatewayId, topics};
use chronicle_storage::{TimescaleMode, TimescaleSettings};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(
    name = "chronicle",
    version,
    about = "Chronicle: remote monitoring of diabetes and high blood pressure",
    long_about = "Chronicle: remote monitoring of diabetes and high blood pressure.\n\n\
        Devices publish readings over MQTT; Chronicle validates and stores them in PostgreSQL \
        (TimescaleDB when installed). With no database URL it runs a private PostgreSQL in the \
        data directory; with no MQTT URL it runs an embedded broker.\n\n\
        Every setting is a flag, an environment variable (shown as [env: ...]) or a key of the \
        TOML file given with --config (the flag name with '_' for '-'). Flags override the \
        environment, which overrides the file."
)]
pub struct Cli {
    /// TOML configuration file with any of the settings below, e.g. `http_addr = "0.0.0.0:8080"`.
    #[arg(long, short = 'c', env = "CHRONICLE_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the ingest (MQTT) and the HTTP API in one process until SIGINT or SIGTERM.
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations (and TimescaleDB hypertables when available), then exit.
    Migrate,
    /// Manage patients.
    #[command(subcommand)]
    Patient(PatientCommand),
    /// Manage devices and their MQTT credentials.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Manage gateways: one MQTT identity relaying for several devices (a phone app, a home
    /// hub, a clinic's bedside gateway, the simulator's load mode).
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// Manage the identities Chronicle's own ingest uses on an external broker.
    #[command(subcommand, name = "ingest-account")]
    IngestAccount(IngestAccountCommand),
    /// TLS certificates for a clinic or lab.
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Manage user accounts, guardians and API tokens.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage organizations (clinics).
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage care teams and their members.
    #[command(subcommand)]
    Team(TeamCommand),
    /// Run `chronicle serve` with a demo clinic in it: clinicians, ~20 simulated patients
    /// with 14 days of history backfilled over MQTT, and their devices live until Ctrl-C.
    ///
    /// Takes every `serve` setting. Prints the dashboard URL and the demo log-ins. The clinic
    /// and its device secrets are kept in DATA_DIR/demo.json, so running it again finds the
    /// clinic and only fills the gap since the last run.
    Demo(Box<DemoArgs>),
    /// Measure performance on this machine, with its own PostgreSQL, broker and server.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `chronicle demo`: serve's settings and the demo's size.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Demo patients (of mixed personas) on the first run; more on a later run adds patients.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub patients: u32,
    /// Days of history to backfill (on later runs: at most this far back to fill the gap).
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u32).range(0..=365))]
    pub backfill_days: u32,
    /// Seed of the simulated patients (the same seed gives the same patients and readings).
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Ingest throughput and latency end to end, next to ceilings measured in the same run:
    /// the broker passing the same messages to a subscriber that stores nothing, and a raw
    /// COPY of the same rows into the same table.
    ///
    /// Starts a private PostgreSQL in a fresh directory under /tmp (from the server binaries
    /// found as for `serve`; --postgres-bin-dir applies) and `chronicle serve` with its
    /// defaults as a child process; --database-url is not used. See docs/benchmarks.md.
    Ingest(BenchIngestArgs),
    /// Alert latency: publish of a reading that raises an alarm to the alert event on a care
    /// team member's live stream (SSE), at 10 % of the ingest capacity measured in the same
    /// run. Runs its own PostgreSQL and `chronicle serve`, like `bench ingest`. See
    /// docs/benchmarks.md.
    Alerts(BenchAlertsArgs),
    /// Trends at clinic scale: loads simulated patients (5-minute CGM and home blood pressure)
    /// through `chronicle serve`'s ingest, waits for the trend rollups, then measures the warm
    /// latency of the patient panel and of one patient's trend over HTTP, next to the same
    /// reads computed from raw readings, and the storage per reading.
    ///
    /// Runs its own PostgreSQL and server like `bench ingest`. See docs/benchmarks.md.
    Trends(BenchTrendsArgs),
    /// A fleet at real cadence: N patients' CGMs (one reading every 5 minutes, phases spread
    /// evenly) with meters and cuffs, registered in bulk and relayed by gateways over a few
    /// MQTT connections, plus probe patients whose alarms are timed to the alert stream.
    /// Reports steady-state throughput, ingest and alert-evaluation lag, memory, CPU and
    /// storage growth, then stops the server for a while under continued publishing and
    /// reports how fast the backlog drains and whether anything was lost.
    ///
    /// Runs its own PostgreSQL and server like `bench ingest`. See docs/benchmarks.md.
    Fleet(BenchFleetArgs),
}

/// Sizes of `chronicle bench fleet`. The defaults are the target (a million patients,
/// 5 minutes of warm-up, 10 steady, a 10-minute outage: well over 30 minutes); use fewer
/// while developing.
#[derive(Debug, Clone, Args)]
pub struct BenchFleetArgs {
    /// Patients, each wearing a CGM that sends one reading every 5 minutes.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub patients: u64,

    /// Percentage of the patients who also check with a finger-stick meter, twice a day.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub meter_percent: u8,

    /// Percentage of the patients who also measure their blood pressure at home, twice a day.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub cuff_percent: u8,

    /// MQTT connections the devices are relayed over, each a registered gateway.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections: u32,

    /// Probe patients whose alarms are timed from publish to the alert stream.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub probes: u32,

    /// Time between two probe alarms (the probes take turns), in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(20..=60_000))]
    pub probe_interval_ms: u64,

    /// Minutes the devices publish before the steady state is measured. The default, one CGM
    /// period, has every patient's first reading of the run (a new rollup day, an alert
    /// window read cold) stored before the measurement, as on a node that has been running;
    /// 0 measures from the first reading.
    #[arg(long, default_value_t = 5.0, value_parser = parse_minutes)]
    pub warm_up_minutes: f64,

    /// Minutes of steady state measured (fractions allowed, e.g. 0.2 for a quick check).
    #[arg(long, default_value_t = 10.0, value_parser = parse_minutes)]
    pub steady_minutes: f64,

    /// Minutes the server is stopped while the gateways keep publishing into the ingest's
    /// persistent session on Mosquitto; 0 skips the catch-up phase. Needs `--broker
    /// mosquitto`: the embedded broker stops with the server.
    #[arg(long, default_value_t = 10.0, value_parser = parse_minutes)]
    pub catch_up_minutes: f64,

    /// `mosquitto` (an external, anonymous Mosquitto that queues without limit for the
    /// ingest's session, started for the run) or `embedded` (the server's own broker; no
    /// catch-up phase then).
    #[arg(long, value_enum, default_value_t = BenchBroker::Mosquitto)]
    pub broker: BenchBroker,

    /// `chronicle serve` processes that ingest. 1: one process does everything, as the
    /// README starts it. More (Mosquitto, no catch-up phase): that many ingest-only processes
    /// (`--followup-work false`) on one shared subscription, plus one process doing the
    /// follow-up work and the HTTP API (`--ingest false`), as docs/scaling.md describes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub ingest_processes: u32,

    /// Give up if registration, or the drain after the outage, takes longer than this.
    #[arg(long, default_value_t = 1800)]
    pub timeout_seconds: u64,

    #[command(flatten)]
    pub run: BenchRunArgs,
}

/// What every benchmark run shares: the server's flags, where the results go, what is kept.
#[derive(Debug, Clone, Args)]
pub struct BenchRunArgs {
    /// A flag for the server under test, e.g. `--serve-arg=--batch-linger-ms=5`; repeat for
    /// several. Without it the server runs with its defaults, whatever CHRONICLE_* variables
    /// are set (only CHRONICLE_LOG is passed on).
    #[arg(long = "serve-arg", value_name = "FLAG", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,

    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Keep the temporary directory (PostgreSQL and server logs) and print where it is.
    #[arg(long)]
    pub keep: bool,

    /// Also load pg_stat_statements into the benchmark's PostgreSQL and print, after the
    /// report, the statements that took the most of its time over the whole run (the
    /// server's, the benchmark's own setup and checks included).
    #[arg(long)]
    pub statements: bool,
}

/// Sizes of `chronicle bench alerts`. The defaults finish in about a minute on two cores.
#[derive(Debug, Clone, Args)]
pub struct BenchAlertsArgs {
    /// Background devices, one patient each: they measure the capacity, then carry the
    /// background load.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub devices: u32,

    /// One-reading messages each background device sends to measure the capacity.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub capacity_messages: u32,

    /// Alarms the probe device raises during the latency phase.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub probes: u32,

    /// Time between two alarms of the probe device, in milliseconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(20..=60_000))]
    pub probe_interval_ms: u64,

    /// `embedded` (the server's own broker) or `mosquitto` (an external Mosquitto started
    /// for the run).
    #[arg(long, value_enum, default_value_t = BenchBroker::Embedded)]
    pub broker: BenchBroker,

    /// Give up on a phase that has not finished after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_seconds: u64,

    #[command(flatten)]
    pub run: BenchRunArgs,
}

/// Sizes of `chronicle bench trends`. The defaults are the clinic-scale target (about an hour
/// of loading on two cores); use fewer --patients or --days while developing.
#[derive(Debug, Clone, Args)]
pub struct BenchTrendsArgs {
    /// Simulated patients, each with a CGM and a blood-pressure cuff.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub patients: u32,

    /// Days of history per patient, ending now.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=366))]
    pub days: u32,

    /// The simulator's seed: the same seed loads the same readings.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Patients loaded at a time (their devices send their backlog together).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub wave: u32,

    /// Readings per backlog message.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub readings_per_message: u32,

    /// Measured requests per figure (after as many warm-up requests).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub samples: u32,

    /// Give up if loading and rolling up take longer than this many seconds.
    #[arg(long, default_value_t = 14_400)]
    pub timeout_seconds: u64,

    #[command(flatten)]
    pub run: BenchRunArgs,
}

/// Sizes of `chronicle bench ingest`. The defaults finish in about two minutes on two cores.
#[derive(Debug, Clone, Args)]
pub struct BenchIngestArgs {
    /// Devices sending one reading per message, each on its own MQTT connection: many small
    /// publishers are the load the one-reading-per-message path is built for.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub devices: u32,

    /// One-reading messages each of those devices sends. Enough that the one-reading phases
    /// last some seconds on a fast machine: shorter, a pause of the machine moves their ratio
    /// by many points.
    #[arg(long, default_value_t = 2500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub messages_per_device: u32,

    /// Messages a device may have sent without having their ack yet. A device sends as fast as
    /// acks allow within this window, as a real device draining its backlog would.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub window: u32,

    /// Devices sending batch messages.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch_devices: u32,

    /// Batch messages in all, spread evenly over --batch-devices.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_messages: u32,

    /// Readings per batch message; also the rows per COPY of the COPY ceiling. At most the
    /// server's --max-readings-per-message (5000 by default).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub readings_per_batch: u32,

    /// The broker the devices, the broker-only ceiling and the server use: `embedded` (the
    /// server's own broker, as `chronicle serve` runs by default) or `mosquitto` (an external
    /// Mosquitto with docs/protocol.md's throughput settings, anonymous, started for the run;
    /// its CPU time counts as "other").
    #[arg(long, value_enum, default_value_t = BenchBroker::Embedded)]
    pub broker: BenchBroker,

    /// COPY streams at once in the COPY ceiling: match the server's
    /// --batch-concurrent-commits (2 by default) when you change it with --serve-arg.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub copy_connections: u32,

    /// Give up on a phase that has not finished after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_seconds: u64,

    #[command(flatten)]
    pub run: BenchRunArgs,
}

/// A duration in minutes for the benchmarks: 0 to 1440, fractions allowed.
fn parse_minutes(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(minutes) if (0.0..=1440.0).contains(&minutes) => Ok(minutes),
        _ => Err(format!(
            "{text:?} is not a number of minutes from 0 to 1440"
        )),
    }
}

/// The broker `chronicle bench ingest` measures with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchBroker {
    Embedded,
    Mosquitto,
}

impl BenchBroker {
    pub fn name(self) -> &'static str {
        match self {
            BenchBroker::Embedded => "embedded",
            BenchBroker::Mosquitto => "mosquitto (external)",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. Without --password-stdin a random password is generated and printed once.
    Add {
        /// Log-in e-mail (unique, any case).
        #[arg(long)]
        email: String,
        /// The name others see.
        #[arg(long)]
        name: String,
        /// patient, clinician, caregiver, researcher or admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// For a patient user: the patient record they are (from `chronicle patient add`).
        #[arg(long)]
        patient: Option<Uuid>,
        /// Read the password from the first line of standard input (at least 12 characters and
        /// not easy to guess).
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
    },
    /// Name a user guardian of a patient: they act as the patient (grants, access log, devices).
    Guardian {
        #[arg(long)]
        patient: Uuid,
        #[arg(long)]
        user: Uuid,
    },
    /// Issue an API token for an integration (shown once; only its hash is stored).
    Token {
        #[arg(long)]
        user: Uuid,
        /// What the token is for.
        #[arg(long)]
        label: Option<String>,
        /// Expire after this many days, at most 365. [default: 90]
        #[arg(long)]
        expires_days: Option<u32>,
    },
    /// Disable a user (off-boarding): they cannot log in, and every session and API token of
    /// theirs is revoked at once.
    Disable {
        #[arg(long)]
        user: Uuid,
    },
    /// Enable a disabled user again (the tokens revoked when it was disabled stay revoked).
    Enable {
        #[arg(long)]
        user: Uuid,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization and print its id.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Create a care team in an organization and print its id.
    Add {
        #[arg(long)]
        org: Uuid,
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Add a user to a care team (grants to the team apply to them from their next request).
    AddMember {
        #[arg(long)]
        team: Uuid,
        #[arg(long)]
        user: Uuid,
    },
    /// Remove a user from a care team (grants to the team stop applying at once).
    RemoveMember {
        #[arg(long)]
        team: Uuid,
        #[arg(long)]
        user: Uuid,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| {
        format!("unknown role {s:?}: expected patient, clinician, caregiver, researcher or admin")
    })
}

#[derive(Debug, Subcommand)]
pub enum PatientCommand {
    /// Register a patient and print their id.
    Add {
        /// The name the care team sees.
        #[arg(long)]
        name: String,
        /// IANA time zone used for days and times of day in trends, e.g. Europe/Berlin.
        #[arg(long, default_value = "UTC", value_parser = parse_zone_name)]
        time_zone: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List patients.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Register many patients and their devices at once (a fleet, a simulator's population).
    ///
    /// Reads one JSON object per line from standard input,
    /// `{"name": "...", "time_zone": "Asia/Kolkata", "devices": [{"kind": "cgm", "label": "..."}]}`
    /// (`time_zone` defaults to UTC, `label` is optional), and prints one JSON object per line
    /// for each: `{"patient_id", "name", "time_zone", "devices": [{"device_id", "kind",
    /// "mqtt_password"}]}`. Device secrets are shown this once.
    Import,
    /// Move a patient to another time zone; their trends are recomputed in the new zone.
    SetTimeZone {
        /// The patient's id.
        #[arg(long)]
        patient: Uuid,
        /// IANA time zone, e.g. America/New_York.
        #[arg(long, value_parser = parse_zone_name)]
        time_zone: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Register a device for a patient and print its id and MQTT credentials (shown once).
    Add {
        /// The patient's id (from `chronicle patient add`).
        #[arg(long)]
        patient: Uuid,
        /// What the device measures.
        #[arg(long, value_parser = parse_kind)]
        kind: DeviceKind,
        /// A free-text label, e.g. the model or serial number.
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List devices, optionally of one patient.
    List {
        #[arg(long)]
        patient: Option<Uuid>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a device: its credentials stop working, its connections are dropped, it leaves
    /// every gateway, and its messages are refused.
    Revoke {
        /// The device id.
        #[arg(value_parser = parse_device_id)]
        device: DeviceId,
    },
    /// Give a device a new secret (shown once); the old one stops working and its
    /// connections are dropped.
    RotateSecret {
        /// The device id.
        #[arg(value_parser = parse_device_id)]
        device: DeviceId,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Register a gateway and print its id and MQTT credentials (shown once).
    Add {
        /// The patient whose own gateway it is (their phone app, a home hub): it can relay
        /// only their devices. Without it, a clinic's or an operator's gateway.
        #[arg(long)]
        patient: Option<Uuid>,
        /// A free-text label, e.g. "Ada's phone".
        #[arg(long)]
        label: Option<String>,
        /// A device it relays; repeat for several.
        #[arg(long = "device", value_parser = parse_device_id)]
        devices: Vec<DeviceId>,
        #[arg(long)]
        json: bool,
    },
    /// List gateways and the devices they relay, optionally of one patient.
    List {
        #[arg(long)]
        patient: Option<Uuid>,
        #[arg(long)]
        json: bool,
    },
    /// Let a gateway relay more devices.
    Attach {
        #[arg(value_parser = parse_gateway_id)]
        gateway: GatewayId,
        #[arg(value_parser = parse_device_id, required = true)]
        devices: Vec<DeviceId>,
    },
    /// Stop a gateway relaying devices; its next message for them is refused.
    Detach {
        #[arg(value_parser = parse_gateway_id)]
        gateway: GatewayId,
        #[arg(value_parser = parse_device_id, required = true)]
        devices: Vec<DeviceId>,
    },
    /// Revoke a gateway: its credentials stop working and its connections are dropped.
    Revoke {
        #[arg(value_parser = parse_gateway_id)]
        gateway: GatewayId,
    },
}

#[derive(Debug, Subcommand)]
pub enum IngestAccountCommand {
    /// Register an account for one `chronicle serve` process on an external broker and print
    /// its password (shown once). Each process of a shared subscription needs its own.
    Add {
        /// The account's name, also its MQTT username and client id, e.g. ingest-1.
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List ingest accounts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke an ingest account; an external Mosquitto drops its connection.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Make a private certificate authority and a server certificate signed by it, for HTTPS
    /// and MQTT over TLS: ca.pem (give it to devices and browsers), ca-key.pem (keep it
    /// offline), server.pem and server-key.pem (for --tls-cert and --tls-key).
    Init {
        /// Where to write the files; existing files are never overwritten.
        #[arg(long)]
        dir: PathBuf,
        /// A host name or IP address devices and browsers use to reach the server; repeat for
        /// several. [default: localhost and 127.0.0.1]
        #[arg(long = "name")]
        names: Vec<String>,
        /// How long the server certificate is valid. [default: 825]
        #[arg(long, default_value_t = 825)]
        days: u32,
        /// The organization named in the certificates.
        #[arg(long, default_value = "Chronicle")]
        organization: String,
    },
}

fn parse_zone_name(s: &str) -> Result<String, String> {
    chronicle_domain::zone::parse_time_zone(s)
        .map(|_| s.to_owned())
        .map_err(|e| e.to_string())
}

fn parse_kind(s: &str) -> Result<DeviceKind, String> {
    s.parse()
        .map_err(|e: chronicle_domain::device::UnknownDeviceKind| e.to_string())
}

fn parse_device_id(s: &str) -> Result<DeviceId, String> {
    DeviceId::parse(s).map_err(|e| e.to_string())
}

fn parse_gateway_id(s: &str) -> Result<GatewayId, String> {
    GatewayId::parse(s).map_err(|e| e.to_string())
}

/// Where the database is. Shared by every subcommand.
#[derive(Debug, Clone, Default, Args, Deserialize)]
pub struct DatabaseArgs {
    /// PostgreSQL URL (postgres://user:password@host:port/db). Without it, Chronicle runs a
    /// private PostgreSQL in the data directory, from the installed server binaries.
    #[arg(
        long,
        env = "CHRONICLE_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// Directory for Chronicle's own state (the private PostgreSQL cluster lives in
    /// DATA_DIR/postgres). [default: ./chronicle-data; as root, /var/lib/chronicle when the
    /// postgres account cannot reach the current directory]
    #[arg(long, env = "CHRONICLE_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// Directory holding the PostgreSQL server binaries (initdb, postgres) for the private
    /// database. [default: search PATH, then /usr/lib/postgresql/*/bin]
    #[arg(long, env = "CHRONICLE_POSTGRES_BIN_DIR", global = true)]
    pub postgres_bin_dir: Option<PathBuf>,

    /// TCP port of the private PostgreSQL on 127.0.0.1. [default: a free port]
    #[arg(long, env = "CHRONICLE_POSTGRES_PORT", global = true)]
    pub postgres_port: Option<u16>,

    /// Database connection pool size. [default: 10]
    #[arg(long, env = "CHRONICLE_DATABASE_MAX_CONNECTIONS", global = true)]
    pub database_max_connections: Option<u32>,

    /// Use TimescaleDB hypertables: auto (when the extension is installed), required, or off.
    /// [default: auto]
    #[arg(long, env = "CHRONICLE_TIMESCALE", global = true)]
    pub timescale: Option<TimescaleMode>,

    /// TimescaleDB chunk width in days. [default: 7]
    #[arg(long, env = "CHRONICLE_TIMESCALE_CHUNK_DAYS", global = true)]
    pub timescale_chunk_days: Option<u32>,

    /// Compress TimescaleDB chunks older than this many days; 0 disables compression.
    /// [default: 30]
    #[arg(long, env = "CHRONICLE_TIMESCALE_COMPRESS_AFTER_DAYS", global = true)]
    pub timescale_compress_after_days: Option<u32>,

    /// Drop readings older than this many days (TimescaleDB retention policy); 0 keeps them
    /// forever. [default: 0]
    #[arg(long, env = "CHRONICLE_TIMESCALE_RETAIN_DAYS", global = true)]
    pub timescale_retain_days: Option<u32>,
}

/// `./chronicle-data`, unless PostgreSQL (run as the `postgres` account when Chronicle runs
/// as root) could not reach it, as in a clone under `/root`: then `/var/lib/chronicle`.
fn default_data_dir() -> PathBuf {
    let local = PathBuf::from("chronicle-data");
    if chronicle_embedded::data_dir_is_usable(&local) {
        local
    } else {
        PathBuf::from("/var/lib/chronicle")
    }
}

/// Database settings after merging flags, environment and file.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: Option<String>,
    pub data_dir: PathBuf,
    pub postgres_bin_dir: Option<PathBuf>,
    pub postgres_port: Option<u16>,
    pub max_connections: u32,
    pub timescale: TimescaleSettings,
}

impl DatabaseArgs {
    pub fn merged_with(&self, file: &FileConfig) -> DatabaseSettings {
        let f = &file.database;
        let nonzero = |days: u32| (days > 0).then_some(days);
        DatabaseSettings {
            url: self.database_url.clone().or_else(|| f.database_url.clone()),
            data_dir: self
                .data_dir
                .clone()
                .or_else(|| f.data_dir.clone())
                .unwrap_or_else(default_data_dir),
            postgres_bin_dir: self
                .postgres_bin_dir
                .clone()
                .or_else(|| f.postgres_bin_dir.clone()),
            postgres_port: self.postgres_port.or(f.postgres_port),
            max_connections: self
                .database_max_connections
                .or(f.database_max_connections)
                .unwrap_or(10),
            timescale: TimescaleSettings {
                mode: self.timescale.or(f.timescale).unwrap_or_default(),
                chunk_days: self
                    .timescale_chunk_days
                    .or(f.timescale_chunk_days)
                    .unwrap_or(7),
                compress_after_days: nonzero(
                    self.timescale_compress_after_days
                        .or(f.timescale_compress_after_days)
                        .unwrap_or(30),
                ),
                retain_days: nonzero(
                    self.timescale_retain_days
                        .or(f.timescale_retain_days)
                        .unwrap_or(0),
                ),
            },
        }
    }
}

/// Settings of `chronicle serve`.
#[derive(Debug, Clone, Default, Args, Deserialize)]
pub struct ServeArgs {
    /// Address of the HTTP API and dashboard. [default: 127.0.0.1:8080]
    #[arg(long, env = "CHRONICLE_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,

    /// Certificate chain (PEM, the server's certificate first) for HTTPS and for the
    /// embedded broker's TLS listener. `chronicle tls init` makes one for a clinic or lab.
    #[arg(long, env = "CHRONICLE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "CHRONICLE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve HTTP or MQTT without TLS on an address other than loopback, or reach an external
    /// broker over the network without TLS. Refused unless set: readings, secrets and tokens
    /// would cross the network in clear (set it when a TLS proxy in front does TLS).
    /// [default: false]
    #[arg(long, env = "CHRONICLE_ALLOW_PLAINTEXT", value_name = "BOOL")]
    pub allow_plaintext: Option<bool>,

    /// External MQTT broker, mqtt://[user:password@]host[:port] or mqtts://… for TLS. Without
    /// it, Chronicle runs its embedded broker on --mqtt-listen (and --mqtt-tls-listen).
    #[arg(long, env = "CHRONICLE_MQTT_URL", hide_env_values = true)]
    pub mqtt_url: Option<String>,

    /// CA certificate (PEM) that signed the external broker's certificate, for an mqtts://
    /// URL. [default: the system's trusted roots]
    #[arg(long, env = "CHRONICLE_MQTT_CA_FILE")]
    pub mqtt_ca_file: Option<PathBuf>,

    /// Listen address of the embedded MQTT broker without TLS. [default: 127.0.0.1:1883]
    #[arg(long, env = "CHRONICLE_MQTT_LISTEN")]
    pub mqtt_listen: Option<SocketAddr>,

    /// Listen address of the embedded MQTT broker's TLS listener (MQTT over TLS, usually port
    /// 8883), with --tls-cert and --tls-key.
    #[arg(long, env = "CHRONICLE_MQTT_TLS_LISTEN")]
    pub mqtt_tls_listen: Option<SocketAddr>,

    /// With an external Mosquitto: the directory where Chronicle keeps Mosquitto's
    /// `password_file` (chronicle.passwd) and `acl_file` (chronicle.acl) written from the
    /// registry, so Mosquitto enforces who may connect and which topics each may use
    /// (docs/security.md has the configuration).
    #[arg(long, env = "CHRONICLE_MOSQUITTO_AUTH_DIR")]
    pub mosquitto_auth_dir: Option<PathBuf>,

    /// Turns on the broker hooks (POST /v1/broker/authenticate and /v1/broker/authorize), with
    /// which an external broker such as EMQX asks Chronicle who may connect and which topics
    /// each may use; the broker sends this secret as `Authorization: Bearer <secret>`.
    #[arg(long, env = "CHRONICLE_BROKER_HOOKS_SECRET", hide_env_values = true)]
    pub broker_hooks_secret: Option<String>,

    /// Webhook destinations allowed beyond public HTTPS (comma-separated host, host:port, IP
    /// addresses and networks such as 10.20.0.0/16): they may be plain http and internal.
    /// Without it, webhooks go only to https URLs whose addresses are public.
    #[arg(long, env = "CHRONICLE_WEBHOOK_ALLOW")]
    pub webhook_allow: Option<String>,

    /// Addresses of reverse proxies in front of the HTTP API (comma-separated IPs). When a
    /// request's TCP peer is one of them, the client address used for log-in rate limits and
    /// authentication events is taken from X-Forwarded-For (the rightmost entry that is not
    /// one of them); from any other peer the header is ignored, so clients cannot forge it.
    /// [default: none]
    #[arg(long, env = "CHRONICLE_HTTP_TRUSTED_PROXIES", value_delimiter = ',')]
    #[serde(default)]
    pub http_trusted_proxies: Vec<IpAddr>,

    /// With --mosquitto-auth-dir: Mosquitto's pid_file. Chronicle sends that process SIGHUP
    /// after each change, so Mosquitto reloads the files and drops revoked clients.
    #[arg(
        long,
        env = "CHRONICLE_MOSQUITTO_PID_FILE",
        requires = "mosquitto_auth_dir"
    )]
    pub mosquitto_pid_file: Option<PathBuf>,

    /// How many of the most recent days research reads withhold, before each study's own
    /// stretch of up to half again, so the newest reading a study gets does not reveal its
    /// time shift. [default: 14]
    #[arg(long, env = "CHRONICLE_RESEARCH_HOLDBACK_DAYS")]
    pub research_holdback_days: Option<u32>,

    /// Whether this process does the work each commit queues: the alert engine (rules,
    /// `no_data`, auto-resolution) and the trend rollups. `false` makes an ingest-and-HTTP-only
    /// process; the work stays queued in the database for another `chronicle serve` on the
    /// same database with `true`, and nothing is evaluated until one runs. [default: true]
    #[arg(long, env = "CHRONICLE_FOLLOWUP_WORK", value_name = "BOOL")]
    pub followup_work: Option<bool>,

    /// Whether this process runs the ingest (the embedded broker, or the ingest's client of
    /// --mqtt-url). `false` makes an HTTP-and-follow-up-work process beside ingest-only ones
    /// (`--followup-work false`) on the same database (docs/scaling.md). [default: true]
    #[arg(long, env = "CHRONICLE_INGEST", value_name = "BOOL")]
    pub ingest: Option<bool>,

    /// Patients whose recent readings the alert engine keeps in memory between evaluations,
    /// so an evaluation reads only the newly stored readings (about 0.9 KB a patient with a
    /// 5-minute CGM); the least recently evaluated are dropped and read again when next
    /// needed. 0 keeps none (docs/alerts.md). [default: 1000000]
    #[arg(long, env = "CHRONICLE_ALERT_WINDOW_PATIENTS")]
    pub alert_window_patients: Option<usize>,

    /// On SIGINT/SIGTERM, how long to keep trying to commit messages in hand before exiting
    /// without acknowledging them (the broker then delivers them again). [default: 30]
    #[arg(long, env = "CHRONICLE_SHUTDOWN_GRACE_SECONDS")]
    pub shutdown_grace_seconds: Option<u64>,

    /// How long an HTTP request may take to produce its response (a body sent slowly
    /// included); beyond it the answer is 503 and the work is dropped. [default: 30]
    #[arg(long, env = "CHRONICLE_HTTP_REQUEST_TIMEOUT_SECONDS")]
    pub http_request_timeout_seconds: Option<u64>,

    #[command(flatten, next_help_heading = "MQTT")]
    #[serde(flatten)]
    pub mqtt: MqttArgs,

    #[command(flatten, next_help_heading = "What the ingest accepts")]
    #[serde(flatten)]
    pub limits: IngestLimitArgs,

    #[command(flatten, next_help_heading = "How the ingest commits")]
    #[serde(flatten)]
    pub batching: BatchArgs,

    #[command(flatten, next_help_heading = "Alerts to people's own channels")]
    #[serde(flatten)]
    pub channels: ChannelArgs,
}

/// Users' own alert channels: e-mail through an SMTP relay, and Web Push.
#[derive(Debug, Clone, Default, Args, Deserialize)]
pub struct ChannelArgs {
    /// The SMTP relay alert e-mail goes through: `smtps://host:465` (TLS from the start),
    /// `smtp://host:587?tls=required` (STARTTLS required), `?tls=opportunistic` (STARTTLS
    /// when offered), plain `smtp://host:25` (unencrypted: a relay on this host only);
    /// credentials as `user:password@host`. Without it, e-mail channels are not served.
    #[arg(
        long,
        env = "CHRONICLE_SMTP_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub smtp_url: Option<String>,

    /// The sender of alert e-mail, e.g. `Chronicle <alerts@clinic.example>`. [default:
    /// chronicle@localhost]
    #[arg(long, env = "CHRONICLE_SMTP_FROM", value_name = "ADDRESS")]
    pub smtp_from: Option<String>,

    /// The VAPID private key Web Push is signed with (RFC 8292): the 32-byte P-256 scalar,
    /// base64url. Without it, a key is generated on first start and kept in the database, so
    /// every server sharing it signs with the same key (browsers' subscriptions are bound to
    /// it).
    #[arg(
        long,
        env = "CHRONICLE_VAPID_PRIVATE_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub vapid_private_key: Option<String>,

    /// The contact push services are given with every push (`mailto:` or `https:` URL).
    /// [default: mailto:chronicle@localhost]
    #[arg(long, env = "CHRONICLE_VAPID_SUBJECT", value_name = "URL")]
    pub vapid_subject: Option<String>,

    /// The address people open Chronicle at (https://chronicle.clinic.example/), linked from
    /// every notification. [default: none, no link]
    #[arg(long, env = "CHRONICLE_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
}

/// How the ingest talks to the broker.
#[derive(Debug, Clone, Default, Args, Deserialize)]
pub struct MqttArgs {
    /// MQTT client id of the ingest. Fixed so the broker keeps its persistent session across
    /// restarts; every server process needs its own. [default: chronicle-ingest]
    #[arg(long, env = "CHRONICLE_MQTT_CLIENT_ID", value_name = "ID")]
    pub mqtt_client_id: Option<String>,

    /// Subscribe as $share/GROUP/... so several `chronicle serve` processes split the load.
    #[arg(long, env = "CHRONICLE_MQTT_SHARED_GROUP", value_name = "GROUP")]
    pub mqtt_shared_group: Option<String>,

    /// Topic prefix of the protocol. [default: chronicle/v1]
    #[arg(long, env = "CHRONICLE_MQTT_TOPIC_PREFIX", value_name = "PREFIX")]
    pub mqtt_topic_prefix: Option<String>,

    /// Largest MQTT packet the ingest (and the embedded broker) accepts, in bytes. Messages
    /// above --max-message-bytes but below this are refused with a reason; above this the
    /// broker drops the publisher's connection. [default: 16777216]
    #[arg(long, env = "CHRONICLE_MQTT_MAX_PACKET_BYTES", value_name = "BYTES")]
    pub mqtt_max_packet_bytes: Option<usize>,

    /// Unacknowledged QoS 1 messages per client: the embedded broker's window in both
    /// directions (messages a client may have waiting for their commit, acks sent and not
    /// acknowledged) and the ingest's own outgoing window towards an external broker, which
    /// needs the same (Mosquitto: max_inflight_messages). [default: 1000]
    #[arg(long, env = "CHRONICLE_MQTT_INFLIGHT", value_name = "MESSAGES")]
    pub mqtt_inflight: Option<u16>,

    /// MQTT keep-alive of the ingest's connection to an external broker, in seconds. A ping's
    /// answer waits behind every message the broker already sent, and after an outage
    /// Mosquitto before 2.0.14 sends its whole queue at once: the keep-alive must outlast
    /// draining it, or the connection is dropped mid-drain and the rest delivered again.
    /// 0 sends no pings. [default: 300]
    #[arg(long, env = "CHRONICLE_MQTT_KEEP_ALIVE", value_name = "SECONDS")]
    pub mqtt_keep_alive: Option<u16>,
}

/// What the ingest accepts in one message and reading.
#[derive(Debug, Clone, Default, Args, Deserialize)]
pub struct IngestLimitArgs {
    /// Largest message payload the ingest accepts, in bytes. [default: 1048576]
    #[arg(long, env = "CHRONICLE_MAX_MESSAGE_BYTES", value_name = "BYTES")]
    pub max_message_bytes: Option<usize>,

    /// Most readings accepted in one batch message. [default: 5000]
    #[arg(
        long,
        env = "CHRONICLE_MAX_READINGS_PER_MESSAGE",
        value_name = "READINGS"
    )]
    pub max_readings_per_message: Option<usize>,

    /// How far in the future a reading's timestamp may lie, in seconds. [default: 600]
    #[arg(
        long,
        env = "CHRONICLE_MAX_FUTURE_SKEW_SECONDS",
        value_name = "SECONDS"
    )]
    pub max_future_skew_seconds: Option<u32>,

    /// How old a reading's timestamp may be when it arrives, in days; older readings are
    /// refused (`stale_timestamp`). [default: 366]
    #[arg(long, env = "CHRONICLE_MAX_READING_AGE_DAYS", value_name = "DAYS")]
    pub max_reading_age_days: Option<u32>,
}

/// How the ingest groups messages into database commits.
#[derive(Debug, Clone, Default, Args, Deserialize)]
pub struct BatchArgs {
    /// Messages per database batch at most. With an external broker a batch can never hold
    /// more messages than the broker lets the ingest have unacknowledged.
    /// [default: --mqtt-inflight up to 1000]
    #[arg(long, env = "CHRONICLE_BATCH_MAX_MESSAGES", value_name = "MESSAGES")]
    pub batch_max_messages: Option<usize>,

    /// How long a batch may wait for more messages, in milliseconds, when every commit slot is
    /// busy. A batch is written at once when a slot is free, so at light load a reading waits
    /// for no linger. [default: 2]
    #[arg(long, env = "CHRONICLE_BATCH_LINGER_MS", value_name = "MILLISECONDS")]
    pub batch_linger_ms: Option<u64>,

    /// Batches committing at once: while one waits for its commit, the next is already
    /// written, so messages spend less time unacknowledged in the broker's window.
    /// [default: 2]
    #[arg(
        long,
        env = "CHRONICLE_BATCH_CONCURRENT_COMMITS",
        value_name = "BATCHES"
    )]
    pub batch_concurrent_commits: Option<usize>,
}

/// Settings of `chronicle serve` after merging.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub http_addr: SocketAddr,
    /// HTTPS and the embedded broker's TLS listener.
    pub tls: Option<TlsFiles>,
    pub mqtt: MqttEndpoint,
    pub mqtt_client_id: String,
    pub mqtt_shared_group: Option<String>,
    pub mqtt_topic_prefix: String,
    pub mqtt_max_packet_bytes: usize,
    pub mqtt_inflight: u16,
    pub mqtt_keep_alive: Duration,
    pub max_message_bytes: usize,
    pub max_readings_per_message: usize,
    pub max_future_skew: Duration,
    pub max_reading_age_days: u32,
    pub research_holdback_days: u32,
    pub batch_max_messages: usize,
    pub batch_linger: Duration,
    pub batch_concurrent_commits: usize,
    pub followup_work: bool,
    pub ingest: bool,
    pub alert_window_patients: usize,
    pub shutdown_grace: Duration,
    pub http_request_timeout: Duration,
    pub broker_hooks_secret: Option<String>,
    /// Webhook destinations beyond public HTTPS.
    pub webhook_destinations: std::sync::Arc<chronicle_alerts::destinations::Destinations>,
    /// Proxies whose X-Forwarded-For names the client.
    pub http_trusted_proxies: Vec<IpAddr>,
    /// Users' own channels.
    pub channels: ChannelSettings,
}

/// Users' own channels after merging flags, environment and file.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    pub email: Option<chronicle_alerts::notifications::EmailSettings>,
    /// Configured; otherwise the database's (generated on first start).
    pub vapid_private_key: Option<String>,
    pub vapid_subject: String,
    pub public_url: Option<String>,
}

/// A certificate chain and its key, PEM.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate_chain: PathBuf,
    pub private_key: PathBuf,
}

/// The broker the ingest uses.
#[derive(Debug, Clone)]
pub enum MqttEndpoint {
    /// Run Chronicle's own broker inside the process.
    Embedded {
        listen: SocketAddr,
        tls_listen: Option<SocketAddr>,
    },
    /// Connect to a broker someone else runs.
    External {
        host: String,
        port: u16,
        credentials: Option<(String, String)>,
        /// `Some` for mqtts://: the CA to trust (`None`: the system's roots).
        tls: Option<Option<PathBuf>>,
        /// Keep an external Mosquitto's password and ACL files from the registry.
        mosquitto: Option<MosquittoFiles>,
    },
}

/// Where Chronicle writes an external Mosquitto's password and ACL files.
#[derive(Debug, Clone)]
pub struct MosquittoFiles {
    pub dir: PathBuf,
    /// Mosquitto's pid file: SIGHUP after each change makes it reload them.
    pub pid_file: Option<PathBuf>,
}

impl ServeArgs {
    pub fn merged_with(&self, file: &FileConfig) -> anyhow::Result<ServeSettings> {
        let f = &file.serve;
        let mqtt_inflight = self
            .mqtt
            .mqtt_inflight
            .or(f.mqtt.mqtt_inflight)
            .unwrap_or(1000);
        let tls = match (
            self.tls_cert.clone().or_else(|| f.tls_cert.clone()),
            self.tls_key.clone().or_else(|| f.tls_key.clone()),
        ) {
            (Some(certificate_chain), Some(private_key)) => Some(TlsFiles {
                certificate_chain,
                private_key,
            }),
            (None, None) => None,
            _ => anyhow::bail!("--tls-cert and --tls-key go together"),
        };
        let allow_plaintext = self.allow_plaintext.or(f.allow_plaintext).unwrap_or(false);
        let mosquitto = self
            .mosquitto_auth_dir
            .clone()
            .or_else(|| f.mosquitto_auth_dir.clone())
            .map(|dir| MosquittoFiles {
                dir,
                pid_file: self
                    .mosquitto_pid_file
                    .clone()
                    .or_else(|| f.mosquitto_pid_file.clone()),
            });
        let mqtt = match self.mqtt_url.as_ref().or(f.mqtt_url.as_ref()) {
            Some(url) => {
                let ca_file = self.mqtt_ca_file.clone().or_else(|| f.mqtt_ca_file.clone());
                parse_mqtt_url(url, ca_file, mosquitto)?
            }
            None => {
                anyhow::ensure!(
                    mosquitto.is_none(),
                    "--mosquitto-auth-dir is for an external Mosquitto (--mqtt-url); the embedded broker asks the registry itself"
                );
                let tls_listen = self.mqtt_tls_listen.or(f.mqtt_tls_listen);
                anyhow::ensure!(
                    tls_listen.is_none() || tls.is_some(),
                    "--mqtt-tls-listen needs --tls-cert and --tls-key (`chronicle tls init` makes them)"
                );
                MqttEndpoint::Embedded {
                    listen: self
                        .mqtt_listen
                        .or(f.mqtt_listen)
                        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 1883))),
                    tls_listen,
                }
            }
        };
        let http_addr = self
            .http_addr
            .or(f.http_addr)
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)));
        if !allow_plaintext {
            refuse_plaintext(http_addr, tls.is_some(), &mqtt)?;
        }
        let batch_max_messages = self
            .batching
            .batch_max_messages
            .or(f.batching.batch_max_messages)
            .unwrap_or(usize::from(mqtt_inflight).min(1000))
            .max(1);
        Ok(ServeSettings {
            http_addr,
            tls,
            mqtt,
            mqtt_client_id: self
                .mqtt
                .mqtt_client_id
                .clone()
                .or_else(|| f.mqtt.mqtt_client_id.clone())
                .unwrap_or_else(|| "chronicle-ingest".to_owned()),
            mqtt_shared_group: self
                .mqtt
                .mqtt_shared_group
                .clone()
                .or_else(|| f.mqtt.mqtt_shared_group.clone()),
            mqtt_topic_prefix: self
                .mqtt
                .mqtt_topic_prefix
                .clone()
                .or_else(|| f.mqtt.mqtt_topic_prefix.clone())
                .unwrap_or_else(|| topics::DEFAULT_TOPIC_PREFIX.to_owned()),
            mqtt_max_packet_bytes: self
                .mqtt
                .mqtt_max_packet_bytes
                .or(f.mqtt.mqtt_max_packet_bytes)
                .unwrap_or(16 * 1024 * 1024),
            mqtt_inflight,
            mqtt_keep_alive: Duration::from_secs(u64::from(
                self.mqtt
                    .mqtt_keep_alive
                    .or(f.mqtt.mqtt_keep_alive)
                    .unwrap_or(300),
            )),
            max_message_bytes: self
                .limits
                .max_message_bytes
                .or(f.limits.max_message_bytes)
                .unwrap_or(1024 * 1024),
            max_readings_per_message: self
                .limits
                .max_readings_per_message
                .or(f.limits.max_readings_per_message)
                .unwrap_or(5000),
            max_future_skew: Duration::from_secs(u64::from(
                self.limits
                    .max_future_skew_seconds
                    .or(f.limits.max_future_skew_seconds)
                    .unwrap_or(600),
            )),
            max_reading_age_days: self
                .limits
                .max_reading_age_days
                .or(f.limits.max_reading_age_days)
                .unwrap_or(DEFAULT_MAX_AGE_DAYS as u32),
            research_holdback_days: self
                .research_holdback_days
                .or(f.research_holdback_days)
                .unwrap_or(14),
            batch_max_messages,
            batch_linger: Duration::from_millis(
                self.batching
                    .batch_linger_ms
                    .or(f.batching.batch_linger_ms)
                    .unwrap_or(2),
            ),
            batch_concurrent_commits: self
                .batching
                .batch_concurrent_commits
                .or(f.batching.batch_concurrent_commits)
                .unwrap_or(2)
                .max(1),
            followup_work: self.followup_work.or(f.followup_work).unwrap_or(true),
            ingest: self.ingest.or(f.ingest).unwrap_or(true),
            alert_window_patients: self
                .alert_window_patients
                .or(f.alert_window_patients)
                .unwrap_or(chronicle_alerts::DEFAULT_WINDOW_PATIENTS),
            broker_hooks_secret: self
                .broker_hooks_secret
                .clone()
                .or_else(|| f.broker_hooks_secret.clone())
                .filter(|s| !s.is_empty()),
            shutdown_grace: Duration::from_secs(
                self.shutdown_grace_seconds
                    .or(f.shutdown_grace_seconds)
                    .unwrap_or(30),
            ),
            http_request_timeout: self
                .http_request_timeout_seconds
                .or(f.http_request_timeout_seconds)
                .map_or(chronicle_http::REQUEST_TIMEOUT, Duration::from_secs),
            webhook_destinations: std::sync::Arc::new(
                chronicle_alerts::destinations::Destinations::parse(
                    self.webhook_allow
                        .as_deref()
                        .or(f.webhook_allow.as_deref())
                        .unwrap_or_default(),
                )
                .map_err(|e| anyhow::anyhow!("--webhook-allow: {e}"))?,
            ),
            http_trusted_proxies: if self.http_trusted_proxies.is_empty() {
                f.http_trusted_proxies.clone()
            } else {
                self.http_trusted_proxies.clone()
            },
            channels: self.channels.merged_with(&f.channels),
        })
    }
}

/// Refuses listeners and broker connections that would carry health data, secrets or tokens
/// over the network in clear.
fn refuse_plaintext(http_addr: SocketAddr, tls: bool, mqtt: &MqttEndpoint) -> anyhow::Result<()> {
    anyhow::ensure!(
        tls || http_addr.ip().is_loopback(),
        "refusing to serve HTTP without TLS on {http_addr}, beyond this machine: give --tls-cert and \
         --tls-key (`chronicle tls init` makes them), listen on 127.0.0.1, or set \
         --allow-plaintext true if a TLS proxy in front does TLS"
    );
    match mqtt {
        MqttEndpoint::Embedded { listen, .. } => anyhow::ensure!(
            listen.ip().is_loopback(),
            "refusing to serve MQTT without TLS on {listen}, beyond this machine: keep --mqtt-listen \
             on 127.0.0.1 and give devices --mqtt-tls-listen (with --tls-cert and --tls-key), or set \
             --allow-plaintext true"
        ),
        MqttEndpoint::External { host, tls, .. } => {
            let local = host == "localhost"
                || host
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            anyhow::ensure!(
                tls.is_some() || local,
                "refusing to reach the MQTT broker {host} without TLS: use an mqtts:// URL (with \
                 --mqtt-ca-file for a private CA), or set --allow-plaintext true"
            );
        }
    }
    Ok(())
}

fn parse_mqtt_url(
    text: &str,
    ca_file: Option<PathBuf>,
    mosquitto: Option<MosquittoFiles>,
) -> anyhow::Result<MqttEndpoint> {
    let url = url::Url::parse(text).with_context(|| format!("invalid MQTT URL {text:?}"))?;
    let (tls, default_port) = match url.scheme() {
        "mqtt" | "tcp" => (None, 1883),
        "mqtts" | "ssl" => (Some(ca_file), 8883),
        _ => anyhow::bail!("MQTT URL must start with mqtt:// or mqtts://, got {text:?}"),
    };
    let host = url.host_str().context("MQTT URL has no host")?.to_owned();
    let credentials = (!url.username().is_empty()).then(|| {
        (
            url.username().to_owned(),
            url.password().unwrap_or_default().to_owned(),
        )
    });
    Ok(MqttEndpoint::External {
        host,
        port: url.port().unwrap_or(default_port),
        credentials,
        tls,
        mosquitto,
    })
}

/// Every key the file may hold: the flags' ids, which clap derives from the field names.
fn known_settings() -> Vec<String> {
    let database = DatabaseArgs::augment_args(clap::Command::new("database"));
    let serve = ServeArgs::augment_args(clap::Command::new("serve"));
    database
        .get_arguments()
        .chain(serve.get_arguments())
        .map(|arg| arg.get_id().to_string())
        .collect()
}

impl ChannelArgs {
    fn merged_with(&self, f: &ChannelArgs) -> ChannelSettings {
        let pick = |a: &Option<String>, b: &Option<String>| {
            a.clone()
                .or_else(|| b.clone())
                .filter(|s| !s.trim().is_empty())
        };
        ChannelSettings {
            email: pick(&self.smtp_url, &f.smtp_url).map(|relay_url| {
                chronicle_alerts::notifications::EmailSettings {
                    relay_url,
                    from: pick(&self.smtp_from, &f.smtp_from)
                        .unwrap_or_else(|| "Chronicle <chronicle@localhost>".to_owned()),
                }
            }),
            vapid_private_key: pick(&self.vapid_private_key, &f.vapid_private_key),
            vapid_subject: pick(&self.vapid_subject, &f.vapid_subject)
                .unwrap_or_else(|| "mailto:chronicle@localhost".to_owned()),
            public_url: pick(&self.public_url, &f.public_url),
        }
    }
}

/// The configuration file: every setting, flat.
#[derive(Debug, Default, Deserialize)]
pub struct FileConfig {
    #[serde(flatten)]
    pub database: DatabaseArgs,
    #[serde(flatten)]
    pub serve: ServeArgs,
}

impl FileConfig {
    /// Reads the file, refusing unknown keys so a typo does not silently fall back to a default.
    pub fn load(path: Option<&Path>) -> anyhow::Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        let table: toml::Table = toml::from_str(&text)
            .with_context(|| format!("invalid configuration file {}", path.display()))?;
        let known = known_settings();
        let unknown: Vec<&str> = table
            .keys()
            .map(String::as_str)
            .filter(|k| !known.iter().any(|s| s == k))
            .collect();
        anyhow::ensure!(
            unknown.is_empty(),
            "unknown setting(s) in {}: {} (see `chronicle serve --help`)",
            path.display(),
            unknown.join(", ")
        );
        let config: FileConfig = toml::from_str(&text)
            .with_context(|| format!("invalid configuration file {}", path.display()))?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[test]
    fn the_command_line_is_consistent() {
        // Duplicate argument ids, conflicting short flags and the like: clap checks them all.
        Cli::command().debug_assert();
    }

    #[test]
    fn every_benchmark_passes_its_serve_flags_on() {
        for bench in ["ingest", "alerts", "trends", "fleet"] {
            let cli = Cli::try_parse_from([
                "chronicle",
                "bench",
                bench,
                "--serve-arg=--alert-window-patients=5",
                "--serve-arg",
                "--batch-linger-ms=1",
            ])
            .expect("valid command line");
            let Command::Bench(command) = cli.command else {
                panic!("expected a benchmark");
            };
            let run = match command {
                BenchCommand::Ingest(args) => args.run,
                BenchCommand::Alerts(args) => args.run,
                BenchCommand::Trends(args) => args.run,
                BenchCommand::Fleet(args) => args.run,
            };
            assert_eq!(
                run.serve_args,
                ["--alert-window-patients=5", "--batch-linger-ms=1"],
                "bench {bench}"
            );
        }
    }

    #[test]
    fn flags_override_file_and_defaults_fill_the_rest() {
        let file: FileConfig = toml::from_str(
            "http_addr = \"0.0.0.0:9000\"\nallow_plaintext = true\nbatch_linger_ms = 5\n\
             data_dir = \"/srv/chronicle\"",
        )
        .expect("valid file");
        let args = ServeArgs {
            batching: BatchArgs {
                batch_linger_ms: Some(50),
                ..BatchArgs::default()
            },
            ..ServeArgs::default()
        };
        let serve = args.merged_with(&file).expect("valid settings");
        assert_eq!(serve.http_addr, "0.0.0.0:9000".parse().expect("address"));
        assert_eq!(serve.batch_linger, Duration::from_millis(50));
        assert_eq!(serve.batch_max_messages, 1000);
        // A grouped setting (batching) is read from the file like any other.
        let from_file = ServeArgs::default()
            .merged_with(&file)
            .expect("valid settings");
        assert_eq!(from_file.batch_linger, Duration::from_millis(5));
        let database = DatabaseArgs::default().merged_with(&file);
        assert_eq!(database.data_dir, PathBuf::from("/srv/chronicle"));
        assert_eq!(database.timescale.compress_after_days, Some(30));
        assert_eq!(database.timescale.retain_days, None);
    }

    #[test]
    fn mqtt_urls() {
        let MqttEndpoint::External {
            host,
            port,
            credentials,
            tls,
            ..
        } = parse_mqtt_url("mqtt://ingest:s3cret@broker.example:1884", None, None)
            .expect("valid url")
        else {
            panic!("expected an external broker");
        };
        assert_eq!((host.as_str(), port), ("broker.example", 1884));
        assert_eq!(
            credentials,
            Some(("ingest".to_owned(), "s3cret".to_owned()))
        );
        assert!(tls.is_none());
        let Ok(MqttEndpoint::External { port, tls, .. }) =
            parse_mqtt_url("mqtts://broker.example", None, None)
        else {
            panic!("expected an external broker");
        };
        assert_eq!((port, tls), (8883, Some(None)));
        assert!(parse_mqtt_url("http://x", None, None).is_err());
    }

    #[test]
    fn plaintext_beyond_loopback_is_refused_unless_allowed() {
        let public: SocketAddr = "0.0.0.0:8080".parse().expect("address");
        let loopback: SocketAddr = "127.0.0.1:8080".parse().expect("address");
        let embedded = |listen: &str| MqttEndpoint::Embedded {
            listen: listen.parse().expect("address"),
            tls_listen: None,
        };
        assert!(refuse_plaintext(loopback, false, &embedded("127.0.0.1:1883")).is_ok());
        assert!(refuse_plaintext(public, false, &embedded("127.0.0.1:1883")).is_err());
        assert!(refuse_plaintext(public, true, &embedded("127.0.0.1:1883")).is_ok());
        assert!(refuse_plaintext(public, true, &embedded("0.0.0.0:1883")).is_err());
        let remote = parse_mqtt_url("mqtt://broker.example", None, None).expect("url");
        assert!(refuse_plaintext(loopback, false, &remote).is_err());
        let local = parse_mqtt_url("mqtt://127.0.0.1:1884", None, None).expect("url");
        assert!(refuse_plaintext(loopback, false, &local).is_ok());
        let secure = parse_mqtt_url("mqtts://broker.example", None, None).expect("url");
        assert!(refuse_plaintext(loopback, false, &secure).is_ok());
        let args = ServeArgs {
            http_addr: Some(public),
            allow_plaintext: Some(true),
            ..ServeArgs::default()
        };
        assert!(args.merged_with(&FileConfig::default()).is_ok());
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!("chronicle-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("chronicle.toml");
        std::fs::write(&path, "htp_addr = \"0.0.0.0:1\"\n").expect("write file");
        let error = FileConfig::load(Some(&path)).expect_err("typo must be refused");
        assert!(error.to_string().contains("htp_addr"), "{error}");
    }
}

//! The command line.

use anyhow::Context;
use chronicle_domain::topics;
use chronicle_sim::faults::{FaultKind, FaultRates};
use chronicle_sim::scenario::ScenarioKind;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const LONG_ABOUT: &str = "\
Simulated patients and their devices (CGMs, meters, blood-pressure cuffs) publishing readings \
to Chronicle over MQTT, with the protocol's acks matched to every message.

COMMANDS
  run        a population of patients (persona mix, seed) in one of three time modes, with
             optional fault injection; prints the reconciliation (sent = stored + duplicates
             + rejected, every fault answered as expected) and exits non-zero on any difference
  scenario   alert-worthy events at a chosen time (nocturnal_hypoglycemia, fall_after_exercise,
             prolonged_hyperglycemia, hypertensive_crisis, silent_device, late_backlog) on
             otherwise steady patients, and their ground truth with the alerts they must raise
  load       thousands of devices over a configurable number of MQTT connections, at a target
             rate or as fast as acks allow, with live progress and a text and JSON summary
  provision  register simulated patients and devices and write the devices file

TIME MODES (--mode)
  live         the real clock: history before now (--days) is sent first as a backlog, then each
               reading when it is measured, until --duration or Ctrl-C
  accelerated  a simulated clock --speed times faster than the real one, starting --days ago;
               it never runs ahead of the real clock (Chronicle refuses future readings) and
               goes on live once it has caught up
  backfill     the last --days days at once, each device syncing its memory in batch messages
               of up to --batch-readings readings (the protocol's limit: 5000, 1 MiB)

PROVISIONING
  Patients and devices are registered through the `chronicle` admin commands
  (`chronicle patient import`; --chronicle-bin, --data-dir and --database-url are passed on),
  or read from a devices file (--devices-file) to drive a server someone else runs. The file
  is JSON: {\"seed\": N, \"patients\": [{\"index\", \"persona\", \"patient_id\", \"name\",
  \"time_zone\", \"devices\": [{\"device_id\", \"kind\", \"secret\"}]}]} (docs/simulator.md).
  --write-devices-file saves what was provisioned (readable by its owner only).

CONNECTIONS
  Each device connects with username = its device id, password = its secret, client id = its
  device id, QoS 1, and keeps every message until its ack. With --connections below the
  number of devices, each connection is a gateway, like a phone app or a clinic's gateway
  relaying for several devices: the simulator registers that many gateways (`chronicle
  gateway add`, operator gateways relaying device i on gateway i mod N), keeps their
  credentials in the devices file (\"gateways\": [{\"gateway_id\", \"secret\", \"devices\"}]), and
  each logs in as itself and publishes only on the topics of the devices it relays.

Exit status: 0 when everything reconciles, 1 on any difference, 2 on an error.";

#[derive(Debug, Parser)]
#[command(
    name = "chronicle-sim",
    version,
    about = "Simulated patients and devices for Chronicle: live, accelerated and backfill modes, scenarios with ground truth, fault injection with reconciliation, and load",
    long_about = LONG_ABOUT
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate a population and publish its readings (live, accelerated or backfill), with
    /// optional fault injection; print the reconciliation.
    Run(Box<RunArgs>),
    /// Make alert-worthy events happen at a chosen time and write their ground truth.
    Scenario(Box<ScenarioArgs>),
    /// Load: many devices over a configurable number of connections, at a target rate or as
    /// fast as acks allow; progress while it runs, a summary in text and JSON at the end.
    Load(Box<LoadArgs>),
    /// Register simulated patients and devices and write the devices file.
    Provision(Box<ProvisionArgs>),
}

/// How simulated time relates to the real clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// The real clock (history first, as a backlog).
    Live,
    /// N times faster than the real clock (--speed), never ahead of it.
    Accelerated,
    /// The last --days days at once, in batch messages.
    Backfill,
}

/// Where the broker is and how devices talk to it.
#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    /// MQTT broker host.
    #[arg(long, env = "CHRONICLE_SIM_MQTT_HOST", default_value = "127.0.0.1")]
    pub mqtt_host: String,
    /// MQTT broker port.
    #[arg(long, env = "CHRONICLE_SIM_MQTT_PORT", default_value_t = 1883)]
    pub mqtt_port: u16,
    /// The protocol's topic prefix (the server's --mqtt-topic-prefix).
    #[arg(long, default_value = topics::DEFAULT_TOPIC_PREFIX)]
    pub topic_prefix: String,
    /// MQTT connections for all devices. [default: one per device] With fewer, each is a
    /// registered gateway relaying for several devices, like a phone app or a clinic gateway.
    #[arg(long)]
    pub connections: Option<usize>,
    /// Messages a device may have sent without their ack.
    #[arg(long, default_value_t = 20)]
    pub window: usize,
    /// How long to wait for the last acks at the end, seconds.
    #[arg(long, default_value_t = 60)]
    pub ack_timeout_seconds: u64,
    /// The server's --max-message-bytes (batches stay below it; the oversized fault exceeds it).
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_message_bytes: usize,
    /// The server's --max-readings-per-message.
    #[arg(long, default_value_t = 5000)]
    pub max_readings_per_message: usize,
    /// The server's --max-future-skew-seconds (the future-timestamp fault exceeds it).
    #[arg(long, default_value_t = 600)]
    pub max_future_skew_seconds: i64,
}

/// How patients and devices are registered.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Use the devices in this file instead of registering new ones (format in --help).
    #[arg(long, value_name = "FILE")]
    pub devices_file: Option<PathBuf>,
    /// Write the registered patients and devices (with their secrets) to this file.
    #[arg(long, value_name = "FILE")]
    pub write_devices_file: Option<PathBuf>,
    /// The `chronicle` binary for provisioning. [default: `chronicle` next to this binary,
    /// else on PATH]
    #[arg(long, env = "CHRONICLE_BIN", value_name = "PATH")]
    pub chronicle_bin: Option<PathBuf>,
    /// Passed to `chronicle` as --data-dir.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Passed to `chronicle` as --database-url.
    #[arg(long, env = "CHRONICLE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl ServerArgs {
    /// Where what the simulator registers later (gateways) is kept: the file being written,
    /// else the one read.
    pub fn devices_file_to_keep(&self) -> Option<&std::path::Path> {
        self.write_devices_file
            .as_deref()
            .or(self.devices_file.as_deref())
    }
}

/// Which patients.
#[derive(Debug, Clone, Args)]
pub struct PopulationArgs {
    /// Patients to simulate (ignored with --devices-file).
    #[arg(long, default_value_t = 10)]
    pub patients: usize,
    /// Persona mix, e.g. type1-cgm=3,type2-meter=2 (personas: type1-cgm, type2-meter,
    /// hypertension, type2-hypertension, normotensive). [default:
    /// type1-cgm=3,type2-meter=3,hypertension=2,type2-hypertension=3,normotensive=1]
    #[arg(long)]
    pub mix: Option<String>,
    /// Seed: the same seed gives the same patients and readings.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub population: PopulationArgs,
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// live, accelerated or backfill (see TIME MODES in --help).
    #[arg(long, value_enum, default_value_t = Mode::Live)]
    pub mode: Mode,
    /// Accelerated: simulated seconds per real second.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Days of history before now: the backfill window, the live backlog, or where the
    /// accelerated clock starts. [default: 1 for backfill and accelerated, 0 for live]
    #[arg(long)]
    pub days: Option<f64>,
    /// Live and accelerated: simulated time to play from the start, e.g. 90m, 2h, 1d.
    /// [default: until Ctrl-C]
    #[arg(long, value_parser = parse_span)]
    pub duration: Option<chrono::Duration>,
    /// Readings per batch message in backfill and backlogs (at most the protocol's 5000).
    #[arg(long, default_value_t = 5000)]
    pub batch_readings: usize,
    #[command(flatten)]
    pub faults: FaultArgs,
    /// Write the reconciliation as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
    /// Print progress to stderr every this many seconds (0: never).
    #[arg(long, default_value_t = 10)]
    pub progress_seconds: u64,
}

/// Faults to inject, shared by `run` and `load`.
#[derive(Debug, Args)]
pub struct FaultArgs {
    /// Inject a fault with a rate, NAME=RATE (probability per message); repeat, or all=RATE.
    /// Faults and the answer each must get: malformed_json (rejected malformed_json),
    /// out_of_range (out_of_range), wrong_unit (unknown_unit), missing_field
    /// (missing_field), future_timestamp (future_timestamp), oversized (message_too_large),
    /// duplicate (duplicates, nothing stored twice), out_of_order (stored),
    /// offline_backlog (2–6 h offline, then a batch sync: stored), reconnect (another
    /// connection with the same client id takes over; nothing lost).
    #[arg(long = "fault", value_name = "NAME=RATE")]
    pub specs: Vec<String>,
}

impl FaultArgs {
    /// The rates the `--fault` arguments ask for.
    pub fn rates(&self) -> anyhow::Result<FaultRates> {
        let mut rates = FaultRates::none();
        for spec in &self.specs {
            rates
                .add_spec(spec)
                .with_context(|| format!("--fault {spec} (faults: {})", fault_names()))?;
        }
        Ok(rates)
    }
}

#[derive(Debug, Args)]
pub struct ScenarioArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// A scenario, optionally at a time: NAME or NAME@TIME (TIME is RFC 3339 or now±SPAN,
    /// e.g. now-26h). Repeat for several, or `all`. Each gets its own patient.
    #[arg(long = "scenario", value_name = "NAME[@TIME]", required = true)]
    pub scenarios: Vec<String>,
    /// live, accelerated or backfill. Backfill places each scenario at its usual local time
    /// on the latest day whose window has ended; live and accelerated at its next one.
    #[arg(long, value_enum, default_value_t = Mode::Backfill)]
    pub mode: Mode,
    /// Accelerated: simulated seconds per real second (the clock starts an hour before the
    /// earliest scenario; the history before that is sent at once).
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Write the ground truth (the scenarios, their events and expected alerts) here.
    #[arg(long, value_name = "FILE")]
    pub ground_truth: PathBuf,
    /// A reading received more than this after it was measured is late: it raises no live
    /// alarm (the alert engine's setting).
    #[arg(long, default_value_t = 15)]
    pub late_after_minutes: i64,
    /// IANA zone of the scenario patients (one without daylight saving time: UTC,
    /// Asia/Kolkata, America/Phoenix, ...).
    #[arg(long, default_value = "Etc/UTC")]
    pub zone: String,
    /// Seed of the scenario patients.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write the reconciliation as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Patients (each with its devices; the default mix gives one CGM each).
    #[arg(long, default_value_t = 1000)]
    pub patients: usize,
    /// Persona mix (see `run --help`).
    #[arg(long, default_value = "type1-cgm")]
    pub mix: String,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Simulated days of readings to send (timestamps in the last N days).
    #[arg(long, default_value_t = 1.0)]
    pub days: f64,
    /// Readings per message (1: one-reading messages, as live devices send).
    #[arg(long, default_value_t = 1)]
    pub readings_per_message: usize,
    /// Target rate, messages per second over all devices. [default: as fast as acks allow]
    #[arg(long)]
    pub rate: Option<f64>,
    /// Stop sending after this many seconds (then wait for the acks).
    #[arg(long)]
    pub duration_seconds: Option<u64>,
    #[command(flatten)]
    pub faults: FaultArgs,
    /// Write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
    /// Print progress (rate, acks, rejections, latency) every this many seconds (0: never).
    #[arg(long, default_value_t = 1)]
    pub progress_seconds: u64,
}

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    #[command(flatten)]
    pub population: PopulationArgs,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `90s`, `30m`, `2h`, `1d`, or seconds.
pub fn parse_span(text: &str) -> Result<chrono::Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a span like 90s, 30m, 2h or 1d"))?;
    let seconds = match unit {
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        _ => return Err(format!("{text:?}: unit must be s, m, h or d")),
    };
    Ok(chrono::Duration::milliseconds(
        (seconds * 1000.0).round() as i64
    ))
}

/// `2026-03-01T02:00:00Z`, `now`, `now+30m`, `now-26h`.
pub fn parse_time(
    text: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("now") {
        if rest.is_empty() {
            return Ok(now);
        }
        let (sign, span) = rest.split_at(1);
        let span = parse_span(span)?;
        return match sign {
            "+" => Ok(now + span),
            "-" => Ok(now - span),
            _ => Err(format!("{text:?}: expected now+SPAN or now-SPAN")),
        };
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{text:?} is not an RFC 3339 time or now±SPAN: {e}"))
}

/// A scenario and the time asked for, if any.
pub type Requested = (ScenarioKind, Option<chrono::DateTime<chrono::Utc>>);

/// The `--scenario` arguments.
pub fn parse_scenarios(
    specs: &[String],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Requested>, String> {
    let mut out = Vec::new();
    for spec in specs {
        let (name, at) = match spec.split_once('@') {
            Some((name, at)) => (name, Some(parse_time(at, now)?)),
            None => (spec.as_str(), None),
        };
        if name.trim().eq_ignore_ascii_case("all") {
            out.extend(ScenarioKind::ALL.into_iter().map(|k| (k, at)));
        } else {
            out.push((name.parse().map_err(|e| format!("{e}"))?, at));
        }
    }
    Ok(out)
}

/// Every fault's name, for messages.
fn fault_names() -> String {
    FaultKind::ALL.map(FaultKind::as_str).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn spans_and_times() {
        assert_eq!(parse_span("90m"), Ok(chrono::Duration::minutes(90)));
        assert_eq!(parse_span("1.5h"), Ok(chrono::Duration::minutes(90)));
        assert_eq!(parse_span("30"), Ok(chrono::Duration::seconds(30)));
        assert!(parse_span("3 weeks").is_err());
        let now = Utc
            .with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
            .single()
            .expect("date");
        assert_eq!(
            parse_time("now-2h", now),
            Ok(now - chrono::Duration::hours(2))
        );
        assert_eq!(parse_time("2026-03-01T13:00:00+01:00", now), Ok(now));
        let all = parse_scenarios(&["all@now".into()], now).expect("valid");
        assert_eq!(all.len(), 6);
        assert!(parse_scenarios(&["asteroid".into()], now).is_err());
    }
}

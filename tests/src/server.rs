//! The `chronicle` binary, started and stopped as a user would.

use crate::free_port;
use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};

/// Path of the built `chronicle` binary: `CHRONICLE_BIN`, or next to the test executable's
/// `deps` folder (where cargo puts the workspace's binaries).
pub fn chronicle_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("CHRONICLE_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no parent folder")?;
    let bin = dir.join("chronicle");
    anyhow::ensure!(
        bin.exists(),
        "{} does not exist: build it first with `cargo build -p chronicle-server` (scripts/test does)",
        bin.display()
    );
    Ok(bin)
}

/// Path of the built `chronicle-sim` binary, found as [`chronicle_binary`] finds `chronicle`
/// (or `CHRONICLE_SIM_BIN`).
pub fn sim_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("CHRONICLE_SIM_BIN") {
        return Ok(PathBuf::from(path));
    }
    let bin = chronicle_binary()?.with_file_name("chronicle-sim");
    anyhow::ensure!(
        bin.exists(),
        "{} does not exist: build it first with `cargo build -p chronicle-sim` (scripts/test does)",
        bin.display()
    );
    Ok(bin)
}

/// How to start a server.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// `None`: the server runs its private PostgreSQL in `data_dir`.
    pub database_url: Option<String>,
    /// `None`: a fresh temporary directory.
    pub data_dir: Option<PathBuf>,
    /// `None`: the embedded broker on a free port.
    pub mqtt_url: Option<String>,
    pub mqtt_client_id: Option<String>,
    pub mqtt_shared_group: Option<String>,
    /// More `chronicle serve` flags.
    pub extra_args: Vec<String>,
    /// More environment for `serve` (after the harness's own, so it can override
    /// `CHRONICLE_LOG`).
    pub env: Vec<(String, String)>,
    /// A directory made by `chronicle tls init`: the server serves HTTPS and an MQTT TLS
    /// listener with its certificate, and the harness trusts its `ca.pem`.
    pub tls_dir: Option<PathBuf>,
}

/// A running `chronicle serve`.
pub struct ChronicleServer {
    child: Option<Child>,
    options: ServerOptions,
    data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    http_port: u16,
    mqtt_port: u16,
    /// The embedded broker's TLS listener, with `tls_dir`.
    mqtt_tls_port: Option<u16>,
    /// Trusts the server's private CA when it serves HTTPS.
    http: reqwest::Client,
    log_path: PathBuf,
    starts: u32,
}

impl ChronicleServer {
    pub async fn start(options: ServerOptions) -> anyhow::Result<ChronicleServer> {
        let (data_dir, temp) = match &options.data_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let temp = traversable_tempdir()?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let mqtt_port = match &options.mqtt_url {
            Some(url) => url
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(1883),
            None => free_port(),
        };
        std::fs::create_dir_all(&data_dir)?;
        let http = match &options.tls_dir {
            Some(dir) => {
                let ca = std::fs::read(dir.join("ca.pem"))?;
                reqwest::Client::builder()
                    .add_root_certificate(reqwest::Certificate::from_pem(&ca)?)
                    .build()?
            }
            None => reqwest::Client::new(),
        };
        let mut server = ChronicleServer {
            child: None,
            log_path: data_dir.join("chronicle-test.log"),
            mqtt_tls_port: options.tls_dir.as_ref().map(|_| free_port()),
            options,
            data_dir,
            _temp: temp,
            http_port: free_port(),
            mqtt_port,
            http,
            starts: 0,
        };
        // The ports were free when chosen but are released until the server binds them, so
        // another test may take one meanwhile: choose again, a few times.
        let mut attempts = 0;
        loop {
            match server.launch().await {
                Ok(()) => return Ok(server),
                Err(e) if attempts < 3 && e.to_string().contains("Address already in use") => {
                    attempts += 1;
                    server.http_port = free_port();
                    if server.options.mqtt_url.is_none() {
                        server.mqtt_port = free_port();
                    }
                    if server.mqtt_tls_port.is_some() {
                        server.mqtt_tls_port = Some(free_port());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The environment and flags shared by `serve` and the admin commands.
    fn common(&self, command: &mut Command) {
        command
            .env_remove("CHRONICLE_DATABASE_URL")
            .env("CHRONICLE_LOG", "info,chronicle_ingest=debug");
        command.arg("--data-dir").arg(&self.data_dir);
        // The TimescaleDB leg of scripts/test: the server must use it, or fail.
        if let Ok(mode) = std::env::var("CHRONICLE_TEST_TIMESCALE") {
            command.arg("--timescale").arg(mode);
        }
        if let Some(url) = &self.options.database_url {
            command.arg("--database-url").arg(url);
        }
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let mut command = Command::new(chronicle_binary()?);
        self.common(&mut command);
        command
            .arg("serve")
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{}", self.http_port))
            .args(&self.options.extra_args)
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        match &self.options.mqtt_url {
            Some(url) => {
                command.arg("--mqtt-url").arg(url);
            }
            None => {
                command
                    .arg("--mqtt-listen")
                    .arg(format!("127.0.0.1:{}", self.mqtt_port));
            }
        }
        if let Some(id) = &self.options.mqtt_client_id {
            command.arg("--mqtt-client-id").arg(id);
        }
        if let Some(group) = &self.options.mqtt_shared_group {
            command.arg("--mqtt-shared-group").arg(group);
        }
        if let Some(dir) = &self.options.tls_dir {
            command
                .arg("--tls-cert")
                .arg(dir.join("server.pem"))
                .arg("--tls-key")
                .arg(dir.join("server-key.pem"));
            if let Some(port) = self.mqtt_tls_port {
                command
                    .arg("--mqtt-tls-listen")
                    .arg(format!("127.0.0.1:{port}"));
            }
        }
        self.child = Some(command.spawn().context("cannot start chronicle serve")?);
        self.wait_ready(Duration::from_secs(90)).await
    }

    async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let client = self.http.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "chronicle serve exited during start-up ({status}); log:\n{}",
                    self.log()
                );
            }
            if let Ok(response) = client.get(self.http_url("/readyz")).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "chronicle serve was not ready within {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn http_url(&self, path: &str) -> String {
        let scheme = if self.options.tls_dir.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}{path}", self.http_port)
    }

    /// An HTTP client that trusts the server (its private CA, when it serves HTTPS).
    pub fn http(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// The server's Prometheus metrics (`/metrics`).
    pub async fn metrics(&self) -> anyhow::Result<Metrics> {
        Metrics::fetch(&self.http, &self.http_url("/metrics")).await
    }

    /// The embedded broker's TLS listener, when the server has one.
    pub fn mqtt_tls_port(&self) -> Option<u16> {
        self.mqtt_tls_port
    }

    pub fn mqtt_port(&self) -> u16 {
        self.mqtt_port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// SIGTERM, then wait for the exit (a graceful shutdown).
    pub async fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("server is not running")?;
        if let Some(pid) = child.id() {
            kill(Pid::from_raw(i32::try_from(pid)?), Signal::SIGTERM)?;
        }
        match tokio::time::timeout(Duration::from_secs(60), child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                child.kill().await?;
                bail!(
                    "chronicle serve did not stop within 60 s of SIGTERM; log:\n{}",
                    self.log()
                )
            }
        }
    }

    /// SIGKILL: a crash, with no chance to clean up.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Starts the server again with the same options and ports.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "stop the server before restarting it");
        self.launch().await
    }

    /// Runs an admin command (`chronicle <args>`) against the same database.
    pub async fn admin(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut command = Command::new(chronicle_binary()?);
        self.common(&mut command);
        let output = command.args(args).output().await?;
        anyhow::ensure!(
            output.status.success(),
            "chronicle {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8(output.stdout)?)
    }

    /// Registers a patient and returns its id.
    pub async fn add_patient(&self, name: &str) -> anyhow::Result<String> {
        let out = self
            .admin(&["patient", "add", "--name", name, "--json"])
            .await?;
        let json: serde_json::Value = serde_json::from_str(&out)?;
        Ok(json["id"]
            .as_str()
            .context("patient id in output")?
            .to_owned())
    }

    /// Registers a device and returns `(device_id, secret)`.
    pub async fn add_device(
        &self,
        patient_id: &str,
        kind: &str,
    ) -> anyhow::Result<(String, String)> {
        let out = self
            .admin(&[
                "device",
                "add",
                "--patient",
                patient_id,
                "--kind",
                kind,
                "--json",
            ])
            .await?;
        let json: serde_json::Value = serde_json::from_str(&out)?;
        Ok((
            json["device_id"]
                .as_str()
                .context("device id in output")?
                .to_owned(),
            json["mqtt_password"]
                .as_str()
                .context("secret in output")?
                .to_owned(),
        ))
    }
}

impl crate::ServerUnderTest for ChronicleServer {
    fn http_url(&self, path: &str) -> String {
        ChronicleServer::http_url(self, path)
    }

    fn mqtt_port(&self) -> u16 {
        ChronicleServer::mqtt_port(self)
    }
}

impl Drop for ChronicleServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// A temporary directory the `postgres` user can enter, for a private PostgreSQL when the
/// tests run as root.
pub fn traversable_tempdir() -> anyhow::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("chronicle-test-")
        .tempdir_in("/tmp")?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

/// A server's metrics in Prometheus' text format.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub text: String,
}

impl Metrics {
    /// Reads a server's `/metrics` at `url`.
    pub async fn fetch(http: &reqwest::Client, url: &str) -> anyhow::Result<Metrics> {
        let response = http.get(url).send().await?.error_for_status()?;
        Ok(Metrics {
            text: response.text().await?,
        })
    }

    /// The sum of the samples of `series`: a metric's name (every label set of it) or a name
    /// with its labels (`chronicle_alerts_events_total{kind="opened"}`). `None` when the text
    /// has no such sample.
    pub fn value(&self, series: &str) -> Option<f64> {
        let mut samples = self.text.lines().filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            let matches = name == series
                || (!series.contains('{')
                    && name
                        .strip_prefix(series)
                        .is_some_and(|labels| labels.starts_with('{')));
            matches.then(|| value.parse::<f64>().ok()).flatten()
        });
        let first = samples.next()?;
        Some(first + samples.sum::<f64>())
    }
}

//! The server under test: this same binary run as `chronicle serve` in a child process, so its
//! memory and CPU are measured apart from the benchmark's own devices.

use anyhow::{Context, bail};
use chronicle_embedded::Mosquitto;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// A running `chronicle serve`. Killed if dropped while running.
pub struct ServerUnderTest {
    child: Child,
    pid: u32,
    http: SocketAddr,
    mqtt: SocketAddr,
    log_path: PathBuf,
}

impl ServerUnderTest {
    /// Starts the server on free loopback ports against `database_url` and waits until
    /// `/readyz` answers 200 (database reachable, ingest connected to its broker).
    /// With `external`, the server uses that broker; otherwise it runs its embedded one.
    pub async fn start(
        database_url: &str,
        work_dir: &Path,
        external: Option<&Mosquitto>,
        extra_args: &[String],
    ) -> anyhow::Result<ServerUnderTest> {
        ServerUnderTest::start_logging_to(
            database_url,
            work_dir,
            external,
            extra_args,
            "server.log",
        )
        .await
    }

    /// [`ServerUnderTest::start`] logging to `log_name` in `work_dir`, so a server started
    /// again on the same data keeps the first one's log.
    pub async fn start_logging_to(
        database_url: &str,
        work_dir: &Path,
        external: Option<&Mosquitto>,
        extra_args: &[String],
        log_name: &str,
    ) -> anyhow::Result<ServerUnderTest> {
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mqtt_port = match external {
            Some(broker) => broker.port(),
            None => free_port()?,
        };
        let mqtt = SocketAddr::from(([127, 0, 0, 1], mqtt_port));
        let log_path = work_dir.join(log_name);
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut command = Command::new(
            std::env::current_exe().context("cannot find the chronicle binary to run")?,
        );
        // The server runs with its defaults plus the flags asked for: no configuration from
        // the environment except the log filter.
        for (name, _) in std::env::vars_os() {
            if let Some(name) = name.to_str()
                && name.starts_with("CHRONICLE_")
                && name != "CHRONICLE_LOG"
            {
                command.env_remove(name);
            }
        }
        command
            .arg("serve")
            .arg("--database-url")
            .arg(database_url)
            .arg("--data-dir")
            .arg(work_dir.join("server-data"))
            .args(match external {
                Some(broker) => ["--mqtt-url".to_owned(), broker.url()],
                None => ["--mqtt-listen".to_owned(), mqtt.to_string()],
            })
            .arg("--http-addr")
            .arg(http.to_string())
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let child = command.spawn().context("cannot start chronicle serve")?;
        let pid = child.id().context("chronicle serve exited at once")?;
        let mut server = ServerUnderTest {
            child,
            pid,
            http,
            mqtt,
            log_path,
        };
        server.wait_ready(Duration::from_secs(60)).await?;
        Ok(server)
    }

    async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "chronicle serve exited during start-up ({status}); its log:\n{}",
                    self.log_tail()
                );
            }
            if let Ok((200, _)) = http_get(self.http, "/readyz").await {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "chronicle serve was not ready within {} s; its log:\n{}",
                    timeout.as_secs(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    pub fn mqtt_port(&self) -> u16 {
        self.mqtt.port()
    }

    /// The server's Prometheus metrics, as text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        match http_get(self.http, "/metrics").await? {
            (200, body) => Ok(body),
            (status, _) => bail!("GET /metrics answered {status}"),
        }
    }

    /// The last lines the server logged, for error messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM (a graceful shutdown), then waits for the exit.
    pub async fn terminate(mut self) -> anyhow::Result<ExitStatus> {
        let pid = i32::try_from(self.pid).context("pid out of range")?;
        kill(Pid::from_raw(pid), Signal::SIGTERM).context("cannot signal chronicle serve")?;
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                self.child.kill().await?;
                bail!("chronicle serve did not stop within 60 s of SIGTERM")
            }
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released for the server to use).
pub fn free_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free TCP port")?;
    Ok(listener.local_addr()?.port())
}

/// A minimal HTTP/1.0 GET: the status code and the body. Enough for `/readyz` and `/metrics`,
/// and no HTTP client dependency for the binary.
async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    http_get_as(addr, path, None).await
}

/// [`http_get`] with a bearer token, for the API.
pub async fn http_get_as(
    addr: SocketAddr,
    path: &str,
    bearer: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let authorization = bearer
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n{authorization}\r\n").as_bytes(),
            )
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .context("no HTTP answer within 10 s")??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("malformed HTTP status line")?;
    Ok((status, body.to_owned()))
}

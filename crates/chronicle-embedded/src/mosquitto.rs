//! Mosquitto run beside Chronicle as a child process, configured as `docs/protocol.md`
//! recommends for a deployment (large in-flight window and queue). `chronicle serve` never
//! starts it: the benchmark and the tests do, to measure and test Chronicle against an
//! external broker as it is deployed.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// Why Mosquitto could not be started.
#[derive(Debug, thiserror::Error)]
pub enum MosquittoError {
    #[error(
        "Mosquitto is not installed: install it with `apt-get install mosquitto` \
         (scripts/test does this)"
    )]
    NotInstalled,
    #[error("cannot prepare Mosquitto's configuration in {dir}: {source}")]
    Config {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start mosquitto: {0}")]
    Spawn(#[source] io::Error),
    #[error("mosquitto exited at start ({0})")]
    Exited(String),
    #[error("mosquitto did not listen on port {0} within 5 s")]
    NotListening(u16),
}

/// A Mosquitto broker on a loopback port, allowing anonymous clients. Killed when dropped.
pub struct Mosquitto {
    child: Child,
    port: u16,
    _dir: TempDir,
}

/// A private directory for the configuration, removed with the broker.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mosquitto_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("mosquitto"))
        .find(|p| p.is_file())
}

/// A free TCP port on 127.0.0.1 (bound, then released for the broker to use).
fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Mosquitto {
    /// Starts Mosquitto on a free port and returns once it accepts connections.
    pub async fn start() -> Result<Mosquitto, MosquittoError> {
        let binary = mosquitto_binary().ok_or(MosquittoError::NotInstalled)?;
        let dir = std::env::temp_dir().join(format!(
            "chronicle-mosquitto-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let config_error = |dir: &Path| {
            let dir = dir.to_path_buf();
            move |source| MosquittoError::Config { dir, source }
        };
        std::fs::create_dir_all(&dir).map_err(config_error(&dir))?;
        let dir = TempDir(dir);
        let port = free_port().map_err(config_error(&dir.0))?;
        let config = dir.0.join("mosquitto.conf");
        write_config(&config, port).map_err(config_error(&dir.0))?;
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(MosquittoError::Spawn)?;
        let mut broker = Mosquitto {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(broker);
            }
            if let Ok(Some(status)) = broker.child.try_wait() {
                return Err(MosquittoError::Exited(status.to_string()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(MosquittoError::NotListening(port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL `chronicle serve --mqtt-url` takes.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The broker's process id (for CPU accounting).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// The settings `docs/protocol.md` recommends, minus persistence (a throwaway broker).
fn write_config(path: &Path, port: u16) -> io::Result<()> {
    std::fs::write(
        path,
        format!(
            "listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             max_inflight_messages 1000\n\
             max_queued_messages 1000000\n\
             persistence false\n\
             set_tcp_nodelay true\n\
             log_dest stderr\n\
             log_type error\n\
             log_type warning\n"
        ),
    )
}

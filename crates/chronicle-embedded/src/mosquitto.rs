//! Mosquitto run beside Chronicle as a child process. `chronicle serve` never starts it: the
//! benchmark and the tests do, to measure and test Chronicle against an external broker.
//!
//! [`Mosquitto::start_secured`] runs it in the configuration `docs/security.md` documents for
//! a deployment: no anonymous clients, the password and ACL files Chronicle writes from its
//! registry (`--mosquitto-auth-dir`), client ids bound to usernames, a large in-flight window
//! and queue, no Nagle delay, and optionally a TLS listener. [`Mosquitto::start`] allows
//! anonymous clients, for measuring the broker alone.

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

/// A Mosquitto broker on a loopback port. Killed when dropped.
pub struct Mosquitto {
    child: Child,
    port: u16,
    tls_port: Option<u16>,
    dir: TempDir,
}

/// A TLS listener for [`Mosquitto::start_secured`]: certificate files in PEM.
#[derive(Debug, Clone)]
pub struct MosquittoTls {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The files Chronicle keeps for Mosquitto, inside the broker's directory.
const AUTH_DIR: &str = "chronicle-auth";

/// Messages Mosquitto queues per disconnected persistent session unless told otherwise.
const DEFAULT_MAX_QUEUED: u64 = 1_000_000;

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
    /// Starts Mosquitto on a free port, allowing anonymous clients, and returns once it
    /// accepts connections.
    pub async fn start() -> Result<Mosquitto, MosquittoError> {
        Mosquitto::launch(None, DEFAULT_MAX_QUEUED).await
    }

    /// [`Mosquitto::start`] holding up to `max_queued_messages` for each disconnected
    /// persistent session (0: no limit) and no limit in bytes, so an outage of the ingest of
    /// any length loses nothing while memory lasts (`chronicle bench fleet`'s catch-up).
    pub async fn start_with_queue_limit(
        max_queued_messages: u64,
    ) -> Result<Mosquitto, MosquittoError> {
        Mosquitto::launch(None, max_queued_messages).await
    }

    /// Starts Mosquitto in the documented secured configuration, with empty password and ACL
    /// files in [`Mosquitto::auth_dir`] (nobody may connect until Chronicle writes them) and,
    /// with `tls`, a TLS listener as well.
    pub async fn start_secured(tls: Option<MosquittoTls>) -> Result<Mosquitto, MosquittoError> {
        Mosquitto::launch(Some(tls), DEFAULT_MAX_QUEUED).await
    }

    async fn launch(
        secured: Option<Option<MosquittoTls>>,
        max_queued_messages: u64,
    ) -> Result<Mosquitto, MosquittoError> {
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
        let mut tls_port = None;
        match &secured {
            None => {
                write_config(&config, port, max_queued_messages).map_err(config_error(&dir.0))?
            }
            Some(tls) => {
                let listener_tls = match tls {
                    Some(files) => {
                        let tls = free_port().map_err(config_error(&dir.0))?;
                        tls_port = Some(tls);
                        Some((tls, files))
                    }
                    None => None,
                };
                write_secured_config(&config, &dir.0, port, listener_tls)
                    .map_err(config_error(&dir.0))?;
            }
        }
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
            tls_port,
            dir,
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

    /// The TLS listener's port, when started with one.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// Where Chronicle keeps the password and ACL files (`--mosquitto-auth-dir`).
    pub fn auth_dir(&self) -> PathBuf {
        self.dir.0.join(AUTH_DIR)
    }

    /// Mosquitto's pid file (`--mosquitto-pid-file`).
    pub fn pid_file(&self) -> PathBuf {
        self.dir.0.join("run/mosquitto.pid")
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

/// The configuration `docs/security.md` documents, minus persistence (a throwaway broker),
/// with empty password and ACL files for Chronicle to fill. The files are readable by
/// Mosquitto's group, as Mosquitto reads them after dropping root's privileges.
fn write_secured_config(
    path: &Path,
    dir: &Path,
    port: u16,
    tls: Option<(u16, &MosquittoTls)>,
) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let auth = dir.join(AUTH_DIR);
    std::fs::create_dir_all(&auth)?;
    let passwords = auth.join("chronicle.passwd");
    let acl = auth.join("chronicle.acl");
    std::fs::write(&passwords, "")?;
    std::fs::write(&acl, "")?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o2750))?;
    for file in [&passwords, &acl] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o640))?;
    }
    // Mosquitto writes its pid file after dropping root's privileges, so into a directory of
    // its own.
    let run = dir.join("run");
    std::fs::create_dir_all(&run)?;
    if let Ok(Some(group)) = nix::unistd::Group::from_name("mosquitto") {
        for path in [&auth, &passwords, &acl] {
            nix::unistd::chown(path.as_path(), None, Some(group.gid)).map_err(io::Error::from)?;
        }
    }
    if let Ok(Some(user)) = nix::unistd::User::from_name("mosquitto") {
        nix::unistd::chown(run.as_path(), Some(user.uid), Some(user.gid))
            .map_err(io::Error::from)?;
    }
    let mut config = format!(
        "per_listener_settings false\n\
         allow_anonymous false\n\
         password_file {passwords}\n\
         acl_file {acl}\n\
         max_inflight_messages 1000\n\
         max_queued_messages 1000000\n\
         set_tcp_nodelay true\n\
         persistence false\n\
         pid_file {pid}\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n\
         listener {port} 127.0.0.1\n\
         use_username_as_clientid true\n",
        passwords = passwords.display(),
        acl = acl.display(),
        pid = dir.join("run/mosquitto.pid").display(),
    );
    if let Some((tls_port, files)) = tls {
        config.push_str(&format!(
            "listener {tls_port} 127.0.0.1\n\
             use_username_as_clientid true\n\
             cafile {}\n\
             certfile {}\n\
             keyfile {}\n\
             tls_version tlsv1.2\n",
            files.ca_file.display(),
            files.cert_file.display(),
            files.key_file.display(),
        ));
    }
    std::fs::write(path, config)
}

/// A broker for measuring alone: anonymous clients, the throughput settings of a deployment.
fn write_config(path: &Path, port: u16, max_queued_messages: u64) -> io::Result<()> {
    std::fs::write(
        path,
        format!(
            "listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             max_inflight_messages 1000\n\
             max_queued_messages {max_queued_messages}\n\
             max_queued_bytes 0\n\
             persistence false\n\
             set_tcp_nodelay true\n\
             log_dest stderr\n\
             log_type error\n\
             log_type warning\n"
        ),
    )
}

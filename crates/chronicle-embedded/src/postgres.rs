//! A private PostgreSQL cluster that the Chronicle server starts itself.
//!
//! The cluster lives in `<data_dir>/postgres`, listens only on 127.0.0.1 (no
//! Unix socket) and is protected by a random password kept in
//! `<data_dir>/postgres-password`. The first start runs `initdb`; later starts
//! reuse the cluster, so data persists between runs of the server.
//!
//! PostgreSQL refuses to run as root, so when Chronicle runs as root every
//! PostgreSQL program is run as the `postgres` system account (created by the
//! Debian/Ubuntu `postgresql` package) and the cluster directory is owned by it.

use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::unistd::{self, Gid, Pid, Uid, User};
use rand::Rng;
use rand::distr::Alphanumeric;
use tokio::process::{Child, Command};
use tracing::{debug, info, warn};

/// Role that owns the cluster and that Chronicle logs in as.
const DB_USER: &str = "chronicle";
/// Length of the generated password; 32 alphanumerics is ~190 bits.
const PASSWORD_LEN: usize = 32;
/// How long a (possibly crash-recovering) server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Interval between readiness probes.
const READY_POLL: Duration = Duration::from_millis(100);
/// How long a fast shutdown may take before we give up (stale server) or kill.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of `postgres.log` quoted in start-up errors.
const LOG_TAIL_LINES: usize = 20;
/// Where Debian/Ubuntu install the server binaries, one directory per major version.
const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";
/// Client programs run from the server's binary directory.
const CLIENT_TOOLS: [&str; 2] = ["pg_isready", "createdb"];
/// System account the Debian package creates and that owns clusters when we are root.
const POSTGRES_ACCOUNT: &str = "postgres";

/// Errors from finding, initialising, starting or stopping the private PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum PrivatePostgresError {
    /// Neither PATH nor the Debian layout has the server binaries.
    #[error(
        "PostgreSQL server binaries (initdb, postgres) were not found on PATH or in \
         /usr/lib/postgresql/*/bin. Install PostgreSQL 15 or newer (Debian/Ubuntu: apt-get \
         install postgresql), or point Chronicle at an existing server with \
         CHRONICLE_DATABASE_URL."
    )]
    NotInstalled,

    /// The explicitly configured binary directory lacks `postgres` or `initdb`.
    #[error(
        "{dir} does not contain the PostgreSQL server binaries (initdb, postgres); \
         point the PostgreSQL binary directory setting at the directory that holds them, \
         install PostgreSQL 15 or newer (Debian/Ubuntu: apt-get install postgresql), or use \
         an existing server with CHRONICLE_DATABASE_URL"
    )]
    BinariesNotInDir {
        /// The directory that was configured.
        dir: PathBuf,
    },

    /// The server binaries were found, but a client tool we need is not next to them.
    #[error(
        "{tool} was not found in {dir}, next to the PostgreSQL server binaries; install the \
         PostgreSQL client programs (Debian/Ubuntu: apt-get install postgresql-client) or \
         point the PostgreSQL binary directory setting at a complete installation"
    )]
    ClientToolMissing {
        /// The missing program.
        tool: &'static str,
        /// Where it was expected.
        dir: PathBuf,
    },

    /// Running as root, but the account PostgreSQL must run as does not exist.
    #[error(
        "Chronicle is running as root, but PostgreSQL refuses to run as root and there is no \
         `postgres` system user to run it as. Installing the PostgreSQL package \
         (apt-get install postgresql) creates it; alternatively run Chronicle as an \
         unprivileged user or set CHRONICLE_DATABASE_URL"
    )]
    NoPostgresUser,

    /// The user database could not be queried.
    #[error("could not look up the `postgres` system user: {0}")]
    UserLookup(#[source] nix::Error),

    /// The configured data directory path could not be made absolute.
    #[error("could not resolve the data directory {path}: {source}")]
    ResolveDataDir {
        /// The configured path.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },

    /// A directory could not be created or its permissions set.
    #[error("could not create or set permissions on directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },

    /// The `postgres` account cannot reach the data directory.
    #[error(
        "the `postgres` system user cannot enter {dir}, which it needs in order to reach the \
         database under {data_dir} (PostgreSQL runs as `postgres` because Chronicle runs as \
         root). Choose a data directory the `postgres` user can reach, e.g. \
         --data-dir /var/lib/chronicle, or allow access with `chmod o+x {dir}`"
    )]
    DataDirNotTraversable {
        /// The first ancestor that is not traversable.
        dir: PathBuf,
        /// The data directory that was asked for.
        data_dir: PathBuf,
    },

    /// Changing ownership of a file or directory to the `postgres` account failed.
    #[error("could not give {path} to the `postgres` system user: {source}")]
    Chown {
        /// What we tried to chown.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: nix::Error,
    },

    /// The existing cluster directory belongs to a different account.
    #[error(
        "the PostgreSQL cluster directory {dir} is owned by uid {actual_uid}, but PostgreSQL \
         will run as uid {expected_uid} and refuses to use it. Run Chronicle as the same user \
         as before, or fix the ownership with `chown -R {expected_uid} {dir}`"
    )]
    WrongClusterOwner {
        /// The cluster directory.
        dir: PathBuf,
        /// Its current owner.
        actual_uid: u32,
        /// The uid PostgreSQL will run as.
        expected_uid: u32,
    },

    /// Reading or writing `postgres-password` failed.
    #[error("could not read or write the database password file {path}: {source}")]
    PasswordFile {
        /// The password file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },

    /// The cluster exists but its password was lost.
    #[error(
        "the PostgreSQL cluster in {cluster_dir} exists but its password file {path} is \
         missing or empty. Restore the file from a backup, or remove {cluster_dir} to start \
         again with an empty database (this deletes all stored data)"
    )]
    PasswordFileMissing {
        /// Where the password should be.
        path: PathBuf,
        /// The cluster that needs it.
        cluster_dir: PathBuf,
    },

    /// The database name would need quoting in SQL or escaping in the URL.
    #[error("invalid database name {name:?}: use 1 to 63 ASCII letters, digits, '_' or '-'")]
    InvalidDatabaseName {
        /// The rejected name.
        name: String,
    },

    /// A PostgreSQL program could not be executed.
    #[error("could not run {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },

    /// `initdb` exited unsuccessfully.
    #[error(
        "initdb failed ({status}) for {cluster_dir}:\n{output}\nIf {cluster_dir} holds \
         leftovers of an interrupted first start, remove it and try again"
    )]
    InitdbFailed {
        /// The directory initdb was initialising.
        cluster_dir: PathBuf,
        /// initdb's exit status.
        status: ExitStatus,
        /// What initdb printed on stderr.
        output: String,
    },

    /// `postmaster.pid` could not be read.
    #[error("could not read {path}: {source}")]
    PidFile {
        /// The pid file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },

    /// A PostgreSQL left over from an earlier run would not shut down.
    #[error(
        "a PostgreSQL server from an earlier run (pid {pid}) is still using {cluster_dir} and \
         did not shut down within 30 s; stop it (kill {pid}) and start Chronicle again"
    )]
    StalePostmaster {
        /// Its pid.
        pid: i32,
        /// The cluster it serves.
        cluster_dir: PathBuf,
    },

    /// No free TCP port could be obtained from the OS.
    #[error("could not find a free TCP port on 127.0.0.1: {0}")]
    NoFreePort(#[source] io::Error),

    /// The requested port is already taken.
    #[error(
        "port {port} on 127.0.0.1 is already in use, so the private PostgreSQL cannot listen \
         on it; choose another port or stop the program using it"
    )]
    PortInUse {
        /// The port.
        port: u16,
        /// The bind error.
        #[source]
        source: io::Error,
    },

    /// `postgres.log` could not be opened.
    #[error("could not open the PostgreSQL log file {path}: {source}")]
    LogFile {
        /// The log file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },

    /// The server exited before accepting connections.
    #[error("PostgreSQL exited during start-up ({status}); last lines of {log_path}:\n{log_tail}")]
    ExitedEarly {
        /// Its exit status.
        status: ExitStatus,
        /// The log to read for details.
        log_path: PathBuf,
        /// The end of that log.
        log_tail: String,
    },

    /// The server did not accept connections in time.
    #[error(
        "PostgreSQL did not accept connections on 127.0.0.1:{port} within 60 s; last lines \
         of {log_path}:\n{log_tail}"
    )]
    StartTimeout {
        /// The port it should listen on.
        port: u16,
        /// The log to read for details.
        log_path: PathBuf,
        /// The end of that log.
        log_tail: String,
    },

    /// `createdb` failed for another reason than "already exists".
    #[error("could not create database {database:?} ({status}): {output}")]
    CreatedbFailed {
        /// The database.
        database: String,
        /// createdb's exit status.
        status: ExitStatus,
        /// What createdb printed.
        output: String,
    },

    /// Signalling the server failed.
    #[error("could not send {signal} to PostgreSQL (pid {pid}): {source}")]
    Signal {
        /// The signal.
        signal: Signal,
        /// The target pid.
        pid: i32,
        /// Why it failed.
        #[source]
        source: nix::Error,
    },

    /// Waiting for the server process failed.
    #[error("could not wait for the PostgreSQL process: {0}")]
    Wait(#[source] io::Error),
}

/// Result alias for this module.
type Result<T, E = PrivatePostgresError> = std::result::Result<T, E>;

/// How to start the private PostgreSQL.
#[derive(Debug, Clone)]
pub struct PrivatePostgresConfig {
    /// Chronicle's data directory. The cluster lives in `data_dir/postgres`, its password
    /// in `data_dir/postgres-password` and the server log in `data_dir/postgres.log`, so
    /// one directory holds everything that must be backed up.
    pub data_dir: PathBuf,
    /// TCP port on 127.0.0.1. `None` picks a free port at each start, which avoids
    /// clashing with a system PostgreSQL on 5432.
    pub port: Option<u16>,
    /// Directory with `postgres`, `initdb`, `pg_isready` and `createdb`. `None` searches
    /// PATH and then `/usr/lib/postgresql/*/bin`, because Debian keeps them off PATH.
    pub bin_dir: Option<PathBuf>,
    /// Database to create if missing, e.g. `chronicle`.
    pub database: String,
    /// Also preload `pg_stat_statements` (shipped with PostgreSQL), so that a benchmark can
    /// say which statements the time went to. Off for `serve`: it costs every statement a
    /// little.
    pub statement_statistics: bool,
}

/// The OS account PostgreSQL programs run as when we are root.
#[derive(Debug, Clone, Copy)]
struct Account {
    /// Its uid; also the required owner of the cluster directory.
    uid: Uid,
    /// Its primary gid, so that group permissions work as for a login.
    gid: Gid,
}

/// A running private PostgreSQL server owned by this process.
///
/// Dropping it sends a fast-shutdown request (SIGINT) without waiting; call
/// [`PrivatePostgres::stop`] to wait for a clean shutdown.
pub struct PrivatePostgres {
    /// Directory of the server binaries, resolved once so restarts use the same version.
    bin_dir: PathBuf,
    /// `data_dir/postgres`, the cluster's data directory.
    cluster_dir: PathBuf,
    /// `data_dir/postgres.log`, where the server's output goes.
    log_path: PathBuf,
    /// Database Chronicle uses; part of the URL.
    database: String,
    /// Password of the `chronicle` role; part of the URL, never logged.
    password: String,
    /// Port on 127.0.0.1; kept across restarts so existing URLs stay valid.
    port: u16,
    /// Account to run PostgreSQL programs as (`None`: the current user).
    account: Option<Account>,
    /// Whether the postmaster preloads `pg_stat_statements`.
    statement_statistics: bool,
    /// The postmaster, while it runs.
    child: Option<Child>,
}

impl std::fmt::Debug for PrivatePostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hand-written so the password never ends up in logs via `{:?}`.
        f.debug_struct("PrivatePostgres")
            .field("url", &self.redacted_url())
            .field("cluster_dir", &self.cluster_dir)
            .field("pid", &self.child.as_ref().and_then(Child::id))
            .finish_non_exhaustive()
    }
}

impl PrivatePostgres {
    /// Initialises the cluster if needed, starts the server, waits until it accepts
    /// connections and creates the configured database if it does not exist.
    pub async fn start(config: PrivatePostgresConfig) -> Result<Self> {
        validate_database_name(&config.database)?;
        let bin_dir = find_server_binaries(config.bin_dir.as_deref())?;
        // Children run with "/" as working directory, so every path must be absolute.
        let bin_dir = absolute(&bin_dir)?;
        check_client_tools(&bin_dir)?;
        let data_dir = absolute(&config.data_dir)?;
        let account = postgres_account()?;
        prepare_data_dir(&data_dir, account)?;

        let cluster_dir = data_dir.join("postgres");
        let password_path = data_dir.join("postgres-password");
        let password = if cluster_dir.join("PG_VERSION").exists() {
            check_cluster_owner(&cluster_dir, account)?;
            read_password(&password_path, &cluster_dir)?
        } else {
            init_cluster(&bin_dir, &data_dir, &cluster_dir, &password_path, account).await?
        };

        let port = match config.port {
            Some(port) => port,
            None => free_port()?,
        };
        let mut pg = PrivatePostgres {
            bin_dir,
            cluster_dir,
            log_path: data_dir.join("postgres.log"),
            database: config.database,
            password,
            port,
            account,
            statement_statistics: config.statement_statistics,
            child: None,
        };
        match running_postmaster(&pg.cluster_dir) {
            // Another `chronicle` command (typically `serve`) runs this cluster: use it and
            // leave it running for its owner. A postmaster orphaned by a crash is used the
            // same way; it stops when its data directory's next owner restarts it.
            Some((pid, port)) => {
                info!(
                    pid = pid.as_raw(),
                    port, "using the private PostgreSQL already running on this data directory"
                );
                pg.port = port;
                pg.wait_ready().await?;
            }
            None => pg.launch().await?,
        }
        if let Err(e) = pg.ensure_database().await {
            // Do not leave a server running that the caller cannot use.
            let _ = pg.stop().await;
            return Err(e);
        }
        info!(url = %pg.redacted_url(), "private PostgreSQL is ready");
        Ok(pg)
    }

    /// Connection URL including the password, for the database pool.
    pub fn database_url(&self) -> String {
        format!(
            "postgres://{DB_USER}:{}@127.0.0.1:{}/{}",
            self.password, self.port, self.database
        )
    }

    /// [`Self::database_url`] with the password replaced by `***`, for logs.
    pub fn redacted_url(&self) -> String {
        format!(
            "postgres://{DB_USER}:***@127.0.0.1:{}/{}",
            self.port, self.database
        )
    }

    /// The TCP port on 127.0.0.1 the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Fast shutdown: sends SIGINT to the postmaster (open transactions are rolled back,
    /// data is flushed) and waits up to 30 s, then kills it. Does nothing if the server
    /// is not running, so it may be called more than once.
    pub async fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(status) = child.try_wait().map_err(PrivatePostgresError::Wait)? {
            warn!(%status, "private PostgreSQL had already exited");
            return Ok(());
        }
        if let Some(pid) = child.id()
            && let Err(e) = send_signal(pid, Signal::SIGINT)
        {
            // Keep the handle so Drop (or a retry) can still reach the process.
            self.child = Some(child);
            return Err(e);
        }
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(Ok(status)) => {
                info!(%status, port = self.port, "private PostgreSQL stopped");
                Ok(())
            }
            Ok(Err(e)) => Err(PrivatePostgresError::Wait(e)),
            Err(_) => {
                warn!(
                    port = self.port,
                    "private PostgreSQL did not shut down within 30 s; killing it (it will run \
                     crash recovery on the next start)"
                );
                child.start_kill().map_err(PrivatePostgresError::Wait)?;
                child.wait().await.map_err(PrivatePostgresError::Wait)?;
                Ok(())
            }
        }
    }

    /// Stops the server and starts it again on the same port with the same data.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await?;
        self.launch().await?;
        info!(url = %self.redacted_url(), "private PostgreSQL restarted");
        Ok(())
    }

    /// Starts the postmaster on `self.port` and waits until it accepts connections.
    async fn launch(&mut self) -> Result<()> {
        stop_stale_postmaster(&self.cluster_dir).await?;
        // Checked up front because pg_isready would otherwise report another server on
        // that port as ready before our postmaster fails to bind.
        ensure_port_free(self.port)?;
        let log = open_log(&self.log_path, self.port)?;
        let log_err = log
            .try_clone()
            .map_err(|source| PrivatePostgresError::LogFile {
                path: self.log_path.clone(),
                source,
            })?;

        let program = self.bin_dir.join("postgres");
        let mut cmd = self.command(&program);
        cmd.arg("-D")
            .arg(&self.cluster_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-c", "listen_addresses=127.0.0.1"])
            // No Unix socket: its default directory (/var/run/postgresql) may not exist or
            // be shared with a system PostgreSQL; TCP on loopback is all we use.
            .args(["-c", "unix_socket_directories="])
            .args(["-c", "max_connections=200"])
            // The follow-up queue is vacuumed after a fixed number of changes (migration
            // 0052), but autovacuum looks at each table only once a naptime (1 min by
            // default): at fleet rates that is hundreds of thousands of dead rows for its
            // claims to walk past.
            .args(["-c", "autovacuum_naptime=10s"])
            // A fleet writes WAL at tens of MB/s: with the default 1 GB PostgreSQL
            // checkpoints every few seconds (it says so in its log), and after each
            // checkpoint the first change to every page writes the whole page into the WAL
            // again. Spaced by time instead, a checkpoint is paid for once per page. Not more:
            // a crash of PostgreSQL replays up to this much WAL before anything is stored or
            // alerted again (about 55 MB/s here, so 16 GB would be about five minutes).
            .args(["-c", "max_wal_size=4GB"])
            .args(["-c", "checkpoint_timeout=15min"])
            // PostgreSQL's 128 MB default holds a fraction of a large registry's hot pages
            // (devices, latest readings, rollups, their keys): every miss copies a page in
            // from the kernel's cache and evicts another, often dirty, one.
            .arg("-c")
            .arg(format!(
                "shared_buffers={}MB",
                shared_buffers_mib(memory_limit_bytes())
            ));
        // TimescaleDB loads only when preloaded: with the extension installed beside this
        // PostgreSQL, the private cluster preloads it, so `--timescale auto|required` works.
        let preload: Vec<&str> = [
            timescaledb_installed(&self.bin_dir).then_some("timescaledb"),
            self.statement_statistics.then_some("pg_stat_statements"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !preload.is_empty() {
            cmd.arg("-c")
                .arg(format!("shared_preload_libraries={}", preload.join(",")));
        }
        // Most of a fleet's WAL is whole pages written again after each checkpoint; LZ4
        // shrinks them for little CPU, so checkpoints come less often and the next one has
        // fewer pages to pay for. A build without LZ4 would refuse the setting, so it is
        // asked of this build's own configuration first.
        if built_with_lz4(&self.bin_dir).await {
            cmd.args(["-c", "wal_compression=lz4"]);
        }
        cmd.stdout(log)
            .stderr(log_err)
            // Own process group: a Ctrl-C in the terminal reaches only the Chronicle
            // server, which then stops PostgreSQL after its own graceful shutdown.
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|source| PrivatePostgresError::Spawn { program, source })?;
        debug!(pid = ?child.id(), port = self.port, "postmaster spawned");
        self.child = Some(child);
        self.wait_ready().await
    }

    /// Polls `pg_isready` until the server accepts connections, it exits, or time runs out.
    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().map_err(PrivatePostgresError::Wait)?
            {
                self.child = None;
                return Err(PrivatePostgresError::ExitedEarly {
                    status,
                    log_tail: log_tail(&self.log_path),
                    log_path: self.log_path.clone(),
                });
            }
            if self.is_ready().await? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let log_tail = log_tail(&self.log_path);
                let _ = self.stop().await;
                return Err(PrivatePostgresError::StartTimeout {
                    port: self.port,
                    log_path: self.log_path.clone(),
                    log_tail,
                });
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// One `pg_isready` probe; exit status 0 means "accepting connections".
    async fn is_ready(&self) -> Result<bool> {
        let program = self.bin_dir.join("pg_isready");
        let status = self
            .command(&program)
            .args(["-q", "-h", "127.0.0.1", "-t", "2", "-p"])
            .arg(self.port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .map_err(|source| PrivatePostgresError::Spawn { program, source })?;
        Ok(status.success())
    }

    /// Creates the configured database unless it already exists.
    async fn ensure_database(&self) -> Result<()> {
        let program = self.bin_dir.join("createdb");
        let output = self
            .command(&program)
            .args(["-w", "-h", "127.0.0.1", "-U", DB_USER, "-p"])
            .arg(self.port.to_string())
            .arg(&self.database)
            .env("PGPASSWORD", &self.password)
            .env("PGCONNECT_TIMEOUT", "10")
            // English messages, so the "already exists" test below works.
            .env("LC_ALL", "C")
            .output()
            .await
            .map_err(|source| PrivatePostgresError::Spawn { program, source })?;
        let text = output_text(&output);
        if output.status.success() {
            info!(database = %self.database, "created database");
            Ok(())
        } else if text.contains("already exists") {
            debug!(database = %self.database, "database already exists");
            Ok(())
        } else {
            Err(PrivatePostgresError::CreatedbFailed {
                database: self.database.clone(),
                status: output.status,
                output: text,
            })
        }
    }

    /// A command for a PostgreSQL program, run as the right account.
    fn command(&self, program: &Path) -> Command {
        base_command(program, self.account)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Best effort, no waiting: ask the postmaster to shut down so no orphaned
        // PostgreSQL outlives the server. `id()` is None once the child was reaped, so
        // we never signal a recycled pid.
        if let Some(pid) = self.child.as_ref().and_then(Child::id) {
            debug!(
                pid,
                "dropping PrivatePostgres; asking PostgreSQL to shut down"
            );
            if let Err(e) = send_signal(pid, Signal::SIGINT) {
                warn!(error = %e, "could not ask PostgreSQL to shut down");
            }
        }
    }
}

/// Finds the directory holding `postgres` and `initdb`.
///
/// With `explicit`, only that directory is checked. Otherwise PATH is searched first,
/// then `/usr/lib/postgresql/<version>/bin`, preferring the highest version.
pub fn find_server_binaries(explicit: Option<&Path>) -> Result<PathBuf> {
    find_server_binaries_in(
        explicit,
        std::env::var_os("PATH"),
        Path::new(DEBIAN_PG_ROOT),
    )
}

/// [`find_server_binaries`] with its environment passed in, for tests.
fn find_server_binaries_in(
    explicit: Option<&Path>,
    path_var: Option<OsString>,
    debian_root: &Path,
) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return if has_server_binaries(dir) {
            Ok(resolve_symlinked_dir(dir))
        } else {
            Err(PrivatePostgresError::BinariesNotInDir {
                dir: dir.to_path_buf(),
            })
        };
    }
    if let Some(path_var) = path_var
        && let Some(dir) = std::env::split_paths(&path_var).find(|d| has_server_binaries(d))
    {
        return Ok(resolve_symlinked_dir(&dir));
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(debian_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            // Directory names are major versions such as "15" or "9.6".
            let version = name
                .to_str()?
                .split('.')
                .map(str::parse)
                .collect::<Result<Vec<u32>, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            has_server_binaries(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, dir)| dir)
        .ok_or(PrivatePostgresError::NotInstalled)
}

/// If `dir/postgres` is a symlink (e.g. /usr/local/bin/postgres pointing into
/// /usr/lib/postgresql/15/bin, or Homebrew's bin into its Cellar), the directory of the
/// real binary, which also holds the client tools (pg_isready, createdb) that are often
/// not linked; otherwise `dir` itself.
fn resolve_symlinked_dir(dir: &Path) -> PathBuf {
    fs::canonicalize(dir.join("postgres"))
        .ok()
        .and_then(|real| real.parent().map(Path::to_path_buf))
        .filter(|real_dir| has_server_binaries(real_dir))
        .unwrap_or_else(|| dir.to_path_buf())
}

/// Fails unless the client tools used at start-up are next to the server binaries.
fn check_client_tools(bin_dir: &Path) -> Result<()> {
    for name in CLIENT_TOOLS {
        if !is_executable(&bin_dir.join(name)) {
            return Err(PrivatePostgresError::ClientToolMissing {
                tool: name,
                dir: bin_dir.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// True if `path` is an executable regular file (following symlinks).
fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// True if `dir` has executable `postgres` and `initdb` files.
fn has_server_binaries(dir: &Path) -> bool {
    ["postgres", "initdb"]
        .iter()
        .all(|name| is_executable(&dir.join(name)))
}

/// Rejects names that would need quoting in SQL or escaping in the URL.
fn validate_database_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(PrivatePostgresError::InvalidDatabaseName {
            name: name.to_owned(),
        })
    }
}

/// Makes `path` absolute against the current directory (without resolving symlinks).
fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|source| PrivatePostgresError::ResolveDataDir {
        path: path.to_path_buf(),
        source,
    })
}

/// The account to run PostgreSQL as: `postgres` when we are root, else ourselves.
fn postgres_account() -> Result<Option<Account>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    match User::from_name(POSTGRES_ACCOUNT) {
        Ok(Some(user)) => Ok(Some(Account {
            uid: user.uid,
            gid: user.gid,
        })),
        Ok(None) => Err(PrivatePostgresError::NoPostgresUser),
        Err(e) => Err(PrivatePostgresError::UserLookup(e)),
    }
}

/// A command for a PostgreSQL program with a predictable environment.
fn base_command(program: &Path, account: Option<Account>) -> Command {
    let mut cmd = Command::new(program);
    // The caller's working directory (e.g. /root) may be unreadable for `postgres`, and
    // initdb fails if it cannot determine its working directory.
    cmd.current_dir("/")
        .stdin(Stdio::null())
        .kill_on_drop(false);
    // PG* variables (PGSSLMODE, PGUSER, PGDATA, ...) meant for some other server would
    // change how our tools connect or where postgres looks for its data.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    if let Some(account) = account {
        // std drops supplementary groups (setgroups) when switching uid as root.
        cmd.uid(account.uid.as_raw()).gid(account.gid.as_raw());
    }
    cmd
}

/// Creates the data directory and, as root, makes sure `postgres` can reach it.
fn prepare_data_dir(data_dir: &Path, account: Option<Account>) -> Result<()> {
    let missing: Vec<PathBuf> = data_dir
        .ancestors()
        .take_while(|dir| !dir.exists())
        .map(Path::to_path_buf)
        .collect();
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(data_dir)
        .map_err(|source| PrivatePostgresError::CreateDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
    let Some(account) = account else {
        return Ok(());
    };
    // The umask may have stripped o+x from directories we just created; they are ours,
    // so make them traversable (not listable by others beyond the usual 0755).
    for dir in &missing {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(|source| {
            PrivatePostgresError::CreateDir {
                path: dir.clone(),
                source,
            }
        })?;
    }
    let resolved =
        fs::canonicalize(data_dir).map_err(|source| PrivatePostgresError::ResolveDataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
    if let Some(dir) = first_untraversable(&resolved, account)? {
        return Err(PrivatePostgresError::DataDirNotTraversable {
            dir,
            data_dir: data_dir.to_path_buf(),
        });
    }
    Ok(())
}

/// The first directory on the way to `resolved` (an absolute, existing path) that `account`
/// may not enter, if any.
fn first_untraversable(resolved: &Path, account: Account) -> Result<Option<PathBuf>> {
    for dir in resolved.ancestors() {
        let meta = fs::metadata(dir).map_err(|source| PrivatePostgresError::ResolveDataDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let mode = meta.mode();
        let traversable = mode & 0o001 != 0
            || (meta.uid() == account.uid.as_raw() && mode & 0o100 != 0)
            || (meta.gid() == account.gid.as_raw() && mode & 0o010 != 0);
        if !traversable {
            return Ok(Some(dir.to_path_buf()));
        }
    }
    Ok(None)
}

/// Whether a private PostgreSQL could live under `data_dir`: always when not running as
/// root; as root, when the `postgres` account can reach it. Lets a caller pick another
/// default instead of failing (a clone under `/root` is not reachable).
pub fn data_dir_is_usable(data_dir: &Path) -> bool {
    let Ok(Some(account)) = postgres_account() else {
        return true;
    };
    let Ok(absolute) = absolute(data_dir) else {
        return false;
    };
    let Some(existing) = absolute.ancestors().find(|dir| dir.exists()) else {
        return false;
    };
    match fs::canonicalize(existing) {
        Ok(resolved) => matches!(first_untraversable(&resolved, account), Ok(None)),
        Err(_) => false,
    }
}

/// Fails early with a clear message if the cluster belongs to another account, instead
/// of letting postgres exit with "data directory has wrong ownership".
fn check_cluster_owner(cluster_dir: &Path, account: Option<Account>) -> Result<()> {
    let expected = account.map_or_else(Uid::effective, |a| a.uid).as_raw();
    let meta = fs::metadata(cluster_dir).map_err(|source| PrivatePostgresError::CreateDir {
        path: cluster_dir.to_path_buf(),
        source,
    })?;
    if meta.uid() == expected {
        Ok(())
    } else {
        Err(PrivatePostgresError::WrongClusterOwner {
            dir: cluster_dir.to_path_buf(),
            actual_uid: meta.uid(),
            expected_uid: expected,
        })
    }
}

/// Reads the password saved by the first start.
fn read_password(path: &Path, cluster_dir: &Path) -> Result<String> {
    let missing = || PrivatePostgresError::PasswordFileMissing {
        path: path.to_path_buf(),
        cluster_dir: cluster_dir.to_path_buf(),
    };
    match fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
        Ok(_) => Err(missing()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(missing()),
        Err(source) => Err(PrivatePostgresError::PasswordFile {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// A fresh random password for the `chronicle` role.
fn generate_password() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(PASSWORD_LEN)
        .map(char::from)
        .collect()
}

/// Writes `contents` to a new file with mode 0600 (the file must not exist).
fn write_private_file(path: &Path, contents: &str) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Saves the password atomically (temp file + rename) so a crash cannot leave a
/// truncated password next to a cluster that needs it.
fn save_password(path: &Path, password: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let wrap = |source| PrivatePostgresError::PasswordFile {
        path: path.to_path_buf(),
        source,
    };
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(wrap(e)),
        _ => {}
    }
    write_private_file(&tmp, &format!("{password}\n")).map_err(wrap)?;
    fs::rename(&tmp, path).map_err(wrap)
}

/// The temporary `--pwfile` for initdb; deleted when dropped, whatever happens.
struct PwFile {
    /// Where it is; needed for deletion.
    path: PathBuf,
}

impl PwFile {
    /// Writes the password to `path`, readable only by the account initdb runs as.
    fn create(path: PathBuf, password: &str, account: Option<Account>) -> Result<Self> {
        let wrap = |source| PrivatePostgresError::PasswordFile {
            path: path.clone(),
            source,
        };
        // Leftover from a crash during an earlier first start.
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(wrap(e)),
            _ => {}
        }
        write_private_file(&path, &format!("{password}\n")).map_err(wrap)?;
        let pwfile = PwFile { path };
        if let Some(account) = account {
            unistd::chown(&pwfile.path, Some(account.uid), Some(account.gid)).map_err(
                |source| PrivatePostgresError::Chown {
                    path: pwfile.path.clone(),
                    source,
                },
            )?;
        }
        Ok(pwfile)
    }
}

impl Drop for PwFile {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            warn!(path = %self.path.display(), error = %e, "could not delete initdb password file");
        }
    }
}

/// First start: creates the cluster directory, generates and saves the password and
/// runs initdb. Returns the password.
async fn init_cluster(
    bin_dir: &Path,
    data_dir: &Path,
    cluster_dir: &Path,
    password_path: &Path,
    account: Option<Account>,
) -> Result<String> {
    info!(cluster_dir = %cluster_dir.display(), "initialising a new PostgreSQL cluster");
    let create_err = |source| PrivatePostgresError::CreateDir {
        path: cluster_dir.to_path_buf(),
        source,
    };
    DirBuilder::new()
        .mode(0o700)
        .create(cluster_dir)
        .or_else(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(create_err)?;
    if let Some(account) = account {
        unistd::chown(cluster_dir, Some(account.uid), Some(account.gid)).map_err(|source| {
            PrivatePostgresError::Chown {
                path: cluster_dir.to_path_buf(),
                source,
            }
        })?;
    }
    // PostgreSQL requires 0700 (or 0750) on its data directory.
    fs::set_permissions(cluster_dir, fs::Permissions::from_mode(0o700)).map_err(create_err)?;

    let password = generate_password();
    // Saved before initdb: a cluster whose password was never saved would be unusable.
    save_password(password_path, &password)?;
    // Outside the cluster directory, which initdb requires to be empty.
    let pwfile = PwFile::create(data_dir.join(".initdb-pwfile"), &password, account)?;
    let mut pwfile_arg = OsString::from("--pwfile=");
    pwfile_arg.push(&pwfile.path);

    let program = bin_dir.join("initdb");
    let output = base_command(&program, account)
        .arg("-D")
        .arg(cluster_dir)
        .arg(format!("--username={DB_USER}"))
        .arg("--auth=scram-sha-256")
        .arg(pwfile_arg)
        .arg("--encoding=UTF8")
        .arg("--locale=C.UTF-8")
        .output()
        .await
        .map_err(|source| PrivatePostgresError::Spawn { program, source })?;
    drop(pwfile);
    debug!(stdout = %String::from_utf8_lossy(&output.stdout), "initdb output");
    if !output.status.success() {
        return Err(PrivatePostgresError::InitdbFailed {
            cluster_dir: cluster_dir.to_path_buf(),
            status: output.status,
            output: output_text(&output),
        });
    }
    Ok(password)
}

/// The pid and port of a live PostgreSQL running `cluster_dir`, from its `postmaster.pid`
/// (line 1 is the pid, line 4 the port).
fn running_postmaster(cluster_dir: &Path) -> Option<(Pid, u16)> {
    let contents = fs::read_to_string(cluster_dir.join("postmaster.pid")).ok()?;
    let mut lines = contents.lines();
    let pid = Pid::from_raw(
        lines
            .next()?
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|p| *p > 0)?,
    );
    let port = lines.nth(2)?.trim().parse::<u16>().ok()?;
    (process_alive(pid) && is_postgres_process(pid) == Some(true)).then_some((pid, port))
}

/// If `postmaster.pid` names a live PostgreSQL (left over from a crashed run), asks it
/// to shut down and waits up to 30 s.
async fn stop_stale_postmaster(cluster_dir: &Path) -> Result<()> {
    let pid_path = cluster_dir.join("postmaster.pid");
    let contents = match fs::read_to_string(&pid_path) {
        Ok(contents) => contents,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(PrivatePostgresError::PidFile {
                path: pid_path,
                source,
            });
        }
    };
    let Some(raw_pid) = contents
        .lines()
        .next()
        .and_then(|line| line.trim().parse::<i32>().ok())
        .filter(|pid| *pid > 0)
    else {
        // postgres itself deals with a malformed lock file.
        warn!(path = %pid_path.display(), "ignoring unreadable postmaster.pid");
        return Ok(());
    };
    let pid = Pid::from_raw(raw_pid);
    if !process_alive(pid) {
        debug!(
            pid = raw_pid,
            "postmaster.pid is stale; its process is gone"
        );
        return Ok(());
    }
    match is_postgres_process(pid) {
        Some(true) => {}
        Some(false) => {
            // The pid was recycled by an unrelated program; postgres would refuse to
            // start because of it, and deleting the file is exactly the manual fix.
            warn!(
                pid = raw_pid,
                "postmaster.pid names a process that is not PostgreSQL; removing the stale file"
            );
            return fs::remove_file(&pid_path).map_err(|source| PrivatePostgresError::PidFile {
                path: pid_path,
                source,
            });
        }
        None => {
            // Without /proc we cannot tell whether it is ours; never signal blindly.
            warn!(
                pid = raw_pid,
                "postmaster.pid names a live process that cannot be identified; leaving it"
            );
            return Ok(());
        }
    }
    warn!(
        pid = raw_pid,
        cluster_dir = %cluster_dir.display(),
        "a PostgreSQL from an earlier run is still running on this cluster; stopping it"
    );
    match signal::kill(pid, Signal::SIGINT) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(source) => {
            return Err(PrivatePostgresError::Signal {
                signal: Signal::SIGINT,
                pid: raw_pid,
                source,
            });
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while process_alive(pid) {
        if Instant::now() >= deadline {
            return Err(PrivatePostgresError::StalePostmaster {
                pid: raw_pid,
                cluster_dir: cluster_dir.to_path_buf(),
            });
        }
        tokio::time::sleep(READY_POLL).await;
    }
    info!(pid = raw_pid, "stale PostgreSQL stopped");
    Ok(())
}

/// True if `pid` exists and has not yet exited. A zombie counts as exited: a postgres
/// started by this very process and never reaped stays a zombie forever.
fn process_alive(pid: Pid) -> bool {
    match signal::kill(pid, None) {
        Ok(()) => !is_zombie(pid),
        Err(Errno::ESRCH) => false,
        // EPERM: it exists but belongs to someone else.
        Err(_) => true,
    }
}

/// True if /proc says `pid` is a zombie (state `Z`).
fn is_zombie(pid: Pid) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The command name in parentheses may contain spaces; the state follows it.
            let (_, rest) = stat.rsplit_once(')')?;
            Some(rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Whether `pid` runs a PostgreSQL binary; `None` if that cannot be determined.
fn is_postgres_process(pid: Pid) -> Option<bool> {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(cmdline.windows(8).any(|w| w == b"postgres"))
}

/// Sends `signal` to the child `pid`; a process that is already gone is not an error.
fn send_signal(pid: u32, signal: Signal) -> Result<()> {
    let raw = i32::try_from(pid).map_err(|_| PrivatePostgresError::Signal {
        signal,
        pid: -1,
        source: Errno::EINVAL,
    })?;
    match signal::kill(Pid::from_raw(raw), signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(source) => Err(PrivatePostgresError::Signal {
            signal,
            pid: raw,
            source,
        }),
    }
}

/// Asks the OS for a currently free port on 127.0.0.1.
fn free_port() -> Result<u16> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(PrivatePostgresError::NoFreePort)
}

/// Fails if something already listens on 127.0.0.1:`port`.
fn ensure_port_free(port: u16) -> Result<()> {
    // std sets SO_REUSEADDR, as postgres does, so TIME_WAIT leftovers of our own
    // previous run (restart) do not count as "in use".
    std::net::TcpListener::bind(("127.0.0.1", port))
        .map(drop)
        .map_err(|source| PrivatePostgresError::PortInUse { port, source })
}

/// Opens the server log for appending and marks where this start begins.
fn open_log(path: &Path, port: u16) -> Result<File> {
    let wrap = |source| PrivatePostgresError::LogFile {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(wrap)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    writeln!(
        file,
        "----- chronicle: starting PostgreSQL on 127.0.0.1:{port} (unix time {now}) -----"
    )
    .map_err(wrap)?;
    Ok(file)
}

/// The last [`LOG_TAIL_LINES`] lines of the log, for error messages.
fn log_tail(path: &Path) -> String {
    // Only the end is read: the log is appended to across runs and may be large.
    const MAX_BYTES: u64 = 64 * 1024;
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(MAX_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

/// stderr and stdout of a finished tool, trimmed, for error messages.
fn output_text(output: &Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !stdout.trim().is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(stdout.trim());
    }
    text
}

/// The machine's memory (`MemTotal`), `None` when it cannot be read.
pub fn machine_memory_bytes() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The machine's memory, or the limit of this process's control group when that is lower;
/// `None` when neither can be read.
fn memory_limit_bytes() -> Option<u64> {
    let limit = fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|groups| control_group_memory_limit(&groups));
    match (machine_memory_bytes(), limit) {
        (Some(total), Some(limit)) => Some(total.min(limit)),
        (total, limit) => total.or(limit),
    }
}

/// The lowest memory limit of the control groups listed in `/proc/self/cgroup` (`groups`):
/// cgroup v2's `memory.max` ("0::path", at the hierarchy's root or, on a hybrid host, under
/// `unified`) and cgroup v1's `memory.limit_in_bytes` ("N:memory:path"). "max" and missing
/// files mean no limit; v1's "no limit" is a huge number, which the minimum ignores.
fn control_group_memory_limit(groups: &str) -> Option<u64> {
    let root = Path::new("/sys/fs/cgroup");
    let mut files = Vec::new();
    for line in groups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if id == "0" && controllers.is_empty() {
            files.push(root.join(path).join("memory.max"));
            files.push(root.join("unified").join(path).join("memory.max"));
        } else if controllers.split(',').any(|c| c == "memory") {
            files.push(root.join("memory").join(path).join("memory.limit_in_bytes"));
        }
    }
    files
        .iter()
        .filter_map(|file| fs::read_to_string(file).ok()?.trim().parse::<u64>().ok())
        .min()
}

/// PostgreSQL's buffer cache for a machine with `memory` bytes: an eighth of it (the cluster
/// shares the machine with the server, the broker and the kernel's own cache), at least
/// PostgreSQL's default and at most 8 GiB. Pages are taken only as they are used.
fn shared_buffers_mib(memory: Option<u64>) -> u64 {
    const DEFAULT_MIB: u64 = 128;
    const MOST_MIB: u64 = 8 * 1024;
    memory.map_or(DEFAULT_MIB, |bytes| {
        (bytes / 8 / (1024 * 1024)).clamp(DEFAULT_MIB, MOST_MIB)
    })
}

/// Whether this PostgreSQL was built with LZ4 (as Debian's and the PGDG packages are), by
/// its own `pg_config`; false when that cannot be asked.
async fn built_with_lz4(bin_dir: &Path) -> bool {
    let configure = Command::new(bin_dir.join("pg_config"))
        .arg("--configure")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await;
    match configure {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .any(|option| option.trim_matches('\'') == "--with-lz4"),
        _ => false,
    }
}

/// Whether TimescaleDB's loader library sits in the library folder of the PostgreSQL whose
/// binaries are in `bin_dir` (Debian: `/usr/lib/postgresql/15/{bin,lib}`).
fn timescaledb_installed(bin_dir: &Path) -> bool {
    bin_dir
        .parent()
        .is_some_and(|root| root.join("lib").join("timescaledb.so").is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_32_alphanumerics() {
        let pw = generate_password();
        assert_eq!(pw.len(), 32);
        assert!(pw.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(pw, generate_password());
    }

    #[test]
    fn shared_buffers_are_an_eighth_of_memory_within_bounds() {
        const GIB: u64 = 1024 * 1024 * 1024;
        assert_eq!(shared_buffers_mib(Some(24 * GIB)), 3 * 1024);
        assert_eq!(shared_buffers_mib(Some(GIB / 2)), 128);
        assert_eq!(shared_buffers_mib(Some(256 * GIB)), 8 * 1024);
        assert_eq!(shared_buffers_mib(None), 128);
    }

    #[tokio::test]
    async fn lz4_is_asked_of_the_servers_own_build() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pg_config = dir.path().join("pg_config");
        let answer = |configure: &str| {
            fs::write(&pg_config, format!("#!/bin/sh\necho \"{configure}\"\n")).expect("script");
            fs::set_permissions(&pg_config, fs::Permissions::from_mode(0o755)).expect("mode");
        };
        answer("'--prefix=/usr' '--with-lz4' '--with-zstd'");
        assert!(built_with_lz4(dir.path()).await);
        answer("'--prefix=/usr' '--with-zstd' '--without-lz4'");
        assert!(!built_with_lz4(dir.path()).await);
        // No pg_config at all: not asked, so not used.
        assert!(!built_with_lz4(&dir.path().join("missing")).await);
    }

    #[test]
    fn database_names() {
        assert!(validate_database_name("chronicle").is_ok());
        assert!(validate_database_name("chronicle_test-2").is_ok());
        assert!(validate_database_name("").is_err());
        assert!(validate_database_name("a/b").is_err());
        assert!(validate_database_name("a b").is_err());
        assert!(validate_database_name(&"x".repeat(64)).is_err());
    }

    #[test]
    fn redacted_url_hides_password() {
        let pg = PrivatePostgres {
            bin_dir: PathBuf::new(),
            cluster_dir: PathBuf::new(),
            log_path: PathBuf::new(),
            database: "chronicle".into(),
            password: "s3cret".into(),
            port: 5433,
            account: None,
            statement_statistics: false,
            child: None,
        };
        assert_eq!(
            pg.database_url(),
            "postgres://chronicle:s3cret@127.0.0.1:5433/chronicle"
        );
        assert_eq!(
            pg.redacted_url(),
            "postgres://chronicle:***@127.0.0.1:5433/chronicle"
        );
        assert!(!format!("{pg:?}").contains("s3cret"));
    }

    fn fake_bin(dir: &Path) {
        fs::create_dir_all(dir).expect("create fake bin dir");
        for name in ["postgres", "initdb"] {
            let path = dir.join(name);
            fs::write(&path, "#!/bin/sh\n").expect("write fake binary");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                .expect("chmod fake binary");
        }
    }

    #[test]
    fn finds_highest_debian_version_after_path() {
        let root = tempfile::tempdir().expect("tempdir");
        let debian = root.path().join("debian");
        fake_bin(&debian.join("9.6/bin"));
        fake_bin(&debian.join("15/bin"));
        fake_bin(&debian.join("13/bin"));
        fs::create_dir_all(debian.join("17/bin")).expect("empty version dir");
        let empty_path = Some(OsString::from(root.path().join("nothing")));
        assert_eq!(
            find_server_binaries_in(None, empty_path, &debian).expect("found"),
            debian.join("15/bin")
        );

        let on_path = root.path().join("onpath");
        fake_bin(&on_path);
        assert_eq!(
            find_server_binaries_in(None, Some(on_path.clone().into_os_string()), &debian)
                .expect("found"),
            fs::canonicalize(&on_path).expect("canonical")
        );
    }

    #[test]
    fn follows_symlinked_binaries_to_the_real_directory() {
        let root = tempfile::tempdir().expect("tempdir");
        let real = root.path().join("real");
        fake_bin(&real);
        let links = root.path().join("links");
        fs::create_dir_all(&links).expect("links dir");
        for name in ["postgres", "initdb"] {
            std::os::unix::fs::symlink(real.join(name), links.join(name)).expect("symlink");
        }
        let found = find_server_binaries_in(
            None,
            Some(links.into_os_string()),
            Path::new("/nonexistent"),
        )
        .expect("found");
        assert_eq!(found, fs::canonicalize(&real).expect("canonical"));
    }

    #[test]
    fn reports_missing_binaries() {
        let root = tempfile::tempdir().expect("tempdir");
        let err = find_server_binaries_in(None, None, &root.path().join("none"))
            .expect_err("nothing installed");
        assert!(matches!(err, PrivatePostgresError::NotInstalled));
        assert!(err.to_string().contains("apt-get install postgresql"));

        let err = find_server_binaries_in(Some(root.path()), None, Path::new("/nonexistent"))
            .expect_err("explicit dir is empty");
        assert!(matches!(err, PrivatePostgresError::BinariesNotInDir { .. }));
    }
}

//! Runs a real private PostgreSQL (needs the Debian `postgresql` package; as root it
//! also needs the `postgres` system user).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use chronicle_embedded::{PrivatePostgres, PrivatePostgresConfig, find_server_binaries};
use tempfile::TempDir;

/// A data directory the `postgres` user can reach (tempdirs are 0700 and owned by us).
fn data_dir() -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("chronicle-pg-test-")
        .tempdir_in("/tmp")
        .expect("create tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod tempdir");
    dir
}

fn config(data_dir: &Path, port: Option<u16>) -> PrivatePostgresConfig {
    PrivatePostgresConfig {
        data_dir: data_dir.to_path_buf(),
        port,
        bin_dir: None,
        database: "chronicle".to_owned(),
        statement_statistics: false,
    }
}

fn tool(name: &str) -> PathBuf {
    find_server_binaries(None)
        .expect("PostgreSQL installed")
        .join(name)
}

/// Logs in through `url` (createdb accepts a URL as maintenance database) and creates
/// `db`; returns createdb's success and output.
fn createdb_via_url(url: &str, db: &str) -> (bool, String) {
    let out = Command::new(tool("createdb"))
        .arg(format!("--maintenance-db={url}"))
        .arg(db)
        .env("LC_ALL", "C")
        .output()
        .expect("run createdb");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn accepting(port: u16) -> bool {
    Command::new(tool("pg_isready"))
        .args(["-q", "-h", "127.0.0.1", "-t", "2", "-p", &port.to_string()])
        .status()
        .expect("run pg_isready")
        .success()
}

fn password_of(url: &str) -> String {
    let rest = url
        .strip_prefix("postgres://chronicle:")
        .expect("URL starts with the chronicle user");
    rest.split('@').next().expect("password part").to_owned()
}

#[tokio::test]
async fn lifecycle_restart_and_reuse() {
    let dir = data_dir();
    let mut pg = PrivatePostgres::start(config(dir.path(), None))
        .await
        .expect("first start");
    let url = pg.database_url();
    let port = pg.port();
    let password = password_of(&url);
    assert_eq!(password.len(), 32);
    assert_eq!(
        url,
        format!("postgres://chronicle:{password}@127.0.0.1:{port}/chronicle")
    );
    assert_eq!(
        pg.redacted_url(),
        format!("postgres://chronicle:***@127.0.0.1:{port}/chronicle")
    );

    // The password file is private and holds the password of the URL.
    let pw_path = dir.path().join("postgres-password");
    let meta = fs::metadata(&pw_path).expect("password file exists");
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
    assert_eq!(
        fs::read_to_string(&pw_path).expect("read password").trim(),
        password
    );
    // initdb's temporary password file is gone.
    assert!(!dir.path().join(".initdb-pwfile").exists());

    // The URL logs in (and the database "chronicle" exists, it is the maintenance db).
    let (ok, out) = createdb_via_url(&url, "second");
    assert!(ok, "createdb via database_url failed: {out}");
    // A wrong password is refused.
    let bad = url.replace(&password, "wrongpassword");
    let (ok, _) = createdb_via_url(&bad, "third");
    assert!(!ok, "wrong password accepted");

    // Restart keeps port and data.
    pg.restart().await.expect("restart");
    assert_eq!(pg.port(), port);
    assert_eq!(pg.database_url(), url);
    let (ok, out) = createdb_via_url(&url, "second");
    assert!(
        !ok && out.contains("already exists"),
        "data lost on restart: {out}"
    );

    pg.stop().await.expect("stop");
    pg.stop().await.expect("second stop is a no-op");
    assert!(!accepting(port), "server still accepting after stop");
    drop(pg);

    // Starting again on the same data dir reuses cluster and password.
    let mut pg = PrivatePostgres::start(config(dir.path(), Some(port)))
        .await
        .expect("second start");
    assert_eq!(pg.database_url(), url);
    let (ok, out) = createdb_via_url(&url, "second");
    assert!(
        !ok && out.contains("already exists"),
        "data lost between runs: {out}"
    );
    pg.stop().await.expect("stop");
}

#[tokio::test]
async fn uses_then_takes_over_a_running_postmaster() {
    let dir = data_dir();
    let pg = PrivatePostgres::start(config(dir.path(), None))
        .await
        .expect("first start");
    let old_port = pg.port();
    // Simulate a crash of the server: the handle vanishes without stopping PostgreSQL.
    std::mem::forget(pg);
    assert!(accepting(old_port));

    // A second command on the same data directory uses the running server (as `chronicle
    // device add` does while `chronicle serve` runs) and leaves it running.
    let mut pg = PrivatePostgres::start(config(dir.path(), None))
        .await
        .expect("start despite the running postmaster");
    assert_eq!(pg.port(), old_port);
    let (ok, out) = createdb_via_url(&pg.database_url(), "after_stale");
    assert!(ok, "{out}");
    pg.stop().await.expect("stop");
    assert!(
        accepting(old_port),
        "an attached server is left to its owner"
    );

    // A restart takes the orphan over: it is stopped and a server of our own is started.
    pg.restart().await.expect("restart takes over");
    assert!(accepting(pg.port()));
    pg.stop().await.expect("stop");
    assert!(!accepting(pg.port()), "an owned server stops");
}

#[tokio::test]
async fn drop_shuts_postgres_down() {
    let dir = data_dir();
    let pg = PrivatePostgres::start(config(dir.path(), None))
        .await
        .expect("start");
    let port = pg.port();
    drop(pg);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while accepting(port) {
        assert!(
            std::time::Instant::now() < deadline,
            "postgres survived drop"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn rejects_untraversable_data_dir_as_root() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let outer = tempfile::Builder::new()
        .prefix("chronicle-pg-private-")
        .tempdir_in("/tmp")
        .expect("create tempdir");
    fs::set_permissions(outer.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
    let err = PrivatePostgres::start(config(&outer.path().join("data"), None))
        .await
        .expect_err("postgres cannot reach a 0700 root-owned dir");
    let msg = err.to_string();
    assert!(msg.contains(&outer.path().display().to_string()), "{msg}");
    assert!(msg.contains("--data-dir"), "{msg}");
}

//! Test harness: launches the server against a real PostgreSQL (a fresh database per test)
//! and a real broker (the embedded one or Mosquitto), and drives it with real MQTT and HTTP
//! clients. [`TestApp`] launches it inside the test process on listeners bound before launch;
//! [`ChronicleServer`] starts the real `chronicle` binary, for what needs a process of its own
//! (signals, crashes, the command line, the demo).
//!
//! The PostgreSQL server comes from `CHRONICLE_TEST_DATABASE_URL` (a superuser URL), which
//! `scripts/test` sets after starting a throwaway cluster.

pub mod api;
pub mod app;
pub mod bench;
pub mod clinic;
pub mod device;
pub mod mqtt;
pub mod readers;
pub mod server;
pub mod sse;
pub mod webhook_receiver;

pub use api::{ApiClient, create_user};
pub use app::TestApp;
pub use chronicle_embedded::{Mosquitto, MosquittoTls};
pub use device::TestDevice;
pub use server::{ChronicleServer, Metrics, ServerOptions};

use anyhow::Context;
use sqlx::PgPool;
use std::time::Duration;

/// A server a test talks to: launched in the test's process ([`TestApp`]) or the real binary
/// ([`ChronicleServer`]).
pub trait ServerUnderTest {
    /// The URL of `path` on the server's HTTP API.
    fn http_url(&self, path: &str) -> String;
    /// The port of the broker devices publish to.
    fn mqtt_port(&self) -> u16;
}

/// A free TCP port on 127.0.0.1 (bound, then released for the caller to use).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("the OS hands out a free port")
}

/// A database of its own for one test, on the shared test server.
pub struct TestDatabase {
    pub url: String,
    pub pool: PgPool,
}

impl TestDatabase {
    pub async fn create() -> anyhow::Result<TestDatabase> {
        let admin_url = std::env::var("CHRONICLE_TEST_DATABASE_URL").context(
            "CHRONICLE_TEST_DATABASE_URL is not set. Run the tests with `scripts/test`, which \
             installs and starts PostgreSQL and Mosquitto, or set it to a PostgreSQL superuser \
             URL (PostgreSQL 15+: apt-get install postgresql).",
        )?;
        let name = format!("chronicle_test_{}", uuid::Uuid::new_v4().simple());
        let admin = PgPool::connect(&admin_url)
            .await
            .with_context(|| "cannot connect to CHRONICLE_TEST_DATABASE_URL")?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await?;
        admin.close().await;
        let url = replace_database(&admin_url, &name)?;
        let pool = PgPool::connect(&url).await?;
        Ok(TestDatabase { url, pool })
    }

    /// A migrated store on this database connected as `chronicle serve` connects
    /// ([`chronicle_storage::Store::connect_lazy`]: statements planned once for any
    /// parameters), for tests of what the server's own plans read.
    pub async fn server_store(
        &self,
        max_connections: u32,
    ) -> anyhow::Result<chronicle_storage::Store> {
        let store = chronicle_storage::Store::connect_lazy(&chronicle_storage::StoreSettings {
            url: self.url.clone(),
            max_connections,
            acquire_timeout: Duration::from_secs(30),
        })?;
        store.migrate().await?;
        Ok(store)
    }

    /// Counts rows of a table (tests compare what is stored with what was sent).
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .unwrap_or(-1)
    }
}

/// How `chronicle serve` runs against a Mosquitto started with `Mosquitto::start_secured`, as
/// docs/security.md configures them: the ingest logs in with an account of its own (registered
/// here, as an operator does with `chronicle ingest-account add`), and the server keeps
/// Mosquitto's password and ACL files and has it reload them.
pub async fn secured_mosquitto_options(
    database_url: &str,
    broker: &Mosquitto,
    ingest_account: &str,
) -> anyhow::Result<server::ServerOptions> {
    let pool = PgPool::connect(database_url).await?;
    let store = chronicle_storage::Store::from_pool(pool.clone());
    store.migrate().await?;
    let (_, secret) = store.create_ingest_account(ingest_account).await?;
    pool.close().await;
    Ok(server::ServerOptions {
        database_url: Some(database_url.to_owned()),
        mqtt_url: Some(format!(
            "mqtt://{ingest_account}:{secret}@127.0.0.1:{}",
            broker.port()
        )),
        mqtt_client_id: Some(ingest_account.to_owned()),
        extra_args: vec![
            "--mosquitto-auth-dir".into(),
            broker.auth_dir().display().to_string(),
            "--mosquitto-pid-file".into(),
            broker.pid_file().display().to_string(),
        ],
        ..Default::default()
    })
}

/// The same server URL naming another database.
pub fn replace_database(url: &str, database: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .context("URL without scheme")?;
    let path_start = base[authority_end..]
        .find('/')
        .map(|i| i + authority_end)
        .unwrap_or(base.len());
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

/// Polls `check` until it returns `Some`, or fails after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Rows PostgreSQL has read from `table` and its partitions or TimescaleDB chunks so far: the
/// heap rows index scans fetched plus the rows sequential scans read, filtered or not.
pub async fn rows_read(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0)), 0)::int8
         FROM pg_stat_user_tables
         WHERE relid = $1::regclass
            OR relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::regclass)",
    )
    .bind(table)
    .fetch_one(pool)
    .await
    .expect("statistics")
}

/// The rows read from `table` since [`rows_read`] returned `before`, once they show: a
/// backend reports its statistics after its transaction, at most once a second (when idle,
/// within 10 s).
pub async fn rows_read_since(pool: &PgPool, table: &str, before: i64) -> i64 {
    eventually(
        Duration::from_secs(30),
        &format!("the rows read from {table} to be counted"),
        async || {
            let read = rows_read(pool, table).await - before;
            (read > 0).then_some(read)
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            replace_database("postgres://u:p@127.0.0.1:5432/postgres", "t1").expect("valid"),
            "postgres://u:p@127.0.0.1:5432/t1"
        );
        assert_eq!(
            replace_database("postgres://u@h:1?sslmode=disable", "t2").expect("valid"),
            "postgres://u@h:1/t2?sslmode=disable"
        );
    }
}

//! Chronicle's storage: the PostgreSQL schema (sqlx migrations), the optional TimescaleDB
//! layer, and every query the rest of the system runs.
//!
//! - [`gate`]: the only way to patient data. It decides each request with the domain's
//!   rules, writes the attempt to the patient's access log, and hands out a [`gate::Permit`]
//!   (or a [`gate::PatientActor`] for the patient's own settings); only it can make one.
//! - [`Store`]: a connection pool plus the query methods, each beside its subject:
//!   [`registry`] (patients, devices, the patients a caller may see), [`gateways`] (identities
//!   that relay for devices), [`broker_identities`] (what brokers need: authentication,
//!   relays, Mosquitto's credentials, the ingest's accounts, announcements of changes),
//!   [`imports`] (the devices holding imported data, and what of an import is stored),
//!   [`readings`] (batched ingest writes, and permitted reads), [`followups`] (the work queued
//!   by each ingest write for alerts and trends), [`identity`] (users, sessions, tokens,
//!   guardians), [`accounts`] (authentication events, password changes, disabled accounts,
//!   revoking an account's tokens), [`sharing`] (grants, the access log, emergency access), [`records`] (export
//!   and erasure), [`research`] (de-identified reads), [`targets`], [`alerts`] (alerts, their
//!   event stream, snoozes and webhook deliveries), [`webhooks`] and [`notifications`] (users'
//!   own channels and their delivery log), [`escalation`] (care teams' escalation policies and
//!   each urgent alert's progress through them).
//! - [`timescale`]: turns the reading tables into hypertables when the extension exists.
//! - [`trends`]: day rollups kept by the "trends" follow-up consumer, and the trend and
//!   panel reads that combine them with the raw readings.
//!
//! Invariant: this is the only crate that writes SQL. The same queries run on plain PostgreSQL
//! and on TimescaleDB.

pub mod accounts;
pub mod alerts;
pub mod broker_identities;
pub mod bulk;
pub mod credentials;
pub mod email_confirmations;
mod error;
pub mod escalation;
pub mod followups;
pub mod gate;
pub mod gateways;
pub mod identity;
pub mod imports;
pub mod invitations;
pub mod nightscout;
pub mod notifications;
pub mod population;
pub mod readings;
pub mod records;
pub mod registry;
pub mod research;
mod rows;
pub mod sharing;
pub mod statements;
pub mod targets;
pub mod timescale;
pub mod trends;
pub mod webhooks;

pub use broker_identities::{
    BrokerCredentials, BrokerPrincipal, IngestAccount, RegistryChange, RegistryListener,
};
pub use bulk::GlucoseCopy;
pub use error::StorageError;
pub use followups::{
    FinishedWrites, Followup, FollowupClaim, IngestBacklog, UrgentPatients, UrgentReadings,
};
pub use gateways::{Gateway, GatewayCredentials};
pub use readings::{BatchWrite, InsertedKeys, ReadingRow, RejectionRow};
pub use registry::{Device, DeviceCredentials, DeviceForIngest, NewPatient, Patient};
pub use timescale::{TimescaleMode, TimescaleSettings, TimescaleStatus};

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// The migrations compiled into the binary, so `chronicle migrate` needs no files on disk.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// A `postgres://` URL.
    pub url: String,
    /// Pool size; the ingest holds one connection per batch in flight, the HTTP API the rest.
    pub max_connections: u32,
    /// How long a caller waits for a free connection (or for the database to come back).
    pub acquire_timeout: Duration,
}

/// The database handle every other crate uses.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    /// How many more ingest batches take the statement that skips readings already stored
    /// (see `readings.rs`), shared by every clone.
    batches_skipping_duplicates: Arc<AtomicU32>,
}

impl Store {
    /// Opens a pool lazily: it connects on first use, so the server can start (and report
    /// not-ready) while the database is still down.
    pub fn connect_lazy(settings: &StoreSettings) -> Result<Store, StorageError> {
        let options = PgConnectOptions::from_str(&settings.url)?
            .application_name("chronicle")
            // Chronicle's statements pass their rows as arrays (UNNEST, ANY), whose length a
            // custom plan knows and a generic plan does not; PostgreSQL then judges the generic
            // plan dearer and plans every execution afresh, which cost more than executing
            // them (0.7 ms of planning against 0.4 ms of execution for an ingest batch). The
            // statements are prepared once per connection and planned once.
            .options([("plan_cache_mode", "force_generic_plan")]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            // A pooled connection may be dead after a database restart; test it before use so
            // one restart does not fail the next batch.
            .test_before_acquire(true)
            .connect_lazy_with(options);
        Ok(Store::from_pool(pool))
    }

    pub fn from_pool(pool: PgPool) -> Store {
        Store {
            pool,
            batches_skipping_duplicates: Arc::default(),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A transaction, begun so that cancelling the caller (shutdown, a client hanging up, a
    /// timeout) cannot leave its connection inside it. sqlx 0.8's `begin` arms its rollback
    /// only after BEGIN's round trip: a caller dropped in between returns the connection to
    /// the pool inside a transaction nobody ends, and every later statement on it, an ingest
    /// batch included, reports success and is discarded when the connection closes. The BEGIN
    /// runs in a task of its own, which finishes however the caller ends; a transaction
    /// nobody takes is then dropped, which rolls it back. Every transaction begins here.
    #[expect(
        clippy::disallowed_methods,
        reason = "the one place a transaction begins"
    )]
    pub(crate) async fn begin(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StorageError> {
        let pool = self.pool.clone();
        match tokio::spawn(async move { pool.begin().await }).await {
            Ok(begun) => Ok(begun?),
            Err(_) => Err(StorageError::Database(sqlx::Error::WorkerCrashed)),
        }
    }

    /// A transaction for taking work from a queue (`… ORDER BY … LIMIT $n FOR UPDATE SKIP
    /// LOCKED`), whose statements are planned for their actual parameters. Planned once for
    /// any limit, as the pool plans everything else, a claim reads the whole queue (a hash
    /// join over every row): at a million patients a claim took 10 s once the follow-up queue
    /// held a few hundred thousand items, against 5 ms planned for its limit, so a queue that
    /// fell behind fell further behind.
    pub(crate) async fn begin_claim(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StorageError> {
        let mut tx = self.begin().await?;
        sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Whether the database answers a trivial query (readiness).
    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

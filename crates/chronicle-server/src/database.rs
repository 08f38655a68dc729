//! Opens the database every subcommand uses: the configured PostgreSQL, or a private one that
//! Chronicle runs itself in the data directory.

use crate::cli::DatabaseSettings;
use anyhow::Context;
use chronicle_embedded::{PrivatePostgres, PrivatePostgresConfig};
use chronicle_storage::{Store, StoreSettings, TimescaleStatus};
use std::time::{Duration, Instant};

/// How long start-up waits for an external database before giving up.
const STARTUP_WAIT: Duration = Duration::from_secs(60);

/// An open, migrated database.
pub struct Database {
    pub store: Store,
    /// The private PostgreSQL, when Chronicle runs one; stopped by [`Database::close`].
    private: Option<PrivatePostgres>,
    /// Where the database is, without secrets, for logs.
    pub endpoint: String,
}

impl Database {
    /// Connects (starting the private PostgreSQL if no URL is set), waits until the database
    /// answers, and migrates it.
    pub async fn open(settings: &DatabaseSettings) -> anyhow::Result<Database> {
        let (url, endpoint, private) = match &settings.url {
            Some(url) => (url.clone(), redact(url), None),
            None => {
                let private = PrivatePostgres::start(PrivatePostgresConfig {
                    data_dir: settings.data_dir.clone(),
                    port: settings.postgres_port,
                    bin_dir: settings.postgres_bin_dir.clone(),
                    database: "chronicle".to_owned(),
                    statement_statistics: false,
                })
                .await
                .context("cannot start the private PostgreSQL")?;
                let endpoint = format!(
                    "{} (private PostgreSQL in {})",
                    private.redacted_url(),
                    settings.data_dir.join("postgres").display()
                );
                (private.database_url(), endpoint, Some(private))
            }
        };
        let store = Store::connect_lazy(&StoreSettings {
            url,
            max_connections: settings.max_connections,
            acquire_timeout: Duration::from_secs(5),
        })
        .context("invalid database URL")?;
        let mut database = Database {
            store,
            private,
            endpoint,
        };
        if let Err(e) = database.prepare(settings).await {
            database.close().await;
            return Err(e);
        }
        Ok(database)
    }

    async fn prepare(&mut self, settings: &DatabaseSettings) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(200);
        while let Err(e) = self.store.ping().await {
            anyhow::ensure!(
                started.elapsed() < STARTUP_WAIT,
                "the database at {} did not answer within {} s: {e}",
                self.endpoint,
                STARTUP_WAIT.as_secs()
            );
            tracing::warn!(database = %self.endpoint, error = %e, "waiting for the database");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        self.store
            .migrate()
            .await
            .context("database migration failed")?;
        match self.store.apply_timescale(&settings.timescale).await? {
            TimescaleStatus::Enabled => tracing::info!("TimescaleDB hypertables in use"),
            TimescaleStatus::Unavailable | TimescaleStatus::Disabled => {}
        }
        Ok(())
    }

    /// Closes the pool and stops the private PostgreSQL, if any.
    pub async fn close(&mut self) {
        self.store.close().await;
        if let Some(private) = self.private.as_mut()
            && let Err(e) = private.stop().await
        {
            tracing::error!(error = %e, "could not stop the private PostgreSQL cleanly");
        }
    }
}

/// The URL with its password replaced, for logs.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(unparseable database URL)".to_owned(),
    }
}

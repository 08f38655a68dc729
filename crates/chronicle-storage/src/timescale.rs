//! Optional TimescaleDB: hypertables, compression and retention for the reading tables.
//!
//! The schema migrations never mention TimescaleDB, so they run unchanged on plain PostgreSQL.
//! After migrating, [`Store::apply_timescale`] converts the reading tables when the extension
//! is available. Both sample tables' primary keys contain `measured_at`, as hypertables
//! require, and every query the project runs is plain SQL that works either way.

use crate::{StorageError, Store};
use std::fmt;
use std::str::FromStr;

/// The time-series tables that become hypertables.
const READING_TABLES: [&str; 2] = ["glucose_samples", "blood_pressure_samples"];

/// Whether to use TimescaleDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimescaleMode {
    /// Use it when the extension is installed on the server; plain tables otherwise.
    #[default]
    Auto,
    /// Fail at start-up if the extension cannot be used.
    Required,
    /// Never use it.
    Off,
}

impl FromStr for TimescaleMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(TimescaleMode::Auto),
            "required" => Ok(TimescaleMode::Required),
            "off" => Ok(TimescaleMode::Off),
            other => Err(format!(
                "unknown TimescaleDB mode {other:?}: expected auto, required or off"
            )),
        }
    }
}

impl<'de> serde::Deserialize<'de> for TimescaleMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for TimescaleMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimescaleMode::Auto => "auto",
            TimescaleMode::Required => "required",
            TimescaleMode::Off => "off",
        })
    }
}

/// How reading tables are laid out under TimescaleDB.
#[derive(Debug, Clone)]
pub struct TimescaleSettings {
    pub mode: TimescaleMode,
    /// Width of one chunk.
    pub chunk_days: u32,
    /// Compress chunks older than this; `None` leaves them uncompressed.
    pub compress_after_days: Option<u32>,
    /// Drop chunks older than this; `None` keeps readings forever (the default: medical
    /// records are not deleted behind the patient's back).
    pub retain_days: Option<u32>,
}

impl Default for TimescaleSettings {
    fn default() -> Self {
        TimescaleSettings {
            mode: TimescaleMode::Auto,
            chunk_days: 7,
            compress_after_days: Some(30),
            retain_days: None,
        }
    }
}

/// What [`Store::apply_timescale`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimescaleStatus {
    /// The reading tables are hypertables.
    Enabled,
    /// Plain PostgreSQL tables: the extension is not installed or could not be loaded.
    Unavailable,
    /// Plain tables because the mode is `off`.
    Disabled,
}

impl Store {
    /// Turns the reading tables into hypertables when TimescaleDB can be used. Safe to run at
    /// every start: each step checks what is already in place.
    pub async fn apply_timescale(
        &self,
        settings: &TimescaleSettings,
    ) -> Result<TimescaleStatus, StorageError> {
        if settings.mode == TimescaleMode::Off {
            return Ok(TimescaleStatus::Disabled);
        }
        let (available,): (bool,) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')",
        )
        .fetch_one(self.pool())
        .await?;
        if !available {
            return self.unavailable(settings, "the timescaledb extension is not installed");
        }
        // Loading fails when timescaledb is missing from shared_preload_libraries.
        if let Err(e) = sqlx::query("CREATE EXTENSION IF NOT EXISTS timescaledb")
            .execute(self.pool())
            .await
        {
            return self.unavailable(
                settings,
                &format!("CREATE EXTENSION timescaledb failed: {e}"),
            );
        }
        let chunk_days = i32::try_from(settings.chunk_days).unwrap_or(7);
        for table in READING_TABLES {
            sqlx::query(
                "SELECT create_hypertable($1::regclass, 'measured_at',
                     chunk_time_interval => make_interval(days => $2),
                     if_not_exists => TRUE, migrate_data => TRUE)",
            )
            .bind(table)
            .bind(chunk_days)
            .execute(self.pool())
            .await?;
            if let Some(days) = settings.compress_after_days {
                let (enabled,): (bool,) = sqlx::query_as(
                    "SELECT compression_enabled FROM timescaledb_information.hypertables
                     WHERE hypertable_name = $1",
                )
                .bind(table)
                .fetch_one(self.pool())
                .await?;
                if !enabled {
                    // Segmenting by device keeps each device's series together, which is how
                    // it is read back; table names come from the constant above.
                    sqlx::query(&format!(
                        "ALTER TABLE {table} SET (timescaledb.compress,
                             timescaledb.compress_segmentby = 'device_key',
                             timescaledb.compress_orderby = 'measured_at DESC')"
                    ))
                    .execute(self.pool())
                    .await?;
                }
                sqlx::query(
                    "SELECT add_compression_policy($1::regclass, make_interval(days => $2),
                         if_not_exists => TRUE)",
                )
                .bind(table)
                .bind(i32::try_from(days).unwrap_or(i32::MAX))
                .execute(self.pool())
                .await?;
            }
            if let Some(days) = settings.retain_days {
                sqlx::query(
                    "SELECT add_retention_policy($1::regclass, make_interval(days => $2),
                         if_not_exists => TRUE)",
                )
                .bind(table)
                .bind(i32::try_from(days).unwrap_or(i32::MAX))
                .execute(self.pool())
                .await?;
            }
        }
        Ok(TimescaleStatus::Enabled)
    }

    fn unavailable(
        &self,
        settings: &TimescaleSettings,
        why: &str,
    ) -> Result<TimescaleStatus, StorageError> {
        if settings.mode == TimescaleMode::Required {
            Err(StorageError::TimescaleRequired(why.to_owned()))
        } else {
            tracing::info!(
                "TimescaleDB not used ({why}); reading tables stay plain PostgreSQL tables"
            );
            Ok(TimescaleStatus::Unavailable)
        }
    }
}

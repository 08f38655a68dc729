use thiserror::Error;

/// Everything the storage layer can fail with.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("{what} {id} was not found")]
    NotFound { what: &'static str, id: String },
    #[error("TimescaleDB is required (timescale = \"required\") but cannot be used: {0}")]
    TimescaleRequired(String),
    /// A patient-data query was called with a permit that does not cover it: a bug in the
    /// caller, refused rather than leaking data.
    #[error("the permit does not allow {0}")]
    NotPermitted(&'static str),
    /// A change the stored data refuses, in words for the person who asked for it (e.g. a
    /// device of another patient attached to a patient's own gateway).
    #[error("{0}")]
    Refused(String),
    #[error("invalid value in the database for {what}: {value:?}")]
    Corrupt { what: &'static str, value: String },
}

impl StorageError {
    /// A stored value that does not parse as what it must be (the schema's CHECKs keep
    /// these out; finding one means the data was changed behind Chronicle's back).
    pub(crate) fn corrupt(what: &'static str, value: impl std::fmt::Display) -> StorageError {
        StorageError::Corrupt {
            what,
            value: value.to_string(),
        }
    }

    /// Whether the database refused what was written, as it will every time: a data
    /// exception (class 22, such as text it cannot hold) or an integrity constraint (class
    /// 23). Retrying the same rows cannot succeed.
    pub fn is_refused_content(&self) -> bool {
        self.sqlstate()
            .is_some_and(|code| code.starts_with("22") || code.starts_with("23"))
    }

    /// What is wrong with a value the database cannot hold (a data exception, class 22:
    /// text with the NUL character, a number or date out of range), in words for whoever
    /// sent it; `None` for any other error. Fixed words, not the database's message, which
    /// may quote what it read.
    pub fn invalid_value(&self) -> Option<&'static str> {
        Some(match self.sqlstate()?.as_ref() {
            // Rust text is valid UTF-8, so the one character PostgreSQL's text refuses is NUL.
            "22021" => "text may not contain the NUL character (\\u0000)",
            "22001" => "a text is longer than it may be",
            "22003" | "22008" => "a number or a time is out of range",
            code if code.starts_with("22") => "a value cannot be stored as it is",
            _ => return None,
        })
    }

    fn sqlstate(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            StorageError::Database(sqlx::Error::Database(db)) => db.code(),
            _ => None,
        }
    }

    /// Whether retrying later may succeed: the database is down, restarting or overloaded, as
    /// opposed to a query the database will refuse every time.
    pub fn is_transient(&self) -> bool {
        match self {
            StorageError::Database(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_)
                | sqlx::Error::Tls(_) => true,
                sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                    // Class 08: connection exception; 57P0x: admin shutdown, crash shutdown,
                    // cannot connect now; 53: insufficient resources; 40001/40P01: retryable.
                    code.starts_with("08")
                        || code.starts_with("57P")
                        || code.starts_with("53")
                        || code == "40001"
                        || code == "40P01"
                }),
                _ => false,
            },
            _ => false,
        }
    }
}

//! Where PostgreSQL's time went, statement by statement (`pg_stat_statements`), for the
//! benchmarks' `--statements`. Only a server that preloads the module has the figures.

use crate::{StorageError, Store};

/// One normalized statement's totals since the server started.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StatementCost {
    pub calls: i64,
    /// Milliseconds spent executing it, every call together.
    pub total_ms: f64,
    pub rows: i64,
    /// The statement's text, whitespace folded to single spaces.
    pub statement: String,
}

impl Store {
    /// The `limit` statements that took the most execution time, costliest first.
    pub async fn costliest_statements(
        &self,
        limit: i64,
    ) -> Result<Vec<StatementCost>, StorageError> {
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(self.pool())
            .await?;
        Ok(sqlx::query_as(
            "SELECT calls, total_exec_time AS total_ms, rows,
                 regexp_replace(query, '\\s+', ' ', 'g') AS statement
             FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}

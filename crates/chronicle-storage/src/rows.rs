//! Rows read into records. A query returns a row type (the columns as PostgreSQL holds them)
//! and the rest of Chronicle sees its record, which the row's `TryFrom` checks: a stored value
//! the domain does not know is an error, never a panic.

use crate::StorageError;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::QueryAs;
use sqlx::{FromRow, PgPool, Postgres};

pub(crate) trait FetchRecords<Row> {
    /// Every row the query returns, each as its record.
    fn fetch_records<Record>(
        self,
        pool: &PgPool,
    ) -> impl Future<Output = Result<Vec<Record>, StorageError>> + Send
    where
        Record: TryFrom<Row, Error = StorageError>;

    /// The row the query returns, if any, as its record.
    fn fetch_optional_record<Record>(
        self,
        pool: &PgPool,
    ) -> impl Future<Output = Result<Option<Record>, StorageError>> + Send
    where
        Record: TryFrom<Row, Error = StorageError>;
}

impl<Row> FetchRecords<Row> for QueryAs<'_, Postgres, Row, PgArguments>
where
    Row: Send + Unpin + for<'r> FromRow<'r, PgRow>,
{
    async fn fetch_records<Record>(self, pool: &PgPool) -> Result<Vec<Record>, StorageError>
    where
        Record: TryFrom<Row, Error = StorageError>,
    {
        self.fetch_all(pool)
            .await?
            .into_iter()
            .map(Record::try_from)
            .collect()
    }

    async fn fetch_optional_record<Record>(
        self,
        pool: &PgPool,
    ) -> Result<Option<Record>, StorageError>
    where
        Record: TryFrom<Row, Error = StorageError>,
    {
        self.fetch_optional(pool)
            .await?
            .map(Record::try_from)
            .transpose()
    }
}

//! The reads both SQL engines answer with the same SQL: a stream, a stream's version, a
//! tenant's events, the whole log, the head, and the readers' published positions. Each
//! engine brings its pool and the decoding of its own rows (their column types differ).

use events::{Position, RecordedEvent, StreamName, TenantId};
use sqlx::{Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

use crate::log::{AuditQuery, LogError};

/// The columns every read of events selects, in the order the decoders expect them.
pub(crate) const COLUMNS: &str = "position, event_id, tenant, stream, stream_version, event_type, \
                                  schema_version, occurred_at, correlation_id, causation_id, actor, payload";

/// An engine's pool for reads, and how it decodes a row of [`COLUMNS`].
pub(crate) struct Reads<'a, DB: Database> {
    pub pool: &'a Pool<DB>,
    pub decode: fn(DB::Row) -> Result<RecordedEvent, LogError>,
}

impl<DB> Reads<'_, DB>
where
    DB: Database,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> (i64,): sqlx::FromRow<'r, DB::Row>,
    for<'r> (Option<i64>,): sqlx::FromRow<'r, DB::Row>,
{
    async fn events<'q>(
        &self,
        query: sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        query
            .fetch_all(self.pool)
            .await?
            .into_iter()
            .map(self.decode)
            .collect()
    }

    pub async fn stream(
        &self,
        tenant: &TenantId,
        stream: &StreamName,
        after_version: u64,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM events
             WHERE tenant = $1 AND stream = $2 AND stream_version > $3
             ORDER BY stream_version"
        );
        self.events(
            sqlx::query(&sql)
                .bind(tenant.0.clone())
                .bind(stream.0.clone())
                .bind(after_version as i64),
        )
        .await
    }

    pub async fn stream_version(
        &self,
        tenant: &TenantId,
        stream: &StreamName,
    ) -> Result<u64, LogError> {
        let version: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(stream_version), 0) FROM events WHERE tenant = $1 AND stream = $2",
        )
        .bind(tenant.0.clone())
        .bind(stream.0.clone())
        .fetch_one(self.pool)
        .await?;
        Ok(version as u64)
    }

    pub async fn tenant(
        &self,
        tenant: &TenantId,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE tenant = $1 AND position > $2
             ORDER BY position LIMIT $3"
        );
        self.events(
            sqlx::query(&sql)
                .bind(tenant.0.clone())
                .bind(after.0 as i64)
                .bind(limit as i64),
        )
        .await
    }

    /// The tenant's events `query` picks: the oldest after its `after`, or with `before`
    /// the newest before it, returned in log order either way.
    pub async fn tenant_filtered(
        &self,
        tenant: &TenantId,
        query: &AuditQuery,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        // A prefix compared with substr rather than LIKE: SQLite's LIKE ignores case, and
        // neither engine then needs the prefix's `%` and `_` escaped.
        let order = if query.before.is_some() {
            "DESC"
        } else {
            "ASC"
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE tenant = $1 AND position > $2 AND position < $3
               AND ($4 = '' OR substr(stream, 1, length($4)) = $4)
               AND ($5 = '' OR event_type = $5)
             ORDER BY position {order} LIMIT $6"
        );
        let before = query.before.map_or(i64::MAX, |before| {
            i64::try_from(before.0).unwrap_or(i64::MAX)
        });
        let mut events = self
            .events(
                sqlx::query(&sql)
                    .bind(tenant.0.clone())
                    .bind(query.after.0 as i64)
                    .bind(before)
                    .bind(query.stream_prefix.clone())
                    .bind(query.event_type.clone())
                    .bind(limit as i64),
            )
            .await?;
        if query.before.is_some() {
            events.reverse();
        }
        Ok(events)
    }

    pub async fn all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let sql =
            format!("SELECT {COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2");
        self.events(sqlx::query(&sql).bind(after.0 as i64).bind(limit as i64))
            .await
    }

    pub async fn head(&self) -> Result<Position, LogError> {
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(self.pool)
            .await?;
        Ok(Position(head as u64))
    }

    pub async fn applied_by_readers(&self) -> Result<Option<Position>, LogError> {
        let lowest: Option<i64> = sqlx::query_scalar("SELECT MIN(position) FROM reader_positions")
            .fetch_one(self.pool)
            .await?;
        Ok(lowest.map(|position| Position(position as u64)))
    }
}

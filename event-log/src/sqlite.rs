//! The event log in an embedded SQLite file, the default when no server is configured.
//!
//! One writer connection serialises appends (SQLite allows one writer anyway) and takes
//! `position = max + 1` inside its transaction; readers use a separate pool, which WAL mode
//! lets run alongside the writer. Commits are fully synchronous: a 2xx means the event is on
//! disk.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection, SqlitePool, TransactionManager as _};
use tokio::sync::watch;
use uuid::Uuid;

use crate::log::{AppendError, AppendRequest, Appended, AuditQuery, EventLog, LogError, Selection};
use crate::migrate::{Migration, MigrationSet};
use crate::plan::{self, LogFacts};
use crate::postgres::advance;
use crate::reads::{Reads, COLUMNS};
use events::{EventMetadata, Position, RecordedEvent, StreamName, TenantId};

pub const MIGRATIONS: MigrationSet = MigrationSet {
    name: "event-log",
    migrations: &[
        Migration {
            version: 1,
            name: "events",
            sql: include_str!("../../migrations/sqlite/event-log/0001_events.sql"),
        },
        Migration {
            version: 2,
            name: "events by tenant",
            sql: include_str!("../../migrations/sqlite/event-log/0002_events_by_tenant.sql"),
        },
        Migration {
            version: 3,
            name: "reader positions",
            sql: include_str!("../../migrations/sqlite/event-log/0003_reader_positions.sql"),
        },
        Migration {
            version: 4,
            name: "audit filters",
            sql: include_str!("../../migrations/sqlite/event-log/0004_audit_filters.sql"),
        },
    ],
};

pub struct SqliteEventLog {
    writer: SqlitePool,
    readers: SqlitePool,
    head: watch::Sender<Position>,
    /// Writes reader positions without syncing: they are hints, and a sync per projection
    /// batch would halve how fast the log itself commits.
    hints: SqlitePool,
    published: watch::Sender<u64>,
}

/// Connection settings shared by the writer and the readers of one SQLite file.
pub fn connect_options(url: &str) -> Result<SqliteConnectOptions, sqlx::Error> {
    Ok(SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10)))
}

/// A pool that never hands out a connection a failed transaction left behind.
///
/// When a write fails on a full disk, SQLite may roll the transaction back by itself; the
/// ROLLBACK that follows then fails, and sqlx goes on believing the connection is inside a
/// transaction. Its next BEGIN becomes a SAVEPOINT within a transaction that is never
/// committed, so every later append would be acknowledged and lost. Such a connection is
/// closed when it comes back (closing rolls back whatever it holds); the next one starts clean.
pub fn closing_broken_transactions<DB: sqlx::Database>(
    options: sqlx::pool::PoolOptions<DB>,
) -> sqlx::pool::PoolOptions<DB> {
    options.after_release(|connection, _| {
        Box::pin(async move {
            // Runs the rollback a dropped transaction queued before looking at the depth.
            sqlx::Connection::ping(&mut *connection).await?;
            Ok(DB::TransactionManager::get_transaction_depth(connection) == 0)
        })
    })
}

/// The file an SQLite URL names (`sqlite://path?mode=...` gives `path`); `None` for other URLs.
pub fn database_file(url: &str) -> Option<std::path::PathBuf> {
    let path = url.strip_prefix("sqlite:")?.trim_start_matches("//");
    let path = path.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| path.into())
}

/// Copies the database at `url` to the new file `to` while others keep reading and writing
/// it: `VACUUM INTO` reads one consistent snapshot (a read transaction, which WAL mode lets
/// run beside the writer) and writes a compact, self-contained file with no WAL beside it.
pub async fn copy_database(url: &str, to: &std::path::Path) -> Result<(), sqlx::Error> {
    use sqlx::{ConnectOptions, Connection};
    let mut connection = SqliteConnectOptions::from_str(url)?
        .read_only(true)
        .busy_timeout(Duration::from_secs(10))
        .connect()
        .await?;
    sqlx::query("VACUUM INTO ?")
        .bind(to.to_string_lossy().into_owned())
        .execute(&mut connection)
        .await?;
    connection.close().await
}

/// Copies the log at `url` to the new file `to`, as [`copy_database`] does, and returns the
/// last position the copy holds.
pub async fn copy_log(url: &str, to: &std::path::Path) -> Result<Position, sqlx::Error> {
    use sqlx::{ConnectOptions, Connection};
    copy_database(url, to).await?;
    let mut copy = SqliteConnectOptions::new()
        .filename(to)
        .read_only(true)
        .connect()
        .await?;
    let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
        .fetch_one(&mut copy)
        .await?;
    copy.close().await?;
    Ok(Position(head as u64))
}

fn pool_options(max_connections: u32) -> SqlitePoolOptions {
    closing_broken_transactions(SqlitePoolOptions::new().max_connections(max_connections))
}

impl SqliteEventLog {
    /// Opens (creating if needed) the log at `url`, e.g. `sqlite://data/events.db`.
    pub async fn open(url: &str) -> Result<Self, LogError> {
        let options = connect_options(url)?;
        let writer = pool_options(1).connect_with(options.clone()).await?;
        MIGRATIONS.apply(url).await?;
        let readers = pool_options(4)
            .connect_with(options.clone().read_only(true))
            .await?;
        let current: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&writer)
            .await?;
        let (head, _) = watch::channel(Position(current as u64));
        let hints = pool_options(1)
            .connect_with(options.synchronous(SqliteSynchronous::Off))
            .await?;
        Ok(Self {
            writer,
            readers,
            head,
            hints,
            published: watch::channel(0).0,
        })
    }

    async fn facts(
        connection: &mut SqliteConnection,
        requests: &[AppendRequest],
    ) -> Result<LogFacts, sqlx::Error> {
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&mut *connection)
            .await?;
        let ids: Vec<String> = plan::event_ids(requests)
            .iter()
            .map(Uuid::to_string)
            .collect();
        let mut known_events = HashMap::new();
        for row in sqlx::query(
            "SELECT event_id, position, stream_version FROM events
             WHERE event_id IN (SELECT value FROM json_each($1))",
        )
        .bind(serde_json::to_string(&ids).unwrap_or_default())
        .fetch_all(&mut *connection)
        .await?
        {
            let id: String = row.get(0);
            let position: i64 = row.get(1);
            let version: i64 = row.get(2);
            if let Ok(id) = Uuid::parse_str(&id) {
                known_events.insert(id, (Position(position as u64), version as u64));
            }
        }
        let streams: Vec<(String, String)> = plan::streams(requests)
            .into_iter()
            .map(|(tenant, stream)| (tenant.0, stream.0))
            .collect();
        let stream_versions = sqlx::query(
            // Each stream's last version by one seek of its unique index: a MAX over a join
            // read every event of the stream, so an append cost more the longer its history.
            "SELECT tenant, stream, version FROM (
                 SELECT s.tenant, s.stream,
                        (SELECT e.stream_version FROM events e
                         WHERE e.tenant = s.tenant AND e.stream = s.stream
                         ORDER BY e.stream_version DESC LIMIT 1) AS version
                 FROM (SELECT json_extract(value, '$[0]') AS tenant,
                              json_extract(value, '$[1]') AS stream
                       FROM json_each($1)) s)
             WHERE version IS NOT NULL",
        )
        .bind(serde_json::to_string(&streams).unwrap_or_default())
        .fetch_all(&mut *connection)
        .await?
        .into_iter()
        .map(|row| {
            let version: i64 = row.get(2);
            (
                (TenantId(row.get(0)), StreamName(row.get(1))),
                version as u64,
            )
        })
        .collect();
        Ok(LogFacts {
            head: Position(head as u64),
            known_events,
            stream_versions,
        })
    }

    async fn commit_batch(
        &self,
        requests: Vec<AppendRequest>,
        batch: plan::Batch,
    ) -> Result<Vec<Result<Appended, AppendError>>, sqlx::Error> {
        // IMMEDIATE: the write lock is taken now, waiting as busy_timeout allows, rather than
        // when the first insert upgrades a read that another writer (reader positions, a
        // second process) may have made stale, which SQLite refuses outright.
        let mut transaction = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let facts = Self::facts(&mut transaction, &requests).await?;
        let planned = plan::plan(requests, facts, batch);
        let Some(last) = planned.rows.last() else {
            transaction.rollback().await?;
            return Ok(planned.results);
        };
        let new_head = last.position;
        for row in &planned.rows {
            sqlx::query(
                "INSERT INTO events (position, event_id, tenant, stream, stream_version,
                                     event_type, schema_version, occurred_at, correlation_id,
                                     causation_id, actor, payload)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(row.position.0 as i64)
            .bind(row.event_id.to_string())
            .bind(row.tenant.as_str())
            .bind(row.stream.as_str())
            .bind(row.stream_version as i64)
            .bind(&row.event_type)
            .bind(row.schema_version as i64)
            .bind(
                row.metadata
                    .occurred_at
                    .to_rfc3339_opts(SecondsFormat::Micros, true),
            )
            .bind(&row.metadata.correlation_id)
            .bind(&row.metadata.causation_id)
            .bind(&row.metadata.actor)
            .bind(row.payload.to_string())
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        advance(&self.head, new_head);
        Ok(planned.results)
    }
}

fn recorded(row: SqliteRow) -> Result<RecordedEvent, LogError> {
    let corrupt = |what: &str, detail: String| LogError::Corrupt(format!("{what}: {detail}"));
    let position: i64 = row.try_get("position")?;
    let stream_version: i64 = row.try_get("stream_version")?;
    let schema_version: i64 = row.try_get("schema_version")?;
    let event_id: String = row.try_get("event_id")?;
    let occurred_at: String = row.try_get("occurred_at")?;
    let payload: String = row.try_get("payload")?;
    Ok(RecordedEvent {
        position: Position(position as u64),
        event_id: Uuid::parse_str(&event_id).map_err(|e| corrupt("event_id", e.to_string()))?,
        tenant: TenantId(row.try_get("tenant")?),
        stream: StreamName(row.try_get("stream")?),
        stream_version: stream_version as u64,
        event_type: row.try_get("event_type")?,
        schema_version: schema_version as u32,
        metadata: EventMetadata {
            occurred_at: DateTime::parse_from_rfc3339(&occurred_at)
                .map_err(|e| corrupt("occurred_at", e.to_string()))?
                .with_timezone(&Utc),
            correlation_id: row.try_get("correlation_id")?,
            causation_id: row.try_get("causation_id")?,
            actor: row.try_get("actor")?,
        },
        payload: serde_json::from_str(&payload).map_err(|e| corrupt("payload", e.to_string()))?,
    })
}

impl SqliteEventLog {
    /// The reads both SQL engines share, on this engine's read pool.
    fn reads(&self) -> Reads<'_, sqlx::Sqlite> {
        Reads {
            pool: &self.readers,
            decode: recorded,
            byte_order: "COLLATE BINARY",
        }
    }
}

#[async_trait]
impl EventLog for SqliteEventLog {
    async fn append_many(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Vec<Result<Appended, AppendError>> {
        let count = requests.len();
        plan::settle(
            count,
            self.commit_batch(requests, plan::Batch::Independent).await,
        )
    }

    async fn append_atomic(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Result<Vec<Appended>, AppendError> {
        let count = requests.len();
        plan::all_or_first_error(plan::settle(
            count,
            self.commit_batch(requests, plan::Batch::Atomic).await,
        ))
    }

    async fn read_stream(
        &self,
        tenant: &TenantId,
        stream: &StreamName,
        after_version: u64,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.reads().stream(tenant, stream, after_version).await
    }

    async fn stream_version(
        &self,
        tenant: &TenantId,
        stream: &StreamName,
    ) -> Result<u64, LogError> {
        self.reads().stream_version(tenant, stream).await
    }

    async fn read_tenant(
        &self,
        tenant: &TenantId,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.reads().tenant(tenant, after, limit).await
    }

    async fn read_tenant_selected(
        &self,
        tenant: &TenantId,
        after: Position,
        limit: usize,
        selection: &Selection,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events WHERE tenant = $1 AND position > $2
               AND (json_extract(payload, $3) = $4
                    OR stream IN (SELECT value FROM json_each($5))
                    OR event_type IN (SELECT value FROM json_each($6)))
             ORDER BY position LIMIT $7"
        ))
        .bind(tenant.as_str())
        .bind(after.0 as i64)
        // A JSON path, bound like any value: the field name never becomes SQL.
        .bind(format!("$.\"{}\"", selection.field.replace('"', "")))
        .bind(&selection.value)
        .bind(serde_json::to_string(&selection.streams).unwrap_or_default())
        .bind(serde_json::to_string(&selection.event_types).unwrap_or_default())
        .bind(limit as i64)
        .fetch_all(&self.readers)
        .await?
        .into_iter()
        .map(recorded)
        .collect()
    }

    async fn read_tenant_filtered(
        &self,
        tenant: &TenantId,
        query: &AuditQuery,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.reads().tenant_filtered(tenant, query, limit).await
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.reads().all(after, limit).await
    }

    async fn publish_applied(&self, reader: &str, position: Position) -> Result<(), LogError> {
        sqlx::query(
            "INSERT INTO reader_positions (reader, position) VALUES ($1, $2)
             ON CONFLICT (reader) DO UPDATE SET position = excluded.position",
        )
        .bind(reader)
        .bind(position.0 as i64)
        .execute(&self.hints)
        .await?;
        // Other processes on the same file learn of it by looking again.
        self.published
            .send_modify(|count| *count = count.wrapping_add(1));
        Ok(())
    }

    async fn applied_by_readers(&self) -> Result<Option<Position>, LogError> {
        self.reads().applied_by_readers().await
    }

    fn applied_changes(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    async fn head(&self) -> Result<Position, LogError> {
        self.reads().head().await
    }

    fn head_changes(&self) -> watch::Receiver<Position> {
        self.head.subscribe()
    }
}

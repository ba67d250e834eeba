//! The event log on PostgreSQL.
//!
//! Writers take a transaction-scoped advisory lock and assign `position = max + 1` under it,
//! so positions commit in order and a reader can never see N+1 before N. Batches of appends
//! share one commit, which is what keeps many small appends fast. Each commit sends a
//! NOTIFY carrying the new head; every process LISTENs and wakes its subscribers, while
//! subscribers also poll in case a notification is lost.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgListener, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::log::{AppendError, AppendRequest, Appended, AuditQuery, EventLog, LogError, Selection};
use crate::migrate::{Migration, MigrationSet};
use crate::plan::{self, LogFacts};
use crate::reads::{Reads, COLUMNS};
use events::{EventMetadata, Position, RecordedEvent, StreamName, TenantId};

pub const MIGRATIONS: MigrationSet = MigrationSet {
    name: "event-log",
    migrations: &[
        Migration {
            version: 1,
            name: "events",
            sql: include_str!("../../migrations/postgres/event-log/0001_events.sql"),
        },
        Migration {
            version: 2,
            name: "events by tenant",
            sql: include_str!("../../migrations/postgres/event-log/0002_events_by_tenant.sql"),
        },
        Migration {
            version: 3,
            name: "reader positions",
            sql: include_str!("../../migrations/postgres/event-log/0003_reader_positions.sql"),
        },
        Migration {
            version: 4,
            name: "audit filters",
            sql: include_str!("../../migrations/postgres/event-log/0004_audit_filters.sql"),
        },
    ],
};

/// Any constant will do as long as nothing else on the database uses it.
const WRITER_LOCK: i64 = 7_305_112_690_347_002;
const CHANNEL: &str = "event_log";
/// Where readers announce a new published position (the payload is empty).
const READERS_CHANNEL: &str = "event_log_readers";

pub struct PostgresEventLog {
    pool: PgPool,
    head: watch::Sender<Position>,
    readers: watch::Sender<u64>,
    listener: JoinHandle<()>,
}

impl PostgresEventLog {
    /// Migrates the schema if needed, then connects.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, LogError> {
        MIGRATIONS.apply(url).await?;
        let pool = PgPoolOptions::new()
            // One connection stays with the LISTEN task.
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        Self::from_pool(pool).await
    }

    pub async fn from_pool(pool: PgPool) -> Result<Self, LogError> {
        let current: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&pool)
            .await?;
        let (head, _) = watch::channel(Position(current as u64));
        let (readers, _) = watch::channel(0);
        let listener = tokio::spawn(listen(pool.clone(), head.clone(), readers.clone()));
        Ok(Self {
            pool,
            head,
            readers,
            listener,
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn facts(
        transaction: &mut sqlx::PgConnection,
        requests: &[AppendRequest],
    ) -> Result<LogFacts, sqlx::Error> {
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&mut *transaction)
            .await?;
        let known_events = sqlx::query(
            "SELECT event_id, position, stream_version FROM events WHERE event_id = ANY($1)",
        )
        .bind(plan::event_ids(requests))
        .fetch_all(&mut *transaction)
        .await?
        .into_iter()
        .map(|row| {
            let id: Uuid = row.get(0);
            let position: i64 = row.get(1);
            let version: i64 = row.get(2);
            (id, (Position(position as u64), version as u64))
        })
        .collect();
        let (tenants, streams): (Vec<String>, Vec<String>) = plan::streams(requests)
            .into_iter()
            .map(|(tenant, stream)| (tenant.0, stream.0))
            .unzip();
        let stream_versions: HashMap<_, _> = sqlx::query(
            // Each stream's last version by one backward step of its unique index: a MAX
            // over a join read every event of the stream, so an append cost more the longer
            // its history.
            "SELECT s.tenant, s.stream, v.stream_version
             FROM UNNEST($1::text[], $2::text[]) AS s(tenant, stream)
             CROSS JOIN LATERAL (
                 SELECT e.stream_version FROM events e
                 WHERE e.tenant = s.tenant AND e.stream = s.stream
                 ORDER BY e.stream_version DESC LIMIT 1) v",
        )
        .bind(tenants)
        .bind(streams)
        .fetch_all(&mut *transaction)
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
        let mut transaction = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITER_LOCK)
            .execute(&mut *transaction)
            .await?;
        let facts = Self::facts(&mut transaction, &requests).await?;
        let planned = plan::plan(requests, facts, batch);
        let Some(last) = planned.rows.last() else {
            // Nothing new (conflicts or repeats only): release the lock without a commit record.
            transaction.rollback().await?;
            return Ok(planned.results);
        };
        let new_head = last.position;
        insert(&mut transaction, &planned.rows).await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(new_head.0.to_string())
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        advance(&self.head, new_head);
        Ok(planned.results)
    }
}

impl Drop for PostgresEventLog {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

async fn insert(
    transaction: &mut sqlx::PgConnection,
    rows: &[RecordedEvent],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO events (position, event_id, tenant, stream, stream_version, event_type,
                             schema_version, occurred_at, correlation_id, causation_id, actor,
                             payload)
         SELECT position, event_id, tenant, stream, stream_version, event_type, schema_version,
                occurred_at, correlation_id, causation_id, actor, payload::jsonb
         FROM UNNEST($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::text[],
                     $7::int[], $8::timestamptz[], $9::text[], $10::text[], $11::text[],
                     $12::text[])
              AS r(position, event_id, tenant, stream, stream_version, event_type,
                   schema_version, occurred_at, correlation_id, causation_id, actor, payload)",
    )
    .bind(rows.iter().map(|r| r.position.0 as i64).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.event_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.tenant.0.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.stream.0.clone()).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.stream_version as i64)
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.event_type.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.schema_version as i32)
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.metadata.occurred_at)
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.metadata.correlation_id.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.metadata.causation_id.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.metadata.actor.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.payload.to_string())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *transaction)
    .await?;
    Ok(())
}

fn recorded(row: PgRow) -> Result<RecordedEvent, LogError> {
    let position: i64 = row.try_get("position")?;
    let stream_version: i64 = row.try_get("stream_version")?;
    let schema_version: i32 = row.try_get("schema_version")?;
    let occurred_at: DateTime<Utc> = row.try_get("occurred_at")?;
    Ok(RecordedEvent {
        position: Position(position as u64),
        event_id: row.try_get("event_id")?,
        tenant: TenantId(row.try_get("tenant")?),
        stream: StreamName(row.try_get("stream")?),
        stream_version: stream_version as u64,
        event_type: row.try_get("event_type")?,
        schema_version: schema_version as u32,
        metadata: EventMetadata {
            occurred_at,
            correlation_id: row.try_get("correlation_id")?,
            causation_id: row.try_get("causation_id")?,
            actor: row.try_get("actor")?,
        },
        payload: row.try_get("payload")?,
    })
}

/// Raises the known head; never lowers it, since notifications may arrive out of order.
pub(crate) fn advance(head: &watch::Sender<Position>, to: Position) {
    head.send_if_modified(|known| {
        let newer = to > *known;
        if newer {
            *known = to;
        }
        newer
    });
}

async fn listen(pool: PgPool, head: watch::Sender<Position>, readers: watch::Sender<u64>) {
    loop {
        let outcome: Result<(), sqlx::Error> = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen_all([CHANNEL, READERS_CHANNEL]).await?;
            loop {
                // None: the connection was lost, and with it any notification sent
                // meanwhile; the next call reconnects. Readers are told to look again, as
                // a publication may have gone unheard.
                let Some(notification) = listener.try_recv().await? else {
                    tracing::warn!("event log notifications interrupted; listening again");
                    readers.send_modify(|count| *count = count.wrapping_add(1));
                    continue;
                };
                if notification.channel() == READERS_CHANNEL {
                    readers.send_modify(|count| *count = count.wrapping_add(1));
                } else if let Ok(position) = notification.payload().parse::<u64>() {
                    advance(&head, Position(position));
                }
            }
        }
        .await;
        if let Err(error) = outcome {
            tracing::warn!(%error, "event log notifications lost; subscribers fall back to polling");
        }
        // Whatever was published while nobody listened, readers look again.
        readers.send_modify(|count| *count = count.wrapping_add(1));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

impl PostgresEventLog {
    /// The reads both SQL engines share, on this engine's pool.
    fn reads(&self) -> Reads<'_, sqlx::Postgres> {
        Reads {
            pool: &self.pool,
            decode: recorded,
            byte_order: r#"COLLATE "C""#,
        }
    }
}

#[async_trait]
impl EventLog for PostgresEventLog {
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
               AND (payload->>$3 = $4 OR stream = ANY($5) OR event_type = ANY($6))
             ORDER BY position LIMIT $7"
        ))
        .bind(tenant.as_str())
        .bind(after.0 as i64)
        .bind(&selection.field)
        .bind(&selection.value)
        .bind(&selection.streams)
        .bind(&selection.event_types)
        .bind(limit as i64)
        .fetch_all(&self.pool)
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
        let mut transaction = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO reader_positions (reader, position) VALUES ($1, $2)
             ON CONFLICT (reader) DO UPDATE SET position = EXCLUDED.position",
        )
        .bind(reader)
        .bind(position.0 as i64)
        .execute(&mut *transaction)
        .await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(READERS_CHANNEL)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        // This process hears of it at once; others through the notification.
        self.readers
            .send_modify(|count| *count = count.wrapping_add(1));
        Ok(())
    }

    async fn applied_by_readers(&self) -> Result<Option<Position>, LogError> {
        self.reads().applied_by_readers().await
    }

    fn applied_changes(&self) -> watch::Receiver<u64> {
        self.readers.subscribe()
    }

    fn announces_every_publication(&self) -> bool {
        true
    }

    async fn head(&self) -> Result<Position, LogError> {
        self.reads().head().await
    }

    fn head_changes(&self) -> watch::Receiver<Position> {
        self.head.subscribe()
    }
}

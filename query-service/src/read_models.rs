//! The database behind the read models: PostgreSQL, or an SQLite file when embedded.
//!
//! Queries go through sqlx's `Any` driver and use the SQL both engines share (text, bigint,
//! `$n` parameters, `ON CONFLICT`), so every projection and query is written once.

use std::str::FromStr;
use std::time::Duration;

use events::{Migration, MigrationSet, Position};
use sqlx::any::{install_default_drivers, AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, ConnectOptions};

/// The read-model migrations of one engine: the same versions and names for both, each from
/// its engine's folder.
macro_rules! read_model_migrations {
    ($engine:literal) => {
        MigrationSet {
            name: "read-models",
            migrations: &[
                Migration {
                    version: 1,
                    name: "deployments",
                    sql: include_str!(concat!(
                        "../../migrations/",
                        $engine,
                        "/read-models/0001_deployments.sql"
                    )),
                },
                Migration {
                    version: 2,
                    name: "artifacts",
                    sql: include_str!(concat!(
                        "../../migrations/",
                        $engine,
                        "/read-models/0002_artifacts.sql"
                    )),
                },
                Migration {
                    version: 3,
                    name: "deployment reads",
                    sql: include_str!(concat!(
                        "../../migrations/",
                        $engine,
                        "/read-models/0003_deployment_reads.sql"
                    )),
                },
                Migration {
                    version: 4,
                    name: "relay checkpoints",
                    sql: include_str!(concat!(
                        "../../migrations/",
                        $engine,
                        "/read-models/0004_relay_checkpoints.sql"
                    )),
                },
            ],
        }
    };
}

const POSTGRES_MIGRATIONS: MigrationSet = read_model_migrations!("postgres");
const SQLITE_MIGRATIONS: MigrationSet = read_model_migrations!("sqlite");

#[derive(Clone)]
pub struct ReadModels {
    pool: AnyPool,
    url: String,
}

impl ReadModels {
    /// Migrates the schema if needed, then connects.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, sqlx::Error> {
        install_default_drivers();
        let url = sqlite_with_create(url);
        let postgres = is_postgres(&url);
        let migrations = if postgres {
            POSTGRES_MIGRATIONS
        } else {
            SQLITE_MIGRATIONS
        };
        migrations.apply(&url).await?;
        // SQLite gets one connection: it has one writer, and a read that meets an in-flight
        // projection batch then waits for its commit instead of failing as "locked".
        let pool = AnyPoolOptions::new()
            .max_connections(if postgres { max_connections } else { 1 })
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await?;
        if !postgres {
            // WAL is a property of the file: set once, it holds for every later connection.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        Ok(Self { pool, url })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn is_postgres(&self) -> bool {
        is_postgres(&self.url)
    }

    /// Where a projection has got to in the log.
    pub async fn checkpoint(&self, projection: &str) -> Result<Position, sqlx::Error> {
        sqlx::query(
            "INSERT INTO projection_checkpoints (projection, position) VALUES ($1, 0)
             ON CONFLICT (projection) DO NOTHING",
        )
        .bind(projection)
        .execute(&self.pool)
        .await?;
        let position: i64 =
            sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE projection = $1")
                .bind(projection)
                .fetch_one(&self.pool)
                .await?;
        Ok(Position(position as u64))
    }

    /// The position every projection has reached, `None` before any has started.
    pub async fn slowest_checkpoint(&self) -> Result<Option<Position>, sqlx::Error> {
        let slowest: Option<i64> =
            sqlx::query_scalar("SELECT MIN(position) FROM projection_checkpoints")
                .fetch_one(&self.pool)
                .await?;
        Ok(slowest.map(|position| Position(position as u64)))
    }

    /// Waits until this instance may run the projection. On PostgreSQL a session advisory
    /// lock held by a connection of its own: when the holder dies the lock is released and a
    /// waiting instance takes over. SQLite is one process: there is nobody to wait for.
    pub async fn lock_projection(
        &self,
        projection: &str,
        retry: Duration,
    ) -> Result<ProjectionLock, sqlx::Error> {
        if !self.is_postgres() {
            return Ok(ProjectionLock { _connection: None });
        }
        let mut connection = AnyConnectOptions::from_str(&self.url)?.connect().await?;
        let key = lock_key(projection);
        loop {
            let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(&mut connection)
                .await?;
            if held {
                return Ok(ProjectionLock {
                    _connection: Some(connection),
                });
            }
            tokio::time::sleep(retry).await;
        }
    }

    /// Empties every read model and sets every checkpoint back to the start, in one
    /// transaction: running projectors notice their checkpoint moved and replay from 0.
    pub async fn reset(&self) -> Result<(), sqlx::Error> {
        let mut transaction = self.pool.begin().await?;
        for table in READ_MODEL_TABLES {
            sqlx::query(&format!("DELETE FROM {table}"))
                .execute(&mut *transaction)
                .await?;
        }
        sqlx::query("UPDATE projection_checkpoints SET position = 0")
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await
    }

    /// Every read-model row, in a stable order, to compare two builds of the same log.
    pub async fn dump(&self) -> Result<Vec<String>, sqlx::Error> {
        use sqlx::{Column, Row, ValueRef};
        let mut lines = Vec::new();
        for table in READ_MODEL_TABLES {
            let rows = sqlx::query(&format!("SELECT * FROM {table}"))
                .fetch_all(&self.pool)
                .await?;
            for row in rows {
                let mut fields = vec![table.to_owned()];
                for column in row.columns() {
                    let index = column.ordinal();
                    let raw = row.try_get_raw(index)?;
                    let value = if raw.is_null() {
                        "NULL".to_owned()
                    } else if let Ok(text) = row.try_get::<String, _>(index) {
                        text
                    } else {
                        row.try_get::<i64, _>(index)?.to_string()
                    };
                    fields.push(format!("{}={value}", column.name()));
                }
                lines.push(fields.join(" "));
            }
        }
        // Sorted here rather than in SQL: the order is then the same on every engine.
        lines.sort();
        Ok(lines)
    }
}

/// Tables a rebuild empties, those of every projection; the checkpoints are reset, not
/// emptied.
const READ_MODEL_TABLES: [&str; 10] = [
    "deployments",
    "deployment_devices",
    "deployment_phases",
    "deployment_statistics",
    "deployment_known_artifacts",
    "deployment_artifacts",
    "device_deployments",
    "device_deployment_logs",
    "artifacts",
    "storage_usage",
];

/// Held while this instance runs a projection; dropping it releases the lock.
pub struct ProjectionLock {
    _connection: Option<AnyConnection>,
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres")
}

fn sqlite_with_create(url: &str) -> String {
    if url.starts_with("sqlite:") && !url.contains("mode=") {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}mode=rwc")
    } else {
        url.to_owned()
    }
}

fn lock_key(projection: &str) -> i64 {
    // FNV-1a: stable across builds and processes, unlike the std hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in projection.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

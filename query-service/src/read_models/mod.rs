//! The database behind the read models: PostgreSQL, or an SQLite file when embedded.
//!
//! Queries go through sqlx's `Any` driver and use the SQL both engines share (text, bigint,
//! `$n` parameters, `ON CONFLICT`), so every projection and query is written once. Reads
//! live in one store per read model below, so the HTTP handlers never see SQL.

pub mod artifacts;
pub mod attribute_index;
pub mod checkpoints;
pub mod deployments;
pub mod devices;
pub mod entries;
pub mod inventory;
pub mod past;
pub(crate) mod sql;

use std::str::FromStr;
use std::time::Duration;

use std::sync::Arc;

use event_log::sqlite::database_file;
use event_log::{generation_schema, generation_url, Migration, MigrationSet};
use events::Position;
use sqlx::any::{install_default_drivers, AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, ConnectOptions};
use tokio::sync::watch;

use self::artifacts::Artifacts;
use self::attribute_index::AttributeIndex;
use self::deployments::Deployments;
use self::devices::Devices;
use self::entries::Entries;
use self::inventory::Inventory;

/// The rows of a list one page answers: `limit` of them, after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: i64,
    pub offset: i64,
}

/// The read-model migrations: one set of SQL that both engines run
/// (`migrations/read-models/`), as the read models use only what the two share.
const MIGRATIONS: MigrationSet = MigrationSet {
    name: "read-models",
    migrations: &[
        Migration {
            version: 1,
            name: "deployments",
            sql: include_str!("../../../migrations/read-models/0001_deployments.sql"),
        },
        Migration {
            version: 2,
            name: "artifacts",
            sql: include_str!("../../../migrations/read-models/0002_artifacts.sql"),
        },
        Migration {
            version: 3,
            name: "deployment reads",
            sql: include_str!("../../../migrations/read-models/0003_deployment_reads.sql"),
        },
        Migration {
            version: 4,
            name: "relay checkpoints",
            sql: include_str!("../../../migrations/read-models/0004_relay_checkpoints.sql"),
        },
        Migration {
            version: 5,
            name: "generations",
            sql: include_str!("../../../migrations/read-models/0005_generations.sql"),
        },
        Migration {
            version: 6,
            name: "device list order",
            sql: include_str!("../../../migrations/read-models/0006_device_list_order.sql"),
        },
        Migration {
            version: 7,
            name: "devices",
            sql: include_str!("../../../migrations/read-models/0007_devices.sql"),
        },
        Migration {
            version: 8,
            name: "inventory",
            sql: include_str!("../../../migrations/read-models/0008_inventory.sql"),
        },
        Migration {
            version: 9,
            name: "pause",
            sql: include_str!("../../../migrations/read-models/0009_pause.sql"),
        },
        Migration {
            version: 10,
            name: "policy",
            sql: include_str!("../../../migrations/read-models/0010_policy.sql"),
        },
        Migration {
            version: 11,
            name: "retries",
            sql: include_str!("../../../migrations/read-models/0011_retries.sql"),
        },
        Migration {
            version: 12,
            name: "device counts",
            sql: include_str!("../../../migrations/read-models/0012_device_counts.sql"),
        },
        Migration {
            version: 13,
            name: "attribute index",
            sql: include_str!("../../../migrations/read-models/0013_attribute_index.sql"),
        },
    ],
};

/// One build of the read models, with the pool that reaches it.
#[derive(Clone)]
pub struct Generation {
    pub number: u64,
    /// Projection batches. One connection on SQLite: it has one writer, and a second
    /// transaction that reads then writes would fail as "locked" rather than wait.
    pool: AnyPool,
    /// Queries. On SQLite a pool of its own: in WAL mode readers neither wait for the
    /// writer nor block it, so reads run side by side.
    reads: AnyPool,
}

impl Generation {
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Where a projection has got to in the log, in this generation.
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

    async fn fastest_checkpoint(&self) -> Result<Option<Position>, sqlx::Error> {
        let fastest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(position) FROM projection_checkpoints")
                .fetch_one(&self.pool)
                .await?;
        Ok(fastest.map(|position| Position(position as u64)))
    }
}

/// The read models of one configured database, as this instance sees them.
///
/// A rebuild fills a new generation beside the live one, then marks it live. Two views
/// follow that mark: the *target*, the generation projectors write, moves as soon as the
/// mark does; the *serving* generation, the one reads use, moves only once the target has
/// caught up with it, so a switch never shows a read less than it showed before.
#[derive(Clone)]
pub struct ReadModels {
    shared: Arc<Shared>,
}

struct Shared {
    url: String,
    max_connections: u32,
    /// The configured database: generation 0, the generations table and the relay's
    /// checkpoints, which outlive every rebuild.
    base: Generation,
    target: watch::Sender<Generation>,
    serving: watch::Sender<Generation>,
}

impl ReadModels {
    /// Migrates the schema if needed, then connects to the live generation.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, sqlx::Error> {
        install_default_drivers();
        let url = sqlite_with_create(url);
        let base = open_generation_at(&url, 0, max_connections).await?;
        let live = live_generation(&base.pool).await?;
        let mut read_models = Self::over(url, max_connections, base.clone(), base);
        if live != 0 {
            let generation = read_models.open_generation(live).await?;
            read_models = read_models.pinned(generation);
        }
        Ok(read_models)
    }

    fn over(url: String, max_connections: u32, base: Generation, generation: Generation) -> Self {
        Self {
            shared: Arc::new(Shared {
                url,
                max_connections,
                base,
                target: watch::channel(generation.clone()).0,
                serving: watch::channel(generation).0,
            }),
        }
    }

    /// The same database with `generation` as both target and serving generation, followed
    /// by nobody: what a rebuild fills.
    pub fn pinned(&self, generation: Generation) -> Self {
        let shared = &self.shared;
        Self::over(
            shared.url.clone(),
            shared.max_connections,
            shared.base.clone(),
            generation,
        )
    }

    /// The pool for queries of the generation reads use now.
    pub fn pool(&self) -> AnyPool {
        self.shared.serving.borrow().reads.clone()
    }

    /// The artifacts of the generation reads use now.
    pub fn artifacts(&self) -> Artifacts {
        Artifacts::new(self.pool())
    }

    /// The deployments of the generation reads use now.
    pub fn deployments(&self) -> Deployments {
        Deployments::new(self.pool(), self.is_postgres())
    }

    /// The devices (admission) of the generation reads use now.
    pub fn devices(&self) -> Devices {
        Devices::new(self.pool())
    }

    /// The inventory of the generation reads use now.
    pub fn inventory(&self) -> Inventory {
        Inventory::new(self.pool())
    }

    /// The attribute index of the generation reads use now.
    pub fn attribute_index(&self) -> AttributeIndex {
        AttributeIndex::new(self.pool())
    }

    /// The device entries of the generation reads use now.
    pub fn entries(&self) -> Entries {
        Entries::new(self.pool())
    }

    pub fn serving(&self) -> Generation {
        self.shared.serving.borrow().clone()
    }

    pub fn watch_serving(&self) -> watch::Receiver<Generation> {
        self.shared.serving.subscribe()
    }

    pub fn watch_target(&self) -> watch::Receiver<Generation> {
        self.shared.target.subscribe()
    }

    /// The configured database, whatever generation serves: for state that no rebuild
    /// replaces, like the relay's checkpoints.
    pub fn base(&self) -> &AnyPool {
        &self.shared.base.pool
    }

    pub fn is_postgres(&self) -> bool {
        is_postgres(&self.shared.url)
    }

    /// Refreshes PostgreSQL's statistics of the serving generation's tables. A generation a
    /// rebuild fills goes from empty to millions of rows in minutes, faster than autovacuum
    /// looks; planned on the empty table's statistics, a projector's lookup of a few entries
    /// of one deployment scans every entry of that deployment through the wrong index.
    /// Nothing to do on SQLite, whose planner does not rely on gathered statistics here.
    pub async fn analyze(&self) -> Result<(), sqlx::Error> {
        if !self.is_postgres() {
            return Ok(());
        }
        let statement = format!("ANALYZE {}", READ_MODEL_TABLES.join(", "));
        sqlx::query(&statement)
            .execute(&self.serving().pool)
            .await?;
        Ok(())
    }

    /// Where a projection has got to in the serving generation.
    pub async fn checkpoint(&self, projection: &str) -> Result<Position, sqlx::Error> {
        self.serving().checkpoint(projection).await
    }

    /// The position every projection of the serving generation has reached.
    pub async fn slowest_checkpoint(&self) -> Result<Option<Position>, sqlx::Error> {
        self.serving().slowest_checkpoint().await
    }

    /// Waits until this instance may run the projection in a generation. On PostgreSQL a
    /// session advisory lock held by a connection of its own: when the holder dies the lock
    /// is released and a waiting instance takes over. SQLite is one process: there is
    /// nobody to wait for.
    pub async fn lock_projection(
        &self,
        projection: &str,
        generation: u64,
        retry: Duration,
    ) -> Result<ProjectionLock, sqlx::Error> {
        if !self.is_postgres() {
            return Ok(ProjectionLock { _connection: None });
        }
        let mut connection = AnyConnectOptions::from_str(&self.shared.url)?
            .connect()
            .await?;
        // Generation 0 keeps the projection's bare name, so instances of an older release
        // still exclude each other.
        let key = match generation {
            0 => lock_key(projection),
            n => lock_key(&format!("{projection}@{n}")),
        };
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

    /// Connects to a generation, creating and migrating it first if it is new.
    pub async fn open_generation(&self, number: u64) -> Result<Generation, sqlx::Error> {
        if number == 0 {
            return Ok(self.shared.base.clone());
        }
        if self.is_postgres() {
            sqlx::query(&format!(
                "CREATE SCHEMA IF NOT EXISTS {}",
                generation_schema(number)
            ))
            .execute(self.base())
            .await?;
        }
        let url = generation_url(&self.shared.url, number);
        open_generation_at(&url, number, self.shared.max_connections).await
    }

    /// Follows the live mark until the task is dropped: when a rebuild marks a new
    /// generation live, projectors move to it at once, and reads once it has caught up
    /// with the generation they use now.
    pub async fn follow_switches(self, interval: Duration) {
        loop {
            // While a switch is under way reads wait on it: look again soon.
            let switching = self.shared.target.borrow().number != self.serving().number;
            let pause = if switching {
                Duration::from_millis(20).min(interval)
            } else {
                interval
            };
            tokio::time::sleep(pause).await;
            if let Err(error) = self.follow_switch().await {
                tracing::error!(%error, "cannot follow the live read-model generation");
            }
        }
    }

    async fn follow_switch(&self) -> Result<(), sqlx::Error> {
        let live = live_generation(self.base()).await?;
        let target = self.shared.target.borrow().number;
        if live != target {
            let generation = self.open_generation(live).await?;
            tracing::info!(
                generation = live,
                "projecting into a new read-model generation"
            );
            self.shared.target.send_replace(generation);
        }
        let target = self.shared.target.borrow().clone();
        let serving = self.serving();
        if target.number == serving.number {
            return Ok(());
        }
        let caught_up = match (
            target.slowest_checkpoint().await?,
            serving.fastest_checkpoint().await?,
        ) {
            (Some(target), Some(serving)) => target >= serving,
            (Some(_), None) | (None, None) => true,
            (None, Some(_)) => false,
        };
        if caught_up {
            tracing::info!(
                generation = target.number,
                "serving a new read-model generation"
            );
            self.shared.serving.send_replace(target);
        }
        Ok(())
    }

    /// Makes sure no other rebuild runs until the returned lock is dropped: a second one
    /// would drop the first one's generation as stale. On PostgreSQL a session advisory
    /// lock, on SQLite an exclusive lock on a file beside the database.
    pub async fn lock_rebuild(&self) -> Result<RebuildLock, sqlx::Error> {
        let busy = || sqlx::Error::Protocol("another rebuild is running".to_owned());
        if self.is_postgres() {
            let mut connection = AnyConnectOptions::from_str(&self.shared.url)?
                .connect()
                .await?;
            let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(lock_key("read-model rebuild"))
                .fetch_one(&mut connection)
                .await?;
            return match held {
                true => Ok(RebuildLock::Session(connection)),
                false => Err(busy()),
            };
        }
        let file = database_file(&self.shared.url)
            .ok_or_else(|| sqlx::Error::Configuration("not an SQLite file URL".into()))?;
        let file = std::fs::File::create(format!("{}.rebuild.lock", file.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(RebuildLock::File(file)),
            Err(std::fs::TryLockError::WouldBlock) => Err(busy()),
            Err(std::fs::TryLockError::Error(error)) => Err(error.into()),
        }
    }

    /// The generations no instance should use any more: retired ones, and builds that
    /// never went live.
    pub async fn stale_generations(&self) -> Result<Vec<u64>, sqlx::Error> {
        let stale: Vec<i64> = sqlx::query_scalar(
            "SELECT generation FROM read_model_generations WHERE state <> 'live'
             ORDER BY generation",
        )
        .fetch_all(self.base())
        .await?;
        Ok(stale.into_iter().map(|number| number as u64).collect())
    }

    /// Deletes a generation that is not live: its schema or file, or generation 0's rows.
    pub async fn drop_generation(&self, number: u64) -> Result<(), sqlx::Error> {
        let base = self.base();
        if number == 0 {
            let mut transaction = base.begin().await?;
            for table in READ_MODEL_TABLES.iter().chain(&["projection_checkpoints"]) {
                sqlx::query(&format!("DELETE FROM {table}"))
                    .execute(&mut *transaction)
                    .await?;
            }
            transaction.commit().await?;
        } else if self.is_postgres() {
            sqlx::query(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                generation_schema(number)
            ))
            .execute(base)
            .await?;
        } else if let Some(file) = database_file(&generation_url(&self.shared.url, number)) {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
        sqlx::query("DELETE FROM read_model_generations WHERE generation = $1")
            .bind(number as i64)
            .execute(base)
            .await?;
        Ok(())
    }

    /// Records a new generation as being built, and creates it.
    pub async fn begin_generation(&self) -> Result<Generation, sqlx::Error> {
        let newest: i64 = sqlx::query_scalar("SELECT MAX(generation) FROM read_model_generations")
            .fetch_one(self.base())
            .await?;
        let number = newest as u64 + 1;
        // The primary key makes a second rebuild started at the same moment fail here.
        sqlx::query(
            "INSERT INTO read_model_generations (generation, state) VALUES ($1, 'building')",
        )
        .bind(number as i64)
        .execute(self.base())
        .await?;
        self.open_generation(number).await
    }

    /// Marks a built generation live and the previous one retired, in one transaction.
    pub async fn make_live(&self, number: u64) -> Result<(), sqlx::Error> {
        let mut transaction = self.base().begin().await?;
        sqlx::query("UPDATE read_model_generations SET state = 'retired' WHERE state = 'live'")
            .execute(&mut *transaction)
            .await?;
        let marked = sqlx::query(
            "UPDATE read_model_generations SET state = 'live'
             WHERE generation = $1 AND state = 'building'",
        )
        .bind(number as i64)
        .execute(&mut *transaction)
        .await?;
        if marked.rows_affected() != 1 {
            transaction.rollback().await?;
            return Err(sqlx::Error::Protocol(format!(
                "generation {number} is no longer being built"
            )));
        }
        transaction.commit().await
    }

    /// Every read-model row of the serving generation, in a stable order, to compare two
    /// builds of the same log.
    pub async fn dump(&self) -> Result<Vec<String>, sqlx::Error> {
        use sqlx::{Column, Row, ValueRef};
        let pool = self.pool();
        let mut lines = Vec::new();
        for table in READ_MODEL_TABLES {
            let rows = sqlx::query(&format!("SELECT * FROM {table}"))
                .fetch_all(&pool)
                .await?;
            for row in rows {
                let mut fields = vec![(*table).to_owned()];
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

/// Migrates the database behind `url` and opens its pools.
async fn open_generation_at(
    url: &str,
    number: u64,
    max_connections: u32,
) -> Result<Generation, sqlx::Error> {
    let postgres = is_postgres(url);
    MIGRATIONS.apply(url).await?;
    let mut options = AnyPoolOptions::new()
        .max_connections(if postgres { max_connections } else { 1 })
        .acquire_timeout(Duration::from_secs(10));
    if !postgres {
        // A transaction that failed on a full disk can leave an SQLite connection inside a
        // transaction sqlx no longer tracks, whose later "commits" would never reach the file.
        options = event_log::sqlite::closing_broken_transactions(options);
    }
    let pool = options.connect(url).await?;
    if postgres {
        return Ok(Generation {
            number,
            reads: pool.clone(),
            pool,
        });
    }
    // WAL is a property of the file: set once, it holds for every later connection.
    sqlx::query("PRAGMA journal_mode = WAL")
        .execute(&pool)
        .await?;
    let reads = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await?;
    Ok(Generation {
        number,
        pool,
        reads,
    })
}

async fn live_generation(base: &AnyPool) -> Result<u64, sqlx::Error> {
    let live: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(generation) FROM read_model_generations WHERE state = 'live'",
    )
    .fetch_one(base)
    .await?;
    Ok(live.unwrap_or(0) as u64)
}

/// The tables of every projection, as a generation holds them.
const READ_MODEL_TABLES: &[&str] = &[
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
    "device_counts",
    "devices",
    "auth_sets",
    "inventory",
    "inventory_filters",
    "attribute_values",
    "attribute_names",
];

/// Held while a rebuild runs; dropping it lets the next one start.
pub enum RebuildLock {
    Session(AnyConnection),
    File(std::fs::File),
}

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

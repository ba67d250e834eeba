//! The event log every change goes through: the [`EventLog`] port, its storage engines
//! (embedded SQLite, PostgreSQL, and KurrentDB behind the `kurrentdb` feature), group commit,
//! ordered subscriptions, the SQL migrations runner, and the conformance suite every engine
//! passes. What the log carries, the event contract, is the `events` crate's.

pub mod batching;
mod log;
pub mod memory;
mod migrate;
mod plan;
pub mod postgres;
mod reads;
pub mod sqlite;
mod subscription;

#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "kurrentdb")]
pub mod kurrentdb;

pub use log::{
    storage_fault, AppendError, AppendRequest, Appended, AuditQuery, EventLog, ExpectedVersion,
    LogError, Selection, StorageFault,
};
pub use migrate::{generation_schema, generation_url, Migration, MigrationSet};
pub use subscription::Subscription;

/// Opens the event log a URL names: `sqlite://<file>` (embedded), `postgres://...`, or with
/// the `kurrentdb` feature `esdb://...` / `kurrentdb://...`. SQLite and PostgreSQL get group
/// commit: single appends that arrive together share one durable commit.
pub async fn open_log(
    url: &str,
    max_connections: u32,
) -> Result<std::sync::Arc<dyn EventLog>, LogError> {
    #[cfg(feature = "kurrentdb")]
    if url.starts_with("esdb") || url.starts_with("kurrentdb") {
        return Ok(std::sync::Arc::new(
            kurrentdb::KurrentEventLog::connect(url).await?,
        ));
    }
    let log: std::sync::Arc<dyn EventLog> = if url.starts_with("postgres") {
        std::sync::Arc::new(postgres::PostgresEventLog::connect(url, max_connections).await?)
    } else {
        std::sync::Arc::new(sqlite::SqliteEventLog::open(url).await?)
    };
    Ok(std::sync::Arc::new(batching::BatchingLog::new(
        log,
        GROUP_COMMIT_LIMIT,
    )))
}

/// The most single appends one group commit takes: enough to absorb a burst of device
/// reports, few enough that one commit stays short.
const GROUP_COMMIT_LIMIT: usize = 256;

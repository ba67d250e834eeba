use async_trait::async_trait;
use tokio::sync::watch;

use events::{NewEvent, Position, RecordedEvent, StreamName, TenantId};

/// What the writer believes about a stream before appending to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream holds (used for events that commute).
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(u64),
}

impl ExpectedVersion {
    pub fn admits(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(version) => version == actual,
        }
    }
}

/// Events for one stream, appended atomically or not at all.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub tenant: TenantId,
    pub stream: StreamName,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The stream's version after the append: the version of its last event.
    pub stream_version: u64,
    /// The global position of the last event appended, the one readers wait for.
    pub position: Position,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Someone else appended first: load the stream again and decide anew.
    #[error("stream {stream} is at version {actual}, expected {expected:?}")]
    Conflict {
        stream: StreamName,
        expected: ExpectedVersion,
        actual: u64,
    },
    #[error("an append needs at least one event")]
    Empty,
    #[error(transparent)]
    Log(#[from] LogError),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// The log's storage has no room left: nothing was written.
    #[error("event log storage is full: {0}")]
    Full(String),
    /// The log cannot be reached now (connection lost, server shutting down, file locked);
    /// nothing was acknowledged, and trying again later may succeed.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    #[error("event log storage failed: {0}")]
    Storage(String),
    #[error("event log backend failed: {0}")]
    Backend(String),
    #[error("event log holds a malformed row: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for LogError {
    fn from(error: sqlx::Error) -> Self {
        let message = error.to_string();
        match storage_fault(&error) {
            StorageFault::Full => Self::Full(message),
            StorageFault::Unavailable => Self::Unavailable(message),
            StorageFault::Other => Self::Storage(message),
        }
    }
}

/// What a database failure means for the request that met it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// Out of disk space (SQLite `SQLITE_FULL`, PostgreSQL `53100`).
    Full,
    /// The database cannot be reached or refuses work for now: a lost or terminated
    /// connection, a server shutting down, a busy file. Worth trying again.
    Unavailable,
    /// Anything else: a bug, a constraint, corrupt data.
    Other,
}

/// Classifies a database error by what the client should be told, so that no service
/// answers a full disk or a lost connection as if the request were at fault.
pub fn storage_fault(error: &sqlx::Error) -> StorageFault {
    match error {
        sqlx::Error::Database(database) => {
            let code = database.code().unwrap_or_default();
            if let Ok(sqlite) = code.parse::<i32>() {
                // SQLite result codes: the primary code is the low byte of the extended one.
                return match sqlite & 0xff {
                    13 => StorageFault::Full,
                    // BUSY, LOCKED, READONLY, IOERR, CANTOPEN
                    5 | 6 | 8 | 10 | 14 => StorageFault::Unavailable,
                    _ => StorageFault::Other,
                };
            }
            match code.as_ref() {
                "53100" => StorageFault::Full,
                // Insufficient resources, connection exceptions, operator intervention
                // (a terminated backend, a shutdown), serialization failures and deadlocks.
                code if code.starts_with("53")
                    || code.starts_with("08")
                    || code.starts_with("57P")
                    || code == "40001"
                    || code == "40P01" =>
                {
                    StorageFault::Unavailable
                }
                _ => StorageFault::Other,
            }
        }
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => StorageFault::Full,
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => StorageFault::Unavailable,
        _ => StorageFault::Other,
    }
}

/// The append-only log every change goes through.
///
/// Guarantees, checked for every backend by the conformance suite:
/// - appends to one stream are atomic and checked against the expected version;
/// - re-appending an event id already in the log appends nothing and answers as the first time;
/// - positions form one total order, and `read_all` never returns an event after one with a
///   larger position has been returned (no reader ever skips a late commit).
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends to several streams in one commit; each request succeeds or fails on its own.
    async fn append_many(&self, requests: Vec<AppendRequest>)
        -> Vec<Result<Appended, AppendError>>;

    /// Appends to several streams all together or not at all. A request without events only
    /// asserts its stream's version: a decision that rests on one stream and writes to
    /// another is appended this way, so neither stream can change under it.
    ///
    /// Backends without multi-stream transactions check the assertions first and append
    /// after, which leaves a window between the two; the SQL backends close it.
    async fn append_atomic(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Result<Vec<Appended>, AppendError> {
        for request in requests.iter().filter(|request| request.events.is_empty()) {
            let actual = self
                .stream_version(&request.tenant, &request.stream)
                .await?;
            if !request.expected.admits(actual) {
                return Err(AppendError::Conflict {
                    stream: request.stream.clone(),
                    expected: request.expected,
                    actual,
                });
            }
        }
        let writes: Vec<_> = requests
            .into_iter()
            .filter(|request| !request.events.is_empty())
            .collect();
        self.append_many(writes).await.into_iter().collect()
    }

    async fn append(&self, request: AppendRequest) -> Result<Appended, AppendError> {
        self.append_many(vec![request])
            .await
            .pop()
            .unwrap_or(Err(AppendError::Empty))
    }

    /// A stream's events with a version above `after_version`, oldest first.
    async fn read_stream(
        &self,
        tenant: &TenantId,
        stream: &StreamName,
        after_version: u64,
    ) -> Result<Vec<RecordedEvent>, LogError>;

    /// A stream's current version: the version of its last event, 0 when it has none.
    async fn stream_version(
        &self,
        tenant: &TenantId,
        stream: &StreamName,
    ) -> Result<u64, LogError> {
        Ok(self
            .read_stream(tenant, stream, 0)
            .await?
            .last()
            .map_or(0, |event| event.stream_version))
    }

    /// Up to `limit` events after `after`, in log order, across all tenants.
    async fn read_all(&self, after: Position, limit: usize)
        -> Result<Vec<RecordedEvent>, LogError>;

    /// Up to `limit` of one tenant's events after `after`, in log order (the audit feed).
    async fn read_tenant(
        &self,
        tenant: &TenantId,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let mut found = Vec::new();
        let mut cursor = after;
        while found.len() < limit {
            let page = self.read_all(cursor, 1000).await?;
            let Some(last) = page.last() else { break };
            cursor = last.position;
            found.extend(page.into_iter().filter(|event| &event.tenant == tenant));
        }
        found.truncate(limit);
        Ok(found)
    }

    /// Up to `limit` of one tenant's events after `after` that `selection` picks, in log
    /// order: a slice of a long history read without bringing the rest of it into memory.
    /// Backends with SQL filter in the database; the default filters page by page.
    async fn read_tenant_selected(
        &self,
        tenant: &TenantId,
        after: Position,
        limit: usize,
        selection: &Selection,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let mut found = Vec::new();
        let mut cursor = after;
        while found.len() < limit {
            let page = self.read_tenant(tenant, cursor, 1000).await?;
            let Some(last) = page.last() else { break };
            cursor = last.position;
            found.extend(page.into_iter().filter(|event| selection.picks(event)));
        }
        found.truncate(limit);
        Ok(found)
    }

    /// Up to `limit` of one tenant's events that `query` picks, in log order: the oldest
    /// after `query.after`, or with `query.before` the newest before it (the audit feed's
    /// filters and its "newest first" view). Backends with SQL filter and order in the
    /// database; the default reads forward page by page, keeping only the last `limit`
    /// matches when it looks for the newest.
    async fn read_tenant_filtered(
        &self,
        tenant: &TenantId,
        query: &AuditQuery,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let before = query.before.unwrap_or(Position(u64::MAX));
        let mut found = std::collections::VecDeque::new();
        let mut cursor = query.after;
        loop {
            let page = self.read_tenant(tenant, cursor, 1000).await?;
            let Some(last) = page.last() else { break };
            cursor = last.position;
            for event in page {
                if event.position >= before {
                    return Ok(found.into());
                }
                if !query.picks(&event) {
                    continue;
                }
                found.push_back(event);
                if found.len() > limit {
                    found.pop_front();
                } else if found.len() == limit && query.before.is_none() {
                    return Ok(found.into());
                }
            }
        }
        Ok(found.into())
    }

    /// Tells every instance sharing the log that `reader` (a projection serving reads) has
    /// applied it up to `position`: what commands wait for before they answer. A hint, which
    /// may be lost; backends that cannot share it keep it to themselves (the default: not at
    /// all).
    async fn publish_applied(&self, reader: &str, position: Position) -> Result<(), LogError> {
        let _ = (reader, position);
        Ok(())
    }

    /// The lowest position the readers have published, `None` when none has (or the backend
    /// cannot share them).
    async fn applied_by_readers(&self) -> Result<Option<Position>, LogError> {
        Ok(None)
    }

    /// Changes when a reader publishes, where the backend can tell (in this process, or
    /// through notifications): a hint to look again. A receiver whose sender is gone means
    /// the backend cannot tell, and callers poll.
    fn applied_changes(&self) -> watch::Receiver<u64> {
        watch::channel(0).1
    }

    /// Whether [`applied_changes`](Self::applied_changes) changes with every publication of
    /// every process (PostgreSQL's notifications, and after any gap in them), so that what
    /// was read of the published positions stays true until it changes. Where it does not
    /// (SQLite: only this process's publications), callers read again while they wait.
    fn announces_every_publication(&self) -> bool {
        false
    }

    /// The position of the last committed event.
    async fn head(&self) -> Result<Position, LogError>;

    /// Changes whenever this process learns of new events: a hint to read again, never proof.
    fn head_changes(&self) -> watch::Receiver<Position>;
}

/// Which events [`EventLog::read_tenant_selected`] returns: those whose payload has `value`
/// at the top-level field `field`, and every event of `streams` and of `event_types`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub field: String,
    pub value: String,
    pub streams: Vec<String>,
    pub event_types: Vec<String>,
}

impl Selection {
    pub fn picks(&self, event: &RecordedEvent) -> bool {
        event
            .payload
            .get(&self.field)
            .and_then(|value| value.as_str())
            == Some(&self.value)
            || self
                .streams
                .iter()
                .any(|stream| stream == event.stream.as_str())
            || self.event_types.contains(&event.event_type)
    }
}

/// Which of a tenant's events [`EventLog::read_tenant_filtered`] returns: the audit feed's
/// cursors and filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only events after this position.
    pub after: Position,
    /// Only events before this position, and the newest of them rather than the oldest.
    pub before: Option<Position>,
    /// Only events of streams whose name starts with this; empty for every stream.
    pub stream_prefix: String,
    /// Only events of this type; empty for every type.
    pub event_type: String,
}

impl AuditQuery {
    /// Whether the filters (not the cursors) pick `event`.
    pub fn picks(&self, event: &RecordedEvent) -> bool {
        event.stream.as_str().starts_with(&self.stream_prefix)
            && (self.event_type.is_empty() || event.event_type == self.event_type)
    }
}

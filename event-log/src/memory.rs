//! An event log in memory, for unit tests of the domain only. Nothing survives the process.

use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::log::{AppendError, AppendRequest, Appended, EventLog, LogError};
use crate::plan::{self, LogFacts};
use crate::postgres::advance;
use events::{Position, RecordedEvent, StreamName, TenantId};

pub struct MemoryEventLog {
    events: Mutex<Vec<RecordedEvent>>,
    head: watch::Sender<Position>,
    readers: Mutex<std::collections::HashMap<String, Position>>,
    published: watch::Sender<u64>,
}

impl Default for MemoryEventLog {
    fn default() -> Self {
        Self {
            events: Mutex::new(Vec::new()),
            head: watch::channel(Position::START).0,
            readers: Mutex::new(std::collections::HashMap::new()),
            published: watch::channel(0).0,
        }
    }
}

impl MemoryEventLog {
    fn locked(&self) -> std::sync::MutexGuard<'_, Vec<RecordedEvent>> {
        // A panic while holding the lock cannot leave the vector half-written: pushes are the
        // only mutation.
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn commit(
        &self,
        requests: Vec<AppendRequest>,
        batch: plan::Batch,
    ) -> Vec<Result<Appended, AppendError>> {
        let mut events = self.locked();
        let mut facts = LogFacts {
            head: Position(events.len() as u64),
            ..LogFacts::default()
        };
        for event in events.iter() {
            facts
                .known_events
                .insert(event.event_id, (event.position, event.stream_version));
            facts.stream_versions.insert(
                (event.tenant.clone(), event.stream.clone()),
                event.stream_version,
            );
        }
        let planned = plan::plan(requests, facts, batch);
        if let Some(last) = planned.rows.last() {
            advance(&self.head, last.position);
        }
        events.extend(planned.rows);
        planned.results
    }
}

#[async_trait]
impl EventLog for MemoryEventLog {
    async fn append_many(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Vec<Result<Appended, AppendError>> {
        self.commit(requests, plan::Batch::Independent)
    }

    async fn append_atomic(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Result<Vec<Appended>, AppendError> {
        plan::all_or_first_error(self.commit(requests, plan::Batch::Atomic))
    }

    async fn read_stream(
        &self,
        tenant: &TenantId,
        stream: &StreamName,
        after_version: u64,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        Ok(self
            .locked()
            .iter()
            .filter(|e| {
                &e.tenant == tenant && &e.stream == stream && e.stream_version > after_version
            })
            .cloned()
            .collect())
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        Ok(self
            .locked()
            .iter()
            .skip(after.0 as usize)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn head(&self) -> Result<Position, LogError> {
        Ok(Position(self.locked().len() as u64))
    }

    async fn publish_applied(&self, reader: &str, position: Position) -> Result<(), LogError> {
        self.readers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(reader.to_owned(), position);
        self.published
            .send_modify(|count| *count = count.wrapping_add(1));
        Ok(())
    }

    async fn applied_by_readers(&self) -> Result<Option<Position>, LogError> {
        Ok(self
            .readers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .min()
            .copied())
    }

    fn applied_changes(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    fn head_changes(&self) -> watch::Receiver<Position> {
        self.head.subscribe()
    }
}

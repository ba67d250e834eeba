//! Group commit: appends that arrive while a commit is in flight share the next one.
//!
//! Every append costs one durable commit (an fsync) however small it is, so thousands of
//! devices reporting at once would queue behind each other's commits. One writer task takes
//! whatever appends are waiting, commits them together through [`EventLog::append_many`]
//! (each still checked on its own), and answers each caller. A lone append goes out at once;
//! under load, batches grow by themselves.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, watch};

use crate::log::{AppendError, AppendRequest, Appended, AuditQuery, EventLog, LogError, Selection};
use events::{Position, RecordedEvent, StreamName, TenantId};

struct Waiting {
    request: AppendRequest,
    answer: oneshot::Sender<Result<Appended, AppendError>>,
}

pub struct BatchingLog {
    inner: Arc<dyn EventLog>,
    queue: mpsc::Sender<Waiting>,
}

impl BatchingLog {
    /// Wraps `inner`; at most `max_batch` appends share a commit.
    pub fn new(inner: Arc<dyn EventLog>, max_batch: usize) -> Self {
        let (queue, waiting) = mpsc::channel(max_batch.max(1) * 4);
        tokio::spawn(write(inner.clone(), waiting, max_batch.max(1)));
        Self { inner, queue }
    }
}

async fn write(log: Arc<dyn EventLog>, mut waiting: mpsc::Receiver<Waiting>, max_batch: usize) {
    while let Some(first) = waiting.recv().await {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match waiting.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (requests, answers): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|waiting| (waiting.request, waiting.answer))
            .unzip();
        let results = log.append_many(requests).await;
        for (answer, result) in answers.into_iter().zip(results) {
            // A caller that gave up no longer needs its answer; its events are appended anyway.
            let _ = answer.send(result);
        }
    }
}

fn writer_gone() -> AppendError {
    AppendError::Log(LogError::Backend("the event log writer stopped".into()))
}

#[async_trait]
impl EventLog for BatchingLog {
    async fn append_many(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Vec<Result<Appended, AppendError>> {
        self.inner.append_many(requests).await
    }

    async fn append_atomic(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Result<Vec<Appended>, AppendError> {
        self.inner.append_atomic(requests).await
    }

    async fn append(&self, request: AppendRequest) -> Result<Appended, AppendError> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Waiting { request, answer })
            .await
            .map_err(|_| writer_gone())?;
        answered.await.map_err(|_| writer_gone())?
    }

    async fn read_stream(
        &self,
        tenant: &TenantId,
        stream: &StreamName,
        after_version: u64,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.inner.read_stream(tenant, stream, after_version).await
    }

    async fn stream_version(
        &self,
        tenant: &TenantId,
        stream: &StreamName,
    ) -> Result<u64, LogError> {
        self.inner.stream_version(tenant, stream).await
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.inner.read_all(after, limit).await
    }

    async fn read_tenant(
        &self,
        tenant: &TenantId,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.inner.read_tenant(tenant, after, limit).await
    }

    async fn read_tenant_selected(
        &self,
        tenant: &TenantId,
        after: Position,
        limit: usize,
        selection: &Selection,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.inner
            .read_tenant_selected(tenant, after, limit, selection)
            .await
    }

    async fn read_tenant_filtered(
        &self,
        tenant: &TenantId,
        query: &AuditQuery,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.inner.read_tenant_filtered(tenant, query, limit).await
    }

    async fn publish_applied(&self, reader: &str, position: Position) -> Result<(), LogError> {
        self.inner.publish_applied(reader, position).await
    }

    async fn applied_by_readers(&self) -> Result<Option<Position>, LogError> {
        self.inner.applied_by_readers().await
    }

    fn applied_changes(&self) -> watch::Receiver<u64> {
        self.inner.applied_changes()
    }

    fn announces_every_publication(&self) -> bool {
        self.inner.announces_every_publication()
    }

    async fn head(&self) -> Result<Position, LogError> {
        self.inner.head().await
    }

    fn head_changes(&self) -> watch::Receiver<Position> {
        self.inner.head_changes()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::log::ExpectedVersion;
    use crate::memory::MemoryEventLog;
    use events::{EventMetadata, NewEvent};

    /// A log whose commits take a while and that remembers how many appends each carried.
    struct SlowCommits {
        inner: MemoryEventLog,
        batches: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl EventLog for SlowCommits {
        async fn append_many(
            &self,
            requests: Vec<AppendRequest>,
        ) -> Vec<Result<Appended, AppendError>> {
            self.batches.lock().unwrap().push(requests.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.inner.append_many(requests).await
        }
        async fn read_stream(
            &self,
            t: &TenantId,
            s: &StreamName,
            v: u64,
        ) -> Result<Vec<RecordedEvent>, LogError> {
            self.inner.read_stream(t, s, v).await
        }
        async fn read_all(
            &self,
            after: Position,
            limit: usize,
        ) -> Result<Vec<RecordedEvent>, LogError> {
            self.inner.read_all(after, limit).await
        }
        async fn head(&self) -> Result<Position, LogError> {
            self.inner.head().await
        }
        fn head_changes(&self) -> watch::Receiver<Position> {
            self.inner.head_changes()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn appends_waiting_for_a_commit_share_the_next_one() {
        let slow = Arc::new(SlowCommits {
            inner: MemoryEventLog::default(),
            batches: Mutex::new(Vec::new()),
        });
        let log = Arc::new(BatchingLog::new(slow.clone(), 32));
        let appends: Vec<_> = (0..100)
            .map(|n| {
                let log = log.clone();
                tokio::spawn(async move {
                    log.append(AppendRequest {
                        tenant: TenantId::default(),
                        stream: StreamName::new(format!("device-{n}")),
                        expected: ExpectedVersion::NoStream,
                        events: vec![NewEvent {
                            event_id: uuid::Uuid::new_v4(),
                            event_type: "Reported".into(),
                            schema_version: 1,
                            payload: serde_json::json!({ "n": n }),
                            metadata: EventMetadata::now(),
                        }],
                    })
                    .await
                })
            })
            .collect();
        for append in appends {
            assert_eq!(append.await.unwrap().unwrap().stream_version, 1);
        }
        let batches = slow.batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 100);
        assert!(
            batches.len() < 20,
            "100 appends took {} commits: {batches:?}",
            batches.len()
        );
        assert!(batches.iter().all(|size| *size <= 32));
        assert_eq!(log.head().await.unwrap(), Position(100));
    }
}

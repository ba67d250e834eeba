//! The event log on KurrentDB (formerly EventStoreDB), through the `kurrentdb` crate.
//!
//! Each of our streams is a KurrentDB stream named `<stream>` for the default tenant and
//! `<tenant>:<stream>` otherwise; the tenant, our stream name, the schema version and the
//! envelope's metadata travel in the event's custom metadata. Stream versions are revisions
//! plus one. A position is the event's prepare position in `$all`, which KurrentDB orders
//! totally; its one writer makes "all events after P" safe from late commits.
//!
//! No KurrentDB server can run where this project is built and tested, so its conformance
//! tests run only when `EVENTSTORE_URL` names one.

use std::time::Duration;

use async_trait::async_trait;
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, CurrentRevision, EventData, ReadAllOptions,
    ReadStreamOptions, ResolvedEvent, StreamPosition, StreamState, SubscribeToAllOptions,
    SubscriptionEvent, SubscriptionFilter,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::log::{AppendError, AppendRequest, Appended, EventLog, ExpectedVersion, LogError};
use crate::postgres::advance;
use events::{EventMetadata, Position, RecordedEvent, StreamName, TenantId};

/// What our envelope adds to a KurrentDB event.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    tenant: String,
    stream: String,
    schema_version: u32,
    #[serde(flatten)]
    metadata: EventMetadata,
}

pub struct KurrentEventLog {
    client: Client,
    head: watch::Sender<Position>,
    follower: JoinHandle<()>,
}

fn failed(error: impl std::fmt::Display) -> LogError {
    LogError::Backend(error.to_string())
}

fn kurrent_stream(tenant: &TenantId, stream: &StreamName) -> String {
    if tenant.as_str().is_empty() {
        stream.0.clone()
    } else {
        format!("{}:{}", tenant.as_str(), stream.as_str())
    }
}

fn stream_state(expected: ExpectedVersion) -> StreamState {
    match expected {
        ExpectedVersion::Any => StreamState::Any,
        ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => StreamState::NoStream,
        ExpectedVersion::Exact(version) => StreamState::StreamRevision(version - 1),
    }
}

fn start_after(position: Position) -> StreamPosition<kurrentdb::Position> {
    if position == Position::START {
        StreamPosition::Start
    } else {
        StreamPosition::Position(kurrentdb::Position {
            commit: position.0,
            prepare: position.0,
        })
    }
}

/// Our event, or `None` for system events and events other writers put in the database.
fn recorded(resolved: &ResolvedEvent) -> Result<Option<RecordedEvent>, LogError> {
    let event = resolved.get_original_event();
    if event.event_type.starts_with('$') || event.custom_metadata.is_empty() {
        return Ok(None);
    }
    let Ok(envelope) = serde_json::from_slice::<Envelope>(&event.custom_metadata) else {
        return Ok(None);
    };
    let payload = serde_json::from_slice(&event.data)
        .map_err(|error| LogError::Corrupt(format!("payload of {}: {error}", event.id)))?;
    Ok(Some(RecordedEvent {
        position: Position(event.position.prepare),
        event_id: event.id,
        tenant: TenantId(envelope.tenant),
        stream: StreamName(envelope.stream),
        stream_version: event.revision + 1,
        event_type: event.event_type.clone(),
        schema_version: envelope.schema_version,
        metadata: envelope.metadata,
        payload,
    }))
}

impl KurrentEventLog {
    /// Connects to `esdb://host:port?tls=false` or any other KurrentDB connection string.
    pub async fn connect(url: &str) -> Result<Self, LogError> {
        let settings: ClientSettings = url.parse().map_err(failed)?;
        let client = Client::new(settings).map_err(failed)?;
        let (head, _) = watch::channel(Position::START);
        let log = Self {
            follower: tokio::spawn(follow(client.clone(), head.clone())),
            client,
            head,
        };
        let current = log.head().await?;
        advance(&log.head, current);
        Ok(log)
    }

    async fn append_one(&self, request: AppendRequest) -> Result<Appended, AppendError> {
        if request.events.is_empty() {
            return Err(AppendError::Empty);
        }
        let name = kurrent_stream(&request.tenant, &request.stream);
        let first_id = request.events[0].event_id;
        let ids: Vec<uuid::Uuid> = request.events.iter().map(|e| e.event_id).collect();
        let mut batch = Vec::with_capacity(request.events.len());
        for event in request.events {
            let envelope = Envelope {
                tenant: request.tenant.0.clone(),
                stream: request.stream.0.clone(),
                schema_version: event.schema_version,
                metadata: event.metadata,
            };
            batch.push(
                EventData::json(&event.event_type, &event.payload)
                    .and_then(|data| data.metadata_as_json(&envelope))
                    .map_err(|error| AppendError::Log(failed(error)))?
                    .id(event.event_id),
            );
        }
        let options = AppendToStreamOptions::default().stream_state(stream_state(request.expected));
        match self
            .client
            .append_to_stream(name.as_str(), &options, batch)
            .await
        {
            Ok(written) => Ok(Appended {
                stream_version: written.next_expected_version + 1,
                position: Position(written.position.prepare),
            }),
            Err(kurrentdb::Error::WrongExpectedVersion { current, .. }) => {
                // A retried append whose first try landed: answer as the first time.
                if let Some(original) = self
                    .find(&request.tenant, &request.stream, first_id, &ids)
                    .await?
                {
                    return Ok(original);
                }
                let actual = match current {
                    CurrentRevision::Current(revision) => revision + 1,
                    CurrentRevision::NoStream => 0,
                };
                Err(AppendError::Conflict {
                    stream: request.stream,
                    expected: request.expected,
                    actual,
                })
            }
            Err(error) => Err(AppendError::Log(failed(error))),
        }
    }

    /// Where an earlier append of these event ids landed, if it did.
    async fn find(
        &self,
        tenant: &TenantId,
        stream: &StreamName,
        first_id: uuid::Uuid,
        ids: &[uuid::Uuid],
    ) -> Result<Option<Appended>, LogError> {
        let stored = self.read_stream(tenant, stream, 0).await?;
        if !stored.iter().any(|event| event.event_id == first_id) {
            return Ok(None);
        }
        Ok(stored
            .iter()
            .filter(|event| ids.contains(&event.event_id))
            .map(|event| Appended {
                stream_version: event.stream_version,
                position: event.position,
            })
            .max_by_key(|appended| appended.position))
    }
}

impl Drop for KurrentEventLog {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// Follows the end of `$all` to wake local subscribers; the subscription reconnects itself.
async fn follow(client: Client, head: watch::Sender<Position>) {
    let options = SubscribeToAllOptions::default()
        .position(StreamPosition::End)
        .filter(SubscriptionFilter::on_event_type().exclude_system_events());
    loop {
        let mut subscription = client.subscribe_to_all(&options).await;
        loop {
            match subscription.next_subscription_event().await {
                Ok(SubscriptionEvent::EventAppeared(event)) => {
                    advance(&head, Position(event.get_original_event().position.prepare));
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "KurrentDB subscription lost; subscribers fall back to polling");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[async_trait]
impl EventLog for KurrentEventLog {
    /// KurrentDB has no multi-stream transaction: each request is its own append.
    async fn append_many(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Vec<Result<Appended, AppendError>> {
        let mut results = Vec::with_capacity(requests.len());
        for request in requests {
            let result = self.append_one(request).await;
            if let Ok(appended) = &result {
                advance(&self.head, appended.position);
            }
            results.push(result);
        }
        results
    }

    async fn read_stream(
        &self,
        tenant: &TenantId,
        stream: &StreamName,
        after_version: u64,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        // Revision r is version r + 1: versions above `after_version` start at revision
        // `after_version`.
        let options = ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Position(after_version));
        let mut reading = match self
            .client
            .read_stream(kurrent_stream(tenant, stream).as_str(), &options)
            .await
        {
            Ok(reading) => reading,
            Err(kurrentdb::Error::ResourceNotFound) => return Ok(Vec::new()),
            Err(error) => return Err(failed(error)),
        };
        let mut events = Vec::new();
        loop {
            match reading.next().await {
                Ok(Some(resolved)) => events.extend(recorded(&resolved)?),
                Ok(None) => return Ok(events),
                Err(kurrentdb::Error::ResourceNotFound) => return Ok(Vec::new()),
                Err(error) => return Err(failed(error)),
            }
        }
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let mut events = Vec::new();
        let mut from = start_after(after);
        // System and foreign events are skipped, so a page may take several reads to fill.
        loop {
            let options = ReadAllOptions::default()
                .forwards()
                .position(from)
                .max_count(limit + 1);
            let mut reading = self.client.read_all(&options).await.map_err(failed)?;
            let mut read = 0;
            while let Some(resolved) = reading.next().await.map_err(failed)? {
                read += 1;
                let position = resolved.get_original_event().position;
                from = StreamPosition::Position(position);
                if position.prepare <= after.0 {
                    continue;
                }
                if let Some(event) = recorded(&resolved)? {
                    if events
                        .last()
                        .is_some_and(|last: &RecordedEvent| last.position >= event.position)
                    {
                        continue;
                    }
                    events.push(event);
                    if events.len() == limit {
                        return Ok(events);
                    }
                }
            }
            if read <= 1 {
                return Ok(events);
            }
        }
    }

    async fn head(&self) -> Result<Position, LogError> {
        let options = ReadAllOptions::default()
            .backwards()
            .position(StreamPosition::End)
            .filter(SubscriptionFilter::on_event_type().exclude_system_events())
            .max_count(100);
        let mut reading = self.client.read_all(&options).await.map_err(failed)?;
        while let Some(resolved) = reading.next().await.map_err(failed)? {
            if let Some(event) = recorded(&resolved)? {
                return Ok(event.position);
            }
        }
        Ok(Position::START)
    }

    fn head_changes(&self) -> watch::Receiver<Position> {
        self.head.subscribe()
    }
}

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::schema::{DomainEvent, SchemaError};

/// The organisation that owns a stream. Taken from a verified token, never from a request body.
/// Single-tenant installations use the empty tenant, as Mender's open-source server does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct TenantId(pub String);

impl TenantId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name of one stream, unique within a tenant: `deployment-<uuid>`, `artifact-<uuid>`, ...
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamName(pub String);

impl StreamName {
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The aggregate kind: the part before the first `-` (`deployment` for `deployment-<id>`).
    pub fn category(&self) -> &str {
        self.0
            .split_once('-')
            .map_or(&self.0, |(category, _)| category)
    }
}

impl std::fmt::Display for StreamName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A place in the one total order of the log. Positions start at 1; `Position(0)` is the
/// beginning, before any event.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Position(pub u64);

impl Position {
    pub const START: Position = Position(0);
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Who caused an event and why, filled from the request that issued the command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMetadata {
    pub occurred_at: DateTime<Utc>,
    /// The request id of the command that led here; shared by every event it caused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The event or command id this event is a direct consequence of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// `user:<id>`, `device:<id>` or `system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

impl EventMetadata {
    pub fn now() -> Self {
        Self::at(Utc::now())
    }

    pub fn at(occurred_at: DateTime<Utc>) -> Self {
        Self {
            // Stored with microsecond precision by every backend; truncate so a read returns
            // exactly what was written.
            occurred_at: DateTime::from_timestamp_micros(occurred_at.timestamp_micros())
                .unwrap_or(occurred_at),
            correlation_id: None,
            causation_id: None,
            actor: None,
        }
    }

    pub fn with_correlation(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    pub fn with_causation(mut self, id: impl Into<String>) -> Self {
        self.causation_id = Some(id.into());
        self
    }

    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }
}

/// An event on its way into the log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Unique across the log; re-appending an event with a known id appends nothing.
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: serde_json::Value,
    pub metadata: EventMetadata,
}

impl NewEvent {
    /// Wraps a domain event at its current schema version.
    pub fn new(event_id: Uuid, event: &DomainEvent, metadata: EventMetadata) -> Self {
        Self {
            event_id,
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version(),
            payload: event.payload(),
            metadata,
        }
    }
}

/// An event as stored: the envelope and its payload as written, possibly at an old version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub position: Position,
    pub event_id: Uuid,
    pub tenant: TenantId,
    pub stream: StreamName,
    /// 1 for a stream's first event, then one more for each.
    pub stream_version: u64,
    pub event_type: String,
    pub schema_version: u32,
    #[serde(flatten)]
    pub metadata: EventMetadata,
    pub payload: serde_json::Value,
}

impl RecordedEvent {
    /// The typed event, upcast from whichever schema version it was stored at.
    pub fn decode(&self) -> Result<DomainEvent, SchemaError> {
        DomainEvent::decode(&self.event_type, self.schema_version, self.payload.clone())
    }
}

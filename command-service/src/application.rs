//! The application layer: load a stream, fold it, decide, append with the version it was
//! decided at, and decide again when someone else appended first.

use events::{
    AppendError, AppendRequest, DomainEvent, EventLog, EventMetadata, ExpectedVersion, NewEvent,
    StreamName, TenantId,
};
use uuid::Uuid;

use crate::error::ApiError;

/// How often a command is decided again after losing a race before giving up.
const ATTEMPTS: usize = 8;

/// Who asked, for the events' metadata.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    pub actor: String,
    pub request_id: String,
}

impl Caller {
    fn metadata(&self) -> EventMetadata {
        EventMetadata::now()
            .with_actor(&self.actor)
            .with_correlation(&self.request_id)
    }
}

/// Runs `decide` over the folded stream and appends its events, retrying on conflicts.
/// Returns the log position of the last event appended, or `None` when the decision was to
/// change nothing.
pub async fn execute<S, E>(
    log: &dyn EventLog,
    caller: &Caller,
    stream: &StreamName,
    fold: impl Fn(S, &DomainEvent) -> S,
    decide: impl Fn(&S) -> Result<Vec<DomainEvent>, E>,
) -> Result<Option<events::Position>, ApiError>
where
    S: Default,
    ApiError: From<E>,
{
    for _ in 0..ATTEMPTS {
        let recorded = log.read_stream(&caller.tenant, stream, 0).await?;
        let version = recorded.last().map_or(0, |event| event.stream_version);
        let mut state = S::default();
        for event in &recorded {
            state = fold(state, &event.decode().map_err(anyhow::Error::from)?);
        }
        let decided = decide(&state)?;
        if decided.is_empty() {
            return Ok(None);
        }
        let metadata = caller.metadata();
        let request = AppendRequest {
            tenant: caller.tenant.clone(),
            stream: stream.clone(),
            expected: ExpectedVersion::Exact(version),
            events: decided
                .iter()
                .map(|event| NewEvent::new(Uuid::new_v4(), event, metadata.clone()))
                .collect(),
        };
        match log.append(request).await {
            Ok(appended) => return Ok(Some(appended.position)),
            Err(AppendError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::Busy)
}

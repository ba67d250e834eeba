//! The application layer: load a stream, fold it, decide, append with the version it was
//! decided at, and decide again when someone else appended first.

use event_log::{AppendError, AppendRequest, EventLog, ExpectedVersion};
use events::{DomainEvent, EventMetadata, NewEvent, StreamName, TenantId};
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

/// Like [`execute`], for decisions that also rest on the catalog: the versions of the
/// `guards` (the streams the catalog's facts came from) are read before the catalog catches
/// up, and asserted in the same atomic append as the events. A guard stream that moved in
/// between makes the append fail and the command be decided again, so no rule that spans
/// streams can be broken by a race.
pub async fn execute_guarded<S, E>(
    log: &dyn EventLog,
    catalog: &crate::catalog::Catalog,
    caller: &Caller,
    stream: &StreamName,
    guards: &[StreamName],
    fold: impl Fn(S, &DomainEvent) -> S,
    decide: impl Fn(&S, &crate::domain::tables::TenantCatalog) -> Result<Vec<DomainEvent>, E>,
) -> Result<Option<events::Position>, ApiError>
where
    S: Default,
    ApiError: From<E>,
{
    for _ in 0..ATTEMPTS {
        // Every version is read before the catalog catches up, so the catalog holds at least
        // what the decision's streams held; anything later fails the append and is decided
        // again. The stream itself counts: the catalog's facts may come from it too.
        let recorded = log.read_stream(&caller.tenant, stream, 0).await?;
        let version = recorded.last().map_or(0, |event| event.stream_version);
        let mut assertions = Vec::with_capacity(guards.len());
        for guard in guards {
            let version = log.stream_version(&caller.tenant, guard).await?;
            assertions.push(AppendRequest {
                tenant: caller.tenant.clone(),
                stream: guard.clone(),
                expected: ExpectedVersion::Exact(version),
                events: Vec::new(),
            });
        }
        catalog.caught_up(log).await?;
        let mut state = S::default();
        for event in &recorded {
            state = fold(state, &event.decode().map_err(anyhow::Error::from)?);
        }
        let decided = catalog.with_tenant(&caller.tenant, |tables| decide(&state, tables))?;
        if decided.is_empty() {
            return Ok(None);
        }
        let metadata = caller.metadata();
        let mut requests = vec![AppendRequest {
            tenant: caller.tenant.clone(),
            stream: stream.clone(),
            expected: ExpectedVersion::Exact(version),
            events: decided
                .iter()
                .map(|event| NewEvent::new(Uuid::new_v4(), event, metadata.clone()))
                .collect(),
        }];
        requests.extend(assertions);
        match log.append_atomic(requests).await {
            Ok(appended) => return Ok(appended.first().map(|appended| appended.position)),
            Err(AppendError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::Busy)
}

//! The part of an append every backend shares: given what the log already holds, decide which
//! requests commit, at which positions and versions, and what each caller is told.

use std::collections::HashMap;

use uuid::Uuid;

use crate::log::{AppendError, AppendRequest, Appended};
use events::{Position, RecordedEvent, StreamName, TenantId};

/// What the log holds that a batch of appends depends on, read under the writer lock.
#[derive(Debug, Default)]
pub(crate) struct LogFacts {
    pub head: Position,
    /// Position and stream version of every event id of the batch that is already stored.
    pub known_events: HashMap<Uuid, (Position, u64)>,
    /// Current version of every stream the batch touches (absent = 0, no stream).
    pub stream_versions: HashMap<(TenantId, StreamName), u64>,
}

pub(crate) struct AppendPlan {
    /// Rows to insert, in position order.
    pub rows: Vec<RecordedEvent>,
    pub results: Vec<Result<Appended, AppendError>>,
}

/// Every event id in a batch, to look up which are already stored.
pub(crate) fn event_ids(requests: &[AppendRequest]) -> Vec<Uuid> {
    requests
        .iter()
        .flat_map(|request| request.events.iter().map(|event| event.event_id))
        .collect()
}

/// Every stream a batch touches, without repeats.
pub(crate) fn streams(requests: &[AppendRequest]) -> Vec<(TenantId, StreamName)> {
    let mut streams: Vec<_> = requests
        .iter()
        .map(|request| (request.tenant.clone(), request.stream.clone()))
        .collect();
    streams.sort();
    streams.dedup();
    streams
}

/// How the requests of one batch relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Batch {
    /// Each request commits or fails on its own.
    Independent,
    /// All commit or none does; a request without events only asserts its stream's version.
    Atomic,
}

pub(crate) fn plan(requests: Vec<AppendRequest>, mut facts: LogFacts, batch: Batch) -> AppendPlan {
    let mut rows = Vec::new();
    let mut results = Vec::with_capacity(requests.len());
    let mut head = facts.head.0;
    for request in requests {
        let Some(first) = request.events.first() else {
            let key = (request.tenant.clone(), request.stream.clone());
            let actual = facts.stream_versions.get(&key).copied().unwrap_or(0);
            results.push(match batch {
                Batch::Independent => Err(AppendError::Empty),
                Batch::Atomic if request.expected.admits(actual) => Ok(Appended {
                    stream_version: actual,
                    position: Position(head),
                }),
                Batch::Atomic => Err(AppendError::Conflict {
                    stream: request.stream,
                    expected: request.expected,
                    actual,
                }),
            });
            continue;
        };
        // An event id already stored means this append happened before (a retried request):
        // answer as the first time and append nothing.
        if facts.known_events.contains_key(&first.event_id) {
            let (position, stream_version) = request
                .events
                .iter()
                .filter_map(|event| facts.known_events.get(&event.event_id))
                .max()
                .copied()
                .unwrap_or_default();
            results.push(Ok(Appended {
                stream_version,
                position,
            }));
            continue;
        }
        let key = (request.tenant.clone(), request.stream.clone());
        let actual = facts.stream_versions.get(&key).copied().unwrap_or(0);
        if !request.expected.admits(actual) {
            results.push(Err(AppendError::Conflict {
                stream: request.stream,
                expected: request.expected,
                actual,
            }));
            continue;
        }
        let mut version = actual;
        for event in request.events {
            head += 1;
            version += 1;
            facts
                .known_events
                .insert(event.event_id, (Position(head), version));
            rows.push(RecordedEvent {
                position: Position(head),
                event_id: event.event_id,
                tenant: request.tenant.clone(),
                stream: request.stream.clone(),
                stream_version: version,
                event_type: event.event_type,
                schema_version: event.schema_version,
                metadata: event.metadata,
                payload: event.payload,
            });
        }
        facts.stream_versions.insert(key, version);
        results.push(Ok(Appended {
            stream_version: version,
            position: Position(head),
        }));
    }
    if batch == Batch::Atomic && results.iter().any(Result::is_err) {
        rows.clear();
    }
    AppendPlan { rows, results }
}

/// The answer to an atomic batch: every result, or the first failure.
pub(crate) fn all_or_first_error(
    results: Vec<Result<Appended, AppendError>>,
) -> Result<Vec<Appended>, AppendError> {
    results.into_iter().collect()
}

/// The answers for a batch: the plan's, or a storage failure for every request when the
/// commit failed (then nothing was appended, whatever the plan said).
pub(crate) fn settle(
    count: usize,
    outcome: Result<Vec<Result<Appended, AppendError>>, sqlx::Error>,
) -> Vec<Result<Appended, AppendError>> {
    match outcome {
        Ok(results) => results,
        Err(error) => {
            let error = crate::log::LogError::from(error);
            tracing::error!(%error, "event log append failed");
            (0..count)
                .map(|_| Err(AppendError::Log(error.clone())))
                .collect()
        }
    }
}

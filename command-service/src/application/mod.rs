//! The one command pipeline: every command, from the management API, the device API or a
//! background job, loads the streams it decides from, decides purely, and appends its events
//! asserting that none of what it read has changed since; a decision that lost that race is
//! made again from the start.
//!
//! A command is an async function of a [`Session`] returning a [`Decision`]; the modules
//! below hold one per thing the API can ask. What a session reads is the whole of what the
//! decision rests on: every stream it loads is asserted at its version when the events are
//! appended (all in one transaction when there is more than one), and the write side's
//! tables ([`Session::tables`]) are read only after the streams their facts come from, so no
//! rule that spans streams can be broken by a race. Loading goes through one place
//! ([`Session::load`]), where a cache of folded streams can sit without any caller knowing.

pub mod admission;
pub mod artifacts;
pub mod deployments;
pub mod devices;
mod folds;
pub mod inventory;

use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use event_log::{AppendError, AppendRequest, EventLog, ExpectedVersion};
use events::{DomainEvent, EventMetadata, NewEvent, Position, StreamName, TenantId};
use uuid::Uuid;

use crate::catalog::Catalog;
use crate::domain::tables::TenantCatalog;
use crate::domain::Folded;
use crate::error::ApiError;
use folds::Folds;

/// How often a command is decided again after losing a race before giving up.
const ATTEMPTS: usize = 8;

/// Folded streams kept between commands (device streams, one per device that reported
/// lately): a few hundred bytes each for a typical device.
const KEPT_FOLDS: usize = 100_000;

/// Who asked, for the events' metadata.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    pub actor: String,
    pub request_id: String,
    /// The time a command's decision names (a deployment's `created`), which its events are
    /// then recorded at, so that a read of the past at that time finds them; otherwise they
    /// are recorded at the time of the append.
    pub at: Option<DateTime<Utc>>,
}

impl Caller {
    fn metadata(&self) -> EventMetadata {
        self.at
            .map_or_else(EventMetadata::now, EventMetadata::at)
            .with_actor(&self.actor)
            .with_correlation(&self.request_id)
    }
}

/// What a command decided: events for some streams, and what to tell the caller.
#[derive(Debug)]
pub struct Decision<T> {
    pub answer: T,
    pub appends: Vec<(StreamName, Vec<DomainEvent>)>,
}

impl<T> Decision<T> {
    /// Nothing to record; only an answer.
    pub fn answer(answer: T) -> Self {
        Self {
            answer,
            appends: Vec::new(),
        }
    }

    /// `events` for `stream` (none is fine: then nothing is recorded).
    pub fn append(stream: StreamName, events: Vec<DomainEvent>, answer: T) -> Self {
        Self {
            answer,
            appends: vec![(stream, events)],
        }
    }
}

/// What a command came to: its answer, and the log position of its last event when it
/// recorded any.
#[derive(Debug)]
pub struct Outcome<T> {
    pub answer: T,
    pub position: Option<Position>,
}

/// Runs commands against the log and the write side's tables.
#[derive(Clone)]
pub struct Pipeline {
    log: Arc<dyn EventLog>,
    catalog: Arc<Catalog>,
    folds: Arc<Folds>,
}

impl Pipeline {
    pub fn new(log: Arc<dyn EventLog>, catalog: Arc<Catalog>) -> Self {
        Self {
            log,
            catalog,
            folds: Arc::new(Folds::new(KEPT_FOLDS)),
        }
    }

    /// A stream's state as it is now, for a check outside any decision (an upload's
    /// storage limit, enforced again by the decision that records it).
    pub async fn state<S: Default>(
        &self,
        tenant: &TenantId,
        stream: &StreamName,
        evolve: impl Fn(S, &DomainEvent) -> S,
    ) -> Result<S, ApiError> {
        let session = Session {
            pipeline: self.clone(),
            tenant: tenant.clone(),
            read: Arc::new(Mutex::new(Vec::new())),
        };
        session.load(stream, evolve).await
    }

    /// Waits until the write side's tables show `position`: a decision the next request
    /// is checked against from them (a device's token) holds from the answer on.
    pub async fn tables_reached(&self, position: Position) -> Result<(), ApiError> {
        Ok(self.catalog.reached(position).await?)
    }

    /// Decides `command` and records its events, deciding again as long as another writer
    /// changed what it read in between (at most a few times: then 503).
    pub async fn run<T, F, Fut>(&self, caller: &Caller, command: F) -> Result<Outcome<T>, ApiError>
    where
        F: Fn(Session) -> Fut,
        Fut: Future<Output = Result<Decision<T>, ApiError>>,
    {
        for _ in 0..ATTEMPTS {
            let session = Session {
                pipeline: self.clone(),
                tenant: caller.tenant.clone(),
                read: Arc::new(Mutex::new(Vec::new())),
            };
            let decision = command(session.clone()).await?;
            let Decision { answer, appends } = decision;
            if appends.iter().all(|(_, events)| events.is_empty()) {
                return Ok(Outcome {
                    answer,
                    position: None,
                });
            }
            match self.record(caller, &session, appends).await {
                Ok(position) => {
                    return Ok(Outcome {
                        answer,
                        position: Some(position),
                    })
                }
                Err(AppendError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(ApiError::Busy)
    }

    /// Appends the decision's events, each stream at the version the decision read it at,
    /// with every other stream it read asserted unchanged.
    async fn record(
        &self,
        caller: &Caller,
        session: &Session,
        appends: Vec<(StreamName, Vec<DomainEvent>)>,
    ) -> Result<Position, AppendError> {
        let read = session.versions();
        let version_of = |stream: &StreamName| {
            read.iter()
                .find(|(known, _)| known == stream)
                .map(|(_, version)| *version)
        };
        let metadata = caller.metadata();
        let mut requests: Vec<AppendRequest> = appends
            .into_iter()
            .filter(|(_, events)| !events.is_empty())
            .map(|(stream, events)| AppendRequest {
                tenant: caller.tenant.clone(),
                // A stream the decision did not read takes events that commute with any.
                expected: version_of(&stream).map_or(ExpectedVersion::Any, ExpectedVersion::Exact),
                events: events
                    .iter()
                    .map(|event| NewEvent::new(Uuid::new_v4(), event, metadata.clone()))
                    .collect(),
                stream,
            })
            .collect();
        for (stream, version) in &read {
            if !requests.iter().any(|request| &request.stream == stream) {
                requests.push(AppendRequest {
                    tenant: caller.tenant.clone(),
                    stream: stream.clone(),
                    expected: ExpectedVersion::Exact(*version),
                    events: Vec::new(),
                });
            }
        }
        if let [single] = requests.as_slice() {
            // One stream, nothing else asserted: the common case (a status report) shares a
            // commit with whatever else is being appended at the moment.
            if !single.events.is_empty() {
                let single = requests.pop().expect("one request");
                return Ok(self.log.append(single).await?.position);
            }
        }
        let appended = self.log.append_atomic(requests).await?;
        Ok(appended
            .iter()
            .map(|appended| appended.position)
            .max()
            .unwrap_or_default())
    }
}

/// Runs a command decided on one stream alone: `decide` sees the session (for the tables)
/// and the stream's state, and returns the events for that stream and the answer.
pub(crate) async fn on_stream<S: Default, T>(
    pipeline: &Pipeline,
    caller: &Caller,
    stream: StreamName,
    evolve: fn(S, &DomainEvent) -> S,
    decide: impl Fn(&Session, &S) -> Result<(Vec<DomainEvent>, T), ApiError>,
) -> Result<Outcome<T>, ApiError> {
    pipeline
        .run(caller, |session| {
            let (stream, decide) = (stream.clone(), &decide);
            async move {
                let state = session.load(&stream, evolve).await?;
                let (events, answer) = decide(&session, &state)?;
                Ok(Decision::append(stream, events, answer))
            }
        })
        .await
}

/// One attempt at a command: the streams it has read, at which versions.
#[derive(Clone)]
pub struct Session {
    pipeline: Pipeline,
    tenant: TenantId,
    read: Arc<Mutex<Vec<(StreamName, u64)>>>,
}

impl Session {
    fn versions(&self) -> Vec<(StreamName, u64)> {
        self.read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn remember(&self, stream: &StreamName, version: u64) {
        let mut read = self
            .read
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !read.iter().any(|(known, _)| known == stream) {
            read.push((stream.clone(), version));
        }
    }

    /// The caller's tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// A stream folded into its state; the decision will hold only if the stream is still
    /// at this version when the events are appended.
    pub async fn load<S: Default>(
        &self,
        stream: &StreamName,
        evolve: impl Fn(S, &DomainEvent) -> S,
    ) -> Result<S, ApiError> {
        let recorded = self
            .pipeline
            .log
            .read_stream(&self.tenant, stream, 0)
            .await?;
        let version = recorded.last().map_or(0, |event| event.stream_version);
        let mut state = S::default();
        for event in &recorded {
            state = evolve(state, &event.decode().map_err(anyhow::Error::from)?);
        }
        self.remember(stream, version);
        Ok(state)
    }

    /// Like [`Session::load`] for a state with its own fold: from the fold kept at the end of
    /// an earlier command, carried forward by the events after it (none, usually), so the
    /// cost does not grow with the stream's history.
    pub async fn load_folded<S: Folded>(&self, stream: &StreamName) -> Result<S, ApiError> {
        let folds = &self.pipeline.folds;
        let (after, mut state) = folds
            .get::<S>(&self.tenant, stream)
            .unwrap_or((0, S::default()));
        let recorded = self
            .pipeline
            .log
            .read_stream(&self.tenant, stream, after)
            .await?;
        let version = recorded.last().map_or(after, |event| event.stream_version);
        for event in &recorded {
            state = state.evolve(&event.decode().map_err(anyhow::Error::from)?);
        }
        if version > after {
            folds.keep(&self.tenant, stream, version, state.clone());
        }
        self.remember(stream, version);
        Ok(state)
    }

    /// Reads the write side's tables once they reflect everything committed so far, with
    /// `sources` (the streams the facts it uses come from) read before and asserted at
    /// append: a source that moves in between makes the command decide again.
    pub async fn tables<T>(
        &self,
        sources: &[StreamName],
        read: impl FnOnce(&TenantCatalog) -> T,
    ) -> Result<T, ApiError> {
        let log = &self.pipeline.log;
        for source in sources {
            let version = log.stream_version(&self.tenant, source).await?;
            self.remember(source, version);
        }
        self.pipeline.catalog.caught_up(&**log).await?;
        Ok(self.pipeline.catalog.with_tenant(&self.tenant, read))
    }

    /// Reads the write side's tables as they are, without waiting for them to reach the
    /// log's head: for the device API, where a fact a moment old costs nothing (a device that
    /// asks a moment before a new deployment is visible asks again later).
    pub fn tables_now<T>(&self, read: impl FnOnce(&TenantCatalog) -> T) -> T {
        self.pipeline.catalog.with_tenant(&self.tenant, read)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use event_log::memory::MemoryEventLog;
    use events::deployment::DeploymentAborted;

    use super::*;

    fn caller() -> Caller {
        Caller {
            tenant: TenantId::default(),
            actor: "user:test".into(),
            request_id: "test".into(),
            at: None,
        }
    }

    fn event() -> DomainEvent {
        DomainEvent::DeploymentAborted(DeploymentAborted {
            deployment_id: events::DeploymentId::new(),
            policy: None,
        })
    }

    /// Appends to `stream` behind the pipeline's back, as a racing writer would.
    async fn interfere(log: &Arc<dyn EventLog>, stream: &StreamName) {
        log.append(AppendRequest {
            tenant: TenantId::default(),
            stream: stream.clone(),
            expected: ExpectedVersion::Any,
            events: vec![NewEvent::new(
                Uuid::new_v4(),
                &event(),
                EventMetadata::now(),
            )],
        })
        .await
        .unwrap();
    }

    fn count(events: usize, _: &DomainEvent) -> usize {
        events + 1
    }

    fn pipeline() -> (Arc<dyn EventLog>, Pipeline) {
        let log: Arc<dyn EventLog> = Arc::new(MemoryEventLog::default());
        (
            log.clone(),
            Pipeline::new(log, Arc::new(Catalog::default())),
        )
    }

    #[tokio::test]
    async fn a_decision_is_made_again_when_any_stream_it_read_moved() {
        let (log, pipeline) = pipeline();
        let (written, read_only) = (StreamName::new("written"), StreamName::new("read-only"));
        let attempts = AtomicUsize::new(0);
        let outcome = pipeline
            .run(&caller(), |session| {
                let (written, read_only) = (written.clone(), read_only.clone());
                let log = log.clone();
                let attempt = attempts.fetch_add(1, Ordering::SeqCst);
                async move {
                    session.load(&written, count).await?;
                    let seen = session.load(&read_only, count).await?;
                    if attempt == 0 {
                        interfere(&log, &read_only).await;
                    }
                    Ok(Decision::append(written, vec![event()], seen))
                }
            })
            .await
            .unwrap();
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        assert_eq!(outcome.answer, 1, "the second attempt saw the racing write");
        assert_eq!(outcome.position, Some(Position(2)));
        assert_eq!(
            log.stream_version(&TenantId::default(), &written)
                .await
                .unwrap(),
            1
        );
    }

    /// A count of events, with its own fold.
    #[derive(Debug, Clone, Default, PartialEq)]
    struct Counted(usize);

    impl Folded for Counted {
        fn evolve(self, _: &DomainEvent) -> Self {
            Counted(self.0 + 1)
        }
    }

    #[tokio::test]
    async fn a_kept_fold_is_carried_forward_by_what_others_appended_since() {
        let (log, pipeline) = pipeline();
        let stream = StreamName::new("device-d1");
        let load = |pipeline: Pipeline| {
            let stream = stream.clone();
            async move {
                let session = Session {
                    pipeline,
                    tenant: TenantId::default(),
                    read: Arc::new(Mutex::new(Vec::new())),
                };
                let state: Counted = session.load_folded(&stream).await.unwrap();
                (state, session.versions())
            }
        };
        assert_eq!(load(pipeline.clone()).await.0, Counted(0));
        assert_eq!(pipeline.folds.len(), 0, "an empty stream is not kept");
        for _ in 0..3 {
            interfere(&log, &stream).await;
        }
        let (state, read) = load(pipeline.clone()).await;
        assert_eq!((state, read), (Counted(3), vec![(stream.clone(), 3)]));
        assert_eq!(
            pipeline
                .folds
                .get::<Counted>(&TenantId::default(), &stream)
                .unwrap()
                .0,
            3
        );
        // Another writer (another instance) appends: the kept fold takes its events on top.
        interfere(&log, &stream).await;
        let (state, read) = load(pipeline.clone()).await;
        assert_eq!((state, read), (Counted(4), vec![(stream.clone(), 4)]));
        // The same as folding the whole stream.
        let fresh = Pipeline::new(log.clone(), Arc::new(Catalog::default()));
        assert_eq!(load(fresh).await.0, Counted(4));
    }

    #[test]
    fn past_capacity_a_kept_fold_makes_room_and_a_later_one_is_never_replaced_by_an_earlier() {
        let folds = Folds::new(2);
        let tenant = TenantId::default();
        for (n, name) in ["a", "b", "c"].iter().enumerate() {
            folds.keep(&tenant, &StreamName::new(*name), 5, Counted(n));
        }
        assert_eq!(folds.len(), 2);
        let c = StreamName::new("c");
        folds.keep(&tenant, &c, 3, Counted(99));
        assert_eq!(folds.get::<Counted>(&tenant, &c), Some((5, Counted(2))));
    }

    #[tokio::test]
    async fn nothing_to_record_appends_nothing_and_a_lost_race_every_time_is_busy() {
        let (log, pipeline) = pipeline();
        let stream = StreamName::new("s");
        let quiet = pipeline
            .run(&caller(), |session| {
                let stream = stream.clone();
                async move {
                    session.load(&stream, count).await?;
                    Ok(Decision::append(stream, Vec::new(), "nothing"))
                }
            })
            .await
            .unwrap();
        assert_eq!((quiet.answer, quiet.position), ("nothing", None));
        assert_eq!(log.head().await.unwrap(), Position::START);

        let contested = pipeline
            .run(&caller(), |session| {
                let (stream, log) = (stream.clone(), log.clone());
                async move {
                    session.load(&stream, count).await?;
                    interfere(&log, &stream).await;
                    Ok(Decision::append(stream, vec![event()], ()))
                }
            })
            .await;
        assert!(matches!(contested, Err(ApiError::Busy)), "{contested:?}");
    }
}

//! The contract every [`EventLog`] backend must keep, as test cases any backend's tests call.
//!
//! Each case writes under a tenant of its own and looks only at that tenant's events, so the
//! cases hold on a fresh log and on a shared server that other tests write to at the same time.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use events::{EventMetadata, NewEvent, Position, RecordedEvent, StreamName, TenantId};

use crate::{AppendError, AppendRequest, EventLog, ExpectedVersion, Subscription};

/// A PostgreSQL database of its own for one test, created on the server named by
/// `TEST_DATABASE_URL` (default: the local server as `postgres`).
pub async fn fresh_postgres_url() -> String {
    use sqlx::Connection;
    let admin = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("test_{}", Uuid::new_v4().simple());
    let mut connection = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL for tests is reachable (TEST_DATABASE_URL)");
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut connection)
        .await
        .expect("create a test database");
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

fn event(kind: &str, n: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: kind.to_owned(),
        schema_version: 1,
        payload: serde_json::json!({ "n": n, "text": "ünïcødé \"quoted\"" }),
        metadata: EventMetadata::now()
            .with_correlation(format!("request-{n}"))
            .with_actor("user:tester"),
    }
}

/// One test's corner of the log: its tenant, and helpers that see only its events.
struct Scope {
    log: Arc<dyn EventLog>,
    tenant: TenantId,
}

impl Scope {
    fn new(log: Arc<dyn EventLog>) -> Self {
        Self {
            log,
            tenant: TenantId::new(format!("tenant-{}", Uuid::new_v4().simple())),
        }
    }

    fn request(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> AppendRequest {
        AppendRequest {
            tenant: self.tenant.clone(),
            stream: StreamName::new(stream),
            expected,
            events,
        }
    }

    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<crate::Appended, AppendError> {
        self.log
            .append(self.request(stream, expected, events))
            .await
    }

    async fn stream(&self, stream: &str, after_version: u64) -> Vec<RecordedEvent> {
        self.log
            .read_stream(&self.tenant, &StreamName::new(stream), after_version)
            .await
            .unwrap()
    }

    fn mine(&self, events: Vec<RecordedEvent>) -> Vec<RecordedEvent> {
        events
            .into_iter()
            .filter(|e| e.tenant == self.tenant)
            .collect()
    }

    /// This tenant's events after `after`, read in pages of `page`.
    async fn all_after(&self, after: Position, page: usize) -> Vec<RecordedEvent> {
        let mut after = after;
        let mut seen = Vec::new();
        loop {
            let batch = self.log.read_all(after, page).await.unwrap();
            assert!(batch.len() <= page, "read_all returned more than asked for");
            let Some(last) = batch.last() else {
                return seen;
            };
            after = last.position;
            seen.extend(self.mine(batch));
        }
    }
}

fn assert_strictly_increasing(events: &[RecordedEvent]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "positions out of order: {} then {}",
            pair[0].position,
            pair[1].position
        );
    }
}

pub async fn appends_and_reads_a_stream(log: Arc<dyn EventLog>) {
    let scope = Scope::new(log);
    let start = scope.log.head().await.unwrap();
    let first = scope
        .append(
            "deployment-1",
            ExpectedVersion::NoStream,
            vec![event("A", 1), event("B", 2)],
        )
        .await
        .unwrap();
    assert_eq!(first.stream_version, 2);
    let sent = event("C", 3);
    let second = scope
        .append(
            "deployment-1",
            ExpectedVersion::Exact(2),
            vec![sent.clone()],
        )
        .await
        .unwrap();
    assert_eq!(second.stream_version, 3);
    assert!(first.position < second.position);

    let all = scope.stream("deployment-1", 0).await;
    let versions: Vec<u64> = all.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, vec![1, 2, 3]);
    let types: Vec<&str> = all.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, vec!["A", "B", "C"]);

    let stored = &all[2];
    assert_eq!(stored.event_id, sent.event_id);
    assert_eq!(stored.payload, sent.payload);
    assert_eq!(stored.metadata, sent.metadata);
    assert_eq!(stored.position, second.position);
    assert_eq!(stored.tenant, scope.tenant);
    assert_eq!(stored.stream.category(), "deployment");
    assert_eq!(all[1].position, first.position);

    assert_eq!(scope.stream("deployment-1", 2).await.len(), 1);
    let version = |stream: &str| {
        let log = scope.log.clone();
        let tenant = scope.tenant.clone();
        let stream = StreamName::new(stream);
        async move { log.stream_version(&tenant, &stream).await.unwrap() }
    };
    assert_eq!(version("deployment-1").await, 3);
    assert_eq!(version("deployment-none").await, 0);
    assert!(scope.stream("deployment-none", 0).await.is_empty());
    assert!(scope.log.head().await.unwrap() >= second.position);
    assert_eq!(scope.all_after(start, 10).await, all);
}

pub async fn wrong_expected_version_is_a_conflict_and_appends_nothing(log: Arc<dyn EventLog>) {
    let scope = Scope::new(log);
    let start = scope.log.head().await.unwrap();
    scope
        .append("s-1", ExpectedVersion::NoStream, vec![event("A", 1)])
        .await
        .unwrap();
    let cases = [
        ("s-1", ExpectedVersion::NoStream, 1),
        ("s-1", ExpectedVersion::Exact(0), 1),
        ("s-1", ExpectedVersion::Exact(2), 1),
        ("s-2", ExpectedVersion::Exact(1), 0),
    ];
    for (stream, expected, actual_version) in cases {
        match scope.append(stream, expected, vec![event("B", 2)]).await {
            Err(AppendError::Conflict { actual, .. }) => assert_eq!(actual, actual_version),
            other => panic!("{stream} {expected:?}: expected a conflict, got {other:?}"),
        }
    }
    assert_eq!(
        scope.all_after(start, 10).await.len(),
        1,
        "a conflict appended something"
    );
    assert!(matches!(
        scope.append("s-1", ExpectedVersion::Any, vec![]).await,
        Err(AppendError::Empty)
    ));
    let any = scope
        .append("s-1", ExpectedVersion::Any, vec![event("C", 3)])
        .await
        .unwrap();
    assert_eq!(any.stream_version, 2);
}

pub async fn re_appending_known_events_appends_nothing(log: Arc<dyn EventLog>) {
    let scope = Scope::new(log);
    let start = scope.log.head().await.unwrap();
    let events = vec![event("A", 1), event("B", 2)];
    let first = scope
        .append("s-1", ExpectedVersion::NoStream, events.clone())
        .await
        .unwrap();
    scope
        .append("s-2", ExpectedVersion::NoStream, vec![event("C", 3)])
        .await
        .unwrap();
    // The retry carries the expected version of the first try, which is now stale.
    let again = scope
        .append("s-1", ExpectedVersion::NoStream, events)
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(scope.all_after(start, 10).await.len(), 3);
    assert_eq!(scope.stream("s-1", 0).await.len(), 2);
}

pub async fn tenants_own_separate_streams(log: Arc<dyn EventLog>) {
    let acme = Scope::new(log.clone());
    let globex = Scope::new(log);
    acme.append(
        "deployment-1",
        ExpectedVersion::NoStream,
        vec![event("A", 1)],
    )
    .await
    .unwrap();
    let other = globex
        .append(
            "deployment-1",
            ExpectedVersion::NoStream,
            vec![event("A", 2)],
        )
        .await
        .unwrap();
    assert_eq!(other.stream_version, 1);
    let seen = acme.stream("deployment-1", 0).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].payload["n"], 1);
    let nobody = Scope::new(acme.log.clone());
    assert!(nobody.stream("deployment-1", 0).await.is_empty());
}

pub async fn a_batch_commits_each_request_on_its_own(log: Arc<dyn EventLog>) {
    let scope = Scope::new(log);
    let start = scope.log.head().await.unwrap();
    scope
        .append("s-1", ExpectedVersion::NoStream, vec![event("A", 1)])
        .await
        .unwrap();
    let results = scope
        .log
        .append_many(vec![
            scope.request("s-1", ExpectedVersion::Exact(1), vec![event("B", 2)]),
            scope.request("s-2", ExpectedVersion::Exact(5), vec![event("C", 3)]),
            scope.request(
                "s-1",
                ExpectedVersion::Exact(2),
                vec![event("D", 4), event("E", 5)],
            ),
            scope.request("s-3", ExpectedVersion::NoStream, vec![]),
        ])
        .await;
    assert_eq!(results.len(), 4);
    assert_eq!(results[0].as_ref().unwrap().stream_version, 2);
    assert!(matches!(
        results[1],
        Err(AppendError::Conflict { actual: 0, .. })
    ));
    assert_eq!(results[2].as_ref().unwrap().stream_version, 4);
    assert!(matches!(results[3], Err(AppendError::Empty)));
    let stored = scope.all_after(start, 100).await;
    let types: Vec<&str> = stored.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, vec!["A", "B", "D", "E"]);
    assert_strictly_increasing(&stored);
}

pub async fn read_all_pages_in_one_total_order(log: Arc<dyn EventLog>) {
    let scope = Scope::new(log);
    let start = scope.log.head().await.unwrap();
    for n in 0..25 {
        let stream = format!("s-{}", n % 4);
        scope
            .append(&stream, ExpectedVersion::Any, vec![event("A", n)])
            .await
            .unwrap();
    }
    let seen = scope.all_after(start, 7).await;
    assert_eq!(seen.len(), 25);
    assert_strictly_increasing(&seen);
    let numbers: Vec<u64> = seen
        .iter()
        .map(|e| e.payload["n"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (0..25).collect::<Vec<_>>());
}

/// Reads a subscription until it has handed out `count` of this scope's events.
async fn collect(
    scope: &Scope,
    subscription: &mut Subscription,
    count: usize,
) -> Vec<RecordedEvent> {
    let mut seen = Vec::new();
    while seen.len() < count {
        seen.extend(scope.mine(subscription.next_batch().await.unwrap()));
    }
    seen
}

pub async fn a_subscription_resumes_from_its_checkpoint_and_goes_live(log: Arc<dyn EventLog>) {
    let scope = Scope::new(log);
    let start = scope.log.head().await.unwrap();
    for n in 1..=10 {
        scope
            .append("s-1", ExpectedVersion::Exact(n - 1), vec![event("A", n)])
            .await
            .unwrap();
    }
    let all = scope.all_after(start, 100).await;
    let mut first = Subscription::new(scope.log.clone(), start, 4);
    let head_part = collect(&scope, &mut first, 8).await;
    assert_eq!(head_part[..8], all[..8]);
    // Stop exactly after the eighth event, as a consumer that checkpointed there would.
    let checkpoint = all[7].position;
    drop(first);

    let mut resumed = Subscription::new(scope.log.clone(), checkpoint, 100)
        .with_poll_interval(Duration::from_secs(30));
    let rest = collect(&scope, &mut resumed, 2).await;
    assert_eq!(rest, all[8..]);

    let writer = Scope {
        log: scope.log.clone(),
        tenant: scope.tenant.clone(),
    };
    let live_append = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer
            .append("s-2", ExpectedVersion::NoStream, vec![event("B", 11)])
            .await
            .unwrap()
    });
    // The poll interval is far longer than the timeout: only a wake-up can deliver this.
    let live = tokio::time::timeout(Duration::from_secs(10), collect(&scope, &mut resumed, 1))
        .await
        .expect("a live subscription wakes on a new commit");
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].position, live_append.await.unwrap().position);
}

/// Eight writers race over overlapping streams while a subscriber reads alongside: every event
/// is seen exactly once, in one total order that agrees with every stream's versions.
pub async fn concurrent_writers_and_a_subscriber_agree_on_one_order(log: Arc<dyn EventLog>) {
    const WRITERS: u64 = 8;
    const APPENDS_PER_WRITER: u64 = 250;
    const STREAMS: u64 = 12;
    let total = WRITERS * APPENDS_PER_WRITER;

    let scope = Arc::new(Scope::new(log));
    let start = scope.log.head().await.unwrap();
    let subscriber = {
        let scope = scope.clone();
        tokio::spawn(async move {
            let mut subscription = Subscription::new(scope.log.clone(), start, 97)
                .with_poll_interval(Duration::from_millis(50));
            collect(&scope, &mut subscription, total as usize).await
        })
    };

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let scope = scope.clone();
        writers.push(tokio::spawn(async move {
            let mut known_versions: HashMap<u64, u64> = HashMap::new();
            let mut appended = Vec::new();
            let mut conflicts = 0u64;
            for n in 0..APPENDS_PER_WRITER {
                let stream_number = (writer * 5 + n * 7) % STREAMS;
                let stream = format!("s-{stream_number}");
                let new_event = event("Raced", writer * 1_000_000 + n);
                loop {
                    let version = known_versions.get(&stream_number).copied().unwrap_or(0);
                    let outcome = scope
                        .append(
                            &stream,
                            ExpectedVersion::Exact(version),
                            vec![new_event.clone()],
                        )
                        .await;
                    match outcome {
                        Ok(done) => {
                            known_versions.insert(stream_number, done.stream_version);
                            appended.push(new_event.event_id);
                            break;
                        }
                        Err(AppendError::Conflict { actual, .. }) => {
                            conflicts += 1;
                            known_versions.insert(stream_number, actual);
                        }
                        Err(other) => panic!("append failed: {other}"),
                    }
                }
            }
            (appended, conflicts)
        }));
    }
    let mut appended = HashSet::new();
    let mut conflicts = 0;
    for writer in writers {
        let (ids, writer_conflicts) = writer.await.unwrap();
        conflicts += writer_conflicts;
        appended.extend(ids);
    }
    assert_eq!(appended.len() as u64, total);
    assert!(
        conflicts > 0,
        "the writers never raced; the test proves nothing"
    );

    let seen = tokio::time::timeout(Duration::from_secs(60), subscriber)
        .await
        .expect("the subscriber sees every event")
        .unwrap();
    assert_eq!(seen.len() as u64, total, "events missed or seen twice");
    assert_strictly_increasing(&seen);
    assert!(scope.log.head().await.unwrap() >= seen.last().unwrap().position);
    let ids: HashSet<Uuid> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(
        ids, appended,
        "the subscriber saw other events than were appended"
    );
    let mut next_version: HashMap<&str, u64> = HashMap::new();
    for event in &seen {
        let expected = next_version.entry(event.stream.as_str()).or_insert(1);
        assert_eq!(
            event.stream_version, *expected,
            "stream order disagrees with log order"
        );
        *expected += 1;
    }
}

/// For backends with multi-stream transactions: an atomic batch commits all or nothing, and a
/// request without events asserts its stream's version.
pub async fn an_atomic_batch_commits_all_or_nothing(log: Arc<dyn EventLog>) {
    let scope = Scope::new(log);
    let start = scope.log.head().await.unwrap();
    scope
        .append("s-1", ExpectedVersion::NoStream, vec![event("A", 1)])
        .await
        .unwrap();
    scope
        .append("s-2", ExpectedVersion::NoStream, vec![event("B", 2)])
        .await
        .unwrap();

    let done = scope
        .log
        .append_atomic(vec![
            scope.request("s-1", ExpectedVersion::Exact(1), vec![event("C", 3)]),
            scope.request("s-2", ExpectedVersion::Exact(1), vec![]),
        ])
        .await
        .unwrap();
    assert_eq!(done[0].stream_version, 2);
    assert_eq!(
        done[1].stream_version, 1,
        "an assertion reports the version it saw"
    );

    // The asserted stream moved on: the write beside it does not happen.
    let stale = scope
        .log
        .append_atomic(vec![
            scope.request("s-1", ExpectedVersion::Exact(2), vec![event("D", 4)]),
            scope.request("s-2", ExpectedVersion::Exact(0), vec![]),
        ])
        .await;
    assert!(
        matches!(stale, Err(AppendError::Conflict { actual: 1, .. })),
        "{stale:?}"
    );
    // One of two writes conflicts: neither happens.
    let half = scope
        .log
        .append_atomic(vec![
            scope.request("s-1", ExpectedVersion::Exact(2), vec![event("E", 5)]),
            scope.request("s-2", ExpectedVersion::Exact(7), vec![event("F", 6)]),
        ])
        .await;
    assert!(matches!(half, Err(AppendError::Conflict { .. })));
    let types: Vec<String> = scope
        .all_after(start, 100)
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types, vec!["A", "B", "C"]);
}

/// One tenant's feed holds its events in log order and nobody else's.
pub async fn a_tenant_reads_only_its_own_events_in_order(log: Arc<dyn EventLog>) {
    let mine = Scope::new(log.clone());
    let theirs = Scope::new(log);
    let start = mine.log.head().await.unwrap();
    for n in 0..12 {
        let scope = if n % 3 == 0 { &theirs } else { &mine };
        scope
            .append(
                &format!("s-{}", n % 2),
                ExpectedVersion::Any,
                vec![event("A", n)],
            )
            .await
            .unwrap();
    }
    let mut after = start;
    let mut seen = Vec::new();
    loop {
        let page = mine.log.read_tenant(&mine.tenant, after, 3).await.unwrap();
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 3);
        after = last.position;
        seen.extend(page);
    }
    assert!(seen.iter().all(|event| event.tenant == mine.tenant));
    let numbers: Vec<u64> = seen
        .iter()
        .map(|e| e.payload["n"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![1, 2, 4, 5, 7, 8, 10, 11]);
    assert_strictly_increasing(&seen);
}

/// A selection returns, in order, exactly the tenant's events it picks: by a payload field's
/// value, by stream, or by type, paged like any read.
pub async fn a_selection_reads_only_the_events_it_picks(log: Arc<dyn EventLog>) {
    let mine = Scope::new(log.clone());
    let theirs = Scope::new(log);
    let start = mine.log.head().await.unwrap();
    let tagged = |kind: &str, n: u64, subject: &str| {
        let mut event = event(kind, n);
        event.payload["subject"] = serde_json::json!(subject);
        event
    };
    for n in 0..8 {
        let subject = if n % 2 == 0 { "wanted" } else { "other" };
        mine.append(
            "s-mixed",
            ExpectedVersion::Any,
            vec![tagged("A", n, subject)],
        )
        .await
        .unwrap();
        // Another tenant's events match too, and must not be returned.
        theirs
            .append(
                "s-mixed",
                ExpectedVersion::Any,
                vec![tagged("A", 100 + n, "wanted")],
            )
            .await
            .unwrap();
    }
    mine.append("artifacts", ExpectedVersion::Any, vec![event("B", 20)])
        .await
        .unwrap();
    mine.append("s-other", ExpectedVersion::Any, vec![event("Special", 21)])
        .await
        .unwrap();
    mine.append("s-other", ExpectedVersion::Any, vec![event("B", 22)])
        .await
        .unwrap();
    let selection = crate::Selection {
        field: "subject".into(),
        value: "wanted".into(),
        streams: vec!["artifacts".into()],
        event_types: vec!["Special".into()],
    };
    let mut after = start;
    let mut seen = Vec::new();
    loop {
        let page = mine
            .log
            .read_tenant_selected(&mine.tenant, after, 2, &selection)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 2);
        after = last.position;
        seen.extend(page);
    }
    assert!(seen.iter().all(|event| event.tenant == mine.tenant));
    let numbers: Vec<u64> = seen
        .iter()
        .map(|e| e.payload["n"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![0, 2, 4, 6, 20, 21]);
    assert_strictly_increasing(&seen);
}

/// The audit feed's query: a stream prefix and an event type pick the tenant's events, the
/// oldest after a cursor or the newest before one, always in log order.
pub async fn an_audit_query_picks_by_stream_prefix_and_type_from_either_end(
    log: Arc<dyn EventLog>,
) {
    let mine = Scope::new(log.clone());
    let theirs = Scope::new(log);
    let start = mine.log.head().await.unwrap();
    for n in 0..10 {
        let (stream, kind) = match n % 3 {
            0 => ("deployment-1", "Created"),
            1 => ("deployment-12", "Aborted"),
            _ => ("Deployment-2", "Created"),
        };
        mine.append(stream, ExpectedVersion::Any, vec![event(kind, n)])
            .await
            .unwrap();
        theirs
            .append(stream, ExpectedVersion::Any, vec![event(kind, 100 + n)])
            .await
            .unwrap();
    }
    let numbers = |events: &[RecordedEvent]| -> Vec<u64> {
        assert!(events.iter().all(|event| event.tenant == mine.tenant));
        assert_strictly_increasing(events);
        events
            .iter()
            .map(|event| event.payload["n"].as_u64().unwrap())
            .collect()
    };
    let read = |query: crate::AuditQuery, limit: usize| {
        let mine = &mine;
        async move {
            mine.log
                .read_tenant_filtered(&mine.tenant, &query, limit)
                .await
                .unwrap()
        }
    };
    let query = |prefix: &str, kind: &str| crate::AuditQuery {
        after: start,
        before: None,
        stream_prefix: prefix.into(),
        event_type: kind.into(),
    };
    // A prefix, matched with its case; a full name also picks the streams it begins.
    assert_eq!(
        numbers(&read(query("deployment-", ""), 100).await),
        vec![0, 1, 3, 4, 6, 7, 9]
    );
    assert_eq!(
        numbers(&read(query("deployment-1", ""), 100).await),
        vec![0, 1, 3, 4, 6, 7, 9]
    );
    assert_eq!(
        numbers(&read(query("deployment-12", ""), 100).await),
        vec![1, 4, 7]
    );
    assert_eq!(numbers(&read(query("", "Created"), 3).await), vec![0, 2, 3]);
    assert_eq!(
        numbers(&read(query("deployment-", "Created"), 100).await),
        vec![0, 3, 6, 9]
    );
    assert!(read(query("deployment-%", ""), 100).await.is_empty());
    assert!(read(query("", "created"), 100).await.is_empty());
    // The newest, before the head or before a cursor.
    let newest = crate::AuditQuery {
        before: Some(Position(u64::MAX)),
        ..query("", "Created")
    };
    let last_three = read(newest.clone(), 3).await;
    assert_eq!(numbers(&last_three), vec![6, 8, 9]);
    let earlier = crate::AuditQuery {
        before: Some(last_three[0].position),
        ..newest
    };
    assert_eq!(numbers(&read(earlier.clone(), 100).await), vec![0, 2, 3, 5]);
    let between = crate::AuditQuery {
        after: read(query("", ""), 1).await[0].position,
        ..earlier
    };
    assert_eq!(numbers(&read(between, 2).await), vec![3, 5]);
    // Each filter alone and both together, from the newest and between cursors; a prefix
    // keeps its case, and one past every stream name picks nothing.
    let newest = |prefix: &str, kind: &str| crate::AuditQuery {
        before: Some(Position(u64::MAX)),
        ..query(prefix, kind)
    };
    let last_two = read(newest("deployment-1", ""), 2).await;
    assert_eq!(numbers(&last_two), vec![7, 9]);
    assert_eq!(
        numbers(&read(newest("deployment-", "Created"), 3).await),
        vec![3, 6, 9]
    );
    assert_eq!(
        numbers(&read(newest("Deployment-", ""), 100).await),
        vec![2, 5, 8]
    );
    assert_eq!(numbers(&read(newest("", ""), 2).await), vec![8, 9]);
    let before_last_two = crate::AuditQuery {
        before: Some(last_two[0].position),
        ..newest("deployment-12", "")
    };
    assert_eq!(
        numbers(&read(before_last_two.clone(), 100).await),
        vec![1, 4]
    );
    let between = crate::AuditQuery {
        after: read(query("deployment-12", ""), 1).await[0].position,
        ..before_last_two
    };
    assert_eq!(numbers(&read(between, 100).await), vec![4]);
    assert!(read(newest("deployment-1\u{10FFFF}", ""), 100)
        .await
        .is_empty());
    assert!(read(newest("deployment-12", "Created"), 100)
        .await
        .is_empty());
}

/// Readers' published positions: the lowest counts, a reader's latest replaces its earlier,
/// and a publication wakes whoever watches for one.
pub async fn readers_publish_how_far_they_applied_the_log(log: Arc<dyn EventLog>) {
    assert_eq!(log.applied_by_readers().await.unwrap(), None);
    let mut changes = log.applied_changes();
    log.publish_applied("deployments", Position(7))
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), changes.changed())
        .await
        .expect("a publication is announced")
        .expect("the announcer stays");
    log.publish_applied("artifacts", Position(5)).await.unwrap();
    assert_eq!(log.applied_by_readers().await.unwrap(), Some(Position(5)));
    log.publish_applied("artifacts", Position(9)).await.unwrap();
    assert_eq!(log.applied_by_readers().await.unwrap(), Some(Position(7)));
}

/// A plain uploaded artifact (a Raspberry Pi 4 image of `size` bytes), for other crates' tests
/// that need one in a log.
pub fn artifact_uploaded(id: events::ArtifactId, name: &str, size: u64) -> events::DomainEvent {
    use events::artifact::{ArtifactInfo, ArtifactUploaded};
    events::DomainEvent::ArtifactUploaded(ArtifactUploaded {
        artifact_id: id,
        name: name.into(),
        description: "nightly".into(),
        device_types_compatible: vec!["raspberrypi4".into()],
        info: ArtifactInfo {
            format: "mender".into(),
            version: 3,
        },
        signed: false,
        updates: vec![],
        artifact_provides: Default::default(),
        artifact_depends: Default::default(),
        clears_artifact_provides: vec![],
        size,
        modified: chrono::Utc::now(),
    })
}

//! The contract every [`EventLog`] backend must keep, as test cases any backend's tests call
//! with a fresh, empty log.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::{
    AppendError, AppendRequest, EventLog, EventMetadata, ExpectedVersion, NewEvent, Position,
    StreamName, Subscription, TenantId,
};

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

fn request(stream: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest {
        tenant: TenantId::default(),
        stream: StreamName::new(stream),
        expected,
        events,
    }
}

pub async fn appends_and_reads_a_stream(log: Arc<dyn EventLog>) {
    let first = log
        .append(request(
            "deployment-1",
            ExpectedVersion::NoStream,
            vec![event("A", 1), event("B", 2)],
        ))
        .await
        .unwrap();
    assert_eq!(first.stream_version, 2);
    assert_eq!(first.position, Position(2));
    let sent = event("C", 3);
    let second = log
        .append(request(
            "deployment-1",
            ExpectedVersion::Exact(2),
            vec![sent.clone()],
        ))
        .await
        .unwrap();
    assert_eq!(second.stream_version, 3);

    let stream = StreamName::new("deployment-1");
    let all = log
        .read_stream(&TenantId::default(), &stream, 0)
        .await
        .unwrap();
    let versions: Vec<u64> = all.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, vec![1, 2, 3]);
    let types: Vec<&str> = all.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, vec!["A", "B", "C"]);

    let stored = &all[2];
    assert_eq!(stored.event_id, sent.event_id);
    assert_eq!(stored.payload, sent.payload);
    assert_eq!(stored.metadata, sent.metadata);
    assert_eq!(stored.position, second.position);
    assert_eq!(stored.stream.category(), "deployment");

    let tail = log
        .read_stream(&TenantId::default(), &stream, 2)
        .await
        .unwrap();
    assert_eq!(tail.len(), 1);
    let missing = StreamName::new("deployment-none");
    assert!(log
        .read_stream(&TenantId::default(), &missing, 0)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(log.head().await.unwrap(), Position(3));
}

pub async fn wrong_expected_version_is_a_conflict_and_appends_nothing(log: Arc<dyn EventLog>) {
    log.append(request(
        "s-1",
        ExpectedVersion::NoStream,
        vec![event("A", 1)],
    ))
    .await
    .unwrap();
    let cases = [
        ("s-1", ExpectedVersion::NoStream, 1),
        ("s-1", ExpectedVersion::Exact(0), 1),
        ("s-1", ExpectedVersion::Exact(2), 1),
        ("s-2", ExpectedVersion::Exact(1), 0),
    ];
    for (stream, expected, actual_version) in cases {
        match log
            .append(request(stream, expected, vec![event("B", 2)]))
            .await
        {
            Err(AppendError::Conflict { actual, .. }) => assert_eq!(actual, actual_version),
            other => panic!("{stream} {expected:?}: expected a conflict, got {other:?}"),
        }
    }
    assert_eq!(log.head().await.unwrap(), Position(1));
    assert!(matches!(
        log.append(request("s-1", ExpectedVersion::Any, vec![]))
            .await,
        Err(AppendError::Empty)
    ));
    let any = log
        .append(request("s-1", ExpectedVersion::Any, vec![event("C", 3)]))
        .await
        .unwrap();
    assert_eq!(any.stream_version, 2);
}

pub async fn re_appending_known_events_appends_nothing(log: Arc<dyn EventLog>) {
    let events = vec![event("A", 1), event("B", 2)];
    let first = log
        .append(request("s-1", ExpectedVersion::NoStream, events.clone()))
        .await
        .unwrap();
    log.append(request(
        "s-2",
        ExpectedVersion::NoStream,
        vec![event("C", 3)],
    ))
    .await
    .unwrap();
    // The retry carries the expected version of the first try, which is now stale.
    let again = log
        .append(request("s-1", ExpectedVersion::NoStream, events))
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(log.head().await.unwrap(), Position(3));
    let stream = StreamName::new("s-1");
    assert_eq!(
        log.read_stream(&TenantId::default(), &stream, 0)
            .await
            .unwrap()
            .len(),
        2
    );
}

pub async fn tenants_own_separate_streams(log: Arc<dyn EventLog>) {
    let mut for_acme = request(
        "deployment-1",
        ExpectedVersion::NoStream,
        vec![event("A", 1)],
    );
    for_acme.tenant = TenantId::new("acme");
    let mut for_globex = request(
        "deployment-1",
        ExpectedVersion::NoStream,
        vec![event("A", 2)],
    );
    for_globex.tenant = TenantId::new("globex");
    log.append(for_acme).await.unwrap();
    let globex = log.append(for_globex).await.unwrap();
    assert_eq!(globex.stream_version, 1);
    let stream = StreamName::new("deployment-1");
    let acme = log
        .read_stream(&TenantId::new("acme"), &stream, 0)
        .await
        .unwrap();
    assert_eq!(acme.len(), 1);
    assert_eq!(acme[0].payload["n"], 1);
    assert!(log
        .read_stream(&TenantId::default(), &stream, 0)
        .await
        .unwrap()
        .is_empty());
}

pub async fn a_batch_commits_each_request_on_its_own(log: Arc<dyn EventLog>) {
    log.append(request(
        "s-1",
        ExpectedVersion::NoStream,
        vec![event("A", 1)],
    ))
    .await
    .unwrap();
    let results = log
        .append_many(vec![
            request("s-1", ExpectedVersion::Exact(1), vec![event("B", 2)]),
            request("s-2", ExpectedVersion::Exact(5), vec![event("C", 3)]),
            request(
                "s-1",
                ExpectedVersion::Exact(2),
                vec![event("D", 4), event("E", 5)],
            ),
            request("s-3", ExpectedVersion::NoStream, vec![]),
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
    let positions: Vec<u64> = log
        .read_all(Position::START, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position.0)
        .collect();
    assert_eq!(positions, vec![1, 2, 3, 4]);
}

pub async fn read_all_pages_in_one_total_order(log: Arc<dyn EventLog>) {
    for n in 0..25 {
        let stream = format!("s-{}", n % 4);
        log.append(request(&stream, ExpectedVersion::Any, vec![event("A", n)]))
            .await
            .unwrap();
    }
    let mut after = Position::START;
    let mut seen = Vec::new();
    loop {
        let page = log.read_all(after, 7).await.unwrap();
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 7);
        after = last.position;
        seen.extend(page);
    }
    let positions: Vec<u64> = seen.iter().map(|e| e.position.0).collect();
    assert_eq!(positions, (1..=25).collect::<Vec<_>>());
    let numbers: Vec<u64> = seen
        .iter()
        .map(|e| e.payload["n"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (0..25).collect::<Vec<_>>());
}

pub async fn a_subscription_resumes_from_its_checkpoint_and_goes_live(log: Arc<dyn EventLog>) {
    for n in 1..=10 {
        log.append(request(
            "s-1",
            ExpectedVersion::Exact(n - 1),
            vec![event("A", n)],
        ))
        .await
        .unwrap();
    }
    let mut first = Subscription::new(log.clone(), Position::START, 4);
    assert_eq!(first.next_batch().await.unwrap().len(), 4);
    assert_eq!(first.next_batch().await.unwrap().len(), 4);
    let checkpoint = first.position();
    assert_eq!(checkpoint, Position(8));
    drop(first);

    let mut resumed =
        Subscription::new(log.clone(), checkpoint, 100).with_poll_interval(Duration::from_secs(30));
    let rest = resumed.next_batch().await.unwrap();
    assert_eq!(
        rest.iter().map(|e| e.position.0).collect::<Vec<_>>(),
        vec![9, 10]
    );

    let writer = log.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer
            .append(request(
                "s-2",
                ExpectedVersion::NoStream,
                vec![event("B", 11)],
            ))
            .await
            .unwrap();
    });
    // The poll interval is far longer than the timeout: only a wake-up can deliver this.
    let live = tokio::time::timeout(Duration::from_secs(10), resumed.next_batch())
        .await
        .expect("a live subscription wakes on a new commit")
        .unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].position, Position(11));
}

/// Eight writers race over overlapping streams while a subscriber reads alongside: every event
/// is seen exactly once, in one total order that agrees with every stream's versions.
pub async fn concurrent_writers_and_a_subscriber_agree_on_one_order(log: Arc<dyn EventLog>) {
    const WRITERS: u64 = 8;
    const APPENDS_PER_WRITER: u64 = 250;
    const STREAMS: u64 = 12;

    let subscriber = {
        let log = log.clone();
        tokio::spawn(async move {
            let mut subscription = Subscription::new(log, Position::START, 97)
                .with_poll_interval(Duration::from_millis(50));
            let mut seen = Vec::new();
            while seen.len() < (WRITERS * APPENDS_PER_WRITER) as usize {
                seen.extend(subscription.next_batch().await.unwrap());
            }
            seen
        })
    };

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let log = log.clone();
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
                    let outcome = log
                        .append(request(
                            &stream,
                            ExpectedVersion::Exact(version),
                            vec![new_event.clone()],
                        ))
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
    let total = WRITERS * APPENDS_PER_WRITER;
    assert_eq!(appended.len() as u64, total);
    assert_eq!(log.head().await.unwrap(), Position(total));
    assert!(
        conflicts > 0,
        "the writers never raced; the test proves nothing"
    );

    let seen = tokio::time::timeout(Duration::from_secs(60), subscriber)
        .await
        .expect("the subscriber sees every event")
        .unwrap();
    let positions: Vec<u64> = seen.iter().map(|e| e.position.0).collect();
    assert_eq!(
        positions,
        (1..=total).collect::<Vec<_>>(),
        "gaps, repeats or disorder"
    );
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

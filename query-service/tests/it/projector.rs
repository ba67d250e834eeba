//! The projector against real databases: crash and resume, rebuild, several instances.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{caught_up, fleet_workload, fresh_read_models, fresh_urls, workload, Backend};
use events::Position;
use query_service::projections::{ArtifactsProjection, DeploymentsProjection};
use query_service::projector::{Projector, ProjectorSettings};
use query_service::read_models::ReadModels;
use query_service::rebuild::rebuild;

fn settings() -> ProjectorSettings {
    ProjectorSettings {
        batch_size: 7,
        poll_interval_ms: 100,
        takeover_interval_ms: 200,
        switch_check_ms: 50,
    }
}

fn projector(log: &Arc<dyn event_log::EventLog>, read_models: &ReadModels) -> Projector {
    projector_in_batches(log, read_models, settings().batch_size)
}

fn projector_in_batches(
    log: &Arc<dyn event_log::EventLog>,
    read_models: &ReadModels,
    batch_size: usize,
) -> Projector {
    Projector::new(
        log.clone(),
        read_models.clone(),
        Arc::new(DeploymentsProjection),
        ProjectorSettings {
            batch_size,
            ..settings()
        },
    )
}

/// Replays the whole log into empty read models: the reference every other build must equal.
async fn rebuilt_dump(
    log: &Arc<dyn event_log::EventLog>,
    backend: Backend,
    head: Position,
) -> Vec<String> {
    dump_in_batches(log, backend, head, settings().batch_size).await
}

/// Replays the whole log into empty read models, `batch_size` events per transaction.
async fn dump_in_batches(
    log: &Arc<dyn event_log::EventLog>,
    backend: Backend,
    head: Position,
    batch_size: usize,
) -> Vec<String> {
    let reference = fresh_read_models(backend).await;
    let projector = projector_in_batches(log, &reference, batch_size);
    let mut applied = projector.applied();
    let task = tokio::spawn(projector.run());
    caught_up(&mut applied, head).await;
    task.abort();
    reference.dump().await.unwrap()
}

async fn killed_mid_stream_resumes_to_the_same_read_models(backend: Backend) {
    let (log_url, read_url) = fresh_urls(backend).await;
    let log = event_log::open_log(&log_url, 10).await.unwrap();
    let read_models = ReadModels::connect(&read_url, 5).await.unwrap();

    // The workload is written while the projector runs, and the projector is killed partway.
    let writer = {
        let log = log.clone();
        tokio::spawn(async move { workload(&log, 40, 7).await })
    };
    let first = projector(&log, &read_models);
    let mut applied = first.applied();
    let task = tokio::spawn(first.run());
    caught_up(&mut applied, Position(30)).await;
    task.abort();
    let _ = task.await;
    let killed_at = read_models.checkpoint("deployments").await.unwrap();
    let head = writer.await.unwrap();
    assert!(killed_at < head, "the projector was not killed mid-stream");

    let second = projector(&log, &read_models);
    let mut applied = second.applied();
    let task = tokio::spawn(second.run());
    caught_up(&mut applied, head).await;
    task.abort();

    let resumed = read_models.dump().await.unwrap();
    assert!(resumed.iter().any(|row| row.contains("status=finished")));
    assert!(resumed
        .iter()
        .any(|row| row.starts_with("device_deployment_logs")));
    assert_eq!(resumed, rebuilt_dump(&log, backend, head).await);
}

/// The projection folds a batch's device events in memory: however the log is cut into
/// batches, the read models must come out as applying one event at a time leaves them.
async fn folding_a_batch_gives_what_one_event_at_a_time_gives(backend: Backend) {
    let (log_url, _) = fresh_urls(backend).await;
    let log = event_log::open_log(&log_url, 10).await.unwrap();
    workload(&log, 12, 5).await;
    let head = fleet_workload(&log).await;

    let one_by_one = dump_in_batches(&log, backend, head, 1).await;
    // What the fleet workload must have produced, so the comparison covers each rule.
    for expected in [
        // Six devices joined with the 1234-byte artifact, and all six finished.
        "device_count=6 status=finished total_size=7404",
        "status=noartifact",
        "device_id=device-1 status=decommissioned",
        // Joined after the abort: aborted on arrival. Finished after it: success.
        "device_id=device-3 status=aborted",
        "device_id=device-2 status=success",
        "device_deployment_logs tenant=acme",
    ] {
        let terms: Vec<&str> = expected.split(' ').collect();
        assert!(
            one_by_one
                .iter()
                .any(|row| terms.iter().all(|term| row.contains(term))),
            "no row has {expected}"
        );
    }
    let phases: Vec<&String> = one_by_one
        .iter()
        .filter(|row| row.starts_with("deployment_phases") && row.contains("device_count=3"))
        .collect();
    assert_eq!(phases.len(), 2, "{phases:?}");

    for batch_size in [2, 13, 1000] {
        assert_eq!(
            dump_in_batches(&log, backend, head, batch_size).await,
            one_by_one,
            "{batch_size} events a batch"
        );
    }
}

async fn a_rebuild_fills_a_new_generation_while_the_old_one_serves(backend: Backend) {
    let (log_url, read_url) = fresh_urls(backend).await;
    let log = event_log::open_log(&log_url, 10).await.unwrap();
    let read_models = ReadModels::connect(&read_url, 5).await.unwrap();
    let head = workload(&log, 15, 11).await;

    // The serving instance: every projection's projector, as a real instance runs them (reads
    // move once the slowest one has caught up), and its watch for new generations.
    let running = projector(&log, &read_models);
    let mut applied = running.applied();
    let mut tasks = vec![
        tokio::spawn(running.run()),
        tokio::spawn(
            Projector::new(
                log.clone(),
                read_models.clone(),
                Arc::new(ArtifactsProjection),
                settings(),
            )
            .run(),
        ),
        tokio::spawn(
            read_models
                .clone()
                .follow_switches(Duration::from_millis(50)),
        ),
    ];
    caught_up(&mut applied, head).await;

    // Reads go on through the rebuild and the switch: none fails, none shows less than one
    // before it.
    let reading = Arc::new(AtomicBool::new(true));
    let reader = {
        let (read_models, reading) = (read_models.clone(), reading.clone());
        tokio::spawn(async move {
            let (mut reads, mut most) = (0u64, 0i64);
            while reading.load(Ordering::Relaxed) {
                let rows: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM device_deployments WHERE finished IS NOT NULL",
                )
                .fetch_one(&read_models.pool())
                .await
                .expect("a read failed during the rebuild");
                assert!(rows >= most, "a read showed {rows} rows after {most}");
                most = rows;
                reads += 1;
            }
            reads
        })
    };
    // New events keep arriving while the rebuild runs.
    let writer = {
        let log = log.clone();
        tokio::spawn(async move { workload(&log, 15, 12).await })
    };
    let rebuilding = ReadModels::connect(&read_url, 5).await.unwrap();
    let rebuilt = rebuild(&rebuilding, log.clone(), settings(), |_, _| {})
        .await
        .unwrap();
    assert_eq!(rebuilt.generation, 1);
    assert!(rebuilt.dropped.is_empty());
    let head = writer.await.unwrap();
    serves(&read_models, 1, head).await;
    caught_up(&mut applied, head).await;
    reading.store(false, Ordering::Relaxed);
    assert!(reader.await.unwrap() > 0);
    let reference = rebuilt_dump(&log, backend, head).await;
    assert_eq!(read_models.dump().await.unwrap(), reference);

    // The next rebuild drops the retired generation 0 and builds generation 2.
    let rebuilt = rebuild(&rebuilding, log.clone(), settings(), |_, _| {})
        .await
        .unwrap();
    assert_eq!((rebuilt.generation, rebuilt.dropped), (2, vec![0]));
    serves(&read_models, 2, head).await;
    assert_eq!(read_models.dump().await.unwrap(), reference);
    let generation_0: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deployments")
        .fetch_one(read_models.base())
        .await
        .unwrap();
    assert_eq!(generation_0, 0, "the retired generation still holds rows");

    // A rebuild while another runs is refused before it touches anything.
    let running_rebuild = rebuilding.lock_rebuild().await.unwrap();
    let refused = rebuild(&read_models, log.clone(), settings(), |_, _| {}).await;
    assert!(format!("{:#}", refused.unwrap_err()).contains("another rebuild is running"));
    assert_eq!(rebuilding.stale_generations().await.unwrap(), vec![1]);
    assert_eq!(read_models.serving().number, 2);
    drop(running_rebuild);
    for task in tasks.drain(..) {
        task.abort();
    }
}

/// Waits until reads use `generation` and it has reached `head`.
async fn serves(read_models: &ReadModels, generation: u64, head: Position) {
    let switched = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if read_models.serving().number == generation
                && read_models.slowest_checkpoint().await.unwrap() >= Some(head)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        switched.is_ok(),
        "reads did not move to generation {generation}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_folding_a_batch_gives_what_one_event_at_a_time_gives() {
    folding_a_batch_gives_what_one_event_at_a_time_gives(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_folding_a_batch_gives_what_one_event_at_a_time_gives() {
    folding_a_batch_gives_what_one_event_at_a_time_gives(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_killed_mid_stream_resumes_to_the_same_read_models() {
    killed_mid_stream_resumes_to_the_same_read_models(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_killed_mid_stream_resumes_to_the_same_read_models() {
    killed_mid_stream_resumes_to_the_same_read_models(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_rebuild_fills_a_new_generation_while_the_old_one_serves() {
    a_rebuild_fills_a_new_generation_while_the_old_one_serves(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_rebuild_fills_a_new_generation_while_the_old_one_serves() {
    a_rebuild_fills_a_new_generation_while_the_old_one_serves(Backend::Postgres).await;
}

/// Two instances share one PostgreSQL: one projects while the other waits; when the
/// projecting one dies, the other takes over within seconds and nothing is applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_second_instance_takes_over_when_the_first_dies() {
    let (log_url, read_url) = fresh_urls(Backend::Postgres).await;
    let log = event_log::open_log(&log_url, 10).await.unwrap();
    let first_instance = ReadModels::connect(&read_url, 5).await.unwrap();
    let second_instance = ReadModels::connect(&read_url, 5).await.unwrap();
    let head = workload(&log, 10, 3).await;

    let first = projector(&log, &first_instance);
    let mut first_applied = first.applied();
    let first_task = tokio::spawn(first.run());
    caught_up(&mut first_applied, head).await;

    let second = projector(&log, &second_instance);
    let mut second_applied = second.applied();
    let second_task = tokio::spawn(second.run());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        *second_applied.borrow(),
        Position::START,
        "the second instance projected while the first held the lock"
    );

    first_task.abort();
    let _ = first_task.await;
    let head = workload(&log, 10, 4).await;
    tokio::time::timeout(
        Duration::from_secs(10),
        second_applied.wait_for(|at| *at >= head),
    )
    .await
    .expect("the second instance takes over within seconds")
    .unwrap();
    second_task.abort();
    assert_eq!(
        second_instance.dump().await.unwrap(),
        rebuilt_dump(&log, Backend::Postgres, head).await
    );
}

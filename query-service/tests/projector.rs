//! The projector against real databases: crash and resume, rebuild, several instances.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use events::Position;
use query_service::projections::DeploymentsProjection;
use query_service::projector::{Projector, ProjectorSettings};
use query_service::read_models::ReadModels;
use query_service::rebuild::rebuild;
use support::{caught_up, fresh_read_models, fresh_urls, workload, Backend};

fn settings() -> ProjectorSettings {
    ProjectorSettings {
        batch_size: 7,
        poll_interval_ms: 100,
        takeover_interval_ms: 200,
        switch_check_ms: 50,
    }
}

fn projector(log: &Arc<dyn events::EventLog>, read_models: &ReadModels) -> Projector {
    Projector::new(
        log.clone(),
        read_models.clone(),
        Arc::new(DeploymentsProjection),
        settings(),
    )
}

/// Replays the whole log into empty read models: the reference every other build must equal.
async fn rebuilt_dump(
    log: &Arc<dyn events::EventLog>,
    backend: Backend,
    head: Position,
) -> Vec<String> {
    let reference = fresh_read_models(backend).await;
    let projector = projector(log, &reference);
    let mut applied = projector.applied();
    let task = tokio::spawn(projector.run());
    caught_up(&mut applied, head).await;
    task.abort();
    reference.dump().await.unwrap()
}

async fn killed_mid_stream_resumes_to_the_same_read_models(backend: Backend) {
    let (log_url, read_url) = fresh_urls(backend).await;
    let log = events::open_log(&log_url, 10).await.unwrap();
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

async fn a_rebuild_fills_a_new_generation_while_the_old_one_serves(backend: Backend) {
    let (log_url, read_url) = fresh_urls(backend).await;
    let log = events::open_log(&log_url, 10).await.unwrap();
    let read_models = ReadModels::connect(&read_url, 5).await.unwrap();
    let head = workload(&log, 15, 11).await;

    // The serving instance: its projectors and its watch for new generations.
    let running = projector(&log, &read_models);
    let mut applied = running.applied();
    let mut tasks = vec![
        tokio::spawn(running.run()),
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
    let log = events::open_log(&log_url, 10).await.unwrap();
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

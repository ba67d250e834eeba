//! The projector against real databases: crash and resume, rebuild, several instances.

mod support;

use std::sync::Arc;
use std::time::Duration;

use events::Position;
use query_service::projections::DeploymentsProjection;
use query_service::projector::{Projector, ProjectorSettings};
use query_service::read_models::ReadModels;
use support::{caught_up, fresh_read_models, fresh_urls, workload, Backend};

fn settings() -> ProjectorSettings {
    ProjectorSettings {
        batch_size: 7,
        poll_interval_ms: 100,
        takeover_interval_ms: 200,
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

async fn a_rebuild_replays_from_zero_into_equal_read_models(backend: Backend) {
    let (log_url, read_url) = fresh_urls(backend).await;
    let log = events::open_log(&log_url, 10).await.unwrap();
    let read_models = ReadModels::connect(&read_url, 5).await.unwrap();
    let head = workload(&log, 15, 11).await;

    let running = projector(&log, &read_models);
    let mut applied = running.applied();
    let task = tokio::spawn(running.run());
    caught_up(&mut applied, head).await;
    let before = read_models.dump().await.unwrap();

    // Reset while the projector runs: it notices its checkpoint moved and replays from 0.
    read_models.reset().await.unwrap();
    assert_eq!(
        read_models.checkpoint("deployments").await.unwrap(),
        Position(0)
    );
    let replayed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if read_models.checkpoint("deployments").await.unwrap() == head {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        replayed.is_ok(),
        "the running projector did not replay after the reset"
    );
    task.abort();
    assert_eq!(read_models.dump().await.unwrap(), before);
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
async fn sqlite_a_rebuild_replays_from_zero_into_equal_read_models() {
    a_rebuild_replays_from_zero_into_equal_read_models(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_rebuild_replays_from_zero_into_equal_read_models() {
    a_rebuild_replays_from_zero_into_equal_read_models(Backend::Postgres).await;
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

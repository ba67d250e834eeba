//! Faults injected for real: a full disk (a small tmpfs), kill -9, SIGTERM, a terminated
//! PostgreSQL backend, restarts. Whatever happens, a 2xx means the change is in the log and
//! stays there, and a refusal leaves nothing behind.

#[macro_use]
mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use http_edge::auth::TokenKind;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use support::process::{ServerProcess, Tmpfs};
use support::rootfs_artifact;

const MANAGEMENT: &str = "/api/management/v1/deployments";
const DEVICE: &str = "/api/devices/v1/deployments/device/deployments";

fn artifact_form(file: &Path) -> Form {
    let bytes = std::fs::read(file).unwrap();
    Form::new().part("artifact", Part::bytes(bytes).file_name("artifact.mender"))
}

async fn upload(server: &ServerProcess, file: &Path) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(server.url(&format!("{MANAGEMENT}/artifacts")))
        .bearer_auth(server.admin())
        .multipart(artifact_form(file))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn create(server: &ServerProcess, name: &str, devices: &[&str]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(server.url(&format!("{MANAGEMENT}/deployments")))
        .bearer_auth(server.admin())
        .json(&json!({"name": name, "artifact_name": "release-1", "devices": devices}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(server: &ServerProcess, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(server.url(path))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Every event of the log, from the audit feed.
async fn all_events(server: &ServerProcess) -> Vec<Value> {
    let mut found = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = get(
            server,
            &format!("{MANAGEMENT}/events?after={after}&limit=1000"),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().unwrap().clone();
        let Some(last) = events.last() else {
            return found;
        };
        after = last["position"].as_u64().unwrap();
        found.extend(events);
    }
}

/// Names of the deployments the log holds.
async fn deployment_names(server: &ServerProcess) -> BTreeSet<String> {
    all_events(server)
        .await
        .iter()
        .filter(|event| event["event_type"] == "DeploymentCreated")
        .map(|event| event["payload"]["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Files under a directory, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path);
            }
        }
    }
    found
}

fn assert_server_fault(status: u16, body: &Value, what: &str) {
    assert!(
        status == 507 || status == 503,
        "{what}: a full disk must be 507 or 503, got {status} {body}"
    );
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|error| !error.is_empty()),
        "{what}: {body}"
    );
    assert!(body["request_id"].is_string(), "{what}: {body}");
}

/// The data directory on a full tmpfs: every command fails with a 5xx and stores nothing,
/// reads keep working, nothing acknowledged is lost, and writes come back by themselves
/// once space is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_commands_and_loses_nothing() {
    let disk = Tmpfs::mount(24);
    let data = disk.path.join("data");
    let files = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(&data, &[]).await;
    let release = rootfs_artifact(files.path(), "release-1", &["pi"], 64 * 1024);
    let (status, body) = upload(&server, &release).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(create(&server, "before", &["d0"]).await.0, 201);

    let filler = disk.fill();
    let mut acknowledged = vec!["before".to_owned()];
    let mut refused = Vec::new();
    for attempt in 0..40 {
        let name = format!("while-full-{attempt}");
        let (status, body) = create(&server, &name, &[&format!("d{attempt}")]).await;
        match status {
            201 => acknowledged.push(name),
            _ => {
                assert_server_fault(status, &body, &name);
                refused.push(name);
            }
        }
    }
    assert!(
        refused.len() >= 30,
        "a full disk refused only {} of 40 commands",
        refused.len()
    );
    // The device API too: a device asking for its deployment would append its entry.
    let device = server.token("d0", TokenKind::Device);
    let response = reqwest::Client::new()
        .post(server.url(&format!("{DEVICE}/next")))
        .bearer_auth(&device)
        .json(&json!({"artifact_name": "factory", "device_type": "pi"}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_server_fault(status, &body, "next");
    // An upload is refused as a server fault naming storage, logged at ERROR, and leaves
    // no file anywhere in the store.
    let stored_before = files_under(&data.join("artifacts"));
    let big = rootfs_artifact(files.path(), "release-2", &["pi"], 4 * 1024 * 1024);
    let (status, body) = upload(&server, &big).await;
    assert_server_fault(status, &body, "upload");
    assert!(
        body["error"].as_str().unwrap().contains("storage"),
        "the message names storage: {body}"
    );
    assert_eq!(files_under(&data.join("artifacts")), stored_before);
    assert!(
        server
            .log_text()
            .lines()
            .any(|line| line.contains("ERROR") && line.contains("storage")),
        "no ERROR line names the storage:\n{}",
        server.log_text()
    );
    // Reads keep working, and what they show is what is stored.
    let (status, listed) = get(&server, &format!("{MANAGEMENT}/deployments")).await;
    assert_eq!(status, 200, "{listed}");
    let (status, health) = get(&server, "/api/internal/v1/deployments/health/detail").await;
    assert_eq!(status, 200, "{health}");
    let head_while_full = health["head"].as_u64().unwrap();
    assert_eq!(
        head_while_full,
        all_events(&server).await.len() as u64,
        "the head runs ahead of the stored log"
    );

    // Space comes back: so do writes, with no restart.
    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = create(&server, "after", &["d-after"]).await;
        if status == 201 {
            acknowledged.push("after".to_owned());
            break;
        }
        assert_server_fault(status, &body, "after");
        assert!(
            Instant::now() < deadline,
            "writes did not come back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // What was acknowledged survives a crash; nothing refused is there; positions are not
    // reused.
    server.kill();
    server.restart().await;
    let expected: BTreeSet<String> = acknowledged.into_iter().collect();
    assert_eq!(deployment_names(&server).await, expected);
    let positions: Vec<u64> = all_events(&server)
        .await
        .iter()
        .map(|event| event["position"].as_u64().unwrap())
        .collect();
    assert_eq!(
        positions,
        (1..=positions.len() as u64).collect::<Vec<_>>(),
        "positions are gap-free and never reused"
    );
    assert_eq!(create(&server, "after restart", &["d-last"]).await.0, 201);
}

/// PostgreSQL backends terminated again and again while commands arrive: each command is
/// acknowledged with its row in the log, or refused with 503, never answered 2xx without a
/// row; once the terminations stop, commands succeed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_postgres_backends_never_lose_an_acknowledged_command() {
    let server = support::TestServer::start_with(true, |settings| {
        settings.storage.backend = blob_store::StorageBackend::Local;
    })
    .await;
    let files = tempfile::tempdir().unwrap();
    let release = rootfs_artifact(files.path(), "release-1", &["pi"], 16 * 1024);
    let response = server
        .client
        .post(server.url(&format!("{MANAGEMENT}/artifacts")))
        .bearer_auth(server.admin())
        .multipart(artifact_form(&release))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let url = server.postgres_url.clone().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let terminator = tokio::spawn({
        let stop = stop.clone();
        async move {
            use sqlx::Connection;
            let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
            let mut terminated = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let killed: Vec<bool> = sqlx::query_scalar(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .fetch_all(&mut admin)
                .await
                .unwrap();
                terminated += killed.len() as u64;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            terminated
        }
    });
    let mut acknowledged = BTreeSet::new();
    let mut refused = 0;
    for attempt in 0..60 {
        let name = format!("under-fire-{attempt}");
        let response = server
            .client
            .post(server.url(&format!("{MANAGEMENT}/deployments")))
            .bearer_auth(server.admin())
            .json(&json!({"name": name, "artifact_name": "release-1", "devices": [format!("d{attempt}")]}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match status {
            201 => {
                acknowledged.insert(name);
            }
            503 => {
                assert!(
                    body["error"].is_string() && body["request_id"].is_string(),
                    "{body}"
                );
                refused += 1;
            }
            other => panic!("{name}: {other} {body}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let terminated = terminator.await.unwrap();
    assert!(terminated > 0, "no backend was terminated");
    assert!(refused > 0, "no command met a terminated backend");
    // Every acknowledged command is in the log (a refused one may be too: the connection
    // can die after the commit, before the answer).
    let log = server.log().await;
    let stored: BTreeSet<String> = log
        .read_all(events::Position::START, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| event.event_type == "DeploymentCreated")
        .map(|event| event.payload["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        acknowledged.is_subset(&stored),
        "acknowledged but not stored: {:?}",
        acknowledged.difference(&stored).collect::<Vec<_>>()
    );
    // The pools reconnect by themselves.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = server
            .client
            .post(server.url(&format!("{MANAGEMENT}/deployments")))
            .bearer_auth(server.admin())
            .json(&json!({"name": "after", "artifact_name": "release-1", "devices": ["d-after"]}))
            .send()
            .await
            .unwrap();
        if response.status() == 201 {
            break;
        }
        assert!(Instant::now() < deadline, "commands did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

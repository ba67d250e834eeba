//! Faults injected for real: a full disk (a small tmpfs), kill -9, SIGTERM, a terminated
//! PostgreSQL backend, restarts. Whatever happens, a 2xx means the change is in the log and
//! stays there, and a refusal leaves nothing behind.

use std::collections::BTreeSet;

use futures::StreamExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::process::{ServerProcess, Tmpfs};
use crate::support::{artifact_form, files_under, rootfs_artifact};
use http_edge::auth::TokenKind;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

const MANAGEMENT: &str = "/api/management/v1/deployments";
const DEVICE: &str = "/api/devices/v1/deployments/device/deployments";

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

/// The live event feed of the server at `base`, open.
async fn event_stream(base: &str, token: &str) -> reqwest::Response {
    let stream = reqwest::Client::new()
        .get(format!("{base}{MANAGEMENT}/events/stream"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    stream
}

/// Every event of the log, from the audit feed.
async fn all_events(server: &ServerProcess) -> Vec<Value> {
    let mut found = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = server
            .get(&format!("{MANAGEMENT}/events?after={after}&limit=1000"))
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
    let (status, body) = server.upload(&release).await;
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
    let (status, body) = server.upload(&big).await;
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
    let (status, listed) = server.get(&format!("{MANAGEMENT}/deployments")).await;
    assert_eq!(status, 200, "{listed}");
    let (status, health) = server
        .get("/api/internal/v1/deployments/health/detail")
        .await;
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
    let server = crate::support::TestServer::start_with(true, |settings| {
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

/// Appends `count` deployments of `release-1` to other devices straight into the log, so that
/// loading it at start takes a while.
async fn fill_log(data: &Path, count: usize) {
    let log = event_log::open_log(&format!("sqlite://{}", data.join("events.db").display()), 2)
        .await
        .unwrap();
    let metadata = events::EventMetadata::now();
    for chunk in 0..count.div_ceil(500) {
        let events: Vec<_> = (0..500)
            .map(|n| {
                let created =
                    events::DomainEvent::DeploymentCreated(events::deployment::DeploymentCreated {
                        deployment_id: events::DeploymentId::new(),
                        name: format!("filler-{chunk}-{n}"),
                        artifact_name: "release-1".into(),
                        devices: vec![format!("filler-device-{chunk}-{n}")],
                        phases: Vec::new(),
                        force_installation: false,
                        created: chrono::Utc::now(),
                        groups: Vec::new(),
                        dynamic: None,
                        policy: None,
                        retries: 0,
                    });
                events::NewEvent::new(uuid::Uuid::new_v4(), &created, metadata.clone())
            })
            .collect();
        log.append(event_log::AppendRequest {
            tenant: events::TenantId::default(),
            stream: events::StreamName::new("deployments"),
            expected: event_log::ExpectedVersion::Any,
            events,
        })
        .await
        .unwrap();
    }
}

/// Right after a start, the device API answers from the whole log, not from the part of it
/// loaded so far: a device with a pending deployment is served it, never told there is none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_after_a_restart_devices_are_answered_from_the_whole_log() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(data.path(), &[]).await;
    let release = rootfs_artifact(files.path(), "release-1", &["pi"], 16 * 1024);
    assert_eq!(server.upload(&release).await.0, 201);
    server.kill();
    fill_log(data.path(), 60_000).await;
    server.restart().await;
    // The device's deployment comes last in the log.
    let (status, body) = create(&server, "for the late device", &["late-device"]).await;
    assert_eq!(status, 201, "{body}");
    server.kill();
    server.restart_in_background();
    let device = server.token("late-device", TokenKind::Device);
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (status, body) = loop {
        let asked = client
            .post(server.url(&format!("{DEVICE}/next")))
            .bearer_auth(&device)
            .json(&json!({"artifact_name": "factory", "device_type": "pi"}))
            .send()
            .await;
        match asked {
            // Still loading the log past its wait (a loaded machine): "not yet" is an honest
            // answer; "nothing for you" (204) would not be.
            Ok(response) if response.status() == 503 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Ok(response) => {
                let status = response.status().as_u16();
                break (
                    status,
                    response.json::<Value>().await.unwrap_or(Value::Null),
                );
            }
            // Not listening yet.
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            Err(error) => panic!("the server never answered: {error}"),
        }
    };
    assert_eq!(
        status, 200,
        "the first answer after a restart, past any 503: {body}"
    );
    assert_eq!(body["artifact"]["artifact_name"], "release-1");
}

/// SIGTERM with a live event stream and an upload under way: the upload finishes, the
/// stream ends, and the process exits well within the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_requests_ends_streams_and_exits() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(data.path(), &[]).await;
    let mut stream = event_stream(&server.base, &server.admin()).await;
    // An upload that takes a second and a half to arrive.
    let release = std::fs::read(rootfs_artifact(
        files.path(),
        "release-1",
        &["pi"],
        256 * 1024,
    ))
    .unwrap();
    let chunks: Vec<Vec<u8>> = release.chunks(16 * 1024).map(<[u8]>::to_vec).collect();
    let pieces = chunks.len() as u64;
    let body = futures::stream::iter(chunks).then(move |chunk| async move {
        tokio::time::sleep(Duration::from_millis(1500 / pieces)).await;
        Ok::<_, std::io::Error>(chunk)
    });
    let upload = tokio::spawn({
        let url = server.url(&format!("{MANAGEMENT}/artifacts"));
        let token = server.admin();
        let length = release.len() as u64;
        async move {
            let form = Form::new().part(
                "artifact",
                Part::stream_with_length(reqwest::Body::wrap_stream(body), length)
                    .file_name("a.mender"),
            );
            let response = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .multipart(form)
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let exited = tokio::task::spawn_blocking(move || {
        let took = server.terminate(Duration::from_secs(30));
        (took, server)
    });
    assert_eq!(
        upload.await.unwrap(),
        201,
        "the in-flight upload was cut off"
    );
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the event stream did not end");
    let (took, server) = exited.await.unwrap();
    let took =
        took.unwrap_or_else(|| panic!("still running 30 s after SIGTERM:\n{}", server.log_text()));
    assert!(
        took < Duration::from_secs(8),
        "the process took {took:?} to exit"
    );
}

fn http_settings(
    header_seconds: u64,
    idle_seconds: u64,
    connections: usize,
) -> http_edge::serve::HttpSettings {
    http_edge::serve::HttpSettings {
        header_read_timeout_seconds: header_seconds,
        idle_timeout_seconds: idle_seconds,
        max_connections: connections,
        ..Default::default()
    }
}

/// Reads from a raw connection until the server closes it; how long that took, or `None`
/// if it stayed open for `limit`.
async fn closed_within(socket: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + limit),
            socket.read(&mut buffer),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// A client that never finishes its headers, one that sits idle after connecting, and one
/// whose body stalls are all cut off; the cap on connections holds the rest in the backlog
/// until one closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_connections_are_closed_and_capped() {
    use tokio::io::AsyncWriteExt;
    let server = crate::support::TestServer::start_with(false, |settings| {
        settings.http = http_settings(1, 1, 100);
    })
    .await;
    let address = server.base.trim_start_matches("http://").to_owned();
    // A live event stream reads nothing from its client for as long as it lasts; it is not
    // idle and must stay open.
    let mut stream = event_stream(&server.base, &server.admin()).await;
    // Headers that never end.
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /api/internal/v1/deployments/alive HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let took = closed_within(&mut slow, Duration::from_secs(10)).await;
    assert!(
        took.is_some(),
        "a connection that never finished its headers stayed open"
    );
    // Nothing at all.
    let mut silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(10))
            .await
            .is_some(),
        "an idle connection stayed open"
    );
    // A body that stops arriving.
    let mut stalled = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request = format!(
        "POST {MANAGEMENT}/deployments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"name\": ",
        server.admin()
    );
    stalled.write_all(request.as_bytes()).await.unwrap();
    assert!(
        closed_within(&mut stalled, Duration::from_secs(10))
            .await
            .is_some(),
        "a stalled body held its connection"
    );

    assert!(
        tokio::time::timeout(Duration::from_millis(1500), stream.chunk())
            .await
            .is_err(),
        "the event stream was cut off"
    );
    drop(stream);

    let capped = crate::support::TestServer::start_with(false, |settings| {
        settings.http = http_settings(30, 30, 2);
    })
    .await;
    let address = capped.base.trim_start_matches("http://").to_owned();
    let held: Vec<_> =
        futures::future::join_all((0..2).map(|_| tokio::net::TcpStream::connect(address.clone())))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let alive = |timeout| {
        reqwest::Client::new()
            .get(capped.url("/api/internal/v1/deployments/alive"))
            .timeout(timeout)
            .send()
    };
    assert!(
        alive(Duration::from_millis(800)).await.is_err(),
        "a third connection was served while two were held"
    );
    drop(held);
    let answered = alive(Duration::from_secs(5)).await.unwrap();
    assert_eq!(answered.status(), 204);
}

/// kill -9 in the middle of an upload leaves a partial file; the next start removes it, and
/// nothing of it shows in the storage usage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_upload_leaves_nothing_after_the_next_start() {
    let data = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(data.path(), &[]).await;
    let incoming = data.path().join("artifacts/.incoming");
    // A real artifact's first 4 MiB, then nothing more for as long as the test runs.
    let files = tempfile::tempdir().unwrap();
    let release =
        std::fs::read(rootfs_artifact(files.path(), "release-1", &["pi"], 8 << 20)).unwrap();
    let (sender, receiver) = futures::channel::mpsc::unbounded::<Result<Vec<u8>, std::io::Error>>();
    sender
        .unbounded_send(Ok(release[..4 << 20].to_vec()))
        .unwrap();
    let upload = tokio::spawn({
        let url = server.url(&format!("{MANAGEMENT}/artifacts"));
        let token = server.admin();
        async move {
            let form = Form::new().part(
                "artifact",
                Part::stream_with_length(
                    reqwest::Body::wrap_stream(receiver),
                    release.len() as u64,
                )
                .file_name("a.mender"),
            );
            let _ = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .multipart(form)
                .send()
                .await;
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while files_under(&incoming)
        .iter()
        .map(|file| std::fs::metadata(file).map_or(0, |m| m.len()))
        .sum::<u64>()
        < 1 << 20
    {
        assert!(
            Instant::now() < deadline,
            "the upload never reached the disk"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    upload.abort();
    drop(sender);
    assert_eq!(
        files_under(&incoming).len(),
        1,
        "the crash left its partial file"
    );

    server.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !files_under(&incoming).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the partial file is still there after the start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, limits) = server.get(&format!("{MANAGEMENT}/limits/storage")).await;
    assert_eq!(status, 200);
    assert_eq!(limits["usage"], 0);
    assert!(files_under(&data.path().join("artifacts")).is_empty());
}

/// Password guessing is logged at WARN with the client's address, then throttled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_logged_with_the_address_and_throttled() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        data.path(),
        &[
            ("DEPLOYMENTS_STANDALONE__ADMIN_PASSWORD", "correct horse"),
            ("DEPLOYMENTS_STANDALONE__LOGIN_FAILURES_PER_MINUTE", "3"),
        ],
    )
    .await;
    let login = || {
        reqwest::Client::new()
            .post(server.url("/api/management/v1/useradm/auth/login"))
            .basic_auth("admin@example.com", Some("guess"))
            .send()
    };
    let statuses = [
        login().await.unwrap().status().as_u16(),
        login().await.unwrap().status().as_u16(),
        login().await.unwrap().status().as_u16(),
        login().await.unwrap().status().as_u16(),
    ];
    assert_eq!(statuses, [401, 401, 401, 429]);
    let warnings: Vec<String> = server
        .log_text()
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("login refused"))
        .map(str::to_owned)
        .collect();
    assert_eq!(warnings.len(), 4, "{warnings:#?}");
    assert!(
        warnings.iter().all(|line| line.contains("127.0.0.1")),
        "{warnings:#?}"
    );
}

/// Every `DeviceDeploymentTimedOut` in the log, by device.
async fn timeouts_in_log(log_url: &str) -> Vec<String> {
    let log = event_log::open_log(log_url, 1).await.unwrap();
    let mut devices = Vec::new();
    let mut after = events::Position::START;
    loop {
        let batch = log.read_all(after, 1000).await.unwrap();
        let Some(last) = batch.last() else { break };
        after = last.position;
        for event in &batch {
            if let Ok(events::DomainEvent::DeviceDeploymentTimedOut(timed_out)) = event.decode() {
                devices.push(timed_out.device_id);
            }
        }
    }
    devices.sort();
    devices
}

/// Creates a deployment as the administrator: its id.
async fn create_deployment(server: &ServerProcess, body: Value) -> String {
    let response = reqwest::Client::new()
        .post(server.url(&format!("{MANAGEMENT}/deployments")))
        .bearer_auth(server.admin())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.headers()["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned()
}

/// The kinds of the causes of a device's entry's changes, oldest first.
async fn history_causes(server: &ServerProcess, id: &str, device: &str) -> Vec<String> {
    let (status, changes) = server
        .get(&format!(
            "/api/management/v2/deployments/deployments/{id}/devices/{device}/history"
        ))
        .await;
    assert_eq!(status, 200, "{changes}");
    changes
        .as_array()
        .unwrap()
        .iter()
        .map(|change| change["cause"]["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// Device timeouts come from the log: an entry times out while the server runs after a
/// restart that loaded it from the log, and one whose deadline passed while the server was
/// down times out right after the next start; neither ever twice, however often the process
/// is killed; a timeout counts towards retries and trips a failure policy; each entry's
/// history names it; and a rebuild from the log gives the same answers.
async fn device_timeouts_fire_from_the_log_exactly_once_across_kills(postgres: bool) {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let log_url = if postgres {
        event_log::conformance::fresh_postgres_url().await
    } else {
        format!("sqlite://{}", data.path().join("events.db").display())
    };
    let mut settings = vec![("DEPLOYMENTS_ROLLOUT_CHECK_MS", "300")];
    if postgres {
        settings.push(("DEPLOYMENTS_EVENT_LOG_URL", &log_url));
        settings.push(("DEPLOYMENTS_READ_MODELS_URL", &log_url));
    }
    let mut server = ServerProcess::start(data.path(), &settings).await;
    let release = rootfs_artifact(files.path(), "release-1", &["pi"], 16 * 1024);
    assert_eq!(server.upload(&release).await.0, 201);
    let id = create_deployment(
        &server,
        json!({"name": "stuck", "artifact_name": "release-1", "devices": ["t1", "t2"],
               "retries": 1,
               "policy": {"failure_threshold_percent": 100, "device_timeout_seconds": 60}}),
    )
    .await;
    // t3's timeout is its final attempt: one failed of one finished trips this policy.
    let policed = create_deployment(
        &server,
        json!({"name": "policed", "artifact_name": "release-1", "devices": ["t3", "t4"],
               "policy": {"failure_threshold_percent": 50, "min_finished_devices": 1,
                          "device_timeout_seconds": 60}}),
    )
    .await;
    let client = reqwest::Client::new();
    let start = |server: &ServerProcess, id: &str, device: &'static str, status: &'static str| {
        let (client, server_url, token) = (
            client.clone(),
            server.url(DEVICE),
            server.token(device, TokenKind::Device),
        );
        let id = id.to_owned();
        async move {
            let next = client
                .post(format!("{server_url}/next"))
                .bearer_auth(&token)
                .json(&json!({"artifact_name": "factory", "device_type": "pi"}))
                .send()
                .await
                .unwrap();
            assert_eq!(next.status(), 200, "{device} is served");
            let report = client
                .put(format!("{server_url}/{id}/status"))
                .bearer_auth(&token)
                .json(&json!({"status": status}))
                .send()
                .await
                .unwrap();
            assert_eq!(report.status(), 204);
        }
    };
    let entry = |server: &ServerProcess, device: &'static str| {
        let url = server.url(&format!("{MANAGEMENT}/deployments/{id}/devices"));
        let token = server.admin();
        async move {
            let entries: Value = reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            entries
                .as_array()
                .unwrap()
                .iter()
                .find(|entry| entry["id"] == device)
                .cloned()
                .unwrap_or(Value::Null)
        }
    };
    let timed_out = |entry: &Value| entry["status"] == "failure" && entry["substate"] == "timeout";

    let t0 = Instant::now();
    start(&server, &id, "t1", "downloading").await;
    start(&server, &policed, "t3", "downloading").await;
    server.kill();
    server.restart().await;
    tokio::time::sleep(Duration::from_secs(35).saturating_sub(t0.elapsed())).await;
    let t2_joined = Instant::now();
    // The restart re-read when t1 last changed from the log: it has not timed out early.
    let t1 = entry(&server, "t1").await;
    assert_eq!(t1["status"], "downloading", "{t1}");
    start(&server, &id, "t2", "installing").await;

    // t1 times out while the server runs, about 60 s after its report.
    let t1 = loop {
        let t1 = entry(&server, "t1").await;
        if timed_out(&t1) {
            break t1;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(80),
            "t1 never timed out: {t1}\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(t0.elapsed() >= Duration::from_secs(60), "{t1}");
    assert_eq!(entry(&server, "t2").await["status"], "installing");

    // t2's deadline passes while the server is down: it times out right after the start.
    server.kill();
    tokio::time::sleep(Duration::from_secs(62).saturating_sub(t2_joined.elapsed())).await;
    server.restart().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !timed_out(&entry(&server, "t2").await) {
        assert!(
            Instant::now() < deadline,
            "t2 did not time out after the start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Many more checks, and another kill and start: still one timeout each.
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.kill();
    server.restart().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(timeouts_in_log(&log_url).await, ["t1", "t2", "t3"]);
    let statistics = server
        .get(&format!("{MANAGEMENT}/deployments/{id}/statistics"))
        .await
        .1;
    assert_eq!(statistics["failure"], 2, "{statistics}");
    let (_, deployment) = server.get(&format!("{MANAGEMENT}/deployments/{id}")).await;
    assert_eq!(
        deployment["status"], "inprogress",
        "failures with a retry left"
    );

    // A timeout is a failed attempt: the device gets its retry.
    let next = client
        .post(server.url(&format!("{DEVICE}/next")))
        .bearer_auth(server.token("t1", TokenKind::Device))
        .json(&json!({"artifact_name": "factory", "device_type": "pi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), 200);
    assert_eq!(entry(&server, "t1").await["attempts"], 2);
    assert_eq!(
        history_causes(&server, &id, "t1").await,
        ["device_report", "device_report", "timeout", "retry"]
    );

    // t3's timeout, its final attempt, paused its deployment by the policy.
    let (_, deployment) = server
        .get(&format!("{MANAGEMENT}/deployments/{policed}"))
        .await;
    assert_eq!(deployment["paused"], true, "{deployment}");
    assert_eq!(deployment["pause_cause"]["kind"], "policy", "{deployment}");
    assert_eq!(
        deployment["policy_trip"],
        json!({"finished": 1, "failed": 1, "failure_percent": 100.0})
    );
    assert_eq!(
        history_causes(&server, &policed, "t3").await,
        ["device_report", "device_report", "timeout"]
    );

    // A rebuild from the log answers as the live read models did.
    let paths: Vec<String> = [&id, &policed]
        .into_iter()
        .flat_map(|deployment| {
            [
                format!("{MANAGEMENT}/deployments/{deployment}"),
                format!("{MANAGEMENT}/deployments/{deployment}/statistics"),
                format!("{MANAGEMENT}/deployments/{deployment}/devices"),
            ]
        })
        .collect();
    async fn answers(server: &ServerProcess, paths: &[String]) -> Vec<(u16, Value)> {
        let mut answers = Vec::new();
        for path in paths {
            answers.push(server.get(path).await);
        }
        answers
    }
    let live = answers(&server, &paths).await;
    server.kill();
    let (rebuilt, said) = server.run(&["rebuild"]);
    assert!(rebuilt, "{said}");
    server.restart().await;
    assert_eq!(answers(&server, &paths).await, live);
    assert_eq!(timeouts_in_log(&log_url).await, ["t1", "t2", "t3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_timeouts_fire_from_the_log_exactly_once_across_kills_on_sqlite() {
    device_timeouts_fire_from_the_log_exactly_once_across_kills(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_timeouts_fire_from_the_log_exactly_once_across_kills_on_postgres() {
    device_timeouts_fire_from_the_log_exactly_once_across_kills(true).await
}

//! The split deployment: command-service and query-service as separate applications over one
//! PostgreSQL, each answering its own health routes and serving its half of the API.

use std::time::Duration;

use event_log::{AppendRequest, ExpectedVersion};
use events::{DomainEvent, EventMetadata, NewEvent, StreamName, TenantId};
use http_edge::auth::{AuthSettings, Issuer, TokenKind};
use uuid::Uuid;

fn storage(dir: &std::path::Path) -> blob_store::StorageSettings {
    blob_store::StorageSettings {
        local_dir: dir.to_path_buf(),
        link_secret: Some("link secret".into()),
        ..Default::default()
    }
}

fn auth() -> AuthSettings {
    AuthSettings {
        hs256_secret: Some("split secret".into()),
        ..AuthSettings::default()
    }
}

/// Both services over one fresh PostgreSQL database and one artifact directory. Returns the
/// database URL and both base URLs.
async fn split_stack(artifacts: &std::path::Path) -> (String, String, String) {
    let url = event_log::conformance::fresh_postgres_url().await;
    let command = command_service::Application::build(command_service::settings::CommandSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        event_log_url: url.clone(),
        auth: auth(),
        storage: storage(artifacts),
        ..Default::default()
    })
    .await
    .unwrap();
    let query = query_service::Application::build(query_service::settings::QuerySettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        event_log_url: url.clone(),
        read_models_url: url.clone(),
        auth: auth(),
        storage: storage(artifacts),
        ..Default::default()
    })
    .await
    .unwrap();
    let command_base = format!("http://127.0.0.1:{}", command.port());
    let query_base = format!("http://127.0.0.1:{}", query.port());
    tokio::spawn(command.run_until(std::future::pending()));
    tokio::spawn(query.run_until(std::future::pending()));
    (url, command_base, query_base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_services_run_split_over_one_postgres() {
    let artifacts = tempfile::tempdir().unwrap();
    let (url, command_base, query_base) = split_stack(artifacts.path()).await;

    for base in [&command_base, &query_base] {
        for route in ["alive", "health"] {
            let response = reqwest::get(format!("{base}/api/internal/v1/deployments/{route}"))
                .await
                .unwrap();
            assert_eq!(response.status(), 204, "{base} {route}");
        }
    }

    // What one service's log receives, the other's projection shows.
    let id = events::DeploymentId::new();
    let log = event_log::open_log(&url, 2).await.unwrap();
    let created = DomainEvent::DeploymentCreated(events::deployment::DeploymentCreated {
        deployment_id: id,
        name: "split".into(),
        artifact_name: "release-1".into(),
        devices: vec!["d1".into()],
        phases: vec![],
        force_installation: false,
        created: chrono::Utc::now(),
        groups: Vec::new(),
        dynamic: None,
        policy: None,
        retries: 0,
    });
    log.append(AppendRequest {
        tenant: TenantId::default(),
        stream: StreamName::new(format!("deployment-{id}")),
        expected: ExpectedVersion::NoStream,
        events: vec![NewEvent::new(
            Uuid::new_v4(),
            &created,
            EventMetadata::now(),
        )],
    })
    .await
    .unwrap();
    let issuer = Issuer::from_settings(&auth()).unwrap();
    let token = issuer.issue(&Issuer::claims(
        "admin",
        &TenantId::default(),
        TokenKind::User,
        chrono::Duration::hours(1),
    ));
    let mut status = 0;
    for _ in 0..50 {
        let response = reqwest::Client::new()
            .get(format!(
                "{query_base}/api/management/v1/deployments/deployments/{id}"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        status = response.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, 200,
        "the query service never projected the deployment"
    );
}

/// A client that names the position a command answered with reads its own write from a
/// query service the command service did not wait for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_naming_a_log_position_waits_for_it() {
    let artifacts = tempfile::tempdir().unwrap();
    let (_, command_base, query_base) = split_stack(artifacts.path()).await;
    let token = Issuer::from_settings(&auth())
        .unwrap()
        .issue(&Issuer::claims(
            "admin",
            &TenantId::default(),
            TokenKind::User,
            chrono::Duration::hours(1),
        ));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rootfs.ext4"), vec![1u8; 5000]).unwrap();
    let status = std::process::Command::new("mender-artifact")
        .current_dir(dir.path())
        .args([
            "write",
            "rootfs-image",
            "-t",
            "pi",
            "-n",
            "split-1",
            "-f",
            "rootfs.ext4",
            "-o",
            "a.mender",
        ])
        .output()
        .unwrap();
    assert!(status.status.success());
    let form = reqwest::multipart::Form::new().part(
        "artifact",
        reqwest::multipart::Part::bytes(std::fs::read(dir.path().join("a.mender")).unwrap())
            .file_name("a.mender"),
    );
    let response = reqwest::Client::new()
        .post(format!(
            "{command_base}/api/management/v1/deployments/artifacts"
        ))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let position = response.headers()["x-deployments-log-position"]
        .to_str()
        .unwrap()
        .to_owned();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let read = reqwest::Client::new()
        .get(format!("{query_base}{location}"))
        .bearer_auth(&token)
        .header("X-Deployments-Log-Position", &position)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let bad = reqwest::Client::new()
        .get(format!("{query_base}{location}"))
        .bearer_auth(&token)
        .header("X-Deployments-Log-Position", "soon")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

fn admin_token() -> String {
    Issuer::from_settings(&auth())
        .unwrap()
        .issue(&Issuer::claims(
            "admin",
            &TenantId::default(),
            TokenKind::User,
            chrono::Duration::hours(1),
        ))
}

/// Uploads a small artifact named `name` to `base`; returns the artifact's location.
async fn upload(base: &str, token: &str, name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = crate::support::rootfs_artifact(dir.path(), name, &["pi"], 4096);
    let form = reqwest::multipart::Form::new().part(
        "artifact",
        reqwest::multipart::Part::bytes(std::fs::read(file).unwrap()).file_name("a.mender"),
    );
    let response = reqwest::Client::new()
        .post(format!("{base}/api/management/v1/deployments/artifacts"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// The command service answers once the query service shows the change, knowing only the
/// log they share (no read-model URL): a read right after the answer sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_answers_once_the_split_query_service_shows_it() {
    let artifacts = tempfile::tempdir().unwrap();
    let (_, command_base, query_base) = split_stack(artifacts.path()).await;
    let token = admin_token();
    for n in 0..5 {
        let location = upload(&command_base, &token, &format!("ryw-{n}")).await;
        let read = reqwest::Client::new()
            .get(format!("{query_base}{location}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 200, "upload {n} was not readable at once");
    }
}

/// Two all-in-one instances over one PostgreSQL: only one runs the projections, and a
/// command sent to the other still answers as soon as they show it, not after waiting the
/// whole read_wait_ms for projectors of its own that never move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_without_the_projections_answers_once_another_shows_the_change() {
    let first = crate::support::TestServer::start_with(true, |settings| {
        settings.storage.backend = blob_store::StorageBackend::Local;
    })
    .await;
    let url = first.postgres_url.clone().unwrap();
    let shared_dir = first.settings.data_dir.clone();
    let second = crate::support::TestServer::start_with(true, |settings| {
        settings.event_log_url = Some(url.clone());
        settings.read_models_url = Some(url.clone());
        settings.data_dir = shared_dir.clone();
        settings.storage.backend = blob_store::StorageBackend::Local;
        // Long enough that waiting it out cannot pass for an answer.
        settings.read_wait_ms = 60_000;
    })
    .await;
    let token = second.admin();
    let started = std::time::Instant::now();
    let location = upload(&second.base, &token, "on-the-standby").await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the command waited {:?} for projectors that are not running",
        started.elapsed()
    );
    for server in [&first, &second] {
        let (status, _) = server.get(&location, Some(&token)).await;
        assert_eq!(status, 200, "{}", server.base);
    }
}

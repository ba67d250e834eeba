//! The all-in-one server over real HTTP, on embedded SQLite and on PostgreSQL.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use event_log::{AppendRequest, ExpectedVersion};
use events::deployment::{DeploymentCreated, DeviceDeploymentStatus, DeviceJoinedDeployment};
use events::{
    ArtifactId, DeploymentId, DomainEvent, EventMetadata, NewEvent, StreamName, TenantId,
};
use http_edge::auth::TokenKind;
use serde_json::Value;
use uuid::Uuid;

use crate::support::TestServer;

/// Writes events straight into the server's log, as the command service will.
async fn record(
    server: &TestServer,
    tenant: &str,
    deployment: DeploymentId,
    events: Vec<DomainEvent>,
) {
    server
        .log()
        .await
        .append(AppendRequest {
            tenant: TenantId::new(tenant),
            stream: StreamName::new(format!("deployment-{deployment}")),
            expected: ExpectedVersion::Any,
            events: events
                .iter()
                .map(|event| NewEvent::new(Uuid::new_v4(), event, EventMetadata::now()))
                .collect(),
        })
        .await
        .unwrap();
}

/// Reads until the projection shows what was recorded straight into the log.
async fn eventually(
    server: &TestServer,
    path: &str,
    token: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..100 {
        let (status, body) = server.get(path, Some(token)).await;
        if status == 200 && done(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never showed the recorded events");
}

async fn liveness_and_health_answer_204(server: TestServer) {
    let (status, _) = server.get("/api/internal/v1/deployments/alive", None).await;
    assert_eq!(status, 204);
    let (status, _) = server
        .get("/api/internal/v1/deployments/health", None)
        .await;
    assert_eq!(status, 204);
}

async fn a_deployment_is_read_from_its_projection(server: TestServer) {
    let user = server.token("alice", "acme", TokenKind::User);
    let id = DeploymentId::new();
    record(
        &server,
        "acme",
        id,
        vec![
            DomainEvent::DeploymentCreated(DeploymentCreated {
                deployment_id: id,
                name: "spring".into(),
                artifact_name: "release-1".into(),
                devices: vec!["d1".into(), "d2".into()],
                phases: vec![],
                force_installation: false,
                created: Utc::now(),
                groups: Vec::new(),
                dynamic: None,
                policy: None,
                retries: 0,
            }),
            DomainEvent::DeviceJoinedDeployment(DeviceJoinedDeployment {
                deployment_id: id,
                device_id: "d1".into(),
                artifact_id: Some(ArtifactId::new()),
                status: DeviceDeploymentStatus::Pending,
                device_type: "qemux86-64".into(),
                installed_artifact_name: "release-0".into(),
                phase: None,
                matched_filter: None,
            }),
        ],
    )
    .await;
    let path = format!("/api/management/v1/deployments/deployments/{id}");
    let deployment = eventually(&server, &path, &user, |body| body["device_count"] == 1).await;
    assert_eq!(deployment["id"], id.to_string());
    assert_eq!(deployment["name"], "spring");
    assert_eq!(deployment["artifact_name"], "release-1");
    assert_eq!(deployment["status"], "pending");
    assert_eq!(deployment["max_devices"], 2);

    let (status, statistics) = server.get(&format!("{path}/statistics"), Some(&user)).await;
    assert_eq!(status, 200);
    let statistics = statistics.as_object().unwrap();
    assert_eq!(statistics.len(), 13);
    assert_eq!(statistics["pending"], 1);
    assert_eq!(statistics["already-installed"], 0);
    assert_eq!(
        statistics.values().filter_map(Value::as_i64).sum::<i64>(),
        1
    );

    // Another tenant's user cannot see it, nor can a device or an anonymous caller.
    let stranger = server.token("mallory", "globex", TokenKind::User);
    assert_eq!(server.get(&path, Some(&stranger)).await.0, 404);
    let device = server.token("d1", "acme", TokenKind::Device);
    assert_eq!(server.get(&path, Some(&device)).await.0, 403);
    assert_eq!(server.get(&path, None).await.0, 401);
}

async fn metrics_count_requests_and_show_lag(server: TestServer) {
    for _ in 0..3 {
        assert_eq!(
            server
                .get("/api/internal/v1/deployments/alive", None)
                .await
                .0,
            204
        );
    }
    let id = DeploymentId::new();
    record(
        &server,
        "",
        id,
        vec![DomainEvent::DeploymentAborted(
            events::deployment::DeploymentAborted {
                deployment_id: id,
                policy: None,
            },
        )],
    )
    .await;
    let mut text = String::new();
    for _ in 0..100 {
        let response = server
            .client
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        text = response.text().await.unwrap();
        if text.contains("deployments_projection_lag_events{projection=\"deployments\"} 0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alive = text
        .lines()
        .find(|line| line.starts_with("deployments_http_requests_total{route=\"/api/internal/v1/deployments/alive\",method=\"GET\",status=\"204\"}"))
        .unwrap_or_else(|| panic!("{text}"));
    let count: u64 = alive.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 3, "{alive}");
    assert!(text.contains("deployments_http_request_duration_seconds_bucket{route=\"/api/internal/v1/deployments/alive\",method=\"GET\",le=\"60\"}"));
    assert!(text.contains("deployments_event_log_head 1"), "{text}");
    assert!(text.contains("deployments_event_log_up 1"), "{text}");
    assert!(text.contains("deployments_read_models_up 1"), "{text}");
    // The fleet: every status is shown, 0 included.
    assert!(
        text.contains("deployments_deployments{status=\"inprogress\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("deployments_devices{status=\"accepted\"}"),
        "{text}"
    );
    assert!(
        text.contains("deployments_projection_lag_events{projection=\"deployments\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("deployments_projection_lag_seconds{projection=\"artifacts\"}"),
        "{text}"
    );
}

async fn bad_and_unknown_ids_are_400_and_404(server: TestServer) {
    let user = server.token("alice", "", TokenKind::User);
    let (status, body) = server
        .get(
            "/api/management/v1/deployments/deployments/not-a-uuid",
            Some(&user),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "ID is not a valid UUID");
    assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    let unknown = format!(
        "/api/management/v1/deployments/deployments/{}",
        Uuid::new_v4()
    );
    let (status, body) = server.get(&unknown, Some(&user)).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "Resource not found");
    let (status, _) = server
        .get(&format!("{unknown}/statistics"), Some(&user))
        .await;
    assert_eq!(status, 404);
}

on_both_backends!(
    liveness_and_health_answer_204,
    metrics_count_requests_and_show_lag,
    a_deployment_is_read_from_its_projection,
    bad_and_unknown_ids_are_400_and_404
);

/// With the database gone, health says which dependency failed, and /metrics still answers
/// (its request metrics included) with the dependencies shown down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_naming_the_dependency_that_failed() {
    let server = TestServer::start(true).await;
    let url = server.postgres_url.clone().unwrap();
    let (admin, database) = url.rsplit_once('/').unwrap();
    let mut connection =
        <sqlx::PgConnection as sqlx::Connection>::connect(&format!("{admin}/postgres"))
            .await
            .unwrap();
    sqlx::raw_sql(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .execute(&mut connection)
        .await
        .unwrap();
    let (status, body) = server
        .get("/api/internal/v1/deployments/health", None)
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("event log unavailable"),
        "{body}"
    );
    let response = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for down in ["deployments_event_log_up 0", "deployments_read_models_up 0"] {
        assert!(text.contains(down), "{down} in\n{text}");
    }
    assert!(
        text.contains("deployments_http_requests_total{route=\"/api/internal/v1/deployments/health\",method=\"GET\",status=\"503\"}"),
        "{text}"
    );
}

/// What a new user does: run the binary with no configuration, mint a token with it, use it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_with_no_configuration_and_mints_working_tokens() {
    let workdir = tempfile::tempdir().unwrap();
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_deployments"));
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut child = tokio::process::Command::new(&binary)
        .current_dir(workdir.path())
        .env("DEPLOYMENTS_LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("DEPLOYMENTS_CONFIG")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut alive = false;
    for _ in 0..100 {
        if let Ok(response) =
            reqwest::get(format!("{base}/api/internal/v1/deployments/alive")).await
        {
            alive = response.status() == 204;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(alive, "the server did not answer /alive");
    assert!(workdir.path().join("data/events.db").exists());
    assert!(workdir.path().join("data/hs256.secret").exists());

    let minted = tokio::process::Command::new(&binary)
        .current_dir(workdir.path())
        .args(["token", "--user", "admin"])
        .output()
        .await
        .unwrap();
    assert!(minted.status.success());
    let token = String::from_utf8(minted.stdout).unwrap();
    let response = reqwest::Client::new()
        .get(format!(
            "{base}/api/management/v1/deployments/deployments/{}",
            Uuid::new_v4()
        ))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "a minted token must be accepted");
    let response = reqwest::Client::new()
        .get(format!(
            "{base}/api/management/v1/deployments/deployments/{}",
            Uuid::new_v4()
        ))
        .bearer_auth("forged.token.value")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    child.kill().await.unwrap();
}

/// mender-client's proxy sends `POST .../v2/.../next` with a chunked body that arrives after
/// the headers, and on the 404 tries v1 on the same connection: the 404 must leave the
/// connection usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_leaves_the_connection_usable_for_the_next_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(false).await;
    let token = server.token("device-1", "", TokenKind::Device);
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut connection = tokio::net::TcpStream::connect(&address).await.unwrap();
    let body = r#"{"artifact_name":"a","device_type":"t"}"#;
    connection
        .write_all(
            format!(
                "POST /api/devices/v2/deployments/device/deployments/next HTTP/1.1\r\n\
                 Host: {address}\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    connection
        .write_all(format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).as_bytes())
        .await
        .unwrap();
    connection
        .write_all(
            format!(
                "GET /api/devices/v1/deployments/device/deployments/next?artifact_name=a&device_type=t HTTP/1.1\r\n\
                 Host: {address}\r\nAuthorization: Bearer {token}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answers = String::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buffer = [0u8; 4096];
        while answers.matches("HTTP/1.1 ").count() < 2 {
            let n = connection.read(&mut buffer).await.unwrap();
            if n == 0 {
                break;
            }
            answers.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    })
    .await;
    assert!(read.is_ok(), "no second answer: {answers}");
    assert!(answers.starts_with("HTTP/1.1 404"), "{answers}");
    assert!(
        answers.contains("HTTP/1.1 204"),
        "the v1 request after the 404 got no answer: {answers}"
    );
}

//! Backups of the embedded store, taken while the server serves and takes writes: back up,
//! destroy, restore, rebuild, and the API answers as before.

use std::path::Path;
use std::process::Command;

use http_edge::auth::TokenKind;
use serde_json::{json, Value};

use crate::support::process::ServerProcess;
use crate::support::{files_under, rootfs_artifact};

const MANAGEMENT: &str = "/api/management/v1/deployments";
const DEVICE: &str = "/api/devices/v1/deployments/device/deployments";

/// Runs `deployments <arguments>` on `data`: whether it succeeded, and its stderr.
fn run(data: &Path, arguments: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_deployments"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DEPLOYMENTS_DATA_DIR", data)
        .env(
            "DEPLOYMENTS_AUTH__HS256_SECRET",
            crate::support::process::SECRET,
        )
        .args(arguments)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn get(server: &ServerProcess, path: &str) -> Value {
    let (status, body) = server.get(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn create(client: &reqwest::Client, server: &ServerProcess, name: &str) -> (u16, Value) {
    let response = client
        .post(server.url(&format!("{MANAGEMENT}/deployments")))
        .bearer_auth(server.admin())
        .json(&json!({"name": name, "artifact_name": "release-1", "devices": ["d1", "d2"]}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// What the management API answers about the store, for comparing before and after.
async fn answers(server: &ServerProcess, deployment: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    for path in [
        format!("{MANAGEMENT}/artifacts"),
        format!("{MANAGEMENT}/deployments?per_page=500"),
        format!("{MANAGEMENT}/deployments/{deployment}"),
        format!("{MANAGEMENT}/deployments/{deployment}/statistics"),
        format!("{MANAGEMENT}/deployments/{deployment}/devices"),
        "/api/management/v2/devauth/devices".to_string(),
    ] {
        seen.push(get(server, &path).await);
    }
    seen
}

/// The device's next deployment and the bytes of the artifact it is sent to.
async fn device_download(server: &ServerProcess, device: &str) -> Vec<u8> {
    let client = reqwest::Client::new();
    let next: Value = client
        .post(server.url(&format!("{DEVICE}/next")))
        .bearer_auth(server.token(device, TokenKind::Device))
        .json(&json!({"artifact_name": "factory", "device_type": "pi"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let link = next["artifact"]["source"]["uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = client.get(link).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

/// An artifact, a deployment to d1 and d2, and d1 through it: the deployment's id and the
/// artifact's bytes as d1 downloaded them.
async fn populate(server: &ServerProcess) -> (String, Vec<u8>) {
    let client = reqwest::Client::new();
    let files = tempfile::tempdir().unwrap();
    let release = rootfs_artifact(files.path(), "release-1", &["pi"], 64 * 1024);
    assert_eq!(server.upload(&release).await.0, 201);
    let (status, _) = create(&client, server, "first").await;
    assert_eq!(status, 201);
    let deployment = get(server, &format!("{MANAGEMENT}/deployments")).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let downloaded = device_download(server, "d1").await;
    let report = client
        .put(server.url(&format!("{DEVICE}/{deployment}/status")))
        .bearer_auth(server.token("d1", TokenKind::Device))
        .json(&json!({"status": "success"}))
        .send()
        .await
        .unwrap();
    assert_eq!(report.status(), 204);
    (deployment, downloaded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_what_the_api_answered() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    let mut server = ServerProcess::start(&data, &[]).await;
    let client = reqwest::Client::new();
    let (deployment, downloaded) = populate(&server).await;
    let before = answers(&server, &deployment).await;

    // Writers keep going while the backup runs: it must hold every deployment acknowledged
    // before it started, and may hold some of the later ones.
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let (client, writing) = (client.clone(), writing.clone());
        let (url, token) = (
            server.url(&format!("{MANAGEMENT}/deployments")),
            server.admin(),
        );
        tokio::spawn(async move {
            let mut acknowledged = 0;
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"name": format!("during-{acknowledged}"),
                        "artifact_name": "release-1", "devices": ["d3"]}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
                acknowledged += 1;
            }
            acknowledged
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let backup = parent.path().join("store.backup");
    let (ok, said) = tokio::task::spawn_blocking({
        let (data, backup) = (data.clone(), backup.clone());
        move || run(&data, &["backup", backup.to_str().unwrap()])
    })
    .await
    .unwrap();
    assert!(ok, "{said}");
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    let acknowledged = writer.await.unwrap();
    assert!(acknowledged > 0, "no write ran beside the backup");
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a backup holds secrets");
    assert!(said.contains("Backed up the log to position"), "{said}");

    // Destroy, restore, rebuild.
    server.kill();
    std::fs::remove_dir_all(&data).unwrap();
    let (ok, said) = run(&data, &["restore", backup.to_str().unwrap()]);
    assert!(ok, "{said}");
    // A second restore would overwrite a store: refused, naming the file in the way.
    let (ok, said) = run(&data, &["restore", backup.to_str().unwrap()]);
    assert!(!ok);
    assert!(said.contains("events.db exists"), "{said}");
    let (ok, said) = run(&data, &["rebuild"]);
    assert!(ok, "{said}");

    server.restart().await;
    let after = answers(&server, &deployment).await;
    let list_after = after[1].as_array().unwrap().len();
    assert!(
        (1..=1 + acknowledged).contains(&list_after),
        "{list_after} deployments after restoring, {acknowledged} written during the backup"
    );
    // The deployments created during the backup aside, every answer is as it was.
    for (index, (before, after)) in before.iter().zip(&after).enumerate() {
        if index == 1 {
            let first = after
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["id"] == deployment.as_str())
                .unwrap();
            assert_eq!(&before[0], first);
        } else {
            assert_eq!(before, after, "answer {index}");
        }
    }
    // The restored server still knows its link secret and its files.
    assert_eq!(device_download(&server, "d2").await, downloaded);
    let restored: Vec<_> = files_under(&data.join("artifacts"));
    assert!(!restored.is_empty());
    assert_eq!(
        std::fs::metadata(data.join("link.secret"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[test]
fn backup_and_restore_refuse_what_they_cannot_do() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    std::fs::create_dir_all(&data).unwrap();

    // Nothing to back up yet.
    let out = parent.path().join("nothing.backup");
    let (ok, said) = run(&data, &["backup", out.to_str().unwrap()]);
    assert!(!ok);
    assert!(said.contains("there is no event log"), "{said}");
    assert!(!out.exists());

    // A file that is not a backup: refused before anything is written.
    let bogus = parent.path().join("bogus.tar");
    std::fs::write(&bogus, b"not a tar file at all").unwrap();
    let (ok, said) = run(&data, &["restore", bogus.to_str().unwrap()]);
    assert!(!ok);
    assert!(said.contains("is not a backup"), "{said}");
    assert!(std::fs::read_dir(&data).unwrap().next().is_none());

    // A store on PostgreSQL is backed up with pg_dump.
    let output = Command::new(env!("CARGO_BIN_EXE_deployments"))
        .env_clear()
        .env("DEPLOYMENTS_DATA_DIR", &data)
        .env(
            "DEPLOYMENTS_EVENT_LOG_URL",
            "postgres://postgres@127.0.0.1:5432/none",
        )
        .args(["backup", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("pg_dump"));
}

/// The README's recipe for PostgreSQL: pg_dump while serving, destroy the database, restore
/// it with pg_restore, rebuild, and the API answers as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgresql_recipe_restores_what_the_api_answered() {
    use sqlx::Connection;
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    let url = event_log::conformance::fresh_postgres_url().await;
    let on_postgres = [
        ("DEPLOYMENTS_EVENT_LOG_URL", url.as_str()),
        ("DEPLOYMENTS_READ_MODELS_URL", url.as_str()),
    ];
    let mut server = ServerProcess::start(&data, &on_postgres).await;
    let (deployment, downloaded) = populate(&server).await;
    let before = answers(&server, &deployment).await;

    let dump = parent.path().join("deployments.dump");
    let tool = |program: &str, arguments: &[&str]| {
        let output = Command::new(program).args(arguments).output().unwrap();
        assert!(
            output.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    tool(
        "pg_dump",
        &["--format=custom", "--file", dump.to_str().unwrap(), &url],
    );
    server.kill();
    let (admin, name) = url.rsplit_once('/').unwrap();
    let mut connection = sqlx::PgConnection::connect(&format!("{admin}/postgres"))
        .await
        .unwrap();
    for statement in [
        format!("DROP DATABASE {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::raw_sql(&statement)
            .execute(&mut connection)
            .await
            .unwrap();
    }
    tool(
        "pg_restore",
        &["--no-owner", "--dbname", &url, dump.to_str().unwrap()],
    );
    let output = Command::new(env!("CARGO_BIN_EXE_deployments"))
        .env_clear()
        .env("DEPLOYMENTS_DATA_DIR", &data)
        .envs(on_postgres)
        .arg("rebuild")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    server.restart().await;
    assert_eq!(answers(&server, &deployment).await, before);
    assert_eq!(device_download(&server, "d2").await, downloaded);
}

//! What the server's API tests share: a server on a fresh backend, tokens, and requests.
#![allow(dead_code)]

pub mod browser;
pub mod process;

/// Makes each case a test on the embedded backends (SQLite, local files) and one on
/// PostgreSQL with S3. A case takes the started server, or with `@with (f)` whatever the async
/// function `f` makes of it.
#[macro_export]
macro_rules! on_both_backends {
    (@with ($wrap:expr); $($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let server = super::TestServer::start(false).await;
                    super::$case(($wrap)(server).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let server = super::TestServer::start(true).await;
                    super::$case(($wrap)(server).await).await;
                }
            )*
        }
    };
    ($($case:ident),* $(,)?) => {
        on_both_backends!(@with (std::future::ready); $($case),*);
    };
}

/// Makes each case, an async function of `postgres: bool` that starts its own server (with
/// settings of its own), a test on the embedded backends and one on PostgreSQL with S3.
#[macro_export]
macro_rules! configured_on_both_backends {
    ($($case:ident),*) => {
        mod configured {
            $(
                mod $case {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn sqlite() {
                        super::super::$case(false).await;
                    }
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn postgres() {
                        super::super::$case(true).await;
                    }
                }
            )*
        }
    };
}

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use deployments::settings::ServerSettings;
use deployments::Server;
use event_log::EventLog;
use events::{Position, TenantId};
use http_edge::auth::{AuthSettings, Issuer, TokenKind};
use serde_json::Value;

pub struct TestServer {
    pub base: String,
    pub settings: ServerSettings,
    pub issuer: Issuer,
    pub postgres_url: Option<String>,
    pub client: reqwest::Client,
}

impl TestServer {
    pub async fn start(postgres: bool) -> Self {
        Self::start_with(postgres, |_| {}).await
    }

    /// A server on empty storage: embedded SQLite, or a fresh PostgreSQL database.
    pub async fn start_with(postgres: bool, customize: impl FnOnce(&mut ServerSettings)) -> Self {
        let data_dir = tempfile::tempdir().unwrap().keep();
        let postgres_url = if postgres {
            Some(event_log::conformance::fresh_postgres_url().await)
        } else {
            None
        };
        let mut settings = ServerSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            event_log_url: postgres_url.clone(),
            read_models_url: postgres_url.clone(),
            auth: AuthSettings {
                hs256_secret: Some("api test secret".into()),
                ..AuthSettings::default()
            },
            ..ServerSettings::default()
        };
        if postgres {
            // The production set: PostgreSQL for the log and read models, S3 for files.
            settings.storage.backend = blob_store::StorageBackend::S3;
            settings.storage.s3 = s3_settings();
        }
        customize(&mut settings);
        let server = Server::build(settings.clone()).await.unwrap();
        let base = format!("http://127.0.0.1:{}", server.port());
        tokio::spawn(server.run_until(std::future::pending()));
        let issuer = Issuer::from_settings(&settings.auth).unwrap();
        Self {
            base,
            settings,
            issuer,
            postgres_url,
            client: reqwest::Client::new(),
        }
    }

    pub fn token(&self, subject: &str, tenant: &str, kind: TokenKind) -> String {
        self.issuer.issue(&Issuer::claims(
            subject,
            &TenantId::new(tenant),
            kind,
            chrono::Duration::hours(1),
        ))
    }

    /// Uploads a small rootfs-image artifact named `name` for device type `pi`: 201.
    pub async fn upload_rootfs(&self, name: &str) {
        let dir = tempfile::tempdir().unwrap();
        let file = rootfs_artifact(dir.path(), name, &["pi"], 4096);
        let form = reqwest::multipart::Form::new().part(
            "artifact",
            reqwest::multipart::Part::bytes(std::fs::read(file).unwrap())
                .file_name("artifact.mender"),
        );
        let response = self
            .client
            .post(self.url("/api/management/v1/deployments/artifacts"))
            .bearer_auth(self.admin())
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }

    /// A user token of the default tenant.
    pub fn admin(&self) -> String {
        self.token("admin", "", TokenKind::User)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The server's event log, opened beside it.
    pub async fn log(&self) -> std::sync::Arc<dyn EventLog> {
        event_log::open_log(&self.settings.event_log_url(), 2)
            .await
            .unwrap()
    }

    pub async fn head(&self) -> Position {
        self.log().await.head().await.unwrap()
    }

    /// Rebuilds the read models from the log beside the running server, as `deployments
    /// rebuild` does, and waits until the server serves the new generation.
    pub async fn rebuild(&self) {
        let read_models =
            query_service::read_models::ReadModels::connect(&self.settings.read_models_url(), 2)
                .await
                .unwrap();
        let rebuilt = query_service::rebuild::rebuild(
            &read_models,
            self.log().await,
            self.settings.projector.clone(),
            |_, _| {},
        )
        .await
        .unwrap();
        let switched = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            loop {
                let (_, detail) = self
                    .get("/api/internal/v1/deployments/health/detail", None)
                    .await;
                if detail["read_model_generation"] == rebuilt.generation {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(
            switched.is_ok(),
            "the server did not move to generation {}",
            rebuilt.generation
        );
    }

    /// Files in the artifact store: the local directory, or the S3 server's folder of this
    /// server's bucket.
    pub fn stored_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, found);
                } else {
                    found.push(path);
                }
            }
        }
        let mut found = Vec::new();
        let root = match self.settings.storage.backend {
            blob_store::StorageBackend::Local => self.settings.data_dir.join("artifacts"),
            blob_store::StorageBackend::S3 => {
                PathBuf::from(env("TEST_S3_ROOT")).join(&self.settings.storage.s3.bucket)
            }
        };
        walk(&root, &mut found);
        found
    }
}

/// The body of `path`, read as the administrator, once it answers 200 and `ready` holds:
/// the read models may trail what changed them (a device's report is no management command
/// that waits for them).
pub async fn eventually(server: &TestServer, path: &str, ready: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let (status, body) = server.get(path, Some(&server.admin())).await;
        if status == 200 && ready(&body) {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{path} never showed what was expected");
}

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start the S3 test server with eval \"$(scripts/s3-test-server)\" (./scripts/test does)")
    })
}

/// A bucket of its own on the S3 test server.
pub fn s3_settings() -> blob_store::s3::S3Settings {
    blob_store::s3::S3Settings {
        bucket: format!("test-{}", uuid::Uuid::new_v4().simple()),
        endpoint: Some(env("TEST_S3_ENDPOINT")),
        access_key_id: Some(env("TEST_S3_ACCESS_KEY")),
        secret_access_key: Some(env("TEST_S3_SECRET_KEY").into()),
        force_path_style: true,
        create_bucket: true,
        ..Default::default()
    }
}

/// An upload's multipart body: the artifact file as the `artifact` part.
pub fn artifact_form(file: &Path) -> reqwest::multipart::Form {
    let bytes = std::fs::read(file).unwrap();
    reqwest::multipart::Form::new().part(
        "artifact",
        reqwest::multipart::Part::bytes(bytes).file_name("artifact.mender"),
    )
}

/// Files under a directory, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
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

/// Runs `program` in `dir`; a failure fails the test with what the program said.
pub fn run_tool(program: &str, dir: &Path, arguments: &[&str]) {
    let output = Command::new(program)
        .current_dir(dir)
        .args(arguments)
        .output()
        .unwrap_or_else(|error| panic!("{program} does not run ({error}): is it installed?"));
    assert!(
        output.status.success(),
        "{program} {arguments:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `mender-artifact` (Debian's package, installed by the test script) in `dir`.
pub fn mender_artifact(dir: &Path, arguments: &[&str]) {
    run_tool("mender-artifact", dir, arguments);
}

/// Writes a rootfs-image artifact of `payload_bytes` random bytes; returns its path.
pub fn rootfs_artifact(
    dir: &Path,
    name: &str,
    device_types: &[&str],
    payload_bytes: usize,
) -> PathBuf {
    let payload = dir.join(format!("{name}.ext4"));
    // Pseudo-random, so compression cannot shrink the artifact below the payload's size.
    let mut state = 0x2545_f491_4f6c_dd1d_u64 ^ name.len() as u64;
    let bytes: Vec<u8> = (0..payload_bytes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    std::fs::write(&payload, bytes).unwrap();
    let output = dir.join(format!("{name}.mender"));
    let mut arguments = vec!["write", "rootfs-image", "-n", name, "-f"];
    let payload_arg = payload.to_string_lossy().to_string();
    let output_arg = output.to_string_lossy().to_string();
    arguments.push(&payload_arg);
    for device_type in device_types {
        arguments.push("-t");
        arguments.push(device_type);
    }
    arguments.push("-o");
    arguments.push(&output_arg);
    mender_artifact(dir, &arguments);
    output
}

/// A proptest runner with a seeded generator, so that a run is the same every time and a
/// failure, shrunk to the shortest case that still fails, can be run again.
pub fn seeded_runner(cases: u32) -> proptest::test_runner::TestRunner {
    let config = proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..Default::default()
    };
    proptest::test_runner::TestRunner::new_with_rng(
        config,
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    )
}

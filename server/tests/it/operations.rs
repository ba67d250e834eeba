//! What an operator touches: the settings (a key nothing reads is refused, naming it and its
//! source), the logs (plain text in a file, one line per request, JSON when asked) and the
//! modes of what the server keeps in its data directory.

use std::process::Command;

use serde_json::Value;

use crate::support::process::ServerProcess;
use crate::support::{files_under, rootfs_artifact};

const MANAGEMENT: &str = "/api/management/v1/deployments";

/// `deployments token --user admin` (which reads the settings, then prints a token) with
/// these variables and arguments: whether it succeeded, and what it said on stderr.
fn read_settings(environment: &[(&str, &str)], arguments: &[&str]) -> (bool, String) {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_deployments"))
        .env_clear()
        .env("DEPLOYMENTS_DATA_DIR", data.path())
        .envs(environment.iter().copied())
        .args(arguments)
        .args(["token", "--user", "admin"])
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_setting_nothing_reads_stops_the_server_naming_it_and_where_it_was_set() {
    let (ok, said) = read_settings(&[], &[]);
    assert!(ok, "{said}");
    // Variables that are not settings pass.
    let (ok, said) = read_settings(&[("DEPLOYMENTS_LOG_FORMAT", "json")], &[]);
    assert!(ok, "{said}");

    let (ok, said) = read_settings(&[("DEPLOYMENTS_READ_WAIT_MSS", "10")], &[]);
    assert!(!ok);
    assert!(
        said.contains("`read_wait_mss`") && said.contains("DEPLOYMENTS_READ_WAIT_MSS"),
        "{said}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deployments.toml");
    let file_name = file.display().to_string();
    // The standalone table mixes the login's keys with the admission's (serde flattens them):
    // a typo there is caught too.
    for (text, key) in [
        ("[storage.s3]\nbukcet = \"b\"\n", "storage.s3.bukcet"),
        (
            "[standalone]\nadmin_pasword = \"x\"\n",
            "standalone.admin_pasword",
        ),
        (
            "[standalone]\nauto_acept = false\n",
            "standalone.auto_acept",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let (ok, said) = read_settings(&[], &["--config", &file_name]);
        assert!(!ok, "{text} was accepted");
        assert!(
            said.contains(&format!("`{key}`")) && said.contains(&file_name),
            "{text}: {said}"
        );
    }
    // Every key of the table, the login's and the admission's, is known.
    std::fs::write(
        &file,
        "read_wait_ms = 100\n[standalone]\nadmin_password = \"x\"\nauto_accept = false\n\
         device_token_hours = 2\nlogin_failures_per_minute = 3\n[storage.s3]\nbucket = \"b\"\n",
    )
    .unwrap();
    let (ok, said) = read_settings(&[], &["--config", &file_name]);
    assert!(ok, "{said}");
}

/// Logs written to a file carry no terminal colour codes, and each request ends with one line
/// naming its request id, route pattern, tenant, status and latency; as JSON lines when asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_logged_once_in_plain_text_or_json() {
    for format in ["text", "json"] {
        let data = tempfile::tempdir().unwrap();
        let server = ServerProcess::start(data.path(), &[("DEPLOYMENTS_LOG_FORMAT", format)]).await;
        let id = format!("log-test-{format}");
        let response = reqwest::Client::new()
            .get(server.url(&format!(
                "{MANAGEMENT}/deployments/{}",
                uuid::Uuid::new_v4()
            )))
            .bearer_auth(server.admin())
            .header("X-MEN-RequestID", &id)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        let log = server.log_text();
        assert!(
            !log.contains('\u{1b}'),
            "colour codes in a log file:\n{log}"
        );
        let lines: Vec<&str> = log.lines().filter(|line| line.contains(&id)).collect();
        let finished: Vec<&&str> = lines
            .iter()
            .filter(|line| line.contains("request finished"))
            .collect();
        assert_eq!(finished.len(), 1, "{format}: one line per request:\n{log}");
        let line = finished[0];
        let route = "/api/management/v1/deployments/deployments/{id}";
        if format == "json" {
            for line in log.lines().filter(|line| !line.trim().is_empty()) {
                serde_json::from_str::<Value>(line)
                    .unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"));
            }
            let entry: Value = serde_json::from_str(line).unwrap();
            assert_eq!(entry["fields"]["status"], 404, "{entry}");
            assert!(entry["fields"]["latency_ms"].is_number(), "{entry}");
            assert_eq!(entry["span"]["request_id"], id.as_str(), "{entry}");
            assert_eq!(entry["span"]["route"], route, "{entry}");
            assert_eq!(entry["span"]["method"], "GET", "{entry}");
            assert_eq!(entry["span"]["subject"], "admin", "{entry}");
            assert!(entry["span"]["tenant"].is_string(), "{entry}");
        } else {
            for field in [
                format!("route={route}"),
                "status=404".to_owned(),
                "method=GET".to_owned(),
                "subject=\"admin\"".to_owned(),
                "latency_ms=".to_owned(),
            ] {
                assert!(line.contains(&field), "{field} missing from: {line}");
            }
        }
    }
}

/// What the server keeps in its data directory is not readable by everyone: secrets 0600,
/// databases 0640 (also ones an earlier start left wider), folders 0750.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_keeps_secrets_and_databases_private() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    let mode = |name: &str| {
        std::fs::metadata(data.join(name))
            .unwrap_or_else(|error| panic!("{name}: {error}"))
            .permissions()
            .mode()
            & 0o777
    };
    let mut server = ServerProcess::start(&data, &[]).await;
    let files = tempfile::tempdir().unwrap();
    let release = rootfs_artifact(files.path(), "release-1", &["pi"], 16 * 1024);
    assert_eq!(server.upload(&release).await.0, 201);
    assert_eq!(mode("link.secret"), 0o600);
    assert_eq!(mode("admin.password"), 0o600);
    for database in ["events.db", "read-models.db"] {
        assert_eq!(mode(database), 0o640, "{database}");
    }
    assert_eq!(mode("artifacts"), 0o750);
    for file in files_under(&data.join("artifacts")) {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o007, 0, "{} is readable by others", file.display());
    }
    // Widened by hand (or by an earlier release): narrowed again at the next start.
    server.kill();
    std::fs::set_permissions(
        data.join("events.db"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    server.restart().await;
    assert_eq!(mode("events.db"), 0o640);
}

/// S3 credentials from the standard AWS chain, as a cloud deployment provides them: the
/// environment, or a shared profile, with no keys in the settings; wrong ones stop the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_credentials_come_from_the_standard_chain() {
    use crate::support::env;
    let parent = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let release = rootfs_artifact(files.path(), "release-1", &["pi"], 16 * 1024);
    let endpoint = env("TEST_S3_ENDPOINT");
    let (key, secret) = (env("TEST_S3_ACCESS_KEY"), env("TEST_S3_SECRET_KEY"));
    let profile = parent.path().join("aws-credentials");
    std::fs::write(
        &profile,
        format!("[uploader]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    let nowhere = parent.path().join("no-config");
    let profile = profile.to_str().unwrap();
    let nowhere = nowhere.to_str().unwrap();
    let cases: [(&str, Vec<(&str, &str)>); 2] = [
        (
            "environment",
            vec![
                ("AWS_ACCESS_KEY_ID", &key),
                ("AWS_SECRET_ACCESS_KEY", &secret),
            ],
        ),
        (
            "profile",
            vec![
                ("AWS_SHARED_CREDENTIALS_FILE", profile),
                ("AWS_CONFIG_FILE", nowhere),
                ("AWS_PROFILE", "uploader"),
            ],
        ),
    ];
    for (source, credentials) in cases {
        let bucket = format!("chain-{source}-{}", uuid::Uuid::new_v4().simple());
        let mut environment = vec![
            ("DEPLOYMENTS_STORAGE__BACKEND", "s3"),
            ("DEPLOYMENTS_STORAGE__S3__ENDPOINT", endpoint.as_str()),
            ("DEPLOYMENTS_STORAGE__S3__BUCKET", bucket.as_str()),
            ("DEPLOYMENTS_STORAGE__S3__FORCE_PATH_STYLE", "true"),
            ("DEPLOYMENTS_STORAGE__S3__CREATE_BUCKET", "true"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ];
        environment.extend(credentials);
        let data = parent.path().join(source);
        let mut server = ServerProcess::start(&data, &environment).await;
        assert_eq!(server.upload(&release).await.0, 201, "{source}");
        let stored = files_under(&std::path::Path::new(&env("TEST_S3_ROOT")).join(&bucket));
        assert!(!stored.is_empty(), "{source}: nothing in the bucket");
        server.kill();
    }

    // A wrong secret from the environment: the bucket check at start is refused.
    let output = Command::new(env!("CARGO_BIN_EXE_deployments"))
        .env_clear()
        .env("DEPLOYMENTS_DATA_DIR", parent.path().join("wrong"))
        .env("DEPLOYMENTS_LISTEN", "127.0.0.1:0")
        .env("DEPLOYMENTS_STORAGE__BACKEND", "s3")
        .env("DEPLOYMENTS_STORAGE__S3__ENDPOINT", &endpoint)
        .env("DEPLOYMENTS_STORAGE__S3__FORCE_PATH_STYLE", "true")
        .env("DEPLOYMENTS_STORAGE__S3__CREATE_BUCKET", "true")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", &key)
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("opening artifact storage"), "{said}");
}

//! PostgreSQL over TLS: a cluster that accepts TCP connections only with TLS (`hostssl`), its
//! certificate issued by a throwaway CA for 127.0.0.1 (scripts/pg-tls-test-server). The
//! server connects with `sslmode` and `sslrootcert` from its database URL, as libpq does.

use deployments::settings::ServerSettings;
use deployments::Server;

use crate::support::TestServer;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start the TLS-only PostgreSQL with eval \"$(scripts/pg-tls-test-server)\" (./scripts/test does)")
    })
}

/// A fresh database on the TLS-only cluster, and its URL with `host` and no sslmode.
async fn fresh_database(host: &str) -> String {
    use sqlx::Connection;
    let admin = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        env("TEST_PG_TLS_URL"),
        env("TEST_PG_TLS_CA")
    );
    let mut connection = sqlx::PgConnection::connect(&admin).await.unwrap();
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut connection)
        .await
        .unwrap();
    let base = env("TEST_PG_TLS_URL");
    let (base, _) = base.rsplit_once('/').unwrap();
    format!("{base}/{name}").replace("@127.0.0.1:", &format!("@{host}:"))
}

fn on(url: &str, settings: &mut ServerSettings) {
    settings.event_log_url = Some(url.to_string());
    settings.read_models_url = Some(url.to_string());
}

/// Builds a server on `url` and returns why it could not start.
async fn refused(url: &str) -> String {
    let mut settings = ServerSettings {
        listen: ([127, 0, 0, 1], 0).into(),
        data_dir: tempfile::tempdir().unwrap().keep(),
        ..ServerSettings::default()
    };
    settings.auth.hs256_secret = Some("tls test secret".into());
    on(url, &mut settings);
    let error = tokio::time::timeout(std::time::Duration::from_secs(60), Server::build(settings))
        .await
        .expect("a refused connection is reported, not retried forever")
        .err()
        .unwrap_or_else(|| panic!("the server started on {url}"));
    format!("{error:#}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_runs_on_a_postgresql_that_requires_tls() {
    let url = fresh_database("127.0.0.1").await;
    let ca = env("TEST_PG_TLS_CA");
    let verified = format!("{url}?sslmode=verify-full&sslrootcert={ca}");
    let server = TestServer::start_with(false, |settings| on(&verified, settings)).await;

    // A write and the read of it, through the log and the read models on the TLS cluster.
    server.upload_rootfs("over-tls").await;
    let (status, artifacts) = server
        .get(
            "/api/management/v1/deployments/artifacts",
            Some(&server.admin()),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(artifacts[0]["name"], "over-tls");

    // The sessions the server holds are encrypted: the cluster refuses any other kind, and
    // says so for each session it has.
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(&verified).await.unwrap();
    let plain: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
         WHERE datname = current_database() AND NOT ssl",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    let encrypted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
         WHERE datname = current_database() AND ssl",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    assert_eq!(plain, 0);
    assert!(encrypted > 1, "{encrypted} TLS sessions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sslmode_checks_what_it_promises() {
    let ca = env("TEST_PG_TLS_CA");
    let by_address = fresh_database("127.0.0.1").await;
    let by_name = fresh_database("localhost").await;

    // Without TLS, the cluster's hostssl-only rule refuses the connection.
    let error = refused(&format!("{by_address}?sslmode=disable")).await;
    assert!(error.contains("no encryption"), "{error}");

    // verify-full without the CA: the certificate's issuer is unknown to the system's roots.
    let error = refused(&format!("{by_address}?sslmode=verify-full")).await;
    assert!(error.to_lowercase().contains("certificate"), "{error}");

    // verify-full checks the name: the certificate is for 127.0.0.1, not localhost.
    let error = refused(&format!("{by_name}?sslmode=verify-full&sslrootcert={ca}")).await;
    assert!(error.to_lowercase().contains("certificate"), "{error}");

    // verify-ca checks the issuer too (sqlx 0.8 also checks the name in this mode: see the
    // README); require encrypts without checking.
    let error = refused(&format!("{by_address}?sslmode=verify-ca")).await;
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    for url in [
        format!("{by_address}?sslmode=verify-ca&sslrootcert={ca}"),
        format!("{by_name}?sslmode=require"),
    ] {
        let server = TestServer::start_with(false, |settings| on(&url, settings)).await;
        let (status, _) = server
            .get(
                "/api/management/v1/deployments/deployments",
                Some(&server.admin()),
            )
            .await;
        assert_eq!(status, 200, "{url}");
    }

    // A root certificate file that does not exist stops the start.
    let error = refused(&format!(
        "{by_address}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"
    ))
    .await;
    assert!(error.contains("No such file"), "{error}");
}

// HTTPS listening: the certificate and key files, reloaded when they change or on SIGHUP.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::support::process::free_port;

fn openssl(dir: &Path, arguments: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(arguments)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openssl {arguments:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A key and a certificate for localhost and 127.0.0.1 named `common_name`, issued by the
/// CA in `dir` (made on first use), written to `dir/<stem>.crt` and `dir/<stem>.key`.
fn issue(dir: &Path, stem: &str, common_name: &str) {
    if !dir.join("ca.pem").exists() {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        );
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
    }
    let subject = format!("/CN={common_name}");
    let (key, csr, crt) = (
        format!("{stem}.key"),
        format!("{stem}.csr"),
        format!("{stem}.crt"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &subject,
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            &crt,
        ],
    );
}

/// `deployments` serving HTTPS with `dir/server.crt` and `dir/server.key` (its log in
/// `dir/server.log`).
fn start_https(dir: &Path, port: u16, extra: &[(&str, &str)]) -> Child {
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_deployments"))
        .env_clear()
        .env("RUST_LOG", "info")
        .env("DEPLOYMENTS_DATA_DIR", dir.join("data"))
        .env("DEPLOYMENTS_LISTEN", format!("127.0.0.1:{port}"))
        .env("DEPLOYMENTS_AUTH__HS256_SECRET", "https test secret")
        .env("DEPLOYMENTS_HTTP__TLS_CERTIFICATE", dir.join("server.crt"))
        .env("DEPLOYMENTS_HTTP__TLS_KEY", dir.join("server.key"))
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// The status curl gets for `url`, trusting only the test CA ("000" when it cannot connect).
fn curl_status(dir: &Path, url: &str) -> String {
    let output = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(dir.join("ca.pem"))
        .arg(url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The common name of the certificate served on `port` now.
fn served_name(port: u16) -> String {
    let shown = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername localhost </dev/null \
             2>/dev/null | openssl x509 -noout -subject"
        ))
        .output()
        .unwrap();
    let subject = String::from_utf8_lossy(&shown.stdout).into_owned();
    subject
        .rsplit("CN")
        .next()
        .unwrap_or_default()
        .trim_start_matches([' ', '='])
        .trim()
        .to_owned()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `deployments` serving HTTPS with a certificate named `common_name`, once it answers;
/// its port and the URL of its liveness route.
fn serving_https(dir: &Path, common_name: &str) -> (Child, u16, String) {
    issue(dir, "server", common_name);
    let port = free_port();
    let server = start_https(dir, port, &[]);
    let alive = format!("https://localhost:{port}/api/internal/v1/deployments/alive");
    wait_for("the server answers over HTTPS", || {
        curl_status(dir, &alive) == "204"
    });
    (server, port, alive)
}

#[test]
fn https_is_served_and_a_renewed_certificate_is_picked_up_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (mut server, port, alive) = serving_https(dir, "first");
    assert_eq!(served_name(port), "first");
    // Plain HTTP on the same port gets no HTTP answer.
    assert_ne!(
        curl_status(
            dir,
            &format!("http://127.0.0.1:{port}/api/internal/v1/deployments/alive")
        ),
        "204"
    );

    // Renewed in place (key first, then certificate, as a renewal tool may write them): the
    // next handshake serves the new pair; the half-written moment in between is skipped.
    issue(dir, "renewed", "second");
    std::fs::copy(dir.join("renewed.key"), dir.join("server.key")).unwrap();
    std::fs::copy(dir.join("renewed.crt"), dir.join("server.crt")).unwrap();
    wait_for("the renewed certificate is served", || {
        served_name(port) == "second"
    });
    assert_eq!(curl_status(dir, &alive), "204");

    // A broken key and SIGHUP: logged, and the last good pair stays.
    std::fs::write(dir.join("server.key"), "not a key").unwrap();
    let pid = server.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_for("the failed reload is logged", || {
        std::fs::read_to_string(dir.join("server.log"))
            .unwrap()
            .contains("keeping the TLS certificate served until now")
    });
    assert_eq!(served_name(port), "second");
    assert_eq!(curl_status(dir, &alive), "204");
    // SIGHUP reloads; it does not stop the server.
    issue(dir, "third", "third");
    std::fs::copy(dir.join("third.key"), dir.join("server.key")).unwrap();
    std::fs::copy(dir.join("third.crt"), dir.join("server.crt")).unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_for("the third certificate is served", || {
        served_name(port) == "third"
    });
    assert!(server.try_wait().unwrap().is_none());
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn a_tls_setting_that_cannot_work_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    issue(dir, "server", "first");
    issue(dir, "other", "other");
    let refused = |extra: &[(&str, &str)]| {
        let mut server = start_https(dir, free_port(), extra);
        let status = server.wait().unwrap();
        assert!(!status.success());
        std::fs::read_to_string(dir.join("server.log")).unwrap()
    };
    let other_key = dir.join("other.key");
    let said = refused(&[("DEPLOYMENTS_HTTP__TLS_KEY", other_key.to_str().unwrap())]);
    assert!(
        said.contains("does not belong to the certificate"),
        "{said}"
    );
    let said = refused(&[(
        "DEPLOYMENTS_HTTP__TLS_CERTIFICATE",
        "/nonexistent/server.crt",
    )]);
    assert!(said.contains("/nonexistent/server.crt"), "{said}");
    // Listening on every address over TLS, links still need a public URL.
    let said = refused(&[("DEPLOYMENTS_LISTEN", "0.0.0.0:0")]);
    assert!(said.contains("set storage.public_url"), "{said}");
    // A certificate without its key: refused (the environment cannot unset what the helper
    // sets, so the key is set empty through a file setting instead).
    std::fs::write(
        dir.join("half.toml"),
        format!(
            "[http]\ntls_certificate = \"{}\"\n",
            dir.join("server.crt").display()
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_deployments"))
        .env_clear()
        .env("DEPLOYMENTS_DATA_DIR", dir.join("data"))
        .env("DEPLOYMENTS_LISTEN", "127.0.0.1:0")
        .args(["--config", dir.join("half.toml").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("set both or neither"), "{said}");
}

/// The response headers curl gets for `url`, trusting only the test CA.
fn curl_headers(dir: &Path, url: &str) -> String {
    let output = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-D", "-", "--cacert"])
        .arg(dir.join("ca.pem"))
        .arg(url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_console_marks_its_cookies_secure_when_it_serves_https_itself() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (mut server, port, _) = serving_https(dir, "console");
    // No proxy in front says X-Forwarded-Proto: the connection itself is TLS.
    let headers = curl_headers(dir, &format!("https://localhost:{port}/ui/sign-in"));
    let cookie = headers
        .lines()
        .find(|line| {
            line.to_ascii_lowercase()
                .starts_with("set-cookie: deployments_sign_in=")
        })
        .unwrap_or_else(|| panic!("no sign-in cookie: {headers}"));
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    server.kill().unwrap();
    server.wait().unwrap();
}

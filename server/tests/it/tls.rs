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

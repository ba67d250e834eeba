//! Replaying the audit feed over HTTP, next to PostgreSQL copying the same events table out in
//! the same run.
//!
//!   cargo run --release -p bench --bin feed -- [events]

use std::net::SocketAddr;
use std::time::Instant;

use bench::{fill, row, seconds};
use deployments::settings::ServerSettings;
use deployments::Server;
use events::TenantId;
use http_edge::auth::{AuthSettings, Issuer, TokenKind};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args().nth(1).map_or(Ok(100_000), |n| n.parse())?;
    let url = event_log::conformance::fresh_postgres_url().await;
    let log = event_log::open_log(&url, 10).await?;
    fill(&log, count).await?;

    // The limit: PostgreSQL's own COPY of the same rows, through psql.
    let start = Instant::now();
    let copied = tokio::process::Command::new("psql")
        .args([
            url.as_str(),
            "-qc",
            "\\copy (SELECT * FROM events ORDER BY position) TO '/dev/null'",
        ])
        .status()
        .await?;
    anyhow::ensure!(copied.success(), "psql \\copy failed");
    let copy = seconds(start);

    let data_dir =
        std::env::temp_dir().join(format!("bench-feed-{}", uuid::Uuid::new_v4().simple()));
    let settings = ServerSettings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: data_dir.clone(),
        event_log_url: Some(url.clone()),
        read_models_url: Some(url.clone()),
        auth: AuthSettings {
            hs256_secret: Some("bench".into()),
            ..AuthSettings::default()
        },
        ..ServerSettings::default()
    };
    let server = Server::build(settings.clone()).await?;
    let base = format!("http://127.0.0.1:{}", server.port());
    tokio::spawn(server.run_until(std::future::pending()));
    let token = Issuer::from_settings(&settings.auth)?.issue(&Issuer::claims(
        "auditor",
        &TenantId::default(),
        TokenKind::User,
        chrono::Duration::hours(1),
    ));
    let client = reqwest::Client::new();
    let start = Instant::now();
    let mut after = "0".to_owned();
    let mut read = 0usize;
    loop {
        let page: serde_json::Value = client
            .get(format!(
                "{base}/api/management/v1/deployments/events?after={after}&limit=1000"
            ))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        let events = page["events"].as_array().map_or(0, Vec::len);
        if events == 0 {
            break;
        }
        read += events;
        after = page["next"].as_str().unwrap_or_default().to_owned();
    }
    let ours = seconds(start);
    anyhow::ensure!(read == count, "read {read} of {count} events");
    let _ = std::fs::remove_dir_all(data_dir);

    let rate = |s: f64| count as f64 / s;
    println!(
        "{}",
        row(
            &format!("audit feed replay over HTTP, {count} events"),
            format!("{:.0} events/s", rate(ours)),
            format!(
                "psql \\copy of the events table: {:.0} events/s",
                rate(copy)
            ),
            rate(ours) / rate(copy),
            "target ≥ 50k events/s"
        )
    );
    Ok(())
}

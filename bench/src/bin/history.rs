//! Status reports from a device with a long history next to reports from a fresh device: the
//! cost of a report must not grow with the device's past deployments. One device has 1,000
//! finished deployments in its stream (recorded straight into the log), the other none; both
//! are in one current deployment and report alternately `downloading` and `installing`, one
//! report at a time, each a real append. The limit is the fresh device's rate in the same run;
//! the target is at least 0.9x of it.
//!
//!   cargo run --release -p bench --bin history -- [past deployments] [reports per device]
//!   BACKEND=postgres ...      (default sqlite)

use std::time::{Duration, Instant};

use bench::{deployment_created, single};
use deployments::Server;
use events::deployment::{DeviceDeploymentStatus, DeviceDeploymentStatusChanged};
use events::{DeploymentId, DomainEvent, TenantId};
use http_edge::auth::{Issuer, TokenKind};

fn reported(deployment: DeploymentId, device: &str, status: DeviceDeploymentStatus) -> DomainEvent {
    DomainEvent::DeviceDeploymentStatusChanged(DeviceDeploymentStatusChanged {
        deployment_id: deployment,
        device_id: device.to_owned(),
        status,
        substate: None,
    })
}

/// Reports per second of one device, one at a time, and the p99 in milliseconds.
async fn reports(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    deployment: DeploymentId,
    count: usize,
) -> anyhow::Result<(f64, f64)> {
    let url = format!("{base}/api/devices/v1/deployments/device/deployments/{deployment}/status");
    let mut times = Vec::with_capacity(count);
    let started = Instant::now();
    for n in 0..count {
        let status = if n % 2 == 0 {
            "downloading"
        } else {
            "installing"
        };
        let sent = Instant::now();
        let answer = client
            .put(&url)
            .bearer_auth(token)
            .json(&serde_json::json!({ "status": status }))
            .send()
            .await?;
        anyhow::ensure!(answer.status() == 204, "report {n}: {}", answer.status());
        times.push(sent.elapsed());
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    times.sort();
    let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
    Ok((rate, p99.as_secs_f64() * 1000.0))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let past: usize = args.next().map_or(Ok(1000), |n| n.parse())?;
    let count: usize = args.next().map_or(Ok(500), |n| n.parse())?;
    let backend = std::env::var("BACKEND").unwrap_or_else(|_| "sqlite".into());

    let (settings, url) = bench::fresh_server("history", &backend).await?;
    let data = settings.data_dir.clone();

    // The veteran's past: each deployment created, joined and finished on its stream.
    let (veteran, fresh) = ("veteran", "fresh");
    let log = event_log::open_log(&url, 4).await?;
    let mut history = Vec::new();
    for k in 0..past {
        let deployment = DeploymentId::new();
        history.push(single(
            &format!("deployment-{deployment}"),
            deployment_created(
                deployment,
                &format!("past {k}"),
                "release-0",
                vec![veteran.into()],
            ),
        ));
        let stream = format!("device-{veteran}");
        history.push(single(&stream, bench::device_joined(deployment, veteran)));
        history.push(single(
            &stream,
            reported(deployment, veteran, DeviceDeploymentStatus::Downloading),
        ));
        history.push(single(
            &stream,
            reported(deployment, veteran, DeviceDeploymentStatus::Success),
        ));
    }
    let current = DeploymentId::new();
    history.push(single(
        &format!("deployment-{current}"),
        deployment_created(
            current,
            "current",
            "release-1",
            vec![veteran.into(), fresh.into()],
        ),
    ));
    for device in [veteran, fresh] {
        history.push(single(
            &format!("device-{device}"),
            bench::device_joined(current, device),
        ));
    }
    for chunk in history.chunks(2000) {
        for appended in log.append_many(chunk.to_vec()).await {
            appended?;
        }
    }
    drop(log);

    let server = Server::build(settings.clone()).await?;
    let base = format!("http://127.0.0.1:{}", server.port());
    tokio::spawn(server.run_until(std::future::pending()));
    let issuer = Issuer::from_settings(&settings.auth)?;
    let token = |device: &str| {
        issuer.issue(&Issuer::claims(
            device,
            &TenantId::default(),
            TokenKind::Device,
            chrono::Duration::hours(1),
        ))
    };
    let client = reqwest::Client::new();
    // The write side's tables take the recorded deployments in before the first report.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Alternated, twice each, so neither device always runs on the larger log.
    let (mut veteran_rate, mut fresh_rate, mut veteran_p99, mut fresh_p99) =
        (0.0, 0.0, 0.0f64, 0.0f64);
    for _ in 0..2 {
        let (rate, p99) = reports(&client, &base, &token(fresh), current, count / 2).await?;
        fresh_rate += rate / 2.0;
        fresh_p99 = fresh_p99.max(p99);
        let (rate, p99) = reports(&client, &base, &token(veteran), current, count / 2).await?;
        veteran_rate += rate / 2.0;
        veteran_p99 = veteran_p99.max(p99);
    }
    println!(
        "| status reports of a device with {past} past deployments ({backend}, one at a time) | \
         {veteran_rate:.0} req/s, p99 {veteran_p99:.2} ms | a fresh device, same run: \
         {fresh_rate:.0} req/s, p99 {fresh_p99:.2} ms | {:.2}x (target ≥ 0.9x) | |",
        veteran_rate / fresh_rate
    );
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}

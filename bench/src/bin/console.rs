//! The web console's pages on a large fleet: 10,000 deployments and 100,000 accepted devices
//! by default, recorded straight into the event log and projected by the server before the
//! clock starts. Each page is read one request at a time, and next to it the JSON API routes
//! that page reads, in the same order: the ratio is what rendering the page on top of the
//! API costs. The target is a page p99 under 50 ms.
//!
//!   cargo run --release -p bench --bin console -- [deployments] [devices] [requests per page]
//!   BACKEND=postgres ...      (default sqlite)

use std::time::{Duration, Instant};

use bench::single;
use deployments::Server;
use event_log::AppendRequest;
use events::admission::{AuthSetAdded, AuthSetStatus};
use events::deployment::{DeviceDeploymentStatus, DeviceDeploymentStatusChanged};
use events::{DeploymentId, DomainEvent, TenantId};
use http_edge::auth::{Issuer, TokenKind};
use uuid::Uuid;

/// Devices in each deployment.
const PER_DEPLOYMENT: usize = 10;
const DEPLOYMENTS: &str = "/api/management/v1/deployments/deployments";
const DEVAUTH: &str = "/api/management/v2/devauth/devices";

fn device_id(n: usize) -> String {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("bench-device-{n}").as_bytes()).to_string()
}

/// Every device admitted, every deployment created with its devices joined, the first tenth
/// of the deployments finished and the next tenth downloading: an operator's fleet after a
/// while.
fn fleet(deployments: usize, devices: usize) -> Vec<AppendRequest> {
    let mut requests = Vec::new();
    for n in 0..devices {
        let mut identity = serde_json::Map::new();
        identity.insert("mac".into(), format!("02:00:{:08x}", n).into());
        requests.push(single(
            &format!("devauth-{}", device_id(n)),
            DomainEvent::AuthSetAdded(AuthSetAdded {
                device_id: device_id(n),
                auth_set_id: Uuid::new_v4(),
                identity_data: identity,
                pubkey: "-----BEGIN PUBLIC KEY-----\nbench\n-----END PUBLIC KEY-----\n".into(),
                status: AuthSetStatus::Accepted,
            }),
        ));
    }
    for d in 0..deployments {
        let deployment = DeploymentId::new();
        let members: Vec<String> = (0..PER_DEPLOYMENT)
            .map(|k| device_id((d * PER_DEPLOYMENT + k) % devices.max(1)))
            .collect();
        requests.push(single(
            &format!("deployment-{deployment}"),
            bench::deployment_created(
                deployment,
                &format!("rollout {d}"),
                &format!("release-{}", d % 50),
                members.clone(),
            ),
        ));
        for device in &members {
            requests.push(single(
                &format!("device-{device}"),
                bench::device_joined(deployment, device),
            ));
            let report = match d * 10 / deployments.max(1) {
                0 => Some(DeviceDeploymentStatus::Success),
                1 => Some(DeviceDeploymentStatus::Downloading),
                _ => None,
            };
            if let Some(status) = report {
                requests.push(single(
                    &format!("device-{device}"),
                    DomainEvent::DeviceDeploymentStatusChanged(DeviceDeploymentStatusChanged {
                        deployment_id: deployment,
                        device_id: device.clone(),
                        status,
                        substate: None,
                    }),
                ));
            }
        }
    }
    requests
}

/// The p50 and p99 of `times`, in milliseconds.
fn percentiles(times: &mut [Duration]) -> (f64, f64) {
    times.sort();
    let at = |q: f64| {
        let index = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
        times[index].as_secs_f64() * 1000.0
    };
    (at(0.50), at(0.99))
}

/// Times `requests` reads of the paths in order (one request at a time), after a warm-up.
async fn time(
    client: &reqwest::Client,
    base: &str,
    paths: &[String],
    headers: &[(&str, &str)],
    requests: usize,
    missing_is_an_answer: bool,
) -> anyhow::Result<(f64, f64)> {
    let mut times = Vec::with_capacity(requests);
    for round in 0..requests + 5 {
        let started = Instant::now();
        for path in paths {
            let mut request = client.get(format!("{base}{path}"));
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = request.send().await?;
            // 404 is an answer too: a device that never reported has no inventory, and its
            // page reads that 404 as the API answers it.
            let status = response.status().as_u16();
            let body = response.bytes().await?;
            anyhow::ensure!(
                status == 200 || (missing_is_an_answer && status == 404),
                "{path}: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
        if round >= 5 {
            times.push(started.elapsed());
        }
    }
    Ok(percentiles(&mut times))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let deployments: usize = args.next().map_or(Ok(10_000), |n| n.parse())?;
    let devices: usize = args.next().map_or(Ok(100_000), |n| n.parse())?;
    let requests: usize = args.next().map_or(Ok(200), |n| n.parse())?;
    let backend = std::env::var("BACKEND").unwrap_or_else(|_| "sqlite".into());

    let (settings, url) = bench::fresh_server("console", &backend).await?;
    let data = settings.data_dir.clone();
    let log = event_log::open_log(&url, 4).await?;
    let seeding = Instant::now();
    let mut head = events::Position::START;
    let requests_to_append = fleet(deployments, devices);
    for chunk in requests_to_append.chunks(2000) {
        for appended in log.append_many(chunk.to_vec()).await {
            head = head.max(appended?.position);
        }
    }
    drop(log);
    eprintln!(
        "recorded {} events in {:.1} s",
        requests_to_append.len(),
        seeding.elapsed().as_secs_f64()
    );

    let server = Server::build(settings.clone()).await?;
    let base = format!("http://127.0.0.1:{}", server.port());
    tokio::spawn(server.run_until(std::future::pending()));
    let issuer = Issuer::from_settings(&settings.auth)?;
    let token = issuer.issue(&Issuer::claims(
        "bench",
        &TenantId::default(),
        TokenKind::User,
        chrono::Duration::hours(2),
    ));
    let client = reqwest::Client::new();
    let bearer = format!("Bearer {token}");
    let cookie = format!("deployments_session={token}");

    // The projections catch up before anything is timed: every one has applied the head.
    let projecting = Instant::now();
    loop {
        let detail: serde_json::Value = client
            .get(format!("{base}/api/internal/v1/deployments/health/detail"))
            .send()
            .await?
            .json()
            .await?;
        let projections = detail["projections"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        if !projections.is_empty()
            && projections
                .values()
                .all(|projection| projection["position"].as_u64() >= Some(head.0))
        {
            break;
        }
        anyhow::ensure!(
            projecting.elapsed() < Duration::from_secs(1800),
            "the projections did not reach {head}: {detail}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("projected in {:.1} s", projecting.elapsed().as_secs_f64());
    let (_, finished): (u16, serde_json::Value) = {
        let answer = client
            .get(format!("{base}{DEPLOYMENTS}?status=inprogress&per_page=1"))
            .header("authorization", &bearer)
            .send()
            .await?;
        (answer.status().as_u16(), answer.json().await?)
    };
    let deployment = finished[0]["id"].as_str().unwrap_or_default().to_owned();
    let device = device_id(0);

    let counts: Vec<String> = ["accepted", "pending", "rejected", "preauthorized"]
        .iter()
        .map(|status| format!("{DEVAUTH}/count?status={status}"))
        .collect();
    // Each page, and the API routes it reads, in the order it reads them.
    let pages: Vec<(&str, String, Vec<String>)> = vec![
        (
            "dashboard",
            "/ui/".into(),
            [
                counts.clone(),
                vec![
                    format!("{DEPLOYMENTS}?status=inprogress&per_page=10"),
                    format!("{DEPLOYMENTS}?status=pending&per_page=10"),
                    format!("{DEPLOYMENTS}?status=finished&per_page=5"),
                    "/api/management/v1/deployments/limits/storage".into(),
                ],
            ]
            .concat(),
        ),
        (
            "deployments, in progress",
            "/ui/deployments?status=inprogress".into(),
            vec![format!(
                "{DEPLOYMENTS}?status=inprogress&page=1&per_page=20"
            )],
        ),
        (
            "deployments, finished",
            "/ui/deployments?status=finished".into(),
            vec![format!("{DEPLOYMENTS}?status=finished&page=1&per_page=20")],
        ),
        (
            "one deployment",
            format!("/ui/deployments/{deployment}"),
            vec![
                format!("{DEPLOYMENTS}/{deployment}"),
                format!("{DEPLOYMENTS}/{deployment}/devices/list?page=1&per_page=50"),
            ],
        ),
        (
            "devices, accepted",
            "/ui/devices".into(),
            [
                counts.clone(),
                vec![format!("{DEVAUTH}?status=accepted&page=1&per_page=20")],
            ]
            .concat(),
        ),
        (
            "one device",
            format!("/ui/devices/{device}"),
            vec![
                format!("{DEVAUTH}/{device}"),
                format!("/api/management/v1/inventory/devices/{device}"),
                format!("/api/management/v1/inventory/devices/{device}/group"),
                "/api/management/v1/inventory/groups".into(),
                format!("{DEPLOYMENTS}/devices/{device}?per_page=20"),
            ],
        ),
        (
            "events",
            "/ui/events".into(),
            vec!["/api/management/v1/deployments/events?limit=50".into()],
        ),
    ];
    let fleet_size = format!("{deployments} deployments, {devices} devices, {backend}");
    for (name, page, routes) in pages {
        let (page_p50, page_p99) = time(
            &client,
            &base,
            &[page],
            &[("cookie", &cookie)],
            requests,
            false,
        )
        .await?;
        let headers = [("authorization", bearer.as_str())];
        let (api_p50, api_p99) = time(&client, &base, &routes, &headers, requests, true).await?;
        println!(
            "| console page: {name} ({fleet_size}) | p99 {page_p99:.1} ms (p50 {page_p50:.1}) | \
             the {} API route(s) it reads: p99 {api_p99:.1} ms (p50 {api_p50:.1}); target p99 < 50 ms | \
             {:.2}x | |",
            routes.len(),
            page_p99 / api_p99
        );
    }
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}

//! Projection lag: device status reports appended at a steady rate (1000 a second by default)
//! to a fresh PostgreSQL log while the projectors run, and for every event the time from its
//! append returning to every projection having committed it. There is no limit to compare
//! with; the target is a p99 of 100 ms.
//!
//!   cargo run --release -p bench --bin lag -- [events] [events per second]

use std::time::{Duration, Instant};

use bench::single;
use events::deployment::{
    DeviceDeploymentStatus, DeviceDeploymentStatusChanged, DeviceJoinedDeployment,
};
use events::{ArtifactId, DeploymentId, DomainEvent};
use query_service::projector::{Projector, ProjectorSettings};
use query_service::read_models::ReadModels;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    http_edge::service::init_tracing();
    let count: usize = std::env::args().nth(1).map_or(Ok(10_000), |n| n.parse())?;
    let rate: u64 = std::env::args().nth(2).map_or(Ok(1000), |n| n.parse())?;
    let url = event_log::conformance::fresh_postgres_url().await;
    let log = event_log::open_log(&url, 10).await?;
    let read_models = ReadModels::connect(&url, 10).await?;
    let mut applied = Vec::new();
    for projection in query_service::projections::all() {
        let projector = Projector::new(
            log.clone(),
            read_models.clone(),
            projection,
            ProjectorSettings::default(),
        );
        applied.push(projector.applied());
        tokio::spawn(projector.run());
    }

    // The deployment the reports belong to, and every device's entry in it, before the clock
    // starts: the projection refuses a report for a device with no entry.
    let deployment = DeploymentId::new();
    let devices: Vec<String> = (0..1000).map(|n| format!("device-{n}")).collect();
    let mut setup = vec![single(
        "deployments",
        bench::deployment_created(deployment, "lag", "release-2", devices.clone()),
    )];
    for device in &devices {
        setup.push(single(
            &format!("device-{device}"),
            DomainEvent::DeviceJoinedDeployment(DeviceJoinedDeployment {
                deployment_id: deployment,
                device_id: device.clone(),
                artifact_id: Some(ArtifactId::new()),
                status: DeviceDeploymentStatus::Pending,
                device_type: "bench".into(),
                installed_artifact_name: "release-1".into(),
                phase: None,
                matched_filter: None,
            }),
        ));
    }
    let mut head = events::Position::START;
    for appended in log.append_many(setup).await {
        head = head.max(appended?.position);
    }
    for applied in &mut applied {
        applied.wait_for(|reached| *reached >= head).await?;
    }

    // Appends on a fixed schedule, each reporting its position and when its append returned.
    let (appended, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
            for n in 0..count {
                tick.tick().await;
                let device = format!("device-{}", n % 1000);
                let event =
                    DomainEvent::DeviceDeploymentStatusChanged(DeviceDeploymentStatusChanged {
                        deployment_id: deployment,
                        device_id: device.clone(),
                        status: if n % 2 == 0 {
                            DeviceDeploymentStatus::Downloading
                        } else {
                            DeviceDeploymentStatus::Installing
                        },
                        substate: None,
                    });
                let log = log.clone();
                let appended = appended.clone();
                // Each append on its own task, as concurrent requests would make them.
                tokio::spawn(async move {
                    let done = log
                        .append(single(&format!("device-{device}"), event))
                        .await
                        .expect("append");
                    let _ = appended.send((done.position, Instant::now()));
                });
            }
        })
    };

    let mut lags = Vec::with_capacity(count);
    let started = Instant::now();
    while lags.len() < count {
        let (position, at) = tokio::time::timeout(Duration::from_secs(30), arrivals.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the writer stopped"))?;
        for applied in &mut applied {
            let reached = tokio::time::timeout(
                Duration::from_secs(30),
                applied.wait_for(|reached| *reached >= position),
            )
            .await
            .is_ok_and(|reached| reached.is_ok());
            anyhow::ensure!(
                reached,
                "position {position} not projected within 30 s (at {:?})",
                *applied.borrow()
            );
        }
        lags.push(at.elapsed());
    }
    writer.await?;
    let achieved = count as f64 / started.elapsed().as_secs_f64();
    lags.sort();
    let quantile = |q: f64| lags[((lags.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    println!(
        "| projection lag at {rate} events/s (PostgreSQL, {count} events, {achieved:.0} events/s achieved) \
         | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms | none | (target p99 ≤ 100 ms) | |",
        quantile(0.5),
        quantile(0.99),
        quantile(1.0)
    );
    Ok(())
}

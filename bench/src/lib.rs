//! What the benchmarks share: a log filled with realistic events, and the report line.

use std::sync::Arc;
use std::time::Instant;

use event_log::{AppendRequest, EventLog, ExpectedVersion};
use events::deployment::{DeviceDeploymentStatus, DeviceDeploymentStatusChanged};
use events::{DeploymentId, DomainEvent, EventMetadata, NewEvent, StreamName, TenantId};
use uuid::Uuid;

/// Appends `count` device status reports across 1000 devices, 500 to a commit.
pub async fn fill(log: &Arc<dyn EventLog>, count: usize) -> anyhow::Result<()> {
    let deployment = DeploymentId::new();
    let statuses = [
        DeviceDeploymentStatus::Downloading,
        DeviceDeploymentStatus::Installing,
        DeviceDeploymentStatus::Rebooting,
    ];
    let mut written = 0;
    while written < count {
        let batch: Vec<AppendRequest> = (written..(written + 500).min(count))
            .map(|n| {
                let event =
                    DomainEvent::DeviceDeploymentStatusChanged(DeviceDeploymentStatusChanged {
                        deployment_id: deployment,
                        device_id: format!("device-{}", n % 1000),
                        status: statuses[n % 3],
                        substate: None,
                    });
                AppendRequest {
                    tenant: TenantId::default(),
                    stream: StreamName::new(format!("device-{}", n % 1000)),
                    expected: ExpectedVersion::Any,
                    events: vec![NewEvent::new(Uuid::new_v4(), &event, EventMetadata::now())],
                }
            })
            .collect();
        written += batch.len();
        for result in log.append_many(batch).await {
            result?;
        }
    }
    Ok(())
}

/// Seconds since `start`.
pub fn seconds(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// One row of BENCHMARKS.md.
pub fn row(path: &str, ours: String, limit: String, ratio: f64, target: &str) -> String {
    format!("| {path} | {ours} | {limit} | {ratio:.2}× ({target}) |")
}

/// One event of the default tenant on `stream`, appended whatever the stream's version.
pub fn single(stream: &str, event: DomainEvent) -> AppendRequest {
    AppendRequest {
        tenant: TenantId::default(),
        stream: StreamName::new(stream),
        expected: ExpectedVersion::Any,
        events: vec![NewEvent::new(Uuid::new_v4(), &event, EventMetadata::now())],
    }
}

/// A plain deployment of `artifact_name` to `devices`, created now.
pub fn deployment_created(
    deployment_id: DeploymentId,
    name: &str,
    artifact_name: &str,
    devices: Vec<String>,
) -> DomainEvent {
    DomainEvent::DeploymentCreated(events::deployment::DeploymentCreated {
        deployment_id,
        name: name.to_owned(),
        artifact_name: artifact_name.to_owned(),
        devices,
        phases: vec![],
        force_installation: false,
        created: chrono::Utc::now(),
        groups: Vec::new(),
        dynamic: None,
        policy: None,
        retries: 0,
    })
}

/// An all-in-one server's settings on a fresh data directory, with its event log on SQLite
/// there or, with `BACKEND=postgres`, its log and read models in a fresh PostgreSQL database;
/// and the log's URL, to record a history into before the server starts.
pub async fn fresh_server(
    name: &str,
    backend: &str,
) -> anyhow::Result<(deployments::settings::ServerSettings, String)> {
    let data = std::env::temp_dir().join(format!("{name}-bench-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&data)?;
    let mut settings = deployments::settings::ServerSettings {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: data.clone(),
        ..Default::default()
    };
    settings.auth.hs256_secret = Some(format!("{name} bench secret").into());
    let url = match backend {
        "postgres" => {
            let url = event_log::conformance::fresh_postgres_url().await;
            settings.event_log_url = Some(url.clone());
            settings.read_models_url = Some(url.clone());
            url
        }
        _ => format!("sqlite://{}/events.db", data.display()),
    };
    Ok((settings, url))
}

/// `device` joined `deployment`, pending, as a device of type `bench` running `release-0`.
pub fn device_joined(deployment: DeploymentId, device: &str) -> DomainEvent {
    DomainEvent::DeviceJoinedDeployment(events::deployment::DeviceJoinedDeployment {
        deployment_id: deployment,
        device_id: device.to_owned(),
        artifact_id: Some(events::ArtifactId::new()),
        status: DeviceDeploymentStatus::Pending,
        device_type: "bench".into(),
        installed_artifact_name: "release-0".into(),
        phase: None,
        matched_filter: None,
    })
}

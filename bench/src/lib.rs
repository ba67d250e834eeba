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

//! What the query-service tests share: fresh backends and a realistic event workload.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use event_log::{AppendRequest, EventLog, ExpectedVersion};
use events::deployment::{
    DeploymentAborted, DeploymentCreated, DeviceAdmittedToPhase, DeviceDecommissioned,
    DeviceDeploymentLogSaved, DeviceDeploymentStatus, DeviceDeploymentStatusChanged,
    DeviceJoinedDeployment, LogMessage, Phase,
};
use events::{
    ArtifactId, DeploymentId, DomainEvent, EventMetadata, NewEvent, Position, StreamName, TenantId,
};
use query_service::read_models::ReadModels;
use tokio::sync::watch;
use uuid::Uuid;

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// URLs of an empty event log and empty read models on `backend`.
pub async fn fresh_urls(backend: Backend) -> (String, String) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap().keep();
            (
                format!("sqlite://{}", dir.join("events.db").display()),
                format!("sqlite://{}", dir.join("read-models.db").display()),
            )
        }
        Backend::Postgres => {
            let url = event_log::conformance::fresh_postgres_url().await;
            (url.clone(), url)
        }
    }
}

/// Fresh read models of the same kind as `like`, to rebuild into and compare.
pub async fn fresh_read_models(backend: Backend) -> ReadModels {
    let (_, url) = fresh_urls(backend).await;
    ReadModels::connect(&url, 5).await.unwrap()
}

/// A small deterministic generator, so a failing workload can be replayed.
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1))
    }
    pub fn roll(&mut self, sides: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % sides
    }
}

/// Appends `event` to the stream `deployment-<id>`. The workload names streams loosely (an
/// upload and a decommission go to such a stream too): projections read events, not streams.
pub async fn append(
    log: &Arc<dyn EventLog>,
    tenant: &TenantId,
    id: impl std::fmt::Display,
    event: DomainEvent,
) -> Position {
    log.append(AppendRequest {
        tenant: tenant.clone(),
        stream: StreamName::new(format!("deployment-{id}")),
        expected: ExpectedVersion::Any,
        events: vec![NewEvent::new(Uuid::new_v4(), &event, EventMetadata::now())],
    })
    .await
    .unwrap()
    .position
}

pub fn created(id: DeploymentId, name: &str, devices: usize) -> DomainEvent {
    DomainEvent::DeploymentCreated(DeploymentCreated {
        deployment_id: id,
        name: name.to_owned(),
        artifact_name: format!("{name}-artifact"),
        devices: (0..devices).map(|n| format!("device-{n}")).collect(),
        phases: vec![],
        force_installation: false,
        created: Utc::now(),
        groups: Vec::new(),
        dynamic: None,
        policy: None,
        retries: 0,
    })
}

pub fn joined(id: DeploymentId, device: &str, status: DeviceDeploymentStatus) -> DomainEvent {
    DomainEvent::DeviceJoinedDeployment(DeviceJoinedDeployment {
        deployment_id: id,
        device_id: device.to_owned(),
        artifact_id: Some(ArtifactId::new()),
        status,
        device_type: "raspberrypi4".to_owned(),
        installed_artifact_name: "old".to_owned(),
        phase: None,
        matched_filter: None,
    })
}

pub fn changed(id: DeploymentId, device: &str, status: DeviceDeploymentStatus) -> DomainEvent {
    DomainEvent::DeviceDeploymentStatusChanged(DeviceDeploymentStatusChanged {
        deployment_id: id,
        device_id: device.to_owned(),
        status,
        substate: Some(format!("now {status}")),
    })
}

/// Deployments whose devices join, report, fail, save logs and get aborted, across two
/// tenants; returns the position of the last event.
pub async fn workload(log: &Arc<dyn EventLog>, deployments: usize, seed: u64) -> Position {
    let mut dice = Dice::new(seed);
    let mut last = Position::START;
    for n in 0..deployments {
        let tenant = TenantId::new(if n % 3 == 0 { "globex" } else { "acme" });
        let id = DeploymentId::new();
        let devices = 1 + dice.roll(6) as usize;
        last = append(
            log,
            &tenant,
            id,
            created(id, &format!("rollout-{n}"), devices),
        )
        .await;
        for d in 0..devices {
            let device = format!("device-{d}");
            if dice.roll(4) == 0 {
                continue;
            }
            last = append(
                log,
                &tenant,
                id,
                joined(id, &device, DeviceDeploymentStatus::Pending),
            )
            .await;
            let path = [
                DeviceDeploymentStatus::Downloading,
                DeviceDeploymentStatus::Installing,
                DeviceDeploymentStatus::Rebooting,
            ];
            for status in path.iter().take(dice.roll(4) as usize) {
                last = append(log, &tenant, id, changed(id, &device, *status)).await;
            }
            if dice.roll(3) == 0 {
                let outcome = if dice.roll(2) == 0 {
                    DeviceDeploymentStatus::Success
                } else {
                    DeviceDeploymentStatus::Failure
                };
                append(log, &tenant, id, changed(id, &device, outcome)).await;
                last = append(
                    log,
                    &tenant,
                    id,
                    DomainEvent::DeviceDeploymentLogSaved(DeviceDeploymentLogSaved {
                        deployment_id: id,
                        device_id: device.clone(),
                        messages: vec![LogMessage {
                            timestamp: Utc::now(),
                            level: "info".into(),
                            message: format!("{device} says {outcome}"),
                        }],
                    }),
                )
                .await;
            }
        }
        if dice.roll(5) == 0 {
            last = append(
                log,
                &tenant,
                id,
                DomainEvent::DeploymentAborted(DeploymentAborted {
                    deployment_id: id,
                    policy: None,
                }),
            )
            .await;
        }
    }
    last
}

/// Waits until a projector reports having applied `position`.
pub async fn caught_up(applied: &mut watch::Receiver<Position>, position: Position) {
    tokio::time::timeout(
        Duration::from_secs(30),
        applied.wait_for(|at| *at >= position),
    )
    .await
    .expect("the projector catches up")
    .unwrap();
}

/// What [`workload`] leaves out: artifact sizes, phases, a deployment that finishes because
/// every device did, repeated reports and empty substates, a join with a final status,
/// decommissioning, reports and a join racing an abort, and a log with no entry.
pub async fn fleet_workload(log: &Arc<dyn EventLog>) -> Position {
    let tenant = TenantId::new("acme");
    let artifact = ArtifactId::new();
    append(
        log,
        &tenant,
        artifact,
        event_log::conformance::artifact_uploaded(artifact, "fleet", 1234),
    )
    .await;

    // Phased, and every device finishes: the deployment finishes on the last success.
    let phased = DeploymentId::new();
    let mut create = created(phased, "fleet", 6);
    if let DomainEvent::DeploymentCreated(created) = &mut create {
        created.artifact_name = "fleet".into();
        created.phases = (0..2)
            .map(|_| Phase {
                id: Uuid::new_v4(),
                batch_size: Some(50),
                start_ts: Utc::now(),
                max_devices: 3,
            })
            .collect();
    }
    append(log, &tenant, phased, create).await;
    for device in 0..6 {
        let device_id = format!("device-{device}");
        append(
            log,
            &tenant,
            phased,
            DomainEvent::DeviceAdmittedToPhase(DeviceAdmittedToPhase {
                deployment_id: phased,
                device_id: device_id.clone(),
                phase: device / 3,
            }),
        )
        .await;
        let mut join = joined(phased, &device_id, DeviceDeploymentStatus::Pending);
        if let DomainEvent::DeviceJoinedDeployment(joined) = &mut join {
            joined.artifact_id = Some(artifact);
            joined.phase = Some(device / 3);
        }
        append(log, &tenant, phased, join).await;
    }
    // Devices report in turn, so one device's reports interleave with the others'.
    for status in [
        DeviceDeploymentStatus::Downloading,
        DeviceDeploymentStatus::Downloading,
        DeviceDeploymentStatus::Installing,
        DeviceDeploymentStatus::Success,
    ] {
        for device in 0..6 {
            let mut report = changed(phased, &format!("device-{device}"), status);
            if let DomainEvent::DeviceDeploymentStatusChanged(changed) = &mut report {
                if device % 2 == 0 {
                    changed.substate = Some(String::new());
                }
            }
            append(log, &tenant, phased, report).await;
        }
    }

    // Joins, a decommissioning and reports around an abort.
    let aborted = DeploymentId::new();
    append(log, &tenant, aborted, created(aborted, "doomed", 4)).await;
    let mut join = joined(aborted, "device-0", DeviceDeploymentStatus::NoArtifact);
    if let DomainEvent::DeviceJoinedDeployment(joined) = &mut join {
        joined.artifact_id = None;
    }
    append(log, &tenant, aborted, join).await;
    for device in ["device-1", "device-2"] {
        append(
            log,
            &tenant,
            aborted,
            joined(aborted, device, DeviceDeploymentStatus::Pending),
        )
        .await;
    }
    append(
        log,
        &tenant,
        aborted,
        changed(aborted, "device-1", DeviceDeploymentStatus::Downloading),
    )
    .await;
    append(
        log,
        &tenant,
        Uuid::new_v4(),
        DomainEvent::DeviceDecommissioned(DeviceDecommissioned {
            device_id: "device-1".into(),
        }),
    )
    .await;
    append(
        log,
        &tenant,
        aborted,
        DomainEvent::DeploymentAborted(DeploymentAborted {
            deployment_id: aborted,
            policy: None,
        }),
    )
    .await;
    append(
        log,
        &tenant,
        aborted,
        joined(aborted, "device-3", DeviceDeploymentStatus::Pending),
    )
    .await;
    for status in [
        DeviceDeploymentStatus::Installing,
        DeviceDeploymentStatus::Success,
    ] {
        append(log, &tenant, aborted, changed(aborted, "device-2", status)).await;
    }
    append(
        log,
        &tenant,
        aborted,
        DomainEvent::DeviceDeploymentLogSaved(DeviceDeploymentLogSaved {
            deployment_id: aborted,
            device_id: "device-9".into(),
            messages: vec![],
        }),
    )
    .await
}

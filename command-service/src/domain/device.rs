//! A device's entries in deployments, decided on the device's own stream `device-<id>`.
//!
//! Why the device is the aggregate: "a device runs one deployment at a time, oldest first" is
//! a rule over one device's entries, so deciding it against one version of one stream closes
//! every race between a device's parallel requests. Status reports of different devices never
//! touch the same stream, so a rollout to many devices appends without contention.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use events::deployment::{
    DeviceDeploymentLogSaved, DeviceDeploymentRetried, DeviceDeploymentStatus,
    DeviceDeploymentStatusChanged, DeviceDeploymentTimedOut, DeviceJoinedDeployment, LogMessage,
};
use events::{ArtifactId, DeploymentId, DomainEvent};

use super::inventory::DeviceInventory;
use super::tables::{DeploymentInfo, TenantCatalog};
use uuid::Uuid;

pub fn stream(device: &str) -> String {
    format!("device-{device}")
}

/// The device's entry in one deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub status: DeviceDeploymentStatus,
    pub artifact_id: Option<ArtifactId>,
    pub device_type: String,
    pub installed_artifact_name: String,
    /// 1 for the first attempt, one more for each retry.
    pub attempts: u32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceState {
    pub entries: BTreeMap<DeploymentId, Entry>,
}

impl super::Folded for DeviceState {
    fn evolve(self, event: &DomainEvent) -> Self {
        evolve(self, event)
    }
}

pub fn evolve(mut state: DeviceState, event: &DomainEvent) -> DeviceState {
    match event {
        DomainEvent::DeviceJoinedDeployment(joined) => {
            state.entries.insert(
                joined.deployment_id,
                Entry {
                    status: joined.status,
                    artifact_id: joined.artifact_id,
                    device_type: joined.device_type.clone(),
                    installed_artifact_name: joined.installed_artifact_name.clone(),
                    attempts: 1,
                },
            );
        }
        DomainEvent::DeviceDeploymentStatusChanged(changed) => {
            if let Some(entry) = state.entries.get_mut(&changed.deployment_id) {
                entry.status = changed.status;
            }
        }
        DomainEvent::DeviceDeploymentTimedOut(timed_out) => {
            if let Some(entry) = state.entries.get_mut(&timed_out.deployment_id) {
                entry.status = DeviceDeploymentStatus::Failure;
            }
        }
        DomainEvent::DeviceDeploymentRetried(retried) => {
            if let Some(entry) = state.entries.get_mut(&retried.deployment_id) {
                entry.status = DeviceDeploymentStatus::Pending;
                entry.attempts = retried.attempt;
                entry.device_type = retried.device_type.clone();
                entry.installed_artifact_name = retried.installed_artifact_name.clone();
            }
        }
        DomainEvent::DeviceDecommissioned(_) => {
            for entry in state.entries.values_mut() {
                if !entry.status.is_final() {
                    entry.status = DeviceDeploymentStatus::Decommissioned;
                }
            }
        }
        _ => {}
    }
    state
}

/// What the device reported when it asked for its next deployment.
#[derive(Debug, Clone)]
pub struct Asked {
    pub device: String,
    pub artifact_name: String,
    pub device_type: String,
    pub now: DateTime<Utc>,
}

/// The answer to `/next`.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Install this artifact for this deployment (200).
    Serve {
        deployment: DeploymentId,
        artifact: ArtifactId,
    },
    /// Nothing to do now (204).
    Nothing,
    /// The device contradicted what it said earlier for the same deployment (409).
    Contradiction,
}

/// A seat a phased deployment must give the device before it joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    pub deployment: DeploymentId,
    /// Index of the phase open now.
    pub phase: usize,
    /// Devices that phase admits in all.
    pub capacity: u64,
}

/// A decision on `/next`: events for the device's stream, and for phased deployments the
/// phase the device must first be admitted to.
#[derive(Debug, Clone, PartialEq)]
pub struct NextDecision {
    pub events: Vec<DomainEvent>,
    pub admission: Option<Admission>,
    pub answer: Next,
}

impl NextDecision {
    fn answer(answer: Next) -> Self {
        Self {
            events: Vec::new(),
            admission: None,
            answer,
        }
    }
}

fn effective_status(entry: &Entry, deployment: Option<&DeploymentInfo>) -> DeviceDeploymentStatus {
    // An abort does not write to every device's stream; it is read from the deployment.
    if deployment.is_some_and(|d| d.aborted) && !entry.status.is_final() {
        DeviceDeploymentStatus::Aborted
    } else {
        entry.status
    }
}

/// Whether a failed entry gets its deployment again: the deployment has retries left for it,
/// is neither aborted nor finished for this device (a decommission closes it).
fn awaits_retry(entry: &Entry, device: &str, deployment: Option<&DeploymentInfo>) -> bool {
    entry.status == DeviceDeploymentStatus::Failure
        && deployment.is_some_and(|d| {
            entry.attempts <= d.retries && !d.aborted && !d.finished_devices.contains(device)
        })
}

/// The entry the device is still busy with: one not in a final state, or a failed one that
/// will be retried. A device runs one deployment at a time.
fn open_entry<'a>(
    state: &'a DeviceState,
    device: &str,
    catalog: &TenantCatalog,
) -> Option<(DeploymentId, &'a Entry)> {
    state
        .entries
        .iter()
        .find(|(id, entry)| {
            let deployment = catalog.deployments.get(id);
            !effective_status(entry, deployment).is_final()
                || awaits_retry(entry, device, deployment)
        })
        .map(|(id, entry)| (*id, entry))
}

/// Chooses what the device runs next: its unfinished entry (a failed one with retries left
/// starts its next attempt, unless the deployment is paused), else the oldest active
/// deployment targeting it (listing it, or with `inventory` given, a dynamic deployment whose
/// filter it matches now) that was created after its newest finished one.
pub fn decide_next(
    state: &DeviceState,
    asked: &Asked,
    catalog: &TenantCatalog,
    inventory: Option<&DeviceInventory>,
) -> NextDecision {
    if let Some((deployment, entry)) = open_entry(state, &asked.device, catalog) {
        if entry.status == DeviceDeploymentStatus::Failure {
            return retry(deployment, entry, asked, catalog);
        }
        if entry.device_type != asked.device_type
            || entry.installed_artifact_name != asked.artifact_name
        {
            return NextDecision {
                events: vec![DomainEvent::DeviceDeploymentStatusChanged(
                    DeviceDeploymentStatusChanged {
                        deployment_id: deployment,
                        device_id: asked.device.clone(),
                        status: DeviceDeploymentStatus::Failure,
                        substate: Some("the device sent conflicting request data".into()),
                    },
                )],
                admission: None,
                answer: Next::Contradiction,
            };
        }
        return match entry.artifact_id {
            Some(artifact) => NextDecision::answer(Next::Serve {
                deployment,
                artifact,
            }),
            None => NextDecision::answer(Next::Nothing),
        };
    }
    let newest_finished = state
        .entries
        .keys()
        .filter_map(|id| catalog.deployments.get(id))
        .map(|deployment| deployment.created)
        .max();
    let mut candidates: Vec<(&DeploymentInfo, Option<Uuid>)> = catalog
        .targeting(&asked.device)
        .map(|deployment| (deployment, None))
        .collect();
    if let Some(inventory) = inventory {
        candidates.extend(
            catalog
                .dynamic_matches(&asked.device, inventory)
                .map(|(deployment, filter)| (deployment, Some(filter))),
        );
        candidates.sort_by_key(|(deployment, _)| (deployment.created, deployment.id));
    }
    let Some((deployment, matched_filter)) = candidates.into_iter().find(|(deployment, _)| {
        !deployment.finished()
            && !deployment.paused
            && !state.entries.contains_key(&deployment.id)
            && newest_finished.is_none_or(|newest| deployment.created > newest)
    }) else {
        return NextDecision::answer(Next::Nothing);
    };
    let mut admission = None;
    // A dynamic deployment that takes a number of devices seats them as one phase, so no
    // more join than it takes.
    if let Some(max) = deployment.dynamic.as_ref().and_then(|d| d.max_devices) {
        admission = Some(Admission {
            deployment: deployment.id,
            phase: 0,
            capacity: max,
        });
    }
    if !deployment.phases.is_empty() {
        let Some(phase) = deployment
            .phases
            .iter()
            .rposition(|phase| phase.start_ts <= asked.now)
        else {
            return NextDecision::answer(Next::Nothing);
        };
        admission = Some(Admission {
            deployment: deployment.id,
            phase,
            capacity: deployment.phases[phase].max_devices,
        });
    }
    let phase = admission.map(|admission| admission.phase);
    let joined = |status, artifact_id| {
        DomainEvent::DeviceJoinedDeployment(DeviceJoinedDeployment {
            deployment_id: deployment.id,
            device_id: asked.device.clone(),
            artifact_id,
            status,
            device_type: asked.device_type.clone(),
            installed_artifact_name: asked.artifact_name.clone(),
            phase: phase.filter(|_| !deployment.phases.is_empty()),
            matched_filter,
        })
    };
    let Some(artifact) = catalog.artifact_for(&deployment.artifact_name, &asked.device_type) else {
        return NextDecision {
            events: vec![joined(DeviceDeploymentStatus::NoArtifact, None)],
            admission,
            answer: Next::Nothing,
        };
    };
    if asked.artifact_name == deployment.artifact_name && !deployment.force_installation {
        return NextDecision {
            events: vec![joined(
                DeviceDeploymentStatus::AlreadyInstalled,
                Some(artifact.id),
            )],
            admission,
            answer: Next::Nothing,
        };
    }
    NextDecision {
        events: vec![joined(DeviceDeploymentStatus::Pending, Some(artifact.id))],
        admission,
        answer: Next::Serve {
            deployment: deployment.id,
            artifact: artifact.id,
        },
    }
}

/// The next attempt of a failed entry: what the device reports now is what later requests of
/// this attempt must match (after a failed update without rollback, the client reports an
/// artifact name of its own making).
fn retry(
    deployment: DeploymentId,
    entry: &Entry,
    asked: &Asked,
    catalog: &TenantCatalog,
) -> NextDecision {
    let paused = catalog
        .deployments
        .get(&deployment)
        .is_some_and(|d| d.paused);
    let Some(artifact) = entry.artifact_id.filter(|_| !paused) else {
        return NextDecision::answer(Next::Nothing);
    };
    NextDecision {
        events: vec![DomainEvent::DeviceDeploymentRetried(
            DeviceDeploymentRetried {
                deployment_id: deployment,
                device_id: asked.device.clone(),
                attempt: entry.attempts + 1,
                device_type: asked.device_type.clone(),
                installed_artifact_name: asked.artifact_name.clone(),
            },
        )],
        admission: None,
        answer: Next::Serve {
            deployment,
            artifact,
        },
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeviceError {
    #[error("Resource not found")]
    NotFound,
    #[error("Deployment aborted")]
    Aborted,
    #[error("Device decommissioned")]
    Decommissioned,
    /// The entry reached a final status; it never changes again.
    #[error("Device deployment already finished with status {0}")]
    Finished(&'static str),
}

fn live_entry<'a>(
    state: &'a DeviceState,
    deployment: DeploymentId,
    catalog: &TenantCatalog,
) -> Result<&'a Entry, DeviceError> {
    let entry = state
        .entries
        .get(&deployment)
        .ok_or(DeviceError::NotFound)?;
    match effective_status(entry, catalog.deployments.get(&deployment)) {
        DeviceDeploymentStatus::Aborted => Err(DeviceError::Aborted),
        DeviceDeploymentStatus::Decommissioned => Err(DeviceError::Decommissioned),
        _ => Ok(entry),
    }
}

/// A status the device reports. Repeating the current status changes nothing; no order is
/// enforced between the statuses of an unfinished entry, but a finished entry is final: a
/// device cannot turn a success into a failure, or restart a finished deployment, after the
/// statistics counted it.
pub fn decide_status(
    state: &DeviceState,
    device: &str,
    deployment: DeploymentId,
    status: DeviceDeploymentStatus,
    substate: Option<String>,
    catalog: &TenantCatalog,
) -> Result<Vec<DomainEvent>, DeviceError> {
    let entry = live_entry(state, deployment, catalog)?;
    if entry.status == status {
        return Ok(Vec::new());
    }
    if entry.status.is_final() {
        return Err(DeviceError::Finished(entry.status.as_str()));
    }
    Ok(vec![DomainEvent::DeviceDeploymentStatusChanged(
        DeviceDeploymentStatusChanged {
            deployment_id: deployment,
            device_id: device.to_owned(),
            status,
            substate,
        },
    )])
}

/// The device's entry in `deployment` stayed in `status` since `since` for longer than the
/// deployment's device timeout, as the tables saw it: it fails, unless it has moved on since
/// (then nothing is decided).
pub fn decide_timeout(
    state: &DeviceState,
    device: &str,
    deployment: DeploymentId,
    (status, since, timeout_seconds): (DeviceDeploymentStatus, DateTime<Utc>, u64),
    catalog: &TenantCatalog,
) -> Vec<DomainEvent> {
    match live_entry(state, deployment, catalog) {
        Ok(entry) if entry.status == status && !status.is_final() => {
            vec![DomainEvent::DeviceDeploymentTimedOut(
                DeviceDeploymentTimedOut {
                    deployment_id: deployment,
                    device_id: device.to_owned(),
                    status,
                    since,
                    timeout_seconds,
                },
            )]
        }
        _ => Vec::new(),
    }
}

/// The log of the device's attempt at a deployment.
pub fn decide_log(
    state: &DeviceState,
    device: &str,
    deployment: DeploymentId,
    messages: Vec<LogMessage>,
) -> Result<Vec<DomainEvent>, DeviceError> {
    if !state.entries.contains_key(&deployment) {
        return Err(DeviceError::NotFound);
    }
    Ok(vec![DomainEvent::DeviceDeploymentLogSaved(
        DeviceDeploymentLogSaved {
            deployment_id: deployment,
            device_id: device.to_owned(),
            messages,
        },
    )])
}

/// Takes the device out of service in Mender's two steps: its unfinished entry (a device runs
/// one deployment at a time) becomes `decommissioned`; then the oldest active deployment
/// targeting it that it has no entry in, created after that entry's deployment (or after its
/// newest entry's, the same rule `/next` follows), gets a `decommissioned` entry too, so that
/// a device that never asked still counts and the deployment can finish. Nothing to
/// decommission appends nothing.
pub fn decide_decommission(
    state: &DeviceState,
    device: &str,
    catalog: &TenantCatalog,
) -> Vec<DomainEvent> {
    let mut decided = Vec::new();
    let unfinished = open_entry(state, device, catalog).map(|(id, _)| id);
    if unfinished.is_some() {
        decided.push(DomainEvent::DeviceDecommissioned(
            events::deployment::DeviceDecommissioned {
                device_id: device.to_owned(),
            },
        ));
    }
    let after = unfinished
        .into_iter()
        .chain(state.entries.keys().copied())
        .filter_map(|id| catalog.deployments.get(&id))
        .map(|deployment| deployment.created)
        .max();
    let next = catalog.targeting(device).find(|deployment| {
        !deployment.finished()
            && !state.entries.contains_key(&deployment.id)
            && after.is_none_or(|after| deployment.created > after)
    });
    if let Some(deployment) = next {
        decided.push(DomainEvent::DeviceJoinedDeployment(
            DeviceJoinedDeployment {
                deployment_id: deployment.id,
                device_id: device.to_owned(),
                artifact_id: None,
                status: DeviceDeploymentStatus::Decommissioned,
                device_type: String::new(),
                installed_artifact_name: String::new(),
                phase: None,
                matched_filter: None,
            },
        ));
    }
    decided
}

/// The statuses a device may report itself.
pub fn reportable(status: DeviceDeploymentStatus) -> bool {
    use DeviceDeploymentStatus::*;
    matches!(
        status,
        Downloading
            | Installing
            | Rebooting
            | Success
            | Failure
            | AlreadyInstalled
            | PauseBeforeInstalling
            | PauseBeforeCommitting
            | PauseBeforeRebooting
    )
}

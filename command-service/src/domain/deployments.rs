//! Creating and aborting deployments.
//!
//! A deployment is created on its tenant's `deployments` stream: "no two identical active
//! deployments" is a rule over all of a tenant's deployments, so creations are decided
//! against one version of one stream, and two identical requests racing each other cannot
//! both pass. Everything after creation (abort, phase admissions) goes to the deployment's own
//! stream `deployment-<id>`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use events::deployment::{
    DeploymentAborted, DeploymentCreated, DeploymentPaused, DeploymentResumed,
    DeviceDeploymentStatus, DynamicTarget, OnThreshold, PauseCause, Phase, PhaseStarted,
    PolicyRequest, PolicyTrip, RolloutPolicy,
};
use events::{DeploymentId, DomainEvent};
use serde::Deserialize;
use uuid::Uuid;

use super::tables::{DeviceListFingerprint, TenantCatalog};

/// The tenant-wide stream deployments are created on.
pub const CREATION_STREAM: &str = "deployments";

/// The stream of one deployment's life after creation.
pub fn stream(id: DeploymentId) -> String {
    format!("deployment-{id}")
}

const MAX_TEXT: usize = 4096;

/// `POST /deployments`, as the client sent it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NewDeployment {
    pub name: Option<String>,
    pub artifact_name: Option<String>,
    pub devices: Option<Vec<String>>,
    pub all_devices: Option<bool>,
    pub phases: Option<Vec<NewPhase>>,
    pub force_installation: Option<bool>,
    /// The static group to deploy to, from `POST /deployments/group/{name}`'s path.
    #[serde(skip)]
    pub group: Option<String>,
    /// v2: the saved filter of a dynamic deployment.
    pub filter_id: Option<String>,
    /// v2: how many devices a dynamic deployment takes before it finishes.
    pub max_devices: Option<i64>,
    /// What the deployment does by itself when its devices fail.
    pub policy: Option<NewPolicy>,
    /// How many more times a device whose attempt failed gets the deployment.
    pub retries: Option<i64>,
}

/// `"policy"` as the client sent it.
pub type NewPolicy = PolicyRequest;

/// Checks a policy, naming the field that is wrong.
fn checked_policy(sent: &Option<NewPolicy>) -> Result<Option<RolloutPolicy>, DeploymentError> {
    sent.as_ref()
        .map(|sent| sent.checked().map_err(DeploymentError::Invalid))
        .transpose()
}

fn checked_retries(sent: Option<i64>) -> Result<u32, DeploymentError> {
    events::deployment::checked_retries(sent).map_err(DeploymentError::Invalid)
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NewPhase {
    pub batch_size: Option<u32>,
    pub start_ts: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeploymentError {
    #[error("{0}")]
    Invalid(String),
    #[error("No artifact for the deployment")]
    NoArtifact,
    #[error("Deployment with the same name, artifact, devices and force flag is still active")]
    Identical { existing: DeploymentId },
    #[error("Resource not found")]
    NotFound,
    #[error("Deployment already finished")]
    Finished,
    #[error("Deployment already paused")]
    AlreadyPaused,
    #[error("Deployment is not paused")]
    NotPaused,
    #[error("Deployment has no phase left to start")]
    NoPhaseLeft,
}

fn invalid(message: impl Into<String>) -> DeploymentError {
    DeploymentError::Invalid(message.into())
}

fn text(value: &Option<String>, field: &str) -> Result<String, DeploymentError> {
    match value {
        Some(text) if text.trim().is_empty() => Err(invalid(format!("{field}: cannot be blank"))),
        // Names end up in lists, logs and consoles, where a NUL or an escape does harm.
        Some(text) if text.chars().any(char::is_control) => Err(invalid(format!(
            "{field}: must not contain control characters"
        ))),
        Some(text) if text.chars().count() <= MAX_TEXT => Ok(text.clone()),
        Some(_) => Err(invalid(format!(
            "{field}: the length must be between 1 and {MAX_TEXT}"
        ))),
        None => Err(invalid(format!("{field}: cannot be blank"))),
    }
}

/// Splits `devices` into phases: each phase takes floor(batch_size% × N), the last one the
/// remainder; the first may start now, later ones strictly after the one before.
fn plan_phases(
    requested: &[NewPhase],
    devices: usize,
    now: DateTime<Utc>,
) -> Result<Vec<Phase>, DeploymentError> {
    let mut phases = Vec::with_capacity(requested.len());
    let mut assigned = 0u64;
    let mut percent = 0u32;
    let mut previous_start: Option<DateTime<Utc>> = None;
    for (index, phase) in requested.iter().enumerate() {
        let last = index + 1 == requested.len();
        let start_ts = match (index, phase.start_ts) {
            (0, start) => start.unwrap_or(now),
            (_, Some(start)) => start,
            (_, None) => {
                return Err(invalid(format!(
                    "phases[{index}].start_ts: required after the first phase"
                )))
            }
        };
        if previous_start.is_some_and(|previous| start_ts <= previous) {
            return Err(invalid(format!(
                "phases[{index}].start_ts: must be later than the phase before"
            )));
        }
        previous_start = Some(start_ts);
        let batch_size = match phase.batch_size {
            Some(size) if (1..=100).contains(&size) => Some(size),
            Some(_) => {
                return Err(invalid(format!(
                    "phases[{index}].batch_size: must be between 1 and 100"
                )))
            }
            None if last => None,
            None => {
                return Err(invalid(format!(
                    "phases[{index}].batch_size: required but for the last phase"
                )))
            }
        };
        percent += batch_size.unwrap_or(0);
        let max_devices = if last {
            if batch_size.is_some() && percent != 100 {
                return Err(invalid("phases: batch sizes must add up to 100"));
            }
            devices as u64 - assigned
        } else {
            u64::from(batch_size.unwrap_or(0)) * devices as u64 / 100
        };
        if percent > 100 || (last && batch_size.is_none() && percent >= 100) {
            return Err(invalid("phases: batch sizes must add up to 100"));
        }
        if max_devices == 0 {
            return Err(invalid(format!(
                "phases[{index}]: the batch would hold no device"
            )));
        }
        assigned += max_devices;
        phases.push(Phase {
            id: Uuid::new_v4(),
            batch_size,
            start_ts,
            max_devices,
        });
    }
    Ok(phases)
}

/// The devices a request targets, and the group it names: a list as given, every accepted
/// device, or the accepted devices of a group, expanded once, now (as Mender does: a device
/// accepted later does not join).
fn targets(
    request: &NewDeployment,
    catalog: &TenantCatalog,
) -> Result<(Vec<String>, Vec<String>), DeploymentError> {
    let listed = request
        .devices
        .as_ref()
        .filter(|devices| !devices.is_empty());
    let expanded = |group: Option<&str>| {
        let devices = catalog.accepted_targets(group);
        if devices.is_empty() {
            return Err(invalid("No devices for the deployment"));
        }
        Ok(devices)
    };
    match (&request.group, listed, request.all_devices) {
        (Some(_), _, _) if request.devices.is_some() || request.all_devices.is_some() => {
            Err(invalid(
                "The deployment for group constructor should have neither list of devices nor all_devices flag set",
            ))
        }
        (Some(group), _, _) => Ok((expanded(Some(group))?, vec![group.clone()])),
        (None, Some(_), Some(true)) => Err(invalid(
            "Invalid deployments definition: list of devices provided togheter with all_devices flag",
        )),
        (None, None, Some(true)) => Ok((expanded(None)?, Vec::new())),
        (None, Some(devices), _) => Ok((devices.clone(), Vec::new())),
        (None, None, _) => Err(invalid(
            "Invalid deployments definition: provide list of devices or set all_devices flag",
        )),
    }
}

/// The artifact must exist (422), and no active deployment may have the same name, artifact
/// and force flag and the same targets (409).
fn unless_identical(
    catalog: &TenantCatalog,
    (name, artifact_name, force_installation): (&str, &str, bool),
    same_targets: impl Fn(&super::tables::DeploymentInfo) -> bool,
) -> Result<(), DeploymentError> {
    if !catalog.artifact_named(artifact_name) {
        return Err(DeploymentError::NoArtifact);
    }
    match catalog.deployments.values().find(|deployment| {
        !deployment.finished()
            && deployment.name == name
            && deployment.artifact_name == artifact_name
            && deployment.force_installation == force_installation
            && same_targets(deployment)
    }) {
        Some(existing) => Err(DeploymentError::Identical {
            existing: existing.id,
        }),
        None => Ok(()),
    }
}

/// Validates a request and decides the deployment it creates; `max_devices` is the most
/// devices one deployment may list.
pub fn decide_creation(
    request: &NewDeployment,
    id: DeploymentId,
    now: DateTime<Utc>,
    max_devices: usize,
    catalog: &TenantCatalog,
) -> Result<Vec<DomainEvent>, DeploymentError> {
    let name = text(&request.name, "name")?;
    let artifact_name = text(&request.artifact_name, "artifact_name")?;
    let (devices, mut groups) = targets(request, catalog)?;
    let policy = checked_policy(&request.policy)?;
    let retries = checked_retries(request.retries)?;
    if devices.len() > max_devices {
        return Err(invalid(format!(
            "devices: {} listed, more than the {max_devices} one deployment may have",
            devices.len()
        )));
    }
    if let Some(bad) = devices.iter().position(|device| {
        device.trim().is_empty() || device.len() > MAX_TEXT || device.chars().any(char::is_control)
    }) {
        return Err(invalid(format!("devices[{bad}]: not a device id")));
    }
    let mut unique = devices.clone();
    unique.sort();
    unique.dedup();
    // A deployment to one device shows that device's group, as Mender's does.
    if let ([device], true) = (unique.as_slice(), groups.is_empty()) {
        groups.extend(catalog.group_of(device).map(str::to_owned));
    }
    let phases = match &request.phases {
        Some(phases) if !phases.is_empty() => plan_phases(phases, unique.len(), now)?,
        _ => Vec::new(),
    };
    let force_installation = request.force_installation.unwrap_or(false);
    let fingerprint = DeviceListFingerprint::of(&unique);
    unless_identical(
        catalog,
        (&name, &artifact_name, force_installation),
        |deployment| deployment.dynamic.is_none() && deployment.devices_fingerprint == fingerprint,
    )?;
    Ok(vec![DomainEvent::DeploymentCreated(DeploymentCreated {
        deployment_id: id,
        name,
        artifact_name,
        devices: unique,
        phases,
        force_installation,
        created: now,
        groups,
        dynamic: None,
        policy,
        retries,
    })])
}

/// Validates a v2 request for a dynamic deployment: every device that matches the saved
/// filter when it asks joins, until `max_devices` have finished (or, without it, until an
/// operator aborts it). The filter is copied into the deployment, so deleting or replacing it
/// later changes nothing here.
pub fn decide_dynamic_creation(
    request: &NewDeployment,
    id: DeploymentId,
    now: DateTime<Utc>,
    catalog: &TenantCatalog,
) -> Result<Vec<DomainEvent>, DeploymentError> {
    let name = text(&request.name, "name")?;
    let artifact_name = text(&request.artifact_name, "artifact_name")?;
    if request.devices.is_some() || request.all_devices.is_some() {
        return Err(invalid(
            "a dynamic deployment takes filter_id, neither devices nor all_devices",
        ));
    }
    let filter_id = match request.filter_id.as_deref() {
        None | Some("") => return Err(invalid("filter_id: cannot be blank")),
        Some(text) => Uuid::parse_str(text)
            .map_err(|_| invalid(format!("filter_id: not a filter id: {text:?}")))?,
    };
    let filter = catalog
        .saved_filter(filter_id)
        .ok_or_else(|| invalid(format!("filter_id: no saved filter {filter_id}")))?;
    let policy = checked_policy(&request.policy)?;
    let retries = checked_retries(request.retries)?;
    let max_devices = match request.max_devices {
        None => None,
        Some(max) if max >= 1 => Some(max as u64),
        Some(_) => return Err(invalid("max_devices: must be at least 1")),
    };
    if request
        .phases
        .as_ref()
        .is_some_and(|phases| !phases.is_empty())
    {
        return Err(invalid(
            "phases: a dynamic deployment is not phased here; create it without phases",
        ));
    }
    let force_installation = request.force_installation.unwrap_or(false);
    unless_identical(
        catalog,
        (&name, &artifact_name, force_installation),
        |deployment| {
            deployment
                .dynamic
                .as_ref()
                .is_some_and(|dynamic| dynamic.filter_id == filter_id)
        },
    )?;
    Ok(vec![DomainEvent::DeploymentCreated(DeploymentCreated {
        deployment_id: id,
        name,
        artifact_name,
        devices: Vec::new(),
        phases: Vec::new(),
        force_installation,
        created: now,
        groups: Vec::new(),
        dynamic: Some(DynamicTarget {
            filter_id,
            name: filter.name.clone(),
            terms: filter.terms.clone(),
            max_devices,
        }),
        policy,
        retries,
    })])
}

/// The deployment an operator acts on: 404 unknown, 422 finished.
fn unfinished(
    id: DeploymentId,
    catalog: &TenantCatalog,
) -> Result<&super::tables::DeploymentInfo, DeploymentError> {
    let deployment = catalog
        .deployments
        .get(&id)
        .ok_or(DeploymentError::NotFound)?;
    if deployment.finished() {
        return Err(DeploymentError::Finished);
    }
    Ok(deployment)
}

/// Starts the next phase of an unfinished phased deployment now (`now`), for a user.
pub fn decide_next_phase(
    id: DeploymentId,
    subject: &str,
    now: DateTime<Utc>,
    catalog: &TenantCatalog,
) -> Result<Vec<DomainEvent>, DeploymentError> {
    let deployment = unfinished(id, catalog)?;
    let phase = deployment
        .phases
        .iter()
        .position(|phase| phase.start_ts > now)
        .ok_or(DeploymentError::NoPhaseLeft)?;
    Ok(vec![DomainEvent::PhaseStarted(PhaseStarted {
        deployment_id: id,
        phase,
        started: now,
        subject: subject.to_owned(),
    })])
}

/// Aborts an unfinished deployment.
pub fn decide_abort(
    id: DeploymentId,
    catalog: &TenantCatalog,
) -> Result<Vec<DomainEvent>, DeploymentError> {
    unfinished(id, catalog)?;
    Ok(vec![DomainEvent::DeploymentAborted(DeploymentAborted {
        deployment_id: id,
        policy: None,
    })])
}

/// An operator (`subject`) pauses an unfinished deployment that is not paused (`pause`),
/// or resumes one that is.
pub fn decide_pause(
    id: DeploymentId,
    subject: &str,
    pause: bool,
    catalog: &TenantCatalog,
) -> Result<Vec<DomainEvent>, DeploymentError> {
    let deployment = unfinished(id, catalog)?;
    let subject = subject.to_owned();
    match (pause, deployment.paused) {
        (true, true) => Err(DeploymentError::AlreadyPaused),
        (false, false) => Err(DeploymentError::NotPaused),
        (true, false) => Ok(vec![DomainEvent::DeploymentPaused(DeploymentPaused {
            deployment_id: id,
            cause: PauseCause::Operator { subject },
        })]),
        (false, true) => Ok(vec![DomainEvent::DeploymentResumed(DeploymentResumed {
            deployment_id: id,
            subject,
        })]),
    }
}

/// Whether the deployment's failure policy has tripped, folded from its own stream: it trips
/// once, so a deployment resumed after a trip goes on.
pub fn evolve_tripped(tripped: bool, event: &DomainEvent) -> bool {
    tripped
        || matches!(
            event,
            DomainEvent::DeploymentPaused(DeploymentPaused {
                cause: PauseCause::Policy(_),
                ..
            }) | DomainEvent::DeploymentAborted(DeploymentAborted {
                policy: Some(_),
                ..
            })
        )
}

/// With `device` reaching the final `status` (of its final attempt), whether the deployment's
/// policy trips: failed devices at least the threshold's percent of the finished ones, once at
/// least the minimum have finished (devices aborted or decommissioned count as neither). Counts are the tables'
/// plus this device. A deployment this report finishes does not trip.
pub fn decide_policy(
    catalog: &TenantCatalog,
    id: DeploymentId,
    device: &str,
    status: DeviceDeploymentStatus,
) -> Option<DomainEvent> {
    let deployment = catalog.deployments.get(&id)?;
    let policy = deployment.policy.as_ref()?;
    // A failure with retries left is not the device's final attempt.
    if deployment.finished() || deployment.policy_tripped || !deployment.ends_entry(device, status)
    {
        return None;
    }
    let newly_final = !deployment.finished_devices.contains(device);
    if deployment
        .devices_to_finish()
        .is_some_and(|count| deployment.finished_devices.len() + usize::from(newly_final) >= count)
    {
        return None;
    }
    let outcome = !matches!(
        status,
        DeviceDeploymentStatus::Aborted | DeviceDeploymentStatus::Decommissioned
    );
    let finished = deployment.outcomes.finished.len() as u64
        + u64::from(outcome && !deployment.outcomes.finished.contains(device));
    let failed = deployment.outcomes.failed.len() as u64
        + u64::from(
            status == DeviceDeploymentStatus::Failure
                && !deployment.outcomes.failed.contains(device),
        );
    let trip = policy.trip(finished, failed)?;
    Some(tripped(id, policy, trip))
}

/// The pause or abort a tripped policy decides.
fn tripped(id: DeploymentId, policy: &RolloutPolicy, trip: PolicyTrip) -> DomainEvent {
    match policy.on_threshold {
        OnThreshold::Pause => DomainEvent::DeploymentPaused(DeploymentPaused {
            deployment_id: id,
            cause: PauseCause::Policy(trip),
        }),
        OnThreshold::Abort => DomainEvent::DeploymentAborted(DeploymentAborted {
            deployment_id: id,
            policy: Some(trip),
        }),
    }
}

/// Whether an unfinished deployment's policy trips on the counts the tables hold now: what
/// reports racing each other (each deciding without the others) can leave undecided.
pub fn decide_policy_due(catalog: &TenantCatalog, id: DeploymentId) -> Option<DomainEvent> {
    let deployment = catalog.deployments.get(&id)?;
    let policy = deployment.policy.as_ref()?;
    if deployment.finished() || deployment.policy_tripped {
        return None;
    }
    let trip = policy.trip(
        deployment.outcomes.finished.len() as u64,
        deployment.outcomes.failed.len() as u64,
    )?;
    Some(tripped(id, policy, trip))
}

/// Admissions of a phased deployment, folded from its own stream.
#[derive(Debug, Default)]
pub struct Admissions {
    per_phase: HashMap<usize, usize>,
    admitted: HashSet<String>,
}

pub fn evolve_admissions(mut state: Admissions, event: &DomainEvent) -> Admissions {
    if let DomainEvent::DeviceAdmittedToPhase(admitted) = event {
        if state.admitted.insert(admitted.device_id.clone()) {
            *state.per_phase.entry(admitted.phase).or_default() += 1;
        }
    }
    state
}

/// Admits a device to the current phase while it has room; a device admitted before stays
/// admitted (a retried request appends nothing).
pub fn decide_admission(
    state: &Admissions,
    deployment: DeploymentId,
    device: &str,
    phase: usize,
    capacity: u64,
) -> Result<Vec<DomainEvent>, PhaseFull> {
    if state.admitted.contains(device) {
        return Ok(Vec::new());
    }
    if state.per_phase.get(&phase).copied().unwrap_or(0) as u64 >= capacity {
        return Err(PhaseFull);
    }
    Ok(vec![DomainEvent::DeviceAdmittedToPhase(
        events::deployment::DeviceAdmittedToPhase {
            deployment_id: deployment,
            device_id: device.to_owned(),
            phase,
        },
    )])
}

/// The current phase has no room left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseFull;

#[cfg(test)]
mod tests;

//! What the log tells about a rollout beyond its read models: why a device's entry is where it
//! is (its causal history), and what a failure policy would have done to a past rollout. Pure
//! folds of recorded events; the routes read the events.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use events::deployment::{DeviceDeploymentStatus, RolloutPolicy, TIMEOUT_SUBSTATE};
use events::{DeploymentId, DomainEvent, RecordedEvent, SchemaError};
use serde::Serialize;
use serde_json::{json, Value};

/// Why an entry changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cause {
    /// `device_report`, `phase`, `timeout`, `retry`, `operator` (a user aborted it), `abort`
    /// (aborted, by no known user), `policy` or `decommission`.
    pub kind: &'static str,
    /// The user (their token's `sub`) or device that caused it, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

/// One change of a device's entry in a deployment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The log position of the event that made it.
    pub position: u64,
    pub at: DateTime<Utc>,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub substate: Option<String>,
    pub attempt: u32,
    pub cause: Cause,
}

/// Who an event's metadata names: a user's or device's id without its kind.
fn subject(event: &RecordedEvent) -> Option<String> {
    let actor = event.metadata.actor.as_deref()?;
    Some(actor.split_once(':').map_or(actor, |(_, id)| id).to_owned())
}

fn cause(kind: &'static str, subject: Option<String>, detail: Option<Value>) -> Cause {
    Cause {
        kind,
        subject,
        detail,
    }
}

/// Every change of `device`'s entry in `deployment`, oldest first, from the device's own
/// stream and the deployment's aborts (`events` in log order; others are passed over).
pub fn device_history(
    deployment: DeploymentId,
    device: &str,
    events: &[RecordedEvent],
) -> Result<Vec<Change>, SchemaError> {
    let mut changes: Vec<Change> = Vec::new();
    let mut status: Option<DeviceDeploymentStatus> = None;
    let mut attempt = 1;
    for event in events {
        let decoded = event.decode()?;
        let (next, substate, cause) = match decoded {
            DomainEvent::DeviceJoinedDeployment(joined)
                if joined.deployment_id == deployment && joined.device_id == device =>
            {
                let cause = match (joined.status, joined.phase) {
                    (DeviceDeploymentStatus::Decommissioned, _) => {
                        cause("decommission", subject(event), None)
                    }
                    (_, Some(phase)) => cause(
                        "phase",
                        subject(event),
                        Some(
                            json!({"phase": phase, "installed_artifact_name": joined.installed_artifact_name}),
                        ),
                    ),
                    (_, None) => cause(
                        "device_report",
                        subject(event),
                        Some(json!({"installed_artifact_name": joined.installed_artifact_name})),
                    ),
                };
                (joined.status, None, cause)
            }
            DomainEvent::DeviceDeploymentStatusChanged(changed)
                if changed.deployment_id == deployment && changed.device_id == device =>
            {
                (
                    changed.status,
                    changed.substate,
                    cause("device_report", subject(event), None),
                )
            }
            DomainEvent::DeviceDeploymentTimedOut(timed_out)
                if timed_out.deployment_id == deployment && timed_out.device_id == device =>
            {
                let detail = json!({"status": timed_out.status, "since": timed_out.since,
                                    "timeout_seconds": timed_out.timeout_seconds});
                (
                    DeviceDeploymentStatus::Failure,
                    Some(TIMEOUT_SUBSTATE.to_owned()),
                    cause("timeout", None, Some(detail)),
                )
            }
            DomainEvent::DeviceDeploymentRetried(retried)
                if retried.deployment_id == deployment && retried.device_id == device =>
            {
                attempt = retried.attempt;
                let detail = json!({"installed_artifact_name": retried.installed_artifact_name});
                (
                    DeviceDeploymentStatus::Pending,
                    None,
                    cause("retry", subject(event), Some(detail)),
                )
            }
            DomainEvent::DeviceDecommissioned(decommissioned)
                if decommissioned.device_id == device && status.is_some_and(|s| !s.is_final()) =>
            {
                (
                    DeviceDeploymentStatus::Decommissioned,
                    None,
                    cause("decommission", subject(event), None),
                )
            }
            DomainEvent::DeploymentAborted(aborted)
                if aborted.deployment_id == deployment && status.is_some_and(|s| !s.is_final()) =>
            {
                let by_user = event
                    .metadata
                    .actor
                    .as_deref()
                    .is_some_and(|actor| actor.starts_with("user:"));
                let cause = match aborted.policy {
                    Some(trip) => cause("policy", None, Some(json!(trip))),
                    // An operator's abort names the user; one of unknown origin says only
                    // that the deployment was aborted.
                    None if by_user => {
                        cause("operator", subject(event), Some(json!({"action": "abort"})))
                    }
                    None => cause("abort", subject(event), None),
                };
                (DeviceDeploymentStatus::Aborted, None, cause)
            }
            _ => continue,
        };
        status = Some(next);
        changes.push(Change {
            position: event.position.0,
            at: event.metadata.occurred_at,
            status: next.as_str(),
            substate,
            attempt,
            cause,
        });
    }
    Ok(changes)
}

/// Where a tried policy would have tripped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TripPoint {
    pub position: u64,
    pub time: DateTime<Utc>,
    pub finished: u64,
    pub failed: u64,
    pub failure_percent: f64,
}

/// What a policy would have done to a recorded rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Simulation {
    pub tripped: bool,
    pub at: Option<TripPoint>,
    /// Devices that started the deployment after the trip: a pause or an abort would have
    /// given them nothing.
    pub devices_started_after: u64,
    /// Those of them whose final attempt failed: the failures the policy would have spared.
    pub devices_failed_after: u64,
}

/// A device's final status in the deployment, where it counts for a policy.
struct Finish {
    position: u64,
    time: DateTime<Utc>,
    device: String,
    failed: bool,
    attempt: u32,
}

/// A deployment's recorded rollout folded down to what a policy is tried on: when each
/// device started and each final outcome, a few words per device whatever the events held,
/// so that a replay keeps only this and the page of events it is reading.
pub struct RecordedRollout {
    deployment: DeploymentId,
    /// Devices whose finishing ends the deployment: its device list, or a dynamic
    /// deployment's `max_devices` (none: only an abort ends it).
    targeted: Option<usize>,
    /// The retries the deployment was created with: a failed device with one of them left
    /// was still owed its retry, whatever is tried.
    recorded_retries: u32,
    started: BTreeMap<String, u64>,
    attempts: HashMap<String, u32>,
    finishes: Vec<Finish>,
}

impl RecordedRollout {
    pub fn new(deployment: DeploymentId) -> Self {
        Self {
            deployment,
            targeted: None,
            recorded_retries: 0,
            started: BTreeMap::new(),
            attempts: HashMap::new(),
            finishes: Vec::new(),
        }
    }

    /// Takes in one event, in log order (events naming other deployments are passed over).
    pub fn fold(&mut self, event: &RecordedEvent) -> Result<(), SchemaError> {
        let deployment = self.deployment;
        let (device, status) = match event.decode()? {
            DomainEvent::DeploymentCreated(created) if created.deployment_id == deployment => {
                self.targeted = match &created.dynamic {
                    None => Some(created.devices.len()),
                    Some(dynamic) => dynamic.max_devices.map(|max| max as usize),
                };
                self.recorded_retries = created.retries;
                return Ok(());
            }
            DomainEvent::DeviceJoinedDeployment(joined) if joined.deployment_id == deployment => {
                self.started
                    .entry(joined.device_id.clone())
                    .or_insert(event.position.0);
                (joined.device_id, joined.status)
            }
            DomainEvent::DeviceDeploymentStatusChanged(changed)
                if changed.deployment_id == deployment =>
            {
                (changed.device_id, changed.status)
            }
            DomainEvent::DeviceDeploymentTimedOut(timed_out)
                if timed_out.deployment_id == deployment =>
            {
                (timed_out.device_id, DeviceDeploymentStatus::Failure)
            }
            DomainEvent::DeviceDeploymentRetried(retried)
                if retried.deployment_id == deployment =>
            {
                self.attempts.insert(retried.device_id, retried.attempt);
                return Ok(());
            }
            _ => return Ok(()),
        };
        if !status.is_final()
            || matches!(
                status,
                DeviceDeploymentStatus::Aborted | DeviceDeploymentStatus::Decommissioned
            )
        {
            return Ok(());
        }
        self.finishes.push(Finish {
            position: event.position.0,
            time: event.metadata.occurred_at,
            attempt: self.attempts.get(&device).copied().unwrap_or(1),
            failed: status == DeviceDeploymentStatus::Failure,
            device,
        });
        Ok(())
    }

    /// The rollout replayed under `policy` and `retries`, as the command side would have
    /// decided: a device's outcome counts once it is final (a failure with a retry left under
    /// `retries` is not, when the device tried again or was still owed the retry by the
    /// recorded deployment; one past them is, whatever the device did next), aborted and
    /// decommissioned devices count as neither, and the report that finishes a deployment's
    /// last device does not trip it.
    pub fn simulate(&self, policy: &RolloutPolicy, retries: u32) -> Simulation {
        let Self {
            targeted,
            recorded_retries,
            started,
            attempts,
            finishes,
            ..
        } = self;
        let (targeted, recorded_retries) = (*targeted, *recorded_retries);
        let last_attempt = |device: &str| attempts.get(device).copied().unwrap_or(1);
        let (mut finished, mut failed) = (HashSet::new(), HashSet::new());
        let mut at = None;
        for finish in finishes {
            // Under the tried retries, a device's outcome is settled by its first failure past
            // them (its later attempts would not have happened), else by its last attempt.
            if finished.contains(finish.device.as_str())
                || (finish.failed
                    && finish.attempt <= retries
                    && (finish.attempt < last_attempt(&finish.device)
                        || finish.attempt <= recorded_retries))
            {
                continue;
            }
            finished.insert(finish.device.as_str());
            if finish.failed {
                failed.insert(finish.device.as_str());
            }
            if targeted.is_some_and(|targeted| finished.len() >= targeted) {
                break;
            }
            if let Some(trip) = policy.trip(finished.len() as u64, failed.len() as u64) {
                at = Some(TripPoint {
                    position: finish.position,
                    time: finish.time,
                    finished: trip.finished,
                    failed: trip.failed,
                    failure_percent: trip.failure_percent,
                });
                break;
            }
        }
        let Some(point) = at else {
            return Simulation {
                tripped: false,
                at: None,
                devices_started_after: 0,
                devices_failed_after: 0,
            };
        };
        // A pause lets devices already updating finish; an abort stops them too, but they had
        // started: either way, what is spared is the devices that started later.
        let later: HashSet<&str> = started
            .iter()
            .filter(|(_, position)| **position > point.position)
            .map(|(device, _)| device.as_str())
            .collect();
        let failed_later = finishes
            .iter()
            .filter(|finish| later.contains(finish.device.as_str()))
            .fold(HashMap::new(), |mut outcome, finish| {
                outcome.insert(finish.device.as_str(), finish.failed);
                outcome
            })
            .values()
            .filter(|failed| **failed)
            .count();
        Simulation {
            tripped: true,
            at: Some(point),
            devices_started_after: later.len() as u64,
            devices_failed_after: failed_later as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::deployment::{
        DeploymentCreated, DeviceDeploymentStatusChanged, DeviceJoinedDeployment, DynamicTarget,
        OnThreshold,
    };
    use events::{EventMetadata, NewEvent, Position, StreamName, TenantId};

    /// A deployment's recorded events, numbered from 1 as the log would.
    struct Recording {
        deployment: DeploymentId,
        events: Vec<RecordedEvent>,
    }

    impl Recording {
        fn new(devices: &[&str], dynamic_max: Option<Option<u64>>, retries: u32) -> Self {
            let deployment = DeploymentId::new();
            let mut recording = Self {
                deployment,
                events: Vec::new(),
            };
            recording.push(DomainEvent::DeploymentCreated(DeploymentCreated {
                deployment_id: deployment,
                name: "recorded".into(),
                artifact_name: "release".into(),
                devices: devices.iter().map(|device| device.to_string()).collect(),
                phases: Vec::new(),
                force_installation: false,
                created: Utc::now(),
                groups: Vec::new(),
                dynamic: dynamic_max.map(|max_devices| DynamicTarget {
                    filter_id: uuid::Uuid::new_v4(),
                    name: "filter".into(),
                    terms: Vec::new(),
                    max_devices,
                }),
                policy: None,
                retries,
            }));
            recording
        }

        fn push(&mut self, event: DomainEvent) {
            let new = NewEvent::new(uuid::Uuid::new_v4(), &event, EventMetadata::now());
            self.events.push(RecordedEvent {
                position: Position(self.events.len() as u64 + 1),
                event_id: new.event_id,
                tenant: TenantId::default(),
                stream: StreamName::new("recorded"),
                stream_version: 1,
                event_type: new.event_type,
                schema_version: new.schema_version,
                metadata: new.metadata,
                payload: new.payload,
            });
        }

        /// `device` joins and ends in `status`.
        fn finishes(&mut self, device: &str, status: DeviceDeploymentStatus) {
            self.push(DomainEvent::DeviceJoinedDeployment(
                DeviceJoinedDeployment {
                    deployment_id: self.deployment,
                    device_id: device.into(),
                    artifact_id: None,
                    status: DeviceDeploymentStatus::Pending,
                    device_type: "pi".into(),
                    installed_artifact_name: "factory".into(),
                    phase: None,
                    matched_filter: None,
                },
            ));
            self.push(DomainEvent::DeviceDeploymentStatusChanged(
                DeviceDeploymentStatusChanged {
                    deployment_id: self.deployment,
                    device_id: device.into(),
                    status,
                    substate: None,
                },
            ));
        }

        fn simulate(&self, policy: &RolloutPolicy, retries: u32) -> Simulation {
            let mut recorded = RecordedRollout::new(self.deployment);
            for event in &self.events {
                recorded.fold(event).unwrap();
            }
            recorded.simulate(policy, retries)
        }
    }

    /// Trips at half failed, once one device has finished.
    fn half_failed() -> RolloutPolicy {
        RolloutPolicy {
            failure_threshold_percent: 50,
            min_finished_devices: 1,
            on_threshold: OnThreshold::Pause,
            device_timeout_seconds: None,
        }
    }

    #[test]
    fn the_report_that_fills_a_dynamic_deployments_last_seat_does_not_trip() {
        use DeviceDeploymentStatus::{Failure, Success};
        let mut two_seats = Recording::new(&[], Some(Some(2)), 0);
        two_seats.finishes("a", Success);
        two_seats.finishes("b", Failure);
        assert!(!two_seats.simulate(&half_failed(), 0).tripped);

        // Without a limit there is no last seat: the same reports trip.
        let mut open = Recording::new(&[], Some(None), 0);
        open.finishes("a", Success);
        open.finishes("b", Failure);
        let tripped = open.simulate(&half_failed(), 0);
        assert!(tripped.tripped);
        assert_eq!(tripped.at.unwrap().failed, 1);
    }

    #[test]
    fn a_failure_still_owed_its_recorded_retry_is_not_final() {
        use DeviceDeploymentStatus::{Failure, Success};
        // Recorded with one retry: b failed and has not asked again, so live it was never
        // counted, and tried with the same retry it is not either.
        let mut recorded = Recording::new(&["a", "b", "c"], None, 1);
        recorded.finishes("a", Success);
        recorded.finishes("b", Failure);
        assert!(!recorded.simulate(&half_failed(), 1).tripped);
        // Tried without retries, b's failure was its last attempt.
        assert!(recorded.simulate(&half_failed(), 0).tripped);

        // Recorded without retries, b was never owed one: tried with one, the failure of a
        // device that never got to try again counts.
        let mut unretried = Recording::new(&["a", "b", "c"], None, 0);
        unretried.finishes("a", Success);
        unretried.finishes("b", Failure);
        assert!(unretried.simulate(&half_failed(), 1).tripped);
    }
}

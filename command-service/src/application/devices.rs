//! The device API's commands: what to install next, status reports and logs. These are the
//! hot path: they read the write side's tables as they are, without waiting for them.

use chrono::{DateTime, Utc};
use events::deployment::{DeviceDeploymentStatus, LogMessage};
use events::{DeploymentId, DomainEvent, StreamName};

use super::{Caller, Decision, Outcome, Pipeline, Session};
use crate::domain::device::{self, Admission, Asked, DeviceState, Next};
use crate::domain::{deployments, inventory};
use crate::error::ApiError;

/// What the device runs next. A device joining a phased deployment takes a seat in the
/// current phase in the same transaction as its entry: a full phase answers `Nothing` and
/// records nothing.
pub async fn next(
    pipeline: &Pipeline,
    caller: &Caller,
    asked: &Asked,
) -> Result<Outcome<Next>, ApiError> {
    let stream = StreamName::new(device::stream(&asked.device));
    pipeline
        .run(caller, |session| {
            let stream = stream.clone();
            async move {
                let state = session.load_folded::<DeviceState>(&stream).await?;
                // A dynamic deployment the device might join: its filter is matched against
                // the device's inventory as it is now, asserted unchanged at append.
                let inventory =
                    if session.tables_now(|tables| tables.dynamic_open_to(&asked.device)) {
                        let stream = StreamName::new(inventory::stream(&asked.device));
                        Some(session.load(&stream, inventory::evolve).await?)
                    } else {
                        None
                    };
                let decision = session.tables_now(|tables| {
                    device::decide_next(&state, asked, tables, inventory.as_ref())
                });
                let mut appends = Vec::new();
                if let Some(Admission {
                    deployment,
                    phase,
                    capacity,
                }) = decision.admission
                {
                    let seats = StreamName::new(deployments::stream(deployment));
                    let admissions = session.load(&seats, deployments::evolve_admissions).await?;
                    match deployments::decide_admission(
                        &admissions,
                        deployment,
                        &asked.device,
                        phase,
                        capacity,
                    ) {
                        Ok(admitted) => appends.push((seats, admitted)),
                        Err(deployments::PhaseFull) => return Ok(Decision::answer(Next::Nothing)),
                    }
                }
                // A device that joins in a final status (no artifact for it, or the artifact
                // installed already) finishes its entry there: its deployment's policy counts
                // it as it counts a report.
                let finished = decision.events.iter().find_map(|event| match event {
                    DomainEvent::DeviceJoinedDeployment(joined) if joined.status.is_final() => {
                        Some((joined.deployment_id, joined.status))
                    }
                    _ => None,
                });
                let trip = match finished {
                    Some((deployment, status)) => {
                        policy_check(&session, deployment, &asked.device, status).await?
                    }
                    None => None,
                };
                appends.push((stream, decision.events));
                appends.extend(trip);
                Ok(Decision {
                    answer: decision.answer,
                    appends,
                })
            }
        })
        .await
}

/// A status the device reports for its entry in a deployment.
pub async fn report_status(
    pipeline: &Pipeline,
    caller: &Caller,
    device_id: &str,
    deployment: DeploymentId,
    status: DeviceDeploymentStatus,
    substate: Option<String>,
) -> Result<Outcome<()>, ApiError> {
    let stream = StreamName::new(device::stream(device_id));
    pipeline
        .run(caller, |session| {
            let (stream, substate) = (stream.clone(), substate.clone());
            async move {
                let state = session.load_folded::<DeviceState>(&stream).await?;
                let events = session.tables_now(|tables| {
                    device::decide_status(&state, device_id, deployment, status, substate, tables)
                })?;
                // The report first, then what it caused: the log reads in that order.
                let trip = if !events.is_empty() && status.is_final() {
                    policy_check(&session, deployment, device_id, status).await?
                } else {
                    None
                };
                let mut appends = vec![(stream, events)];
                appends.extend(trip);
                Ok(Decision {
                    answer: (),
                    appends,
                })
            }
        })
        .await
}

/// With the device's entry reaching the final `status`, the pause or abort its deployment's
/// failure policy decides, for the deployment's stream, in the same append: the counts, with
/// this device, may trip it.
async fn policy_check(
    session: &Session,
    deployment: DeploymentId,
    device_id: &str,
    status: DeviceDeploymentStatus,
) -> Result<Option<(StreamName, Vec<DomainEvent>)>, ApiError> {
    let policed = session.tables_now(|tables| {
        tables
            .deployments
            .get(&deployment)
            .is_some_and(|d| d.policy.is_some())
    });
    if !policed {
        return Ok(None);
    }
    // The tables as they are: a report answers once the tables hold it, so reports one after
    // another each see the ones before. Reports racing each other may each miss the others;
    // what they leave undecided the rollout checks trip (`crate::rollout_checks`).
    let trip = session
        .tables_now(|tables| deployments::decide_policy(tables, deployment, device_id, status));
    let Some(trip) = trip else {
        return Ok(None);
    };
    let own = StreamName::new(deployments::stream(deployment));
    let tripped = session.load(&own, deployments::evolve_tripped).await?;
    Ok((!tripped).then(|| (own, vec![trip])))
}

/// Fails the device's entry in `deployment` if, at `now`, it has stayed in a non-final status
/// longer than the deployment's device timeout; the failure counts for the failure policy
/// as a report would. Decided on the device's stream: a report racing it makes it decide
/// again (and find nothing to do), and so does another instance timing out the same entry,
/// so each timeout is recorded once.
pub async fn time_out(
    pipeline: &Pipeline,
    caller: &Caller,
    device_id: &str,
    deployment: DeploymentId,
    now: DateTime<Utc>,
) -> Result<Outcome<()>, ApiError> {
    let stream = StreamName::new(device::stream(device_id));
    pipeline
        .run(caller, |session| {
            let stream = stream.clone();
            async move {
                let state = session.load_folded::<DeviceState>(&stream).await?;
                // The tables, once they reflect the stream as loaded, say since when the
                // entry has been in its status.
                let events = session
                    .tables(&[], |tables| {
                        let info = tables.deployments.get(&deployment)?;
                        let timeout = info.policy.as_ref()?.device_timeout_seconds?;
                        let (_, status, since) = info
                            .timed_out(now)
                            .find(|(device, _, _)| *device == device_id)?;
                        Some(device::decide_timeout(
                            &state,
                            device_id,
                            deployment,
                            (status, since, timeout),
                            tables,
                        ))
                    })
                    .await?
                    .unwrap_or_default();
                let trip = if events.is_empty() {
                    None
                } else {
                    let failed = DeviceDeploymentStatus::Failure;
                    policy_check(&session, deployment, device_id, failed).await?
                };
                let mut appends = vec![(stream, events)];
                appends.extend(trip);
                Ok(Decision {
                    answer: (),
                    appends,
                })
            }
        })
        .await
}

/// The log of the device's attempt at a deployment.
pub async fn save_log(
    pipeline: &Pipeline,
    caller: &Caller,
    device_id: &str,
    deployment: DeploymentId,
    messages: Vec<LogMessage>,
) -> Result<Outcome<()>, ApiError> {
    let stream = StreamName::new(device::stream(device_id));
    pipeline
        .run(caller, |session| {
            let (stream, messages) = (stream.clone(), messages.clone());
            async move {
                let state = session.load_folded::<DeviceState>(&stream).await?;
                let events = device::decide_log(&state, device_id, deployment, messages)?;
                Ok(Decision::append(stream, events, ()))
            }
        })
        .await
}

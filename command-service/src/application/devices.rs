//! The device API's commands: what to install next, status reports and logs. These are the
//! hot path: they read the write side's tables as they are, without waiting for them.

use events::deployment::{DeviceDeploymentStatus, LogMessage};
use events::{DeploymentId, StreamName};

use super::{Caller, Decision, Outcome, Pipeline};
use crate::domain::device::{self, Admission, Asked, Next};
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
                let state = session.load(&stream, device::evolve).await?;
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
                appends.push((stream, decision.events));
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
                let state = session.load(&stream, device::evolve).await?;
                let events = session.tables_now(|tables| {
                    device::decide_status(&state, device_id, deployment, status, substate, tables)
                })?;
                let mut appends = Vec::new();
                // A final status of a deployment with a failure policy: the counts, with
                // everything committed so far and this device, may trip it, in this append.
                let policed = || {
                    session.tables_now(|tables| {
                        tables
                            .deployments
                            .get(&deployment)
                            .is_some_and(|d| d.policy.is_some())
                    })
                };
                if !events.is_empty() && status.is_final() && policed() {
                    let trip = session
                        .tables(&[], |tables| {
                            deployments::decide_policy(tables, deployment, device_id, status)
                        })
                        .await?;
                    if let Some(trip) = trip {
                        let own = StreamName::new(deployments::stream(deployment));
                        let tripped = session.load(&own, deployments::evolve_tripped).await?;
                        if !tripped {
                            appends.push((own, vec![trip]));
                        }
                    }
                }
                appends.push((stream, events));
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
                let state = session.load(&stream, device::evolve).await?;
                let events = device::decide_log(&state, device_id, deployment, messages)?;
                Ok(Decision::append(stream, events, ()))
            }
        })
        .await
}

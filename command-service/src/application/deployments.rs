//! Deployment commands: create, abort, and take a device out of its deployments.

use chrono::{DateTime, Utc};
use events::{DeploymentId, DomainEvent, StreamName};

use super::{Caller, Decision, Outcome, Pipeline, Session};
use crate::domain::deployments::{self, NewDeployment};
use crate::domain::tables::TenantCatalog;
use crate::domain::{artifacts, device, filters};
use crate::error::ApiError;

/// Creates a deployment. Decided on the tenant's creation stream, so two identical requests
/// cannot both pass, and guarded by the artifacts stream: an artifact deleted meanwhile makes
/// it decide again.
pub async fn create(
    pipeline: &Pipeline,
    caller: &Caller,
    request: &NewDeployment,
    id: DeploymentId,
    now: DateTime<Utc>,
    max_devices: usize,
) -> Result<Outcome<()>, ApiError> {
    from_tables(
        pipeline,
        caller,
        StreamName::new(deployments::CREATION_STREAM),
        &[StreamName::new(artifacts::STREAM)],
        |tables| deployments::decide_creation(request, id, now, max_devices, tables),
    )
    .await
}

/// Creates a dynamic deployment from a saved filter; guarded by the artifacts and the filters
/// streams.
pub async fn create_dynamic(
    pipeline: &Pipeline,
    caller: &Caller,
    request: &NewDeployment,
    id: DeploymentId,
    now: DateTime<Utc>,
) -> Result<Outcome<()>, ApiError> {
    from_tables(
        pipeline,
        caller,
        StreamName::new(deployments::CREATION_STREAM),
        &[
            StreamName::new(artifacts::STREAM),
            StreamName::new(filters::STREAM),
        ],
        |tables| deployments::decide_dynamic_creation(request, id, now, tables),
    )
    .await
}

/// What an operator does to a deployment after creating it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Abort,
    Pause,
    Resume,
    /// Start the next phase at this moment.
    NextPhase(DateTime<Utc>),
}

/// An operator (`subject`) acts on a deployment. Decided from the tables, whose facts about
/// a deployment come from its own stream and its devices' streams; appending to the
/// deployment's stream at the version read serialises aborts, pauses, resumes, phase starts
/// and phase admissions.
pub async fn act_on(
    pipeline: &Pipeline,
    caller: &Caller,
    id: DeploymentId,
    subject: &str,
    action: Action,
) -> Result<Outcome<()>, ApiError> {
    from_tables(
        pipeline,
        caller,
        StreamName::new(deployments::stream(id)),
        &[],
        |tables| match action {
            Action::Abort => deployments::decide_abort(id, tables),
            Action::Pause => deployments::decide_pause(id, subject, true, tables),
            Action::Resume => deployments::decide_pause(id, subject, false, tables),
            Action::NextPhase(now) => deployments::decide_next_phase(id, subject, now, tables),
        },
    )
    .await
}

/// Trips the deployment's failure policy if the counts now call for it and it has not
/// tripped: decided on the deployment's stream, so it trips once however many decide it.
pub async fn trip_if_due(
    pipeline: &Pipeline,
    caller: &Caller,
    id: DeploymentId,
) -> Result<Outcome<()>, ApiError> {
    let stream = StreamName::new(deployments::stream(id));
    pipeline
        .run(caller, |session| {
            let stream = stream.clone();
            async move {
                let tripped = session.load(&stream, deployments::evolve_tripped).await?;
                let trip = session
                    .tables(&[], |tables| deployments::decide_policy_due(tables, id))
                    .await?;
                let events = trip.filter(|_| !tripped).into_iter().collect();
                Ok(Decision::append(stream, events, ()))
            }
        })
        .await
}

/// Events for `stream` decided from the tables alone, once they reflect the stream and
/// `sources` at the versions the decision is appended at.
async fn from_tables<E>(
    pipeline: &Pipeline,
    caller: &Caller,
    stream: StreamName,
    sources: &[StreamName],
    decide: impl Fn(&TenantCatalog) -> Result<Vec<DomainEvent>, E>,
) -> Result<Outcome<()>, ApiError>
where
    ApiError: From<E>,
{
    pipeline
        .run(caller, |session| {
            let stream = stream.clone();
            let decide = &decide;
            async move {
                // Its version only: the facts of the decision are the tables'.
                session.load(&stream, |(), _| ()).await?;
                let events = session.tables(sources, decide).await??;
                Ok(Decision::append(stream, events, ()))
            }
        })
        .await
}

/// Decommissions the device's deployments (Mender's two steps); nothing to decommission
/// records nothing.
pub async fn decommission(
    pipeline: &Pipeline,
    caller: &Caller,
    device_id: &str,
) -> Result<Outcome<()>, ApiError> {
    pipeline
        .run(caller, |session| async move {
            let (stream, events) = decommissioned_entries(&session, device_id).await?;
            Ok(Decision::append(stream, events, ()))
        })
        .await
}

/// Within a command: the device's entries stream and the events that decommission its
/// deployments, for any command that takes a device out of service.
pub(super) async fn decommissioned_entries(
    session: &Session,
    device_id: &str,
) -> Result<(StreamName, Vec<DomainEvent>), ApiError> {
    let stream = StreamName::new(device::stream(device_id));
    let state: device::DeviceState = session.load_folded(&stream).await?;
    // Whether an entry is still unfinished depends on aborts, which only the tables know.
    let events = session
        .tables(&[], |tables| {
            device::decide_decommission(&state, device_id, tables)
        })
        .await?;
    Ok((stream, events))
}

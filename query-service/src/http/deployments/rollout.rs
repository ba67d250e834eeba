//! What the log tells about a rollout (ours, v2): each device's causal history in a
//! deployment, and a failure policy tried on a past rollout.

use axum::extract::{Path, State};
use axum::Json;
use event_log::Selection;
use events::deployment::{checked_retries, DeviceDeploymentStatus, PolicyRequest};
use events::{DeploymentId, Position, RecordedEvent, StreamName};
use http_edge::auth::User;
use http_edge::JsonBody;
use serde::Deserialize;

use super::super::AppState;
use crate::error::{parse_id, ApiError};
use crate::rollout::{self, Change, RecordedRollout, Simulation};

/// Events read from the log per page.
const PAGE: usize = 1000;

/// Every change of the device's entry in the deployment, oldest first, with its cause; 404
/// for a deployment or an entry that does not exist.
pub async fn device_history(
    State(state): State<AppState>,
    User(user): User,
    Path((id, device_id)): Path<(String, String)>,
) -> Result<Json<Vec<Change>>, ApiError> {
    let tenant = &user.tenant;
    let deployment: DeploymentId = parse_id(&id)?;
    let row = state
        .read_models
        .deployments()
        .find(tenant, deployment)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut events = state
        .log
        .read_stream(tenant, &StreamName::new(format!("device-{device_id}")), 0)
        .await?;
    // An abort is on the deployment's own stream, read only when it may have ended there.
    if row.status == "finished" {
        let own = StreamName::new(format!("deployment-{deployment}"));
        events.extend(
            state
                .log
                .read_stream(tenant, &own, 0)
                .await?
                .into_iter()
                .filter(|event| event.event_type == "DeploymentAborted"),
        );
        events.sort_by_key(|event| event.position);
    }
    let changes = rollout::device_history(deployment, &device_id, &events)
        .map_err(|error| ApiError::Internal(error.into()))?;
    if changes.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(Json(changes))
}

/// `POST .../simulate`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trial {
    policy: Option<PolicyRequest>,
    retries: Option<i64>,
}

/// Replays the deployment's recorded events under the policy (and retries) given: whether
/// and where it would have tripped, and what it would have spared. Reads only; takes its
/// turn with the reads of the past, which it is.
pub async fn simulate(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
    JsonBody(trial): JsonBody<Trial>,
) -> Result<Json<Simulation>, ApiError> {
    let tenant = &user.tenant;
    let deployment: DeploymentId = parse_id(&id)?;
    let policy = trial
        .policy
        .ok_or_else(|| ApiError::BadRequest("policy: required".into()))?
        .checked()
        .map_err(ApiError::BadRequest)?;
    let retries = checked_retries(trial.retries).map_err(ApiError::BadRequest)?;
    if !state
        .read_models
        .deployments()
        .exists(tenant, deployment)
        .await?
    {
        return Err(ApiError::NotFound);
    }
    let _turn = state.replays.turn(tenant).await?;
    let selection = Selection {
        field: "deployment_id".into(),
        value: deployment.to_string(),
        streams: Vec::new(),
        event_types: Vec::new(),
    };
    // Each page is folded and let go: what is kept is a few words per device, not the
    // events (the creation alone holds the whole device list).
    let mut recorded = RecordedRollout::new(deployment);
    let mut after = Position::START;
    loop {
        let page = state
            .log
            .read_tenant_selected(tenant, after, PAGE, &selection)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for event in page.iter().filter(|event| {
            matches!(
                event.event_type.as_str(),
                "DeploymentCreated"
                    | "DeviceJoinedDeployment"
                    | "DeviceDeploymentStatusChanged"
                    | "DeviceDeploymentTimedOut"
                    | "DeviceDeploymentRetried"
            ) && !is_unfinished_report(event)
        }) {
            recorded
                .fold(event)
                .map_err(|error| ApiError::Internal(error.into()))?;
        }
    }
    let simulation = recorded.simulate(&policy, retries);
    Ok(Json(simulation))
}

/// A report of a status that is not final, which a simulation passes over: most of a
/// rollout's events, dropped before they are kept.
fn is_unfinished_report(event: &RecordedEvent) -> bool {
    event.event_type == "DeviceDeploymentStatusChanged"
        && event
            .payload
            .get("status")
            .and_then(|status| status.as_str())
            .and_then(DeviceDeploymentStatus::parse)
            .is_some_and(|status| !status.is_final())
}

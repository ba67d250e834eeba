//! Deployment commands: create, abort, and decommission a device.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{delete, post, put};
use axum::{Extension, Router};
use chrono::Utc;
use events::DeploymentId;
use http_edge::auth::User;
use http_edge::{JsonBody, RequestId};
use serde::Deserialize;

use super::artifacts::caller;
use super::AppState;
use crate::application::deployments::{self, Action};
use crate::application::Caller;
use crate::domain::deployments::NewDeployment;
use crate::error::{parse_id, ApiError};

const BASE: &str = "/api/management/v1/deployments/deployments";
const V2: &str = "/api/management/v2/deployments/deployments";

pub fn router(max_devices: usize) -> Router<AppState> {
    // A deployment may list a whole fleet: 100k UUIDs are 4 MB of JSON, past axum's 2 MB.
    // The body is bounded by what the device limit lets through, so that a request far over
    // it is refused unread rather than parsed whole first.
    let limit = max_create_bytes(max_devices);
    Router::new()
        .route(
            BASE,
            post(create)
                .layer(axum::extract::DefaultBodyLimit::max(limit))
                .layer(axum::middleware::from_fn(move |request, next| {
                    http_edge::refuse_oversized(limit as u64, request, next)
                })),
        )
        .route(&format!("{BASE}/{{id}}/status"), put(abort))
        .route(&format!("{BASE}/devices/{{device}}"), delete(decommission))
        .route(&format!("{BASE}/group/{{name}}"), post(create_for_group))
        .route(V2, post(create_dynamic))
        .route(&format!("{V2}/{{id}}/pause"), post(pause))
        .route(&format!("{V2}/{{id}}/resume"), post(resume))
        .route(&format!("{V2}/{{id}}/phases/next"), post(next_phase))
}

/// The largest deployment request: `max_devices` ids of up to 128 bytes each in JSON (a
/// UUID takes 39), and a MiB for the rest.
fn max_create_bytes(max_devices: usize) -> usize {
    max_devices.saturating_mul(128).saturating_add(1024 * 1024)
}

async fn create(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    JsonBody(request): JsonBody<NewDeployment>,
) -> Result<Response, ApiError> {
    created(&state, &user, &request_id, &request).await
}

/// A deployment to the accepted devices of a static group, expanded now.
async fn create_for_group(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    Path(group): Path<String>,
    JsonBody(request): JsonBody<NewDeployment>,
) -> Result<Response, ApiError> {
    let request = NewDeployment {
        group: Some(group),
        ..request
    };
    created(&state, &user, &request_id, &request).await
}

/// A dynamic deployment (v2): to the devices that match a saved filter when they ask.
async fn create_dynamic(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    JsonBody(request): JsonBody<NewDeployment>,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let caller = Caller {
        at: Some(now),
        ..caller(&user, &request_id)
    };
    let id = DeploymentId::new();
    let outcome = deployments::create_dynamic(&state.pipeline, &caller, &request, id, now).await?;
    Ok(with_location(
        state
            .answered_if(outcome.position, StatusCode::CREATED)
            .await,
        // The deployment is read through v1, which this server serves.
        &format!("{BASE}/{id}"),
    ))
}

fn with_location(mut response: Response, location: &str) -> Response {
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Creates the deployment and answers 201 with its `Location`.
async fn created(
    state: &AppState,
    user: &http_edge::auth::Identity,
    request_id: &RequestId,
    request: &NewDeployment,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let caller = Caller {
        at: Some(now),
        ..caller(user, request_id)
    };
    let id = DeploymentId::new();
    // Guarded by the artifacts stream: an artifact deleted meanwhile makes this decide again.
    let outcome = deployments::create(
        &state.pipeline,
        &caller,
        request,
        id,
        now,
        state.max_deployment_devices,
    )
    .await?;
    Ok(with_location(
        state
            .answered_if(outcome.position, StatusCode::CREATED)
            .await,
        &format!("{BASE}/{id}"),
    ))
}

async fn pause(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    act(&state, &user, &request_id, &id, Action::Pause).await
}

async fn resume(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    act(&state, &user, &request_id, &id, Action::Resume).await
}

/// Starts the next phase now.
async fn next_phase(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    act(
        &state,
        &user,
        &request_id,
        &id,
        Action::NextPhase(Utc::now()),
    )
    .await
}

/// 204; 404 for an unknown deployment, 422 for a finished one, 409 when it already is in
/// the state asked for (or has no phase left to start).
async fn act(
    state: &AppState,
    user: &http_edge::auth::Identity,
    request_id: &RequestId,
    id: &str,
    action: Action,
) -> Result<Response, ApiError> {
    let id: DeploymentId = parse_id(id)?;
    let caller = caller(user, request_id);
    let outcome = deployments::act_on(&state.pipeline, &caller, id, &user.subject, action).await?;
    Ok(state
        .answered_if(outcome.position, StatusCode::NO_CONTENT)
        .await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    status: String,
}

async fn abort(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    JsonBody(change): JsonBody<StatusChange>,
) -> Result<Response, ApiError> {
    // A bad id is refused before a bad body, as Mender does.
    parse_id::<DeploymentId>(&id)?;
    if change.status != "aborted" {
        return Err(ApiError::BadRequest("status: must be \"aborted\"".into()));
    }
    act(&state, &user, &request_id, &id, Action::Abort).await
}

/// Every unfinished entry of the device becomes `decommissioned`; 204 even when it has none.
async fn decommission(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    Path(device_id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&user, &request_id);
    let outcome = deployments::decommission(&state.pipeline, &caller, &device_id).await?;
    Ok(state
        .answered_if(outcome.position, StatusCode::NO_CONTENT)
        .await)
}

//! Deployment commands: create, abort, and decommission a device.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{delete, post, put};
use axum::{Extension, Router};
use chrono::Utc;
use events::{AppendError, AppendRequest, EventMetadata, ExpectedVersion, NewEvent, StreamName};
use http_edge::auth::User;
use http_edge::{JsonBody, RequestId};
use serde::Deserialize;
use uuid::Uuid;

use super::artifacts::caller;
use super::AppState;
use crate::application::{execute, Caller};
use crate::domain::deployments::{self, DeploymentError, NewDeployment};
use crate::domain::device;
use crate::error::{parse_id, ApiError};

const BASE: &str = "/api/management/v1/deployments/deployments";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(BASE, post(create))
        .route(&format!("{BASE}/{{id}}/status"), put(abort))
        .route(&format!("{BASE}/devices/{{device}}"), delete(decommission))
        .route(&format!("{BASE}/group/{{name}}"), post(create_for_group))
}

/// Decides with the catalog and appends at the stream version read before the catalog
/// caught up, so a decision never rests on tables older than the stream it lands on.
async fn decide_on_version<F>(
    state: &AppState,
    caller: &Caller,
    stream: &StreamName,
    decide: F,
) -> Result<events::Position, ApiError>
where
    F: Fn(&crate::catalog::TenantCatalog) -> Result<Vec<events::DomainEvent>, DeploymentError>,
{
    for _ in 0..8 {
        let version = state.log.stream_version(&caller.tenant, stream).await?;
        state.catalog.caught_up(&*state.log).await?;
        let decided = state.catalog.with_tenant(&caller.tenant, &decide)?;
        let metadata = EventMetadata::now()
            .with_actor(&caller.actor)
            .with_correlation(&caller.request_id);
        let request = AppendRequest {
            tenant: caller.tenant.clone(),
            stream: stream.clone(),
            expected: ExpectedVersion::Exact(version),
            events: decided
                .iter()
                .map(|event| NewEvent::new(Uuid::new_v4(), event, metadata.clone()))
                .collect(),
        };
        match state.log.append(request).await {
            Ok(appended) => return Ok(appended.position),
            Err(AppendError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::Busy)
}

async fn create(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    JsonBody(request): JsonBody<NewDeployment>,
) -> Result<Response, ApiError> {
    let caller = caller(&user, &request_id);
    let id = Uuid::new_v4();
    let now = Utc::now();
    let position = decide_on_version(
        &state,
        &caller,
        &StreamName::new(deployments::CREATION_STREAM),
        |catalog| deployments::decide_creation(&request, id, now, catalog),
    )
    .await?;
    let mut response = state.answered(position, StatusCode::CREATED).await;
    if let Ok(location) = HeaderValue::from_str(&format!("{BASE}/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Deployments to a device group need an inventory of groups, which this server has not.
async fn create_for_group(User(_): User, Path(_): Path<String>) -> Result<Response, ApiError> {
    Err(ApiError::BadRequest(
        "deployments to a group need a device registry, which this server does not have: list the devices".into(),
    ))
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
    let id = parse_id(&id)?;
    if change.status != "aborted" {
        return Err(ApiError::BadRequest("status: must be \"aborted\"".into()));
    }
    let caller = caller(&user, &request_id);
    let position = decide_on_version(
        &state,
        &caller,
        &StreamName::new(deployments::stream(id)),
        |catalog| deployments::decide_abort(id, catalog),
    )
    .await?;
    Ok(state.answered(position, StatusCode::NO_CONTENT).await)
}

/// Every unfinished entry of the device becomes `decommissioned`; 204 even when it has none.
async fn decommission(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    Path(device_id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&user, &request_id);
    state.catalog.caught_up(&*state.log).await?;
    let stream = StreamName::new(device::stream(&device_id));
    let position = execute(&*state.log, &caller, &stream, device::evolve, |folded| {
        Ok::<_, ApiError>(state.catalog.with_tenant(&caller.tenant, |catalog| {
            device::decide_decommission(folded, &device_id, catalog)
        }))
    })
    .await?;
    Ok(state.answered_if(position, StatusCode::NO_CONTENT).await)
}

//! The device API: what to install next, status reports and logs.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Extension, Json, Router};
use chrono::Utc;
use events::deployment::{DeviceDeploymentStatus, LogMessage};
use events::{ArtifactId, DeploymentId};
use http_edge::auth::Device;
use http_edge::{JsonBody, RequestId};
use serde::Deserialize;

use super::AppState;
use crate::application::{devices, Caller};
use crate::domain::device::{self, Asked, Next};
use crate::error::{parse_id, ApiError};

const BASE: &str = "/api/devices/v1/deployments/device/deployments";

/// Devices download for this long after being told what to install.
const DEVICE_LINK_HOURS: i64 = 24;
const MAX_FIELD: usize = 4096;
const MAX_SUBSTATE: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            &format!("{BASE}/next"),
            get(next_by_query).post(next_by_body),
        )
        .route(&format!("{BASE}/{{id}}/status"), put(report_status))
        .route(&format!("{BASE}/{{id}}/log"), put(save_log))
}

/// The device as the caller of a command, once its token still stands: a token outlives
/// its auth set's rejection (or reset to pending, dismissal, decommissioning) only until the
/// device's next request, and a token issued before that does not stand again when the
/// device is accepted again. The check is a lookup in the catalog, so the `next` poll costs
/// no I/O more for it.
pub(super) fn device_caller(
    state: &AppState,
    device: &http_edge::auth::Identity,
    request_id: &RequestId,
) -> Result<Caller, ApiError> {
    if state.catalog.with_tenant(&device.tenant, |catalog| {
        catalog.token_refused(&device.subject, device.issued_at)
    }) {
        return Err(ApiError::Unauthorized(
            "the device is not accepted: its token no longer stands".into(),
        ));
    }
    Ok(Caller {
        tenant: device.tenant.clone(),
        actor: format!("device:{}", device.subject),
        request_id: request_id.0.clone(),
        at: None,
    })
}

/// What the device says it runs; the POST body may carry more (provides), which we keep out.
#[derive(Debug, Default, Deserialize)]
struct Running {
    artifact_name: Option<String>,
    device_type: Option<String>,
}

fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    match value {
        Some(value) if !value.is_empty() && value.len() <= MAX_FIELD => Ok(value),
        _ => Err(ApiError::BadRequest(format!("{field}: cannot be blank"))),
    }
}

async fn next_by_query(
    State(state): State<AppState>,
    Device(device): Device,
    Extension(request_id): Extension<RequestId>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let running = Running {
        artifact_name: query.get("artifact_name").cloned(),
        device_type: query.get("device_type").cloned(),
    };
    next(state, device, request_id, running).await
}

async fn next_by_body(
    State(state): State<AppState>,
    Device(device): Device,
    Extension(request_id): Extension<RequestId>,
    JsonBody(running): JsonBody<Running>,
) -> Result<Response, ApiError> {
    next(state, device, request_id, running).await
}

async fn next(
    state: AppState,
    device: http_edge::auth::Identity,
    request_id: RequestId,
    running: Running,
) -> Result<Response, ApiError> {
    let caller = device_caller(&state, &device, &request_id)?;
    let asked = Asked {
        device: device.subject.clone(),
        artifact_name: required(running.artifact_name, "artifact_name")?,
        device_type: required(running.device_type, "device_type")?,
        now: Utc::now(),
    };
    // The hot path: most devices have nothing to do, which the catalog knows without I/O.
    if !state.catalog.with_tenant(&caller.tenant, |catalog| {
        catalog.may_have_work(&asked.device)
    }) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let outcome = devices::next(&state.pipeline, &caller, &asked).await?;
    let response = match outcome.answer {
        Next::Nothing => StatusCode::NO_CONTENT.into_response(),
        // The failure it caused is recorded; the device learns of the conflict.
        Next::Contradiction => ApiError::Conflict {
            message: "Device provided conflicting request data".into(),
            with: None,
        }
        .into_response(),
        Next::Serve {
            deployment,
            artifact,
        } => Json(instructions(&state, &caller, deployment, artifact).await?).into_response(),
    };
    Ok(state.answered_with_if(outcome.position, response).await)
}

/// The 200 body: the deployment and where to download its artifact.
async fn instructions(
    state: &AppState,
    caller: &Caller,
    deployment: DeploymentId,
    artifact: ArtifactId,
) -> Result<serde_json::Value, ApiError> {
    let (name, device_types) = state
        .catalog
        .with_tenant(&caller.tenant, |catalog| {
            catalog
                .artifact(artifact)
                .map(|choice| (choice.name.clone(), choice.device_types.clone()))
        })
        .ok_or_else(|| anyhow::anyhow!("artifact {artifact} of deployment {deployment} is gone"))?;
    let expire = Utc::now() + chrono::Duration::hours(DEVICE_LINK_HOURS);
    let uri = state
        .artifacts
        .store
        .download_link(
            &blob_store::artifact_key(caller.tenant.as_str(), artifact),
            expire,
        )
        .await
        .map_err(anyhow::Error::from)?;
    Ok(serde_json::json!({
        "id": deployment,
        "artifact": {
            "id": artifact,
            "artifact_name": name,
            "source": {
                "uri": uri,
                "expire": expire.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "method": "GET",
            },
            "device_types_compatible": device_types,
        },
    }))
}

#[derive(Deserialize)]
struct StatusReport {
    status: String,
    substate: Option<String>,
}

async fn report_status(
    State(state): State<AppState>,
    Device(device): Device,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    JsonBody(report): JsonBody<StatusReport>,
) -> Result<Response, ApiError> {
    let caller = device_caller(&state, &device, &request_id)?;
    let deployment: DeploymentId = parse_id(&id)?;
    let status = DeviceDeploymentStatus::parse(&report.status)
        .filter(|status| device::reportable(*status))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "status: \"{}\" is not a status a device may report",
                report.status
            ))
        })?;
    if report
        .substate
        .as_ref()
        .is_some_and(|substate| substate.chars().count() > MAX_SUBSTATE)
    {
        return Err(ApiError::BadRequest(format!(
            "substate: longer than {MAX_SUBSTATE} characters"
        )));
    }
    let outcome = devices::report_status(
        &state.pipeline,
        &caller,
        &device.subject,
        deployment,
        status,
        report.substate,
    )
    .await?;
    Ok(state
        .answered_if(outcome.position, StatusCode::NO_CONTENT)
        .await)
}

#[derive(Deserialize)]
struct DeploymentLog {
    messages: Vec<LogMessage>,
}

async fn save_log(
    State(state): State<AppState>,
    Device(device): Device,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    JsonBody(log): JsonBody<DeploymentLog>,
) -> Result<Response, ApiError> {
    let caller = device_caller(&state, &device, &request_id)?;
    let deployment: DeploymentId = parse_id(&id)?;
    if log.messages.is_empty() {
        return Err(ApiError::BadRequest("messages: cannot be empty".into()));
    }
    let outcome = devices::save_log(
        &state.pipeline,
        &caller,
        &device.subject,
        deployment,
        log.messages,
    )
    .await?;
    Ok(state
        .answered_if(outcome.position, StatusCode::NO_CONTENT)
        .await)
}

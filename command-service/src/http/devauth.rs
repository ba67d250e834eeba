//! Device admission's management commands (Mender's deviceauth management API v2):
//! preauthorize, decommission, dismiss a set, change a set's status.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{delete, post, put};
use axum::{Extension, Router};
use events::admission::{device_id, AuthSetStatus};
use http_edge::auth::User;
use http_edge::{JsonBody, RequestId};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::artifacts::caller;
use super::AppState;
use crate::application::admission;
use crate::device_key::DeviceKey;
use crate::domain::admission::Preauthorization;
use crate::error::ApiError;

const BASE: &str = "/api/management/v2/devauth/devices";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(BASE, post(preauthorize))
        .route(&format!("{BASE}/{{id}}"), delete(decommission))
        .route(&format!("{BASE}/{{id}}/auth/{{aid}}"), delete(dismiss))
        .route(
            &format!("{BASE}/{{id}}/auth/{{aid}}/status"),
            put(set_status),
        )
}

#[derive(Deserialize)]
struct NewPreauthorization {
    identity_data: Option<Map<String, Value>>,
    pubkey: Option<String>,
    #[serde(default)]
    force: bool,
}

/// An operator preauthorizes a device by its identity and key: 201 with `Location:
/// devices/<id>` and no body; 409 with the existing device when the identity is one already
/// (unless `force`, which adds the key to it).
async fn preauthorize(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    JsonBody(request): JsonBody<NewPreauthorization>,
) -> Result<Response, ApiError> {
    let identity = match request.identity_data {
        Some(identity) if !identity.is_empty() => identity,
        _ => {
            return Err(ApiError::BadRequest(
                "identity_data: cannot be blank".into(),
            ))
        }
    };
    let Some(pubkey) = request.pubkey.filter(|key| !key.is_empty()) else {
        return Err(ApiError::BadRequest("pubkey: cannot be blank".into()));
    };
    let key = DeviceKey::from_pem(&pubkey)
        .map_err(|error| ApiError::BadRequest(format!("pubkey: {error}")))?;
    let preauthorization = Preauthorization {
        device_id: device_id(&identity).to_string(),
        identity,
        pubkey: key.canonical_pem(),
        force: request.force,
        new_set_id: Uuid::new_v4(),
    };
    let caller = caller(&user, &request_id);
    let outcome = admission::preauthorize(&state.pipeline, &caller, &preauthorization).await?;
    let mut response = state
        .answered_if(outcome.position, StatusCode::CREATED)
        .await;
    if let Ok(location) = HeaderValue::from_str(&format!("devices/{}", preauthorization.device_id))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Decommissions the device: 204; 404 for a device admission does not know.
async fn decommission(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    Path(device): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&user, &request_id);
    let outcome = admission::decommission(&state.pipeline, &caller, &device).await?;
    Ok(state
        .answered_if(outcome.position, StatusCode::NO_CONTENT)
        .await)
}

/// Removes one auth set: 204; 404 for an unknown device or set.
async fn dismiss(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    Path((device, set)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let set = set_id(&set)?;
    let caller = caller(&user, &request_id);
    let outcome = admission::dismiss(&state.pipeline, &caller, &device, set).await?;
    Ok(state
        .answered_if(outcome.position, StatusCode::NO_CONTENT)
        .await)
}

/// Set ids are UUIDs; another text names no set.
fn set_id(text: &str) -> Result<Uuid, ApiError> {
    text.parse()
        .map_err(|_| ApiError::NotFoundBecause("authorization set not found".into()))
}

#[derive(Deserialize)]
struct StatusChange {
    status: String,
}

/// Accept, reject or reset one auth set: 204, 400 for another status or a disallowed
/// transition, 404 for an unknown device or set.
async fn set_status(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    Path((device, set)): Path<(String, String)>,
    JsonBody(change): JsonBody<StatusChange>,
) -> Result<Response, ApiError> {
    let status = match AuthSetStatus::parse(&change.status) {
        Some(
            status @ (AuthSetStatus::Accepted | AuthSetStatus::Rejected | AuthSetStatus::Pending),
        ) => status,
        _ => return Err(ApiError::BadRequest("incorrect device status".into())),
    };
    let set = set_id(&set)?;
    let caller = caller(&user, &request_id);
    let outcome = admission::set_status(
        &state.pipeline,
        &caller,
        &device,
        set,
        status,
        state.max_devices,
    )
    .await?;
    Ok(state
        .answered_if(outcome.position, StatusCode::NO_CONTENT)
        .await)
}

//! Device admission's management commands (Mender's deviceauth management API v2).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::put;
use axum::{Extension, Router};
use events::admission::AuthSetStatus;
use http_edge::auth::User;
use http_edge::{JsonBody, RequestId};
use serde::Deserialize;
use uuid::Uuid;

use super::artifacts::caller;
use super::AppState;
use crate::application::admission;
use crate::error::ApiError;

const BASE: &str = "/api/management/v2/devauth/devices";

pub fn router() -> Router<AppState> {
    Router::new().route(
        &format!("{BASE}/{{id}}/auth/{{aid}}/status"),
        put(set_status),
    )
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
    // Ids are UUIDs; another text names no set.
    let set: Uuid = set
        .parse()
        .map_err(|_| ApiError::NotFoundBecause("authorization set not found".into()))?;
    let caller = caller(&user, &request_id);
    let outcome = admission::set_status(&state.pipeline, &caller, &device, set, status).await?;
    Ok(state
        .answered_if(outcome.position, StatusCode::NO_CONTENT)
        .await)
}

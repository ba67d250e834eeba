//! The inventory's writes: a device's report of its attributes (Mender's device API
//! `PUT`/`PATCH /api/devices/v1/inventory/device/attributes`), and an operator's tags,
//! groups and clearing (the management API v1 `/api/management/v1/inventory`). The reads are
//! the query service's.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, patch, post, put};
use axum::{Extension, Json, Router};
use chrono::Utc;
use http_edge::auth::{Device, User};
use http_edge::{JsonBody, RequestId};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::artifacts::caller;
use super::devices::device_caller;
use super::AppState;
use crate::application::inventory::{self, MembersChanged};
use crate::domain::filters::NewFilter;
use crate::domain::inventory::{check_group_name, SentAttribute, MAX_GROUP, MAX_GROUP_LEGACY};
use crate::error::ApiError;

const BASE: &str = "/api/management/v1/inventory";
const FILTERS: &str = "/api/management/v2/inventory/filters";

/// The device's route, mounted where this server admits devices itself.
pub(super) fn device_router() -> Router<AppState> {
    Router::new().route(
        "/api/devices/v1/inventory/device/attributes",
        put(report).patch(report),
    )
}

pub(super) fn management_router() -> Router<AppState> {
    Router::new()
        .route(&format!("{BASE}/devices/{{id}}"), delete(clear))
        .route(
            &format!("{BASE}/devices/{{id}}/tags"),
            put(tags).patch(tags),
        )
        .route(&format!("{BASE}/devices/{{id}}/group"), put(assign))
        .route(
            &format!("{BASE}/devices/{{id}}/group/{{name}}"),
            delete(leave),
        )
        .route(
            &format!("{BASE}/groups/{{name}}/devices"),
            patch(members).delete(members),
        )
        .route(&format!("{BASE}/groups/{{name}}"), delete(delete_group))
        .route(FILTERS, post(save_filter))
        .route(&format!("{FILTERS}/{{id}}"), delete(delete_filter))
}

/// `PUT` replaces the device's reported attributes, `PATCH` adds to them; 200, no body.
async fn report(
    State(state): State<AppState>,
    method: Method,
    Device(device): Device,
    Extension(request_id): Extension<RequestId>,
    JsonBody(attributes): JsonBody<Vec<SentAttribute>>,
) -> Result<Response, ApiError> {
    let caller = device_caller(&state, &device, &request_id)?;
    let outcome = inventory::report(
        &state.pipeline,
        &caller,
        &device.subject,
        &attributes,
        method == Method::PUT,
    )
    .await?;
    Ok(state.answered_if(outcome.position, StatusCode::OK).await)
}

/// Clears the device's reported attributes; 204 whether or not there were any, as Mender
/// answers.
async fn clear(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    Path(device): Path<String>,
) -> Result<Response, ApiError> {
    let outcome = inventory::clear(&state.pipeline, &caller(&user, &request_id), &device).await?;
    Ok(state
        .answered_if(outcome.position, StatusCode::NO_CONTENT)
        .await)
}

/// The `If-Match` ETag, with or without the quotes HTTP puts around it.
fn if_match(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::BadRequest("If-Match: not a valid ETag".into()))?;
    Ok(Some(text.trim().trim_matches('"').to_owned()))
}

/// `PUT` replaces the device's tags, `PATCH` adds to them; 412 when `If-Match` names tags
/// that changed since.
async fn tags(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    Path(device): Path<String>,
    JsonBody(sent): JsonBody<Vec<SentAttribute>>,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let outcome = inventory::tags(
        &state.pipeline,
        &caller(&user, &request_id),
        &device,
        &sent,
        method == Method::PUT,
        expected.as_deref(),
        Utc::now(),
    )
    .await?;
    Ok(state.answered_if(outcome.position, StatusCode::OK).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    group: Option<String>,
}

async fn assign(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    Path(device): Path<String>,
    JsonBody(body): JsonBody<GroupBody>,
) -> Result<Response, ApiError> {
    let group = body.group.unwrap_or_default();
    let outcome = inventory::assign(
        &state.pipeline,
        &caller(&user, &request_id),
        &device,
        &group,
    )
    .await?;
    Ok(state
        .answered_if(outcome.position, StatusCode::NO_CONTENT)
        .await)
}

async fn leave(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    Path((device, group)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let outcome = inventory::leave(
        &state.pipeline,
        &caller(&user, &request_id),
        &device,
        &group,
    )
    .await?;
    Ok(state
        .answered_if(outcome.position, StatusCode::NO_CONTENT)
        .await)
}

/// Inventory's count bodies leave out counts of zero, so nothing matched is `{}`.
fn counts(fields: &[(&str, usize)]) -> Json<Value> {
    let body: Map<String, Value> = fields
        .iter()
        .filter(|(_, count)| *count > 0)
        .map(|(name, count)| ((*name).to_owned(), json!(count)))
        .collect();
    Json(Value::Object(body))
}

/// `PATCH` adds the listed devices to the group (creating it), `DELETE` takes them out;
/// 200 with how many were found and how many changed.
async fn members(
    State(state): State<AppState>,
    method: Method,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    Path(group): Path<String>,
    JsonBody(devices): JsonBody<Vec<String>>,
) -> Result<Response, ApiError> {
    let add = method == Method::PATCH;
    check_group_name(&group, if add { MAX_GROUP } else { MAX_GROUP_LEGACY })?;
    if devices.is_empty() {
        return Err(ApiError::BadRequest(
            "the list of devices cannot be empty".into(),
        ));
    }
    let outcome = inventory::members(
        &state.pipeline,
        &caller(&user, &request_id),
        &group,
        &devices,
        add,
    )
    .await?;
    let MembersChanged { matched, updated } = outcome.answer;
    let body = counts(&[("matched_count", matched), ("updated_count", updated)]).into_response();
    Ok(state.answered_with_if(outcome.position, body).await)
}

/// Every member leaves the group; 200 with how many did (never 404).
async fn delete_group(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    Path(group): Path<String>,
) -> Result<Response, ApiError> {
    check_group_name(&group, MAX_GROUP_LEGACY)?;
    let outcome =
        inventory::delete_group(&state.pipeline, &caller(&user, &request_id), &group).await?;
    let body = counts(&[("updated_count", outcome.answer)]).into_response();
    Ok(state.answered_with_if(outcome.position, body).await)
}

/// Saves a filter: 201 with `Location: filters/<id>` (relative, as Mender's GUI reads it).
async fn save_filter(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    JsonBody(request): JsonBody<NewFilter>,
) -> Result<Response, ApiError> {
    let id = uuid::Uuid::new_v4();
    let outcome =
        inventory::save_filter(&state.pipeline, &caller(&user, &request_id), id, &request).await?;
    let mut response = state
        .answered_if(outcome.position, StatusCode::CREATED)
        .await;
    if let Ok(location) = axum::http::HeaderValue::from_str(&format!("filters/{id}")) {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, location);
    }
    Ok(response)
}

async fn delete_filter(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::NotFoundBecause("Filter not found".into()))?;
    let outcome =
        inventory::delete_filter(&state.pipeline, &caller(&user, &request_id), id).await?;
    Ok(state
        .answered_if(outcome.position, StatusCode::NO_CONTENT)
        .await)
}

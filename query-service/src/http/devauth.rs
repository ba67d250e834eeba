//! Device admission's reads (Mender's deviceauth management API v2): devices with their
//! auth sets, filtered and paged as deviceauth pages them, counts, and a set's status.

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use events::TenantId;
use http_edge::auth::User;
use http_edge::JsonBody;
use serde::Deserialize;
use serde_json::{json, Value};

use super::paging::{links, paging, parameters, values};
use super::AppState;
use crate::error::ApiError;
use crate::read_models::devices::{AuthSet, Device, DeviceFilter};
use crate::read_models::Window;

const BASE: &str = "/api/management/v2/devauth";
const STATUSES: [&str; 5] = ["pending", "accepted", "rejected", "preauthorized", "noauth"];

pub fn router() -> Router<AppState> {
    Router::new()
        .route(&format!("{BASE}/devices"), get(list))
        .route(&format!("{BASE}/devices/search"), post(search))
        .route(&format!("{BASE}/devices/count"), get(count))
        .route(&format!("{BASE}/devices/{{id}}"), get(device))
        .route(
            &format!("{BASE}/devices/{{id}}/auth/{{aid}}/status"),
            get(auth_set_status),
        )
        .route(&format!("{BASE}/limits/{{name}}"), get(limit))
}

/// `GET /limits/max_devices`: `{"limit": N}`, -1 without a limit (as deviceauth answers
/// today; before 4.2 it answered 0 for that). Any other limit is 400.
async fn limit(
    State(state): State<AppState>,
    User(_): User,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if name != "max_devices" {
        return Err(ApiError::BadRequest(format!("unsupported limit {name}")));
    }
    let limit = state.max_devices.map_or(-1, |max| max as i64);
    Ok(Json(json!({ "limit": limit })))
}

fn status_filter(statuses: Vec<String>, message: &str) -> Result<Vec<String>, ApiError> {
    if statuses
        .iter()
        .any(|status| !STATUSES.contains(&status.as_str()))
    {
        return Err(ApiError::BadRequest(format!(
            "{message} must be one of: {}",
            STATUSES.join(", ")
        )));
    }
    Ok(statuses)
}

/// Devices with their auth sets, as deviceauth shows them.
async fn views(
    state: &AppState,
    tenant: &TenantId,
    devices: Vec<Device>,
) -> Result<Vec<Value>, ApiError> {
    let ids: Vec<String> = devices.iter().map(|device| device.id.clone()).collect();
    let sets = state.read_models.devices().auth_sets(tenant, &ids).await?;
    devices
        .into_iter()
        .map(|device| {
            let sets: Vec<&AuthSet> = sets
                .iter()
                .filter(|set| set.device_id == device.id)
                .collect();
            view(device, &sets)
        })
        .collect()
}

fn view(device: Device, sets: &[&AuthSet]) -> Result<Value, ApiError> {
    let parse = |text: &str| -> Result<Value, ApiError> {
        serde_json::from_str(text).map_err(|error| ApiError::Internal(error.into()))
    };
    let auth_sets = sets
        .iter()
        .map(|set| {
            Ok(json!({
                "id": set.id,
                "identity_data": parse(&set.identity_data)?,
                "pubkey": set.pubkey,
                "status": set.status,
                "ts": set.ts,
            }))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let mut view = json!({
        "id": device.id,
        "identity_data": parse(&device.identity_data)?,
        "status": device.status,
        "decommissioning": false,
        "created_ts": device.created_ts,
        "updated_ts": device.updated_ts,
        "auth_sets": auth_sets,
    });
    // Omitted until the device has checked in, as deviceauth does.
    if let Some(check_in) = device.check_in_time {
        view["check_in_time"] = Value::String(check_in);
    }
    Ok(view)
}

/// `GET /devices?status=…&id=…&page=…&per_page=…`: oldest first.
async fn list(
    State(state): State<AppState>,
    User(user): User,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let parameters = parameters(query.as_deref());
    let filter = DeviceFilter {
        statuses: status_filter(
            values(&parameters, "status").map(str::to_owned).collect(),
            "filter status",
        )?,
        ids: values(&parameters, "id").map(str::to_owned).collect(),
    };
    page_of(
        &state,
        &user.tenant,
        &format!("{BASE}/devices"),
        &parameters,
        &filter,
    )
    .await
}

/// The page the query asks for of the devices `filter` lets through, with its links.
async fn page_of(
    state: &AppState,
    tenant: &TenantId,
    path: &str,
    parameters: &[(String, String)],
    filter: &DeviceFilter,
) -> Result<Response, ApiError> {
    let (page, per_page) = paging(parameters)?;
    // One row more than the page says whether there is a next page.
    let mut devices = state
        .read_models
        .devices()
        .page(
            tenant,
            filter,
            Window {
                limit: per_page + 1,
                offset: (page - 1).saturating_mul(per_page),
            },
        )
        .await?;
    let more = devices.len() as i64 > per_page;
    devices.truncate(per_page as usize);
    let body = views(state, tenant, devices).await?;
    let headers = links(path, parameters, (page, per_page), more, None);
    Ok((headers, Json(body)).into_response())
}

/// One value or a list of them, as deviceauth's search body takes both.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::None => Vec::new(),
            Self::One(value) => vec![value],
            Self::Many(values) => values,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct Search {
    #[serde(default)]
    status: OneOrMany,
    #[serde(default)]
    id: OneOrMany,
}

/// `POST /devices/search`: the list's filters in a JSON body, paged by the query. As in
/// deviceauth, a status the body names that no device can have matches nothing.
async fn search(
    State(state): State<AppState>,
    User(user): User,
    RawQuery(query): RawQuery,
    JsonBody(search): JsonBody<Search>,
) -> Result<Response, ApiError> {
    let parameters = parameters(query.as_deref());
    let filter = DeviceFilter {
        statuses: search.status.into_vec(),
        ids: search.id.into_vec(),
    };
    page_of(
        &state,
        &user.tenant,
        &format!("{BASE}/devices/search"),
        &parameters,
        &filter,
    )
    .await
}

async fn count(
    State(state): State<AppState>,
    User(user): User,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let parameters = parameters(query.as_deref());
    let statuses = values(&parameters, "status")
        .filter(|status| !status.is_empty())
        .map(str::to_owned)
        .take(1)
        .collect();
    let status = status_filter(statuses, "status")?.pop();
    let count = state
        .read_models
        .devices()
        .count(&user.tenant, status.as_deref())
        .await?;
    Ok(Json(json!({ "count": count })))
}

async fn device(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let device = state
        .read_models
        .devices()
        .one(&user.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::NotFoundBecause("device not found".into()))?;
    let mut views = views(&state, &user.tenant, vec![device]).await?;
    Ok(Json(views.pop().unwrap_or_default()))
}

/// A set's status; like deviceauth, the device id in the path is not checked.
async fn auth_set_status(
    State(state): State<AppState>,
    User(user): User,
    Path((_, set)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let set = state
        .read_models
        .devices()
        .auth_set(&user.tenant, &set)
        .await?
        .ok_or_else(|| ApiError::NotFoundBecause("authorization set not found".into()))?;
    Ok(Json(json!({ "status": set.status })))
}

//! Reads of deployments from the deployments projection: the filtered list, one deployment,
//! its statistics, its devices and their logs, and each device's deployment history.

mod devices;
mod history;
mod rollout;
mod view;

use std::collections::BTreeMap;

use axum::extract::{OriginalUri, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::DateTime;
use events::deployment::DeviceDeploymentStatus;
use events::{DeploymentId, TenantId};
use http_edge::auth::User;

use super::paging::{Paging, MAX_PER_PAGE};
use super::time_travel::{state_at, AsOf};
use super::AppState;
use crate::error::{parse_id, ApiError};
use crate::read_models::deployments::DeploymentFilter;
use view::{deployment_views, zero_statistics, DeploymentView};

const BASE: &str = "/api/management/v1/deployments/deployments";
const BASE_V2: &str = "/api/management/v2/deployments/deployments";

/// The deployment read routes, under the management API's base path.
pub fn router() -> Router<AppState> {
    // Path parameters are named as the command service names them on the same paths, so the
    // all-in-one server can merge both routers.
    Router::new()
        .route(BASE, get(list))
        .route(&format!("{BASE}/{{id}}"), get(deployment))
        .route(&format!("{BASE}/{{id}}/statistics"), get(statistics))
        .route(&format!("{BASE}/{{id}}/devices"), get(devices::all))
        .route(&format!("{BASE}/{{id}}/devices/list"), get(devices::page))
        .route(
            &format!("{BASE}/{{id}}/device_list"),
            get(devices::targeted),
        )
        .route(
            &format!("{BASE}/{{id}}/devices/{{device_id}}/log"),
            get(devices::log),
        )
        .route(&format!("{BASE}/devices/{{device}}"), get(history::history))
        .route(
            &format!("{BASE_V2}/{{id}}/devices/{{device_id}}/history"),
            get(rollout::device_history),
        )
        .route(
            &format!("{BASE_V2}/{{id}}/simulate"),
            post(rollout::simulate),
        )
}

/// Reads the filters of `GET /deployments` as Mender does (api/http/api_deployments.go,
/// `ParseLookupQuery`), refusing what it refuses with its messages.
fn lookup(query: &BTreeMap<String, String>) -> Result<DeploymentFilter, ApiError> {
    let get = |name: &str| query.get(name).map(String::as_str).unwrap_or("");
    let mut filter = DeploymentFilter::default();
    let search = get("search");
    if !search.is_empty() {
        filter.search = Some(search.to_owned());
    }
    for (parameter, bound) in [
        ("created_before", &mut filter.created_before),
        ("created_after", &mut filter.created_after),
    ] {
        let text = get(parameter);
        if text.is_empty() {
            continue;
        }
        let time = text
            .parse::<i64>()
            .ok()
            .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "timestamp parsing failed for {parameter} parameter: invalid timestamp: {text}"
                ))
            })?;
        *bound = Some(time);
    }
    filter.ascending = match get("sort").to_lowercase().as_str() {
        "asc" => true,
        "" | "desc" => false,
        _ => {
            return Err(ApiError::BadRequest(
                "invalid form value: must be one of \"asc\" or \"desc\"".into(),
            ))
        }
    };
    match get("status") {
        "" => {}
        status @ ("pending" | "inprogress" | "finished") => filter.status = Some(status.to_owned()),
        other => return Err(ApiError::BadRequest(format!("unknown status {other}"))),
    }
    match get("type") {
        // Every deployment here installs software; none deploys a configuration.
        "" | "software" => {}
        "configuration" => filter.configuration = true,
        other => {
            return Err(ApiError::BadRequest(format!(
                "unknown deployment type {other}"
            )))
        }
    }
    Ok(filter)
}

async fn list(
    State(state): State<AppState>,
    User(user): User,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let filter = lookup(&query)?;
    let paging = Paging::strict(&query, MAX_PER_PAGE)?;
    let store = state.read_models.deployments();
    let (total, rows) = store.page(&user.tenant, &filter, paging.window()).await?;
    let views = deployment_views(rows);
    let headers = paging.headers(uri.path(), &query, total as u64);
    Ok((headers, Json(views)).into_response())
}

/// One deployment of the caller's tenant; 400 for an id that is not a UUID, 404 if unknown.
async fn find(state: &AppState, tenant: &TenantId, id: &str) -> Result<DeploymentView, ApiError> {
    let id: DeploymentId = parse_id(id)?;
    let store = state.read_models.deployments();
    let row = store.find(tenant, id).await?.ok_or(ApiError::NotFound)?;
    let mut views = deployment_views(vec![row]);
    views.pop().ok_or(ApiError::NotFound)
}

async fn deployment(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
    Query(as_of): Query<AsOf>,
) -> Result<Json<DeploymentView>, ApiError> {
    let past = state_at(&state, &user.tenant, &id, &as_of).await?;
    Ok(Json(find(&past.state, &user.tenant, &id).await?))
}

/// One count per device status, zero-filled, as Mender answers.
async fn statistics(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
    Query(as_of): Query<AsOf>,
) -> Result<Json<BTreeMap<&'static str, i64>>, ApiError> {
    let id: DeploymentId = parse_id(&id)?;
    let past = state_at(&state, &user.tenant, &id.to_string(), &as_of).await?;
    let store = past.state.read_models.deployments();
    if !store.exists(&user.tenant, id).await? {
        return Err(ApiError::NotFound);
    }
    let mut counts = zero_statistics();
    for row in store.statistics(&user.tenant, &[id.to_string()]).await? {
        if let Some(status) = DeviceDeploymentStatus::parse(&row.status) {
            counts.insert(status.as_str(), row.devices);
        }
    }
    Ok(Json(counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn refusal(pairs: &[(&str, &str)]) -> String {
        match lookup(&query(pairs)) {
            Err(ApiError::BadRequest(message)) => message,
            other => panic!("{pairs:?} gave {other:?}"),
        }
    }

    #[test]
    fn no_parameters_list_everything_newest_first() {
        assert_eq!(lookup(&query(&[])).unwrap(), DeploymentFilter::default());
    }

    /// The store turns the filter into bound conditions: see
    /// `read_models::deployments::tests::filters_become_bound_conditions`.
    #[test]
    fn filters_are_read_into_the_lookup() {
        let filter = lookup(&query(&[
            ("search", "Spring_1"),
            ("created_after", "0"),
            ("status", "inprogress"),
            ("sort", "ASC"),
        ]))
        .unwrap();
        assert!(filter.ascending);
        assert_eq!(
            filter,
            DeploymentFilter {
                search: Some("Spring_1".into()),
                created_before: None,
                created_after: DateTime::from_timestamp(0, 0),
                status: Some("inprogress".into()),
                configuration: false,
                ascending: true,
            }
        );
        let configuration = lookup(&query(&[("type", "configuration")])).unwrap();
        assert!(configuration.configuration);
    }

    #[test]
    fn unreadable_filters_are_refused_with_menders_messages() {
        assert_eq!(refusal(&[("status", "aborted")]), "unknown status aborted");
        assert_eq!(
            refusal(&[("sort", "sideways")]),
            "invalid form value: must be one of \"asc\" or \"desc\""
        );
        assert_eq!(
            refusal(&[("created_before", "yesterday")]),
            "timestamp parsing failed for created_before parameter: invalid timestamp: yesterday"
        );
        assert_eq!(
            refusal(&[("type", "firmware")]),
            "unknown deployment type firmware"
        );
    }
}

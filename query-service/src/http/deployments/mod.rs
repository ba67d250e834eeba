//! Reads of deployments from the deployments projection: the filtered list, one deployment,
//! its statistics, its devices and their logs, and each device's deployment history.

mod devices;
mod history;
mod view;

use std::collections::BTreeMap;

use axum::extract::{OriginalUri, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::DateTime;
use events::deployment::DeviceDeploymentStatus;
use http_edge::auth::User;
use sqlx::Row;

use super::artifacts::contains_pattern;
use super::paging::{Paging, MAX_PER_PAGE};
use super::time_travel::{state_at, AsOf};
use super::AppState;
use crate::error::{parse_id, ApiError};
use crate::projections::stored_time;
use view::{deployment_views, zero_statistics, DeploymentView, DEPLOYMENT_COLUMNS};

const BASE: &str = "/api/management/v1/deployments/deployments";

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
}

/// The filters of `GET /deployments`, as SQL conditions on `deployments` after `tenant = $1`.
#[derive(Debug, Default, PartialEq)]
struct Lookup {
    conditions: String,
    values: Vec<String>,
    ascending: bool,
}

impl Lookup {
    fn condition(&mut self, sql: impl FnOnce(usize) -> String, value: String) {
        self.values.push(value);
        self.conditions
            .push_str(&format!(" AND {}", sql(self.values.len() + 1)));
    }

    /// Reads the query as Mender does (api/http/api_deployments.go, `ParseLookupQuery`),
    /// refusing what it refuses with its messages.
    fn parse(query: &BTreeMap<String, String>) -> Result<Self, ApiError> {
        let get = |name: &str| query.get(name).map(String::as_str).unwrap_or("");
        let mut lookup = Self::default();
        let search = get("search");
        if !search.is_empty() {
            lookup.condition(
                |n| {
                    format!(
                        "(search_name LIKE ${n} ESCAPE '\\' OR search_artifact_name LIKE ${n} ESCAPE '\\')"
                    )
                },
                contains_pattern(search),
            );
        }
        for (parameter, operator) in [("created_before", "<="), ("created_after", ">=")] {
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
            lookup.condition(|n| format!("created {operator} ${n}"), stored_time(time));
        }
        lookup.ascending = match get("sort").to_lowercase().as_str() {
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
            status @ ("pending" | "inprogress" | "finished") => {
                lookup.condition(|n| format!("status = ${n}"), status.to_owned())
            }
            other => return Err(ApiError::BadRequest(format!("unknown status {other}"))),
        }
        match get("type") {
            // Every deployment here installs software; none deploys a configuration.
            "" | "software" => {}
            "configuration" => lookup.conditions.push_str(" AND 1 = 0"),
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown deployment type {other}"
                )))
            }
        }
        Ok(lookup)
    }
}

async fn list(
    State(state): State<AppState>,
    User(user): User,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let lookup = Lookup::parse(&query)?;
    let paging = Paging::strict(&query, MAX_PER_PAGE)?;
    let pool = &state.read_models.pool();
    let tenant = user.tenant.as_str();
    let count_sql = format!(
        "SELECT COUNT(*) FROM deployments WHERE tenant = $1{}",
        lookup.conditions
    );
    let mut count = sqlx::query_scalar::<_, i64>(&count_sql).bind(tenant);
    for value in &lookup.values {
        count = count.bind(value.as_str());
    }
    let total = count.fetch_one(pool).await?;
    let direction = if lookup.ascending { "ASC" } else { "DESC" };
    let page_sql = format!(
        "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE tenant = $1{}
         ORDER BY created {direction}, id {direction} LIMIT {} OFFSET {}",
        lookup.conditions,
        paging.limit(),
        paging.offset()
    );
    let mut page = sqlx::query(&page_sql).bind(tenant);
    for value in &lookup.values {
        page = page.bind(value.as_str());
    }
    let rows = page.fetch_all(pool).await?;
    let views = deployment_views(pool, tenant, &rows).await?;
    let headers = paging.headers(uri.path(), &query, total as u64);
    Ok((headers, Json(views)).into_response())
}

/// One deployment of the caller's tenant; 400 for an id that is not a UUID, 404 if unknown.
async fn find(state: &AppState, tenant: &str, id: &str) -> Result<DeploymentView, ApiError> {
    let id = parse_id(id)?;
    let row = sqlx::query(&format!(
        "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE tenant = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id.to_string())
    .fetch_optional(&state.read_models.pool())
    .await?
    .ok_or(ApiError::NotFound)?;
    let mut views = deployment_views(&state.read_models.pool(), tenant, &[row]).await?;
    views.pop().ok_or(ApiError::NotFound)
}

async fn deployment(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
    Query(as_of): Query<AsOf>,
) -> Result<Json<DeploymentView>, ApiError> {
    let past = state_at(&state, &user.tenant, &id, &as_of).await?;
    Ok(Json(find(&past.state, user.tenant.as_str(), &id).await?))
}

/// One count per device status, zero-filled, as Mender answers.
async fn statistics(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
    Query(as_of): Query<AsOf>,
) -> Result<Json<BTreeMap<&'static str, i64>>, ApiError> {
    let id = parse_id(&id)?;
    let past = state_at(&state, &user.tenant, &id.to_string(), &as_of).await?;
    let tenant = user.tenant.as_str();
    let pool = &past.state.read_models.pool();
    let known: Option<i64> =
        sqlx::query_scalar("SELECT max_devices FROM deployments WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id.to_string())
            .fetch_optional(pool)
            .await?;
    if known.is_none() {
        return Err(ApiError::NotFound);
    }
    let mut counts = zero_statistics();
    let rows = sqlx::query(
        "SELECT status, devices FROM deployment_statistics
         WHERE tenant = $1 AND deployment_id = $2",
    )
    .bind(tenant)
    .bind(id.to_string())
    .fetch_all(pool)
    .await?;
    for row in rows {
        let status: String = row.try_get("status")?;
        if let Some(status) = DeviceDeploymentStatus::parse(&status) {
            counts.insert(status.as_str(), row.try_get("devices")?);
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
        match Lookup::parse(&query(pairs)) {
            Err(ApiError::BadRequest(message)) => message,
            other => panic!("{pairs:?} gave {other:?}"),
        }
    }

    #[test]
    fn no_parameters_list_everything_newest_first() {
        assert_eq!(Lookup::parse(&query(&[])).unwrap(), Lookup::default());
    }

    #[test]
    fn filters_become_bound_conditions() {
        let lookup = Lookup::parse(&query(&[
            ("search", "Spring_1"),
            ("created_after", "0"),
            ("status", "inprogress"),
            ("sort", "ASC"),
        ]))
        .unwrap();
        assert!(lookup.ascending);
        assert_eq!(
            lookup.values,
            vec![
                "%spring\\_1%".to_owned(),
                "1970-01-01T00:00:00.000000Z".to_owned(),
                "inprogress".to_owned()
            ]
        );
        assert!(lookup.conditions.contains("search_artifact_name LIKE $2"));
        assert!(lookup.conditions.contains("created >= $3"));
        assert!(lookup.conditions.ends_with("status = $4"));
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

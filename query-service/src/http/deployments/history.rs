//! A device's deployment history: its entries across deployments, newest first, each with the
//! deployment it belongs to (Mender's `DeviceDeploymentListItem`).

use std::collections::{BTreeMap, HashMap};

use axum::extract::{OriginalUri, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_edge::auth::User;
use serde::Serialize;
use sqlx::Row;

use super::super::paging::Paging;
use super::super::AppState;
use super::devices::{status_condition, status_rank};
use super::view::{
    deployment_views, device_view, placeholders, DeploymentView, DeviceView, DEPLOYMENT_COLUMNS,
    DEVICE_COLUMNS, DEVICE_FROM,
};
use crate::error::ApiError;

/// Mender caps this list's pages lower than the others.
const MAX_PER_PAGE: u64 = 20;

/// One entry of the history.
#[derive(Debug, Serialize)]
pub struct HistoryItem {
    /// The entry's own id.
    id: String,
    deployment: DeploymentView,
    device: DeviceView,
}

/// 200 with an empty list for a device that never joined a deployment, as in Mender.
pub async fn history(
    State(state): State<AppState>,
    User(user): User,
    Path(device_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let tenant = user.tenant.as_str();
    let paging = Paging::strict(&query, MAX_PER_PAGE)?;
    let (condition, statuses) = status_condition(&query, 3)?;
    let pool = &state.read_models.pool();
    let count_sql = format!(
        "SELECT COUNT(*) FROM device_deployments dd
         WHERE dd.tenant = $1 AND dd.device_id = $2{condition}"
    );
    let mut count = sqlx::query_scalar::<_, i64>(&count_sql)
        .bind(tenant)
        .bind(&device_id);
    for status in &statuses {
        count = count.bind(*status);
    }
    let total = count.fetch_one(pool).await?;
    // Mender's order: newest entry first, then by status number, highest first.
    let page_sql = format!(
        "SELECT {DEVICE_COLUMNS} FROM {DEVICE_FROM}
         WHERE dd.tenant = $1 AND dd.device_id = $2{condition}
         ORDER BY dd.created DESC, {} DESC, dd.deployment_id DESC LIMIT {} OFFSET {}",
        status_rank("dd.status"),
        paging.limit(),
        paging.offset()
    );
    let mut select = sqlx::query(&page_sql).bind(tenant).bind(&device_id);
    for status in &statuses {
        select = select.bind(*status);
    }
    let entries = select.fetch_all(pool).await?;

    let deployment_ids: Vec<String> = entries
        .iter()
        .map(|row| row.try_get("deployment_id"))
        .collect::<Result<_, _>>()?;
    let mut deployments: HashMap<String, DeploymentView> = HashMap::new();
    if !deployment_ids.is_empty() {
        let sql = format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE tenant = $1 AND id IN ({})",
            placeholders(2, deployment_ids.len())
        );
        let mut select = sqlx::query(&sql).bind(tenant);
        for id in &deployment_ids {
            select = select.bind(id.as_str());
        }
        let rows = select.fetch_all(pool).await?;
        for view in deployment_views(pool, tenant, &rows).await? {
            deployments.insert(view.id.clone(), view);
        }
    }
    let mut items = Vec::with_capacity(entries.len());
    for (row, deployment_id) in entries.iter().zip(&deployment_ids) {
        // An entry's deployment is created before it, so it is always there.
        let deployment = deployments
            .remove(deployment_id)
            .ok_or_else(|| anyhow::anyhow!("entry of unknown deployment {deployment_id}"))?;
        items.push(HistoryItem {
            id: row.try_get("entry_id")?,
            deployment,
            device: device_view(row)?,
        });
    }
    let headers = paging.headers(uri.path(), &query, total as u64);
    Ok((headers, Json(items)).into_response())
}

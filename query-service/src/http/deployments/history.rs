//! A device's deployment history: its entries across deployments, newest first, each with the
//! deployment it belongs to (Mender's `DeviceDeploymentListItem`).

use std::collections::{BTreeMap, HashMap};

use axum::extract::{OriginalUri, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_edge::auth::User;
use serde::Serialize;

use super::super::paging::Paging;
use super::super::AppState;
use super::devices::statuses;
use super::view::{deployment_views, device_view, DeploymentView, DeviceView};
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
    let tenant = &user.tenant;
    let paging = Paging::strict(&query, MAX_PER_PAGE)?;
    let statuses = statuses(&query)?;
    let store = state.read_models.entries();
    let total = store
        .count_of_device(tenant, &device_id, statuses.as_deref())
        .await?;
    let entries = store
        .history(tenant, &device_id, statuses.as_deref(), paging.window())
        .await?;

    let deployment_ids: Vec<String> = entries
        .iter()
        .map(|entry| entry.deployment_id.clone())
        .collect();
    let mut deployments: HashMap<String, DeploymentView> = HashMap::new();
    if !deployment_ids.is_empty() {
        let store = state.read_models.deployments();
        let rows = store.among(tenant, &deployment_ids).await?;
        for view in deployment_views(rows) {
            deployments.insert(view.id.clone(), view);
        }
    }
    let mut items = Vec::with_capacity(entries.len());
    for entry in entries {
        // An entry's deployment is created before it, so it is always there.
        let deployment = deployments.remove(&entry.deployment_id).ok_or_else(|| {
            anyhow::anyhow!("entry of unknown deployment {}", entry.deployment_id)
        })?;
        items.push(HistoryItem {
            id: entry.entry_id.clone(),
            deployment,
            device: device_view(entry)?,
        });
    }
    let headers = paging.headers(uri.path(), &query, total as u64);
    Ok((headers, Json(items)).into_response())
}

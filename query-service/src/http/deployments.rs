//! Reads of deployments from the deployments projection.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use events::deployment::DeviceDeploymentStatus;
use http_edge::auth::User;
use serde::Serialize;
use sqlx::Row;

use super::AppState;
use crate::error::{parse_id, ApiError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/management/v1/deployments/deployments/{id}",
            get(deployment),
        )
        .route(
            "/api/management/v1/deployments/deployments/{id}/statistics",
            get(statistics),
        )
}

/// A deployment as Mender's management API shows it.
#[derive(Debug, Serialize)]
pub struct DeploymentView {
    pub id: String,
    pub name: String,
    pub artifact_name: String,
    pub created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    pub status: String,
    pub device_count: i64,
    pub max_devices: i64,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

async fn deployment(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<Json<DeploymentView>, ApiError> {
    let id = parse_id(&id)?;
    let row = sqlx::query(
        "SELECT id, name, artifact_name, created, finished, status, device_count, max_devices
         FROM deployments WHERE tenant = $1 AND id = $2",
    )
    .bind(user.tenant.as_str())
    .bind(id.to_string())
    .fetch_optional(state.read_models.pool())
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(Json(DeploymentView {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        artifact_name: row.try_get("artifact_name")?,
        created: row.try_get("created")?,
        finished: row.try_get("finished")?,
        status: row.try_get("status")?,
        device_count: row.try_get("device_count")?,
        max_devices: row.try_get("max_devices")?,
        kind: "software",
    }))
}

/// One count per device status, zero-filled, as Mender answers.
async fn statistics(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
) -> Result<Json<BTreeMap<&'static str, i64>>, ApiError> {
    let id = parse_id(&id)?;
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT max_devices FROM deployments WHERE tenant = $1 AND id = $2")
            .bind(user.tenant.as_str())
            .bind(id.to_string())
            .fetch_optional(state.read_models.pool())
            .await?;
    if exists.is_none() {
        return Err(ApiError::NotFound);
    }
    let mut counts: BTreeMap<&'static str, i64> = DeviceDeploymentStatus::ALL
        .into_iter()
        .map(|status| (status.as_str(), 0))
        .collect();
    let rows = sqlx::query(
        "SELECT status, COUNT(*) AS devices FROM device_deployments
         WHERE tenant = $1 AND deployment_id = $2 GROUP BY status",
    )
    .bind(user.tenant.as_str())
    .bind(id.to_string())
    .fetch_all(state.read_models.pool())
    .await?;
    for row in rows {
        let status: String = row.try_get("status")?;
        if let Some(status) = DeviceDeploymentStatus::parse(&status) {
            counts.insert(status.as_str(), row.try_get("devices")?);
        }
    }
    Ok(Json(counts))
}

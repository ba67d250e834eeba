//! Deployments and device entries as Mender's management API shows them.
//!
//! Shapes follow the Go service's JSON (model/deployment.go, model/device_deployment.go in
//! mendersoftware/deployments): empty optional fields are left out, not sent as null.

use std::collections::{BTreeMap, HashMap};

use events::deployment::DeviceDeploymentStatus;
use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::error::ApiError;

/// Columns of `deployments` that [`deployment_views`] reads.
pub const DEPLOYMENT_COLUMNS: &str = "id, name, artifact_name, created, finished, status, \
     device_count, max_devices, force_installation, total_size";

/// A deployment, with its statistics as the Go service embeds them.
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
    /// Ids of the artifacts the deployment may install.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<String>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub force_installation: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<PhaseView>,
    pub statistics: StatisticsView,
}

/// One phase of a phased deployment.
#[derive(Debug, Serialize)]
pub struct PhaseView {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<i64>,
    pub start_ts: String,
    /// Devices admitted to this phase so far.
    pub device_count: i64,
}

/// Devices per status, and the bytes of the artifacts assigned to them.
#[derive(Debug, Serialize)]
pub struct StatisticsView {
    pub status: BTreeMap<&'static str, i64>,
    pub total_size: i64,
}

/// Every device status with a count of zero, the shape Mender always answers with.
pub fn zero_statistics() -> BTreeMap<&'static str, i64> {
    DeviceDeploymentStatus::ALL
        .into_iter()
        .map(|status| (status.as_str(), 0))
        .collect()
}

/// `$first, $first+1, ...` for `count` bound values.
pub fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds the views of deployment rows read with [`DEPLOYMENT_COLUMNS`], in their order,
/// fetching statistics, phases and artifacts of all of them in one query each.
pub async fn deployment_views(
    pool: &AnyPool,
    tenant: &str,
    rows: &[AnyRow],
) -> Result<Vec<DeploymentView>, ApiError> {
    let ids: Vec<String> = rows
        .iter()
        .map(|row| row.try_get("id"))
        .collect::<Result<_, _>>()?;
    let mut statistics: HashMap<String, BTreeMap<&'static str, i64>> = HashMap::new();
    let mut phases: HashMap<String, Vec<PhaseView>> = HashMap::new();
    let mut artifacts: HashMap<String, Vec<String>> = HashMap::new();
    if !ids.is_empty() {
        let among = placeholders(2, ids.len());
        for row in related(
            pool,
            tenant,
            &ids,
            &format!(
                "SELECT deployment_id, status, devices FROM deployment_statistics
                 WHERE tenant = $1 AND deployment_id IN ({among})"
            ),
        )
        .await?
        {
            let status: String = row.try_get("status")?;
            if let Some(status) = DeviceDeploymentStatus::parse(&status) {
                statistics
                    .entry(row.try_get("deployment_id")?)
                    .or_insert_with(zero_statistics)
                    .insert(status.as_str(), row.try_get("devices")?);
            }
        }
        for row in related(
            pool,
            tenant,
            &ids,
            &format!(
                "SELECT deployment_id, id, batch_size, start_ts, device_count
                 FROM deployment_phases WHERE tenant = $1 AND deployment_id IN ({among})
                 ORDER BY deployment_id, number"
            ),
        )
        .await?
        {
            phases
                .entry(row.try_get("deployment_id")?)
                .or_default()
                .push(PhaseView {
                    id: row.try_get("id")?,
                    batch_size: row.try_get("batch_size")?,
                    start_ts: row.try_get("start_ts")?,
                    device_count: row.try_get("device_count")?,
                });
        }
        for row in related(
            pool,
            tenant,
            &ids,
            &format!(
                "SELECT deployment_id, artifact_id FROM deployment_artifacts
                 WHERE tenant = $1 AND deployment_id IN ({among})
                 ORDER BY deployment_id, artifact_id"
            ),
        )
        .await?
        {
            artifacts
                .entry(row.try_get("deployment_id")?)
                .or_default()
                .push(row.try_get("artifact_id")?);
        }
    }
    rows.iter()
        .zip(ids)
        .map(|(row, id)| {
            let force_installation: i64 = row.try_get("force_installation")?;
            Ok(DeploymentView {
                name: row.try_get("name")?,
                artifact_name: row.try_get("artifact_name")?,
                created: row.try_get("created")?,
                finished: row.try_get("finished")?,
                status: row.try_get("status")?,
                device_count: row.try_get("device_count")?,
                max_devices: row.try_get("max_devices")?,
                artifacts: artifacts.remove(&id).unwrap_or_default(),
                kind: "software",
                force_installation: force_installation == 1,
                phases: phases.remove(&id).unwrap_or_default(),
                statistics: StatisticsView {
                    status: statistics.remove(&id).unwrap_or_else(zero_statistics),
                    total_size: row.try_get("total_size")?,
                },
                id,
            })
        })
        .collect()
}

async fn related(
    pool: &AnyPool,
    tenant: &str,
    ids: &[String],
    sql: &str,
) -> Result<Vec<AnyRow>, ApiError> {
    let mut query = sqlx::query(sql).bind(tenant);
    for id in ids {
        query = query.bind(id.as_str());
    }
    Ok(query.fetch_all(pool).await?)
}

/// Columns of a device entry that [`device_view`] reads, with the assigned artifact's row
/// from the artifacts read model (absent once the artifact is deleted).
pub const DEVICE_COLUMNS: &str = "dd.deployment_id, dd.device_id, dd.id AS entry_id, dd.status, \
     dd.substate, dd.created, dd.started, dd.finished, dd.device_type, dd.has_log, \
     a.document, a.description, a.modified";

/// `FROM` clause matching [`DEVICE_COLUMNS`].
pub const DEVICE_FROM: &str = "device_deployments dd LEFT JOIN artifacts a \
     ON a.tenant = dd.tenant AND a.id = dd.artifact_id";

/// A device's entry in a deployment (Mender's `DeviceWithImage`).
#[derive(Debug, Serialize)]
pub struct DeviceView {
    pub id: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub substate: Option<String>,
    pub created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    pub device_type: String,
    /// Whether the device uploaded a log for this deployment.
    pub log: bool,
    /// The artifact assigned to the device, as `GET /artifacts/{id}` shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<Value>,
}

/// The view of a row read with [`DEVICE_COLUMNS`] from [`DEVICE_FROM`].
pub fn device_view(row: &AnyRow) -> Result<DeviceView, ApiError> {
    let document: Option<String> = row.try_get("document")?;
    let image = match document {
        Some(_) => Some(super::super::artifacts::view(row)?),
        None => None,
    };
    let has_log: i64 = row.try_get("has_log")?;
    Ok(DeviceView {
        id: row.try_get("device_id")?,
        status: row.try_get("status")?,
        substate: row.try_get("substate")?,
        created: row.try_get("created")?,
        started: row.try_get("started")?,
        finished: row.try_get("finished")?,
        device_type: row.try_get("device_type")?,
        log: has_log == 1,
        image,
    })
}

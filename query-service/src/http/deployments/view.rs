//! Deployments and device entries as Mender's management API shows them.
//!
//! Shapes follow the Go service's JSON (model/deployment.go, model/device_deployment.go in
//! mendersoftware/deployments): empty optional fields are left out, not sent as null.

use std::collections::BTreeMap;

use events::deployment::DeviceDeploymentStatus;
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::read_models::deployments::Deployment;
use crate::read_models::entries::Entry;

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
    /// The static group the deployment was made for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Made from a saved filter: devices join as they match it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dynamic: bool,
    /// The filter a dynamic deployment was made from, as it was then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
    /// Paused: devices that have not started it get nothing until it is resumed.
    pub paused: bool,
    /// Why it is paused: `{"kind": "operator", "subject"}` or `{"kind": "policy", ...}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_cause: Option<Value>,
    /// The failure policy it was created with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Value>,
    /// The counts the policy tripped on, once it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_trip: Option<Value>,
    /// Retries a device whose attempt failed gets (0 to 10).
    pub retries: i64,
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

/// A JSON column, read back.
fn json_of(text: Option<&str>) -> Option<Value> {
    text.and_then(|text| serde_json::from_str(text).ok())
}

/// Every device status with a count of zero, the shape Mender always answers with.
pub fn zero_statistics() -> BTreeMap<&'static str, i64> {
    DeviceDeploymentStatus::ALL
        .into_iter()
        .map(|status| (status.as_str(), 0))
        .collect()
}

/// Builds the views of deployments, in their order, from their rows: each row carries its
/// statistics, phases and artifacts, read in the same query.
pub fn deployment_views(rows: Vec<Deployment>) -> Vec<DeploymentView> {
    rows.into_iter().map(deployment_view).collect()
}

fn deployment_view(row: Deployment) -> DeploymentView {
    let mut statistics = zero_statistics();
    for (status, devices) in row.statistics {
        if let Some(status) = DeviceDeploymentStatus::parse(&status) {
            statistics.insert(status.as_str(), devices);
        }
    }
    let phases = row
        .phases
        .into_iter()
        .map(|(id, batch_size, start_ts, device_count)| PhaseView {
            id,
            batch_size,
            start_ts,
            device_count,
        })
        .collect();
    DeploymentView {
        artifacts: row.artifacts,
        phases,
        statistics: StatisticsView {
            status: statistics,
            total_size: row.total_size,
        },
        name: row.name,
        artifact_name: row.artifact_name,
        created: row.created,
        finished: row.finished,
        status: row.status,
        device_count: row.device_count,
        max_devices: row.max_devices,
        kind: "software",
        force_installation: row.force_installation == 1,
        groups: row
            .groups
            .as_deref()
            .and_then(|groups| serde_json::from_str(groups).ok())
            .unwrap_or_default(),
        policy: json_of(row.policy.as_deref()),
        policy_trip: json_of(row.policy_trip.as_deref()),
        retries: row.retries,
        paused: row.paused == 1,
        pause_cause: row
            .pause_cause
            .as_deref()
            .and_then(|cause| serde_json::from_str(cause).ok()),
        dynamic: row.filter.is_some(),
        filter: row
            .filter
            .as_deref()
            .and_then(|filter| serde_json::from_str(filter).ok()),
        id: row.id,
    }
}

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
    /// The attempt the entry is on: 1, and one more for each retry.
    pub attempts: i64,
    /// The artifact assigned to the device, as `GET /artifacts/{id}` shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<Value>,
}

/// The view of a device entry.
pub fn device_view(entry: Entry) -> Result<DeviceView, ApiError> {
    let image = match entry.artifact.into_artifact() {
        Some(artifact) => Some(super::super::artifacts::view(&artifact)?),
        None => None,
    };
    Ok(DeviceView {
        id: entry.device_id,
        status: entry.status,
        substate: entry.substate,
        created: entry.created,
        started: entry.started,
        finished: entry.finished,
        device_type: entry.device_type,
        log: entry.has_log == 1,
        attempts: entry.attempts,
        image,
    })
}

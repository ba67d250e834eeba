//! `PUT` and `PATCH /api/devices/v1/inventory/device/attributes`: mender-client reports its
//! inventory after every boot and periodically, and treats a failure as an error worth
//! retrying, so a fleet without an inventory service still needs the route to answer 200.
//!
//! Only `device_type` and `artifact_name` are kept, in memory: the deployments side already
//! records both on each of the device's entries from what the device says when it asks for
//! its next deployment, so nothing here needs to reach the event log.

use std::collections::HashMap;
use std::sync::RwLock;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::Router;
use events::TenantId;
use http_edge::auth::Device;
use http_edge::{error_response, JsonBody};
use serde::Deserialize;
use serde_json::Value;

use super::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route(
        "/api/devices/v1/inventory/device/attributes",
        put(record).patch(record),
    )
}

#[derive(Deserialize)]
struct Attribute {
    name: String,
    value: Value,
}

/// What the server remembers of a device's inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct DeviceAttributes {
    pub device_type: Option<String>,
    pub artifact_name: Option<String>,
}

impl DeviceAttributes {
    /// Takes the attributes this server keeps from `reported`; others are ignored.
    fn apply(&mut self, reported: &[Attribute]) {
        for attribute in reported {
            let slot = match attribute.name.as_str() {
                "device_type" => &mut self.device_type,
                "artifact_name" => &mut self.artifact_name,
                _ => continue,
            };
            *slot = match &attribute.value {
                Value::String(text) => Some(text.clone()),
                other => Some(other.to_string()),
            };
        }
    }
}

/// Devices' kept attributes, by tenant and device id.
#[derive(Default)]
pub struct Inventory {
    devices: RwLock<HashMap<(TenantId, String), DeviceAttributes>>,
}

impl Inventory {
    /// Records what `device` reported, replacing what it reported before when `replace`;
    /// returns the attributes kept from now on.
    fn record(
        &self,
        device: &http_edge::auth::Identity,
        reported: &[Attribute],
        replace: bool,
    ) -> DeviceAttributes {
        let mut devices = self
            .devices
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let kept = devices
            .entry((device.tenant.clone(), device.subject.clone()))
            .or_default();
        let before = kept.clone();
        if replace {
            *kept = DeviceAttributes::default();
        }
        kept.apply(reported);
        if *kept != before {
            tracing::info!(
                device_type = kept.device_type.as_deref().unwrap_or(""),
                artifact_name = kept.artifact_name.as_deref().unwrap_or(""),
                "device inventory changed"
            );
        }
        kept.clone()
    }
}

/// `PUT` replaces what the device reported before, `PATCH` adds to it.
async fn record(
    State(state): State<AppState>,
    method: Method,
    Device(device): Device,
    JsonBody(reported): JsonBody<Vec<Attribute>>,
) -> Response {
    // Mounted only with a door; without one the route does not exist.
    let Some(door) = &state.door else {
        return error_response(StatusCode::NOT_FOUND, "Resource not found");
    };
    if reported.iter().any(|attribute| attribute.name.is_empty()) {
        return error_response(StatusCode::BAD_REQUEST, "attribute name cannot be empty");
    }
    door.inventory
        .record(&device, &reported, method == Method::PUT);
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(json: &str) -> Vec<Attribute> {
        serde_json::from_str(json).unwrap()
    }

    fn device() -> http_edge::auth::Identity {
        http_edge::auth::Identity {
            subject: "device-1".into(),
            tenant: TenantId::default(),
            issued_at: None,
        }
    }

    #[test]
    fn patch_merges_and_put_replaces() {
        let inventory = Inventory::default();
        let kept = inventory.record(
            &device(),
            &attributes(
                r#"[{"name":"device_type","value":"rpi4"},
                    {"name":"artifact_name","value":"release-1"},
                    {"name":"mac","value":"00:11"}]"#,
            ),
            true,
        );
        assert_eq!(kept.device_type.as_deref(), Some("rpi4"));
        let kept = inventory.record(
            &device(),
            &attributes(r#"[{"name":"artifact_name","value":"release-2"}]"#),
            false,
        );
        assert_eq!(kept.device_type.as_deref(), Some("rpi4"));
        assert_eq!(kept.artifact_name.as_deref(), Some("release-2"));
        let kept = inventory.record(
            &device(),
            &attributes(r#"[{"name":"artifact_name","value":"release-3"}]"#),
            true,
        );
        assert_eq!(
            kept,
            DeviceAttributes {
                device_type: None,
                artifact_name: Some("release-3".into()),
            }
        );
    }
}

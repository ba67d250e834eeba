//! Events of the device inventory (Mender's inventory service), each on the device's own
//! inventory stream `inventory-<device id>`: what the device reports about itself, the tags an
//! operator puts on it, and the one static group it belongs to.
//!
//! Identity attributes and the admission status are not recorded here: they are admission's
//! facts (`devauth-<id>`), and an inventory view joins them in.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The stream of one device's inventory.
pub fn stream(device_id: &str) -> String {
    format!("inventory-{device_id}")
}

/// The tenant-wide stream of saved filters: names are unique among them.
pub const FILTERS_STREAM: &str = "filters";

/// One predicate of a saved filter, as checked when it was saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterTerm {
    pub scope: String,
    pub attribute: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: Value,
}

/// An operator saved a filter (a dynamic group) under a name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterSaved {
    pub filter_id: uuid::Uuid,
    pub name: String,
    pub terms: Vec<FilterTerm>,
}

/// An operator deleted a saved filter; deployments made from it keep their copy of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterDeleted {
    pub filter_id: uuid::Uuid,
}

/// The ETag of a device's tags after `revision` updates: the same on the write and the read
/// side, and different after every update.
pub fn tags_etag(device: &str, revision: u64) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("{device}/tags/{revision}").as_bytes(),
    )
    .to_string()
}

/// One attribute as recorded: a name, a value (a string, a number, or an array of all-strings
/// or all-numbers), an optional description, and for tags the time it was set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    pub name: String,
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
}

/// Applies attributes to a scope held by name: upserted, or with `replace` the scope replaced
/// by them. How both the write side and the read side fold a report or a tags update.
pub fn upsert(
    into: &mut std::collections::BTreeMap<String, Attribute>,
    attributes: &[Attribute],
    replace: bool,
) {
    if replace {
        into.clear();
    }
    for attribute in attributes {
        into.insert(attribute.name.clone(), attribute.clone());
    }
}

/// The device reported attributes of its `inventory` scope: upserted, or with `replace` the
/// whole scope replaced by them (a `PUT`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryReported {
    pub device_id: String,
    pub attributes: Vec<Attribute>,
    pub replace: bool,
}

/// An operator cleared the device's `inventory` scope (Mender's `DELETE /devices/{id}`); its
/// tags and group stay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryCleared {
    pub device_id: String,
}

/// An operator set tags on the device: upserted, or with `replace` all tags replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceTagsSet {
    pub device_id: String,
    pub tags: Vec<Attribute>,
    pub replace: bool,
}

/// The device was put into a static group, leaving the one it was in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceGroupAssigned {
    pub device_id: String,
    pub group: String,
}

/// The device left `group`. Applies only while the device is in that group, so a removal
/// decided from a moment-old view never takes a device out of the group it moved to since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceGroupLeft {
    pub device_id: String,
    pub group: String,
}

/// The device was decommissioned: its whole inventory (attributes, tags, group) is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryRemoved {
    pub device_id: String,
}

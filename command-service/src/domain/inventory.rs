//! A device's inventory: what it reports about itself, an operator's tags, and its static
//! group, decided on the device's `inventory-<id>` stream.
//!
//! Values are checked as Mender's inventory checks them (a string, a number, or an array of
//! all-strings or all-numbers; names and scopes up to 1024 characters), and a report that
//! changes nothing records nothing: devices report their whole inventory every day and on
//! every boot, and the log keeps only what changed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use events::inventory::{
    tags_etag, upsert, Attribute, DeviceGroupAssigned, DeviceGroupLeft, DeviceTagsSet,
    InventoryCleared, InventoryRemoved, InventoryReported,
};
use events::DomainEvent;
use serde::Deserialize;
use serde_json::Value;

pub use events::inventory::stream;

/// Attributes one device may report (Mender's `limit_attributes` default).
pub const MAX_ATTRIBUTES: usize = 100;
/// Tags one device may carry (Mender's `limit_tags` default).
pub const MAX_TAGS: usize = 20;
const MAX_NAME: usize = 1024;
/// A group's name as it may be given a device.
pub const MAX_GROUP: usize = 256;
/// A group's name as the removal routes accept it: the legacy maximum.
pub const MAX_GROUP_LEGACY: usize = 1024;

/// An attribute as a client sends it; its scope is the route's and a `timestamp` it sends is
/// dropped.
#[derive(Debug, Clone, Deserialize)]
pub struct SentAttribute {
    pub name: Option<String>,
    pub value: Option<Value>,
    pub description: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub timestamp: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InventoryError {
    #[error("{0}")]
    Invalid(String),
    #[error("Device not found")]
    DeviceNotFound,
    #[error("the tags were changed since they were read (ETag mismatch)")]
    TagsChanged,
    #[error("Device not found in the group")]
    NotInGroup,
}

fn invalid(message: impl Into<String>) -> InventoryError {
    InventoryError::Invalid(message.into())
}

/// A device's inventory as the write side knows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceInventory {
    pub attributes: BTreeMap<String, Attribute>,
    pub tags: BTreeMap<String, Attribute>,
    pub group: Option<String>,
    /// How many times the tags were set: the ETag names this revision.
    pub tag_revision: u64,
    /// Whether the stream holds anything since the device was last removed.
    pub exists: bool,
}

impl DeviceInventory {
    /// The ETag of the tags as they are now, `None` before any were set.
    pub fn etag(&self, device: &str) -> Option<String> {
        (self.tag_revision > 0).then(|| tags_etag(device, self.tag_revision))
    }
}

pub fn evolve(mut state: DeviceInventory, event: &DomainEvent) -> DeviceInventory {
    match event {
        DomainEvent::InventoryReported(reported) => {
            upsert(
                &mut state.attributes,
                &reported.attributes,
                reported.replace,
            );
            state.exists = true;
        }
        DomainEvent::InventoryCleared(_) => state.attributes.clear(),
        DomainEvent::DeviceTagsSet(set) => {
            upsert(&mut state.tags, &set.tags, set.replace);
            state.tag_revision += 1;
            state.exists = true;
        }
        DomainEvent::DeviceGroupAssigned(assigned) => {
            state.group = Some(assigned.group.clone());
            state.exists = true;
        }
        DomainEvent::DeviceGroupLeft(left)
            if state.group.as_deref() == Some(left.group.as_str()) =>
        {
            state.group = None;
        }
        DomainEvent::InventoryRemoved(_) => state = DeviceInventory::default(),
        _ => {}
    }
    state
}

/// Checks one sent attribute and turns it into the recorded one.
fn checked(
    sent: &SentAttribute,
    index: usize,
    with_time: Option<DateTime<Utc>>,
) -> Result<Attribute, InventoryError> {
    let name = match &sent.name {
        Some(name) if !name.is_empty() && name.chars().count() <= MAX_NAME => name.clone(),
        _ => {
            return Err(invalid(format!(
                "[{index}].name: must be between 1 and {MAX_NAME} characters"
            )))
        }
    };
    let value = match &sent.value {
        Some(value) if valid_value(value) => value.clone(),
        _ => {
            return Err(invalid(format!(
                "[{index}].value: must be a string, a number, or an array of all strings or all numbers"
            )))
        }
    };
    Ok(Attribute {
        name,
        value,
        description: sent.description.clone(),
        timestamp: with_time,
    })
}

fn valid_value(value: &Value) -> bool {
    match value {
        Value::String(_) | Value::Number(_) => true,
        Value::Array(items) => {
            items.iter().all(Value::is_string) || items.iter().all(Value::is_number)
        }
        _ => false,
    }
}

fn all_checked(
    sent: &[SentAttribute],
    with_time: Option<DateTime<Utc>>,
) -> Result<Vec<Attribute>, InventoryError> {
    sent.iter()
        .enumerate()
        .map(|(index, attribute)| checked(attribute, index, with_time))
        .collect()
}

/// A device's report of its `inventory` scope: upserted (`PATCH`) or replacing it (`PUT`).
pub fn decide_report(
    state: &DeviceInventory,
    device: &str,
    sent: &[SentAttribute],
    replace: bool,
) -> Result<Vec<DomainEvent>, InventoryError> {
    let attributes = all_checked(sent, None)?;
    let mut after = state.attributes.clone();
    upsert(&mut after, &attributes, replace);
    if after.len() > MAX_ATTRIBUTES {
        return Err(invalid(format!(
            "too many attributes: a device may report at most {MAX_ATTRIBUTES}"
        )));
    }
    if after == state.attributes && state.exists {
        return Ok(Vec::new());
    }
    Ok(vec![DomainEvent::InventoryReported(InventoryReported {
        device_id: device.to_owned(),
        attributes,
        replace,
    })])
}

/// An operator's `DELETE /inventory/devices/{id}`: the `inventory` scope goes; nothing else.
pub fn decide_clear(state: &DeviceInventory, device: &str) -> Vec<DomainEvent> {
    if state.attributes.is_empty() {
        return Vec::new();
    }
    vec![DomainEvent::InventoryCleared(InventoryCleared {
        device_id: device.to_owned(),
    })]
}

/// An operator sets tags, upserted or replacing all, optionally only if they are still at the
/// ETag the operator read.
pub fn decide_tags(
    state: &DeviceInventory,
    device: &str,
    sent: &[SentAttribute],
    replace: bool,
    if_match: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<DomainEvent>, InventoryError> {
    let tags = all_checked(sent, Some(now))?;
    if let Some(expected) = if_match {
        if state.etag(device).as_deref() != Some(expected) {
            return Err(InventoryError::TagsChanged);
        }
    }
    let mut after = state.tags.clone();
    upsert(&mut after, &tags, replace);
    if after.len() > MAX_TAGS {
        return Err(invalid(format!(
            "too many tags: a device may carry at most {MAX_TAGS}"
        )));
    }
    Ok(vec![DomainEvent::DeviceTagsSet(DeviceTagsSet {
        device_id: device.to_owned(),
        tags,
        replace,
    })])
}

/// A group name given to a device: 1 to 256 of `A-Z a-z 0-9 _ -`; removals accept names up
/// to the legacy `max` of 1024.
pub fn check_group_name(name: &str, max: usize) -> Result<(), InventoryError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.is_empty() || name.len() > max || !name.chars().all(allowed) {
        return Err(invalid(format!(
            "group name: must be 1 to {max} characters of A-Z, a-z, 0-9, _ and -"
        )));
    }
    Ok(())
}

/// Puts a known device into `group` (moving it out of the one it was in).
pub fn decide_group(
    state: &DeviceInventory,
    device: &str,
    group: &str,
    known: bool,
) -> Result<Vec<DomainEvent>, InventoryError> {
    check_group_name(group, MAX_GROUP)?;
    if !known {
        return Err(InventoryError::DeviceNotFound);
    }
    if state.group.as_deref() == Some(group) {
        return Ok(Vec::new());
    }
    Ok(vec![assigned(device, group)])
}

pub fn assigned(device: &str, group: &str) -> DomainEvent {
    DomainEvent::DeviceGroupAssigned(DeviceGroupAssigned {
        device_id: device.to_owned(),
        group: group.to_owned(),
    })
}

pub fn left(device: &str, group: &str) -> DomainEvent {
    DomainEvent::DeviceGroupLeft(DeviceGroupLeft {
        device_id: device.to_owned(),
        group: group.to_owned(),
    })
}

/// Takes a device out of `group`: 404 unless it is in it.
pub fn decide_leave(
    state: &DeviceInventory,
    device: &str,
    group: &str,
) -> Result<Vec<DomainEvent>, InventoryError> {
    check_group_name(group, MAX_GROUP_LEGACY)?;
    if state.group.as_deref() != Some(group) {
        return Err(InventoryError::NotInGroup);
    }
    Ok(vec![left(device, group)])
}

/// A decommissioned device's inventory goes with it.
pub fn decide_remove(state: &DeviceInventory, device: &str) -> Vec<DomainEvent> {
    if !state.exists && state.group.is_none() {
        return Vec::new();
    }
    vec![DomainEvent::InventoryRemoved(InventoryRemoved {
        device_id: device.to_owned(),
    })]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sent(name: &str, value: Value) -> SentAttribute {
        SentAttribute {
            name: Some(name.into()),
            value: Some(value),
            description: None,
            scope: None,
            timestamp: None,
        }
    }

    fn fold(events: &[DomainEvent]) -> DeviceInventory {
        events.iter().fold(DeviceInventory::default(), evolve)
    }

    #[test]
    fn a_report_that_changes_nothing_records_nothing_and_put_replaces() {
        let first = decide_report(
            &DeviceInventory::default(),
            "d",
            &[sent("device_type", json!("rpi4")), sent("mem", json!(1024))],
            false,
        )
        .unwrap();
        let state = fold(&first);
        assert_eq!(state.attributes.len(), 2);
        let again = decide_report(&state, "d", &[sent("mem", json!(1024))], false).unwrap();
        assert!(again.is_empty(), "{again:?}");
        let replaced = decide_report(&state, "d", &[sent("mem", json!(2048))], true).unwrap();
        let state = fold(&[first, replaced].concat());
        assert_eq!(state.attributes.keys().collect::<Vec<_>>(), ["mem"]);
        assert_eq!(state.attributes["mem"].value, json!(2048));
    }

    #[test]
    fn values_and_names_are_checked_and_the_scope_is_bounded() {
        let state = DeviceInventory::default();
        for bad in [json!(true), json!(null), json!(["a", 1]), json!({"a": 1})] {
            let error = decide_report(&state, "d", &[sent("x", bad.clone())], false).unwrap_err();
            assert!(
                matches!(error, InventoryError::Invalid(ref m) if m.starts_with("[0].value")),
                "{bad}: {error}"
            );
        }
        assert!(decide_report(&state, "d", &[sent("", json!("v"))], false).is_err());
        assert!(decide_report(&state, "d", &[sent("n", json!([1, 2.5]))], false).is_ok());
        let many: Vec<_> = (0..=MAX_ATTRIBUTES)
            .map(|i| sent(&format!("a{i}"), json!(i)))
            .collect();
        assert!(decide_report(&state, "d", &many, false).is_err());
    }

    #[test]
    fn tags_carry_an_etag_that_changes_with_every_update() {
        let now = Utc::now();
        let state = DeviceInventory::default();
        assert_eq!(state.etag("d"), None);
        let first =
            decide_tags(&state, "d", &[sent("site", json!("oslo"))], true, None, now).unwrap();
        let state = fold(&first);
        let etag = state.etag("d").unwrap();
        assert_eq!(
            decide_tags(&state, "d", &[], false, Some("stale"), now),
            Err(InventoryError::TagsChanged)
        );
        let second = decide_tags(
            &state,
            "d",
            &[sent("rack", json!(4))],
            false,
            Some(&etag),
            now,
        )
        .unwrap();
        let state = fold(&[first, second].concat());
        assert_ne!(state.etag("d").unwrap(), etag);
        assert_eq!(state.tags.len(), 2);
        assert_eq!(state.tags["site"].timestamp, Some(now));
    }

    #[test]
    fn a_device_is_in_one_group_and_a_stale_removal_does_not_touch_its_new_one() {
        let state = fold(&[assigned("d", "lab")]);
        assert_eq!(decide_group(&state, "d", "lab", true), Ok(Vec::new()));
        assert!(decide_group(&state, "d", "bad name", true).is_err());
        assert_eq!(
            decide_group(&state, "d", "prod", false),
            Err(InventoryError::DeviceNotFound)
        );
        let state = fold(&[
            assigned("d", "lab"),
            assigned("d", "prod"),
            left("d", "lab"),
        ]);
        assert_eq!(state.group.as_deref(), Some("prod"));
        assert_eq!(
            decide_leave(&state, "d", "lab"),
            Err(InventoryError::NotInGroup)
        );
        assert_eq!(decide_leave(&state, "d", "prod").unwrap().len(), 1);
    }
}

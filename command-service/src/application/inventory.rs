//! Inventory commands: a device's report, and an operator's tags, groups and clearing.
//!
//! A command about one device is decided on that device's inventory stream. Commands about a
//! group's members are decided from the tables and append to each member's stream without
//! reading it: their events commute (an assignment is the latest one, a removal names the
//! group it takes the device out of and does nothing once the device has moved on).

use chrono::{DateTime, Utc};
use events::{DomainEvent, StreamName};

use super::{Caller, Decision, Outcome, Pipeline, Session};
use crate::domain::filters;
use crate::domain::inventory::{self, DeviceInventory, InventoryError, SentAttribute};
use crate::error::ApiError;

/// Runs a command decided on one device's inventory stream alone.
async fn on_device<T>(
    pipeline: &Pipeline,
    caller: &Caller,
    device: &str,
    decide: impl Fn(&Session, &DeviceInventory) -> Result<(Vec<DomainEvent>, T), ApiError>,
) -> Result<Outcome<T>, ApiError> {
    let stream = StreamName::new(inventory::stream(device));
    super::on_stream(pipeline, caller, stream, inventory::evolve, decide).await
}

/// Whether the tables know the device, once they reflect everything committed.
async fn known(session: &Session, device: &str) -> Result<bool, ApiError> {
    session
        .tables(&[], |tables| tables.known_device(device))
        .await
}

/// `PATCH`/`PUT /api/devices/v1/inventory/device/attributes`.
pub async fn report(
    pipeline: &Pipeline,
    caller: &Caller,
    device: &str,
    attributes: &[SentAttribute],
    replace: bool,
) -> Result<Outcome<()>, ApiError> {
    on_device(pipeline, caller, device, |_, state| {
        Ok((
            inventory::decide_report(state, device, attributes, replace)?,
            (),
        ))
    })
    .await
}

/// `DELETE /api/management/v1/inventory/devices/{id}`: clears the reported attributes.
pub async fn clear(
    pipeline: &Pipeline,
    caller: &Caller,
    device: &str,
) -> Result<Outcome<()>, ApiError> {
    on_device(pipeline, caller, device, |_, state| {
        Ok((inventory::decide_clear(state, device), ()))
    })
    .await
}

/// `PUT`/`PATCH /api/management/v1/inventory/devices/{id}/tags`; answers the new ETag.
pub async fn tags(
    pipeline: &Pipeline,
    caller: &Caller,
    device: &str,
    sent: &[SentAttribute],
    replace: bool,
    if_match: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Outcome<()>, ApiError> {
    pipeline
        .run(caller, |session| async move {
            let stream = StreamName::new(inventory::stream(device));
            let state = session.load(&stream, inventory::evolve).await?;
            if !known(&session, device).await? {
                return Err(InventoryError::DeviceNotFound.into());
            }
            let events = inventory::decide_tags(&state, device, sent, replace, if_match, now)?;
            Ok(Decision::append(stream, events, ()))
        })
        .await
}

/// `PUT /api/management/v1/inventory/devices/{id}/group`.
pub async fn assign(
    pipeline: &Pipeline,
    caller: &Caller,
    device: &str,
    group: &str,
) -> Result<Outcome<()>, ApiError> {
    pipeline
        .run(caller, |session| async move {
            let stream = StreamName::new(inventory::stream(device));
            let state = session.load(&stream, inventory::evolve).await?;
            let known = known(&session, device).await?;
            let events = inventory::decide_group(&state, device, group, known)?;
            Ok(Decision::append(stream, events, ()))
        })
        .await
}

/// `DELETE /api/management/v1/inventory/devices/{id}/group/{name}`.
pub async fn leave(
    pipeline: &Pipeline,
    caller: &Caller,
    device: &str,
    group: &str,
) -> Result<Outcome<()>, ApiError> {
    on_device(pipeline, caller, device, |_, state| {
        Ok((inventory::decide_leave(state, device, group)?, ()))
    })
    .await
}

/// What a change to a group's members came to: devices it found, devices it changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MembersChanged {
    pub matched: usize,
    pub updated: usize,
}

/// `PATCH /groups/{name}/devices` (`add`) and `DELETE /groups/{name}/devices`: known devices
/// among `devices` join or leave the group; unknown ones are not matched.
pub async fn members(
    pipeline: &Pipeline,
    caller: &Caller,
    group: &str,
    devices: &[String],
    add: bool,
) -> Result<Outcome<MembersChanged>, ApiError> {
    pipeline
        .run(caller, |session| async move {
            let (changed, appends) = session
                .tables(&[], |tables| {
                    let mut changed = MembersChanged::default();
                    let mut appends = Vec::new();
                    let mut seen = std::collections::HashSet::new();
                    for device in devices.iter().filter(|device| seen.insert(*device)) {
                        let current = tables.group_of(device);
                        let (matched, event) = if add {
                            let event = (current != Some(group))
                                .then(|| inventory::assigned(device, group));
                            (tables.known_device(device), event)
                        } else {
                            let member = current == Some(group);
                            (member, member.then(|| inventory::left(device, group)))
                        };
                        if !matched {
                            continue;
                        }
                        changed.matched += 1;
                        if let Some(event) = event {
                            changed.updated += 1;
                            appends.push((StreamName::new(inventory::stream(device)), vec![event]));
                        }
                    }
                    (changed, appends)
                })
                .await?;
            Ok(Decision {
                answer: changed,
                appends,
            })
        })
        .await
}

/// `DELETE /api/management/v1/inventory/groups/{name}`: every member leaves; the group is
/// gone with its last member.
pub async fn delete_group(
    pipeline: &Pipeline,
    caller: &Caller,
    group: &str,
) -> Result<Outcome<usize>, ApiError> {
    pipeline
        .run(caller, |session| async move {
            let appends: Vec<_> = session
                .tables(&[], |tables| {
                    tables
                        .group_members(group)
                        .map(|device| {
                            (
                                StreamName::new(inventory::stream(device)),
                                vec![inventory::left(device, group)],
                            )
                        })
                        .collect()
                })
                .await?;
            Ok(Decision {
                answer: appends.len(),
                appends,
            })
        })
        .await
}

/// Within a decommission: the events that remove the device's inventory.
pub(super) async fn removed(
    session: &Session,
    device: &str,
) -> Result<(StreamName, Vec<DomainEvent>), ApiError> {
    let stream = StreamName::new(inventory::stream(device));
    let state = session.load(&stream, inventory::evolve).await?;
    Ok((stream.clone(), inventory::decide_remove(&state, device)))
}

/// `POST /api/management/v2/inventory/filters`: saves a filter under a new name.
pub async fn save_filter(
    pipeline: &Pipeline,
    caller: &Caller,
    id: uuid::Uuid,
    request: &filters::NewFilter,
) -> Result<Outcome<()>, ApiError> {
    let stream = StreamName::new(filters::STREAM);
    super::on_stream(pipeline, caller, stream, filters::evolve, |_, state| {
        Ok((filters::decide_save(state, id, request)?, ()))
    })
    .await
}

/// `DELETE /api/management/v2/inventory/filters/{id}`.
pub async fn delete_filter(
    pipeline: &Pipeline,
    caller: &Caller,
    id: uuid::Uuid,
) -> Result<Outcome<()>, ApiError> {
    let stream = StreamName::new(filters::STREAM);
    super::on_stream(pipeline, caller, stream, filters::evolve, |_, state| {
        Ok((filters::decide_delete(state, id)?, ()))
    })
    .await
}

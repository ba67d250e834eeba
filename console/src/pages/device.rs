//! One device: its identity and auth sets, group, inventory and deployment history.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{Html, Response};
use maud::html;
use serde_json::{json, Value};

use super::{field, no_such_action, perform, segment, shown, text, Action};
use crate::error::ConsoleError;
use crate::layout::{self, notice, short_time, Section};
use crate::session::{Posted, Session};
use crate::ConsoleState;

const DEVAUTH: &str = "/api/management/v2/devauth/devices";
const INVENTORY: &str = "/api/management/v1/inventory";
const HISTORY: &str = "/api/management/v1/deployments/deployments/devices";

pub async fn show(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Html<String>, ConsoleError> {
    let device_id = segment(&id);
    let caller = &session.caller;
    let (device, _): (Value, _) = state
        .api
        .read(caller, &format!("{DEVAUTH}/{device_id}"))
        .await?;
    // An accepted device has an inventory and may have a group; others have neither yet.
    let inventory = state
        .api
        .call(
            caller,
            Method::GET,
            &format!("{INVENTORY}/devices/{device_id}"),
            None,
        )
        .await?;
    let group = state
        .api
        .call(
            caller,
            Method::GET,
            &format!("{INVENTORY}/devices/{device_id}/group"),
            None,
        )
        .await?;
    let group = group.body["group"].as_str().unwrap_or("").to_owned();
    let (groups, _): (Vec<String>, _) = state
        .api
        .read(caller, &format!("{INVENTORY}/groups"))
        .await?;
    let (history, _): (Vec<Value>, _) = state
        .api
        .read(caller, &format!("{HISTORY}/{device_id}?per_page=20"))
        .await?;
    let attributes = inventory.body["attributes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let auth_sets = device["auth_sets"].as_array().cloned().unwrap_or_default();
    let status = text(&device, "status").to_owned();
    let here = format!("/ui/devices/{device_id}");
    let body = html! {
        (notice(params.get("notice").map(String::as_str)))
        @if let Some(error) = params.get("error") {
            p.error role="alert" { (error) }
        }
        p { a href=(format!("/ui/devices?status={status}")) { "← Devices" } }
        div #device-summary data-live {
            dl.facts {
                dt { "Status" } dd #device-status { (status) }
                dt { "Identity" } dd { code { (device["identity_data"].to_string()) } }
                dt { "Group" } dd #device-group { @if group.is_empty() { "none" } @else { (group) } }
                dt { "Last change" } dd { (short_time(text(&device, "updated_ts"))) }
            }
        }
        h2 { "Authentication sets" }
        table {
            thead { tr { th scope="col" { "Set" } th scope="col" { "Status" } th scope="col" { "Public key" } th scope="col" { "Actions" } } }
            tbody {
                @for set in &auth_sets {
                    @let set_id = text(set, "id");
                    tr {
                        td { (set_id) }
                        td { (text(set, "status")) }
                        td { details { summary { "key" } pre { (text(set, "pubkey")) } } }
                        td.actions {
                            @for (action, label) in set_actions(text(set, "status")) {
                                form.inline method="post" action=(format!("{here}/sets/{}/{action}", segment(set_id))) {
                                    input type="hidden" name="csrf" value=(session.csrf);
                                    button type="submit" data-action=(action) { (label) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if status == "accepted" {
            h2 { "Group" }
            form.inline method="post" action=(format!("{here}/group")) {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="group" { "Move to group" }
                input #group name="group" list="groups" required value=(group);
                datalist #groups { @for name in &groups { option value=(name) {} } }
                button type="submit" { "Set group" }
            }
            @if !group.is_empty() {
                form.inline method="post" action=(format!("{here}/ungroup")) {
                    input type="hidden" name="csrf" value=(session.csrf);
                    input type="hidden" name="group" value=(group);
                    button type="submit" { "Remove from " (group) }
                }
            }
        }
        h2 { "Inventory" }
        @if attributes.is_empty() {
            p.muted { "The device has reported no inventory." }
        } @else {
            table #inventory {
                thead { tr { th scope="col" { "Attribute" } th scope="col" { "Value" } } }
                tbody {
                    @for attribute in &attributes {
                        tr { td { (text(attribute, "name")) } td { (shown(&attribute["value"])) } }
                    }
                }
            }
        }
        h2 { "Deployments" }
        div #device-deployments data-live {
            @if history.is_empty() {
                p.muted { "No deployment has reached this device." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Deployment" } th scope="col" { "Release" } th scope="col" { "Status" }
                        th scope="col" { "Started" } th scope="col" { "Finished" }
                    } }
                    tbody {
                        @for item in &history {
                            @let deployment = &item["deployment"];
                            tr {
                                td { a href=(format!("/ui/deployments/{}/devices/{device_id}", text(deployment, "id"))) { (text(deployment, "name")) } }
                                td { (text(deployment, "artifact_name")) }
                                td { (text(&item["device"], "status")) }
                                td { (short_time(text(&item["device"], "created"))) }
                                td { (short_time(text(&item["device"], "finished"))) }
                            }
                        }
                    }
                }
            }
        }
        @if status != "preauthorized" {
            h2 { "Decommission" }
            form.inline method="post" action=(format!("/ui/devices/{device_id}/decommission")) {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="status" value=(status);
                button type="submit" data-action="decommission" { "Decommission this device" }
            }
        }
    };
    Ok(layout::page(
        &format!("Device {id}"),
        Section::Devices,
        &session.csrf,
        body,
    ))
}

/// What the operator may do with an auth set in `status`.
fn set_actions(status: &str) -> &'static [(&'static str, &'static str)] {
    match status {
        "pending" => &[
            ("accept", "Accept"),
            ("reject", "Reject"),
            ("dismiss", "Dismiss"),
        ],
        "accepted" => &[("reject", "Reject"), ("dismiss", "Dismiss")],
        "rejected" => &[("accept", "Accept"), ("dismiss", "Dismiss")],
        _ => &[("dismiss", "Dismiss")],
    }
}

/// The API request of an operator's decision on the auth set at `set_path`.
pub fn set_decision(set_path: String, action: &str) -> Option<Action> {
    Some(match action {
        "accept" | "reject" => Action {
            method: Method::PUT,
            path: format!("{set_path}/status"),
            body: Some(json!({"status": if action == "accept" { "accepted" } else { "rejected" }})),
            done: if action == "accept" {
                "Accepted."
            } else {
                "Rejected."
            },
        },
        "dismiss" => Action {
            method: Method::DELETE,
            path: set_path,
            body: None,
            done: "Dismissed.",
        },
        _ => return None,
    })
}

/// `POST /ui/devices/{id}/sets/{set}/{action}`: a decision on one auth set.
pub async fn decide_set(
    State(state): State<ConsoleState>,
    Path((id, set, action)): Path<(String, String, String)>,
    Posted { session, .. }: Posted,
) -> Result<Response, ConsoleError> {
    let set_path = format!("{DEVAUTH}/{}/auth/{}", segment(&id), segment(&set));
    let action = set_decision(set_path, &action).ok_or_else(no_such_action)?;
    perform(
        &state,
        &session,
        action,
        &format!("/ui/devices/{}", segment(&id)),
        &[],
    )
    .await
}

/// `POST /ui/devices/{id}/group`: the device's static group.
pub async fn group(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    Posted { session, form }: Posted,
) -> Result<Response, ConsoleError> {
    change_group(&state, &session, &id, &form, true).await
}

/// `POST /ui/devices/{id}/ungroup`: out of its static group.
pub async fn ungroup(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    Posted { session, form }: Posted,
) -> Result<Response, ConsoleError> {
    change_group(&state, &session, &id, &form, false).await
}

async fn change_group(
    state: &ConsoleState,
    session: &Session,
    id: &str,
    form: &HashMap<String, String>,
    join: bool,
) -> Result<Response, ConsoleError> {
    let device_path = format!("{INVENTORY}/devices/{}/group", segment(id));
    let group = field(form, "group").unwrap_or("");
    let action = match join {
        true => Action {
            method: Method::PUT,
            path: device_path,
            body: Some(json!({"group": group})),
            done: "Group set.",
        },
        false => Action {
            method: Method::DELETE,
            path: format!("{device_path}/{}", segment(group)),
            body: None,
            done: "Removed from the group.",
        },
    };
    perform(
        state,
        session,
        action,
        &format!("/ui/devices/{}", segment(id)),
        &[],
    )
    .await
}

//! Devices by admission status, and the operator's decisions on them.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{Html, Response};
use maud::html;
use serde_json::Value;

use super::dashboard::{device_counts, DEVICE_STATES};
use super::device::set_decision;
use super::{no_such_action, one_of, page_number, perform, query, segment, text, Action};
use crate::error::ConsoleError;
use crate::layout::{self, notice, pager, short_time, Section};
use crate::session::{Posted, Session};
use crate::ConsoleState;

const DEVAUTH: &str = "/api/management/v2/devauth/devices";
const PER_PAGE: u64 = 20;

/// A device's identity, as `key=value` pairs.
fn identity(device: &Value) -> String {
    device["identity_data"]
        .as_object()
        .map(|identity| {
            identity
                .iter()
                .map(|(key, value)| {
                    format!("{key}={}", value.as_str().unwrap_or(&value.to_string()))
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

pub async fn list(
    State(state): State<ConsoleState>,
    session: Session,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Html<String>, ConsoleError> {
    let status = one_of(&params, "status", &DEVICE_STATES);
    let page = page_number(&params);
    let path = format!(
        "{DEVAUTH}?{}",
        query(&[
            ("status", status),
            ("page", &page.to_string()),
            ("per_page", &PER_PAGE.to_string()),
        ])
    );
    let (counts, listed, groups) = futures::join!(
        device_counts(&state, &session),
        state.api.read::<Vec<Value>>(&session.caller, &path),
        state
            .api
            .read::<Vec<String>>(&session.caller, "/api/management/v1/inventory/groups"),
    );
    let (counts, (devices, answer), (groups, _)) = (counts?, listed?, groups?);
    let total = counts
        .iter()
        .find(|(each, _)| *each == status)
        .map_or(answer.total(), |(_, count)| *count);
    let body = html! {
        (notice(params.get("notice").map(String::as_str)))
        @if let Some(error) = params.get("error") {
            p.error role="alert" { (error) }
        }
        p { a.button href="/ui/devices/find" { "Find devices by attribute or group" } }
        @if !groups.is_empty() {
            nav #groups aria-label="Groups" {
                "Groups: "
                @for (index, group) in groups.iter().enumerate() {
                    @if index > 0 { ", " }
                    a href=(format!("/ui/devices/find?{}", query(&[("group", group)]))) { (group) }
                }
            }
        }
        nav.tabs aria-label="Devices by status" {
            @for (each, count) in &counts {
                @let label = format!("{each} ({count})");
                @if *each == status {
                    a aria-current="page" href=(format!("/ui/devices?status={each}")) { (label) }
                } @else {
                    a href=(format!("/ui/devices?status={each}")) { (label) }
                }
            }
        }
        div #device-list data-live {
            @if devices.is_empty() {
                p.muted { "No " (status) " devices." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Device" } th scope="col" { "Identity" }
                        th scope="col" { "Status" } th scope="col" { "Last change" }
                        th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for device in &devices {
                            @let id = text(device, "id");
                            tr data-device=(id) {
                                td { a href=(format!("/ui/devices/{}", segment(id))) { (id) } }
                                td { (identity(device)) }
                                td { (text(device, "status")) }
                                td { (short_time(text(device, "updated_ts"))) }
                                td.actions {
                                    @for (action, label) in actions(text(device, "status")) {
                                        form.inline method="post" action=(format!("/ui/devices/{}/{action}", segment(id))) {
                                            input type="hidden" name="csrf" value=(session.csrf);
                                            input type="hidden" name="status" value=(status);
                                            button type="submit" data-action=(action) aria-label=(format!("{label} {}", identity(device))) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (pager(&format!("/ui/devices?status={status}"), page, PER_PAGE, total))
        }
        @if status == "preauthorized" {
            h2 { "Preauthorize a device" }
            form.stack method="post" action="/ui/devices/preauthorize" {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="identity" { "Identity (JSON, e.g. {\"mac\": \"52:54:00:12:34:56\"})" }
                input #identity name="identity_data" required;
                label for="pubkey" { "Public key (PEM)" }
                textarea #pubkey name="pubkey" rows="6" required {}
                button type="submit" { "Preauthorize" }
            }
        }
    };
    Ok(layout::page(
        "Devices",
        Section::Devices,
        &session.csrf,
        body,
    ))
}

/// What the operator may do with a device in `status`.
fn actions(status: &str) -> &'static [(&'static str, &'static str)] {
    match status {
        "pending" => &[
            ("accept", "Accept"),
            ("reject", "Reject"),
            ("dismiss", "Dismiss"),
        ],
        "accepted" => &[("reject", "Reject"), ("decommission", "Decommission")],
        "rejected" => &[("accept", "Accept"), ("dismiss", "Dismiss")],
        "preauthorized" => &[("dismiss", "Dismiss")],
        _ => &[],
    }
}

/// `POST /ui/devices/{id}/{action}`: a decision on the device's auth set that asks for it.
pub async fn act(
    State(state): State<ConsoleState>,
    Path((id, action)): Path<(String, String)>,
    Posted { session, form }: Posted,
) -> Result<Response, ConsoleError> {
    let back = one_of(&form, "status", &DEVICE_STATES);
    let device_path = format!("{DEVAUTH}/{}", segment(&id));
    let (device, _): (Value, _) = state.api.read(&session.caller, &device_path).await?;
    // The auth set the decision is about: the newest one still waiting, else the newest.
    let auth_sets = device["auth_sets"].as_array().cloned().unwrap_or_default();
    let auth_set = auth_sets
        .iter()
        .rev()
        .find(|set| text(set, "status") == "pending")
        .or_else(|| auth_sets.last())
        .map(|set| text(set, "id").to_owned())
        .unwrap_or_default();
    let action = match action.as_str() {
        "decommission" => Action {
            method: Method::DELETE,
            path: device_path.clone(),
            body: None,
            done: "Decommissioned.",
        },
        decision => {
            let set_path = format!("{device_path}/auth/{}", segment(&auth_set));
            set_decision(set_path, decision).ok_or_else(no_such_action)?
        }
    };
    perform(&state, &session, action, "/ui/devices", &[("status", back)]).await
}

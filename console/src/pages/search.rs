//! Finding devices by their attributes and groups, saving the filter for dynamic
//! deployments, and preauthorizing a device.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::Method;
use axum::response::{Html, Response};
use maud::html;
use serde_json::{json, Value};

use super::{attribute, field, one_of, page_number, perform, query, segment, text, Action};
use crate::api::refused_unless_ok;
use crate::error::ConsoleError;
use crate::layout::{self, notice, pager, Section};
use crate::session::{Posted, Session};
use crate::ConsoleState;

const SEARCH: &str = "/api/management/v2/inventory/filters/search";
const FILTERS: &str = "/api/management/v2/inventory/filters";
const PER_PAGE: u64 = 20;

/// The operators of inventory filters, as Mender's GUI offers them.
const OPERATORS: [(&str, &str); 7] = [
    ("$eq", "="),
    ("$ne", "≠"),
    ("$lt", "<"),
    ("$gt", ">"),
    ("$in", "in (comma-separated)"),
    ("$exists", "exists"),
    ("$regex", "matches (regular expression)"),
];

/// The filter terms a search form describes: an attribute predicate and a group, each
/// optional.
fn terms(params: &HashMap<String, String>) -> Vec<Value> {
    let mut terms = Vec::new();
    if let Some(attribute) = field(params, "attribute") {
        let (scope, name) = attribute
            .split_once('/')
            .unwrap_or(("inventory", attribute));
        let operators = OPERATORS.map(|(operator, _)| operator);
        let operator = one_of(params, "operator", &operators);
        let value = field(params, "value").unwrap_or("");
        let value = match operator {
            "$in" => json!(value.split(',').map(str::trim).collect::<Vec<_>>()),
            "$exists" => json!(value != "false"),
            _ => json!(value),
        };
        terms.push(json!({"scope": scope, "attribute": name, "type": operator, "value": value}));
    }
    if let Some(group) = field(params, "group") {
        terms.push(json!({"scope": "system", "attribute": "group", "type": "$eq", "value": group}));
    }
    terms
}

pub async fn find(
    State(state): State<ConsoleState>,
    session: Session,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Html<String>, ConsoleError> {
    let caller = &session.caller;
    let page = page_number(&params);
    let terms = terms(&params);
    let (groups, _): (Vec<String>, _) = state
        .api
        .read(caller, "/api/management/v1/inventory/groups")
        .await?;
    let (attributes, _): (Vec<Value>, _) = state
        .api
        .read(caller, &format!("{FILTERS}/attributes"))
        .await?;
    let (filters, _): (Vec<Value>, _) = state.api.read(caller, FILTERS).await?;
    let search = json!({"page": page, "per_page": PER_PAGE, "filters": terms});
    let answer = state
        .api
        .call(caller, Method::POST, SEARCH, Some(&search))
        .await?;
    let (devices, total, refusal) =
        match answer.status.is_client_error() && answer.status.as_u16() != 401 {
            true => (Vec::new(), 0, Some(answer.error())),
            false => {
                let answer = refused_unless_ok(answer)?;
                let total = answer.total();
                (
                    answer.body.as_array().cloned().unwrap_or_default(),
                    total,
                    None,
                )
            }
        };
    let value = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
    let base = format!(
        "/ui/devices/find?{}",
        query(&[
            ("attribute", value("attribute")),
            ("operator", value("operator")),
            ("value", value("value")),
            ("group", value("group")),
        ])
    );
    let body = html! {
        (notice(params.get("notice").map(String::as_str)))
        @if let Some(error) = params.get("error").map(String::as_str).or(refusal.as_deref()) {
            p.error role="alert" { (error) }
        }
        p { a href="/ui/devices" { "← Devices" } }
        form.stack role="search" method="get" action="/ui/devices/find" {
            label for="attribute" { "Attribute (scope/name; inventory when no scope)" }
            input #attribute name="attribute" list="attribute-names" value=(value("attribute"));
            datalist #attribute-names {
                @for attribute in &attributes {
                    option value=(format!("{}/{}", text(attribute, "scope"), text(attribute, "name"))) {}
                }
            }
            label for="operator" { "Operator" }
            select #operator name="operator" {
                @for (operator, label) in OPERATORS {
                    option value=(operator) selected[operator == value("operator")] { (label) }
                }
            }
            label for="value" { "Value" }
            input #value name="value" value=(value("value"));
            label for="group" { "In group" }
            select #group name="group" {
                option value="" { "any" }
                @for group in &groups {
                    option value=(group) selected[group == value("group")] { (group) }
                }
            }
            button type="submit" { "Find" }
        }
        h2 { "Matching devices" }
        div #matches {
            @if devices.is_empty() {
                p.muted { "No device matches." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Device" } th scope="col" { "Device type" } th scope="col" { "Software" } th scope="col" { "Group" } } }
                    tbody {
                        @for device in &devices {
                            tr {
                                td { a href=(format!("/ui/devices/{}", segment(text(device, "id")))) { (text(device, "id")) } }
                                td { (attribute(device, "device_type")) }
                                td { (attribute(device, "artifact_name")) }
                                td { (attribute(device, "group")) }
                            }
                        }
                    }
                }
            }
            (pager(&base, page, PER_PAGE, total))
        }
        @if !terms.is_empty() {
            h2 { "Save this filter" }
            form.inline method="post" action="/ui/devices/filters" {
                input type="hidden" name="csrf" value=(session.csrf);
                @for name in ["attribute", "operator", "value", "group"] {
                    input type="hidden" name=(name) value=(value(name));
                }
                label for="filter-name" { "Name" }
                input #filter-name name="name" required;
                button type="submit" { "Save" }
            }
        }
        h2 { "Saved filters" }
        @if filters.is_empty() {
            p.muted { "None yet: a saved filter is the target of a dynamic deployment." }
        } @else {
            ul {
                @for filter in &filters {
                    li { strong { (text(filter, "name")) } " " code { (filter["terms"].to_string()) } }
                }
            }
        }
    };
    Ok(layout::page(
        "Find devices",
        Section::Devices,
        &session.csrf,
        body,
    ))
}

/// `POST /ui/devices/filters`: saves the search as a named filter.
pub async fn save_filter(
    State(state): State<ConsoleState>,
    Posted { session, form }: Posted,
) -> Result<Response, ConsoleError> {
    let action = Action {
        method: Method::POST,
        path: FILTERS.to_owned(),
        body: Some(json!({"name": field(&form, "name").unwrap_or(""), "terms": terms(&form)})),
        done: "Filter saved.",
    };
    let keep: Vec<(&str, &str)> = ["attribute", "operator", "value", "group"]
        .into_iter()
        .map(|name| (name, form.get(name).map(String::as_str).unwrap_or("")))
        .collect();
    perform(&state, &session, action, "/ui/devices/find", &keep).await
}

/// `POST /ui/devices/preauthorize`: a device admitted before it first asks, by identity and
/// key.
pub async fn preauthorize(
    State(state): State<ConsoleState>,
    Posted { session, form }: Posted,
) -> Result<Response, ConsoleError> {
    let identity = field(&form, "identity_data").unwrap_or("");
    // Not JSON: sent as text, for the API to refuse with its own message.
    let identity: Value = serde_json::from_str(identity).unwrap_or_else(|_| json!(identity));
    let action = Action {
        method: Method::POST,
        path: "/api/management/v2/devauth/devices".to_owned(),
        body: Some(
            json!({"identity_data": identity, "pubkey": field(&form, "pubkey").unwrap_or("")}),
        ),
        done: "Preauthorized.",
    };
    perform(
        &state,
        &session,
        action,
        "/ui/devices",
        &[("status", "preauthorized")],
    )
    .await
}

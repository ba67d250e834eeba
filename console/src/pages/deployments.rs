//! Deployments: the lists by status, the create form, one deployment with its progress,
//! devices and actions, its past at any moment, and each device's history and log.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde_json::{json, Map, Value};

use super::{
    field, no_such_action, number, one_of, page_number, perform, query, segment, text, Action,
};
use crate::api::{refused_unless_ok, Answer};
use crate::error::ConsoleError;
use crate::layout::{self, notice, pager, progress_bar, short_time, Progress, Section};
use crate::session::{Posted, Session};
use crate::ConsoleState;

pub const DEPLOYMENTS: &str = "/api/management/v1/deployments/deployments";
const DEPLOYMENTS_V2: &str = "/api/management/v2/deployments/deployments";
const PER_PAGE: u64 = 20;
const DEVICES_PER_PAGE: u64 = 50;

/// The tabs of the list: the API's status filter, and its label.
const TABS: [(&str, &str); 3] = [
    ("inprogress", "In progress"),
    ("pending", "Pending"),
    ("finished", "Finished"),
];

/// A number of devices, in words.
fn devices(count: u64) -> String {
    match count {
        1 => "1 device".to_owned(),
        count => format!("{count} devices"),
    }
}

/// What a deployment was made for, in words.
fn target(deployment: &Value) -> String {
    if let Some(groups) = deployment["groups"]
        .as_array()
        .filter(|groups| !groups.is_empty())
    {
        let names: Vec<&str> = groups.iter().filter_map(Value::as_str).collect();
        return format!("group {}", names.join(", "));
    }
    if deployment["dynamic"].as_bool() == Some(true) {
        return "saved filter".to_owned();
    }
    devices(number(deployment, "max_devices").max(number(deployment, "device_count")))
}

fn progress_of(deployment: &Value) -> Progress {
    Progress::of(
        &deployment["statistics"]["status"],
        number(deployment, "max_devices"),
        number(deployment, "device_count"),
    )
}

/// Deployments as cards: name, release, target and progress.
pub fn deployment_cards(deployments: &[Value], empty: &str) -> Markup {
    html! {
        @if deployments.is_empty() {
            p.muted { (empty) }
        } @else {
            ul.cards {
                @for deployment in deployments {
                    @let progress = progress_of(deployment);
                    li.card {
                        a href=(format!("/ui/deployments/{}", text(deployment, "id"))) {
                            strong { (text(deployment, "name")) }
                        }
                        span.muted { " " (text(deployment, "artifact_name")) " → " (target(deployment)) }
                        (progress_bar(&progress))
                        span.muted {
                            (text(deployment, "status"))
                            @if deployment["paused"].as_bool() == Some(true) { " (paused)" }
                            " · " (progress.successes) " succeeded · " (progress.failures) " failed"
                        }
                    }
                }
            }
        }
    }
}

pub async fn list(
    State(state): State<ConsoleState>,
    session: Session,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Html<String>, ConsoleError> {
    let tabs = TABS.map(|(tab, _)| tab);
    let status = one_of(&params, "status", &tabs);
    let search = params.get("search").map(String::as_str).unwrap_or("");
    let page = page_number(&params);
    let path = format!(
        "{DEPLOYMENTS}?{}",
        query(&[
            ("status", status),
            ("search", search),
            ("page", &page.to_string()),
            ("per_page", &PER_PAGE.to_string()),
        ])
    );
    let (deployments, answer): (Vec<Value>, _) = state.api.read(&session.caller, &path).await?;
    let base = format!(
        "/ui/deployments?{}",
        query(&[("status", status), ("search", search)])
    );
    let body = html! {
        p { a.button href="/ui/deployments/new" { "Create a deployment" } }
        nav.tabs aria-label="Deployments by status" {
            @for (tab, label) in TABS {
                @if tab == status {
                    a aria-current="page" href=(format!("/ui/deployments?status={tab}")) { (label) }
                } @else {
                    a href=(format!("/ui/deployments?status={tab}")) { (label) }
                }
            }
        }
        form.inline role="search" method="get" action="/ui/deployments" {
            input type="hidden" name="status" value=(status);
            label for="search" { "Name or release" }
            input #search type="search" name="search" value=(search);
            button type="submit" { "Search" }
        }
        div #deployment-list data-live {
            @if deployments.is_empty() {
                p.muted { "No deployments here." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Release" }
                        th scope="col" { "Target" } th scope="col" { "Created" }
                        th scope="col" { "Finished" } th scope="col" { "Progress" }
                        th scope="col" { "Status" }
                    } }
                    tbody {
                        @for deployment in &deployments {
                            @let progress = progress_of(deployment);
                            tr {
                                td { a href=(format!("/ui/deployments/{}", text(deployment, "id"))) { (text(deployment, "name")) } }
                                td { (text(deployment, "artifact_name")) }
                                td { (target(deployment)) }
                                td { (short_time(text(deployment, "created"))) }
                                td { (short_time(text(deployment, "finished"))) }
                                td { (progress_bar(&progress)) " " (progress.failures) " failed" }
                                td { (text(deployment, "status")) @if deployment["paused"].as_bool() == Some(true) { " (paused)" } }
                            }
                        }
                    }
                }
            }
            (pager(&base, page, PER_PAGE, answer.total()))
        }
    };
    Ok(layout::page(
        "Deployments",
        Section::Deployments,
        &session.csrf,
        body,
    ))
}

/// The values a create form was sent with, to show them again beside the API's refusal.
type Sent = HashMap<String, String>;

pub async fn new_form(
    State(state): State<ConsoleState>,
    session: Session,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    create_form(&state, &session, &params, None, StatusCode::OK).await
}

async fn create_form(
    state: &ConsoleState,
    session: &Session,
    sent: &Sent,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let (releases, _): (Vec<Value>, _) = state
        .api
        .read(&session.caller, &format!("{DEPLOYMENTS}/releases"))
        .await?;
    let (groups, _): (Vec<String>, _) = state
        .api
        .read(&session.caller, "/api/management/v1/inventory/groups")
        .await?;
    let (filters, _): (Vec<Value>, _) = state
        .api
        .read(&session.caller, "/api/management/v2/inventory/filters")
        .await?;
    let value = |name: &str| sent.get(name).map(String::as_str).unwrap_or("");
    let target = match value("target") {
        "" => "devices",
        target => target,
    };
    let body = html! {
        @if let Some(error) = error {
            p.error role="alert" { (error) }
        }
        form.stack method="post" action="/ui/deployments/review" {
            input type="hidden" name="csrf" value=(session.csrf);
            label for="name" { "Name" }
            input #name name="name" required value=(value("name"));
            label for="release" { "Release" }
            select #release name="release" required {
                @for release in &releases {
                    @let name = text(release, "name");
                    option value=(name) selected[name == value("release")] { (name) }
                }
            }
            fieldset {
                legend { "Target" }
                @for (choice, label) in [("devices", "These devices"), ("group", "A group"), ("all", "All devices"), ("filter", "Devices matching a saved filter, as they ask")] {
                    @let id = format!("target-{choice}");
                    span.choice {
                        input #(id) type="radio" name="target" value=(choice) checked[choice == target];
                        " " label for=(id) { (label) }
                    }
                }
                label for="devices" { "Device ids (one per line or separated by commas)" }
                textarea #devices name="devices" rows="3" { (value("devices")) }
                label for="group" { "Group" }
                select #group name="group" {
                    option value="" { "—" }
                    @for group in &groups {
                        option value=(group) selected[group == value("group")] { (group) }
                    }
                }
                label for="filter" { "Saved filter" }
                select #filter name="filter_id" {
                    option value="" { "—" }
                    @for filter in &filters {
                        option value=(text(filter, "id")) selected[text(filter, "id") == value("filter_id")] { (text(filter, "name")) }
                    }
                }
                label for="max-devices" { "At most this many devices (saved filter only; empty: until aborted)" }
                input #max-devices name="max_devices" inputmode="numeric" value=(value("max_devices"));
            }
            fieldset {
                legend { "Phases" }
                label for="phases" { "One line per phase: the percentage of devices, then when it starts (RFC 3339; the first starts now). Empty: all at once." }
                textarea #phases name="phases" rows="3" placeholder="10\n90 2027-01-01T08:00:00Z" { (value("phases")) }
            }
            fieldset {
                legend { "Safety" }
                label for="retries" { "Retries of a failed device (0–10)" }
                input #retries name="retries" inputmode="numeric" value=(value("retries"));
                label for="threshold" { "Stop at this failure percentage (1–100, empty: never)" }
                input #threshold name="failure_threshold_percent" inputmode="numeric" value=(value("failure_threshold_percent"));
                label for="min-finished" { "…after this many devices have finished (default 10)" }
                input #min-finished name="min_finished_devices" inputmode="numeric" value=(value("min_finished_devices"));
                label for="on-threshold" { "Then" }
                select #on-threshold name="on_threshold" {
                    option value="pause" selected[value("on_threshold") != "abort"] { "pause" }
                    option value="abort" selected[value("on_threshold") == "abort"] { "abort" }
                }
                label for="timeout" { "Fail a device silent for this many seconds (60 or more, empty: never)" }
                input #timeout name="device_timeout_seconds" inputmode="numeric" value=(value("device_timeout_seconds"));
            }
            button type="submit" { "Create deployment" }
        }
    };
    Ok((
        status,
        layout::page(
            "Create a deployment",
            Section::Deployments,
            &session.csrf,
            body,
        ),
    )
        .into_response())
}

/// A number where the operator typed one; otherwise the text, for the API to refuse by name.
fn number_or_text(text: &str) -> Value {
    text.parse::<u64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(text))
}

/// Phases from lines of `<percent> [<start time>]`.
fn phases_of(text: &str) -> Vec<Value> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut words = line.split_whitespace();
            let mut phase = Map::new();
            if let Some(size) = words.next() {
                phase.insert(
                    "batch_size".into(),
                    number_or_text(size.trim_end_matches('%')),
                );
            }
            if let Some(start) = words.next() {
                phase.insert("start_ts".into(), json!(start));
            }
            Value::Object(phase)
        })
        .collect()
}

/// The API request a create form asks for: its path and body.
fn create_request(form: &Sent) -> (String, Value) {
    let mut body = Map::new();
    body.insert("name".into(), json!(field(form, "name").unwrap_or("")));
    body.insert(
        "artifact_name".into(),
        json!(field(form, "release").unwrap_or("")),
    );
    if let Some(retries) = field(form, "retries") {
        body.insert("retries".into(), number_or_text(retries));
    }
    let mut policy = Map::new();
    for name in [
        "failure_threshold_percent",
        "min_finished_devices",
        "device_timeout_seconds",
    ] {
        if let Some(value) = field(form, name) {
            policy.insert(name.into(), number_or_text(value));
        }
    }
    if !policy.is_empty() {
        if let Some(on_threshold) = field(form, "on_threshold") {
            policy.insert("on_threshold".into(), json!(on_threshold));
        }
        body.insert("policy".into(), Value::Object(policy));
    }
    if let Some(phases) = field(form, "phases") {
        body.insert("phases".into(), Value::Array(phases_of(phases)));
    }
    let path = match field(form, "target") {
        Some("filter") => {
            body.insert(
                "filter_id".into(),
                json!(field(form, "filter_id").unwrap_or("")),
            );
            if let Some(max) = field(form, "max_devices") {
                body.insert("max_devices".into(), number_or_text(max));
            }
            DEPLOYMENTS_V2.to_owned()
        }
        Some("group") => format!(
            "{DEPLOYMENTS}/group/{}",
            segment(field(form, "group").unwrap_or(""))
        ),
        Some("all") => {
            body.insert("all_devices".into(), json!(true));
            DEPLOYMENTS.to_owned()
        }
        _ => {
            let devices: Vec<&str> = field(form, "devices")
                .unwrap_or("")
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|id| !id.is_empty())
                .collect();
            body.insert("devices".into(), json!(devices));
            DEPLOYMENTS.to_owned()
        }
    };
    (path, Value::Object(body))
}

/// What a form that names no group or filter for its target lacks.
fn unchosen(form: &Sent) -> Option<&'static str> {
    match form.get("target").map(String::as_str) {
        Some("group") if field(form, "group").is_none() => Some("Choose a group."),
        Some("filter") if field(form, "filter_id").is_none() => Some("Choose a saved filter."),
        _ => None,
    }
}

/// The fields a create form sends, carried from the review to the create or back to the form.
const CREATE_FIELDS: [&str; 14] = [
    "name",
    "release",
    "target",
    "devices",
    "group",
    "filter_id",
    "max_devices",
    "phases",
    "retries",
    "failure_threshold_percent",
    "min_finished_devices",
    "on_threshold",
    "device_timeout_seconds",
    "csrf",
];

/// The API request a submitted create form asks for, or the form again, saying what it
/// lacks.
async fn checked(
    state: &ConsoleState,
    session: &Session,
    form: &Sent,
) -> Result<Result<(String, Value), Response>, ConsoleError> {
    match unchosen(form) {
        Some(message) => {
            let page = create_form(state, session, form, Some(message), StatusCode::BAD_REQUEST);
            Ok(Err(page.await?))
        }
        None => Ok(Ok(create_request(form))),
    }
}

/// `POST /ui/deployments/review`: what the form asks for, how many devices it reaches now,
/// and the API request it makes, before anything is created.
pub async fn review(
    State(state): State<ConsoleState>,
    Posted { session, form }: Posted,
) -> Result<Response, ConsoleError> {
    let (path, body) = match checked(&state, &session, &form).await? {
        Ok(request) => request,
        Err(refused) => return Ok(refused),
    };
    let reach = match field(&form, "target") {
        Some("group") => {
            let group = segment(field(&form, "group").unwrap_or(""));
            let answer = state
                .api
                .call(
                    &session.caller,
                    Method::GET,
                    &format!("/api/management/v1/inventory/groups/{group}/devices?per_page=1"),
                    None,
                )
                .await?;
            format!("{} in the group now", devices(answer.total()))
        }
        Some("all") => {
            let (count, _): (Value, _) = state
                .api
                .read(
                    &session.caller,
                    "/api/management/v2/devauth/devices/count?status=accepted",
                )
                .await?;
            format!(
                "all accepted devices: {} now",
                devices(number(&count, "count"))
            )
        }
        Some("filter") => "each device that matches the filter when it asks".to_owned(),
        _ => devices(body["devices"].as_array().map_or(0, Vec::len) as u64),
    };
    // The token goes only in the post: never in a URL, where logs and history keep it.
    let hidden = |with_token: bool| {
        html! {
            @for name in CREATE_FIELDS {
                @if let Some(value) = form.get(name).filter(|_| with_token || name != "csrf") {
                    input type="hidden" name=(name) value=(value);
                }
            }
        }
    };
    let page = html! {
        dl.facts {
            dt { "Name" } dd { (field(&form, "name").unwrap_or("")) }
            dt { "Release" } dd { (field(&form, "release").unwrap_or("")) }
            dt { "Reaches" } dd #reach { (reach) }
            dt { "Phases" } dd { @if let Some(phases) = body.get("phases") { code { (phases.to_string()) } } @else { "all at once" } }
            dt { "Retries" } dd { (body.get("retries").map(Value::to_string).unwrap_or_else(|| "0".into())) }
            dt { "Failure policy" } dd { @if let Some(policy) = body.get("policy") { code { (policy.to_string()) } } @else { "none" } }
        }
        details {
            summary { "The API request" }
            pre { "POST " (path) "\n" (serde_json::to_string_pretty(&body).unwrap_or_default()) }
        }
        div.actions {
            form.inline method="post" action="/ui/deployments" {
                (hidden(true))
                button #create type="submit" { "Create deployment" }
            }
            form.inline method="get" action="/ui/deployments/new" {
                (hidden(false))
                button type="submit" data-action="edit" { "Change" }
            }
        }
    };
    Ok(layout::page(
        "Review the deployment",
        Section::Deployments,
        &session.csrf,
        page,
    )
    .into_response())
}

pub async fn create(
    State(state): State<ConsoleState>,
    Posted { session, form }: Posted,
) -> Result<Response, ConsoleError> {
    let (path, body) = match checked(&state, &session, &form).await? {
        Ok(request) => request,
        Err(refused) => return Ok(refused),
    };
    let answer = state
        .api
        .call(&session.caller, Method::POST, &path, Some(&body))
        .await?;
    if answer.status.is_client_error() && answer.status != StatusCode::UNAUTHORIZED {
        return create_form(
            &state,
            &session,
            &form,
            Some(&answer.error()),
            answer.status,
        )
        .await;
    }
    let answer = refused_unless_ok(answer)?;
    let id = answer
        .headers
        .get(header::LOCATION)
        .and_then(|location| location.to_str().ok())
        .and_then(|location| location.rsplit('/').next())
        .unwrap_or("")
        .to_owned();
    Ok(Redirect::to(&format!("/ui/deployments/{id}")).into_response())
}

/// One deployment, now or at `?as_of=`.
pub async fn show(
    State(state): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Html<String>, ConsoleError> {
    let id = segment(&id);
    let as_of = params
        .get("as_of")
        .map(String::as_str)
        .filter(|at| !at.is_empty());
    let caller = &session.caller;
    let past = as_of.map(|at| query(&[("as_of", at)]));
    let (deployment, _): (Value, _) = match &past {
        Some(past) => {
            state
                .api
                .read(caller, &format!("{DEPLOYMENTS}/{id}?{past}"))
                .await?
        }
        None => {
            state
                .api
                .read(caller, &format!("{DEPLOYMENTS}/{id}"))
                .await?
        }
    };
    let page = page_number(&params);
    let (devices, total) = match &past {
        Some(past) => {
            let (devices, _): (Vec<Value>, Answer) = state
                .api
                .read(caller, &format!("{DEPLOYMENTS}/{id}/devices?{past}"))
                .await?;
            let total = devices.len() as u64;
            (devices, total)
        }
        None => {
            let (devices, answer): (Vec<Value>, Answer) = state
                .api
                .read(
                    caller,
                    &format!(
                        "{DEPLOYMENTS}/{id}/devices/list?page={page}&per_page={DEVICES_PER_PAGE}"
                    ),
                )
                .await?;
            (devices, answer.total())
        }
    };
    // The slider spans the deployment's whole life, which only the present read knows (in
    // the past it may not have finished yet).
    let present = match &past {
        Some(_) => {
            state
                .api
                .read::<Value>(caller, &format!("{DEPLOYMENTS}/{id}"))
                .await?
                .0
        }
        None => deployment.clone(),
    };
    let life = Life::of(&present);
    let finished = text(&deployment, "status") == "finished";
    let paused = deployment["paused"].as_bool() == Some(true);
    let progress = progress_of(&deployment);
    let name = text(&deployment, "name").to_owned();
    let body = html! {
        (notice(params.get("notice").map(String::as_str)))
        @if let Some(error) = params.get("error") {
            p.error role="alert" { (error) }
        }
        @if let Some(at) = as_of {
            p.notice role="status" { "As it was at " (at) ". " a href=(format!("/ui/deployments/{id}")) { "Back to now" } }
        }
        div #deployment-summary data-live[as_of.is_none()] {
            dl.facts {
                dt { "Release" } dd { (text(&deployment, "artifact_name")) }
                dt { "Target" } dd { (target(&deployment)) }
                dt { "Status" } dd #status { (text(&deployment, "status")) @if paused { " (paused)" } }
                dt { "Created" } dd { (short_time(text(&deployment, "created"))) }
                @if finished { dt { "Finished" } dd { (short_time(text(&deployment, "finished"))) } }
                dt { "Retries" } dd { (number(&deployment, "retries")) }
                @if let Some(policy) = deployment.get("policy") {
                    dt { "Failure policy" } dd { code { (policy.to_string()) } }
                }
                @if let Some(cause) = deployment.get("pause_cause") {
                    dt { "Paused by" } dd { code { (cause.to_string()) } }
                }
            }
            (progress_bar(&progress))
            ul.counts #statistics {
                li { span.count #successes { (progress.successes) } " succeeded" }
                li { span.count #failures { (progress.failures) } " failed" }
                li { span.count #in-progress { (progress.in_progress) } " in progress" }
                li { span.count #pending { (progress.pending) } " pending" }
            }
            @if !finished && as_of.is_none() {
                div.actions {
                    @if paused {
                        (action_button(&id, "resume", "Resume", &session.csrf))
                    } @else {
                        (action_button(&id, "pause", "Pause", &session.csrf))
                    }
                    @if !deployment["phases"].as_array().is_none_or(Vec::is_empty) {
                        (action_button(&id, "next-phase", "Start the next phase", &session.csrf))
                    }
                    (action_button(&id, "abort", "Abort", &session.csrf))
                }
            }
        }
        @if let Some(phases) = deployment["phases"].as_array().filter(|phases| !phases.is_empty()) {
            h2 { "Phases" }
            table {
                thead { tr { th scope="col" { "Phase" } th scope="col" { "Starts" } th scope="col" { "Devices" } } }
                tbody {
                    @for (index, phase) in phases.iter().enumerate() {
                        tr { td { (index + 1) } td { (short_time(text(phase, "start_ts"))) } td { (number(phase, "device_count")) } }
                    }
                }
            }
        }
        h2 { "Back in time" }
        form.inline method="get" action=(format!("/ui/deployments/{id}")) {
            label for="as-of" { "Show it as it was at (RFC 3339 time or log position)" }
            input #as-of name="as_of" value=(as_of.unwrap_or("")) placeholder=(text(&deployment, "created"));
            input #as-of-slider type="range" min="0" max="100" value=(life.percent_at(as_of))
                aria-label="Moment between creation and the end"
                data-from=(text(&present, "created")) data-to=(text(&present, "finished"));
            button type="submit" { "Show" }
        }
        h2 { "Devices" }
        div #device-table data-live[as_of.is_none()] {
            (device_table(&id, &devices))
            @if as_of.is_none() {
                (pager(&format!("/ui/deployments/{id}"), page, DEVICES_PER_PAGE, total))
            }
        }
    };
    let title = format!("Deployment {name}");
    Ok(layout::page(
        &title,
        Section::Deployments,
        &session.csrf,
        body,
    ))
}

/// A deployment's life, from its creation to its end (or now), for the time slider.
struct Life {
    created: Option<chrono::DateTime<chrono::Utc>>,
    end: chrono::DateTime<chrono::Utc>,
}

impl Life {
    fn of(deployment: &Value) -> Self {
        let time = |name: &str| {
            chrono::DateTime::parse_from_rfc3339(text(deployment, name))
                .ok()
                .map(|time| time.to_utc())
        };
        Self {
            created: time("created"),
            end: time("finished").unwrap_or_else(chrono::Utc::now),
        }
    }

    /// Where the moment `as_of` falls in it, in whole percent: the present when there is
    /// none, and when it is a log position, which the slider cannot place in time.
    fn percent_at(&self, as_of: Option<&str>) -> u8 {
        let at = as_of.and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok());
        let (Some(at), Some(created)) = (at, self.created) else {
            return 100;
        };
        let span = (self.end - created).num_milliseconds();
        if span <= 0 {
            return 100;
        }
        let into = (at.to_utc() - created).num_milliseconds().clamp(0, span);
        ((into * 100 + span / 2) / span) as u8
    }
}

fn action_button(id: &str, action: &str, label: &str, csrf: &str) -> Markup {
    html! {
        form.inline method="post" action=(format!("/ui/deployments/{id}/{action}")) {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" data-action=(action) { (label) }
        }
    }
}

fn device_table(id: &str, devices: &[Value]) -> Markup {
    html! {
        @if devices.is_empty() {
            p.muted { "No device has joined yet." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Device" } th scope="col" { "Status" } th scope="col" { "Substate" }
                    th scope="col" { "Attempts" } th scope="col" { "Started" } th scope="col" { "Finished" }
                    th scope="col" { "Why and log" }
                } }
                tbody {
                    @for device in devices {
                        @let device_id = text(device, "id");
                        tr data-device=(device_id) {
                            td { (device_id) }
                            td.status { (text(device, "status")) }
                            td { (text(device, "substate")) }
                            td { (number(device, "attempts").max(1)) }
                            td { (short_time(text(device, "created"))) }
                            td { (short_time(text(device, "finished"))) }
                            td { a href=(format!("/ui/deployments/{id}/devices/{}", segment(device_id))) { "history" } }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /ui/deployments/{id}/{action}`: abort, pause, resume, or start the next phase.
pub async fn act(
    State(state): State<ConsoleState>,
    Path((id, action)): Path<(String, String)>,
    Posted { session, .. }: Posted,
) -> Result<Response, ConsoleError> {
    let id = segment(&id);
    let action = match action.as_str() {
        "abort" => Action {
            method: Method::PUT,
            path: format!("{DEPLOYMENTS}/{id}/status"),
            body: Some(json!({"status": "aborted"})),
            done: "Aborted.",
        },
        "pause" => Action {
            method: Method::POST,
            path: format!("{DEPLOYMENTS_V2}/{id}/pause"),
            body: None,
            done: "Paused.",
        },
        "resume" => Action {
            method: Method::POST,
            path: format!("{DEPLOYMENTS_V2}/{id}/resume"),
            body: None,
            done: "Resumed.",
        },
        "next-phase" => Action {
            method: Method::POST,
            path: format!("{DEPLOYMENTS_V2}/{id}/phases/next"),
            body: None,
            done: "The next phase has started.",
        },
        _ => return Err(no_such_action()),
    };
    perform(
        &state,
        &session,
        action,
        &format!("/ui/deployments/{id}"),
        &[],
    )
    .await
}

/// One device's part in a deployment: every change with its cause, and the device's log.
pub async fn device(
    State(state): State<ConsoleState>,
    session: Session,
    Path((id, device)): Path<(String, String)>,
) -> Result<Html<String>, ConsoleError> {
    let (id, device_segment) = (segment(&id), segment(&device));
    let (history, _): (Value, _) = state
        .api
        .read(
            &session.caller,
            &format!("{DEPLOYMENTS_V2}/{id}/devices/{device_segment}/history"),
        )
        .await?;
    let log = state
        .api
        .call(
            &session.caller,
            Method::GET,
            &format!("{DEPLOYMENTS}/{id}/devices/{device_segment}/log"),
            None,
        )
        .await?;
    let changes = history
        .get("changes")
        .and_then(Value::as_array)
        .or_else(|| history.as_array())
        .cloned()
        .unwrap_or_default();
    let body = html! {
        p { a href=(format!("/ui/deployments/{id}")) { "← The deployment" } }
        h2 { "What happened, and why" }
        div #history data-live {
            table {
                thead { tr {
                    th scope="col" { "Position" } th scope="col" { "At" } th scope="col" { "Status" }
                    th scope="col" { "Substate" } th scope="col" { "Attempt" } th scope="col" { "Cause" }
                    th scope="col" { "By" } th scope="col" { "Detail" }
                } }
                tbody {
                    @for change in &changes {
                        tr {
                            td { (change["position"].to_string().trim_matches('"')) }
                            td { (short_time(text(change, "at"))) }
                            td { (text(change, "status")) }
                            td { (text(change, "substate")) }
                            td { (number(change, "attempt")) }
                            td { (text(&change["cause"], "kind")) }
                            td { (text(&change["cause"], "subject")) }
                            td { @if let Some(detail) = change["cause"].get("detail") { code { (detail.to_string()) } } }
                        }
                    }
                }
            }
        }
        h2 { "Log" }
        @if log.status.is_success() {
            pre.log { (log.body.as_str().map(str::to_owned).unwrap_or_else(|| log.body.to_string())) }
        } @else {
            p.muted { "The device sent no log." }
        }
    };
    Ok(layout::page(
        &format!("Device {device}"),
        Section::Deployments,
        &session.csrf,
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Sent {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn the_slider_stands_where_the_moment_falls_in_the_life() {
        let life = Life::of(&json!({"created": "2026-01-01T00:00:00Z",
                                    "finished": "2026-01-01T00:01:40Z"}));
        assert_eq!(life.percent_at(Some("2026-01-01T00:00:25.4Z")), 25);
        assert_eq!(life.percent_at(Some("2026-01-01T00:00:25.6Z")), 26);
        assert_eq!(life.percent_at(Some("2025-12-31T00:00:00Z")), 0);
        assert_eq!(life.percent_at(Some("2027-01-01T00:00:00Z")), 100);
        assert_eq!(
            life.percent_at(Some("42")),
            100,
            "a position has no place in time"
        );
        assert_eq!(life.percent_at(None), 100, "the present");
    }

    #[test]
    fn a_group_form_posts_to_the_group_route_with_its_policy() {
        let (path, body) = create_request(&form(&[
            ("name", " rollout "),
            ("release", "r1"),
            ("target", "group"),
            ("group", "lab a"),
            ("retries", "2"),
            ("failure_threshold_percent", "20"),
            ("on_threshold", "abort"),
        ]));
        assert_eq!(path, format!("{DEPLOYMENTS}/group/lab%20a"));
        assert_eq!(
            body,
            json!({"name": "rollout", "artifact_name": "r1", "retries": 2,
                   "policy": {"failure_threshold_percent": 20, "on_threshold": "abort"}})
        );
    }

    #[test]
    fn phases_are_read_a_line_each_and_a_filter_goes_to_the_v2_route() {
        let (path, body) = create_request(&form(&[
            ("name", "n"),
            ("release", "r"),
            ("target", "filter"),
            ("filter_id", "f1"),
            ("max_devices", "5"),
            ("phases", "10%\n\n 90 2027-01-01T08:00:00Z "),
        ]));
        assert_eq!(path, DEPLOYMENTS_V2);
        assert_eq!(body["filter_id"], "f1");
        assert_eq!(body["max_devices"], 5);
        assert_eq!(
            body["phases"],
            json!([{"batch_size": 10}, {"batch_size": 90, "start_ts": "2027-01-01T08:00:00Z"}])
        );
    }

    #[test]
    fn device_ids_split_on_commas_and_lines_and_bad_numbers_reach_the_api_as_text() {
        let (path, body) = create_request(&form(&[
            ("name", "n"),
            ("release", "r"),
            ("target", "devices"),
            ("devices", "a, b\nc"),
            ("retries", "many"),
        ]));
        assert_eq!(path, DEPLOYMENTS);
        assert_eq!(body["devices"], json!(["a", "b", "c"]));
        assert_eq!(body["retries"], json!("many"));
        assert!(body.get("policy").is_none());
    }
}

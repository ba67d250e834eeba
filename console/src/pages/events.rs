//! The audit feed: the tenant's newest events, or a page from a cursor, filtered by the API
//! (a stream name or its start, an event type), and the live tail after the newest shown.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Html;
use maud::html;
use serde_json::Value;

use super::{query, text};
use crate::api::refused_unless_ok;
use crate::error::ConsoleError;
use crate::layout::{self, short_time, Section};
use crate::session::Session;
use crate::ConsoleState;

const EVENTS: &str = "/api/management/v1/deployments/events";
const PER_PAGE: usize = 50;

/// Which page of the feed: the newest events, those after a position, or those before one.
enum Window<'a> {
    Newest,
    After(&'a str),
    Before(&'a str),
}

/// A position parameter, when it is one.
fn position<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|value| !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()))
}

fn position_of(event: &Value) -> String {
    event["position"].to_string().trim_matches('"').to_owned()
}

pub async fn list(
    State(state): State<ConsoleState>,
    session: Session,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Html<String>, ConsoleError> {
    let stream = params.get("stream").map(String::as_str).unwrap_or("");
    let kind = params.get("type").map(String::as_str).unwrap_or("");
    let window = match (position(&params, "after"), position(&params, "before")) {
        (_, Some(before)) => Window::Before(before),
        (Some(after), None) => Window::After(after),
        (None, None) => Window::Newest,
    };
    let (cursor, at) = match window {
        Window::Newest => ("before", "end"),
        Window::After(after) => ("after", after),
        Window::Before(before) => ("before", before),
    };
    // One more than is shown, to know whether another page lies beyond.
    let limit = (PER_PAGE + 1).to_string();
    let path = format!(
        "{EVENTS}?{}",
        query(&[
            (cursor, at),
            ("stream", stream),
            ("type", kind),
            ("limit", &limit)
        ])
    );
    let answer = state
        .api
        .call(&session.caller, Method::GET, &path, None)
        .await?;
    // A filter the API refuses is shown beside the form, for the operator to correct.
    let refusal = (answer.status.is_client_error() && answer.status != StatusCode::UNAUTHORIZED)
        .then(|| answer.error());
    let mut events = match refusal {
        Some(_) => Vec::new(),
        None => refused_unless_ok(answer)?.body["events"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    };
    let more = events.len() > PER_PAGE;
    match window {
        Window::After(_) => events.truncate(PER_PAGE),
        Window::Newest | Window::Before(_) => {
            events.drain(..events.len().saturating_sub(PER_PAGE));
        }
    }
    let first = events.first().map(position_of);
    let last = events.last().map(position_of);
    // Earlier events lie before a full page of the newest; a later page after any page that
    // was not the newest, or that was cut short.
    let earlier = match window {
        Window::Newest | Window::Before(_) => more.then_some(first.clone()).flatten(),
        Window::After(after) => first.clone().filter(|_| after != "0"),
    };
    let later = match window {
        Window::Newest => None,
        Window::After(after) => more.then(|| last.clone().unwrap_or(after.to_owned())),
        Window::Before(before) => Some(last.clone().unwrap_or(before.to_owned())),
    };
    // The page that reaches the newest event follows the log after it.
    let follows_after = match window {
        Window::Newest => Some(last.clone().unwrap_or_default()),
        Window::After(after) if !more => Some(last.clone().unwrap_or(after.to_owned())),
        _ => None,
    };
    let link = |cursor: &[(&str, &str)]| {
        let filters = [("stream", stream), ("type", kind)];
        format!("/ui/events?{}", query(&[cursor, &filters].concat()))
    };
    let body = html! {
        form.inline role="search" method="get" action="/ui/events" {
            label for="stream" { "Stream (its name, or the start of it)" }
            input #stream name="stream" value=(stream) placeholder="deployment-";
            label for="type" { "Type" }
            input #type name="type" value=(kind) placeholder="DeploymentCreated";
            button type="submit" { "Filter" }
        }
        @if let Some(refusal) = &refusal {
            p.error role="alert" { (refusal) }
        }
        p.muted #window {
            @match window {
                Window::Newest => { "The newest events, oldest first. Events recorded while this page is open are added at the end." }
                Window::After(after) => { "Events after position " (after) "." @if follows_after.is_some() { " Events recorded while this page is open are added at the end." } }
                Window::Before(before) => { "Events before position " (before) "." }
            }
        }
        table #events data-follow[follows_after.is_some()] data-after=[follows_after.as_deref()]
            data-stream=(stream) data-type=(kind) {
            thead { tr {
                th scope="col" { "Position" } th scope="col" { "Recorded" }
                th scope="col" { "Stream" } th scope="col" { "Type" } th scope="col" { "Actor" }
            } }
            tbody {
                @for event in &events {
                    tr {
                        td { (position_of(event)) }
                        td { (short_time(text(event, "occurred_at"))) }
                        td { (text(event, "stream")) }
                        td { (text(event, "event_type")) }
                        td { (text(event, "actor")) }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if let Some(first) = &earlier {
                a rel="prev" href=(link(&[("before", first)])) { "← Earlier events" }
            }
            @if !matches!(window, Window::Newest) {
                a href=(link(&[])) { "The newest events" }
            }
            @if let Some(last) = &later {
                a rel="next" href=(link(&[("after", last)])) { "Next page (after position " (last) ") →" }
            }
        }
    };
    Ok(layout::page("Events", Section::Events, &session.csrf, body))
}

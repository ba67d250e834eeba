//! The audit feed: a page of the tenant's events from a cursor, and the live tail after it.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Html;
use maud::html;
use serde_json::Value;

use super::{query, text};
use crate::error::ConsoleError;
use crate::layout::{self, short_time, Section};
use crate::session::Session;
use crate::ConsoleState;

const EVENTS: &str = "/api/management/v1/deployments/events";
const PER_PAGE: &str = "50";

pub async fn list(
    State(state): State<ConsoleState>,
    session: Session,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Html<String>, ConsoleError> {
    let after = params.get("after").map(String::as_str).unwrap_or("");
    let stream = params.get("stream").map(String::as_str).unwrap_or("");
    let kind = params.get("type").map(String::as_str).unwrap_or("");
    let path = format!(
        "{EVENTS}?{}",
        query(&[("after", after), ("limit", PER_PAGE)])
    );
    let (page, _): (Value, _) = state.api.read(&session.caller, &path).await?;
    let events = page["events"].as_array().cloned().unwrap_or_default();
    let next = text(&page, "next");
    let shown = |event: &Value| {
        text(event, "stream").contains(stream) && text(event, "event_type").contains(kind)
    };
    let body = html! {
        form.inline role="search" method="get" action="/ui/events" {
            input type="hidden" name="after" value=(after);
            label for="stream" { "Stream contains" }
            input #stream name="stream" value=(stream);
            label for="type" { "Type contains" }
            input #type name="type" value=(kind);
            button type="submit" { "Filter" }
        }
        p.muted { "From after position " (if after.is_empty() { "0" } else { after }) ". Events recorded while this page is open are added at the end." }
        table #events data-follow data-stream=(stream) data-type=(kind) {
            thead { tr {
                th scope="col" { "Position" } th scope="col" { "Recorded" }
                th scope="col" { "Stream" } th scope="col" { "Type" } th scope="col" { "Actor" }
            } }
            tbody {
                @for event in events.iter().filter(|event| shown(event)) {
                    tr {
                        td { (event["position"].to_string().trim_matches('"')) }
                        td { (short_time(text(event, "occurred_at"))) }
                        td { (text(event, "stream")) }
                        td { (text(event, "event_type")) }
                        td { (text(event, "actor")) }
                    }
                }
            }
        }
        @if !events.is_empty() {
            p { a rel="next" href=(format!("/ui/events?{}", query(&[("after", next), ("stream", stream), ("type", kind)]))) { "Next page (after position " (next) ")" } }
        }
    };
    Ok(layout::page("Events", Section::Events, &session.csrf, body))
}

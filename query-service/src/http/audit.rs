//! The audit feed: a tenant's events as recorded, for consumers that replay them. A page at a
//! time from a cursor, or as a live Server-Sent Events tail that resumes from `Last-Event-ID`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use event_log::{AuditQuery, Subscription};
use events::{Position, RecordedEvent};
use futures::Stream;
use http_edge::auth::User;
use http_edge::serve::ShuttingDown;

use super::AppState;
use crate::error::ApiError;

const BASE: &str = "/api/management/v1/deployments/events";
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(BASE, get(page))
        .route(&format!("{BASE}/stream"), get(tail))
}

fn cursor(text: Option<&str>, name: &str) -> Result<Position, ApiError> {
    match text {
        None => Ok(Position::START),
        Some(text) => text.trim().parse::<u64>().map(Position).map_err(|_| {
            ApiError::BadRequest(format!("{name} must be a log position, not \"{text}\""))
        }),
    }
}

/// The longest stream prefix a filter takes: longer than any stream name the services make.
const MAX_STREAM_FILTER: usize = 200;

/// `GET /events?after=<position>&before=<position>|end&stream=<prefix>&type=<type>&limit=<n>`:
/// `{"events": [...], "next": "<position>"}`, in log order; the next page starts after
/// `next`. Without `before` the page is the oldest events after `after`; with it, the
/// newest before it (`end`: the newest of all).
async fn page(
    State(state): State<AppState>,
    User(user): User,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let audit = audit_query(&query)?;
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("limit must be between 1 and {MAX_LIMIT}"))
            })?,
    };
    let events = state
        .log
        .read_tenant_filtered(&user.tenant, &audit, limit)
        .await?;
    let next = events.last().map_or(audit.after, |event| event.position);
    Ok(Json(serde_json::json!({ "events": events, "next": next.to_string() })).into_response())
}

/// The cursors and filters of a page request, each refused by name when it is not one.
fn audit_query(query: &BTreeMap<String, String>) -> Result<AuditQuery, ApiError> {
    let before = match query.get("before").map(String::as_str) {
        None => None,
        // Past the newest event: the page is the newest of all.
        Some("end") => Some(Position(u64::MAX)),
        Some(text) => Some(cursor(Some(text), "before")?),
    };
    let stream_prefix = match query.get("stream") {
        None => String::new(),
        Some(prefix)
            if !prefix.is_empty()
                && prefix.chars().count() <= MAX_STREAM_FILTER
                && !prefix.chars().any(char::is_control) =>
        {
            prefix.clone()
        }
        Some(_) => {
            return Err(ApiError::BadRequest(format!(
                "stream must be a stream name or its start, 1 to {MAX_STREAM_FILTER} characters"
            )))
        }
    };
    let event_type = match query.get("type") {
        None => String::new(),
        Some(kind)
            if (1..=100).contains(&kind.len())
                && kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            kind.clone()
        }
        Some(kind) => {
            return Err(ApiError::BadRequest(format!(
                "type must be an event type such as DeploymentCreated, not \"{kind}\""
            )))
        }
    };
    Ok(AuditQuery {
        after: cursor(query.get("after").map(String::as_str), "after")?,
        before,
        stream_prefix,
        event_type,
    })
}

fn sse_event(event: &RecordedEvent) -> Event {
    let data = serde_json::to_string(event).unwrap_or_default();
    Event::default()
        .id(event.position.to_string())
        .event(event.event_type.clone())
        .data(data)
}

/// `GET /events/stream`: every event of the tenant after `Last-Event-ID` (or `after`, where
/// `head` is the log's end now), then each new one as it commits.
async fn tail(
    State(state): State<AppState>,
    User(user): User,
    shutting_down: Option<Extension<ShuttingDown>>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let resume = headers
        .get("last-event-id")
        .map(|value| value.to_str().unwrap_or("?"));
    let after = match resume {
        Some(id) => cursor(Some(id), "Last-Event-ID")?,
        // `after=head`: only what is appended from now on, for a view that has just read
        // the present.
        None if query.get("after").map(String::as_str) == Some("head") => {
            state.log.head().await.map_err(anyhow::Error::from)?
        }
        None => cursor(query.get("after").map(String::as_str), "after")?,
    };
    let tenant = user.tenant;
    let subscription = Subscription::new(state.log.clone(), after, 500);
    let events = futures::stream::unfold(subscription, move |mut subscription| {
        let tenant = tenant.clone();
        async move {
            loop {
                match subscription.next_batch().await {
                    Ok(batch) => {
                        let mine: Vec<Result<Event, Infallible>> = batch
                            .iter()
                            .filter(|event| event.tenant == tenant)
                            .map(|event| Ok(sse_event(event)))
                            .collect();
                        if !mine.is_empty() {
                            return Some((futures::stream::iter(mine), subscription));
                        }
                    }
                    Err(error) => {
                        // The client reconnects with Last-Event-ID and loses nothing.
                        tracing::warn!(%error, "audit tail stopped");
                        return None;
                    }
                }
            }
        }
    });
    // The stream never ends by itself; a server shutting down ends it, and the client
    // resumes elsewhere with Last-Event-ID.
    let shutting_down = shutting_down.map_or_else(ShuttingDown::never, |Extension(s)| s);
    let events = futures::StreamExt::take_until(
        futures::StreamExt::flatten(events),
        Box::pin(shutting_down.wait()),
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

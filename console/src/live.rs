//! `GET /ui/live`: the operator's event feed for the browser's `EventSource`, which cannot
//! send a bearer token. It is the API's audit tail from now on, or after `?after=` (the
//! position a page has read up to) or `Last-Event-ID` (when the browser reconnects), with
//! every event unnamed so one listener hears them all.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;

use crate::session::Session;
use crate::ConsoleState;

const FEED: &str = "/api/management/v1/deployments/events/stream";

/// How long the browser waits before it reconnects after the API failed, in milliseconds.
const RETRY_AFTER_FAILURE_MS: u32 = 5000;

const EVENT_STREAM: [(header::HeaderName, &str); 2] = [
    (header::CONTENT_TYPE, "text/event-stream"),
    (header::CACHE_CONTROL, "no-store"),
];

pub(crate) async fn tail(
    State(state): State<ConsoleState>,
    session: Session,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let after = params
        .get("after")
        .map(String::as_str)
        .filter(|after| !after.is_empty() && after.bytes().all(|byte| byte.is_ascii_digit()))
        .unwrap_or("head");
    let mut request = Request::get(format!("{FEED}?after={after}"));
    if let Some(resume) = headers.get("last-event-id") {
        request = request.header("last-event-id", resume);
    }
    let Ok(request) = request.body(Body::empty()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let answer = state.api.send(&session.caller, request).await;
    match answer.status() {
        status if status.is_success() => {}
        // 204 tells EventSource to stop reconnecting: the session is over, and the page's
        // next read goes to the sign-in page.
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            return StatusCode::NO_CONTENT.into_response()
        }
        // Any other failure passes (a restart, the gateway or the log away for a moment), but
        // EventSource gives up for good on an error status: a stream that ends at once with a
        // retry delay has it reconnect instead, resuming with Last-Event-ID.
        status => {
            // The API (or the client reaching it) has logged the failure already.
            tracing::debug!(%status, "console: the live feed cannot follow the API; the browser retries");
            return (EVENT_STREAM, format!("retry: {RETRY_AFTER_FAILURE_MS}\n\n")).into_response();
        }
    }
    let mut line = Vec::new();
    let events = answer.into_body().into_data_stream().map(move |chunk| {
        chunk.map(|bytes| {
            line.extend_from_slice(&bytes);
            let mut out = Vec::with_capacity(line.len());
            while let Some(end) = line.iter().position(|byte| *byte == b'\n') {
                let whole: Vec<u8> = line.drain(..=end).collect();
                if !whole.starts_with(b"event:") {
                    out.extend_from_slice(&whole);
                }
            }
            Bytes::from(out)
        })
    });
    (EVENT_STREAM, Body::from_stream(events)).into_response()
}

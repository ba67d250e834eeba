//! `GET /ui/live`: the operator's event feed for the browser's `EventSource`, which cannot
//! send a bearer token. It is the API's audit tail, from now on (or from `Last-Event-ID`
//! when the browser reconnects), with every event unnamed so one listener hears them all.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;

use crate::session::Session;
use crate::ConsoleState;

const FEED: &str = "/api/management/v1/deployments/events/stream";

pub(crate) async fn tail(
    State(state): State<ConsoleState>,
    session: Session,
    headers: HeaderMap,
) -> Response {
    let mut request = Request::get(format!("{FEED}?after=head"));
    if let Some(resume) = headers.get("last-event-id") {
        request = request.header("last-event-id", resume);
    }
    let Ok(request) = request.body(Body::empty()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let answer = state.api.send(&session.caller, request).await;
    if !answer.status().is_success() {
        // 204 tells EventSource to stop reconnecting; the page's next load signs in again.
        return StatusCode::NO_CONTENT.into_response();
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
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(events),
    )
        .into_response()
}

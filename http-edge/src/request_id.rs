use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use uuid::Uuid;

/// Mender's request id header, echoed when the client sends one.
pub const REQUEST_ID_HEADER: &str = "x-men-requestid";

/// The id of the request being served, also in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

tokio::task_local! {
    // Error bodies are rendered far from the middleware; the task-local carries the id there.
    static CURRENT: RequestId;
}

/// The id of the request this task serves, or an empty string outside of one.
pub fn current_request_id() -> String {
    CURRENT.try_with(|id| id.0.clone()).unwrap_or_default()
}

fn acceptable(id: &str) -> bool {
    !id.is_empty() && id.len() <= 256 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Middleware: takes or makes the request id, serves the request inside a span that carries
/// it, logs the outcome once, and puts the id on the response.
pub async fn with_request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| acceptable(id))
        .map_or_else(|| Uuid::new_v4().to_string(), str::to_owned);
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        route = %route,
        // Filled in once a token is verified.
        tenant = tracing::field::Empty,
        subject = tracing::field::Empty,
    );
    request.extensions_mut().insert(RequestId(id.clone()));
    let started = Instant::now();
    let mut response = CURRENT
        .scope(RequestId(id.clone()), next.run(request))
        .instrument(span.clone())
        .await;
    if is_plain_error(&response) {
        response = as_json_error(response, &id).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    crate::metrics::record_request(&route, method.as_str(), response.status().as_u16(), seconds);
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = seconds * 1000.0,
            "request finished"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// An error answered in plain text: axum's own rejections (a body over its limit, a path that
/// does not parse) are, and clients expect Mender's JSON body on every error.
fn is_plain_error(response: &Response) -> bool {
    (response.status().is_client_error() || response.status().is_server_error())
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/plain"))
}

/// The same answer as `{"error", "request_id"}`; the text, when short, becomes the message.
async fn as_json_error(response: Response, id: &str) -> Response {
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .filter(|text| !text.trim().is_empty())
        .unwrap_or_else(|| {
            parts
                .status
                .canonical_reason()
                .unwrap_or("error")
                .to_owned()
        });
    let body = serde_json::json!({ "error": text.trim(), "request_id": id }).to_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

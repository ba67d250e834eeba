use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::request_id::current_request_id;

/// Mender's error body: `{"error": "<message>", "request_id": "<id>"}`.
pub fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({
        "error": message.into(),
        "request_id": current_request_id(),
    });
    (status, Json(body)).into_response()
}

/// For paths no route serves.
pub async fn fallback_not_found(body: Body) -> Response {
    discard(body).await;
    error_response(StatusCode::NOT_FOUND, "Resource not found")
}

/// For known paths asked with a method they do not take.
pub async fn method_not_allowed(body: Body) -> Response {
    discard(body).await;
    error_response(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}

/// Reads a refused request's body to its end, as Go's server does, so the connection stays
/// usable: mender-client's proxy sends `POST .../v2/.../next` with a chunked body still on
/// its way, and on a 404 retries v1 on the same connection, which the server would otherwise
/// close under it. Only a small body within a short wait: a larger one closes the connection.
async fn discard(body: Body) {
    let read = axum::body::to_bytes(body, 64 * 1024);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), read).await;
}

/// The most of a refused body read before answering: enough for any client to see the
/// answer, never a reason to hold memory (it is read and dropped).
const OVERSIZED_DRAIN: u64 = 64 * 1024 * 1024;

/// Middleware for a route with a body limit: a request that declares a longer body is
/// answered 413 unparsed, after what it is still sending (up to 64 MiB) is read and dropped,
/// so the client sees the answer instead of a reset connection.
pub async fn refuse_oversized(
    limit: u64,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_none_or(|length| length <= limit) {
        return next.run(request).await;
    }
    let mut chunks = request.into_body().into_data_stream();
    let mut drained = 0u64;
    while drained < OVERSIZED_DRAIN {
        match futures::StreamExt::next(&mut chunks).await {
            Some(Ok(chunk)) => drained += chunk.len() as u64,
            _ => break,
        }
    }
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body larger than the {limit} bytes this route takes"),
    )
}

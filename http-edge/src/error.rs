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

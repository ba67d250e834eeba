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
pub async fn fallback_not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "Resource not found")
}

/// For known paths asked with a method they do not take.
pub async fn method_not_allowed() -> Response {
    error_response(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}

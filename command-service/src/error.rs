//! The one place this service's failures become HTTP answers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use http_edge::error_response;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Unavailable(message) => error_response(StatusCode::SERVICE_UNAVAILABLE, message),
            Self::Internal(error) => {
                // The detail stays in the log; the client learns only that it was our fault.
                tracing::error!(error = %format!("{error:#}"), "request failed");
                error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

//! The one place this service's failures become HTTP answers.

use std::str::FromStr;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use http_edge::error_response;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("Resource not found")]
    NotFound,
    /// 404 with the resource's own wording (deviceauth's `device not found`).
    #[error("{0}")]
    NotFoundBecause(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match event_log::storage_fault(&error) {
            // A database that is gone for a moment is not a bug: say so, and log it once.
            event_log::StorageFault::Unavailable | event_log::StorageFault::Full => {
                tracing::error!(%error, "the read models are unavailable");
                Self::Unavailable("the read models are unavailable; try again".into())
            }
            event_log::StorageFault::Other => Self::Internal(error.into()),
        }
    }
}

impl From<event_log::LogError> for ApiError {
    fn from(error: event_log::LogError) -> Self {
        match error {
            event_log::LogError::Full(_)
            | event_log::LogError::Unavailable(_)
            | event_log::LogError::Backend(_) => {
                tracing::error!(%error, "the event log is unavailable");
                Self::Unavailable("the event log is unavailable; try again".into())
            }
            other => Self::Internal(other.into()),
        }
    }
}

impl From<crate::read_models::past::ReplayError> for ApiError {
    fn from(error: crate::read_models::past::ReplayError) -> Self {
        use crate::read_models::past::ReplayError;
        match error {
            ReplayError::Log(error) => error.into(),
            ReplayError::ReadModels(error) => error.into(),
            ReplayError::Failed(error) => Self::Internal(error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::BadRequest(message) => error_response(StatusCode::BAD_REQUEST, message),
            Self::NotFound => error_response(StatusCode::NOT_FOUND, "Resource not found"),
            Self::NotFoundBecause(message) => error_response(StatusCode::NOT_FOUND, message),
            Self::Forbidden(message) => error_response(StatusCode::FORBIDDEN, message),
            Self::Unavailable(message) => error_response(StatusCode::SERVICE_UNAVAILABLE, message),
            Self::Internal(error) => {
                // The detail stays in the log; the client learns only that it was our fault.
                tracing::error!(error = %format!("{error:#}"), "request failed");
                error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

/// A path id as the id type it names; Mender's answer for one that is not a UUID.
pub fn parse_id<Id: FromStr>(id: &str) -> Result<Id, ApiError> {
    id.parse()
        .map_err(|_| ApiError::BadRequest("ID is not a valid UUID".into()))
}

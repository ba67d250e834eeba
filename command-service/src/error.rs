//! The one place this service's failures become HTTP answers.

use std::str::FromStr;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_edge::{current_request_id, error_response};

use crate::domain::artifacts::ArtifactError;
use crate::upload::UploadError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("Resource not found")]
    NotFound,
    /// 404 with the resource's own wording (deviceauth's `device not found`).
    #[error("{0}")]
    NotFoundBecause(String),
    /// 401: a device whose token no longer stands (its auth set was rejected or reset), or an
    /// auth request refused.
    #[error("{0}")]
    Unauthorized(String),
    /// A conflict, with the resource it conflicts with when there is one.
    #[error("{message}")]
    Conflict {
        message: String,
        with: Option<serde_json::Value>,
    },
    /// A conflict answered, as deviceauth does, with the resource it conflicts with as the
    /// body (beside `error` and `request_id`).
    #[error("{message}")]
    ConflictWithResource {
        message: String,
        resource: serde_json::Value,
    },
    /// 412: the resource changed since the caller read it (an `If-Match` that no longer
    /// holds).
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many concurrent changes; try again")]
    Busy,
    #[error("{0}")]
    Unavailable(String),
    /// A server fault: storage (the log's or the artifacts') has no room. Nothing was kept.
    #[error("{0}")]
    InsufficientStorage(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<event_log::LogError> for ApiError {
    fn from(error: event_log::LogError) -> Self {
        use event_log::LogError;
        // Logged here, once, with the detail; the client gets a message that names the fault.
        match &error {
            LogError::Full(_) => {
                tracing::error!(%error, "the event log is full; refusing the change");
                Self::InsufficientStorage(
                    "the event log's storage is full: the change was not recorded".into(),
                )
            }
            LogError::Unavailable(_) | LogError::Backend(_) => {
                tracing::error!(%error, "the event log is unavailable; refusing the change");
                Self::Unavailable(
                    "the event log is unavailable: the change was not recorded; try again".into(),
                )
            }
            LogError::Storage(_) | LogError::Corrupt(_) => Self::Internal(error.into()),
        }
    }
}

impl From<event_log::AppendError> for ApiError {
    fn from(error: event_log::AppendError) -> Self {
        match error {
            event_log::AppendError::Log(error) => error.into(),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<blob_store::BlobError> for ApiError {
    fn from(error: blob_store::BlobError) -> Self {
        match error {
            blob_store::BlobError::Full(_) => {
                tracing::error!(%error, "artifact storage is full");
                Self::InsufficientStorage(format!("artifact storage is full: {error}"))
            }
            other => Self::Internal(other.into()),
        }
    }
}

impl From<ArtifactError> for ApiError {
    fn from(error: ArtifactError) -> Self {
        let message = error.to_string();
        match error {
            ArtifactError::Duplicate { existing } => Self::Conflict {
                message,
                with: Some(serde_json::json!({
                    "id": existing.id,
                    "name": existing.name,
                    "device_types_compatible": existing.device_types,
                })),
            },
            ArtifactError::IdTaken(id) => Self::Conflict {
                message,
                with: Some(serde_json::json!({ "id": id })),
            },
            ArtifactError::NotFound => Self::NotFound,
            ArtifactError::OverStorageLimit { .. } | ArtifactError::UsedInDeployment => {
                Self::Unprocessable(message)
            }
            ArtifactError::InActiveDeployment => Self::Conflict {
                message,
                with: None,
            },
        }
    }
}

impl From<crate::domain::deployments::DeploymentError> for ApiError {
    fn from(error: crate::domain::deployments::DeploymentError) -> Self {
        use crate::domain::deployments::DeploymentError;
        let message = error.to_string();
        match error {
            DeploymentError::Invalid(message) => Self::BadRequest(message),
            DeploymentError::NoArtifact | DeploymentError::Finished => Self::Unprocessable(message),
            DeploymentError::Identical { existing } => Self::Conflict {
                message,
                with: Some(serde_json::json!({ "id": existing })),
            },
            DeploymentError::NotFound => Self::NotFound,
            DeploymentError::AlreadyPaused
            | DeploymentError::NotPaused
            | DeploymentError::NoPhaseLeft => Self::Conflict {
                message,
                with: None,
            },
        }
    }
}

impl From<crate::domain::device::DeviceError> for ApiError {
    fn from(error: crate::domain::device::DeviceError) -> Self {
        use crate::domain::device::DeviceError;
        let message = error.to_string();
        match error {
            DeviceError::NotFound => Self::NotFound,
            DeviceError::Aborted | DeviceError::Decommissioned | DeviceError::Finished(_) => {
                Self::Conflict {
                    message,
                    with: None,
                }
            }
        }
    }
}

impl From<crate::domain::admission::AdmissionError> for ApiError {
    fn from(error: crate::domain::admission::AdmissionError) -> Self {
        use crate::domain::admission::AdmissionError;
        match error {
            AdmissionError::DeviceNotFound | AdmissionError::SetNotFound => {
                Self::NotFoundBecause(error.to_string())
            }
            AdmissionError::SetOfAnotherDevice | AdmissionError::Transition => {
                Self::BadRequest(error.to_string())
            }
            AdmissionError::LimitReached => Self::Unprocessable(error.to_string()),
            AdmissionError::Exists => Self::Conflict {
                message: error.to_string(),
                with: None,
            },
        }
    }
}

impl From<crate::domain::inventory::InventoryError> for ApiError {
    fn from(error: crate::domain::inventory::InventoryError) -> Self {
        use crate::domain::inventory::InventoryError;
        match error {
            InventoryError::Invalid(message) => Self::BadRequest(message),
            InventoryError::DeviceNotFound | InventoryError::NotInGroup => {
                Self::NotFoundBecause(error.to_string())
            }
            InventoryError::TagsChanged => Self::PreconditionFailed(error.to_string()),
        }
    }
}

impl From<crate::domain::filters::FilterError> for ApiError {
    fn from(error: crate::domain::filters::FilterError) -> Self {
        use crate::domain::filters::FilterError;
        match error {
            FilterError::Invalid(message) => Self::BadRequest(message),
            FilterError::NameTaken => Self::Conflict {
                message: error.to_string(),
                with: None,
            },
            FilterError::NotFound => Self::NotFoundBecause(error.to_string()),
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(error: UploadError) -> Self {
        let message = error.to_string();
        match error {
            UploadError::TooLarge { .. } => Self::TooLarge(message),
            UploadError::OverStorageLimit { .. } => Self::Unprocessable(message),
            UploadError::Invalid(_) => {
                Self::BadRequest(format!("reading artifact error: {message}"))
            }
            UploadError::Interrupted(_) | UploadError::SizeMismatch { .. } => {
                Self::BadRequest(message)
            }
            UploadError::Storage(error) => error.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::BadRequest(message) => error_response(StatusCode::BAD_REQUEST, message),
            Self::NotFound => error_response(StatusCode::NOT_FOUND, "Resource not found"),
            Self::NotFoundBecause(message) => error_response(StatusCode::NOT_FOUND, message),
            Self::Unauthorized(message) => error_response(StatusCode::UNAUTHORIZED, message),
            Self::Conflict {
                message,
                with: None,
            } => error_response(StatusCode::CONFLICT, message),
            Self::Conflict {
                message,
                with: Some(with),
            } => {
                // Mender's shape: the conflicting resource under metadata.conflict.
                let body = serde_json::json!({
                    "error": message,
                    "request_id": current_request_id(),
                    "metadata": { "conflict": with },
                });
                (StatusCode::CONFLICT, Json(body)).into_response()
            }
            Self::ConflictWithResource {
                message,
                mut resource,
            } => {
                if let Some(fields) = resource.as_object_mut() {
                    fields.insert("error".into(), message.into());
                    fields.insert("request_id".into(), current_request_id().into());
                }
                (StatusCode::CONFLICT, Json(resource)).into_response()
            }
            Self::PreconditionFailed(message) => {
                error_response(StatusCode::PRECONDITION_FAILED, message)
            }
            Self::Unprocessable(message) => {
                error_response(StatusCode::UNPROCESSABLE_ENTITY, message)
            }
            Self::TooLarge(message) => error_response(StatusCode::PAYLOAD_TOO_LARGE, message),
            Self::UnsupportedMediaType(message) => {
                error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
            }
            Self::Busy => error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many concurrent changes; try again",
            ),
            Self::Unavailable(message) => {
                let mut response = error_response(StatusCode::SERVICE_UNAVAILABLE, message);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            Self::InsufficientStorage(message) => {
                error_response(StatusCode::INSUFFICIENT_STORAGE, message)
            }
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

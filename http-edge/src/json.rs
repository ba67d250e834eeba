//! JSON request bodies whose rejections speak Mender's error format.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::Response;
use serde::de::DeserializeOwned;

use crate::error_response;

/// Like `axum::Json`, but a wrong Content-Type is 415, a body over the route's limit 413, and
/// a body that is not the expected JSON 400, all with `{"error", "request_id"}`.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            )),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(
                error_response(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
            ),
            Err(rejection) => Err(error_response(
                StatusCode::BAD_REQUEST,
                format!("failed to decode request body: {}", rejection.body_text()),
            )),
        }
    }
}

//! Artifact commands: upload, change description, delete.

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{post, put};
use axum::{Extension, Router};
use events::ArtifactId;
use http_edge::auth::User;
use http_edge::{JsonBody, RequestId};
use serde::Deserialize;

use super::AppState;
use crate::application::artifacts::{self, UploadForm};
use crate::application::Caller;
use crate::error::{parse_id, ApiError};

const BASE: &str = "/api/management/v1/deployments/artifacts";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            BASE,
            // Uploads are limited by the storage settings, checked while streaming.
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route(
            &format!("{BASE}/{{id}}"),
            put(change_description).delete(delete),
        )
}

pub(super) fn caller(user: &http_edge::auth::Identity, request_id: &RequestId) -> Caller {
    Caller {
        tenant: user.tenant.clone(),
        actor: format!("user:{}", user.subject),
        request_id: request_id.0.clone(),
        at: None,
    }
}

async fn upload(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let caller = caller(&user, &request_id);
    let settings = &state.artifacts.storage;
    let headers = request.headers();
    // Multipart framing adds a little; a body far beyond the limit is refused unread.
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let too_large =
        declared_length.is_some_and(|length| length > settings.max_upload_bytes + 1024 * 1024);
    // A client that asked to continue sends nothing more until told to.
    let waits_to_continue = headers
        .get(header::EXPECT)
        .is_some_and(|expect| expect.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    if too_large || !multipart {
        // One already sending gets a little of its body read, so that it can see the answer
        // before the connection closes.
        if !waits_to_continue {
            drain_body(request.into_body()).await;
        }
        return Err(if too_large {
            ApiError::TooLarge(format!(
                "artifact file larger than the maximum of {} bytes",
                settings.max_upload_bytes
            ))
        } else {
            ApiError::UnsupportedMediaType(
                "Bad Content-Type, expected 'multipart/form-data'".into(),
            )
        });
    }
    let mut multipart = Multipart::from_request(request, &state)
        .await
        .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let outcome = upload_parts(&state, &caller, &mut multipart).await;
    if outcome.is_err() {
        // Whatever the refusal, the rest of the body may still be arriving: an answer sent
        // over unread bytes reaches the client as a reset connection.
        drain_rest(&mut multipart).await;
    }
    outcome
}

/// Reads the parts up to the artifact, then has it stored, parsed and recorded.
async fn upload_parts(
    state: &AppState,
    caller: &Caller,
    multipart: &mut Multipart,
) -> Result<Response, ApiError> {
    let max_upload = state.artifacts.storage.max_upload_bytes;
    let mut form = UploadForm {
        artifact_id: ArtifactId::new(),
        description: String::new(),
        declared: None,
    };
    loop {
        let field = multipart.next_field().await.map_err(|error| {
            ApiError::BadRequest(format!("malformed multipart body: {}", error.body_text()))
        })?;
        let Some(mut field) = field else {
            return Err(ApiError::BadRequest(
                "request does not contain the artifact file".into(),
            ));
        };
        // Mender matches part names case-insensitively.
        let name = field.name().unwrap_or_default().to_ascii_lowercase();
        if name != "artifact" {
            let text = || async {
                field
                    .text()
                    .await
                    .map_err(|error| ApiError::BadRequest(error.body_text()))
            };
            match name.as_str() {
                "size" => {
                    let size: u64 = text().await?.trim().parse().map_err(|_| {
                        ApiError::BadRequest("size must be a number of bytes".into())
                    })?;
                    if size > max_upload {
                        return Err(ApiError::TooLarge(format!(
                            "artifact file larger than the maximum of {max_upload} bytes"
                        )));
                    }
                    form.declared = Some(size);
                }
                "description" => {
                    form.description = text().await?;
                    check_description(&form.description)?;
                }
                "artifact_id" => {
                    form.artifact_id = text().await?.trim().parse().map_err(|_| {
                        ApiError::BadRequest("artifact_id is not a valid UUID".into())
                    })?;
                }
                _ => {}
            }
            continue;
        }
        let stored =
            match artifacts::store(&state.pipeline, &state.artifacts, caller, &form, &mut field)
                .await
            {
                Ok(stored) => stored,
                Err(error) => {
                    // Whatever the refusal, the rest of the part may still be arriving.
                    drain(&mut field).await;
                    return Err(error);
                }
            };
        drop(field);
        // The artifact is the last part; a second one would be silently dropped.
        if let Err(refusal) = only_artifact(multipart).await {
            stored.discard().await;
            return Err(refusal);
        }
        let artifact_id = form.artifact_id;
        let outcome =
            artifacts::record(&state.pipeline, &state.artifacts, caller, form, stored).await?;
        let mut response = state
            .answered_if(outcome.position, StatusCode::CREATED)
            .await;
        if let Ok(value) = HeaderValue::from_str(&format!("{BASE}/{artifact_id}")) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        return Ok(response);
    }
}

/// Reads the parts after the artifact: a second `artifact` is refused, anything else is
/// read and dropped, as Mender ignores parts after the file.
async fn only_artifact(multipart: &mut Multipart) -> Result<(), ApiError> {
    loop {
        let field = multipart.next_field().await.map_err(|error| {
            ApiError::BadRequest(format!("malformed multipart body: {}", error.body_text()))
        })?;
        let Some(mut field) = field else {
            return Ok(());
        };
        if field
            .name()
            .is_some_and(|name| name.eq_ignore_ascii_case("artifact"))
        {
            drain(&mut field).await;
            drain_rest(multipart).await;
            return Err(ApiError::BadRequest(
                "the request contains more than one artifact file".into(),
            ));
        }
        drain(&mut field).await;
    }
}

/// Bytes read and dropped after refusing an upload, so that a client still sending can read
/// the refusal; a larger rest is cut off with the connection.
const DRAIN_LIMIT: usize = 8 * 1024 * 1024;

async fn drain(field: &mut axum::extract::multipart::Field<'_>) -> usize {
    let mut drained = 0;
    while drained < DRAIN_LIMIT {
        match field.chunk().await {
            Ok(Some(chunk)) => drained += chunk.len(),
            _ => break,
        }
    }
    drained
}

/// Reads and drops up to [`DRAIN_LIMIT`] of a body refused before it was read.
async fn drain_body(body: axum::body::Body) {
    use futures::StreamExt;
    let mut chunks = body.into_data_stream();
    let mut drained = 0;
    while drained < DRAIN_LIMIT {
        match chunks.next().await {
            Some(Ok(chunk)) => drained += chunk.len(),
            _ => break,
        }
    }
}

/// Drains the fields not yet read, up to [`DRAIN_LIMIT`] in all: a refusal decided from an
/// early field (the declared `size`) comes while the artifact itself is still arriving.
async fn drain_rest(multipart: &mut Multipart) {
    let mut drained = 0;
    while drained < DRAIN_LIMIT {
        let Ok(Some(mut field)) = multipart.next_field().await else {
            return;
        };
        drained += drain(&mut field).await;
    }
}

const MAX_DESCRIPTION: usize = 4096;

fn check_description(description: &str) -> Result<(), ApiError> {
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(ApiError::BadRequest(format!(
            "description: the length must be between 0 and {MAX_DESCRIPTION}"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
struct DescriptionChange {
    description: String,
}

async fn change_description(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    JsonBody(change): JsonBody<DescriptionChange>,
) -> Result<Response, ApiError> {
    let artifact_id: ArtifactId = parse_id(&id)?;
    check_description(&change.description)?;
    let caller = caller(&user, &request_id);
    let outcome =
        artifacts::change_description(&state.pipeline, &caller, artifact_id, change.description)
            .await?;
    Ok(state
        .answered_if(outcome.position, StatusCode::NO_CONTENT)
        .await)
}

async fn delete(
    State(state): State<AppState>,
    User(user): User,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let artifact_id: ArtifactId = parse_id(&id)?;
    let caller = caller(&user, &request_id);
    let outcome =
        artifacts::delete(&state.pipeline, &state.artifacts, &caller, artifact_id).await?;
    Ok(state
        .answered_if(outcome.position, StatusCode::NO_CONTENT)
        .await)
}

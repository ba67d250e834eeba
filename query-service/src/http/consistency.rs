//! Reads that wait for a write: a request carrying `X-Deployments-Log-Position` (the header a
//! command's answer carries) is served once every projection has applied that position, or
//! after a bounded wait.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::error::ApiError;

pub const LOG_POSITION_HEADER: &str = "x-deployments-log-position";

pub async fn wait_for_position(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(value) = request.headers().get(LOG_POSITION_HEADER) else {
        return next.run(request).await;
    };
    let Some(position) = value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
    else {
        return ApiError::BadRequest(format!("{LOG_POSITION_HEADER} must be a log position"))
            .into_response();
    };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(state.read_wait_ms);
    // Checkpoints, not this process's projectors: another instance may be the one projecting.
    loop {
        match state.read_models.slowest_checkpoint().await {
            Ok(Some(at)) if at.0 >= position => break,
            Err(error) => return ApiError::from(error).into_response(),
            _ if tokio::time::Instant::now() >= deadline => {
                tracing::warn!(
                    position,
                    "serving a read before the projections reached its position"
                );
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    next.run(request).await
}

//! Liveness and health for orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use super::AppState;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/internal/v1/deployments/alive",
            get(http_edge::service::alive),
        )
        .route("/api/internal/v1/deployments/health", get(health))
}

/// 204 when every dependency answers; 503 naming the first that does not.
async fn health(State(state): State<AppState>) -> Result<StatusCode, ApiError> {
    state
        .log
        .head()
        .await
        .map_err(|error| ApiError::Unavailable(format!("event log unavailable: {error}")))?;
    sqlx::query("SELECT 1")
        .execute(state.read_models.pool())
        .await
        .map_err(|error| ApiError::Unavailable(format!("read models unavailable: {error}")))?;
    Ok(StatusCode::NO_CONTENT)
}

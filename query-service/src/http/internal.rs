//! Liveness and health for orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use sqlx::Row;

use super::AppState;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/internal/v1/deployments/alive",
            get(http_edge::service::alive),
        )
        .route("/api/internal/v1/deployments/health", get(health))
        .route("/api/internal/v1/deployments/health/detail", get(detail))
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

/// How far behind the log each projection and the relay are, in events, from the checkpoints
/// every instance shares (so any instance answers for the one doing the work).
async fn detail(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let head = state
        .log
        .head()
        .await
        .map_err(|error| ApiError::Unavailable(format!("event log unavailable: {error}")))?;
    let lagging = |rows: Vec<sqlx::any::AnyRow>| -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
        let mut found = serde_json::Map::new();
        for row in rows {
            let name: String = row.try_get(0)?;
            let position: i64 = row.try_get(1)?;
            found.insert(
                name,
                serde_json::json!({
                    "position": position,
                    "lag": head.0.saturating_sub(position as u64),
                }),
            );
        }
        Ok(found)
    };
    let projections =
        sqlx::query("SELECT projection, position FROM projection_checkpoints ORDER BY projection")
            .fetch_all(state.read_models.pool())
            .await
            .map_err(|error| ApiError::Unavailable(format!("read models unavailable: {error}")))?;
    let relays = sqlx::query("SELECT relay, position FROM relay_checkpoints ORDER BY relay")
        .fetch_all(state.read_models.pool())
        .await?;
    Ok(Json(serde_json::json!({
        "head": head.0,
        "projections": lagging(projections)?,
        "relays": lagging(relays)?,
    })))
}

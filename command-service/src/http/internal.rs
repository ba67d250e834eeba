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
        .route("/metrics", get(metrics))
}

/// 204 when the event log answers; 503 naming it when it does not.
async fn health(State(state): State<AppState>) -> Result<StatusCode, ApiError> {
    state
        .log
        .head()
        .await
        .map_err(|error| ApiError::Unavailable(format!("event log unavailable: {error}")))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Prometheus text: this service's request metrics, whether the log answers, and its head.
/// Always 200, so a scrape sees the request metrics while the log is down.
async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    let mut scrape = http_edge::metrics::Scrape::default();
    scrape.event_log(state.log.head().await.ok().map(|head| head.0));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            http_edge::metrics::CONTENT_TYPE,
        )],
        scrape.render(),
    )
}

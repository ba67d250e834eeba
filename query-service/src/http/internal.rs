//! Liveness and health for orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use super::AppState;
use crate::error::ApiError;
use crate::read_models::checkpoints::{Checkpoint, Counted, Follower};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/internal/v1/deployments/alive",
            get(http_edge::service::alive),
        )
        .route("/api/internal/v1/deployments/health", get(health))
        .route("/api/internal/v1/deployments/health/detail", get(detail))
        .route("/metrics", get(metrics))
}

/// 204 when every dependency answers; 503 naming the first that does not.
async fn health(State(state): State<AppState>) -> Result<StatusCode, ApiError> {
    state
        .log
        .head()
        .await
        .map_err(|error| ApiError::Unavailable(format!("event log unavailable: {error}")))?;
    state
        .read_models
        .ping()
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
    let lagging = |checkpoints: Vec<Checkpoint>| -> serde_json::Map<String, serde_json::Value> {
        checkpoints
            .into_iter()
            .map(|Checkpoint { name, position }| {
                let lag = serde_json::json!({
                    "position": position,
                    "lag": head.0.saturating_sub(position as u64),
                });
                (name, lag)
            })
            .collect()
    };
    let projections = state
        .read_models
        .checkpoints(Follower::Projection)
        .await
        .map_err(|error| ApiError::Unavailable(format!("read models unavailable: {error}")))?;
    let relays = state.read_models.checkpoints(Follower::Relay).await?;
    Ok(Json(serde_json::json!({
        "head": head.0,
        "read_model_generation": state.read_models.serving().number,
        "projections": lagging(projections),
        "relays": lagging(relays),
    })))
}

/// Prometheus text: the request metrics, whether the log and the read models answer, the
/// log's head, how far each projection and relay trail it (in events and in seconds), and the
/// fleet (devices and deployments by status). Always 200: a dependency that does not answer
/// shows as `..._up 0` and its gauges keep their last values, so a scrape still sees the rest.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut scrape = http_edge::metrics::Scrape::default();
    let head = state.log.head().await.ok();
    scrape.event_log(head.map(|head| head.0));
    if let Some(head) = head {
        let followers = [
            ("projection", Follower::Projection),
            ("relay", Follower::Relay),
        ];
        for (kind, follower) in followers {
            let Ok(checkpoints) = state.read_models.checkpoints(follower).await else {
                continue;
            };
            let (events, seconds) = match follower {
                Follower::Projection => (
                    "deployments_projection_lag_events",
                    "deployments_projection_lag_seconds",
                ),
                Follower::Relay => (
                    "deployments_relay_lag_events",
                    "deployments_relay_lag_seconds",
                ),
            };
            for Checkpoint { name, position } in checkpoints {
                let lag = head.0.saturating_sub(position as u64);
                let waiting = match lag {
                    0 => Ok(0.0),
                    _ => oldest_waiting(&state, position).await,
                };
                let labels = [(kind, name.as_str())];
                scrape.gauge(events, "Events not applied yet.", &labels, lag as f64);
                if let Ok(waiting) = waiting {
                    scrape.gauge(
                        seconds,
                        "Age of the oldest event not applied yet.",
                        &labels,
                        waiting,
                    );
                }
            }
        }
    }
    let mut read_models_up = 1.0;
    for (counted, metric, help) in [
        (
            Counted::Devices,
            "deployments_devices",
            "Devices by admission status, every tenant.",
        ),
        (
            Counted::Deployments,
            "deployments_deployments",
            "Deployments by status, every tenant.",
        ),
    ] {
        match state.read_models.counts_by_status(counted).await {
            Ok(counts) => {
                for status in counted.statuses() {
                    let count = counts
                        .iter()
                        .find(|(counted, _)| counted == status)
                        .map_or(0, |(_, count)| *count);
                    scrape.gauge(metric, help, &[("status", status)], count as f64);
                }
            }
            Err(_) => read_models_up = 0.0,
        }
    }
    scrape.gauge(
        "deployments_read_models_up",
        "Whether the read models answer.",
        &[],
        read_models_up,
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            http_edge::metrics::CONTENT_TYPE,
        )],
        scrape.render(),
    )
}

/// Seconds since the oldest event after `position` was recorded.
async fn oldest_waiting(state: &AppState, position: i64) -> Result<f64, event_log::LogError> {
    let next = state
        .log
        .read_all(events::Position(position as u64), 1)
        .await?;
    Ok(next.first().map_or(0.0, |event| {
        (chrono::Utc::now() - event.metadata.occurred_at).num_milliseconds() as f64 / 1000.0
    }))
}

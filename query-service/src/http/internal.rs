//! Liveness and health for orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use super::AppState;
use crate::error::ApiError;
use crate::read_models::checkpoints::{Checkpoint, Follower};

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

/// Prometheus text: the request metrics, the log's head (events appended, gap-free), and how
/// far each projection and relay trail it, in events and in seconds.
async fn metrics(State(state): State<AppState>) -> Result<axum::response::Response, ApiError> {
    use std::fmt::Write;
    let head = state
        .log
        .head()
        .await
        .map_err(|error| ApiError::Unavailable(format!("event log unavailable: {error}")))?;
    let mut text = http_edge::metrics::render_requests();
    text.push_str(
        "# HELP deployments_events_appended_total Events in the log (positions are gap-free).\n",
    );
    text.push_str("# TYPE deployments_events_appended_total counter\n");
    let _ = writeln!(text, "deployments_events_appended_total {}", head.0);
    let followers = [
        ("projection", "deployments_projection", Follower::Projection),
        ("relay", "deployments_relay", Follower::Relay),
    ];
    for (kind, metric, follower) in followers {
        let _ = writeln!(
            text,
            "# HELP {metric}_lag_events Events the {kind} has not applied yet."
        );
        let _ = writeln!(text, "# TYPE {metric}_lag_events gauge");
        let _ = writeln!(
            text,
            "# HELP {metric}_lag_seconds Age of the oldest event the {kind} has not applied yet."
        );
        let _ = writeln!(text, "# TYPE {metric}_lag_seconds gauge");
        for Checkpoint { name, position } in state.read_models.checkpoints(follower).await? {
            let lag = head.0.saturating_sub(position as u64);
            let waiting = if lag == 0 {
                0.0
            } else {
                state
                    .log
                    .read_all(events::Position(position as u64), 1)
                    .await
                    .map_err(anyhow::Error::from)?
                    .first()
                    .map_or(0.0, |event| {
                        (chrono::Utc::now() - event.metadata.occurred_at).num_milliseconds() as f64
                            / 1000.0
                    })
            };
            let name = http_edge::metrics::label(&name);
            let _ = writeln!(text, "{metric}_lag_events{{{kind}=\"{name}\"}} {lag}");
            let _ = writeln!(text, "{metric}_lag_seconds{{{kind}=\"{name}\"}} {waiting}");
        }
    }
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response())
}

//! The write half of the API: one router per resource, merged here.

mod admission;
mod artifacts;
mod deployments;
mod devauth;
mod devices;
mod internal;
mod inventory;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use event_log::EventLog;
use events::Position;
use http_edge::auth::Verifier;

use crate::application::Pipeline;
use crate::catalog::Catalog;
use crate::read_side::{ReadSide, LOG_POSITION_HEADER};

pub use self::admission::DeviceDoor;
pub use crate::application::artifacts::ArtifactStorage;

#[derive(Clone)]
pub struct AppState {
    /// Every command goes through it.
    pub pipeline: Pipeline,
    pub log: Arc<dyn EventLog>,
    pub verifier: Arc<Verifier>,
    pub artifacts: Arc<ArtifactStorage>,
    /// The write side's own tables of deployments, targets and artifacts.
    pub catalog: Arc<Catalog>,
    pub read_side: Arc<dyn ReadSide>,
    /// How long a command waits for the read side before answering anyway.
    pub read_wait: Duration,
    /// The most devices one deployment may list.
    pub max_deployment_devices: usize,
    /// The most devices that may be accepted at once; `None`: no limit.
    pub max_devices: Option<u64>,
    /// Device admission and the device's inventory route for a fleet with no other Mender
    /// service; `None` behind Mender's own deviceauth and inventory.
    pub door: Option<Arc<DeviceDoor>>,
}

impl AppState {
    /// A command's answer, sent once the read side shows `position` (or the wait ran out),
    /// carrying the position so a later read can wait for it.
    pub async fn answered(&self, position: Position, status: StatusCode) -> Response {
        self.answered_with(position, status.into_response()).await
    }

    /// [`AppState::answered`] when something was appended, else the bare status.
    pub async fn answered_if(&self, position: Option<Position>, status: StatusCode) -> Response {
        self.answered_with_if(position, status.into_response())
            .await
    }

    /// [`AppState::answered_with`] when something was appended, else the answer as it is.
    pub async fn answered_with_if(
        &self,
        position: Option<Position>,
        response: Response,
    ) -> Response {
        match position {
            Some(position) => self.answered_with(position, response).await,
            None => response,
        }
    }

    /// Like [`AppState::answered`], for an answer with a body.
    pub async fn answered_with(&self, position: Position, mut response: Response) -> Response {
        // The catalog too: a device asking right after a deployment was created sees it.
        let catalog = self.catalog.reached(position).await.is_ok();
        let visible = self.read_side.wait_for(position, self.read_wait).await;
        if !(visible && catalog) {
            tracing::warn!(%position, "answering before the read side caught up");
        }
        if let Ok(value) = HeaderValue::from_str(&position.to_string()) {
            response.headers_mut().insert(LOG_POSITION_HEADER, value);
        }
        response
    }
}

impl FromRef<AppState> for Arc<Verifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The command routes alone, for a server that merges them with the query service's (which
/// then answers the internal health routes for both).
pub fn routes(state: AppState) -> Router {
    let mut routes = Router::new()
        .merge(artifacts::router())
        .merge(deployments::router(state.max_deployment_devices))
        .merge(devices::router())
        .merge(devauth::router())
        .merge(inventory::management_router());
    if state.door.is_some() {
        routes = routes
            .merge(admission::router())
            .merge(inventory::device_router());
    }
    routes
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            after_loading,
        ))
        .with_state(state)
}

/// Holds commands until the catalog has loaded the log (right after a start it may not
/// have): answered earlier, a device with work would be told there is none. Past
/// `read_wait`, the answer is 503 and the client tries again.
async fn after_loading(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if state.catalog.loaded(state.read_wait).await {
        next.run(request).await
    } else {
        crate::error::ApiError::Unavailable(
            "the server is starting: deployments are still being loaded; try again".into(),
        )
        .into_response()
    }
}

/// The whole service on its own: command routes, internal routes and the edge layers.
pub fn router(state: AppState) -> Router {
    http_edge::service::with_edge(routes(state.clone()).merge(internal::router().with_state(state)))
}

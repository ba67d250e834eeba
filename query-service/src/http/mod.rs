//! The read half of the API: one router per resource, merged here.

mod deployments;
mod internal;

use std::sync::Arc;

use axum::extract::FromRef;
use axum::{middleware, Router};
use events::EventLog;
use http_edge::auth::Verifier;

use crate::read_models::ReadModels;

#[derive(Clone)]
pub struct AppState {
    pub read_models: ReadModels,
    pub log: Arc<dyn EventLog>,
    pub verifier: Arc<Verifier>,
}

impl FromRef<AppState> for Arc<Verifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// Routes without the edge middleware, so an all-in-one server can merge several services
/// before adding it once.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .merge(deployments::router())
        .merge(internal::router())
        .with_state(state)
}

/// The whole service: routes plus request ids and Mender's 404/405 bodies.
pub fn router(state: AppState) -> Router {
    with_edge(routes(state))
}

pub fn with_edge(routes: Router) -> Router {
    routes
        .fallback(http_edge::fallback_not_found)
        .method_not_allowed_fallback(http_edge::method_not_allowed)
        .layer(middleware::from_fn(http_edge::with_request_id))
}

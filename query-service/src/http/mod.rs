//! The read half of the API: one router per resource, merged here.

mod deployments;
mod internal;

use std::sync::Arc;

use axum::extract::FromRef;
use axum::Router;
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

/// The whole service: routes plus the edge layers.
pub fn router(state: AppState) -> Router {
    http_edge::service::with_edge(routes(state))
}

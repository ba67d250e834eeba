//! The write half of the API: one router per resource, merged here.

mod internal;

use std::sync::Arc;

use axum::extract::FromRef;
use axum::Router;
use events::EventLog;
use http_edge::auth::Verifier;

#[derive(Clone)]
pub struct AppState {
    pub log: Arc<dyn EventLog>,
    pub verifier: Arc<Verifier>,
}

impl FromRef<AppState> for Arc<Verifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The command routes alone, for a server that merges them with the query service's (which
/// then answers the internal health routes for both).
pub fn routes(state: AppState) -> Router {
    Router::new().with_state(state)
}

/// The whole service on its own: command routes, internal routes and the edge layers.
pub fn router(state: AppState) -> Router {
    http_edge::service::with_edge(routes(state.clone()).merge(internal::router().with_state(state)))
}

//! The read half of the API: one router per resource, merged here.

mod artifacts;
mod audit;
mod consistency;
mod deployments;
mod devauth;
mod internal;
mod inventory;
mod paging;
mod streamed;
pub mod time_travel;

use std::sync::Arc;

use axum::extract::FromRef;
use axum::Router;
use blob_store::{BlobStore, LocalDirectory, StorageSettings};
use event_log::EventLog;
use http_edge::auth::Verifier;

use crate::read_models::ReadModels;

#[derive(Clone)]
pub struct AppState {
    pub read_models: ReadModels,
    pub log: Arc<dyn EventLog>,
    pub verifier: Arc<Verifier>,
    /// Makes download links.
    pub store: Arc<dyn BlobStore>,
    /// The local store, whose signed links this service serves; `None` with S3.
    pub local: Option<Arc<LocalDirectory>>,
    pub storage: Arc<StorageSettings>,
    /// Lifetime of management download links.
    pub download_link_seconds: u64,
    /// Longest wait of a read for the log position it names, in milliseconds.
    pub read_wait_ms: u64,
    /// How many reads of the past (`as_of`) replay at once.
    pub replays: Arc<time_travel::Replays>,
    /// The most devices that may be accepted at once; `None`: no limit.
    pub max_devices: Option<u64>,
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
        .merge(artifacts::router())
        .merge(deployments::router())
        .merge(devauth::router())
        .merge(inventory::router())
        .merge(audit::router())
        .merge(internal::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            consistency::wait_for_position,
        ))
        .with_state(state)
}

/// The whole service: routes plus the edge layers.
pub fn router(state: AppState) -> Router {
    http_edge::service::with_edge(routes(state))
}

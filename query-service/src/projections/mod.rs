//! The projections this service keeps, one file each; the deployments projection keeps its
//! device entries and its status derivation in files of their own beside it.

mod artifacts;
mod deployment_status;
mod deployments;
mod device_deployments;
mod statements;

pub use artifacts::ArtifactsProjection;
pub use deployments::DeploymentsProjection;

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::projector::Projection;

/// Every projection the read models are built from.
pub fn all() -> [Arc<dyn Projection>; 2] {
    [
        Arc::new(DeploymentsProjection),
        Arc::new(ArtifactsProjection),
    ]
}

/// Times in read models: RFC 3339 UTC with microseconds, so text order is time order.
pub fn stored_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

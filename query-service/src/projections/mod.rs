//! The projections this service keeps, one file each; the deployments projection keeps its
//! device entries and its status derivation in files of their own beside it.

mod artifacts;
mod attribute_index;
mod deployment_status;
mod deployments;
mod device_deployments;
mod devices;
mod inventory;
mod statements;

pub use artifacts::ArtifactsProjection;
pub use deployments::DeploymentsProjection;
pub use devices::DevicesProjection;

use std::sync::Arc;

use crate::projector::Projection;

/// Every projection the read models are built from.
pub fn all() -> [Arc<dyn Projection>; 3] {
    [
        Arc::new(DeploymentsProjection),
        Arc::new(ArtifactsProjection),
        Arc::new(DevicesProjection),
    ]
}

pub(crate) use crate::read_models::sql::stored_time;

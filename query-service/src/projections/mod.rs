//! The projections this service keeps, one file each.

mod artifacts;
mod deployments;

pub use artifacts::ArtifactsProjection;
pub use deployments::DeploymentsProjection;

use chrono::{DateTime, SecondsFormat, Utc};

/// Times in read models: RFC 3339 UTC with microseconds, so text order is time order.
pub fn stored_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

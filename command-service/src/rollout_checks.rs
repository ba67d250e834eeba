//! The rollout checks: what the rollouts' own clocks and counts decide, without any request.
//!
//! Device timeouts: a device entry left in a non-final status longer than its deployment's
//! `device_timeout_seconds` fails with substate `timeout`. Nothing but the log says when an
//! entry last changed: the tables hold it, folded from the events' recorded times, so after a
//! restart (or on another instance) the same entries are due at the same moments. Each timeout
//! is one command on the device's stream, so a report racing it, or another instance timing
//! out the same entry, leaves exactly one failure.
//!
//! Failure policies: a report trips its deployment's policy from the tables as it finds them,
//! so reports of many devices at once can each miss the others and none trip it; the checks
//! trip any policy the counts call for, once, on the deployment's stream.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use events::TenantId;
use uuid::Uuid;

use crate::application::{deployments, devices, Caller, Pipeline};
use crate::catalog::Catalog;

/// Checks every `every`, once the tables hold the log as it was at start.
pub async fn keep(pipeline: Pipeline, catalog: Arc<Catalog>, every: Duration) {
    while !catalog.loaded(Duration::from_secs(60)).await {}
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = Utc::now();
        for (tenant, deployment, device) in catalog.timed_out(now) {
            let caller = system(&tenant, "device-timeout");
            if let Err(error) =
                devices::time_out(&pipeline, &caller, &device, deployment, now).await
            {
                tracing::warn!(%error, %deployment, device, "cannot time out a device entry");
            }
        }
        for (tenant, deployment) in catalog.policies_due() {
            let caller = system(&tenant, "failure-policy");
            if let Err(error) = deployments::trip_if_due(&pipeline, &caller, deployment).await {
                tracing::warn!(%error, %deployment, "cannot trip a failure policy");
            }
        }
    }
}

/// The caller the events of a check name.
fn system(tenant: &TenantId, check: &str) -> Caller {
    Caller {
        tenant: tenant.clone(),
        actor: format!("system:{check}"),
        request_id: format!("{check}-{}", Uuid::new_v4()),
        at: None,
    }
}

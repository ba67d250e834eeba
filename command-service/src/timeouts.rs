//! Device timeouts: a device entry left in a non-final status longer than its deployment's
//! `device_timeout_seconds` fails with substate `timeout`.
//!
//! Nothing but the log says when an entry last changed: the tables hold it, folded from the
//! events' recorded times, so after a restart (or on another instance) the same entries are
//! due at the same moments. Each timeout is one command on the device's stream, so a report
//! racing it, or another instance timing out the same entry, leaves exactly one failure.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use events::TenantId;
use uuid::Uuid;

use crate::application::{devices, Caller, Pipeline};
use crate::catalog::Catalog;

/// Looks for due entries every `every`, once the tables hold the log as it was at start.
pub async fn keep(pipeline: Pipeline, catalog: Arc<Catalog>, every: Duration) {
    while !catalog.loaded(Duration::from_secs(60)).await {}
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = Utc::now();
        for (tenant, deployment, device) in catalog.timed_out(now) {
            let caller = system(&tenant);
            if let Err(error) =
                devices::time_out(&pipeline, &caller, &device, deployment, now).await
            {
                tracing::warn!(%error, %deployment, device, "cannot time out a device entry");
            }
        }
    }
}

/// The caller the events of a timeout name.
fn system(tenant: &TenantId) -> Caller {
    Caller {
        tenant: tenant.clone(),
        actor: "system:device-timeout".to_owned(),
        request_id: format!("device-timeout-{}", Uuid::new_v4()),
    }
}

//! The write side's own table of which artifact names deployments use, fed from the log.
//!
//! Artifact edits and deletions depend on deployments, another aggregate. Rather than read
//! the query service's tables, the command service folds the deployment events it needs into
//! this table and waits for it to reach the log's head before deciding. A deployment created
//! between that wait and the artifact's append is the one race left open: its devices then
//! find no artifact and are recorded as `noartifact`, the same outcome as deploying a name
//! that never existed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use events::{DomainEvent, EventLog, LogError, Position, RecordedEvent, Subscription, TenantId};
use tokio::sync::watch;
use uuid::Uuid;

use crate::domain::artifacts::DeploymentUse;

#[derive(Debug, Default)]
struct Progress {
    artifact_name: String,
    max_devices: usize,
    finished_devices: HashSet<String>,
    aborted: bool,
}

impl Progress {
    fn finished(&self) -> bool {
        self.aborted || self.finished_devices.len() >= self.max_devices
    }
}

#[derive(Debug, Default)]
struct TenantUse {
    deployments: HashMap<Uuid, Progress>,
}

/// One tenant's view, as decisions see it.
pub struct TenantDeployments<'a>(Option<&'a TenantUse>);

impl DeploymentUse for TenantDeployments<'_> {
    fn ever_deployed(&self, artifact_name: &str) -> bool {
        self.0.is_some_and(|tenant| {
            tenant
                .deployments
                .values()
                .any(|deployment| deployment.artifact_name == artifact_name)
        })
    }

    fn in_active_deployment(&self, artifact_name: &str) -> bool {
        self.0.is_some_and(|tenant| {
            tenant.deployments.values().any(|deployment| {
                deployment.artifact_name == artifact_name && !deployment.finished()
            })
        })
    }
}

#[derive(Default)]
pub struct DeploymentUseTable {
    tenants: RwLock<HashMap<TenantId, TenantUse>>,
    applied: watch::Sender<Position>,
}

impl DeploymentUseTable {
    fn apply(&self, event: &RecordedEvent) -> Result<(), events::SchemaError> {
        let decoded = event.decode()?;
        let mut tenants = self
            .tenants
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let tenant = tenants.entry(event.tenant.clone()).or_default();
        match decoded {
            DomainEvent::DeploymentCreated(created) => {
                tenant.deployments.insert(
                    created.deployment_id,
                    Progress {
                        artifact_name: created.artifact_name,
                        max_devices: created.devices.len(),
                        ..Progress::default()
                    },
                );
            }
            DomainEvent::DeploymentAborted(aborted) => {
                if let Some(progress) = tenant.deployments.get_mut(&aborted.deployment_id) {
                    progress.aborted = true;
                }
            }
            DomainEvent::DeviceJoinedDeployment(joined) if joined.status.is_final() => {
                if let Some(progress) = tenant.deployments.get_mut(&joined.deployment_id) {
                    progress.finished_devices.insert(joined.device_id);
                }
            }
            DomainEvent::DeviceDeploymentStatusChanged(changed) if changed.status.is_final() => {
                if let Some(progress) = tenant.deployments.get_mut(&changed.deployment_id) {
                    progress.finished_devices.insert(changed.device_id);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Folds the log into the table for as long as the task runs.
    pub async fn follow(self: Arc<Self>, log: Arc<dyn EventLog>) {
        let mut subscription = Subscription::new(log, Position::START, 1000);
        loop {
            match subscription.next_batch().await {
                Ok(batch) => {
                    for event in &batch {
                        if let Err(error) = self.apply(event) {
                            tracing::error!(%error, position = %event.position, "cannot read event");
                        }
                    }
                    self.applied.send_replace(subscription.position());
                }
                Err(error) => {
                    tracing::error!(%error, "deployment table cannot read the log; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Waits until the table reflects everything committed so far.
    pub async fn caught_up(&self, log: &dyn EventLog) -> Result<(), LogError> {
        let head = log.head().await?;
        let mut applied = self.applied.subscribe();
        // Bounded: a table that cannot keep up must fail the command, not hang it.
        let reached =
            tokio::time::timeout(Duration::from_secs(10), applied.wait_for(|at| *at >= head)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(LogError::Backend(
                "the deployment table is behind the event log".into(),
            )),
        }
    }

    /// Runs `decide` against one tenant's deployments.
    pub fn with_tenant<T>(
        &self,
        tenant: &TenantId,
        decide: impl FnOnce(&TenantDeployments<'_>) -> T,
    ) -> T {
        let tenants = self
            .tenants
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        decide(&TenantDeployments(tenants.get(tenant)))
    }
}

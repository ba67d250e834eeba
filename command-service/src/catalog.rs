//! The write side's own decision tables, fed from the log: which deployments exist and how far
//! they are, which deployments target each device, and which artifacts each tenant has.
//!
//! Rules that span aggregates read these tables rather than the query service's. The tables
//! may trail the log by a moment: a command that depends on them reads the versions of the
//! streams its facts come from, waits until the tables reach the log's head
//! ([`Catalog::caught_up`]), and appends its events together with assertions of those
//! versions ([`crate::application::execute_guarded`]). A stale table or a racing command costs
//! a retry, never a wrong event. The device API's `/next` reads the tables without waiting:
//! a device that asks a moment before a new deployment is visible simply asks again later.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use event_log::{EventLog, LogError, Subscription};
use events::deployment::Phase;
use events::{DomainEvent, Position, RecordedEvent, TenantId};
use tokio::sync::watch;
use uuid::Uuid;

use crate::domain::artifacts::DeploymentUse;

/// What decisions need to know about one deployment.
#[derive(Debug, Clone)]
pub struct DeploymentInfo {
    pub id: Uuid,
    pub name: String,
    pub artifact_name: String,
    pub created: DateTime<Utc>,
    pub force_installation: bool,
    pub phases: Vec<Phase>,
    /// The targeted devices, sorted, to recognise an identical deployment.
    pub devices: Vec<String>,
    pub aborted: bool,
    /// Devices whose entry reached a final state.
    pub finished_devices: HashSet<String>,
}

impl DeploymentInfo {
    /// Finished once aborted or once every targeted device is in a final state.
    pub fn finished(&self) -> bool {
        self.aborted || self.finished_devices.len() >= self.devices.len()
    }
}

/// An artifact as the device API chooses among them.
#[derive(Debug, Clone)]
pub struct ArtifactChoice {
    pub id: Uuid,
    pub name: String,
    pub device_types: Vec<String>,
    pub size: u64,
}

#[derive(Debug, Default)]
pub struct TenantCatalog {
    pub deployments: HashMap<Uuid, DeploymentInfo>,
    /// Per device, the deployments that target it, oldest first.
    targets: HashMap<String, BTreeSet<(DateTime<Utc>, Uuid)>>,
    /// Per device, the deployments it has an entry in that is not final yet.
    unfinished: HashMap<String, HashSet<Uuid>>,
    artifacts: HashMap<Uuid, ArtifactChoice>,
}

impl TenantCatalog {
    /// Deployments targeting `device`, oldest first.
    pub fn targeting<'a>(&'a self, device: &str) -> impl Iterator<Item = &'a DeploymentInfo> + 'a {
        self.targets
            .get(device)
            .into_iter()
            .flatten()
            .filter_map(|(_, id)| self.deployments.get(id))
    }

    /// Whether the device could be served anything: an unfinished entry, or an active
    /// deployment targeting it that it has not finished. False answers `/next` with no I/O.
    pub fn may_have_work(&self, device: &str) -> bool {
        // An abort writes nothing to its devices' streams: an entry of an aborted deployment
        // is finished although no event of the device says so.
        self.unfinished.get(device).is_some_and(|ids| {
            ids.iter().any(|id| {
                self.deployments
                    .get(id)
                    .is_some_and(|deployment| !deployment.aborted)
            })
        }) || self.targeting(device).any(|deployment| {
            !deployment.finished() && !deployment.finished_devices.contains(device)
        })
    }

    /// The smallest artifact of `name` that `device_type` can install.
    pub fn artifact_for(&self, name: &str, device_type: &str) -> Option<&ArtifactChoice> {
        self.artifacts
            .values()
            .filter(|artifact| {
                artifact.name == name && artifact.device_types.iter().any(|t| t == device_type)
            })
            .min_by_key(|artifact| (artifact.size, artifact.id))
    }

    pub fn artifact(&self, id: Uuid) -> Option<&ArtifactChoice> {
        self.artifacts.get(&id)
    }

    pub fn artifact_named(&self, name: &str) -> bool {
        self.artifacts
            .values()
            .any(|artifact| artifact.name == name)
    }

    fn entry_finished(&mut self, deployment: Uuid, device: &str) {
        if let Some(info) = self.deployments.get_mut(&deployment) {
            info.finished_devices.insert(device.to_owned());
        }
        if let Some(ids) = self.unfinished.get_mut(device) {
            ids.remove(&deployment);
        }
    }

    #[cfg(test)]
    pub fn apply_for_tests(&mut self, event: DomainEvent) {
        self.apply(event)
    }

    fn apply(&mut self, event: DomainEvent) {
        match event {
            DomainEvent::DeploymentCreated(created) => {
                let mut devices = created.devices;
                devices.sort();
                devices.dedup();
                for device in &devices {
                    self.targets
                        .entry(device.clone())
                        .or_default()
                        .insert((created.created, created.deployment_id));
                }
                self.deployments.insert(
                    created.deployment_id,
                    DeploymentInfo {
                        id: created.deployment_id,
                        name: created.name,
                        artifact_name: created.artifact_name,
                        created: created.created,
                        force_installation: created.force_installation,
                        phases: created.phases,
                        devices,
                        aborted: false,
                        finished_devices: HashSet::new(),
                    },
                );
            }
            DomainEvent::DeploymentAborted(aborted) => {
                if let Some(info) = self.deployments.get_mut(&aborted.deployment_id) {
                    info.aborted = true;
                }
            }
            DomainEvent::DeviceJoinedDeployment(joined) => {
                if joined.status.is_final() {
                    self.entry_finished(joined.deployment_id, &joined.device_id);
                } else {
                    self.unfinished
                        .entry(joined.device_id)
                        .or_default()
                        .insert(joined.deployment_id);
                }
            }
            DomainEvent::DeviceDeploymentStatusChanged(changed) if changed.status.is_final() => {
                self.entry_finished(changed.deployment_id, &changed.device_id);
            }
            DomainEvent::DeviceDecommissioned(decommissioned) => {
                let device = decommissioned.device_id;
                for deployment in self.unfinished.remove(&device).unwrap_or_default() {
                    self.entry_finished(deployment, &device);
                }
            }
            DomainEvent::ArtifactUploaded(uploaded) => {
                self.artifacts.insert(
                    uploaded.artifact_id,
                    ArtifactChoice {
                        id: uploaded.artifact_id,
                        name: uploaded.name,
                        device_types: uploaded.device_types_compatible,
                        size: uploaded.size,
                    },
                );
            }
            DomainEvent::ArtifactDeleted(deleted) => {
                self.artifacts.remove(&deleted.artifact_id);
            }
            _ => {}
        }
    }
}

impl DeploymentUse for TenantCatalog {
    fn ever_deployed(&self, artifact_name: &str) -> bool {
        self.deployments
            .values()
            .any(|deployment| deployment.artifact_name == artifact_name)
    }

    fn in_active_deployment(&self, artifact_name: &str) -> bool {
        self.deployments
            .values()
            .any(|deployment| deployment.artifact_name == artifact_name && !deployment.finished())
    }
}

/// All tenants' tables and how far into the log they reach.
#[derive(Default)]
pub struct Catalog {
    tenants: RwLock<HashMap<TenantId, TenantCatalog>>,
    applied: watch::Sender<Position>,
    /// Whether the tables hold at least the log as it was when this process started: before
    /// that, `/next` would answer 204 to a device that has work.
    loaded: watch::Sender<bool>,
}

impl Catalog {
    fn apply(&self, event: &RecordedEvent) -> Result<(), events::SchemaError> {
        let decoded = event.decode()?;
        let mut tenants = self
            .tenants
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tenants
            .entry(event.tenant.clone())
            .or_default()
            .apply(decoded);
        Ok(())
    }

    /// Folds the log into the tables for as long as the task runs.
    pub async fn follow(self: Arc<Self>, log: Arc<dyn EventLog>) {
        let started_at = loop {
            match log.head().await {
                Ok(head) => break head,
                Err(error) => {
                    tracing::error!(%error, "the catalog cannot read the log's head; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        if started_at == Position::START {
            self.loaded.send_replace(true);
        }
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
                    if subscription.position() >= started_at && !*self.loaded.borrow() {
                        tracing::info!(position = %subscription.position(), "catalog loaded");
                        self.loaded.send_replace(true);
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "the catalog cannot read the log; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Waits (at most `limit`) until the tables hold the log as it was at start; says
    /// whether they do.
    pub async fn loaded(&self, limit: Duration) -> bool {
        if *self.loaded.borrow() {
            return true;
        }
        let mut loaded = self.loaded.subscribe();
        tokio::time::timeout(limit, loaded.wait_for(|loaded| *loaded))
            .await
            .is_ok_and(|outcome| outcome.is_ok())
    }

    /// Waits until the tables reflect `position`.
    pub async fn reached(&self, position: Position) -> Result<(), LogError> {
        let mut applied = self.applied.subscribe();
        // Bounded: tables that cannot keep up must fail the command, not hang it.
        let reached = tokio::time::timeout(
            Duration::from_secs(10),
            applied.wait_for(|at| *at >= position),
        )
        .await
        .is_ok_and(|outcome| outcome.is_ok());
        if reached {
            Ok(())
        } else {
            Err(LogError::Backend(
                "the catalog is behind the event log".into(),
            ))
        }
    }

    /// Waits until the tables reflect everything committed so far.
    pub async fn caught_up(&self, log: &dyn EventLog) -> Result<(), LogError> {
        self.reached(log.head().await?).await
    }

    /// Runs `read` against one tenant's tables.
    pub fn with_tenant<T>(&self, tenant: &TenantId, read: impl FnOnce(&TenantCatalog) -> T) -> T {
        let tenants = self
            .tenants
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match tenants.get(tenant) {
            Some(catalog) => read(catalog),
            None => read(&TenantCatalog::default()),
        }
    }
}

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

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use event_log::{EventLog, LogError, Subscription};
use events::{DeploymentId, Position, RecordedEvent, TenantId};
use tokio::sync::watch;

use crate::domain::tables::TenantCatalog;

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
            .apply_at(decoded, Some(event.metadata.occurred_at));
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

    /// Every device entry, in every tenant, whose device timeout has elapsed at `now`.
    pub fn timed_out(&self, now: DateTime<Utc>) -> Vec<(TenantId, DeploymentId, String)> {
        let tenants = self
            .tenants
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut due = Vec::new();
        for (tenant, tables) in tenants.iter() {
            for deployment in tables.deployments.values() {
                due.extend(
                    deployment
                        .timed_out(now)
                        .map(|(device, _, _)| (tenant.clone(), deployment.id, device.to_owned())),
                );
            }
        }
        due
    }

    /// Every deployment, in every tenant, whose failure policy trips on the counts held now
    /// but has not tripped.
    pub fn policies_due(&self) -> Vec<(TenantId, DeploymentId)> {
        let tenants = self
            .tenants
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tenants
            .iter()
            .flat_map(|(tenant, tables)| {
                tables
                    .deployments
                    .values()
                    .filter(|deployment| deployment.policy_due())
                    .map(move |deployment| (tenant.clone(), deployment.id))
            })
            .collect()
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

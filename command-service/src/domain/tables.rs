//! The write side's decision tables for one tenant: which deployments exist and how far they
//! are, which deployments target each device, and which artifacts there are. A pure fold of
//! the log's events; [`crate::catalog::Catalog`] keeps one per tenant, fed from the log.
//!
//! Rules that span aggregates (the oldest deployment for a device, an artifact in use) are
//! decided from these tables, never from the query service's.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use events::admission::AuthSetStatus;
use events::deployment::{DeviceDeploymentStatus, PauseCause, Phase, RolloutPolicy};
use events::filter::Predicate;
use events::{ArtifactId, DeploymentId, DomainEvent};
use serde_json::{Map, Value};

use uuid::Uuid;

use super::artifacts::DeploymentUse;
use super::device_index::DeviceIndex;
use super::filters::SavedFilter;
use super::inventory::DeviceInventory;

/// What decisions need to know about one deployment.
#[derive(Debug, Clone)]
pub struct DeploymentInfo {
    pub id: DeploymentId,
    pub name: String,
    pub artifact_name: String,
    pub created: DateTime<Utc>,
    pub force_installation: bool,
    pub phases: Vec<Phase>,
    /// How many devices it targets.
    pub device_count: usize,
    /// Which devices, to recognise an identical deployment: a fingerprint rather than the
    /// list, which a million entries would make hundreds of megabytes.
    pub devices_fingerprint: DeviceListFingerprint,
    pub aborted: bool,
    /// Devices whose entry reached a final state.
    pub finished_devices: HashSet<String>,
    /// For a dynamic deployment, the filter devices join by.
    pub dynamic: Option<Dynamic>,
    /// Paused: devices that have not started it get nothing.
    pub paused: bool,
    /// The failure policy, and whether it has tripped (it trips once).
    pub policy: Option<RolloutPolicy>,
    pub policy_tripped: bool,
    /// For a deployment with a policy, the devices that finished in success or failure, and
    /// those that failed.
    pub outcomes: Outcomes,
    /// Retries a device whose attempt failed gets, and the attempt of each device past its
    /// first.
    pub retries: u32,
    pub attempts: HashMap<String, u32>,
    /// For a deployment with a device timeout, each device in a non-final status, with that
    /// status and when its entry last changed.
    pub in_flight: HashMap<String, (DeviceDeploymentStatus, DateTime<Utc>)>,
}

/// A sorted, deduplicated list of device ids, fingerprinted: two lists have the same
/// fingerprint exactly when they are the same list (SHA-256 over the length-prefixed ids, so
/// no id can pass for two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceListFingerprint([u8; 32]);

impl DeviceListFingerprint {
    pub fn of(devices: &[String]) -> Self {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update((devices.len() as u64).to_be_bytes());
        for device in devices {
            hash.update((device.len() as u64).to_be_bytes());
            hash.update(device.as_bytes());
        }
        Self(hash.finalize().into())
    }
}

/// Devices by outcome, kept for deployments with a failure policy.
#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    pub finished: HashSet<String>,
    pub failed: HashSet<String>,
}

/// What a dynamic deployment needs to decide: the filter's predicates, and the devices it
/// takes before it finishes.
#[derive(Debug, Clone)]
pub struct Dynamic {
    pub filter_id: Uuid,
    pub predicates: Vec<Predicate>,
    pub max_devices: Option<u64>,
}

impl DeploymentInfo {
    /// The attempt the device is on (1 before any retry).
    pub fn attempt(&self, device: &str) -> u32 {
        self.attempts.get(device).copied().unwrap_or(1)
    }

    /// Whether `status`, reached by the device, ends its entry for good: a failure with
    /// retries left does not, unless the deployment was aborted.
    pub fn ends_entry(&self, device: &str, status: DeviceDeploymentStatus) -> bool {
        status.is_final()
            && !(status == DeviceDeploymentStatus::Failure
                && !self.aborted
                && self.attempt(device) <= self.retries)
    }

    /// The entries whose status has not changed for longer than the device timeout at `now`,
    /// with that status and since when.
    pub fn timed_out(
        &self,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = (&str, DeviceDeploymentStatus, DateTime<Utc>)> + '_ {
        let timeout = self
            .policy
            .as_ref()
            .and_then(|policy| policy.device_timeout_seconds)
            .filter(|_| !self.aborted)
            .and_then(|seconds| chrono::TimeDelta::try_seconds(i64::try_from(seconds).ok()?));
        // A deadline past what a timestamp holds (a policy recorded before timeouts were
        // bounded) never comes: it must not stop the checks of every other deployment.
        self.in_flight
            .iter()
            .filter(move |(_, (_, since))| {
                timeout
                    .and_then(|timeout| since.checked_add_signed(timeout))
                    .is_some_and(|deadline| deadline <= now)
            })
            .map(|(device, (status, since))| (device.as_str(), *status, *since))
    }

    /// Whether the policy trips on the counts held now, though it has not tripped yet.
    pub fn policy_due(&self) -> bool {
        !self.policy_tripped
            && !self.finished()
            && self.policy.as_ref().is_some_and(|policy| {
                policy
                    .trip(
                        self.outcomes.finished.len() as u64,
                        self.outcomes.failed.len() as u64,
                    )
                    .is_some()
            })
    }

    /// Finished once aborted or once every targeted device is in a final state; a dynamic
    /// deployment once `max_devices` devices are, and without it only when aborted.
    pub fn finished(&self) -> bool {
        self.aborted
            || self
                .devices_to_finish()
                .is_some_and(|count| self.finished_devices.len() >= count)
    }

    /// How many devices finishing ends it: every targeted device, a dynamic deployment's
    /// `max_devices`, or none (a dynamic deployment without it ends only when aborted).
    pub fn devices_to_finish(&self) -> Option<usize> {
        match &self.dynamic {
            Some(dynamic) => dynamic.max_devices.map(|max| max as usize),
            None => Some(self.device_count),
        }
    }
}

/// An artifact as the device API chooses among them.
#[derive(Debug, Clone)]
pub struct ArtifactChoice {
    pub id: ArtifactId,
    pub name: String,
    pub device_types: Vec<String>,
    pub size: u64,
}

#[derive(Debug, Default)]
pub struct TenantCatalog {
    pub deployments: HashMap<DeploymentId, DeploymentInfo>,
    /// Per device, the deployments that target it, oldest first.
    targets: DeviceIndex,
    /// Per device, the deployments it has an entry in that is not final yet.
    unfinished: HashMap<String, HashSet<DeploymentId>>,
    artifacts: HashMap<ArtifactId, ArtifactChoice>,
    /// Devices with an admission record, with the status of each of their auth sets.
    admission: HashMap<String, HashMap<Uuid, AuthSetStatus>>,
    /// Which device each auth set belongs to.
    auth_set_owners: HashMap<Uuid, String>,
    /// Devices with an accepted auth set, counted as events arrive.
    accepted_devices: usize,
    /// Per device, when it last stopped being accepted: tokens issued before then (by their
    /// `iat`, in whole seconds) no longer stand, even once it is accepted again.
    revoked_at: HashMap<String, i64>,
    /// Devices with an inventory record (reported attributes, tags or a group).
    inventoried: HashSet<String>,
    /// Each grouped device's static group.
    groups: HashMap<String, String>,
    /// Each admitted device's identity attributes, for dynamic deployments' filters.
    identities: HashMap<String, Map<String, Value>>,
    /// The saved filters dynamic deployments are made from.
    saved_filters: HashMap<Uuid, SavedFilter>,
    /// The dynamic deployments, so a poll looks at these few rather than at every deployment.
    dynamic: BTreeSet<(DateTime<Utc>, DeploymentId)>,
}

impl TenantCatalog {
    /// Deployments targeting `device`, oldest first.
    pub fn targeting<'a>(&'a self, device: &str) -> impl Iterator<Item = &'a DeploymentInfo> + 'a {
        self.targets
            .get(device)
            .iter()
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
        }) || self.dynamic_open_to(device)
    }

    /// Whether the device's token must be refused: it has an admission record and none of
    /// its auth sets is accepted (rejected, reset to pending or dismissed since the token was
    /// issued). Devices admitted before admission was recorded have no record and keep
    /// their tokens.
    pub fn token_refused(&self, device: &str, issued_at: Option<i64>) -> bool {
        if self.admission.contains_key(device) && !self.device_accepted(device) {
            return true;
        }
        // A token without `iat` cannot be placed before or after; one issued in the second
        // of a revocation is refused, and the device asks again.
        match (self.revoked_at.get(device), issued_at) {
            (Some(revoked), Some(issued)) => issued <= *revoked,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// The device an auth set belongs to.
    pub fn auth_set_owner(&self, set: Uuid) -> Option<&str> {
        self.auth_set_owners.get(&set).map(String::as_str)
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

    pub fn artifact(&self, id: ArtifactId) -> Option<&ArtifactChoice> {
        self.artifacts.get(&id)
    }

    pub fn artifact_named(&self, name: &str) -> bool {
        self.artifacts
            .values()
            .any(|artifact| artifact.name == name)
    }

    /// Counts a device's final status for its deployment's policy, if it has one.
    fn outcome(&mut self, deployment: DeploymentId, device: &str, status: DeviceDeploymentStatus) {
        let Some(info) = self.deployments.get_mut(&deployment) else {
            return;
        };
        if info.policy.is_none() || !status.is_final() {
            return;
        }
        if !matches!(
            status,
            DeviceDeploymentStatus::Aborted | DeviceDeploymentStatus::Decommissioned
        ) {
            info.outcomes.finished.insert(device.to_owned());
        }
        if status == DeviceDeploymentStatus::Failure {
            info.outcomes.failed.insert(device.to_owned());
        }
    }

    /// The device's entry in `deployment` moved to `status` at `at`: it ends, waits for a
    /// retry, or goes on (and may time out).
    fn entry_changed(
        &mut self,
        deployment: DeploymentId,
        device: &str,
        status: DeviceDeploymentStatus,
        at: Option<DateTime<Utc>>,
    ) {
        let mut ends = status.is_final();
        if let Some(info) = self.deployments.get_mut(&deployment) {
            ends = info.ends_entry(device, status);
            let timed = info
                .policy
                .as_ref()
                .is_some_and(|policy| policy.device_timeout_seconds.is_some());
            match at {
                Some(at) if timed && !status.is_final() => {
                    info.in_flight.insert(device.to_owned(), (status, at));
                }
                _ => {
                    info.in_flight.remove(device);
                }
            }
        }
        if ends {
            self.outcome(deployment, device, status);
            self.entry_finished(deployment, device);
        } else {
            self.unfinished
                .entry(device.to_owned())
                .or_default()
                .insert(deployment);
        }
    }

    fn entry_finished(&mut self, deployment: DeploymentId, device: &str) {
        if let Some(info) = self.deployments.get_mut(&deployment) {
            info.finished_devices.insert(device.to_owned());
            info.in_flight.remove(device);
        }
        if let Some(ids) = self.unfinished.get_mut(device) {
            ids.remove(&deployment);
        }
    }

    /// Folds an admission event recorded at `at` (when known), keeping the count of
    /// accepted devices and when each last stopped being accepted.
    fn apply_admission(&mut self, event: DomainEvent, at: Option<DateTime<Utc>>) {
        let device = match &event {
            DomainEvent::AuthSetAdded(added) => added.device_id.clone(),
            DomainEvent::AuthSetStatusChanged(changed) => changed.device_id.clone(),
            DomainEvent::AuthSetDismissed(dismissed) => dismissed.device_id.clone(),
            DomainEvent::DeviceRemoved(removed) => removed.device_id.clone(),
            _ => return,
        };
        let was = self.device_accepted(&device);
        match event {
            DomainEvent::AuthSetAdded(added) => {
                self.auth_set_owners
                    .insert(added.auth_set_id, added.device_id.clone());
                self.identities
                    .insert(added.device_id.clone(), added.identity_data.clone());
                self.admission
                    .entry(added.device_id)
                    .or_default()
                    .insert(added.auth_set_id, added.status);
            }
            DomainEvent::AuthSetStatusChanged(changed) => {
                if let Some(sets) = self.admission.get_mut(&changed.device_id) {
                    sets.insert(changed.auth_set_id, changed.status);
                }
            }
            DomainEvent::AuthSetDismissed(dismissed) => {
                self.auth_set_owners.remove(&dismissed.auth_set_id);
                if let Some(sets) = self.admission.get_mut(&dismissed.device_id) {
                    sets.remove(&dismissed.auth_set_id);
                }
            }
            // The device keeps an empty record: its tokens stay refused.
            DomainEvent::DeviceRemoved(removed) => {
                self.identities.remove(&removed.device_id);
                if let Some(sets) = self.admission.get_mut(&removed.device_id) {
                    for set in sets.drain() {
                        self.auth_set_owners.remove(&set.0);
                    }
                }
            }
            _ => {}
        }
        match (was, self.device_accepted(&device)) {
            (false, true) => self.accepted_devices += 1,
            (true, false) => {
                self.accepted_devices -= 1;
                if let Some(at) = at {
                    self.revoked_at.insert(device, at.timestamp());
                }
            }
            _ => {}
        }
    }

    fn device_accepted(&self, device: &str) -> bool {
        self.admission.get(device).is_some_and(|sets| {
            sets.values()
                .any(|status| *status == AuthSetStatus::Accepted)
        })
    }

    pub fn saved_filter(&self, id: Uuid) -> Option<&SavedFilter> {
        self.saved_filters.get(&id)
    }

    /// Active dynamic deployments the device has no entry in yet (as far as the tables
    /// know): the device's inventory must be read to tell whether it joins one.
    pub fn dynamic_open_to(&self, device: &str) -> bool {
        self.dynamic_deployments().any(|deployment| {
            !deployment.finished()
                && !deployment.finished_devices.contains(device)
                && !self
                    .unfinished
                    .get(device)
                    .is_some_and(|ids| ids.contains(&deployment.id))
        })
    }

    fn dynamic_deployments(&self) -> impl Iterator<Item = &DeploymentInfo> {
        self.dynamic
            .iter()
            .filter_map(|(_, id)| self.deployments.get(id))
    }

    /// Active dynamic deployments whose filter the device matches now, with the filter.
    pub fn dynamic_matches<'a>(
        &'a self,
        device: &'a str,
        inventory: &'a DeviceInventory,
    ) -> impl Iterator<Item = (&'a DeploymentInfo, Uuid)> + 'a {
        let id = Value::String(device.to_owned());
        let status = self
            .admission
            .get(device)
            .and_then(|sets| sets.values().max_by_key(|status| status.strength()))
            .map(|status| Value::String(status.as_str().to_owned()));
        let group = inventory.group.clone().map(Value::String);
        let identity = self.identities.get(device);
        self.dynamic_deployments().filter_map(move |deployment| {
            let dynamic = deployment.dynamic.as_ref()?;
            let matched =
                events::filter::all_match(&dynamic.predicates, |scope, name| match (scope, name) {
                    ("identity", "id") => Some(&id),
                    ("identity", "status") => status.as_ref(),
                    ("identity", name) => identity.and_then(|identity| identity.get(name)),
                    ("inventory", name) => inventory.attributes.get(name).map(|a| &a.value),
                    ("tags", name) => inventory.tags.get(name).map(|a| &a.value),
                    ("system", "group") => group.as_ref(),
                    _ => None,
                });
            (!deployment.finished() && matched).then_some((deployment, dynamic.filter_id))
        })
    }

    /// Whether the device is known to the fleet: admitted in some status, or inventoried.
    pub fn known_device(&self, device: &str) -> bool {
        self.admission.contains_key(device) || self.inventoried.contains(device)
    }

    /// The device's static group.
    pub fn group_of(&self, device: &str) -> Option<&str> {
        self.groups.get(device).map(String::as_str)
    }

    /// The devices in `group`, in no particular order.
    pub fn group_members<'a>(&'a self, group: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.groups
            .iter()
            .filter(move |(_, name)| *name == group)
            .map(|(device, _)| device.as_str())
    }

    /// The accepted devices, with `group` only those in it, sorted: what a deployment to
    /// all devices or to a group targets.
    pub fn accepted_targets(&self, group: Option<&str>) -> Vec<String> {
        let mut devices: Vec<String> = self
            .admission
            .keys()
            .filter(|device| group.is_none_or(|group| self.group_of(device) == Some(group)))
            .filter(|device| self.device_accepted(device))
            .cloned()
            .collect();
        devices.sort();
        devices
    }

    fn apply_inventory(&mut self, event: &DomainEvent) {
        match event {
            DomainEvent::InventoryReported(reported) => {
                self.inventoried.insert(reported.device_id.clone());
            }
            DomainEvent::DeviceTagsSet(set) => {
                self.inventoried.insert(set.device_id.clone());
            }
            DomainEvent::DeviceGroupAssigned(assigned) => {
                self.inventoried.insert(assigned.device_id.clone());
                self.groups
                    .insert(assigned.device_id.clone(), assigned.group.clone());
            }
            DomainEvent::DeviceGroupLeft(left)
                if self.group_of(&left.device_id) == Some(left.group.as_str()) =>
            {
                self.groups.remove(&left.device_id);
            }
            DomainEvent::InventoryRemoved(removed) => {
                self.inventoried.remove(&removed.device_id);
                self.groups.remove(&removed.device_id);
            }
            _ => {}
        }
    }

    /// How many devices have an accepted auth set.
    pub fn accepted_devices(&self) -> usize {
        self.accepted_devices
    }

    /// Folds one event into the tables.
    pub fn apply(&mut self, event: DomainEvent) {
        self.apply_at(event, None);
    }

    /// Folds one event recorded at `at` into the tables: admission needs to know when a
    /// device stopped being accepted.
    pub fn apply_at(&mut self, event: DomainEvent, at: Option<DateTime<Utc>>) {
        match event {
            DomainEvent::DeploymentCreated(created) => {
                if created.dynamic.is_some() {
                    self.dynamic
                        .insert((created.created, created.deployment_id));
                }
                let mut devices = created.devices;
                devices.sort();
                devices.dedup();
                let target = (created.created, created.deployment_id);
                for device in &devices {
                    self.targets.add(device, target);
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
                        device_count: devices.len(),
                        devices_fingerprint: DeviceListFingerprint::of(&devices),
                        aborted: false,
                        finished_devices: HashSet::new(),
                        paused: false,
                        policy: created.policy,
                        policy_tripped: false,
                        outcomes: Outcomes::default(),
                        retries: created.retries,
                        attempts: HashMap::new(),
                        in_flight: HashMap::new(),
                        dynamic: created.dynamic.map(|target| Dynamic {
                            filter_id: target.filter_id,
                            // Checked when the filter was saved: a term that no longer
                            // parses matches nothing rather than everything.
                            predicates: target
                                .terms
                                .iter()
                                .map(Predicate::from_term)
                                .collect::<Result<_, _>>()
                                .unwrap_or_else(|_| vec![never()]),
                            max_devices: target.max_devices,
                        }),
                    },
                );
            }
            DomainEvent::DeploymentAborted(aborted) => {
                if let Some(info) = self.deployments.get_mut(&aborted.deployment_id) {
                    info.aborted = true;
                    info.policy_tripped |= aborted.policy.is_some();
                }
            }
            DomainEvent::DeploymentPaused(paused) => {
                if let Some(info) = self.deployments.get_mut(&paused.deployment_id) {
                    info.paused = true;
                    info.policy_tripped |= matches!(paused.cause, PauseCause::Policy(_));
                }
            }
            DomainEvent::PhaseStarted(started) => {
                if let Some(phase) = self
                    .deployments
                    .get_mut(&started.deployment_id)
                    .and_then(|info| info.phases.get_mut(started.phase))
                {
                    phase.start_ts = started.started;
                }
            }
            DomainEvent::DeploymentResumed(resumed) => {
                if let Some(info) = self.deployments.get_mut(&resumed.deployment_id) {
                    info.paused = false;
                }
            }
            DomainEvent::DeviceJoinedDeployment(joined) => {
                self.entry_changed(joined.deployment_id, &joined.device_id, joined.status, at);
            }
            DomainEvent::DeviceDeploymentStatusChanged(changed) => {
                self.entry_changed(
                    changed.deployment_id,
                    &changed.device_id,
                    changed.status,
                    at,
                );
            }
            DomainEvent::DeviceDeploymentTimedOut(timed_out) => self.entry_changed(
                timed_out.deployment_id,
                &timed_out.device_id,
                DeviceDeploymentStatus::Failure,
                at,
            ),
            DomainEvent::DeviceDeploymentRetried(retried) => {
                if let Some(info) = self.deployments.get_mut(&retried.deployment_id) {
                    info.attempts
                        .insert(retried.device_id.clone(), retried.attempt);
                }
                self.entry_changed(
                    retried.deployment_id,
                    &retried.device_id,
                    DeviceDeploymentStatus::Pending,
                    at,
                );
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
            DomainEvent::AuthSetAdded(_)
            | DomainEvent::AuthSetStatusChanged(_)
            | DomainEvent::AuthSetDismissed(_)
            | DomainEvent::DeviceRemoved(_) => self.apply_admission(event, at),
            DomainEvent::FilterSaved(saved) => {
                self.saved_filters.insert(
                    saved.filter_id,
                    SavedFilter {
                        name: saved.name,
                        terms: saved.terms,
                    },
                );
            }
            DomainEvent::FilterDeleted(deleted) => {
                self.saved_filters.remove(&deleted.filter_id);
            }
            DomainEvent::InventoryReported(_)
            | DomainEvent::DeviceTagsSet(_)
            | DomainEvent::DeviceGroupAssigned(_)
            | DomainEvent::DeviceGroupLeft(_)
            | DomainEvent::InventoryRemoved(_) => self.apply_inventory(&event),
            _ => {}
        }
    }
}

/// A predicate no device matches.
fn never() -> Predicate {
    Predicate::from_term(&events::inventory::FilterTerm {
        scope: "identity".into(),
        attribute: "id".into(),
        kind: "$exists".into(),
        value: Value::Bool(false),
    })
    .expect("a fixed, valid predicate")
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

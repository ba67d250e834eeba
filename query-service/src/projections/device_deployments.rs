//! Each device's entry in a deployment: joining, status changes, phase admissions, logs and
//! decommissioning.
//!
//! Joins, status reports, admissions and logs arrive by the thousand per deployment, so a
//! batch's run of them is folded: every entry, count and deployment the run touches is read
//! once, changed in memory in event order by the same rules as one event at a time, and
//! written once in multi-row statements. A run costs a handful of round trips however long it
//! is, which is what lets status reports and rebuilds go at the database's pace rather than at
//! one round trip per statement per event.

use std::collections::{BTreeMap, BTreeSet};

use events::deployment::{
    DeviceAdmittedToPhase, DeviceDecommissioned, DeviceDeploymentLogSaved, DeviceDeploymentRetried,
    DeviceDeploymentStatus, DeviceDeploymentStatusChanged, DeviceJoinedDeployment,
};
use events::DeploymentId;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use super::deployment_status::{count, deployment_status, refresh, FINAL};
use super::statements::{insert_rows, select_in, Param};

type Tx = Transaction<'static, Any>;

/// One device event of a run, with what the projection needs of its envelope.
pub enum DeviceEvent {
    Joined {
        at: String,
        entry_id: Uuid,
        joined: DeviceJoinedDeployment,
    },
    StatusChanged {
        at: String,
        changed: DeviceDeploymentStatusChanged,
    },
    AdmittedToPhase(DeviceAdmittedToPhase),
    LogSaved(DeviceDeploymentLogSaved),
    Retried {
        at: String,
        retried: DeviceDeploymentRetried,
    },
}

impl DeviceEvent {
    fn deployment(&self) -> DeploymentId {
        match self {
            Self::Joined { joined, .. } => joined.deployment_id,
            Self::StatusChanged { changed, .. } => changed.deployment_id,
            Self::AdmittedToPhase(admitted) => admitted.deployment_id,
            Self::LogSaved(saved) => saved.deployment_id,
            Self::Retried { retried, .. } => retried.deployment_id,
        }
    }

    fn device(&self) -> &str {
        match self {
            Self::Joined { joined, .. } => &joined.device_id,
            Self::StatusChanged { changed, .. } => &changed.device_id,
            Self::AdmittedToPhase(admitted) => &admitted.device_id,
            Self::LogSaved(saved) => &saved.device_id,
            Self::Retried { retried, .. } => &retried.device_id,
        }
    }
}

/// A tenant and a deployment id, as the read models key deployments.
type DeploymentKey = (String, String);
/// A tenant, a deployment id and a device id, as the read models key entries.
type EntryKey = (String, String, String);

/// A run of device events, applied together by [`DeviceRun::write`].
#[derive(Default)]
pub struct DeviceRun {
    events: Vec<(String, DeviceEvent)>,
}

impl DeviceRun {
    pub fn push(&mut self, tenant: &str, event: DeviceEvent) {
        self.events.push((tenant.to_owned(), event));
    }

    /// Applies the run and empties it; the caller does so before any other kind of event, so
    /// that what the run reads is what the events before it left.
    pub async fn write(&mut self, tx: &mut Tx) -> anyhow::Result<()> {
        if self.events.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(&mut self.events);
        let mut fold = Fold::load(tx, &events).await?;
        for (tenant, event) in events {
            fold.apply(tenant, event)?;
        }
        fold.store(tx).await
    }
}

/// An entry as stored, plus whether the run changed it.
struct Entry {
    id: String,
    status: DeviceDeploymentStatus,
    substate: Option<String>,
    artifact_id: Option<String>,
    device_type: String,
    installed_artifact_name: String,
    phase: Option<i64>,
    created: String,
    started: Option<String>,
    finished: Option<String>,
    has_log: bool,
    attempts: i64,
    changed: bool,
}

/// What the run needs of a deployment, and what it changed.
struct Deployment {
    status: String,
    aborted: bool,
    max_devices: i64,
    /// Retries the deployment gives, and its entries that failed with retries left (they
    /// do not count towards finishing it).
    retries: i64,
    retrying: i64,
    /// Devices per status, and which statuses the run touched (each is written back, as
    /// one event at a time would, even when its moves cancel out).
    counts: BTreeMap<DeviceDeploymentStatus, i64>,
    count_changes: BTreeMap<DeviceDeploymentStatus, i64>,
    devices_joined: i64,
    size_added: i64,
    status_changed: bool,
    finished_at: Option<String>,
}

impl Deployment {
    fn count(&mut self, status: DeviceDeploymentStatus, delta: i64) {
        *self.counts.entry(status).or_default() += delta;
        *self.count_changes.entry(status).or_default() += delta;
    }

    /// Derives the status again after a change at `at`, as Mender does after every one.
    fn settle(&mut self, at: &str) {
        let counts: Vec<_> = self.counts.iter().map(|(s, n)| (*s, *n)).collect();
        let status = deployment_status(
            &self.status,
            self.aborted,
            self.max_devices,
            self.retrying,
            &counts,
        );
        if status != self.status {
            self.status = status.to_owned();
            self.status_changed = true;
            if status == "finished" {
                self.finished_at = Some(at.to_owned());
            }
        }
    }
}

/// The state a run reads, changes in memory, and writes back.
struct Fold {
    deployments: BTreeMap<DeploymentKey, Deployment>,
    entries: BTreeMap<EntryKey, Entry>,
    artifact_sizes: BTreeMap<(String, String), i64>,
    phase_admissions: BTreeMap<(String, String, i64), i64>,
    logs: BTreeMap<EntryKey, String>,
}

impl Fold {
    async fn load(tx: &mut Tx, events: &[(String, DeviceEvent)]) -> anyhow::Result<Self> {
        let mut deployment_ids: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        let mut device_ids: BTreeMap<(&str, String), BTreeSet<&str>> = BTreeMap::new();
        let mut artifact_ids: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (tenant, event) in events {
            let deployment = event.deployment().to_string();
            match event {
                DeviceEvent::AdmittedToPhase(_) => continue,
                DeviceEvent::Joined { joined, .. } => {
                    if let Some(artifact) = joined.artifact_id {
                        artifact_ids
                            .entry(tenant.as_str())
                            .or_default()
                            .insert(artifact.to_string());
                    }
                    deployment_ids
                        .entry(tenant.as_str())
                        .or_default()
                        .insert(deployment.clone());
                }
                DeviceEvent::StatusChanged { .. } | DeviceEvent::Retried { .. } => {
                    deployment_ids
                        .entry(tenant.as_str())
                        .or_default()
                        .insert(deployment.clone());
                }
                DeviceEvent::LogSaved(_) => {}
            }
            device_ids
                .entry((tenant.as_str(), deployment))
                .or_default()
                .insert(event.device());
        }

        let mut fold = Fold {
            deployments: BTreeMap::new(),
            entries: BTreeMap::new(),
            artifact_sizes: BTreeMap::new(),
            phase_admissions: BTreeMap::new(),
            logs: BTreeMap::new(),
        };
        for (tenant, ids) in &deployment_ids {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let rows = select_in(
                tx,
                "SELECT id, status, aborted, max_devices, retries, retrying FROM deployments",
                &[("tenant", tenant)],
                ("id", &ids),
            )
            .await?;
            for row in rows {
                fold.deployments.insert(
                    (tenant.to_string(), row.try_get("id")?),
                    Deployment {
                        status: row.try_get("status")?,
                        aborted: row.try_get::<i64, _>("aborted")? == 1,
                        max_devices: row.try_get("max_devices")?,
                        retries: row.try_get("retries")?,
                        retrying: row.try_get("retrying")?,
                        counts: BTreeMap::new(),
                        count_changes: BTreeMap::new(),
                        devices_joined: 0,
                        size_added: 0,
                        status_changed: false,
                        finished_at: None,
                    },
                );
            }
            let rows = select_in(
                tx,
                "SELECT deployment_id, status, devices FROM deployment_statistics",
                &[("tenant", tenant)],
                ("deployment_id", &ids),
            )
            .await?;
            for row in rows {
                let key = (tenant.to_string(), row.try_get("deployment_id")?);
                if let Some(deployment) = fold.deployments.get_mut(&key) {
                    let status = parse_status(&row.try_get::<String, _>("status")?)?;
                    deployment.counts.insert(status, row.try_get("devices")?);
                }
            }
        }
        for (tenant, ids) in &artifact_ids {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let rows = select_in(
                tx,
                "SELECT id, size FROM deployment_known_artifacts",
                &[("tenant", tenant)],
                ("id", &ids),
            )
            .await?;
            for row in rows {
                fold.artifact_sizes.insert(
                    (tenant.to_string(), row.try_get("id")?),
                    row.try_get("size")?,
                );
            }
        }
        for ((tenant, deployment), devices) in &device_ids {
            let devices: Vec<&str> = devices.iter().copied().collect();
            let rows = select_in(
                tx,
                "SELECT device_id, id, status, substate, artifact_id, device_type,
                        installed_artifact_name, phase, created, started, finished, has_log,
                        attempts
                 FROM device_deployments",
                &[("tenant", tenant), ("deployment_id", deployment)],
                ("device_id", &devices),
            )
            .await?;
            for row in rows {
                let key = (
                    tenant.to_string(),
                    deployment.clone(),
                    row.try_get("device_id")?,
                );
                let entry = Entry {
                    id: row.try_get("id")?,
                    status: parse_status(&row.try_get::<String, _>("status")?)?,
                    substate: row.try_get("substate")?,
                    artifact_id: row.try_get("artifact_id")?,
                    device_type: row.try_get("device_type")?,
                    installed_artifact_name: row.try_get("installed_artifact_name")?,
                    phase: row.try_get("phase")?,
                    created: row.try_get("created")?,
                    started: row.try_get("started")?,
                    finished: row.try_get("finished")?,
                    has_log: row.try_get::<i64, _>("has_log")? == 1,
                    attempts: row.try_get("attempts")?,
                    changed: false,
                };
                fold.entries.insert(key, entry);
            }
        }
        Ok(fold)
    }

    fn apply(&mut self, tenant: String, event: DeviceEvent) -> anyhow::Result<()> {
        let deployment = event.deployment().to_string();
        let key = (tenant, deployment, event.device().to_owned());
        match event {
            DeviceEvent::Joined {
                at,
                entry_id,
                joined,
            } => self.joined(key, &at, entry_id, joined),
            DeviceEvent::StatusChanged { at, changed } => self.status_changed(key, &at, changed),
            DeviceEvent::Retried { at, retried } => self.retried(key, &at, retried),
            DeviceEvent::AdmittedToPhase(admitted) => {
                let (tenant, deployment, _) = key;
                *self
                    .phase_admissions
                    .entry((tenant, deployment, admitted.phase as i64))
                    .or_default() += 1;
                Ok(())
            }
            DeviceEvent::LogSaved(saved) => {
                // The latest log is the one kept; an entry, if there is one, notes it has one.
                self.logs
                    .insert(key.clone(), serde_json::to_string(&saved.messages)?);
                if let Some(entry) = self.entries.get_mut(&key) {
                    entry.has_log = true;
                    entry.changed = true;
                }
                Ok(())
            }
        }
    }

    /// Creates the device's entry; `entry_id` (the event's id) names it for good.
    fn joined(
        &mut self,
        key: EntryKey,
        at: &str,
        entry_id: Uuid,
        joined: DeviceJoinedDeployment,
    ) -> anyhow::Result<()> {
        let (tenant, id, device) = &key;
        let Some(deployment) = self.deployments.get_mut(&(tenant.clone(), id.clone())) else {
            anyhow::bail!("device event for unknown deployment {id}");
        };
        if self.entries.contains_key(&key) {
            anyhow::bail!("{device} joined {id} twice");
        }
        // The device joins on its own stream, so the join can land after an abort it raced
        // with; the command side then treats the unfinished entry as aborted, and so does this.
        let status = if deployment.aborted && !joined.status.is_final() {
            DeviceDeploymentStatus::Aborted
        } else {
            joined.status
        };
        let artifact_id = joined.artifact_id.map(|artifact| artifact.to_string());
        // Mender adds the assigned artifact's size once per device that gets it.
        deployment.devices_joined += 1;
        if let Some(artifact) = &artifact_id {
            deployment.size_added += self
                .artifact_sizes
                .get(&(tenant.clone(), artifact.clone()))
                .copied()
                .unwrap_or(0);
        }
        deployment.count(status, 1);
        deployment.settle(at);
        let entry = Entry {
            id: entry_id.to_string(),
            status,
            substate: None,
            artifact_id,
            device_type: joined.device_type,
            installed_artifact_name: joined.installed_artifact_name,
            phase: joined.phase.map(|phase| phase as i64),
            created: at.to_owned(),
            started: (status != DeviceDeploymentStatus::Pending).then(|| at.to_owned()),
            finished: status.is_final().then(|| at.to_owned()),
            has_log: false,
            attempts: 1,
            changed: true,
        };
        self.entries.insert(key, entry);
        Ok(())
    }

    /// An existing entry and its deployment, for a change (`what`) to the entry.
    fn entry(
        &mut self,
        key: &EntryKey,
        what: &str,
    ) -> anyhow::Result<(&mut Entry, &mut Deployment)> {
        let (tenant, id, device) = key;
        match (
            self.entries.get_mut(key),
            self.deployments.get_mut(&(tenant.clone(), id.clone())),
        ) {
            (Some(entry), Some(deployment)) => Ok((entry, deployment)),
            _ => anyhow::bail!("{what} for {device} in {id}, which has no entry"),
        }
    }

    /// Moves the entry to its new status, keeping the deployment's counts and status in step.
    fn status_changed(
        &mut self,
        key: EntryKey,
        at: &str,
        changed: DeviceDeploymentStatusChanged,
    ) -> anyhow::Result<()> {
        let (entry, deployment) = self.entry(&key, "status change")?;
        // A report that raced with an abort: the entry stays aborted unless the device really
        // finished, as the command side reads it.
        if !changed.status.is_final() && deployment.aborted {
            return Ok(());
        }
        // As in Mender: an empty substate keeps the last one; `started` is when the entry first
        // left pending; `finished` is the time of the latest final status.
        if let Some(substate) = changed.substate.filter(|substate| !substate.is_empty()) {
            entry.substate = Some(substate);
        }
        if entry.started.is_none() && changed.status != DeviceDeploymentStatus::Pending {
            entry.started = Some(at.to_owned());
        }
        if changed.status.is_final() {
            entry.finished = Some(at.to_owned());
        }
        entry.changed = true;
        let previous = std::mem::replace(&mut entry.status, changed.status);
        if previous != changed.status {
            // A failure with retries left does not finish the entry: the device gets the
            // deployment again when it next asks.
            if changed.status == DeviceDeploymentStatus::Failure
                && !deployment.aborted
                && entry.attempts <= deployment.retries
            {
                deployment.retrying += 1;
                deployment.status_changed = true;
            }
            deployment.count(previous, -1);
            deployment.count(changed.status, 1);
            deployment.settle(at);
        }
        Ok(())
    }

    /// A failed entry starts its next attempt: pending again, counted as such.
    fn retried(
        &mut self,
        key: EntryKey,
        at: &str,
        retried: DeviceDeploymentRetried,
    ) -> anyhow::Result<()> {
        let (entry, deployment) = self.entry(&key, "retry")?;
        if entry.status == DeviceDeploymentStatus::Failure {
            deployment.retrying -= 1;
        }
        deployment.count(entry.status, -1);
        deployment.count(DeviceDeploymentStatus::Pending, 1);
        deployment.status_changed = true;
        entry.status = DeviceDeploymentStatus::Pending;
        entry.attempts = i64::from(retried.attempt);
        entry.substate = None;
        entry.finished = None;
        entry.device_type = retried.device_type;
        entry.installed_artifact_name = retried.installed_artifact_name;
        entry.changed = true;
        deployment.settle(at);
        Ok(())
    }

    async fn store(self, tx: &mut Tx) -> anyhow::Result<()> {
        let entries: Vec<Vec<Param>> = self
            .entries
            .into_iter()
            .filter(|(_, entry)| entry.changed)
            .map(|((tenant, deployment, device), entry)| {
                vec![
                    Param::text(tenant),
                    Param::text(deployment),
                    Param::text(device),
                    Param::text(entry.id),
                    Param::text(entry.status.as_str()),
                    Param::Text(entry.substate),
                    Param::Text(entry.artifact_id),
                    Param::text(entry.device_type),
                    Param::text(entry.installed_artifact_name),
                    Param::Int(entry.phase),
                    Param::text(entry.created),
                    Param::Text(entry.started),
                    Param::Text(entry.finished),
                    Param::Int(Some(i64::from(entry.has_log))),
                    Param::Int(Some(entry.attempts)),
                ]
            })
            .collect();
        insert_rows(
            tx,
            "INSERT INTO device_deployments (tenant, deployment_id, device_id, id, status,
                 substate, artifact_id, device_type, installed_artifact_name, phase, created,
                 started, finished, has_log, attempts)",
            "ON CONFLICT (tenant, deployment_id, device_id) DO UPDATE SET
                 status = excluded.status, substate = excluded.substate,
                 started = excluded.started, finished = excluded.finished,
                 has_log = excluded.has_log, attempts = excluded.attempts,
                 device_type = excluded.device_type,
                 installed_artifact_name = excluded.installed_artifact_name",
            entries,
        )
        .await?;

        let mut counts = Vec::new();
        for ((tenant, id), deployment) in &self.deployments {
            for (status, delta) in &deployment.count_changes {
                counts.push(vec![
                    Param::text(tenant.as_str()),
                    Param::text(id.as_str()),
                    Param::text(status.as_str()),
                    Param::Int(Some(*delta)),
                ]);
            }
        }
        insert_rows(
            tx,
            "INSERT INTO deployment_statistics (tenant, deployment_id, status, devices)",
            "ON CONFLICT (tenant, deployment_id, status)
             DO UPDATE SET devices = deployment_statistics.devices + excluded.devices",
            counts,
        )
        .await?;

        for ((tenant, id), deployment) in &self.deployments {
            if deployment.devices_joined == 0 && !deployment.status_changed {
                continue;
            }
            sqlx::query(
                "UPDATE deployments SET device_count = device_count + $3,
                        total_size = total_size + $4, status = $5,
                        finished = COALESCE($6, finished), retrying = $7
                 WHERE tenant = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(id)
            .bind(deployment.devices_joined)
            .bind(deployment.size_added)
            .bind(&deployment.status)
            .bind(&deployment.finished_at)
            .bind(deployment.retrying)
            .execute(&mut **tx)
            .await?;
        }

        for ((tenant, id, phase), devices) in &self.phase_admissions {
            sqlx::query(
                "UPDATE deployment_phases SET device_count = device_count + $4
                 WHERE tenant = $1 AND deployment_id = $2 AND number = $3",
            )
            .bind(tenant)
            .bind(id)
            .bind(phase)
            .bind(devices)
            .execute(&mut **tx)
            .await?;
        }

        let logs = self
            .logs
            .into_iter()
            .map(|((tenant, deployment, device), messages)| {
                vec![
                    Param::text(tenant),
                    Param::text(deployment),
                    Param::text(device),
                    Param::text(messages),
                ]
            })
            .collect();
        insert_rows(
            tx,
            "INSERT INTO device_deployment_logs (tenant, deployment_id, device_id, messages)",
            "ON CONFLICT (tenant, deployment_id, device_id)
             DO UPDATE SET messages = excluded.messages",
            logs,
        )
        .await
    }
}

fn parse_status(status: &str) -> anyhow::Result<DeviceDeploymentStatus> {
    DeviceDeploymentStatus::parse(status)
        .ok_or_else(|| anyhow::anyhow!("unknown device status {status:?}"))
}

/// Every unfinished entry of the device, in every deployment, becomes `decommissioned`.
pub async fn decommissioned(
    tx: &mut Tx,
    tenant: &str,
    at: &str,
    decommissioned: DeviceDecommissioned,
) -> anyhow::Result<()> {
    let unfinished = sqlx::query(&format!(
        "SELECT deployment_id, status FROM device_deployments
         WHERE tenant = $1 AND device_id = $2 AND status NOT IN ({FINAL})
         ORDER BY deployment_id"
    ))
    .bind(tenant)
    .bind(&decommissioned.device_id)
    .fetch_all(&mut **tx)
    .await?;
    sqlx::query(&format!(
        "UPDATE device_deployments SET status = 'decommissioned', finished = $3
         WHERE tenant = $1 AND device_id = $2 AND status NOT IN ({FINAL})"
    ))
    .bind(tenant)
    .bind(&decommissioned.device_id)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    // An entry that failed with retries left gets no retry now: it no longer holds its
    // deployment open.
    let retrying = sqlx::query(
        "SELECT e.deployment_id FROM device_deployments e
         JOIN deployments d ON d.tenant = e.tenant AND d.id = e.deployment_id
         WHERE e.tenant = $1 AND e.device_id = $2 AND e.status = 'failure'
           AND e.attempts <= d.retries AND d.aborted = 0 AND d.retrying > 0",
    )
    .bind(tenant)
    .bind(&decommissioned.device_id)
    .fetch_all(&mut **tx)
    .await?;
    for row in retrying {
        let deployment: String = row.try_get("deployment_id")?;
        sqlx::query("UPDATE deployments SET retrying = retrying - 1 WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(&deployment)
            .execute(&mut **tx)
            .await?;
        refresh(tx, tenant, &deployment, at).await?;
    }
    for row in unfinished {
        let deployment: String = row.try_get("deployment_id")?;
        let previous = parse_status(&row.try_get::<String, _>("status")?)?;
        count(tx, tenant, &deployment, previous, -1).await?;
        count(
            tx,
            tenant,
            &deployment,
            DeviceDeploymentStatus::Decommissioned,
            1,
        )
        .await?;
        refresh(tx, tenant, &deployment, at).await?;
    }
    Ok(())
}

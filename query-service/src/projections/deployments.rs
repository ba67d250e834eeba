//! Deployments, each device's entry in them, their statistics, phases, targeted devices and
//! artifacts, and device logs.

use async_trait::async_trait;
use events::artifact::ArtifactUploaded;
use events::deployment::{
    DeploymentAborted, DeploymentCreated, DeviceDeploymentStatus, DeviceDeploymentStatusChanged,
    PauseCause, PolicyTrip, TIMEOUT_SUBSTATE,
};
use events::{DomainEvent, RecordedEvent};
use sqlx::{Any, Transaction};

use super::deployment_status::{recount, refresh, FINAL};
use super::device_deployments::{self, DeviceEvent, DeviceRun};
use super::statements::{insert_rows, Param};
use super::stored_time;
use crate::projector::Projection;

/// Projects every deployment event (and the artifact events deployments depend on).
pub struct DeploymentsProjection;

type Tx = Transaction<'static, Any>;

#[async_trait]
impl Projection for DeploymentsProjection {
    fn name(&self) -> &'static str {
        "deployments"
    }

    async fn apply(&self, tx: &mut Tx, events: &[RecordedEvent]) -> anyhow::Result<()> {
        let mut run = DeviceRun::default();
        for event in events {
            let tenant = event.tenant.as_str();
            let at = stored_time(event.metadata.occurred_at);
            let device_event = match event.decode()? {
                DomainEvent::DeviceJoinedDeployment(joined) => DeviceEvent::Joined {
                    at,
                    entry_id: event.event_id,
                    joined,
                },
                DomainEvent::DeviceDeploymentStatusChanged(changed) => {
                    DeviceEvent::StatusChanged { at, changed }
                }
                // A timeout is a failure the server decided, shown with substate `timeout`.
                DomainEvent::DeviceDeploymentTimedOut(timed_out) => DeviceEvent::StatusChanged {
                    at,
                    changed: DeviceDeploymentStatusChanged {
                        deployment_id: timed_out.deployment_id,
                        device_id: timed_out.device_id,
                        status: DeviceDeploymentStatus::Failure,
                        substate: Some(TIMEOUT_SUBSTATE.to_owned()),
                    },
                },
                DomainEvent::DeviceDeploymentRetried(retried) => {
                    DeviceEvent::Retried { at, retried }
                }
                DomainEvent::DeviceAdmittedToPhase(admitted) => {
                    DeviceEvent::AdmittedToPhase(admitted)
                }
                DomainEvent::DeviceDeploymentLogSaved(saved) => DeviceEvent::LogSaved(saved),
                other => {
                    // Everything else reads or writes what the run holds: the run goes first.
                    run.write(tx).await?;
                    apply_one(tx, tenant, &at, other).await?;
                    continue;
                }
            };
            run.push(tenant, device_event);
        }
        run.write(tx).await
    }
}

/// An event that is not a device's, applied on its own.
async fn apply_one(tx: &mut Tx, tenant: &str, at: &str, event: DomainEvent) -> anyhow::Result<()> {
    match event {
        DomainEvent::DeploymentCreated(created) => deployment_created(tx, tenant, created).await,
        DomainEvent::DeploymentAborted(aborted) => {
            if let Some(trip) = &aborted.policy {
                policy_tripped(tx, tenant, aborted.deployment_id, trip).await?;
            }
            deployment_aborted(tx, tenant, at, aborted).await
        }
        DomainEvent::DeviceDecommissioned(decommissioned) => {
            device_deployments::decommissioned(tx, tenant, at, decommissioned).await
        }
        DomainEvent::DeploymentPaused(paused) => {
            if let PauseCause::Policy(trip) = &paused.cause {
                policy_tripped(tx, tenant, paused.deployment_id, trip).await?;
            }
            let cause = serde_json::to_string(&paused.cause)?;
            paused_as(tx, tenant, paused.deployment_id, Some(cause)).await
        }
        DomainEvent::PhaseStarted(started) => {
            sqlx::query(
                "UPDATE deployment_phases SET start_ts = $4
                 WHERE tenant = $1 AND deployment_id = $2 AND number = $3",
            )
            .bind(tenant)
            .bind(started.deployment_id.to_string())
            .bind(started.phase as i64)
            .bind(stored_time(started.started))
            .execute(&mut **tx)
            .await?;
            Ok(())
        }
        DomainEvent::DeploymentResumed(resumed) => {
            paused_as(tx, tenant, resumed.deployment_id, None).await
        }
        DomainEvent::ArtifactUploaded(uploaded) => artifact_uploaded(tx, tenant, uploaded).await,
        DomainEvent::ArtifactDeleted(deleted) => {
            sqlx::query("DELETE FROM deployment_known_artifacts WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(deleted.artifact_id.to_string())
                .execute(&mut **tx)
                .await?;
            Ok(())
        }
        DomainEvent::ArtifactDescriptionChanged(_)
        | DomainEvent::DeviceJoinedDeployment(_)
        | DomainEvent::DeviceDeploymentStatusChanged(_)
        | DomainEvent::DeviceDeploymentTimedOut(_)
        | DomainEvent::DeviceDeploymentRetried(_)
        | DomainEvent::DeviceAdmittedToPhase(_)
        | DomainEvent::DeviceDeploymentLogSaved(_)
        // Admission is the devices projection's.
        | DomainEvent::AuthSetAdded(_)
        | DomainEvent::AuthSetStatusChanged(_)
        | DomainEvent::DeviceTokenIssued(_)
        | DomainEvent::AuthSetDismissed(_)
        | DomainEvent::DeviceRemoved(_)
        // Inventory too.
        | DomainEvent::InventoryReported(_)
        | DomainEvent::InventoryCleared(_)
        | DomainEvent::DeviceTagsSet(_)
        | DomainEvent::DeviceGroupAssigned(_)
        | DomainEvent::DeviceGroupLeft(_)
        | DomainEvent::InventoryRemoved(_)
        | DomainEvent::FilterSaved(_)
        | DomainEvent::FilterDeleted(_)
        | DomainEvent::AcceptedWithinLimit(_) => Ok(()),
    }
}

async fn deployment_created(
    tx: &mut Tx,
    tenant: &str,
    created: DeploymentCreated,
) -> anyhow::Result<()> {
    let id = created.deployment_id.to_string();
    sqlx::query(
        "INSERT INTO deployments (tenant, id, name, artifact_name, search_name,
                                  search_artifact_name, created, finished, status, max_devices,
                                  device_count, aborted, force_installation, total_size, groups,
                                  filter, policy, retries)
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, 'pending', $8, 0, 0, $9, 0, $10, $11, $12,
                 $13)",
    )
    .bind(tenant)
    .bind(&id)
    .bind(&created.name)
    .bind(&created.artifact_name)
    .bind(created.name.to_lowercase())
    .bind(created.artifact_name.to_lowercase())
    .bind(stored_time(created.created))
    // A dynamic deployment finishes at its own `max_devices` (0: only when aborted).
    .bind(match &created.dynamic {
        Some(dynamic) => dynamic.max_devices.unwrap_or(0) as i64,
        None => created.devices.len() as i64,
    })
    .bind(i64::from(created.force_installation))
    .bind(
        (!created.groups.is_empty())
            .then(|| serde_json::to_string(&created.groups))
            .transpose()?,
    )
    .bind(
        created
            .dynamic
            .as_ref()
            .map(|dynamic| {
                serde_json::to_string(&serde_json::json!({
                    "id": dynamic.filter_id,
                    "name": dynamic.name,
                    "terms": dynamic.terms,
                }))
            })
            .transpose()?,
    )
    .bind(
        created
            .policy
            .as_ref()
            .map(serde_json::to_string)
            .transpose()?,
    )
    .bind(i64::from(created.retries))
    .execute(&mut **tx)
    .await?;
    let devices = created
        .devices
        .iter()
        .enumerate()
        .map(|(number, device)| {
            vec![
                Param::text(tenant),
                Param::text(id.as_str()),
                Param::Int(Some(number as i64)),
                Param::text(device.as_str()),
            ]
        })
        .collect();
    insert_rows(
        tx,
        "INSERT INTO deployment_devices (tenant, deployment_id, number, device_id)",
        "",
        devices,
    )
    .await?;
    for (number, phase) in created.phases.iter().enumerate() {
        sqlx::query(
            "INSERT INTO deployment_phases (tenant, deployment_id, number, id, batch_size,
                                            start_ts, max_devices, device_count)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0)",
        )
        .bind(tenant)
        .bind(&id)
        .bind(number as i64)
        .bind(phase.id.to_string())
        .bind(phase.batch_size.map(i64::from))
        .bind(stored_time(phase.start_ts))
        .bind(phase.max_devices as i64)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO deployment_artifacts (tenant, deployment_id, artifact_id)
         SELECT tenant, $2, id FROM deployment_known_artifacts WHERE tenant = $1 AND name = $3",
    )
    .bind(tenant)
    .bind(&id)
    .bind(&created.artifact_name)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records the counts the deployment's policy tripped on.
async fn policy_tripped(
    tx: &mut Tx,
    tenant: &str,
    id: events::DeploymentId,
    trip: &PolicyTrip,
) -> anyhow::Result<()> {
    sqlx::query("UPDATE deployments SET policy_trip = $3 WHERE tenant = $1 AND id = $2")
        .bind(tenant)
        .bind(id.to_string())
        .bind(serde_json::to_string(trip)?)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Marks the deployment paused with `cause`, or not paused without one.
async fn paused_as(
    tx: &mut Tx,
    tenant: &str,
    id: events::DeploymentId,
    cause: Option<String>,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE deployments SET paused = $3, pause_cause = $4 WHERE tenant = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id.to_string())
    .bind(i64::from(cause.is_some()))
    .bind(cause)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Every entry not in a final state becomes aborted, in one statement however many there are.
async fn deployment_aborted(
    tx: &mut Tx,
    tenant: &str,
    at: &str,
    aborted: DeploymentAborted,
) -> anyhow::Result<()> {
    let id = aborted.deployment_id.to_string();
    sqlx::query(&format!(
        "UPDATE device_deployments SET status = 'aborted', finished = $3
         WHERE tenant = $1 AND deployment_id = $2 AND status NOT IN ({FINAL})"
    ))
    .bind(tenant)
    .bind(&id)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE deployments SET aborted = 1 WHERE tenant = $1 AND id = $2")
        .bind(tenant)
        .bind(&id)
        .execute(&mut **tx)
        .await?;
    recount(tx, tenant, &id).await?;
    refresh(tx, tenant, &id, at).await
}

/// Remembers the artifact, and adds it to the unfinished deployments of its name, as Mender
/// does when an artifact is uploaded for a running deployment.
async fn artifact_uploaded(
    tx: &mut Tx,
    tenant: &str,
    uploaded: ArtifactUploaded,
) -> anyhow::Result<()> {
    let artifact_id = uploaded.artifact_id.to_string();
    sqlx::query(
        "INSERT INTO deployment_known_artifacts (tenant, id, name, size) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant, id) DO NOTHING",
    )
    .bind(tenant)
    .bind(&artifact_id)
    .bind(&uploaded.name)
    .bind(uploaded.size as i64)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO deployment_artifacts (tenant, deployment_id, artifact_id)
         SELECT tenant, id, $3 FROM deployments
         WHERE tenant = $1 AND artifact_name = $2 AND status <> 'finished'
         ON CONFLICT (tenant, deployment_id, artifact_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(&uploaded.name)
    .bind(&artifact_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

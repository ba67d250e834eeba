//! Deployments, each device's entry in them, and device logs.

use async_trait::async_trait;
use events::deployment::{
    DeploymentAborted, DeploymentCreated, DeviceDeploymentLogSaved, DeviceDeploymentStatus,
    DeviceDeploymentStatusChanged, DeviceJoinedDeployment,
};
use events::{DomainEvent, RecordedEvent};
use sqlx::{Any, Transaction};

use super::stored_time;
use crate::projector::Projection;

pub struct DeploymentsProjection;

type Tx = Transaction<'static, Any>;

/// Mender's derivation: finished once aborted or once every targeted device is in a final
/// state, and then for good; in progress once any device has left `pending`.
const REFRESH_STATUS: &str = "UPDATE deployments SET
        status = CASE
            WHEN status = 'finished' OR aborted = 1 OR finished_count >= max_devices THEN 'finished'
            WHEN started = 1 THEN 'inprogress'
            ELSE 'pending' END,
        finished = CASE
            WHEN finished IS NULL AND (aborted = 1 OR finished_count >= max_devices) THEN $3
            ELSE finished END
    WHERE tenant = $1 AND id = $2";

#[async_trait]
impl Projection for DeploymentsProjection {
    fn name(&self) -> &'static str {
        "deployments"
    }

    async fn apply(&self, tx: &mut Tx, event: &RecordedEvent) -> anyhow::Result<()> {
        let tenant = event.tenant.as_str();
        let at = stored_time(event.metadata.occurred_at);
        match event.decode()? {
            DomainEvent::DeploymentCreated(created) => {
                deployment_created(tx, tenant, created).await
            }
            DomainEvent::DeploymentAborted(aborted) => {
                deployment_aborted(tx, tenant, &at, aborted).await
            }
            DomainEvent::DeviceJoinedDeployment(joined) => {
                device_joined(tx, tenant, &at, joined).await
            }
            DomainEvent::DeviceDeploymentStatusChanged(changed) => {
                status_changed(tx, tenant, &at, changed).await
            }
            DomainEvent::DeviceDeploymentLogSaved(saved) => log_saved(tx, tenant, saved).await,
            _ => Ok(()),
        }
    }
}

async fn deployment_created(
    tx: &mut Tx,
    tenant: &str,
    created: DeploymentCreated,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO deployments (tenant, id, name, artifact_name, created, finished, status,
                                  max_devices, device_count, finished_count, started, aborted,
                                  force_installation, phases)
         VALUES ($1, $2, $3, $4, $5, NULL, 'pending', $6, 0, 0, 0, 0, $7, $8)",
    )
    .bind(tenant)
    .bind(created.deployment_id.to_string())
    .bind(created.name)
    .bind(created.artifact_name)
    .bind(stored_time(created.created))
    .bind(created.devices.len() as i64)
    .bind(i64::from(created.force_installation))
    .bind(serde_json::to_string(&created.phases)?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

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
    refresh_status(tx, tenant, &id, at).await
}

async fn device_joined(
    tx: &mut Tx,
    tenant: &str,
    at: &str,
    joined: DeviceJoinedDeployment,
) -> anyhow::Result<()> {
    let id = joined.deployment_id.to_string();
    let is_final = joined.status.is_final();
    sqlx::query(
        "INSERT INTO device_deployments (tenant, deployment_id, device_id, status, substate,
                                         artifact_id, device_type, installed_artifact_name,
                                         phase, created, finished, has_log)
         VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, $8, $9, $10, 0)",
    )
    .bind(tenant)
    .bind(&id)
    .bind(&joined.device_id)
    .bind(joined.status.as_str())
    .bind(joined.artifact_id.map(|artifact| artifact.to_string()))
    .bind(&joined.device_type)
    .bind(&joined.installed_artifact_name)
    .bind(joined.phase.map(|phase| phase as i64))
    .bind(at)
    .bind(is_final.then_some(at))
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE deployments SET device_count = device_count + 1,
                                finished_count = finished_count + $3,
                                started = CASE WHEN $4 = 1 THEN 1 ELSE started END
         WHERE tenant = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(&id)
    .bind(i64::from(is_final))
    .bind(i64::from(joined.status != DeviceDeploymentStatus::Pending))
    .execute(&mut **tx)
    .await?;
    refresh_status(tx, tenant, &id, at).await
}

async fn status_changed(
    tx: &mut Tx,
    tenant: &str,
    at: &str,
    changed: DeviceDeploymentStatusChanged,
) -> anyhow::Result<()> {
    let id = changed.deployment_id.to_string();
    let previous: Option<String> = sqlx::query_scalar(
        "SELECT status FROM device_deployments
         WHERE tenant = $1 AND deployment_id = $2 AND device_id = $3",
    )
    .bind(tenant)
    .bind(&id)
    .bind(&changed.device_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(previous) = previous.as_deref().and_then(DeviceDeploymentStatus::parse) else {
        anyhow::bail!(
            "status change for {} in {id}, which has no entry",
            changed.device_id
        );
    };
    let becomes_final = changed.status.is_final() && !previous.is_final();
    sqlx::query(
        "UPDATE device_deployments SET status = $4, substate = $5,
                finished = CASE WHEN $6 = 1 THEN $7 ELSE finished END
         WHERE tenant = $1 AND deployment_id = $2 AND device_id = $3",
    )
    .bind(tenant)
    .bind(&id)
    .bind(&changed.device_id)
    .bind(changed.status.as_str())
    .bind(&changed.substate)
    .bind(i64::from(becomes_final))
    .bind(at)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE deployments SET finished_count = finished_count + $3,
                                started = CASE WHEN $4 = 1 THEN 1 ELSE started END
         WHERE tenant = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(&id)
    .bind(i64::from(becomes_final))
    .bind(i64::from(changed.status != DeviceDeploymentStatus::Pending))
    .execute(&mut **tx)
    .await?;
    refresh_status(tx, tenant, &id, at).await
}

async fn log_saved(
    tx: &mut Tx,
    tenant: &str,
    saved: DeviceDeploymentLogSaved,
) -> anyhow::Result<()> {
    let id = saved.deployment_id.to_string();
    sqlx::query(
        "INSERT INTO device_deployment_logs (tenant, deployment_id, device_id, messages)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant, deployment_id, device_id) DO UPDATE SET messages = excluded.messages",
    )
    .bind(tenant)
    .bind(&id)
    .bind(&saved.device_id)
    .bind(serde_json::to_string(&saved.messages)?)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE device_deployments SET has_log = 1
         WHERE tenant = $1 AND deployment_id = $2 AND device_id = $3",
    )
    .bind(tenant)
    .bind(&id)
    .bind(&saved.device_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn refresh_status(tx: &mut Tx, tenant: &str, id: &str, at: &str) -> anyhow::Result<()> {
    sqlx::query(REFRESH_STATUS)
        .bind(tenant)
        .bind(id)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

const FINAL: &str =
    "'success', 'failure', 'noartifact', 'already-installed', 'aborted', 'decommissioned'";

//! Each device's entry in a deployment: joining, status changes, decommissioning and logs.

use events::deployment::{
    DeviceDecommissioned, DeviceDeploymentLogSaved, DeviceDeploymentStatus,
    DeviceDeploymentStatusChanged, DeviceJoinedDeployment,
};
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use super::deployment_status::{count, count_move, refresh, refresh_after_move, Standing, FINAL};

type Tx = Transaction<'static, Any>;

/// Whether the deployment was aborted; an error when the read model does not know it.
async fn is_aborted(tx: &mut Tx, tenant: &str, deployment: &str) -> anyhow::Result<bool> {
    let aborted: Option<i64> =
        sqlx::query_scalar("SELECT aborted FROM deployments WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(deployment)
            .fetch_optional(&mut **tx)
            .await?;
    aborted
        .map(|aborted| aborted == 1)
        .ok_or_else(|| anyhow::anyhow!("device event for unknown deployment {deployment}"))
}

/// Creates the device's entry; `entry_id` (the event's id) names it for good.
pub async fn joined(
    tx: &mut Tx,
    tenant: &str,
    at: &str,
    entry_id: Uuid,
    joined: DeviceJoinedDeployment,
) -> anyhow::Result<()> {
    let id = joined.deployment_id.to_string();
    // The device joins on its own stream, so the join can land after an abort it raced with;
    // the command side then treats the unfinished entry as aborted, and so does this.
    let status = if is_aborted(tx, tenant, &id).await? && !joined.status.is_final() {
        DeviceDeploymentStatus::Aborted
    } else {
        joined.status
    };
    sqlx::query(
        "INSERT INTO device_deployments (tenant, deployment_id, device_id, id, status, substate,
                                         artifact_id, device_type, installed_artifact_name,
                                         phase, created, started, finished, has_log)
         VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, $8, $9, $10, $11, $12, 0)",
    )
    .bind(tenant)
    .bind(&id)
    .bind(&joined.device_id)
    .bind(entry_id.to_string())
    .bind(status.as_str())
    .bind(joined.artifact_id.map(|artifact| artifact.to_string()))
    .bind(&joined.device_type)
    .bind(&joined.installed_artifact_name)
    .bind(joined.phase.map(|phase| phase as i64))
    .bind(at)
    .bind((status != DeviceDeploymentStatus::Pending).then_some(at))
    .bind(status.is_final().then_some(at))
    .execute(&mut **tx)
    .await?;
    // Mender adds the assigned artifact's size once per device that gets it.
    sqlx::query(
        "UPDATE deployments SET device_count = device_count + 1,
                total_size = total_size + COALESCE(
                    (SELECT size FROM deployment_known_artifacts WHERE tenant = $1 AND id = $3), 0)
         WHERE tenant = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(&id)
    .bind(joined.artifact_id.map(|artifact| artifact.to_string()))
    .execute(&mut **tx)
    .await?;
    count(tx, tenant, &id, status, 1).await?;
    refresh(tx, tenant, &id, at).await
}

/// Moves the entry to its new status, keeping the deployment's counts and status in step.
pub async fn status_changed(
    tx: &mut Tx,
    tenant: &str,
    at: &str,
    changed: DeviceDeploymentStatusChanged,
) -> anyhow::Result<()> {
    let id = changed.deployment_id.to_string();
    // The entry and its deployment in one round trip: this runs for every status report.
    let row = sqlx::query(
        "SELECT entry.status AS previous, deployment.status, deployment.aborted,
                deployment.max_devices
         FROM device_deployments entry
         JOIN deployments deployment
           ON deployment.tenant = entry.tenant AND deployment.id = entry.deployment_id
         WHERE entry.tenant = $1 AND entry.deployment_id = $2 AND entry.device_id = $3",
    )
    .bind(tenant)
    .bind(&id)
    .bind(&changed.device_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        anyhow::bail!(
            "status change for {} in {id}, which has no entry",
            changed.device_id
        );
    };
    let previous: String = row.try_get("previous")?;
    let previous = DeviceDeploymentStatus::parse(&previous)
        .ok_or_else(|| anyhow::anyhow!("unknown device status {previous:?}"))?;
    let standing = Standing {
        status: row.try_get("status")?,
        aborted: row.try_get::<i64, _>("aborted")? == 1,
        max_devices: row.try_get("max_devices")?,
    };
    // A report that raced with an abort: the entry stays aborted unless the device really
    // finished, as the command side reads it.
    if !changed.status.is_final() && standing.aborted {
        return Ok(());
    }
    // As in Mender: an empty substate keeps the last one; `started` is when the entry first
    // left pending; `finished` is the time of the latest final status.
    let substate = changed.substate.filter(|substate| !substate.is_empty());
    sqlx::query(
        "UPDATE device_deployments SET status = $4, substate = COALESCE($5, substate),
                started = CASE WHEN started IS NULL AND $4 <> 'pending' THEN $6 ELSE started END,
                finished = CASE WHEN $7 = 1 THEN $6 ELSE finished END
         WHERE tenant = $1 AND deployment_id = $2 AND device_id = $3",
    )
    .bind(tenant)
    .bind(&id)
    .bind(&changed.device_id)
    .bind(changed.status.as_str())
    .bind(substate)
    .bind(at)
    .bind(i64::from(changed.status.is_final()))
    .execute(&mut **tx)
    .await?;
    if previous == changed.status {
        return Ok(());
    }
    count_move(tx, tenant, &id, previous, changed.status).await?;
    refresh_after_move(tx, tenant, &id, at, &standing, (previous, changed.status)).await
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
    for row in unfinished {
        let deployment: String = row.try_get("deployment_id")?;
        let status: String = row.try_get("status")?;
        let previous = DeviceDeploymentStatus::parse(&status)
            .ok_or_else(|| anyhow::anyhow!("unknown device status {status:?}"))?;
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

/// Keeps the device's latest log for the deployment.
pub async fn log_saved(
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

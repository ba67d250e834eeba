//! A deployment's status as Mender derives it, and the per-status device counts it is derived
//! from, kept in `deployment_statistics`.

use events::deployment::DeviceDeploymentStatus;
use sqlx::{Any, Row, Transaction};

type Tx = Transaction<'static, Any>;

/// The SQL list of final device statuses, for `status IN (...)` conditions.
pub const FINAL: &str =
    "'success', 'failure', 'noartifact', 'already-installed', 'aborted', 'decommissioned'";

/// Mender's derivation: finished once aborted or once the devices in final states (less the
/// `retrying` ones, failed with retries left) reach the targeted count, and then for good; in progress while any device is in a status other than
/// `pending` or `decommissioned` (a decommissioned device never started anything); else pending.
pub fn deployment_status(
    current: &str,
    aborted: bool,
    max_devices: i64,
    retrying: i64,
    counts: &[(DeviceDeploymentStatus, i64)],
) -> &'static str {
    let final_devices: i64 = counts
        .iter()
        .filter(|(status, _)| status.is_final())
        .map(|(_, devices)| devices)
        .sum::<i64>()
        - retrying.max(0);
    let started = counts.iter().any(|(status, devices)| {
        *devices > 0
            && !matches!(
                status,
                DeviceDeploymentStatus::Pending | DeviceDeploymentStatus::Decommissioned
            )
    });
    if current == "finished" || aborted || (max_devices > 0 && final_devices >= max_devices) {
        "finished"
    } else if started {
        "inprogress"
    } else {
        "pending"
    }
}

/// Adds `delta` devices to one status of a deployment.
pub async fn count(
    tx: &mut Tx,
    tenant: &str,
    deployment: &str,
    status: DeviceDeploymentStatus,
    delta: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO deployment_statistics (tenant, deployment_id, status, devices)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant, deployment_id, status)
         DO UPDATE SET devices = deployment_statistics.devices + excluded.devices",
    )
    .bind(tenant)
    .bind(deployment)
    .bind(status.as_str())
    .bind(delta)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Counts a deployment's entries afresh, after a change that moved many at once (an abort).
pub async fn recount(tx: &mut Tx, tenant: &str, deployment: &str) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM deployment_statistics WHERE tenant = $1 AND deployment_id = $2")
        .bind(tenant)
        .bind(deployment)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO deployment_statistics (tenant, deployment_id, status, devices)
         SELECT tenant, deployment_id, status, COUNT(*) FROM device_deployments
         WHERE tenant = $1 AND deployment_id = $2
         GROUP BY tenant, deployment_id, status",
    )
    .bind(tenant)
    .bind(deployment)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What deriving a deployment's status needs to know of the deployment itself.
struct Standing {
    status: String,
    aborted: bool,
    max_devices: i64,
    retrying: i64,
}

/// Derives the deployment's status afresh from its counts and stores it if it changed.
pub async fn refresh(tx: &mut Tx, tenant: &str, deployment: &str, at: &str) -> anyhow::Result<()> {
    let Some(row) = sqlx::query(
        "SELECT status, aborted, max_devices, retrying FROM deployments
         WHERE tenant = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(deployment)
    .fetch_optional(&mut **tx)
    .await?
    else {
        // The command side never records this, but a projection must not stall every later
        // event on one that names a deployment it never saw: note it and move on.
        tracing::warn!(
            deployment,
            tenant,
            "event for a deployment the read model does not hold"
        );
        return Ok(());
    };
    let standing = Standing {
        status: row.try_get("status")?,
        aborted: row.try_get::<i64, _>("aborted")? == 1,
        max_devices: row.try_get("max_devices")?,
        retrying: row.try_get("retrying")?,
    };
    settle(tx, tenant, deployment, at, &standing).await
}

async fn settle(
    tx: &mut Tx,
    tenant: &str,
    deployment: &str,
    at: &str,
    standing: &Standing,
) -> anyhow::Result<()> {
    let counts = sqlx::query(
        "SELECT status, devices FROM deployment_statistics
         WHERE tenant = $1 AND deployment_id = $2",
    )
    .bind(tenant)
    .bind(deployment)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|row| -> anyhow::Result<_> {
        let status: String = row.try_get("status")?;
        let status = DeviceDeploymentStatus::parse(&status)
            .ok_or_else(|| anyhow::anyhow!("unknown device status {status:?} in statistics"))?;
        Ok((status, row.try_get::<i64, _>("devices")?))
    })
    .collect::<anyhow::Result<Vec<_>>>()?;
    let status = deployment_status(
        &standing.status,
        standing.aborted,
        standing.max_devices,
        standing.retrying,
        &counts,
    );
    if status == standing.status {
        return Ok(());
    }
    sqlx::query(
        "UPDATE deployments SET status = $3,
                finished = CASE WHEN $3 = 'finished' THEN $4 ELSE finished END
         WHERE tenant = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(deployment)
    .bind(status)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeviceDeploymentStatus::*;

    #[test]
    fn a_deployment_nobody_has_started_is_pending() {
        assert_eq!(deployment_status("pending", false, 3, 0, &[]), "pending");
        assert_eq!(
            deployment_status("pending", false, 3, 0, &[(Pending, 2), (Downloading, 0)]),
            "pending"
        );
    }

    #[test]
    fn any_device_past_pending_makes_it_in_progress_except_a_decommissioned_one() {
        assert_eq!(
            deployment_status("pending", false, 3, 0, &[(Pending, 1), (Rebooting, 1)]),
            "inprogress"
        );
        assert_eq!(
            deployment_status("pending", false, 3, 0, &[(NoArtifact, 1)]),
            "inprogress"
        );
        assert_eq!(
            deployment_status("pending", false, 3, 0, &[(Decommissioned, 1)]),
            "pending"
        );
    }

    #[test]
    fn final_devices_reaching_the_target_or_an_abort_finish_it_for_good() {
        let done = [(Success, 1), (Failure, 1), (Decommissioned, 1)];
        assert_eq!(
            deployment_status("inprogress", false, 3, 0, &done),
            "finished"
        );
        assert_eq!(
            deployment_status("inprogress", false, 4, 0, &done),
            "inprogress"
        );
        assert_eq!(deployment_status("pending", true, 4, 0, &[]), "finished");
        assert_eq!(
            deployment_status("finished", false, 4, 0, &[(Pending, 1)]),
            "finished"
        );
    }

    #[test]
    fn a_failure_with_retries_left_does_not_finish_it() {
        let done = [(Success, 2), (Failure, 1)];
        assert_eq!(
            deployment_status("inprogress", false, 3, 1, &done),
            "inprogress"
        );
        assert_eq!(
            deployment_status("inprogress", false, 3, 0, &done),
            "finished"
        );
    }
}

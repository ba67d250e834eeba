//! Device entries, a device's part in one deployment: a deployment's entries in the order
//! their devices joined or page by page in Mender's order, a device's history across
//! deployments, and the log a device uploaded.

use events::deployment::DeviceDeploymentStatus;
use events::{DeploymentId, TenantId};
use sqlx::AnyPool;

use super::artifacts::Artifact;
use super::sql::Conditions;
use super::Window;

/// A device's entry in a deployment, with the artifact assigned to it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Entry {
    pub deployment_id: String,
    pub device_id: String,
    /// The entry's own id.
    pub entry_id: String,
    pub status: String,
    pub substate: Option<String>,
    pub created: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub device_type: String,
    /// 1 when the device uploaded a log for the deployment, else 0.
    pub has_log: i64,
    /// 1 for the first attempt, one more for each retry.
    pub attempts: i64,
    #[sqlx(flatten)]
    pub artifact: AssignedArtifact,
}

/// The artifact assigned to an entry, as the artifacts read model has it: every column
/// `None` when none is assigned yet or it has been deleted since.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AssignedArtifact {
    artifact_name: Option<String>,
    document: Option<String>,
    description: Option<String>,
    modified: Option<String>,
}

impl AssignedArtifact {
    /// The artifact, if the entry has one.
    pub fn into_artifact(self) -> Option<Artifact> {
        Some(Artifact {
            document: self.document?,
            name: self.artifact_name?,
            description: self.description?,
            modified: self.modified?,
        })
    }
}

/// Where a page of a deployment's entries in joining order ended: the next page starts after
/// this entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedAfter {
    pub created: String,
    pub device_id: String,
}

impl Entry {
    /// The place of this entry in its deployment's joining order.
    pub fn joined(&self) -> JoinedAfter {
        JoinedAfter {
            created: self.created.clone(),
            device_id: self.device_id.clone(),
        }
    }
}

/// Columns [`Entry`] reads, the assigned artifact's from the artifacts read model.
const COLUMNS: &str = "dd.deployment_id, dd.device_id, dd.id AS entry_id, dd.status, \
     dd.substate, dd.created, dd.started, dd.finished, dd.device_type, dd.has_log, \
     dd.attempts, \
     a.name AS artifact_name, a.document, a.description, a.modified";

/// `FROM` clause matching [`COLUMNS`].
const FROM: &str = "device_deployments dd LEFT JOIN artifacts a \
     ON a.tenant = dd.tenant AND a.id = dd.artifact_id";

/// Device statuses in the order of Mender's status numbers, which its device lists sort by.
const MENDER_ORDER: [DeviceDeploymentStatus; 13] = {
    use DeviceDeploymentStatus::*;
    [
        Failure,
        Aborted,
        PauseBeforeInstalling,
        PauseBeforeCommitting,
        PauseBeforeRebooting,
        Downloading,
        Installing,
        Rebooting,
        Pending,
        Success,
        NoArtifact,
        AlreadyInstalled,
        Decommissioned,
    ]
};

/// The device entries of one generation of the read models.
#[derive(Clone)]
pub struct Entries {
    pool: AnyPool,
}

impl Entries {
    pub(super) fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// Up to `limit` of the deployment's entries in the order their devices joined, after
    /// `after` or from the first.
    pub async fn in_joining_order(
        &self,
        tenant: &TenantId,
        deployment: DeploymentId,
        after: Option<&JoinedAfter>,
        limit: usize,
    ) -> Result<Vec<Entry>, sqlx::Error> {
        let after_condition = if after.is_some() {
            " AND (dd.created > $3 OR (dd.created = $3 AND dd.device_id > $4))"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM {FROM}
             WHERE dd.tenant = $1 AND dd.deployment_id = $2{after_condition}
             ORDER BY dd.created, dd.device_id LIMIT {limit}"
        );
        let mut select = sqlx::query_as(&sql)
            .bind(tenant.as_str())
            .bind(deployment.to_string());
        if let Some(after) = after {
            select = select
                .bind(after.created.as_str())
                .bind(after.device_id.as_str());
        }
        select.fetch_all(&self.pool).await
    }

    /// How many of the deployment's entries are in one of `statuses`, or in any.
    pub async fn count(
        &self,
        tenant: &TenantId,
        deployment: DeploymentId,
        statuses: Option<&[DeviceDeploymentStatus]>,
    ) -> Result<i64, sqlx::Error> {
        self.count_where(
            ("dd.deployment_id", &deployment.to_string()),
            tenant,
            statuses,
        )
        .await
    }

    /// A page of those entries in Mender's order: by status number, then device id.
    pub async fn page(
        &self,
        tenant: &TenantId,
        deployment: DeploymentId,
        statuses: Option<&[DeviceDeploymentStatus]>,
        window: Window,
    ) -> Result<Vec<Entry>, sqlx::Error> {
        let order = format!("{}, dd.device_id", status_rank("dd.status"));
        self.page_where(
            ("dd.deployment_id", &deployment.to_string()),
            tenant,
            statuses,
            &order,
            window,
        )
        .await
    }

    /// How many entries the device has across deployments, in one of `statuses` or in any.
    pub async fn count_of_device(
        &self,
        tenant: &TenantId,
        device_id: &str,
        statuses: Option<&[DeviceDeploymentStatus]>,
    ) -> Result<i64, sqlx::Error> {
        self.count_where(("dd.device_id", device_id), tenant, statuses)
            .await
    }

    /// A page of those entries, the device's history: newest first, then by status number,
    /// highest first, as Mender orders it.
    pub async fn history(
        &self,
        tenant: &TenantId,
        device_id: &str,
        statuses: Option<&[DeviceDeploymentStatus]>,
        window: Window,
    ) -> Result<Vec<Entry>, sqlx::Error> {
        let order = format!(
            "dd.created DESC, {} DESC, dd.deployment_id DESC",
            status_rank("dd.status")
        );
        self.page_where(
            ("dd.device_id", device_id),
            tenant,
            statuses,
            &order,
            window,
        )
        .await
    }

    /// The log the device uploaded for the deployment, its messages as JSON. The ids are
    /// taken as given: one that names nothing finds no log.
    pub async fn log(
        &self,
        tenant: &TenantId,
        deployment_id: &str,
        device_id: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT messages FROM device_deployment_logs
             WHERE tenant = $1 AND deployment_id = $2 AND device_id = $3",
        )
        .bind(tenant.as_str())
        .bind(deployment_id)
        .bind(device_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// How many of the tenant's entries have `value` in `column`, in one of `statuses` or any.
    async fn count_where(
        &self,
        (column, value): (&str, &str),
        tenant: &TenantId,
        statuses: Option<&[DeviceDeploymentStatus]>,
    ) -> Result<i64, sqlx::Error> {
        let conditions = status_conditions(statuses);
        let sql = format!(
            "SELECT COUNT(*) FROM device_deployments dd
             WHERE dd.tenant = $1 AND {column} = $2{}",
            conditions.sql
        );
        let mut count = sqlx::query_scalar(&sql).bind(tenant.as_str()).bind(value);
        for status in &conditions.values {
            count = count.bind(status.as_str());
        }
        count.fetch_one(&self.pool).await
    }

    /// A page of the tenant's entries with `value` in `column`, in one of `statuses` or any.
    async fn page_where(
        &self,
        (column, value): (&str, &str),
        tenant: &TenantId,
        statuses: Option<&[DeviceDeploymentStatus]>,
        order: &str,
        window: Window,
    ) -> Result<Vec<Entry>, sqlx::Error> {
        let conditions = status_conditions(statuses);
        let sql = format!(
            "SELECT {COLUMNS} FROM {FROM}
             WHERE dd.tenant = $1 AND {column} = $2{}
             ORDER BY {order} LIMIT {} OFFSET {}",
            conditions.sql, window.limit, window.offset
        );
        let mut select = sqlx::query_as(&sql).bind(tenant.as_str()).bind(value);
        for status in &conditions.values {
            select = select.bind(status.as_str());
        }
        select.fetch_all(&self.pool).await
    }
}

/// `dd.status` among `statuses`, after the two fixed parameters.
fn status_conditions(statuses: Option<&[DeviceDeploymentStatus]>) -> Conditions {
    let mut conditions = Conditions::after(2);
    if let Some(statuses) = statuses {
        conditions.any_of(
            "dd.status",
            statuses.iter().map(|status| status.as_str().to_owned()),
        );
    }
    conditions
}

/// An SQL expression giving an entry's place in [`MENDER_ORDER`].
fn status_rank(column: &str) -> String {
    let cases: Vec<String> = MENDER_ORDER
        .iter()
        .enumerate()
        .map(|(rank, status)| format!("WHEN '{}' THEN {rank}", status.as_str()))
        .collect();
    format!("CASE {column} {} END", cases.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_bound_after_the_tenant_and_the_deployment_or_device() {
        use DeviceDeploymentStatus::*;
        assert_eq!(status_conditions(None), Conditions::after(2));
        let conditions = status_conditions(Some(&[Pending, Failure]));
        assert_eq!(conditions.sql, " AND dd.status IN ($3, $4)");
        assert_eq!(conditions.values, ["pending", "failure"]);
    }

    #[test]
    fn the_rank_follows_menders_status_numbers() {
        let rank = status_rank("dd.status");
        assert!(rank.starts_with("CASE dd.status WHEN 'failure' THEN 0 WHEN 'aborted' THEN 1"));
        assert!(rank.ends_with("WHEN 'decommissioned' THEN 12 END"));
    }
}

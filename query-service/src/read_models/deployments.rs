//! The deployments read model: a tenant's deployments filtered and paged, one deployment, the
//! statistics, phases and artifacts of some, and the devices one targets.

use chrono::{DateTime, Utc};
use events::{DeploymentId, TenantId};
use sqlx::AnyPool;

use super::sql::stored_time;
use super::sql::{contains_pattern, placeholders, Conditions};
use super::Window;

/// A deployment's own row; its statistics, phases and artifacts are rows of their own.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Deployment {
    pub id: String,
    pub name: String,
    pub artifact_name: String,
    pub created: String,
    pub finished: Option<String>,
    /// pending, inprogress or finished.
    pub status: String,
    pub device_count: i64,
    pub max_devices: i64,
    /// 1 when devices install even what they already have, else 0.
    pub force_installation: i64,
    /// Bytes of the artifacts assigned to the devices.
    pub total_size: i64,
    /// The static group it was made for, as a JSON array.
    pub groups: Option<String>,
    /// A dynamic deployment's filter, as JSON.
    pub filter: Option<String>,
    /// 1 while paused.
    pub paused: i64,
    /// Why it is paused, as JSON.
    pub pause_cause: Option<String>,
    /// The failure policy, and the counts it tripped on, as JSON.
    pub policy: Option<String>,
    pub policy_trip: Option<String>,
    /// Retries a device whose attempt failed gets.
    pub retries: i64,
}

/// How many of a deployment's devices are in one status.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Statistic {
    pub deployment_id: String,
    pub status: String,
    pub devices: i64,
}

/// One phase of a phased deployment.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Phase {
    pub deployment_id: String,
    pub id: String,
    pub batch_size: Option<i64>,
    pub start_ts: String,
    /// Devices admitted to the phase so far.
    pub device_count: i64,
}

/// An artifact a deployment may install.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeploymentArtifact {
    pub deployment_id: String,
    pub artifact_id: String,
}

/// A device a deployment targets, numbered from 0 in the order the operator gave them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TargetedDevice {
    pub device_id: String,
    pub number: i64,
}

/// The filters and order of a deployment list.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DeploymentFilter {
    /// Text the name or the artifact name contains, in any case.
    pub search: Option<String>,
    pub created_before: Option<DateTime<Utc>>,
    pub created_after: Option<DateTime<Utc>>,
    /// pending, inprogress or finished.
    pub status: Option<String>,
    /// Only configuration deployments: none here, as every deployment installs software.
    pub configuration: bool,
    /// Oldest first, rather than newest first.
    pub ascending: bool,
}

/// Columns of `deployments` that [`Deployment`] reads.
const COLUMNS: &str = "id, name, artifact_name, created, finished, status, \
     device_count, max_devices, force_installation, total_size, groups, filter, paused, pause_cause, policy, policy_trip, \
     retries";

/// The deployments of one generation of the read models.
#[derive(Clone)]
pub struct Deployments {
    pool: AnyPool,
}

impl Deployments {
    pub(super) fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// How many of the tenant's deployments `filter` lets through.
    pub async fn count(
        &self,
        tenant: &TenantId,
        filter: &DeploymentFilter,
    ) -> Result<i64, sqlx::Error> {
        conditions(filter)
            .count(&self.pool, "deployments", tenant.as_str())
            .await
    }

    /// A page of those deployments, newest first unless `filter` asks for oldest first.
    pub async fn page(
        &self,
        tenant: &TenantId,
        filter: &DeploymentFilter,
        window: Window,
    ) -> Result<Vec<Deployment>, sqlx::Error> {
        let conditions = conditions(filter);
        let direction = if filter.ascending { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT {COLUMNS} FROM deployments WHERE tenant = $1{}
             ORDER BY created {direction}, id {direction} LIMIT {} OFFSET {}",
            conditions.sql, window.limit, window.offset
        );
        let mut page = sqlx::query_as(&sql).bind(tenant.as_str());
        for value in &conditions.values {
            page = page.bind(value.as_str());
        }
        page.fetch_all(&self.pool).await
    }

    /// One deployment of the tenant, if it has it.
    pub async fn find(
        &self,
        tenant: &TenantId,
        id: DeploymentId,
    ) -> Result<Option<Deployment>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM deployments WHERE tenant = $1 AND id = $2"
        ))
        .bind(tenant.as_str())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
    }

    /// Whether the tenant has the deployment.
    pub async fn exists(&self, tenant: &TenantId, id: DeploymentId) -> Result<bool, sqlx::Error> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT id FROM deployments WHERE tenant = $1 AND id = $2")
                .bind(tenant.as_str())
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    /// Those of `ids` the tenant has, in no particular order.
    pub async fn among(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<Deployment>, sqlx::Error> {
        self.of_each(
            tenant,
            ids,
            &format!("SELECT {COLUMNS} FROM deployments WHERE tenant = $1 AND id IN"),
            "",
        )
        .await
    }

    /// Device counts per status of the deployments `ids`, where any device has the status.
    pub async fn statistics(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<Statistic>, sqlx::Error> {
        self.of_each(
            tenant,
            ids,
            "SELECT deployment_id, status, devices FROM deployment_statistics
             WHERE tenant = $1 AND deployment_id IN",
            "",
        )
        .await
    }

    /// The phases of the deployments `ids`, by deployment, each's in order.
    pub async fn phases(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<Phase>, sqlx::Error> {
        self.of_each(
            tenant,
            ids,
            "SELECT deployment_id, id, batch_size, start_ts, device_count
             FROM deployment_phases WHERE tenant = $1 AND deployment_id IN",
            "ORDER BY deployment_id, number",
        )
        .await
    }

    /// The artifacts the deployments `ids` may install, by deployment, then artifact id.
    pub async fn artifacts(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<DeploymentArtifact>, sqlx::Error> {
        self.of_each(
            tenant,
            ids,
            "SELECT deployment_id, artifact_id FROM deployment_artifacts
             WHERE tenant = $1 AND deployment_id IN",
            "ORDER BY deployment_id, artifact_id",
        )
        .await
    }

    /// Up to `limit` of the devices the deployment targets, after number `after`, in order.
    pub async fn targeted_devices(
        &self,
        tenant: &TenantId,
        id: DeploymentId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<TargetedDevice>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT device_id, number FROM deployment_devices
             WHERE tenant = $1 AND deployment_id = $2 AND number > $3
             ORDER BY number LIMIT {limit}"
        ))
        .bind(tenant.as_str())
        .bind(id.to_string())
        .bind(after)
        .fetch_all(&self.pool)
        .await
    }

    /// `{select} ({ids}) {order}`: the rows of several deployments in one query.
    async fn of_each<Row>(
        &self,
        tenant: &TenantId,
        ids: &[String],
        select: &str,
        order: &str,
    ) -> Result<Vec<Row>, sqlx::Error>
    where
        Row: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        // `IN ()` is not SQL, and there is nothing to read.
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("{select} ({}) {order}", placeholders(2, ids.len()));
        let mut query = sqlx::query_as(&sql).bind(tenant.as_str());
        for id in ids {
            query = query.bind(id.as_str());
        }
        query.fetch_all(&self.pool).await
    }
}

/// The filter as conditions after `tenant = $1`, in the order Mender reads the parameters.
fn conditions(filter: &DeploymentFilter) -> Conditions {
    let mut conditions = Conditions::after(1);
    if let Some(search) = &filter.search {
        conditions.bind(
            |n| {
                format!(
                    "(search_name LIKE ${n} ESCAPE '\\' OR search_artifact_name LIKE ${n} ESCAPE '\\')"
                )
            },
            contains_pattern(search),
        );
    }
    for (time, operator) in [(filter.created_before, "<="), (filter.created_after, ">=")] {
        if let Some(time) = time {
            conditions.bind(|n| format!("created {operator} ${n}"), stored_time(time));
        }
    }
    if let Some(status) = &filter.status {
        conditions.bind(|n| format!("status = ${n}"), status.clone());
    }
    if filter.configuration {
        conditions.add("1 = 0");
    }
    conditions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_filter_adds_no_condition() {
        assert_eq!(
            conditions(&DeploymentFilter::default()),
            Conditions::after(1)
        );
    }

    #[test]
    fn filters_become_bound_conditions() {
        let conditions = conditions(&DeploymentFilter {
            search: Some("Spring_1".into()),
            created_after: DateTime::from_timestamp(0, 0),
            status: Some("inprogress".into()),
            ascending: true,
            ..DeploymentFilter::default()
        });
        assert_eq!(
            conditions.values,
            vec![
                "%spring\\_1%".to_owned(),
                "1970-01-01T00:00:00.000000Z".to_owned(),
                "inprogress".to_owned()
            ]
        );
        assert!(conditions.sql.contains("search_artifact_name LIKE $2"));
        assert!(conditions.sql.contains("created >= $3"));
        assert!(conditions.sql.ends_with("status = $4"));
    }

    #[test]
    fn configuration_deployments_match_nothing() {
        let conditions = conditions(&DeploymentFilter {
            configuration: true,
            ..DeploymentFilter::default()
        });
        assert_eq!(conditions.sql, " AND 1 = 0");
        assert!(conditions.values.is_empty());
    }
}

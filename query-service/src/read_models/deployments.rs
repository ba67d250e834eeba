//! The deployments read model: a tenant's deployments filtered and paged, one deployment, the
//! statistics, phases and artifacts of some, and the devices one targets.

use chrono::{DateTime, Utc};
use events::{DeploymentId, TenantId};
use sqlx::AnyPool;

use super::sql::stored_time;
use super::sql::{contains_pattern, placeholders, Conditions};
use super::Window;

/// A deployment with its statistics, phases and artifacts, as the database assembles it: a
/// page of them is one row of JSON (see [`page_sql`]), however many deployments it shows.
#[derive(Debug, Clone, serde::Deserialize)]
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
    /// Devices per status, where any device has it.
    pub statistics: Vec<(String, i64)>,
    /// Its phases in order: id, batch size, start, devices admitted so far.
    pub phases: Vec<(String, Option<i64>, String, i64)>,
    /// The ids of the artifacts it may install, in order.
    pub artifacts: Vec<String>,
}

/// How many of a deployment's devices are in one status.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Statistic {
    pub deployment_id: String,
    pub status: String,
    pub devices: i64,
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

/// `SELECT <total>, <deployments as one JSON array> FROM (<rows>) d`: the rows of
/// `deployments` that `rows` selects (as `d`, in their order) assembled with their
/// statistics, phases and artifacts into one JSON text, and `total` beside it. One row
/// whatever the page holds: the embedded engine hands each row across threads, and the
/// page's cost was those hand-offs, five queries' worth. Each engine builds JSON in its own
/// words.
fn page_sql(postgres: bool, total: &str, rows: &str, order: &str) -> String {
    // The statement's shape is one; the engines differ only in what their JSON functions are
    // called, in how an empty aggregate reads (PostgreSQL: NULL), and in SQLite losing a
    // subquery's JSON type unless `json()` restores it.
    let (object, array) = match postgres {
        true => ("json_build_object", "json_build_array"),
        false => ("json_object", "json_array"),
    };
    let list = |items: &str| match postgres {
        true => format!("COALESCE(json_agg({items}), '[]')"),
        false => format!("json_group_array({items})"),
    };
    let nested = |query: String| match postgres {
        true => format!("({query})"),
        false => format!("json(({query}))"),
    };
    let statistics = nested(format!(
        "SELECT {} FROM deployment_statistics s
         WHERE s.tenant = d.tenant AND s.deployment_id = d.id",
        list(&format!("{array}(s.status, s.devices)"))
    ));
    let phases = nested(format!(
        "SELECT {} FROM deployment_phases p
         WHERE p.tenant = d.tenant AND p.deployment_id = d.id",
        list(&format!(
            "{array}(p.id, p.batch_size, p.start_ts, p.device_count) ORDER BY p.number"
        ))
    ));
    let artifacts = nested(format!(
        "SELECT {} FROM deployment_artifacts a
         WHERE a.tenant = d.tenant AND a.deployment_id = d.id",
        list("a.artifact_id ORDER BY a.artifact_id")
    ));
    let page = list(&format!(
        "{object}(
           'id', d.id, 'name', d.name, 'artifact_name', d.artifact_name,
           'created', d.created, 'finished', d.finished, 'status', d.status,
           'device_count', d.device_count, 'max_devices', d.max_devices,
           'force_installation', d.force_installation, 'total_size', d.total_size,
           'groups', d.groups, 'filter', d.filter, 'paused', d.paused,
           'pause_cause', d.pause_cause, 'policy', d.policy, 'policy_trip', d.policy_trip,
           'retries', d.retries,
           'statistics', {statistics}, 'phases', {phases}, 'artifacts', {artifacts}
         ) ORDER BY {order}"
    ));
    let page = match postgres {
        true => format!("{page}::text"),
        false => page,
    };
    format!("SELECT {total} AS total, {page} AS page FROM ({rows}) d")
}

/// The deployments of one generation of the read models.
#[derive(Clone)]
pub struct Deployments {
    pool: AnyPool,
    /// Which engine's SQL the pool speaks, where the two differ.
    postgres: bool,
}

impl Deployments {
    pub(super) fn new(pool: AnyPool, postgres: bool) -> Self {
        Self { pool, postgres }
    }

    /// A page of those deployments `filter` lets through, newest first unless it asks for
    /// oldest first, and how many it lets through in all: one query.
    pub async fn page(
        &self,
        tenant: &TenantId,
        filter: &DeploymentFilter,
        window: Window,
    ) -> Result<(i64, Vec<Deployment>), sqlx::Error> {
        let conditions = conditions(filter);
        let direction = if filter.ascending { "ASC" } else { "DESC" };
        let rows = format!(
            "SELECT * FROM deployments WHERE tenant = $1{}
             ORDER BY created {direction}, id {direction} LIMIT {} OFFSET {}",
            conditions.sql, window.limit, window.offset
        );
        let total = format!(
            "(SELECT COUNT(*) FROM deployments WHERE tenant = $1{})",
            conditions.sql
        );
        let order = format!("d.created {direction}, d.id {direction}");
        let sql = page_sql(self.postgres, &total, &rows, &order);
        let values =
            std::iter::once(tenant.as_str()).chain(conditions.values.iter().map(String::as_str));
        self.assembled(&sql, values).await
    }

    /// One deployment of the tenant, if it has it.
    pub async fn find(
        &self,
        tenant: &TenantId,
        id: DeploymentId,
    ) -> Result<Option<Deployment>, sqlx::Error> {
        let sql = page_sql(
            self.postgres,
            "0",
            "SELECT * FROM deployments WHERE tenant = $1 AND id = $2",
            "d.id",
        );
        let id = id.to_string();
        let (_, mut found) = self.assembled(&sql, [tenant.as_str(), &id]).await?;
        Ok(found.pop())
    }

    /// Runs a [`page_sql`] query and reads its row.
    async fn assembled<'q>(
        &self,
        sql: &'q str,
        values: impl IntoIterator<Item = &'q str>,
    ) -> Result<(i64, Vec<Deployment>), sqlx::Error> {
        let mut query = sqlx::query_as::<_, (i64, String)>(sql);
        for value in values {
            query = query.bind(value);
        }
        let (total, page) = query.fetch_one(&self.pool).await?;
        let deployments =
            serde_json::from_str(&page).map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
        Ok((total, deployments))
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
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = format!(
            "SELECT * FROM deployments WHERE tenant = $1 AND id IN ({})",
            placeholders(2, ids.len())
        );
        let sql = page_sql(self.postgres, "0", &rows, "d.id");
        let values = std::iter::once(tenant.as_str()).chain(ids.iter().map(String::as_str));
        Ok(self.assembled(&sql, values).await?.1)
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

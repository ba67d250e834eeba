//! The artifacts read model: a tenant's artifacts as a list, filtered pages, one artifact,
//! releases (artifacts grouped by name), and the bytes its artifact files take.

use events::{ArtifactId, TenantId};
use sqlx::AnyPool;

use super::sql::{contains_pattern, Conditions};
use super::Window;

/// An artifact: the columns lists filter, sort and page by, beside the parsed artifact.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Artifact {
    /// The release the artifact belongs to.
    pub name: String,
    pub description: String,
    /// When it was uploaded or last edited, as stored text.
    pub modified: String,
    /// The parsed artifact, as JSON.
    pub document: String,
}

/// Filters of the artifact pages: case-insensitive substrings, as Mender matches.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ArtifactFilter {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Matches any of the device types the artifact is compatible with.
    pub device_type: Option<String>,
}

/// A column artifact pages may be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactField {
    Name,
    Modified,
}

/// An order of artifact pages asked for, instead of the default (name, then modified).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArtifactSort {
    pub field: ArtifactField,
    pub descending: bool,
}

const COLUMNS: &str = "name, description, modified, document";

/// The artifacts of one generation of the read models.
#[derive(Clone)]
pub struct Artifacts {
    pool: AnyPool,
}

impl Artifacts {
    pub(super) fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// Every artifact of the tenant, by release name, then modified.
    pub async fn all(&self, tenant: &TenantId) -> Result<Vec<Artifact>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM artifacts WHERE tenant = $1 ORDER BY name, modified, id"
        ))
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await
    }

    /// How many of the tenant's artifacts `filter` lets through.
    pub async fn count(
        &self,
        tenant: &TenantId,
        filter: &ArtifactFilter,
    ) -> Result<i64, sqlx::Error> {
        conditions(filter)
            .count(&self.pool, "artifacts", tenant.as_str())
            .await
    }

    /// A page of the artifacts `filter` lets through, in the order `sort` asks for or by
    /// name, then modified.
    pub async fn page(
        &self,
        tenant: &TenantId,
        filter: &ArtifactFilter,
        sort: Option<ArtifactSort>,
        window: Window,
    ) -> Result<Vec<Artifact>, sqlx::Error> {
        let conditions = conditions(filter);
        let sql = format!(
            "SELECT {COLUMNS} FROM artifacts WHERE tenant = $1{}
             ORDER BY {} LIMIT {} OFFSET {}",
            conditions.sql,
            order(sort),
            window.limit,
            window.offset
        );
        let mut page = sqlx::query_as(&sql).bind(tenant.as_str());
        for value in &conditions.values {
            page = page.bind(value.as_str());
        }
        page.fetch_all(&self.pool).await
    }

    /// One artifact of the tenant, if it has it.
    pub async fn find(
        &self,
        tenant: &TenantId,
        id: ArtifactId,
    ) -> Result<Option<Artifact>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM artifacts WHERE tenant = $1 AND id = $2"
        ))
        .bind(tenant.as_str())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
    }

    /// The artifacts of one release, oldest first.
    pub async fn of_release(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Vec<Artifact>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM artifacts WHERE tenant = $1 AND name = $2 ORDER BY modified, id"
        ))
        .bind(tenant.as_str())
        .bind(name)
        .fetch_all(&self.pool)
        .await
    }

    /// How many releases the tenant has whose name contains `name_contains`, in any case.
    pub async fn count_releases(
        &self,
        tenant: &TenantId,
        name_contains: Option<&str>,
    ) -> Result<i64, sqlx::Error> {
        let conditions = release_conditions(name_contains);
        let sql = format!(
            "SELECT COUNT(DISTINCT name) FROM artifacts WHERE tenant = $1{}",
            conditions.sql
        );
        let mut count = sqlx::query_scalar(&sql).bind(tenant.as_str());
        for value in &conditions.values {
            count = count.bind(value.as_str());
        }
        count.fetch_one(&self.pool).await
    }

    /// A page of the names of those releases, in name order.
    pub async fn release_names(
        &self,
        tenant: &TenantId,
        name_contains: Option<&str>,
        window: Window,
    ) -> Result<Vec<String>, sqlx::Error> {
        let conditions = release_conditions(name_contains);
        let sql = format!(
            "SELECT DISTINCT name FROM artifacts WHERE tenant = $1{}
             ORDER BY name LIMIT {} OFFSET {}",
            conditions.sql, window.limit, window.offset
        );
        let mut names = sqlx::query_scalar(&sql).bind(tenant.as_str());
        for value in &conditions.values {
            names = names.bind(value.as_str());
        }
        names.fetch_all(&self.pool).await
    }

    /// Bytes the tenant's artifact files take: 0 before its first upload.
    pub async fn storage_usage(&self, tenant: &TenantId) -> Result<i64, sqlx::Error> {
        let usage: Option<i64> =
            sqlx::query_scalar("SELECT bytes FROM storage_usage WHERE tenant = $1")
                .bind(tenant.as_str())
                .fetch_optional(&self.pool)
                .await?;
        Ok(usage.unwrap_or(0))
    }
}

fn conditions(filter: &ArtifactFilter) -> Conditions {
    let mut conditions = Conditions::after(1);
    for (text, column) in [
        (&filter.name, "name"),
        (&filter.description, "description"),
        (&filter.device_type, "device_types"),
    ] {
        if let Some(text) = text {
            conditions.bind(
                |n| format!("LOWER({column}) LIKE ${n} ESCAPE '\\'"),
                contains_pattern(text),
            );
        }
    }
    conditions
}

fn release_conditions(name_contains: Option<&str>) -> Conditions {
    let mut conditions = Conditions::after(1);
    if let Some(name) = name_contains {
        conditions.bind(
            |n| format!("LOWER(name) LIKE ${n} ESCAPE '\\'"),
            contains_pattern(name),
        );
    }
    conditions
}

fn order(sort: Option<ArtifactSort>) -> String {
    let Some(ArtifactSort { field, descending }) = sort else {
        return "name ASC, modified ASC, id ASC".to_owned();
    };
    let column = match field {
        ArtifactField::Name => "name",
        ArtifactField::Modified => "modified",
    };
    let direction = if descending { "DESC" } else { "ASC" };
    format!("{column} {direction}, id ASC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_bind_lowercase_patterns_in_parameter_order() {
        let conditions = conditions(&ArtifactFilter {
            name: Some("Release_1".into()),
            description: None,
            device_type: Some("Pi".into()),
        });
        assert_eq!(
            conditions.sql,
            " AND LOWER(name) LIKE $2 ESCAPE '\\' AND LOWER(device_types) LIKE $3 ESCAPE '\\'"
        );
        assert_eq!(conditions.values, ["%release\\_1%", "%pi%"]);
    }

    #[test]
    fn a_sort_asked_for_breaks_ties_by_id_only() {
        assert_eq!(order(None), "name ASC, modified ASC, id ASC");
        let sort = ArtifactSort {
            field: ArtifactField::Modified,
            descending: true,
        };
        assert_eq!(order(Some(sort)), "modified DESC, id ASC");
    }
}

//! The inventory read model: each device's reported attributes, tags and group, read beside
//! the devices of admission to make Mender's inventory devices.

use events::TenantId;
use sqlx::AnyPool;

/// One device's inventory row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InventoryRow {
    pub device_id: String,
    /// JSON arrays of attributes.
    pub attributes: String,
    pub tags: String,
    pub grp: Option<String>,
    pub tag_revision: i64,
    pub created_ts: String,
    pub updated_ts: String,
}

/// A saved filter.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FilterRow {
    pub id: String,
    pub name: String,
    /// JSON array of predicates.
    pub terms: String,
}

const COLUMNS: &str = "device_id, attributes, tags, grp, tag_revision, created_ts, updated_ts";

/// The inventory of one generation of the read models.
#[derive(Clone)]
pub struct Inventory {
    pool: AnyPool,
}

impl Inventory {
    pub(super) fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// Every inventoried device of the tenant.
    pub async fn all(&self, tenant: &TenantId) -> Result<Vec<InventoryRow>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM inventory WHERE tenant = $1"
        ))
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await
    }

    /// The inventoried devices among `ids`, in no particular order.
    pub async fn among(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<InventoryRow>, sqlx::Error> {
        let mut conditions = super::sql::Conditions::after(1);
        conditions.any_of("device_id", ids.iter().cloned());
        let sql = format!(
            "SELECT {COLUMNS} FROM inventory WHERE tenant = $1{}",
            conditions.sql
        );
        let mut query = sqlx::query_as(&sql).bind(tenant.as_str());
        for id in &conditions.values {
            query = query.bind(id.as_str());
        }
        query.fetch_all(&self.pool).await
    }

    pub async fn one(
        &self,
        tenant: &TenantId,
        device: &str,
    ) -> Result<Option<InventoryRow>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM inventory WHERE tenant = $1 AND device_id = $2"
        ))
        .bind(tenant.as_str())
        .bind(device)
        .fetch_optional(&self.pool)
        .await
    }

    /// The groups that have devices (with `status`, when given), in no particular order.
    pub async fn groups(
        &self,
        tenant: &TenantId,
        status: Option<&str>,
    ) -> Result<Vec<String>, sqlx::Error> {
        let rows: Vec<(String,)> = match status {
            None => {
                sqlx::query_as(
                    "SELECT DISTINCT grp FROM inventory WHERE tenant = $1 AND grp IS NOT NULL",
                )
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await?
            }
            Some(status) => {
                sqlx::query_as(
                    "SELECT DISTINCT i.grp FROM inventory i
                     JOIN devices d ON d.tenant = i.tenant AND d.id = i.device_id
                     WHERE i.tenant = $1 AND i.grp IS NOT NULL AND d.status = $2",
                )
                .bind(tenant.as_str())
                .bind(status)
                .fetch_all(&self.pool)
                .await?
            }
        };
        Ok(rows.into_iter().map(|(group,)| group).collect())
    }

    /// A page of the saved filters, by name.
    pub async fn filters(
        &self,
        tenant: &TenantId,
        window: super::Window,
    ) -> Result<Vec<FilterRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, name, terms FROM inventory_filters WHERE tenant = $1
             ORDER BY name, id LIMIT $2 OFFSET $3",
        )
        .bind(tenant.as_str())
        .bind(window.limit)
        .bind(window.offset)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn filter(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<FilterRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, name, terms FROM inventory_filters WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }
}

//! The devices read model (device admission): a tenant's devices, filtered pages of them,
//! one device with its auth sets, counts by status.

use events::TenantId;
use sqlx::AnyPool;

use super::sql::Conditions;
use super::Window;

/// A device as deviceauth shows it, without its auth sets.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Device {
    pub id: String,
    pub status: String,
    /// The identity attributes, as JSON.
    pub identity_data: String,
    pub created_ts: String,
    pub updated_ts: String,
    pub check_in_time: Option<String>,
}

/// One (identity, key) pair of a device.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuthSet {
    pub id: String,
    pub device_id: String,
    pub identity_data: String,
    pub pubkey: String,
    pub status: String,
    pub ts: String,
}

/// Which devices a list shows: any of these statuses and any of these ids (none: all).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DeviceFilter {
    pub statuses: Vec<String>,
    pub ids: Vec<String>,
}

const DEVICE_COLUMNS: &str = "id, status, identity_data, created_ts, updated_ts, check_in_time";
const SET_COLUMNS: &str = "id, device_id, identity_data, pubkey, status, ts";

/// The devices of one generation of the read models.
#[derive(Clone)]
pub struct Devices {
    pool: AnyPool,
}

impl Devices {
    pub(super) fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    fn conditions(filter: &DeviceFilter) -> Conditions {
        let mut conditions = Conditions::after(1);
        if !filter.statuses.is_empty() {
            conditions.any_of("status", filter.statuses.iter().cloned());
        }
        if !filter.ids.is_empty() {
            conditions.any_of("id", filter.ids.iter().cloned());
        }
        conditions
    }

    /// A page of the devices `filter` lets through, oldest first.
    pub async fn page(
        &self,
        tenant: &TenantId,
        filter: &DeviceFilter,
        window: Window,
    ) -> Result<Vec<Device>, sqlx::Error> {
        let conditions = Self::conditions(filter);
        let next = conditions.values.len() + 2;
        let sql = format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE tenant = $1{}
             ORDER BY created_ts, id LIMIT ${next} OFFSET ${}",
            conditions.sql,
            next + 1
        );
        let mut query = sqlx::query_as(&sql).bind(tenant.as_str());
        for value in &conditions.values {
            query = query.bind(value.as_str());
        }
        query
            .bind(window.limit)
            .bind(window.offset)
            .fetch_all(&self.pool)
            .await
    }

    /// How many devices the tenant has in `status`, or in all, from the counts the
    /// projection keeps: counting a status of a large fleet row by row is what the console
    /// cannot wait for on every page.
    pub async fn count(&self, tenant: &TenantId, status: Option<&str>) -> Result<i64, sqlx::Error> {
        // A status no device holds has no row; the sum of none is NULL. The cast keeps
        // PostgreSQL's sum of bigints (numeric) a bigint.
        const SUM: &str = "SELECT CAST(COALESCE(SUM(devices), 0) AS BIGINT) FROM device_counts";
        let sql = match status {
            Some(_) => format!("{SUM} WHERE tenant = $1 AND status = $2"),
            None => format!("{SUM} WHERE tenant = $1"),
        };
        let mut query = sqlx::query_scalar(&sql).bind(tenant.as_str());
        if let Some(status) = status {
            query = query.bind(status);
        }
        query.fetch_one(&self.pool).await
    }

    /// Every device of the tenant, oldest first.
    pub async fn all(&self, tenant: &TenantId) -> Result<Vec<Device>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE tenant = $1 ORDER BY created_ts, id"
        ))
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await
    }

    pub async fn one(&self, tenant: &TenantId, id: &str) -> Result<Option<Device>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE tenant = $1 AND id = $2"
        ))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// The auth sets of `devices`, each device's oldest first.
    pub async fn auth_sets(
        &self,
        tenant: &TenantId,
        devices: &[String],
    ) -> Result<Vec<AuthSet>, sqlx::Error> {
        if devices.is_empty() {
            return Ok(Vec::new());
        }
        let mut conditions = Conditions::after(1);
        conditions.any_of("device_id", devices.iter().cloned());
        let sql = format!(
            "SELECT {SET_COLUMNS} FROM auth_sets WHERE tenant = $1{} ORDER BY device_id, ts, id",
            conditions.sql
        );
        let mut query = sqlx::query_as(&sql).bind(tenant.as_str());
        for value in &conditions.values {
            query = query.bind(value.as_str());
        }
        query.fetch_all(&self.pool).await
    }

    pub async fn auth_set(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<AuthSet>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {SET_COLUMNS} FROM auth_sets WHERE tenant = $1 AND id = $2"
        ))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }
}

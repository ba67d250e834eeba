//! Devices and their auth sets (device admission), with each device's status the strongest
//! of its sets' statuses, as deviceauth aggregates it, and how many devices each status
//! holds; and each device's inventory, in its own file.

use async_trait::async_trait;
use events::admission::AuthSetStatus;
use events::{DomainEvent, RecordedEvent};
use sqlx::{Any, Transaction};

use super::attribute_index::{index_admission, index_inventory};
use super::stored_time;
use crate::projector::Projection;

pub struct DevicesProjection;

type Tx = Transaction<'static, Any>;

#[async_trait]
impl Projection for DevicesProjection {
    fn name(&self) -> &'static str {
        "devices"
    }

    async fn apply(&self, tx: &mut Tx, events: &[RecordedEvent]) -> anyhow::Result<()> {
        for event in events {
            apply_one(tx, event).await?;
            // The attribute index follows the device the event changed, named by its stream
            // (`devauth-<id>`, `inventory-<id>`).
            let device = event.stream.as_str().split_once('-').map(|(_, id)| id);
            let tenant = event.tenant.as_str();
            match (event.stream.category(), device) {
                ("devauth", Some(device)) => index_admission(tx, tenant, device).await?,
                ("inventory", Some(device)) => index_inventory(tx, tenant, device).await?,
                _ => {}
            }
        }
        Ok(())
    }
}

async fn apply_one(tx: &mut Tx, event: &RecordedEvent) -> anyhow::Result<()> {
    match event.stream.category() {
        "devauth" => {}
        "inventory" => return super::inventory::apply(tx, event).await,
        "filters" => return super::inventory::apply_filter(tx, event).await,
        _ => return Ok(()),
    }
    let tenant = event.tenant.as_str();
    let at = stored_time(event.metadata.occurred_at);
    match event.decode()? {
        DomainEvent::AuthSetAdded(added) => {
            let identity = serde_json::to_string(&added.identity_data)?;
            let inserted = sqlx::query(
                "INSERT INTO devices (tenant, id, status, identity_data, created_ts, updated_ts)
                 VALUES ($1, $2, $3, $4, $5, $5)
                 ON CONFLICT (tenant, id) DO NOTHING",
            )
            .bind(tenant)
            .bind(&added.device_id)
            .bind(added.status.as_str())
            .bind(&identity)
            .bind(&at)
            .execute(&mut **tx)
            .await?;
            // A further set of a known device adds no device.
            if inserted.rows_affected() == 1 {
                count_devices(tx, tenant, added.status.as_str(), 1).await?;
            }
            sqlx::query(
                "INSERT INTO auth_sets (tenant, id, device_id, identity_data, pubkey, status, ts)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (tenant, id) DO NOTHING",
            )
            .bind(tenant)
            .bind(added.auth_set_id.to_string())
            .bind(&added.device_id)
            .bind(&identity)
            .bind(&added.pubkey)
            .bind(added.status.as_str())
            .bind(&at)
            .execute(&mut **tx)
            .await?;
            device_status(tx, tenant, &added.device_id, &at).await
        }
        DomainEvent::AuthSetStatusChanged(changed) => {
            sqlx::query("UPDATE auth_sets SET status = $3 WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(changed.auth_set_id.to_string())
                .bind(changed.status.as_str())
                .execute(&mut **tx)
                .await?;
            device_status(tx, tenant, &changed.device_id, &at).await
        }
        DomainEvent::AuthSetDismissed(dismissed) => {
            let set = dismissed.auth_set_id.to_string();
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM auth_sets WHERE tenant = $1 AND id = $2")
                    .bind(tenant)
                    .bind(&set)
                    .fetch_optional(&mut **tx)
                    .await?;
            sqlx::query("DELETE FROM auth_sets WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(&set)
                .execute(&mut **tx)
                .await?;
            let remaining: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM auth_sets WHERE tenant = $1 AND device_id = $2",
            )
            .bind(tenant)
            .bind(&dismissed.device_id)
            .fetch_one(&mut **tx)
            .await?;
            // As deviceauth does: a device that only ever was preauthorized goes with its
            // last set; any other stays, `noauth` when it has no set left.
            if remaining == 0 && status.as_deref() == Some(AuthSetStatus::Preauthorized.as_str()) {
                return remove_device(tx, tenant, &dismissed.device_id).await;
            }
            device_status(tx, tenant, &dismissed.device_id, &at).await
        }
        DomainEvent::DeviceRemoved(removed) => remove_device(tx, tenant, &removed.device_id).await,
        DomainEvent::DeviceTokenIssued(issued) => {
            sqlx::query("UPDATE devices SET check_in_time = $3 WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(&issued.device_id)
                .bind(&at)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }
        _ => Ok(()),
    }
}

async fn remove_device(tx: &mut Tx, tenant: &str, device: &str) -> anyhow::Result<()> {
    if let Some(status) = status_of(tx, tenant, device).await? {
        count_devices(tx, tenant, &status, -1).await?;
    }
    for table in [
        "DELETE FROM auth_sets WHERE tenant = $1 AND device_id = $2",
        "DELETE FROM devices WHERE tenant = $1 AND id = $2",
    ] {
        sqlx::query(table)
            .bind(tenant)
            .bind(device)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Sets the device's status from its sets' and, when it changed, its `updated_ts`.
async fn device_status(tx: &mut Tx, tenant: &str, device: &str, at: &str) -> anyhow::Result<()> {
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM auth_sets WHERE tenant = $1 AND device_id = $2")
            .bind(tenant)
            .bind(device)
            .fetch_all(&mut **tx)
            .await?;
    let status = statuses
        .iter()
        .filter_map(|status| AuthSetStatus::parse(status))
        .max_by_key(|status| status.strength())
        .map_or("noauth", AuthSetStatus::as_str);
    // The status it leaves, to move it between the counts: read before the update, as
    // neither engine's RETURNING gives a row's old values.
    let Some(previous) = status_of(tx, tenant, device).await? else {
        return Ok(());
    };
    if previous == status {
        return Ok(());
    }
    sqlx::query("UPDATE devices SET status = $3, updated_ts = $4 WHERE tenant = $1 AND id = $2")
        .bind(tenant)
        .bind(device)
        .bind(status)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    count_devices(tx, tenant, &previous, -1).await?;
    count_devices(tx, tenant, status, 1).await
}

/// The status of a device, `None` when it is not there.
async fn status_of(tx: &mut Tx, tenant: &str, device: &str) -> anyhow::Result<Option<String>> {
    let status = sqlx::query_scalar("SELECT status FROM devices WHERE tenant = $1 AND id = $2")
        .bind(tenant)
        .bind(device)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(status)
}

/// Adds `change` (+1 or -1) to the devices the tenant has in `status`. A count that falls
/// to 0 goes, so the table holds what counting the devices table gives (and what the
/// migration that made it filled it with), whatever happened before.
async fn count_devices(tx: &mut Tx, tenant: &str, status: &str, change: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO device_counts (tenant, status, devices) VALUES ($1, $2, $3)
         ON CONFLICT (tenant, status) DO UPDATE SET devices = device_counts.devices + excluded.devices",
    )
    .bind(tenant)
    .bind(status)
    .bind(change)
    .execute(&mut **tx)
    .await?;
    if change < 0 {
        sqlx::query("DELETE FROM device_counts WHERE tenant = $1 AND status = $2 AND devices = 0")
            .bind(tenant)
            .bind(status)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

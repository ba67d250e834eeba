//! Each device's inventory row: its reported attributes, its tags and its group, kept by the
//! devices projection beside the devices themselves, so a device and its inventory are always
//! at the same point of the log.

use std::collections::BTreeMap;

use events::inventory::{upsert, Attribute};
use events::{DomainEvent, RecordedEvent};
use sqlx::{Any, Row, Transaction};

use super::stored_time;

type Tx = Transaction<'static, Any>;

/// One device's row as the projection changes it.
#[derive(Default)]
struct DeviceInventory {
    attributes: BTreeMap<String, Attribute>,
    tags: BTreeMap<String, Attribute>,
    group: Option<String>,
    tag_revision: i64,
    created_ts: Option<String>,
}

fn by_name(text: &str) -> anyhow::Result<BTreeMap<String, Attribute>> {
    let list: Vec<Attribute> = serde_json::from_str(text)?;
    Ok(list
        .into_iter()
        .map(|attribute| (attribute.name.clone(), attribute))
        .collect())
}

async fn load(tx: &mut Tx, tenant: &str, device: &str) -> anyhow::Result<DeviceInventory> {
    let row = sqlx::query(
        "SELECT attributes, tags, grp, tag_revision, created_ts FROM inventory
         WHERE tenant = $1 AND device_id = $2",
    )
    .bind(tenant)
    .bind(device)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(DeviceInventory::default());
    };
    Ok(DeviceInventory {
        attributes: by_name(row.try_get("attributes")?)?,
        tags: by_name(row.try_get("tags")?)?,
        group: row.try_get("grp")?,
        tag_revision: row.try_get("tag_revision")?,
        created_ts: Some(row.try_get("created_ts")?),
    })
}

async fn store(
    tx: &mut Tx,
    tenant: &str,
    device: &str,
    row: DeviceInventory,
    at: &str,
) -> anyhow::Result<()> {
    let list = |map: BTreeMap<String, Attribute>| {
        serde_json::to_string(&map.into_values().collect::<Vec<_>>())
    };
    sqlx::query(
        "INSERT INTO inventory (tenant, device_id, attributes, tags, grp, tag_revision,
                                created_ts, updated_ts)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (tenant, device_id) DO UPDATE SET
             attributes = excluded.attributes, tags = excluded.tags, grp = excluded.grp,
             tag_revision = excluded.tag_revision, updated_ts = excluded.updated_ts",
    )
    .bind(tenant)
    .bind(device)
    .bind(list(row.attributes)?)
    .bind(list(row.tags)?)
    .bind(row.group)
    .bind(row.tag_revision)
    .bind(row.created_ts.as_deref().unwrap_or(at))
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Applies one event of an `inventory-<id>` stream.
pub(super) async fn apply(tx: &mut Tx, event: &RecordedEvent) -> anyhow::Result<()> {
    let tenant = event.tenant.as_str();
    let at = stored_time(event.metadata.occurred_at);
    let decoded = event.decode()?;
    let device = match &decoded {
        DomainEvent::InventoryReported(e) => &e.device_id,
        DomainEvent::InventoryCleared(e) => &e.device_id,
        DomainEvent::DeviceTagsSet(e) => &e.device_id,
        DomainEvent::DeviceGroupAssigned(e) => &e.device_id,
        DomainEvent::DeviceGroupLeft(e) => &e.device_id,
        DomainEvent::InventoryRemoved(removed) => {
            sqlx::query("DELETE FROM inventory WHERE tenant = $1 AND device_id = $2")
                .bind(tenant)
                .bind(&removed.device_id)
                .execute(&mut **tx)
                .await?;
            return Ok(());
        }
        _ => return Ok(()),
    }
    .clone();
    let mut row = load(tx, tenant, &device).await?;
    match decoded {
        DomainEvent::InventoryReported(reported) => {
            upsert(&mut row.attributes, &reported.attributes, reported.replace);
        }
        DomainEvent::InventoryCleared(_) => row.attributes.clear(),
        DomainEvent::DeviceTagsSet(set) => {
            upsert(&mut row.tags, &set.tags, set.replace);
            row.tag_revision += 1;
        }
        DomainEvent::DeviceGroupAssigned(assigned) => row.group = Some(assigned.group),
        DomainEvent::DeviceGroupLeft(left) if row.group.as_deref() == Some(left.group.as_str()) => {
            row.group = None;
        }
        _ => {}
    }
    store(tx, tenant, &device, row, &at).await
}

/// Applies one event of the tenant's `filters` stream.
pub(super) async fn apply_filter(tx: &mut Tx, event: &RecordedEvent) -> anyhow::Result<()> {
    let tenant = event.tenant.as_str();
    match event.decode()? {
        DomainEvent::FilterSaved(saved) => {
            sqlx::query(
                "INSERT INTO inventory_filters (tenant, id, name, terms, created_ts)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, id) DO NOTHING",
            )
            .bind(tenant)
            .bind(saved.filter_id.to_string())
            .bind(&saved.name)
            .bind(serde_json::to_string(&saved.terms)?)
            .bind(stored_time(event.metadata.occurred_at))
            .execute(&mut **tx)
            .await?;
        }
        DomainEvent::FilterDeleted(deleted) => {
            sqlx::query("DELETE FROM inventory_filters WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(deleted.filter_id.to_string())
                .execute(&mut **tx)
                .await?;
        }
        _ => {}
    }
    Ok(())
}

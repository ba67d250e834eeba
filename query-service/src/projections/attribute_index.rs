//! Keeps the attribute index (`read_models::attribute_index`) with the devices and their
//! inventory: after a projection changes a device, the index rows of the part of the device
//! it owns are made to match it, and each name's device count follows the names the device
//! gained or lost.

use std::collections::BTreeSet;

use events::inventory::Attribute;
use serde_json::Value;
use sqlx::{Any, Transaction};

use crate::read_models::attribute_index::{value_keys, MAX_NAME, NAME_ONLY};

type Tx = Transaction<'static, Any>;

/// (scope, name, key)
type Entry = (String, String, String);

/// Which projection writes an index row: each keeps its own and leaves the others'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    /// Identity attributes, the admission status, the first check-in.
    Admission,
    /// Reported attributes, tags, the static group.
    Inventory,
    /// `created_ts` and `updated_ts`, which every device has whichever record it has.
    Presence,
}

impl Part {
    fn owns(self, scope: &str, name: &str) -> bool {
        let owner = match (scope, name) {
            ("identity", _) | ("system", "check_in_time") => Part::Admission,
            ("system", "created_ts" | "updated_ts") => Part::Presence,
            _ => Part::Inventory,
        };
        owner == self
    }
}

/// The index entries of a part of a device: each attribute's keys.
#[derive(Debug, Default)]
pub(super) struct Entries(BTreeSet<Entry>);

impl Entries {
    /// Adds the keys of `scope/name` holding `value`.
    pub fn add(&mut self, scope: &str, name: &str, value: &Value) {
        if name.len() > MAX_NAME {
            return;
        }
        for key in value_keys(value) {
            self.0.insert((scope.to_owned(), name.to_owned(), key));
        }
    }

    /// Adds `scope/name` by its name only.
    pub fn add_name(&mut self, scope: &str, name: &str) {
        self.0
            .insert((scope.to_owned(), name.to_owned(), NAME_ONLY.to_owned()));
    }

    fn names(&self) -> BTreeSet<(&str, &str)> {
        self.0
            .iter()
            .map(|(scope, name, _)| (scope.as_str(), name.as_str()))
            .collect()
    }
}

/// Makes the device's index rows of `part` be `wanted`.
pub(super) async fn reindex(
    tx: &mut Tx,
    tenant: &str,
    device: &str,
    part: Part,
    wanted: Entries,
) -> anyhow::Result<()> {
    let rows: Vec<Entry> = sqlx::query_as(
        "SELECT scope, name, value FROM attribute_values WHERE tenant = $1 AND device_id = $2",
    )
    .bind(tenant)
    .bind(device)
    .fetch_all(&mut **tx)
    .await?;
    let current = Entries(
        rows.into_iter()
            .filter(|(scope, name, _)| part.owns(scope, name))
            .collect(),
    );
    for (scope, name, key) in current.0.difference(&wanted.0) {
        sqlx::query(
            "DELETE FROM attribute_values
             WHERE tenant = $1 AND scope = $2 AND name = $3 AND value = $4 AND device_id = $5",
        )
        .bind(tenant)
        .bind(scope)
        .bind(name)
        .bind(key)
        .bind(device)
        .execute(&mut **tx)
        .await?;
    }
    for (scope, name, key) in wanted.0.difference(&current.0) {
        sqlx::query(
            "INSERT INTO attribute_values (tenant, scope, name, value, device_id)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(tenant)
        .bind(scope)
        .bind(name)
        .bind(key)
        .bind(device)
        .execute(&mut **tx)
        .await?;
    }
    let (before, after) = (current.names(), wanted.names());
    for (scope, name) in before.difference(&after) {
        count_name(tx, tenant, scope, name, -1).await?;
    }
    for (scope, name) in after.difference(&before) {
        count_name(tx, tenant, scope, name, 1).await?;
    }
    Ok(())
}

async fn count_name(
    tx: &mut Tx,
    tenant: &str,
    scope: &str,
    name: &str,
    change: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO attribute_names (tenant, scope, name, devices) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant, scope, name)
         DO UPDATE SET devices = attribute_names.devices + excluded.devices",
    )
    .bind(tenant)
    .bind(scope)
    .bind(name)
    .bind(change)
    .execute(&mut **tx)
    .await?;
    if change < 0 {
        sqlx::query(
            "DELETE FROM attribute_names
             WHERE tenant = $1 AND scope = $2 AND name = $3 AND devices <= 0",
        )
        .bind(tenant)
        .bind(scope)
        .bind(name)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Indexes the times every device of the fleet has, while it has an admission or an
/// inventory record.
pub(super) async fn reindex_presence(
    tx: &mut Tx,
    tenant: &str,
    device: &str,
) -> anyhow::Result<()> {
    let records: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM devices WHERE tenant = $1 AND id = $2)
              + (SELECT COUNT(*) FROM inventory WHERE tenant = $1 AND device_id = $2)",
    )
    .bind(tenant)
    .bind(device)
    .fetch_one(&mut **tx)
    .await?;
    let mut wanted = Entries::default();
    if records > 0 {
        wanted.add_name("system", "created_ts");
        wanted.add_name("system", "updated_ts");
    }
    reindex(tx, tenant, device, Part::Presence, wanted).await
}

/// Indexes the device's admission attributes as its `devices` row has them now.
pub(super) async fn index_admission(tx: &mut Tx, tenant: &str, device: &str) -> anyhow::Result<()> {
    let row: Option<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT identity_data, status, check_in_time FROM devices WHERE tenant = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(device)
    .fetch_optional(&mut **tx)
    .await?;
    let mut wanted = Entries::default();
    if let Some((identity, status, check_in_time)) = row {
        let identity: serde_json::Map<String, Value> = serde_json::from_str(&identity)?;
        for (name, value) in &identity {
            wanted.add("identity", name, value);
        }
        wanted.add("identity", "status", &Value::String(status));
        if check_in_time.is_some() {
            wanted.add_name("system", "check_in_time");
        }
    }
    reindex(tx, tenant, device, Part::Admission, wanted).await?;
    reindex_presence(tx, tenant, device).await
}

/// Indexes the device's reported attributes, tags and group as its `inventory` row has them
/// now.
pub(super) async fn index_inventory(tx: &mut Tx, tenant: &str, device: &str) -> anyhow::Result<()> {
    let row: Option<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT attributes, tags, grp FROM inventory WHERE tenant = $1 AND device_id = $2",
    )
    .bind(tenant)
    .bind(device)
    .fetch_optional(&mut **tx)
    .await?;
    let mut wanted = Entries::default();
    if let Some((attributes, tags, group)) = row {
        for (scope, list) in [("inventory", attributes), ("tags", tags)] {
            let list: Vec<Attribute> = serde_json::from_str(&list)?;
            for attribute in &list {
                wanted.add(scope, &attribute.name, &attribute.value);
            }
        }
        if let Some(group) = group {
            wanted.add("system", "group", &Value::String(group));
        }
    }
    reindex(tx, tenant, device, Part::Inventory, wanted).await?;
    reindex_presence(tx, tenant, device).await
}

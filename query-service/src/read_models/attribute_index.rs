//! The attribute index: each device's attribute values as rows of (scope, name, value key),
//! kept by the devices projection, and how many devices have each attribute name.
//!
//! The index only narrows a search: the devices it names are then matched with the same
//! predicates as before, so it must name every device that can match (a superset is fine) and
//! both engines answer alike. The keys follow `$eq`: typed, so "2" and 2 differ, and numbers
//! by value, so 2 and 2.0 do not; an array attribute has a key per element.

use std::collections::BTreeSet;

use events::filter::{Operator, Predicate};
use events::TenantId;
use serde_json::Value;
use sqlx::AnyPool;

use super::sql::placeholders;

/// Text values longer than this are indexed by their name only, so that an index entry stays
/// within what PostgreSQL's b-tree takes; a search for one reads the whole fleet.
const MAX_VALUE: usize = 256;
/// Names longer than this are left out of the index and of the attribute list.
pub const MAX_NAME: usize = 1024;
/// The key of a name whose values are not looked up (times, booleans, objects, long text).
pub const NAME_ONLY: &str = "";

/// The key of one string or number, if it is looked up by value.
fn scalar_key(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if text.len() <= MAX_VALUE => Some(format!("s:{text}")),
        Value::Number(number) => {
            let number = number.as_f64()?;
            // -0 equals 0 for `$eq`, so both take one key.
            let number = if number == 0.0 { 0.0 } else { number };
            Some(format!("n:{number}"))
        }
        _ => None,
    }
}

/// The keys a device's value is found by: one per string or number (an array's elements
/// each); `NAME_ONLY` alone when none is.
pub fn value_keys(value: &Value) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = match value {
        Value::Array(items) => items.iter().filter_map(scalar_key).collect(),
        other => scalar_key(other).into_iter().collect(),
    };
    if keys.is_empty() {
        keys.insert(NAME_ONLY.to_owned());
    }
    keys
}

/// Whether the index holds the values of `scope/name`, not only the name: the system's times
/// change too often to be worth it, and `identity/id` is the device's id, not an attribute.
fn holds_values(scope: &str, name: &str) -> bool {
    let held = match scope {
        "identity" => name != "id",
        "inventory" | "tags" => true,
        "system" => name == "group",
        _ => false,
    };
    held && name.len() <= MAX_NAME
}

/// The keys one of which every device matching `predicate` has under its scope and name, if
/// the index can tell: `$eq` on a string or number, `$in` on a list of them.
pub fn wanted_keys(predicate: &Predicate) -> Option<Vec<String>> {
    if !holds_values(&predicate.scope, &predicate.attribute) {
        return None;
    }
    match (predicate.operator, &predicate.value) {
        (Operator::Eq, value) => scalar_key(value).map(|key| vec![key]),
        (Operator::In, Value::Array(items)) => items.iter().map(scalar_key).collect(),
        _ => None,
    }
}

/// The attribute index of one generation of the read models.
#[derive(Clone)]
pub struct AttributeIndex {
    pool: AnyPool,
}

impl AttributeIndex {
    pub(super) fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// Whether the index covers every device (see the migration that made it).
    pub async fn complete(&self) -> Result<bool, sqlx::Error> {
        let found: Option<String> = sqlx::query_scalar(
            "SELECT name FROM read_model_features WHERE name = 'attribute_index'",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    /// The devices with one of `keys` under `scope/name`, or `None` when there are more than
    /// `limit` of them (reading the whole fleet is then as cheap).
    pub async fn devices_with(
        &self,
        tenant: &TenantId,
        scope: &str,
        name: &str,
        keys: &[String],
        limit: usize,
    ) -> Result<Option<BTreeSet<String>>, sqlx::Error> {
        let sql = format!(
            "SELECT DISTINCT device_id FROM attribute_values
             WHERE tenant = $1 AND scope = $2 AND name = $3 AND value IN ({}) LIMIT ${}",
            placeholders(4, keys.len()),
            4 + keys.len()
        );
        let mut query = sqlx::query_scalar(&sql)
            .bind(tenant.as_str())
            .bind(scope)
            .bind(name);
        for key in keys {
            query = query.bind(key.as_str());
        }
        let devices: Vec<String> = query
            .bind(i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1))
            .fetch_all(&self.pool)
            .await?;
        Ok((devices.len() <= limit).then(|| devices.into_iter().collect()))
    }

    /// Attribute names with how many devices have them, most common first, then by scope and
    /// name; at most `limit`.
    pub async fn names(
        &self,
        tenant: &TenantId,
        limit: i64,
    ) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT scope, name, devices FROM attribute_names WHERE tenant = $1
             ORDER BY devices DESC, scope, name LIMIT $2",
        )
        .bind(tenant.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::filter::RawPredicate;
    use serde_json::json;

    fn predicate(scope: &str, name: &str, kind: &str, value: Value) -> Predicate {
        Predicate::parse(&RawPredicate {
            scope: Some(scope.into()),
            attribute: Some(name.into()),
            kind: Some(kind.into()),
            value: Some(value),
        })
        .unwrap()
    }

    #[test]
    fn keys_follow_equality_types_numbers_by_value_and_array_elements() {
        assert_eq!(value_keys(&json!("2")), BTreeSet::from(["s:2".to_owned()]));
        assert_eq!(value_keys(&json!(2)), value_keys(&json!(2.0)));
        assert_eq!(value_keys(&json!(0)), value_keys(&json!(-0.0)));
        assert_ne!(value_keys(&json!(2)), value_keys(&json!("2")));
        assert_eq!(
            value_keys(&json!(["a", 1, {"x": 1}])),
            BTreeSet::from(["n:1".to_owned(), "s:a".to_owned()])
        );
        for unlooked in [
            json!(true),
            json!({"x": 1}),
            json!([]),
            json!("x".repeat(300)),
        ] {
            assert_eq!(
                value_keys(&unlooked),
                BTreeSet::from([NAME_ONLY.to_owned()])
            );
        }
    }

    #[test]
    fn a_predicate_is_looked_up_only_where_every_match_has_a_key() {
        let eq = predicate("inventory", "mem", "$eq", json!(512.0));
        assert_eq!(wanted_keys(&eq), Some(vec!["n:512".to_owned()]));
        // A device's key for 512 is the one the lookup asks for.
        assert!(value_keys(&json!([1, 512])).contains("n:512"));
        let among = predicate("tags", "site", "$in", json!(["a", 2]));
        assert_eq!(
            wanted_keys(&among),
            Some(vec!["s:a".to_owned(), "n:2".to_owned()])
        );
        for unlooked in [
            predicate("inventory", "mem", "$ne", json!(1)),
            predicate("inventory", "mem", "$gt", json!(1)),
            predicate("inventory", "mem", "$eq", json!([1, 2])),
            predicate("inventory", "name", "$eq", json!("x".repeat(300))),
            predicate("identity", "id", "$eq", json!("device")),
            predicate("system", "updated_ts", "$eq", json!("2026-01-01T00:00:00Z")),
        ] {
            assert_eq!(wanted_keys(&unlooked), None, "{unlooked:?}");
        }
        assert!(wanted_keys(&predicate("system", "group", "$eq", json!("lab"))).is_some());
    }
}

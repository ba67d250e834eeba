//! Events of device admission (Mender's deviceauth), each on the device's own admission
//! stream `devauth-<device id>`.
//!
//! An auth set is one (identity, public key) pair a device has presented or an operator has
//! preauthorized; the device's status is the strongest status among its sets.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The status of one auth set, with Mender's wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthSetStatus {
    Pending,
    Accepted,
    Rejected,
    Preauthorized,
}

impl AuthSetStatus {
    pub const ALL: [AuthSetStatus; 4] = [
        Self::Pending,
        Self::Accepted,
        Self::Rejected,
        Self::Preauthorized,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Preauthorized => "preauthorized",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// Rank in Mender's device status: accepted > preauthorized > pending > rejected.
    pub fn strength(self) -> u8 {
        match self {
            Self::Accepted => 4,
            Self::Preauthorized => 3,
            Self::Pending => 2,
            Self::Rejected => 1,
        }
    }
}

impl std::fmt::Display for AuthSetStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A device presented a new (identity, key) pair, or an operator preauthorized one. The first
/// set of a device also brings the device into being.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthSetAdded {
    pub device_id: String,
    pub auth_set_id: Uuid,
    /// The identity attributes (`id_data`), a JSON object.
    pub identity_data: Map<String, Value>,
    /// The public key, as a PEM `PUBLIC KEY` block in one canonical form.
    pub pubkey: String,
    pub status: AuthSetStatus,
}

/// An auth set changed status: an operator accepted, rejected or reset it, the server
/// accepted it by policy, or accepting another set of the device rejected it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthSetStatusChanged {
    pub device_id: String,
    pub auth_set_id: Uuid,
    pub status: AuthSetStatus,
}

/// The device was given a token for an accepted set: its check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceTokenIssued {
    pub device_id: String,
    pub auth_set_id: Uuid,
}

/// An operator dismissed one of the device's auth sets: it is gone, and a token issued for
/// it no longer stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthSetDismissed {
    pub device_id: String,
    pub auth_set_id: Uuid,
}

/// The device was decommissioned: every auth set of it is gone and its tokens no longer
/// stand. If it asks to be admitted again it starts over, as a new pending device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRemoved {
    pub device_id: String,
}

/// The tenant-wide stream acceptances are counted on while a limit of accepted devices is
/// set: every acceptance under the limit appends to it, so two cannot both take the last place.
pub const LIMIT_STREAM: &str = "accepted-devices";

/// A device became accepted while the tenant had a limit of accepted devices: it was the
/// `accepted`-th of at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedWithinLimit {
    pub device_id: String,
    pub accepted: u64,
    pub limit: u64,
}

/// The canonical text of an identity: keys sorted at every level, no spaces. Two identities
/// are the same device exactly when these are equal.
pub fn canonical_identity(identity: &Map<String, Value>) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(fields) => {
                let mut entries: Vec<_> = fields.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(name, value)| (name.clone(), sorted(value)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(&Value::Object(identity.clone())).to_string()
}

/// Namespace of device ids: changing it would give every device a new id.
const DEVICE_ID_NAMESPACE: Uuid = Uuid::from_u128(0x8c1e_54a2_3f0b_4d7e_9a61_2b5c_d0e4_f713);

/// The id of the device with this identity: a UUID v5 of its canonical text, so the same
/// identity, however its keys are ordered or spaced, always has the same id, and devices
/// admitted before admission was recorded keep theirs.
pub fn device_id(identity: &Map<String, Value>) -> Uuid {
    Uuid::new_v5(
        &DEVICE_ID_NAMESPACE,
        canonical_identity(identity).as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(text: &str) -> Map<String, Value> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn device_ids_ignore_key_order_and_spacing() {
        let a = identity(r#"{"mac":"00:11","serial":"7","nested":{"b":1,"a":2}}"#);
        let b = identity(r#"{ "serial":"7", "nested":{"a":2,"b":1}, "mac":"00:11" }"#);
        let c = identity(r#"{"mac":"00:12","serial":"7","nested":{"b":1,"a":2}}"#);
        assert_eq!(device_id(&a), device_id(&b));
        assert_ne!(device_id(&a), device_id(&c));
    }

    #[test]
    fn device_ids_never_change() {
        // Devices keep their deployment history only while this holds.
        let id = device_id(&identity(r#"{"mac":"de:ad:be:ef:00:01"}"#));
        assert_eq!(id.to_string(), "d5be734a-399b-57fb-9920-1e0f24143eae");
    }

    #[test]
    fn statuses_rank_as_mender_aggregates_them() {
        let mut ranked = AuthSetStatus::ALL;
        ranked.sort_by_key(|status| std::cmp::Reverse(status.strength()));
        assert_eq!(
            ranked.map(AuthSetStatus::as_str),
            ["accepted", "preauthorized", "pending", "rejected"]
        );
    }
}

//! Event types with stable wire names and schema versions, and upcasters for older JSON.
//!
//! A stored event is never rewritten. When a payload's shape changes, its type gets a new
//! schema version and an upcaster that turns the previous version's JSON into the new one;
//! decoding runs the chain from the stored version up to the current one. Every version ever
//! written has a golden fixture in `fixtures/` that must keep decoding.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::admission::{
    AcceptedWithinLimit, AuthSetAdded, AuthSetDismissed, AuthSetStatusChanged, DeviceRemoved,
    DeviceTokenIssued,
};
use crate::artifact::{ArtifactDeleted, ArtifactDescriptionChanged, ArtifactUploaded};
use crate::deployment::{
    DeploymentAborted, DeploymentCreated, DeploymentPaused, DeploymentResumed,
    DeviceAdmittedToPhase, DeviceDecommissioned, DeviceDeploymentLogSaved, DeviceDeploymentRetried,
    DeviceDeploymentStatusChanged, DeviceDeploymentTimedOut, DeviceJoinedDeployment, PhaseStarted,
};
use crate::inventory::{
    DeviceGroupAssigned, DeviceGroupLeft, DeviceTagsSet, FilterDeleted, FilterSaved,
    InventoryCleared, InventoryRemoved, InventoryReported,
};

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("unknown event type {0}")]
    UnknownType(String),
    #[error("{event_type} has no schema version {version}")]
    UnknownVersion { event_type: String, version: u32 },
    #[error("{event_type} v{version} does not match its schema: {source}")]
    Malformed {
        event_type: String,
        version: u32,
        source: serde_json::Error,
    },
}

/// Every event the service records.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    ArtifactUploaded(ArtifactUploaded),
    ArtifactDescriptionChanged(ArtifactDescriptionChanged),
    ArtifactDeleted(ArtifactDeleted),
    DeploymentCreated(DeploymentCreated),
    DeploymentAborted(DeploymentAborted),
    DeviceJoinedDeployment(DeviceJoinedDeployment),
    DeviceDeploymentStatusChanged(DeviceDeploymentStatusChanged),
    DeviceDeploymentLogSaved(DeviceDeploymentLogSaved),
    DeviceAdmittedToPhase(DeviceAdmittedToPhase),
    DeviceDecommissioned(DeviceDecommissioned),
    AuthSetAdded(AuthSetAdded),
    AuthSetStatusChanged(AuthSetStatusChanged),
    DeviceTokenIssued(DeviceTokenIssued),
    AuthSetDismissed(AuthSetDismissed),
    DeviceRemoved(DeviceRemoved),
    InventoryReported(InventoryReported),
    InventoryCleared(InventoryCleared),
    DeviceTagsSet(DeviceTagsSet),
    DeviceGroupAssigned(DeviceGroupAssigned),
    DeviceGroupLeft(DeviceGroupLeft),
    InventoryRemoved(InventoryRemoved),
    FilterSaved(FilterSaved),
    FilterDeleted(FilterDeleted),
    AcceptedWithinLimit(AcceptedWithinLimit),
    DeploymentPaused(DeploymentPaused),
    DeploymentResumed(DeploymentResumed),
    PhaseStarted(PhaseStarted),
    DeviceDeploymentRetried(DeviceDeploymentRetried),
    DeviceDeploymentTimedOut(DeviceDeploymentTimedOut),
}

/// Each event type with the schema versions that may be stored, oldest first; the last is
/// the one written today.
pub const STORED_VERSIONS: &[(&str, &[u32])] = &[
    ("ArtifactUploaded", &[1]),
    ("ArtifactDescriptionChanged", &[1]),
    ("ArtifactDeleted", &[1]),
    ("DeploymentCreated", &[1, 2, 3, 4, 5]),
    ("DeploymentAborted", &[1, 2]),
    ("DeviceJoinedDeployment", &[1, 2]),
    ("DeviceDeploymentStatusChanged", &[1]),
    ("DeviceDeploymentLogSaved", &[1]),
    ("DeviceAdmittedToPhase", &[1]),
    ("DeviceDecommissioned", &[1]),
    ("AuthSetAdded", &[1]),
    ("AuthSetStatusChanged", &[1]),
    ("DeviceTokenIssued", &[1]),
    ("AuthSetDismissed", &[1]),
    ("DeviceRemoved", &[1]),
    ("InventoryReported", &[1]),
    ("InventoryCleared", &[1]),
    ("DeviceTagsSet", &[1]),
    ("DeviceGroupAssigned", &[1]),
    ("DeviceGroupLeft", &[1]),
    ("InventoryRemoved", &[1]),
    ("FilterSaved", &[1]),
    ("FilterDeleted", &[1]),
    ("AcceptedWithinLimit", &[1]),
    ("DeploymentPaused", &[1]),
    ("DeploymentResumed", &[1]),
    ("PhaseStarted", &[1]),
    ("DeviceDeploymentRetried", &[1]),
    ("DeviceDeploymentTimedOut", &[1]),
];

impl DomainEvent {
    /// The stable wire name; never renamed once stored.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::ArtifactUploaded(_) => "ArtifactUploaded",
            Self::ArtifactDescriptionChanged(_) => "ArtifactDescriptionChanged",
            Self::ArtifactDeleted(_) => "ArtifactDeleted",
            Self::DeploymentCreated(_) => "DeploymentCreated",
            Self::DeploymentAborted(_) => "DeploymentAborted",
            Self::DeviceJoinedDeployment(_) => "DeviceJoinedDeployment",
            Self::DeviceDeploymentStatusChanged(_) => "DeviceDeploymentStatusChanged",
            Self::DeviceDeploymentLogSaved(_) => "DeviceDeploymentLogSaved",
            Self::DeviceAdmittedToPhase(_) => "DeviceAdmittedToPhase",
            Self::DeviceDecommissioned(_) => "DeviceDecommissioned",
            Self::AuthSetAdded(_) => "AuthSetAdded",
            Self::AuthSetStatusChanged(_) => "AuthSetStatusChanged",
            Self::DeviceTokenIssued(_) => "DeviceTokenIssued",
            Self::AuthSetDismissed(_) => "AuthSetDismissed",
            Self::DeviceRemoved(_) => "DeviceRemoved",
            Self::InventoryReported(_) => "InventoryReported",
            Self::InventoryCleared(_) => "InventoryCleared",
            Self::DeviceTagsSet(_) => "DeviceTagsSet",
            Self::DeviceGroupAssigned(_) => "DeviceGroupAssigned",
            Self::DeviceGroupLeft(_) => "DeviceGroupLeft",
            Self::InventoryRemoved(_) => "InventoryRemoved",
            Self::FilterSaved(_) => "FilterSaved",
            Self::FilterDeleted(_) => "FilterDeleted",
            Self::AcceptedWithinLimit(_) => "AcceptedWithinLimit",
            Self::DeploymentPaused(_) => "DeploymentPaused",
            Self::DeploymentResumed(_) => "DeploymentResumed",
            Self::PhaseStarted(_) => "PhaseStarted",
            Self::DeviceDeploymentRetried(_) => "DeviceDeploymentRetried",
            Self::DeviceDeploymentTimedOut(_) => "DeviceDeploymentTimedOut",
        }
    }

    /// The schema version this build writes.
    pub fn schema_version(&self) -> u32 {
        current_version(self.event_type()).unwrap_or(1)
    }

    pub fn payload(&self) -> Value {
        let value = match self {
            Self::ArtifactUploaded(event) => serde_json::to_value(event),
            Self::ArtifactDescriptionChanged(event) => serde_json::to_value(event),
            Self::ArtifactDeleted(event) => serde_json::to_value(event),
            Self::DeploymentCreated(event) => serde_json::to_value(event),
            Self::DeploymentAborted(event) => serde_json::to_value(event),
            Self::DeviceJoinedDeployment(event) => serde_json::to_value(event),
            Self::DeviceDeploymentStatusChanged(event) => serde_json::to_value(event),
            Self::DeviceDeploymentLogSaved(event) => serde_json::to_value(event),
            Self::DeviceAdmittedToPhase(event) => serde_json::to_value(event),
            Self::DeviceDecommissioned(event) => serde_json::to_value(event),
            Self::AuthSetAdded(event) => serde_json::to_value(event),
            Self::AuthSetStatusChanged(event) => serde_json::to_value(event),
            Self::DeviceTokenIssued(event) => serde_json::to_value(event),
            Self::AuthSetDismissed(event) => serde_json::to_value(event),
            Self::DeviceRemoved(event) => serde_json::to_value(event),
            Self::InventoryReported(event) => serde_json::to_value(event),
            Self::InventoryCleared(event) => serde_json::to_value(event),
            Self::DeviceTagsSet(event) => serde_json::to_value(event),
            Self::DeviceGroupAssigned(event) => serde_json::to_value(event),
            Self::DeviceGroupLeft(event) => serde_json::to_value(event),
            Self::InventoryRemoved(event) => serde_json::to_value(event),
            Self::FilterSaved(event) => serde_json::to_value(event),
            Self::FilterDeleted(event) => serde_json::to_value(event),
            Self::AcceptedWithinLimit(event) => serde_json::to_value(event),
            Self::DeploymentPaused(event) => serde_json::to_value(event),
            Self::DeploymentResumed(event) => serde_json::to_value(event),
            Self::PhaseStarted(event) => serde_json::to_value(event),
            Self::DeviceDeploymentRetried(event) => serde_json::to_value(event),
            Self::DeviceDeploymentTimedOut(event) => serde_json::to_value(event),
        };
        // Plain structs with string keys always serialize.
        value.expect("domain events serialize to JSON")
    }

    /// Reads a stored payload of any known version as the current event.
    pub fn decode(event_type: &str, version: u32, payload: Value) -> Result<Self, SchemaError> {
        let current = current_version(event_type)
            .ok_or_else(|| SchemaError::UnknownType(event_type.to_owned()))?;
        if version == 0 || version > current {
            return Err(SchemaError::UnknownVersion {
                event_type: event_type.to_owned(),
                version,
            });
        }
        let mut payload = payload;
        for from in version..current {
            payload = upcast(event_type, from, payload);
        }
        let parsed = Parser {
            event_type,
            version,
            payload,
        };
        Ok(match event_type {
            "ArtifactUploaded" => Self::ArtifactUploaded(parsed.parse()?),
            "ArtifactDescriptionChanged" => Self::ArtifactDescriptionChanged(parsed.parse()?),
            "ArtifactDeleted" => Self::ArtifactDeleted(parsed.parse()?),
            "DeploymentCreated" => Self::DeploymentCreated(parsed.parse()?),
            "DeploymentAborted" => Self::DeploymentAborted(parsed.parse()?),
            "DeviceJoinedDeployment" => Self::DeviceJoinedDeployment(parsed.parse()?),
            "DeviceDeploymentStatusChanged" => Self::DeviceDeploymentStatusChanged(parsed.parse()?),
            "DeviceDeploymentLogSaved" => Self::DeviceDeploymentLogSaved(parsed.parse()?),
            "DeviceAdmittedToPhase" => Self::DeviceAdmittedToPhase(parsed.parse()?),
            "DeviceDecommissioned" => Self::DeviceDecommissioned(parsed.parse()?),
            "AuthSetAdded" => Self::AuthSetAdded(parsed.parse()?),
            "AuthSetStatusChanged" => Self::AuthSetStatusChanged(parsed.parse()?),
            "DeviceTokenIssued" => Self::DeviceTokenIssued(parsed.parse()?),
            "AuthSetDismissed" => Self::AuthSetDismissed(parsed.parse()?),
            "DeviceRemoved" => Self::DeviceRemoved(parsed.parse()?),
            "InventoryReported" => Self::InventoryReported(parsed.parse()?),
            "InventoryCleared" => Self::InventoryCleared(parsed.parse()?),
            "DeviceTagsSet" => Self::DeviceTagsSet(parsed.parse()?),
            "DeviceGroupAssigned" => Self::DeviceGroupAssigned(parsed.parse()?),
            "DeviceGroupLeft" => Self::DeviceGroupLeft(parsed.parse()?),
            "InventoryRemoved" => Self::InventoryRemoved(parsed.parse()?),
            "FilterSaved" => Self::FilterSaved(parsed.parse()?),
            "FilterDeleted" => Self::FilterDeleted(parsed.parse()?),
            "AcceptedWithinLimit" => Self::AcceptedWithinLimit(parsed.parse()?),
            "DeploymentPaused" => Self::DeploymentPaused(parsed.parse()?),
            "DeploymentResumed" => Self::DeploymentResumed(parsed.parse()?),
            "PhaseStarted" => Self::PhaseStarted(parsed.parse()?),
            "DeviceDeploymentRetried" => Self::DeviceDeploymentRetried(parsed.parse()?),
            "DeviceDeploymentTimedOut" => Self::DeviceDeploymentTimedOut(parsed.parse()?),
            other => return Err(SchemaError::UnknownType(other.to_owned())),
        })
    }
}

fn current_version(event_type: &str) -> Option<u32> {
    STORED_VERSIONS
        .iter()
        .find(|(name, _)| *name == event_type)
        .and_then(|(_, versions)| versions.last().copied())
}

/// Turns version `from` of an event type's JSON into version `from + 1`.
fn upcast(event_type: &str, from: u32, mut payload: Value) -> Value {
    match (event_type, from) {
        // v1 predates phased rollouts and forced installation: a v1 deployment went to all
        // its devices at once and skipped devices already running the artifact.
        ("DeploymentCreated", 1) => {
            if let Some(fields) = payload.as_object_mut() {
                fields
                    .entry("phases")
                    .or_insert_with(|| Value::Array(vec![]));
                fields
                    .entry("force_installation")
                    .or_insert(Value::Bool(false));
            }
            payload
        }
        // v2 predates targeting by group: a v2 deployment listed its devices.
        ("DeploymentCreated", 2) => {
            if let Some(fields) = payload.as_object_mut() {
                fields
                    .entry("groups")
                    .or_insert_with(|| Value::Array(vec![]));
            }
            payload
        }
        // v3 predates failure policies (absent: none), v1 of an abort the policy's (absent:
        // an operator's), v4 retries (absent: none) and device timeouts (absent: none).
        ("DeploymentCreated", 3) | ("DeploymentCreated", 4) | ("DeploymentAborted", 1) => payload,
        // v1 predates dynamic deployments: a device joined because it was listed, which the
        // absent `matched_filter` already says.
        ("DeviceJoinedDeployment", 1) => payload,
        _ => payload,
    }
}

struct Parser<'a> {
    event_type: &'a str,
    version: u32,
    payload: Value,
}

impl Parser<'_> {
    fn parse<T: DeserializeOwned + Serialize>(self) -> Result<T, SchemaError> {
        serde_json::from_value(self.payload).map_err(|source| SchemaError::Malformed {
            event_type: self.event_type.to_owned(),
            version: self.version,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(event_type: &str, version: u32) -> Value {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(format!("{event_type}.v{version}.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("golden fixture {} missing: {err}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn every_stored_version_has_a_golden_fixture_that_still_decodes() {
        for (event_type, versions) in STORED_VERSIONS {
            for version in *versions {
                let event =
                    DomainEvent::decode(event_type, *version, fixture(event_type, *version))
                        .unwrap_or_else(|err| panic!("{event_type} v{version}: {err}"));
                assert_eq!(event.event_type(), *event_type);
            }
        }
    }

    #[test]
    fn current_versions_round_trip_exactly_through_their_fixture() {
        for (event_type, versions) in STORED_VERSIONS {
            let current = *versions.last().unwrap();
            let stored = fixture(event_type, current);
            let event = DomainEvent::decode(event_type, current, stored.clone()).unwrap();
            assert_eq!(event.schema_version(), current);
            assert_eq!(
                event.payload(),
                stored,
                "{event_type} changed shape without a new version"
            );
        }
    }

    #[test]
    fn a_v1_deployment_reads_as_unphased_and_unforced() {
        let event =
            DomainEvent::decode("DeploymentCreated", 1, fixture("DeploymentCreated", 1)).unwrap();
        let DomainEvent::DeploymentCreated(created) = event else {
            panic!("wrong type")
        };
        assert!(created.phases.is_empty());
        assert!(!created.force_installation);
        assert_eq!(created.devices, vec!["dev-1", "dev-2"]);
    }

    #[test]
    fn unknown_types_and_versions_are_refused() {
        assert!(matches!(
            DomainEvent::decode("DeploymentExploded", 1, Value::Null),
            Err(SchemaError::UnknownType(_))
        ));
        assert!(matches!(
            DomainEvent::decode("DeploymentCreated", 6, fixture("DeploymentCreated", 5)),
            Err(SchemaError::UnknownVersion { .. })
        ));
        assert!(matches!(
            DomainEvent::decode("DeploymentAborted", 1, serde_json::json!({"id": 1})),
            Err(SchemaError::Malformed { .. })
        ));
    }
}

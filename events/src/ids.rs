//! Ids of the aggregates that events refer to. Each is a type of its own, so that a
//! deployment id passed where an artifact id is expected does not compile. On the wire they
//! are the bare UUID string they always were.
//!
//! ```compile_fail
//! fn delete_artifact(_: events::ArtifactId) {}
//! delete_artifact(events::DeploymentId::new());
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Defines a UUID id type: transparent in JSON, displayed and parsed as the hyphenated UUID.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(Uuid);

        // A default id would be either the nil UUID or a random one, both surprising.
        #[allow(clippy::new_without_default)]
        impl $name {
            /// A fresh random (v4) id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(id: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(id).map(Self)
            }
        }
    };
}

uuid_id!(
    /// Names one deployment: its `deployment-<id>` stream and its entries on devices.
    DeploymentId
);

uuid_id!(
    /// Names one uploaded artifact and its stored `.mender` file.
    ArtifactId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_and_write_as_the_bare_uuid() {
        let uuid = Uuid::parse_str("0b5e6c1a-3f4d-4e2a-9c8b-7d6e5f4a3b2c").unwrap();
        let id = DeploymentId::from(uuid);
        assert_eq!(id.to_string(), uuid.to_string());
        assert_eq!(
            serde_json::to_value(id).unwrap(),
            serde_json::to_value(uuid).unwrap()
        );
        let read: ArtifactId = serde_json::from_value(serde_json::json!(uuid)).unwrap();
        assert_eq!(read.as_uuid(), uuid);
        assert_eq!(uuid.to_string().parse::<DeploymentId>().unwrap(), id);
        assert!("not-a-uuid".parse::<ArtifactId>().is_err());
    }
}

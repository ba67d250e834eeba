//! A tenant's artifacts, decided as one aggregate (stream `artifacts` per tenant).
//!
//! Why one stream for all of a tenant's artifacts: the rules that span artifacts (a name may
//! not be uploaded twice for an overlapping device type; the storage limit holds for the sum
//! of all files) are then checked against one version of the stream, and two racing uploads
//! cannot both pass them: the second append fails its expected version and is decided again.
//! Artifact changes are rare next to device traffic, so serialising them costs nothing.

use std::collections::{BTreeMap, BTreeSet};

use events::artifact::{ArtifactDeleted, ArtifactDescriptionChanged, ArtifactUploaded};
use events::{ArtifactId, DomainEvent};

/// The stream that holds a tenant's artifact events.
pub const STREAM: &str = "artifacts";

/// What decisions need to know about one artifact.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub id: ArtifactId,
    pub name: String,
    pub device_types: BTreeSet<String>,
    /// Depends other than the device type, which must differ for two artifacts of one name
    /// and device type to coexist.
    pub other_depends: BTreeMap<String, serde_json::Value>,
    pub size: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArtifactsState {
    pub artifacts: BTreeMap<ArtifactId, Artifact>,
}

impl ArtifactsState {
    /// Bytes of all stored artifact files.
    pub fn usage(&self) -> u64 {
        self.artifacts.values().map(|artifact| artifact.size).sum()
    }
}

pub fn evolve(mut state: ArtifactsState, event: &DomainEvent) -> ArtifactsState {
    match event {
        DomainEvent::ArtifactUploaded(uploaded) => {
            state.artifacts.insert(
                uploaded.artifact_id,
                Artifact {
                    id: uploaded.artifact_id,
                    name: uploaded.name.clone(),
                    device_types: uploaded.device_types_compatible.iter().cloned().collect(),
                    other_depends: other_depends(&uploaded.artifact_depends),
                    size: uploaded.size,
                },
            );
        }
        DomainEvent::ArtifactDeleted(deleted) => {
            state.artifacts.remove(&deleted.artifact_id);
        }
        _ => {}
    }
    state
}

fn other_depends(
    depends: &BTreeMap<String, serde_json::Value>,
) -> BTreeMap<String, serde_json::Value> {
    depends
        .iter()
        .filter(|(key, _)| key.as_str() != "device_type")
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// What the operator's deployments say about artifact names, from the write side's own table.
pub trait DeploymentUse {
    /// Some deployment, finished or not, was made for this artifact name.
    fn ever_deployed(&self, artifact_name: &str) -> bool;
    /// A deployment for this name has devices still to finish.
    fn in_active_deployment(&self, artifact_name: &str) -> bool;
}

/// For decisions that do not look at deployments (uploads).
pub struct NoDeployments;

impl DeploymentUse for NoDeployments {
    fn ever_deployed(&self, _: &str) -> bool {
        false
    }
    fn in_active_deployment(&self, _: &str) -> bool {
        false
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ArtifactCommand {
    /// Record a parsed and stored file.
    Upload {
        artifact: Box<ArtifactUploaded>,
        /// The tenant's storage limit in bytes; 0 for none.
        storage_limit: u64,
    },
    ChangeDescription {
        artifact_id: ArtifactId,
        description: String,
    },
    Delete {
        artifact_id: ArtifactId,
    },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArtifactError {
    #[error("an artifact with the same name and depends already exists")]
    Duplicate { existing: Box<Artifact> },
    #[error("artifact id {0} is taken")]
    IdTaken(ArtifactId),
    #[error("the upload would exceed the storage limit of {limit} bytes ({usage} in use)")]
    OverStorageLimit { limit: u64, usage: u64 },
    #[error("Resource not found")]
    NotFound,
    #[error("Image has already been used in deployment")]
    UsedInDeployment,
    #[error("Artifact is used in active deployment")]
    InActiveDeployment,
}

pub fn decide(
    state: &ArtifactsState,
    command: ArtifactCommand,
    deployments: &dyn DeploymentUse,
) -> Result<Vec<DomainEvent>, ArtifactError> {
    match command {
        ArtifactCommand::Upload {
            artifact,
            storage_limit,
        } => {
            if state.artifacts.contains_key(&artifact.artifact_id) {
                return Err(ArtifactError::IdTaken(artifact.artifact_id));
            }
            let depends = other_depends(&artifact.artifact_depends);
            if let Some(existing) = state.artifacts.values().find(|existing| {
                existing.name == artifact.name
                    && existing.other_depends == depends
                    && artifact
                        .device_types_compatible
                        .iter()
                        .any(|device_type| existing.device_types.contains(device_type))
            }) {
                return Err(ArtifactError::Duplicate {
                    existing: Box::new(existing.clone()),
                });
            }
            let usage = state.usage();
            if storage_limit > 0 && usage.saturating_add(artifact.size) > storage_limit {
                return Err(ArtifactError::OverStorageLimit {
                    limit: storage_limit,
                    usage,
                });
            }
            Ok(vec![DomainEvent::ArtifactUploaded(*artifact)])
        }
        ArtifactCommand::ChangeDescription {
            artifact_id,
            description,
        } => {
            let artifact = state
                .artifacts
                .get(&artifact_id)
                .ok_or(ArtifactError::NotFound)?;
            if deployments.ever_deployed(&artifact.name) {
                return Err(ArtifactError::UsedInDeployment);
            }
            Ok(vec![DomainEvent::ArtifactDescriptionChanged(
                ArtifactDescriptionChanged {
                    artifact_id,
                    description,
                },
            )])
        }
        ArtifactCommand::Delete { artifact_id } => {
            let artifact = state
                .artifacts
                .get(&artifact_id)
                .ok_or(ArtifactError::NotFound)?;
            if deployments.in_active_deployment(&artifact.name) {
                return Err(ArtifactError::InActiveDeployment);
            }
            Ok(vec![DomainEvent::ArtifactDeleted(ArtifactDeleted {
                artifact_id,
                size: artifact.size,
            })])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use events::artifact::ArtifactInfo;

    struct Deployments {
        ever: Vec<&'static str>,
        active: Vec<&'static str>,
    }

    impl DeploymentUse for Deployments {
        fn ever_deployed(&self, name: &str) -> bool {
            self.ever.contains(&name)
        }
        fn in_active_deployment(&self, name: &str) -> bool {
            self.active.contains(&name)
        }
    }

    const NONE: Deployments = Deployments {
        ever: vec![],
        active: vec![],
    };

    fn uploaded(name: &str, device_types: &[&str], size: u64) -> ArtifactUploaded {
        ArtifactUploaded {
            artifact_id: ArtifactId::new(),
            name: name.to_owned(),
            description: String::new(),
            device_types_compatible: device_types.iter().map(|t| t.to_string()).collect(),
            info: ArtifactInfo {
                format: "mender".into(),
                version: 3,
            },
            signed: false,
            updates: vec![],
            artifact_provides: BTreeMap::new(),
            artifact_depends: BTreeMap::from([(
                "device_type".to_owned(),
                serde_json::json!(device_types),
            )]),
            clears_artifact_provides: vec![],
            size,
            modified: Utc::now(),
        }
    }

    fn given(events: Vec<ArtifactUploaded>) -> ArtifactsState {
        events
            .into_iter()
            .map(DomainEvent::ArtifactUploaded)
            .fold(ArtifactsState::default(), |state, event| {
                evolve(state, &event)
            })
    }

    fn upload(artifact: ArtifactUploaded, storage_limit: u64) -> ArtifactCommand {
        ArtifactCommand::Upload {
            artifact: Box::new(artifact),
            storage_limit,
        }
    }

    #[test]
    fn an_upload_is_recorded() {
        let artifact = uploaded("release-1", &["pi"], 10);
        let events = decide(&given(vec![]), upload(artifact.clone(), 0), &NONE).unwrap();
        assert_eq!(events, vec![DomainEvent::ArtifactUploaded(artifact)]);
    }

    #[test]
    fn the_same_name_for_an_overlapping_device_type_is_a_duplicate() {
        let existing = uploaded("release-1", &["pi", "bbb"], 10);
        let state = given(vec![existing.clone()]);
        match decide(
            &state,
            upload(uploaded("release-1", &["bbb", "x86"], 10), 0),
            &NONE,
        ) {
            Err(ArtifactError::Duplicate { existing: found }) => {
                assert_eq!(found.id, existing.artifact_id)
            }
            other => panic!("expected a duplicate, got {other:?}"),
        }
        assert!(decide(
            &state,
            upload(uploaded("release-1", &["x86"], 10), 0),
            &NONE
        )
        .is_ok());
        assert!(decide(&state, upload(uploaded("release-2", &["pi"], 10), 0), &NONE).is_ok());
    }

    #[test]
    fn other_depends_let_an_artifact_share_name_and_device_type() {
        let state = given(vec![uploaded("release-1", &["pi"], 10)]);
        let mut variant = uploaded("release-1", &["pi"], 10);
        variant
            .artifact_depends
            .insert("rootfs-image.version".into(), serde_json::json!("v1"));
        assert!(decide(&state, upload(variant, 0), &NONE).is_ok());
    }

    #[test]
    fn the_storage_limit_counts_every_stored_file() {
        let state = given(vec![
            uploaded("a", &["pi"], 600),
            uploaded("b", &["pi"], 300),
        ]);
        assert_eq!(
            decide(&state, upload(uploaded("c", &["pi"], 101), 1000), &NONE),
            Err(ArtifactError::OverStorageLimit {
                limit: 1000,
                usage: 900
            })
        );
        assert!(decide(&state, upload(uploaded("c", &["pi"], 100), 1000), &NONE).is_ok());
        assert!(decide(&state, upload(uploaded("c", &["pi"], 10_000), 0), &NONE).is_ok());
    }

    #[test]
    fn deleting_frees_storage_and_the_name() {
        let first = uploaded("a", &["pi"], 600);
        let state = given(vec![first.clone()]);
        let events = decide(
            &state,
            ArtifactCommand::Delete {
                artifact_id: first.artifact_id,
            },
            &NONE,
        )
        .unwrap();
        let state = events.iter().fold(state, evolve);
        assert_eq!(state.usage(), 0);
        assert!(decide(&state, upload(uploaded("a", &["pi"], 600), 600), &NONE).is_ok());
    }

    #[test]
    fn an_artifact_ever_deployed_cannot_be_edited() {
        let artifact = uploaded("a", &["pi"], 1);
        let state = given(vec![artifact.clone()]);
        let edit = || ArtifactCommand::ChangeDescription {
            artifact_id: artifact.artifact_id,
            description: "new".into(),
        };
        let used = Deployments {
            ever: vec!["a"],
            active: vec![],
        };
        assert_eq!(
            decide(&state, edit(), &used),
            Err(ArtifactError::UsedInDeployment)
        );
        assert!(decide(&state, edit(), &NONE).is_ok());
        assert_eq!(
            decide(
                &state,
                ArtifactCommand::ChangeDescription {
                    artifact_id: ArtifactId::new(),
                    description: "x".into()
                },
                &NONE
            ),
            Err(ArtifactError::NotFound)
        );
    }

    #[test]
    fn an_artifact_in_an_active_deployment_cannot_be_deleted() {
        let artifact = uploaded("a", &["pi"], 1);
        let state = given(vec![artifact.clone()]);
        let delete = || ArtifactCommand::Delete {
            artifact_id: artifact.artifact_id,
        };
        let active = Deployments {
            ever: vec!["a"],
            active: vec!["a"],
        };
        assert_eq!(
            decide(&state, delete(), &active),
            Err(ArtifactError::InActiveDeployment)
        );
        let finished = Deployments {
            ever: vec!["a"],
            active: vec![],
        };
        assert!(decide(&state, delete(), &finished).is_ok());
    }
}

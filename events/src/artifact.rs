//! Events of the artifact aggregate: an uploaded `.mender` file and what operators do to it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ArtifactId;

/// The artifact's format and version, from its `version` member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactInfo {
    pub format: String,
    pub version: u32,
}

/// One payload file of an update, as the manifest and header describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateFile {
    pub name: String,
    pub checksum: String,
    pub size: u64,
    pub date: DateTime<Utc>,
}

/// The payload type; `None` for bootstrap artifacts whose payload is empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeInfo {
    #[serde(rename = "type")]
    pub update_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub type_info: TypeInfo,
    pub files: Vec<UpdateFile>,
    /// Module-specific meta-data, kept as the artifact wrote it.
    #[serde(default)]
    pub meta_data: serde_json::Value,
}

/// A `.mender` file was accepted: parsed, checksummed and stored under `artifact_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactUploaded {
    pub artifact_id: ArtifactId,
    pub name: String,
    pub description: String,
    pub device_types_compatible: Vec<String>,
    pub info: ArtifactInfo,
    pub signed: bool,
    pub updates: Vec<Update>,
    #[serde(default)]
    pub artifact_provides: BTreeMap<String, String>,
    /// Values are strings or lists of strings, as in the artifact's header.
    #[serde(default)]
    pub artifact_depends: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub clears_artifact_provides: Vec<String>,
    /// Bytes of the whole `.mender` file.
    pub size: u64,
    pub modified: DateTime<Utc>,
}

/// The operator replaced an artifact's description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactDescriptionChanged {
    pub artifact_id: ArtifactId,
    pub description: String,
}

/// The artifact is gone; its stored file is removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactDeleted {
    pub artifact_id: ArtifactId,
    /// Bytes freed, so storage usage can be kept without reading the upload again.
    pub size: u64,
}

//! `mender-artifact read`: run it, parse its report, and compare it with ours.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use artifact_format::ParsedArtifact;
use serde_json::{json, Value};

use super::run_ok;

/// The parts of `mender-artifact read` output that the reader must agree with.
#[derive(Debug, Default)]
pub struct MenderView {
    pub name: String,
    pub format: String,
    pub version: u32,
    pub signature: String,
    pub devices: Vec<String>,
    pub provides_group: String,
    pub depends_artifacts: Vec<String>,
    pub depends_groups: Vec<String>,
    pub scripts: Vec<String>,
    pub updates: Vec<MenderUpdate>,
}

#[derive(Debug, Default)]
pub struct MenderUpdate {
    pub update_type: String,
    pub provides: BTreeMap<String, String>,
    pub depends: BTreeMap<String, String>,
    pub clears: Vec<String>,
    pub meta_data: Value,
    pub files: Vec<MenderFile>,
}

#[derive(Debug, Default)]
pub struct MenderFile {
    pub name: String,
    pub size: u64,
    pub modified: String,
    pub checksum: String,
}

/// Runs `mender-artifact read [-k key] <artifact>` and parses its report.
pub fn mender_read(artifact: &Path, key: Option<&Path>) -> MenderView {
    let mut command = Command::new("mender-artifact");
    command.arg("read");
    if let Some(key) = key {
        command.args(["-k", key.to_str().unwrap()]);
    }
    parse_mender_read(&run_ok(command.arg(artifact)))
}

fn bracket_list(text: &str, separator: &str) -> Vec<String> {
    let inner = text.trim().trim_matches('\'').trim_start_matches('[');
    let inner = inner.trim_end_matches(']');
    inner
        .split(separator)
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn parse_mender_read(text: &str) -> MenderView {
    #[derive(PartialEq)]
    enum Section {
        Top,
        Scripts,
        Provides,
        Depends,
        Metadata,
        Files,
    }
    let mut view = MenderView::default();
    let mut section = Section::Top;
    let mut metadata = String::new();
    let finish_metadata = |view: &mut MenderView, metadata: &mut String| {
        if !metadata.is_empty() {
            let update = view.updates.last_mut().unwrap();
            update.meta_data = serde_json::from_str(metadata).unwrap();
            metadata.clear();
        }
    };
    for line in text.lines() {
        let trimmed = line.trim();
        let field = |name: &str| trimmed.strip_prefix(name).map(str::trim);
        if section == Section::Metadata && line.starts_with('\t') {
            metadata.push_str(trimmed);
            continue;
        }
        finish_metadata(&mut view, &mut metadata);
        if let Some(v) = field("Name:") {
            view.name = v.to_string();
        } else if let Some(v) = field("Format:") {
            view.format = v.to_string();
        } else if let Some(v) = field("Version:") {
            view.version = v.parse().unwrap();
        } else if let Some(v) = field("Signature:") {
            view.signature = v.to_string();
        } else if let Some(v) = field("Compatible devices:") {
            view.devices = bracket_list(v, " ");
        } else if let Some(v) = field("Provides group:") {
            view.provides_group = v.to_string();
        } else if let Some(v) = field("Depends on one of artifact(s):") {
            view.depends_artifacts = bracket_list(v, ",");
        } else if let Some(v) = field("Depends on one of group(s):") {
            view.depends_groups = bracket_list(v, ",");
        } else if trimmed == "State scripts:" {
            section = Section::Scripts;
        } else if trimmed == "Updates:" {
            section = Section::Top;
        } else if trimmed.ends_with(':') && trimmed[..trimmed.len() - 1].parse::<u32>().is_ok() {
            view.updates.push(MenderUpdate::default());
            section = Section::Top;
        } else if let Some(v) = field("Type:") {
            let update = view.updates.last_mut().unwrap();
            update.update_type = v.to_string();
        } else if let Some(v) = field("Provides:") {
            section = if v == "Nothing" {
                Section::Top
            } else {
                Section::Provides
            };
        } else if let Some(v) = field("Depends:") {
            section = if v == "Nothing" {
                Section::Top
            } else {
                Section::Depends
            };
        } else if let Some(v) = field("Clears Provides:") {
            view.updates.last_mut().unwrap().clears = bracket_list(v, ",");
            section = Section::Top;
        } else if let Some(v) = field("Metadata:") {
            section = if v == "Nothing" {
                Section::Top
            } else {
                Section::Metadata
            };
        } else if let Some(v) = field("Files:") {
            section = if v == "None" {
                Section::Top
            } else {
                Section::Files
            };
        } else if section == Section::Files {
            let update = view.updates.last_mut().unwrap();
            if let Some(v) = field("name:") {
                update.files.push(MenderFile {
                    name: v.to_string(),
                    ..MenderFile::default()
                });
            } else if let Some(v) = field("size:") {
                update.files.last_mut().unwrap().size = v.parse().unwrap();
            } else if let Some(v) = field("modified:") {
                update.files.last_mut().unwrap().modified = v.to_string();
            } else if let Some(v) = field("checksum:") {
                update.files.last_mut().unwrap().checksum = v.to_string();
            }
        } else if section == Section::Scripts && !trimmed.is_empty() {
            view.scripts.push(trimmed.to_string());
        } else if matches!(section, Section::Provides | Section::Depends) && line.starts_with('\t')
        {
            let (k, v) = trimmed.split_once(": ").unwrap();
            let update = view.updates.last_mut().unwrap();
            let map = if section == Section::Provides {
                &mut update.provides
            } else {
                &mut update.depends
            };
            map.insert(k.to_string(), v.to_string());
        }
    }
    finish_metadata(&mut view, &mut metadata);
    view
}

/// Checks every field of `parsed` against what `mender-artifact read` reported.
pub fn assert_agrees(parsed: &ParsedArtifact, view: &MenderView) {
    assert_eq!(parsed.name, view.name, "name");
    assert_eq!(parsed.info.format, view.format, "format");
    assert_eq!(parsed.info.version, view.version, "version");
    assert_eq!(parsed.signed, view.signature != "no signature", "signed");
    assert_eq!(parsed.device_types_compatible, view.devices, "devices");
    assert_eq!(parsed.updates.len(), view.updates.len(), "payload count");

    let mut provides = BTreeMap::new();
    let mut depends: BTreeMap<String, Value> = BTreeMap::new();
    depends.insert("device_type".into(), json!(view.devices));
    if view.version >= 3 {
        provides.insert("artifact_name".to_string(), view.name.clone());
        if !view.provides_group.is_empty() {
            provides.insert("artifact_group".to_string(), view.provides_group.clone());
        }
        if !view.depends_artifacts.is_empty() {
            depends.insert("artifact_name".into(), json!(view.depends_artifacts));
        }
        if !view.depends_groups.is_empty() {
            depends.insert("artifact_group".into(), json!(view.depends_groups));
        }
    }
    let mut clears = Vec::new();
    for (ours, theirs) in parsed.updates.iter().zip(&view.updates) {
        let update_type = ours
            .type_info
            .update_type
            .as_deref()
            .unwrap_or("Empty type");
        assert_eq!(update_type, theirs.update_type, "update type");
        provides.extend(theirs.provides.clone());
        depends.extend(theirs.depends.iter().map(|(k, v)| (k.clone(), json!(v))));
        for clear in &theirs.clears {
            if !clears.contains(clear) {
                clears.push(clear.clone());
            }
        }
        assert_eq!(ours.meta_data, theirs.meta_data, "meta-data");
        assert_eq!(ours.files.len(), theirs.files.len(), "file count");
        for (file, their_file) in ours.files.iter().zip(&theirs.files) {
            assert_eq!(file.name, their_file.name, "file name");
            assert_eq!(file.size, their_file.size, "size of {}", file.name);
            assert_eq!(
                file.checksum, their_file.checksum,
                "checksum of {}",
                file.name
            );
            let modified = file.date.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string();
            assert_eq!(modified, their_file.modified, "mtime of {}", file.name);
        }
    }
    assert_eq!(parsed.artifact_provides, provides, "artifact_provides");
    assert_eq!(parsed.artifact_depends, depends, "artifact_depends");
    assert_eq!(
        parsed.clears_artifact_provides, clears,
        "clears_artifact_provides"
    );
}

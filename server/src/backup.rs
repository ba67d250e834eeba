//! `deployments backup` and `deployments restore`: the embedded store in one tar file, taken
//! while the server runs.
//!
//! A backup holds the SQLite event log, the read models as they are served (the base file
//! with the generations table and the relay's checkpoints, and the live generation), the local
//! artifact files and the secrets the server made for itself (token and link keys). The read
//! models are copied before the log, so they never show an event the copied log lacks: after
//! a restore the projectors carry on from their checkpoints, or `deployments rebuild`
//! replays the log into new ones. Artifact files are copied after the log, so every artifact
//! the copied log names has its file (files are written before their event is appended).
//!
//! Stores on database servers (PostgreSQL, S3) are backed up with their own tools; the README
//! says how.

use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use event_log::sqlite::{copy_database, copy_log, database_file};
use serde::{Deserialize, Serialize};

use crate::settings::ServerSettings;

/// The first member of every backup: what it holds.
const MANIFEST: &str = "backup.json";
const FORMAT: u32 = 1;
const LOG: &str = "events.db";
const READ_MODELS: &str = "read-models.db";
const ARTIFACTS: &str = "artifacts/";
const SECRETS: &str = "secrets/";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: u32,
    pub created_at: DateTime<Utc>,
    /// The release that wrote it.
    pub version: String,
    /// The last log position the backup holds.
    pub log_head: u64,
    /// The read models' live generation, copied beside the base file when it is not 0.
    pub read_models_generation: u64,
    /// Artifact files copied (0 with S3 storage: the bucket is backed up on its own).
    pub artifact_files: usize,
    pub secrets: Vec<String>,
}

/// Why `backup` or `restore` does not apply to this configuration.
fn embedded_files(settings: &ServerSettings) -> anyhow::Result<(PathBuf, PathBuf)> {
    let log = database_file(&settings.event_log_url());
    let read_models = database_file(&settings.read_models_url());
    match (log, read_models) {
        (Some(log), Some(read_models)) => Ok((log, read_models)),
        _ => bail!(
            "backup and restore cover the embedded store; this configuration keeps its event log \
             or read models on a database server, which is backed up with its own tools \
             (pg_dump; see the README's \"Backups\")"
        ),
    }
}

fn generation_file(settings: &ServerSettings, generation: u64) -> anyhow::Result<PathBuf> {
    database_file(&event_log::generation_url(
        &settings.read_models_url(),
        generation,
    ))
    .context("the read models' generation is not a file")
}

fn generation_member(generation: u64) -> String {
    format!("read-models.g{generation}.db")
}

/// Writes a backup of the running (or stopped) embedded store to `out`, atomically: the file
/// appears complete or not at all. It holds secrets, so only its owner may read it.
pub async fn backup(settings: &ServerSettings, out: &Path) -> anyhow::Result<Manifest> {
    let (log_file, read_models_file) = embedded_files(settings)?;
    if !log_file.exists() {
        bail!("there is no event log at {}", log_file.display());
    }
    let staging = sibling(out, "partial.d");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    let written = write_backup(settings, &log_file, &read_models_file, &staging, out).await;
    let _ = std::fs::remove_dir_all(&staging);
    written
}

async fn write_backup(
    settings: &ServerSettings,
    log_file: &Path,
    read_models_file: &Path,
    staging: &Path,
    out: &Path,
) -> anyhow::Result<Manifest> {
    // The read models first: see the module's comment.
    let read_models =
        query_service::read_models::ReadModels::connect(&settings.read_models_url(), 1).await?;
    let generation = read_models.serving().number;
    drop(read_models);
    let mut databases = vec![(READ_MODELS.to_string(), staging.join(READ_MODELS))];
    copy_database(&sqlite_url(read_models_file), &databases[0].1)
        .await
        .context("copying the read models")?;
    if generation != 0 {
        let member = generation_member(generation);
        let copy = staging.join(&member);
        copy_database(&sqlite_url(&generation_file(settings, generation)?), &copy)
            .await
            .context("copying the read models' live generation")?;
        databases.push((member, copy));
    }
    let log_copy = staging.join(LOG);
    let head = copy_log(&sqlite_url(log_file), &log_copy)
        .await
        .context("copying the event log")?;
    databases.push((LOG.to_string(), log_copy));

    let artifacts = match settings.storage.backend {
        blob_store::StorageBackend::Local => files_under(&settings.local_artifacts_dir())?,
        blob_store::StorageBackend::S3 => Vec::new(),
    };
    let secrets = secret_files(&settings.data_dir)?;
    let manifest = Manifest {
        format: FORMAT,
        created_at: Utc::now(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        log_head: head.0,
        read_models_generation: generation,
        artifact_files: artifacts.len(),
        secrets: secrets.iter().map(|(name, _)| name.clone()).collect(),
    };

    let partial = sibling(out, "partial");
    let file = private_file(&partial)?;
    let mut archive = tar::Builder::new(file);
    let manifest_json = serde_json::to_vec_pretty(&manifest)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest_json.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(manifest.created_at.timestamp().max(0) as u64);
    archive.append_data(&mut header, MANIFEST, manifest_json.as_slice())?;
    for (member, path) in &databases {
        archive.append_path_with_name(path, member)?;
    }
    for (relative, path) in &artifacts {
        archive
            .append_path_with_name(path, format!("{ARTIFACTS}{relative}"))
            .with_context(|| format!("adding {}", path.display()))?;
    }
    for (name, path) in &secrets {
        archive.append_path_with_name(path, format!("{SECRETS}{name}"))?;
    }
    let file = archive.into_inner()?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&partial, out)
        .with_context(|| format!("moving the backup to {}", out.display()))?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(parent)?.sync_all()?;
    }
    Ok(manifest)
}

/// Restores a backup into a configuration whose embedded store does not exist yet (a new or
/// emptied data directory). Nothing is written when the archive is not a backup.
pub fn restore(settings: &ServerSettings, archive_path: &Path) -> anyhow::Result<Manifest> {
    let (log_file, read_models_file) = embedded_files(settings)?;
    for existing in [&log_file, &read_models_file] {
        if existing.exists() {
            bail!(
                "{} exists: restore into an empty data directory (move the current one away first)",
                existing.display()
            );
        }
    }
    let open =
        || File::open(archive_path).with_context(|| format!("opening {}", archive_path.display()));
    // First pass: the manifest, and every member's name checked, before anything is written.
    let manifest = {
        let mut archive = tar::Archive::new(open()?);
        let mut entries = archive.entries()?;
        let read_manifest = |first: Option<std::io::Result<tar::Entry<'_, File>>>| {
            let mut first = first.context("empty")??;
            if first.path()? != Path::new(MANIFEST) {
                bail!("its first member is not {MANIFEST}");
            }
            let mut text = String::new();
            first.read_to_string(&mut text)?;
            Ok(serde_json::from_str::<Manifest>(&text)?)
        };
        let manifest = read_manifest(entries.next())
            .with_context(|| format!("{} is not a backup", archive_path.display()))?;
        if manifest.format != FORMAT {
            bail!(
                "backup format {} is not one this release reads ({FORMAT})",
                manifest.format
            );
        }
        for entry in entries {
            let entry = entry?;
            destination(settings, &manifest, &entry.path()?)?;
        }
        manifest
    };
    if manifest.artifact_files > 0 && settings.storage.backend != blob_store::StorageBackend::Local
    {
        bail!("the backup holds local artifact files, but storage.backend is not local");
    }
    let mut archive = tar::Archive::new(open()?);
    for entry in archive.entries()?.skip(1) {
        let mut entry = entry?;
        let target = destination(settings, &manifest, &entry.path()?)?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut file = private_file(&target)?;
        std::io::copy(&mut entry, &mut file)
            .with_context(|| format!("writing {}", target.display()))?;
        file.sync_all()?;
    }
    Ok(manifest)
}

/// Where a backup member goes in this configuration.
fn destination(
    settings: &ServerSettings,
    manifest: &Manifest,
    member: &Path,
) -> anyhow::Result<PathBuf> {
    let name = member.to_string_lossy();
    let plain = member
        .components()
        .all(|component| matches!(component, Component::Normal(_)));
    if !plain {
        bail!("the backup names {name}, outside of it");
    }
    if name == LOG {
        return Ok(database_file(&settings.event_log_url()).expect("checked embedded"));
    }
    if name == READ_MODELS {
        return Ok(database_file(&settings.read_models_url()).expect("checked embedded"));
    }
    if manifest.read_models_generation != 0
        && name == generation_member(manifest.read_models_generation)
    {
        return generation_file(settings, manifest.read_models_generation);
    }
    if let Some(relative) = name.strip_prefix(ARTIFACTS) {
        return Ok(settings.local_artifacts_dir().join(relative));
    }
    if let Some(secret) = name.strip_prefix(SECRETS) {
        if !secret.contains('/') {
            return Ok(settings.data_dir.join(secret));
        }
    }
    bail!("the backup holds {name}, which this release does not know")
}

fn sqlite_url(file: &Path) -> String {
    format!("sqlite://{}", file.display())
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{suffix}"));
    PathBuf::from(name)
}

/// A new file only its owner can read: backups and what they restore hold secrets.
fn private_file(path: &Path) -> anyhow::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    Ok(file)
}

/// Every file under `dir` with its path relative to it (`/`-separated); none if it is missing.
fn files_under(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error).context(format!("reading {}", folder.display())),
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                let relative = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                found.push((relative, path));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The secrets the server keeps in its data directory (`*.secret`, `*.password`).
fn secret_files(data_dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for entry in
        std::fs::read_dir(data_dir).with_context(|| format!("reading {}", data_dir.display()))?
    {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let secret = |n: &String| n.ends_with(".secret") || n.ends_with(".password");
        if let Some(name) = name.filter(|n| secret(n) && path.is_file()) {
            found.push((name, path));
        }
    }
    found.sort();
    Ok(found)
}

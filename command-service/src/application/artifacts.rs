//! Artifact commands: store and record an upload, change a description, delete.

use std::sync::Arc;

use artifact_format::{ParsedArtifact, ReadOptions};
use axum::extract::multipart::Field;
use blob_store::{BlobStore, StorageSettings};
use chrono::Utc;
use events::artifact::ArtifactUploaded;
use events::{ArtifactId, StreamName};

use super::{Caller, Decision, Outcome, Pipeline, Session};
use crate::domain::artifacts::{self, ArtifactCommand, ArtifactsState};
use crate::domain::deployments;
use crate::error::ApiError;
use crate::upload::{receive, UploadLimits};

/// Where artifact files go and how uploads are checked.
pub struct ArtifactStorage {
    pub store: Arc<dyn BlobStore>,
    pub storage: StorageSettings,
    pub reader_options: Arc<ReadOptions>,
}

fn stream() -> StreamName {
    StreamName::new(artifacts::STREAM)
}

/// What the parts before the file said.
#[derive(Debug, Clone)]
pub struct UploadForm {
    pub artifact_id: ArtifactId,
    pub description: String,
    /// The `size` part, when the client sent one.
    pub declared: Option<u64>,
}

/// A file stored and parsed, not recorded yet.
pub struct StoredUpload {
    key: String,
    parsed: ParsedArtifact,
    store: Arc<dyn BlobStore>,
}

impl StoredUpload {
    /// Removes the stored file of an upload that will not be recorded.
    pub async fn discard(self) {
        if let Err(error) = self.store.delete(&self.key).await {
            tracing::error!(%error, key = self.key, "cannot remove a refused upload");
        }
    }
}

/// Streams the `artifact` part into storage while parsing and checking it; nothing stays
/// stored when it is refused.
pub async fn store(
    pipeline: &Pipeline,
    storage: &ArtifactStorage,
    caller: &Caller,
    form: &UploadForm,
    field: &mut Field<'_>,
) -> Result<StoredUpload, ApiError> {
    let settings = &storage.storage;
    let limit = settings.limit_for(caller.tenant.as_str());
    let usage = if limit > 0 {
        let state: ArtifactsState = pipeline
            .state(&caller.tenant, &stream(), artifacts::evolve)
            .await?;
        Some((limit, state.usage()))
    } else {
        None
    };
    let key = blob_store::artifact_key(caller.tenant.as_str(), form.artifact_id);
    let parsed = receive(
        field,
        &storage.store,
        &key,
        UploadLimits {
            max_bytes: settings.max_upload_bytes,
            declared: form.declared,
            storage: usage,
        },
        storage.reader_options.clone(),
    )
    .await?;
    Ok(StoredUpload {
        key,
        parsed,
        store: storage.store.clone(),
    })
}

/// Records a stored upload; its file is removed when the record is refused (a duplicate, the
/// storage limit reached meanwhile, a log that cannot append).
pub async fn record(
    pipeline: &Pipeline,
    storage: &ArtifactStorage,
    caller: &Caller,
    form: UploadForm,
    stored: StoredUpload,
) -> Result<Outcome<()>, ApiError> {
    let parsed = &stored.parsed;
    let uploaded = ArtifactUploaded {
        artifact_id: form.artifact_id,
        name: parsed.name.clone(),
        description: form.description,
        device_types_compatible: parsed.device_types_compatible.clone(),
        info: parsed.info.clone(),
        signed: parsed.signed,
        updates: parsed.updates.clone(),
        artifact_provides: parsed.artifact_provides.clone(),
        artifact_depends: parsed.artifact_depends.clone(),
        clears_artifact_provides: parsed.clears_artifact_provides.clone(),
        size: parsed.size,
        modified: Utc::now(),
    };
    let storage_limit = storage.storage.limit_for(caller.tenant.as_str());
    let recorded = pipeline
        .run(caller, |session| {
            let uploaded = uploaded.clone();
            async move {
                let state = session.load(&stream(), artifacts::evolve).await?;
                let events = artifacts::decide(
                    &state,
                    ArtifactCommand::Upload {
                        artifact: Box::new(uploaded),
                        storage_limit,
                    },
                    &artifacts::NoDeployments,
                )?;
                Ok(Decision::append(stream(), events, ()))
            }
        })
        .await;
    if recorded.is_err() {
        stored.discard().await;
    }
    recorded
}

/// A decision on the artifacts stream that rests on which deployments use them: guarded by
/// the deployments stream, so a deployment created meanwhile makes it decide again.
async fn decide_with_deployments(
    session: Session,
    command: ArtifactCommand,
) -> Result<Decision<()>, ApiError> {
    let state = session.load(&stream(), artifacts::evolve).await?;
    let events = session
        .tables(&[StreamName::new(deployments::CREATION_STREAM)], |tables| {
            artifacts::decide(&state, command, tables)
        })
        .await??;
    Ok(Decision::append(stream(), events, ()))
}

/// Changes an artifact's description; 422 once any deployment used it.
pub async fn change_description(
    pipeline: &Pipeline,
    caller: &Caller,
    artifact_id: ArtifactId,
    description: String,
) -> Result<Outcome<()>, ApiError> {
    pipeline
        .run(caller, |session| {
            decide_with_deployments(
                session,
                ArtifactCommand::ChangeDescription {
                    artifact_id,
                    description: description.clone(),
                },
            )
        })
        .await
}

/// Deletes an artifact and its file; 409 while an unfinished deployment uses it.
pub async fn delete(
    pipeline: &Pipeline,
    storage: &ArtifactStorage,
    caller: &Caller,
    artifact_id: ArtifactId,
) -> Result<Outcome<()>, ApiError> {
    let outcome = pipeline
        .run(caller, |session| {
            decide_with_deployments(session, ArtifactCommand::Delete { artifact_id })
        })
        .await?;
    // The event is the truth; a file left behind by a failed removal is only wasted space.
    let key = blob_store::artifact_key(caller.tenant.as_str(), artifact_id);
    if let Err(error) = storage.store.delete(&key).await {
        tracing::error!(%error, key, "cannot remove a deleted artifact's file");
    }
    Ok(outcome)
}

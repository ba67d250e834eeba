//! Receiving an artifact file: one pass over the upload that stores, parses and checksums it
//! at once, and stops reading as soon as any of them refuses.
//!
//! The body is copied chunk by chunk to two places: the blob store (as a stream) and the
//! format reader (on a blocking thread, through a bounded channel). Memory stays flat in the
//! file's size, and a file that fails to parse, is too large, or whose client goes away
//! leaves nothing in storage.

use std::io::Read;
use std::sync::Arc;

use artifact_format::{FormatError, ParsedArtifact, ReadOptions};
use axum::extract::multipart::Field;
use blob_store::{BlobError, BlobStore};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Why an upload was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("artifact file larger than the maximum of {max} bytes")]
    TooLarge { max: u64 },
    #[error("the upload would exceed the storage limit of {limit} bytes ({usage} in use)")]
    OverStorageLimit { limit: u64, usage: u64 },
    #[error("{0}")]
    Invalid(FormatError),
    #[error("upload interrupted: {0}")]
    Interrupted(String),
    /// The `size` part said one thing and the file another.
    #[error(
        "size: the artifact file is {received} bytes, not the {declared} the size part declares"
    )]
    SizeMismatch { declared: u64, received: u64 },
    #[error(transparent)]
    Storage(BlobError),
}

/// How much this upload may hold.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    pub max_bytes: u64,
    /// The size the client declared in the `size` part, if it sent one.
    pub declared: Option<u64>,
    /// The tenant's limit and its current usage, when it has a limit.
    pub storage: Option<(u64, u64)>,
}

/// Feeds the format reader from the upload; reading blocks until the next chunk arrives.
struct ChunkReader {
    chunks: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let count = buffer.len().min(self.current.len());
        buffer[..count].copy_from_slice(&self.current.split_to(count));
        Ok(count)
    }
}

/// Stores and parses the `artifact` part under `key`. On any error nothing stays stored.
pub async fn receive(
    field: &mut Field<'_>,
    store: &Arc<dyn BlobStore>,
    key: &str,
    limits: UploadLimits,
    options: Arc<ReadOptions>,
) -> Result<ParsedArtifact, UploadError> {
    let (to_reader, from_upload) = mpsc::channel::<Bytes>(8);
    let reader = tokio::task::spawn_blocking(move || {
        artifact_format::read_artifact(
            ChunkReader {
                chunks: from_upload,
                current: Bytes::new(),
            },
            &options,
        )
    });
    let (to_store, from_upload) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let stored = store.put(key, Box::pin(ReceiverStream::new(from_upload)));

    let copied = async move {
        let mut received = 0u64;
        // Whether the whole part arrived: only then can its size be held against `size`.
        let mut complete = false;
        let outcome = loop {
            let chunk = match field.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    complete = true;
                    break Ok(());
                }
                Err(error) => break Err(UploadError::Interrupted(error.body_text())),
            };
            received += chunk.len() as u64;
            if let Some(declared) = limits.declared.filter(|declared| received > *declared) {
                break Err(UploadError::SizeMismatch { declared, received });
            }
            if received > limits.max_bytes {
                break Err(UploadError::TooLarge {
                    max: limits.max_bytes,
                });
            }
            if let Some((limit, usage)) = limits.storage {
                if usage.saturating_add(received) > limit {
                    break Err(UploadError::OverStorageLimit { limit, usage });
                }
            }
            // The reader gone means it refused the file: stop reading (its error says why)
            // and abort the stored copy.
            if to_reader.send(chunk.clone()).await.is_err() {
                let _ = to_store
                    .send(Err(std::io::Error::other("refused by the artifact reader")))
                    .await;
                break Ok(());
            }
            if to_store.send(Ok(chunk)).await.is_err() {
                break Ok(());
            }
        };
        let outcome = match (outcome, limits.declared) {
            (Ok(()), Some(declared)) if complete && declared != received => {
                Err(UploadError::SizeMismatch { declared, received })
            }
            (outcome, _) => outcome,
        };
        if let Err(error) = &outcome {
            let _ = to_store
                .send(Err(std::io::Error::other(error.to_string())))
                .await;
        }
        drop(to_reader);
        outcome
    };
    let (copied, stored) = tokio::join!(copied, stored);
    let parsed = reader
        .await
        .map_err(|error| UploadError::Interrupted(error.to_string()))?;

    let outcome = match (copied, parsed, stored) {
        (Err(error), _, _) => Err(error),
        // A store that failed stops the copy, and the reader then sees a truncated file:
        // the store's failure is the cause, and it is ours, not the client's.
        (Ok(()), _, Err(error @ (BlobError::Full(_) | BlobError::Storage(_)))) => {
            Err(UploadError::Storage(error))
        }
        (Ok(()), Err(error), _) => Err(UploadError::Invalid(error)),
        (Ok(()), Ok(_), Err(error)) => Err(UploadError::Storage(error)),
        (Ok(()), Ok(parsed), Ok(_)) => Ok(parsed),
    };
    if outcome.is_err() {
        // The put may have completed before the reader refused the file's end.
        if let Err(error) = store.delete(key).await {
            tracing::error!(%error, key, "cannot remove a refused upload");
        }
    }
    outcome
}

//! Where artifact files live. The [`BlobStore`] port has two adapters: a local directory (the
//! embedded default, whose download links the service signs itself) and an S3-compatible
//! store (feature `s3`, presigned links).

mod local;
#[cfg(feature = "s3")]
pub mod s3;
mod settings;
mod signing;

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::Stream;

pub use local::LocalDirectory;
pub use settings::{OpenedStore, StorageBackend, StorageSettings};
pub use signing::{LinkError, UrlSigner, DOWNLOAD_PATH};

/// Bytes on their way in or out; an `Err` item aborts the transfer.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The body stream failed: the client went away, or the reader refused the content.
    #[error("upload aborted: {0}")]
    Aborted(std::io::Error),
    /// The store has no room (a full disk, a quota): nothing was kept.
    #[error("no space left in artifact storage: {0}")]
    Full(String),
    #[error("artifact storage failed: {0}")]
    Storage(String),
}

/// An artifact file's storage.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `body` under `key` and returns its size. A body that ends in an error stores
    /// nothing: no partial object is ever visible under `key`.
    async fn put(&self, key: &str, body: ByteStream) -> Result<u64, BlobError>;

    /// Removes the object; removing a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<(), BlobError>;

    /// Whether an object exists, for health checks and tests.
    async fn exists(&self, key: &str) -> Result<bool, BlobError>;

    /// A link that lets anyone holding it GET (and HEAD) the object until `expires`.
    async fn download_link(&self, key: &str, expires: DateTime<Utc>) -> Result<String, BlobError>;

    /// Removes what uploads cut short by a crash left behind (partial files, unfinished
    /// multipart uploads) and returns how many it removed. Never touches an upload that may
    /// still be under way.
    async fn remove_incomplete(&self) -> Result<usize, BlobError>;
}

/// The storage key of a tenant's artifact. Tenant ids come from verified tokens; anything
/// outside a conservative alphabet is hex-encoded so no tenant can shape another's path.
pub fn artifact_key(tenant: &str, artifact_id: events::ArtifactId) -> String {
    let tenant = if tenant.is_empty() {
        "default".to_owned()
    } else if tenant
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        format!("t_{tenant}")
    } else {
        format!("x_{}", hex::encode(tenant))
    };
    format!("artifacts/{tenant}/{artifact_id}")
}

/// Checks that a key is one [`artifact_key`] could have made, before it becomes a path.
pub fn valid_key(key: &str) -> bool {
    let mut parts = key.split('/');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("artifacts"), Some(tenant), Some(id), None)
            if !tenant.is_empty()
                && tenant.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && uuid::Uuid::parse_str(id).is_ok()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_and_cannot_escape_their_tenant() {
        let id = events::ArtifactId::new();
        for tenant in ["", "5f0d2a3b4c5d6e7f80912345", "../../etc", "a/b", "ünï"] {
            let key = artifact_key(tenant, id);
            assert!(valid_key(&key), "{key}");
            assert!(!key.contains(".."));
            assert_eq!(key.matches('/').count(), 2);
        }
        assert_ne!(artifact_key("ab", id), artifact_key("x_6162", id));
        assert!(!valid_key("artifacts/../x"));
        assert!(!valid_key("artifacts/default/not-a-uuid"));
        assert!(!valid_key(&format!("artifacts/default/{id}/more")));
    }
}

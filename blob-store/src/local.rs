//! Artifact files in a local directory, the embedded default.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::signing::UrlSigner;
use crate::{valid_key, BlobError, BlobStore, ByteStream};

pub struct LocalDirectory {
    root: PathBuf,
    signer: UrlSigner,
    /// Partial files older than this were left by an earlier run: one process writes to a
    /// local store, and its own uploads clean up after themselves.
    opened_at: std::time::SystemTime,
}

fn storage(error: std::io::Error) -> BlobError {
    // ENOSPC, and EDQUOT, which Rust reports as the same kind.
    if error.kind() == std::io::ErrorKind::StorageFull
        || error.kind() == std::io::ErrorKind::QuotaExceeded
    {
        BlobError::Full(error.to_string())
    } else {
        BlobError::Storage(error.to_string())
    }
}

impl LocalDirectory {
    /// Files live under `root`; download links are signed by `signer`.
    pub async fn open(root: impl Into<PathBuf>, signer: UrlSigner) -> Result<Self, BlobError> {
        let root = root.into();
        let incoming = root.join(".incoming");
        tokio::fs::create_dir_all(&incoming)
            .await
            .map_err(storage)?;
        // The file system's own clock, which is coarser than the system's: a file written
        // after this moment can never look older than it.
        let probe = incoming.join(format!(".opened-{}", uuid::Uuid::new_v4()));
        tokio::fs::write(&probe, b"").await.map_err(storage)?;
        let opened_at = tokio::fs::metadata(&probe)
            .await
            .and_then(|metadata| metadata.modified())
            .map_err(storage)?;
        remove_if_present(&probe).await?;
        Ok(Self {
            root,
            signer,
            opened_at,
        })
    }

    /// The file behind a key, for the route that serves signed links; `None` for keys no
    /// artifact could have.
    pub fn path_of(&self, key: &str) -> Option<PathBuf> {
        valid_key(key).then(|| self.root.join(key))
    }

    pub fn signer(&self) -> &UrlSigner {
        &self.signer
    }

    fn path(&self, key: &str) -> Result<PathBuf, BlobError> {
        self.path_of(key)
            .ok_or_else(|| BlobError::Storage(format!("invalid storage key {key}")))
    }
}

async fn write_all(file: &mut tokio::fs::File, mut body: ByteStream) -> Result<u64, BlobError> {
    let mut written = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(BlobError::Aborted)?;
        file.write_all(&chunk).await.map_err(storage)?;
        written += chunk.len() as u64;
    }
    // On disk before it becomes visible: a crash must not leave a short file under the key.
    file.sync_all().await.map_err(storage)?;
    Ok(written)
}

async fn remove_if_present(path: &Path) -> Result<(), BlobError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(storage(error)),
    }
}

#[async_trait]
impl BlobStore for LocalDirectory {
    async fn put(&self, key: &str, body: ByteStream) -> Result<u64, BlobError> {
        let target = self.path(key)?;
        // Written aside and renamed into place, so the key never names a partial file.
        let incoming = self
            .root
            .join(".incoming")
            .join(uuid::Uuid::new_v4().to_string());
        let mut file = tokio::fs::File::create(&incoming).await.map_err(storage)?;
        let written = write_all(&mut file, body).await;
        drop(file);
        let outcome = match written {
            Ok(size) => {
                async {
                    if let Some(parent) = target.parent() {
                        tokio::fs::create_dir_all(parent).await.map_err(storage)?;
                    }
                    tokio::fs::rename(&incoming, &target)
                        .await
                        .map_err(storage)?;
                    Ok(size)
                }
                .await
            }
            Err(error) => Err(error),
        };
        if outcome.is_err() {
            remove_if_present(&incoming).await?;
        }
        outcome
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        remove_if_present(&self.path(key)?).await
    }

    async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        tokio::fs::try_exists(self.path(key)?)
            .await
            .map_err(storage)
    }

    async fn download_link(&self, key: &str, expires: DateTime<Utc>) -> Result<String, BlobError> {
        self.path(key)?;
        Ok(self.signer.link(key, expires))
    }

    async fn remove_incomplete(&self) -> Result<usize, BlobError> {
        let mut removed = 0;
        let mut entries = tokio::fs::read_dir(self.root.join(".incoming"))
            .await
            .map_err(storage)?;
        while let Some(entry) = entries.next_entry().await.map_err(storage)? {
            let modified = entry
                .metadata()
                .await
                .and_then(|metadata| metadata.modified())
                .map_err(storage)?;
            if modified < self.opened_at {
                remove_if_present(&entry.path()).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn body(chunks: Vec<Result<&'static str, std::io::ErrorKind>>) -> ByteStream {
        Box::pin(futures::stream::iter(chunks.into_iter().map(|chunk| {
            chunk
                .map(|text| Bytes::from_static(text.as_bytes()))
                .map_err(std::io::Error::from)
        })))
    }

    async fn store() -> (tempfile::TempDir, LocalDirectory) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirectory::open(dir.path(), UrlSigner::new(b"k".to_vec(), "http://x"))
            .await
            .unwrap();
        (dir, store)
    }

    fn files_under(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    files_under(&entry.path())
                } else {
                    1
                }
            })
            .sum()
    }

    #[tokio::test]
    async fn a_complete_body_is_stored_and_deleted() {
        let (dir, store) = store().await;
        let key = crate::artifact_key("", events::ArtifactId::new());
        let size = store
            .put(&key, body(vec![Ok("hello "), Ok("world")]))
            .await
            .unwrap();
        assert_eq!(size, 11);
        assert_eq!(
            std::fs::read_to_string(store.path_of(&key).unwrap()).unwrap(),
            "hello world"
        );
        assert!(store.exists(&key).await.unwrap());
        store.delete(&key).await.unwrap();
        store.delete(&key).await.unwrap();
        assert!(!store.exists(&key).await.unwrap());
        assert_eq!(files_under(dir.path()), 0);
    }

    #[tokio::test]
    async fn an_aborted_body_leaves_nothing_behind() {
        let (dir, store) = store().await;
        let key = crate::artifact_key("", events::ArtifactId::new());
        let outcome = store
            .put(
                &key,
                body(vec![
                    Ok("partial"),
                    Err(std::io::ErrorKind::ConnectionReset),
                ]),
            )
            .await;
        assert!(matches!(outcome, Err(BlobError::Aborted(_))));
        assert!(!store.exists(&key).await.unwrap());
        assert_eq!(files_under(dir.path()), 0);
    }

    #[tokio::test]
    async fn partial_files_of_an_earlier_run_are_removed_and_current_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let incoming = dir.path().join(".incoming");
        std::fs::create_dir_all(&incoming).unwrap();
        std::fs::write(incoming.join("crashed"), b"partial").unwrap();
        // Past the file system's clock tick.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let store = LocalDirectory::open(dir.path(), UrlSigner::new(b"k".to_vec(), "http://x"))
            .await
            .unwrap();
        std::fs::write(incoming.join("under-way"), b"partial").unwrap();
        assert_eq!(store.remove_incomplete().await.unwrap(), 1);
        assert!(!incoming.join("crashed").exists());
        assert!(incoming.join("under-way").exists());
    }

    #[tokio::test]
    async fn keys_that_no_artifact_could_have_are_refused() {
        let (_dir, store) = store().await;
        assert!(store.put("../escape", body(vec![Ok("x")])).await.is_err());
        assert!(store
            .path_of("artifacts/default/../../etc/passwd")
            .is_none());
    }
}

//! Which store holds artifact files, and how download links are made.

use std::path::PathBuf;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::{BlobError, BlobStore, LocalDirectory, UrlSigner};

/// Storage settings, shared by both services.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StorageSettings {
    /// `local` (a directory; the embedded default) or `s3`.
    pub backend: StorageBackend,
    /// Directory of the local store.
    pub local_dir: PathBuf,
    /// Base URL devices and operators reach this server under; local download links start
    /// with it.
    pub public_url: String,
    /// Secret that signs local download links; required for the local store (the embedded
    /// server makes one in its data directory).
    pub link_secret: Option<SecretString>,
    /// Largest artifact file accepted, in bytes (10 GiB); larger uploads get 413.
    pub max_upload_bytes: u64,
    /// Bytes of artifact files each tenant may store; 0 for no limit.
    pub limit_bytes: u64,
    /// Per-tenant limits that replace `limit_bytes` (tenant id → bytes; 0 for no limit).
    pub tenant_limits: std::collections::BTreeMap<String, u64>,
    /// The S3-compatible store, for `backend = "s3"`.
    #[cfg(feature = "s3")]
    pub s3: crate::s3::S3Settings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    #[default]
    Local,
    S3,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            backend: StorageBackend::Local,
            local_dir: PathBuf::from("data/artifacts"),
            public_url: "http://127.0.0.1:8080".to_owned(),
            link_secret: None,
            max_upload_bytes: 10 * 1024 * 1024 * 1024,
            limit_bytes: 0,
            tenant_limits: std::collections::BTreeMap::new(),
            #[cfg(feature = "s3")]
            s3: crate::s3::S3Settings::default(),
        }
    }
}

/// The configured store; for the local one also the directory, whose links this service
/// serves itself.
pub struct OpenedStore {
    pub store: Arc<dyn BlobStore>,
    pub local: Option<Arc<LocalDirectory>>,
}

impl StorageSettings {
    /// The storage limit of one tenant in bytes; 0 for none.
    pub fn limit_for(&self, tenant: &str) -> u64 {
        self.tenant_limits
            .get(tenant)
            .copied()
            .unwrap_or(self.limit_bytes)
    }

    pub async fn open(&self) -> Result<OpenedStore, BlobError> {
        match self.backend {
            StorageBackend::Local => {
                let secret = self.link_secret.as_ref().ok_or_else(|| {
                    BlobError::Storage("storage.link_secret is required for the local store".into())
                })?;
                let local = Arc::new(
                    LocalDirectory::open(
                        &self.local_dir,
                        UrlSigner::new(
                            secret.expose_secret().as_bytes().to_vec(),
                            &self.public_url,
                        ),
                    )
                    .await?,
                );
                Ok(OpenedStore {
                    store: local.clone(),
                    local: Some(local),
                })
            }
            #[cfg(feature = "s3")]
            StorageBackend::S3 => Ok(OpenedStore {
                store: Arc::new(crate::s3::S3Store::connect(&self.s3).await?),
                local: None,
            }),
            #[cfg(not(feature = "s3"))]
            StorageBackend::S3 => Err(BlobError::Storage(
                "this build has no S3 support (cargo feature `s3`)".into(),
            )),
        }
    }
}

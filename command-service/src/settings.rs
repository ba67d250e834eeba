//! The command service's settings, loaded by `http_edge::service::load_settings`.

use std::net::SocketAddr;
use std::path::PathBuf;

use blob_store::StorageSettings;
use http_edge::auth::AuthSettings;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CommandSettings {
    /// Address the service listens on.
    pub listen: SocketAddr,
    /// The event log: `postgres://...` or `sqlite://<file>`.
    pub event_log_url: String,
    /// Longest wait for the read side, in milliseconds.
    pub read_wait_ms: u64,
    /// Connections in the event log's pool.
    pub max_connections: u32,
    pub auth: AuthSettings,
    pub storage: StorageSettings,
    pub artifacts: ArtifactSettings,
    /// Connection limits, timeouts and the shutdown grace period.
    pub http: http_edge::serve::HttpSettings,
    /// The most devices one deployment may list; more is 400.
    pub max_deployment_devices: usize,
    /// The most devices that may be accepted at once (deviceauth's `max_devices` limit);
    /// accepting one more is 422. Unset: no limit.
    pub max_devices: Option<u64>,
}

/// Enough for a large fleet in one deployment, small enough that one request cannot make
/// the catalog hold millions of entries.
pub const DEFAULT_MAX_DEPLOYMENT_DEVICES: usize = 100_000;

/// How uploaded artifacts are checked.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ArtifactSettings {
    /// PEM public keys (RSA, EC P-256); when any is set, uploads must carry a signature that
    /// verifies against one of them.
    pub verification_keys: Vec<PathBuf>,
}

impl Default for CommandSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            event_log_url: "sqlite://data/events.db".to_owned(),
            read_wait_ms: 5000,
            max_connections: 10,
            auth: AuthSettings::default(),
            storage: StorageSettings::default(),
            artifacts: ArtifactSettings::default(),
            http: Default::default(),
            max_deployment_devices: DEFAULT_MAX_DEPLOYMENT_DEVICES,
            max_devices: None,
        }
    }
}

impl ArtifactSettings {
    /// The reader's options: the configured verification keys, loaded.
    pub fn reader_options(&self) -> anyhow::Result<artifact_format::ReadOptions> {
        let mut verification_keys = Vec::new();
        for path in &self.verification_keys {
            let pem = std::fs::read(path)
                .map_err(|error| anyhow::anyhow!("reading {}: {error}", path.display()))?;
            verification_keys.push(
                artifact_format::VerificationKey::from_pem(&pem)
                    .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?,
            );
        }
        Ok(artifact_format::ReadOptions { verification_keys })
    }
}

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
    /// Device admission (`auth_requests`) and inventory attributes, for a fleet with no other
    /// Mender service.
    pub standalone: AdmissionSettings,
    /// How often device timeouts and failure policies are checked, in milliseconds: a timeout
    /// fires at most this late, and so does a policy that racing reports left untripped.
    pub rollout_check_ms: u64,
}

/// How devices are admitted: the `standalone.*` keys the command service reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AdmissionSettings {
    /// Serve `auth_requests` and inventory attributes at all; off when the server sits
    /// behind Mender's own deviceauth and inventory.
    pub enabled: bool,
    /// Accept every device whose request is signed by the key it presents.
    pub auto_accept: bool,
    /// Device identities accepted without an operator when `auto_accept` is off: `id_data`
    /// JSON objects, as text.
    pub preauthorized_identities: Vec<String>,
    /// PEM files of device public keys (`PUBLIC KEY` blocks, any number per file) accepted
    /// without an operator when `auto_accept` is off.
    pub preauthorized_keys: Vec<PathBuf>,
    /// Lifetime of device tokens, in hours.
    pub device_token_hours: u32,
    /// Admission requests allowed per minute per device identity. 0: no limit.
    pub auth_requests_per_minute: u32,
    /// Admission requests allowed per minute per client address (a fleet behind one NAT
    /// shares it). 0: no limit.
    pub auth_requests_per_address_per_minute: u32,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            auto_accept: true,
            preauthorized_identities: Vec::new(),
            preauthorized_keys: Vec::new(),
            // Mender's deviceauth defaults to a week.
            device_token_hours: 168,
            auth_requests_per_minute: 10,
            auth_requests_per_address_per_minute: 600,
        }
    }
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

impl CommandSettings {
    /// Keys (and tables) only the query service reads: the two services of a split
    /// deployment can share one settings file or environment.
    pub const READ_BY_THE_QUERY_SERVICE: &[&str] = &[
        "read_models_url",
        "projector",
        "relay",
        "console",
        "download_link_seconds",
        "time_travel_concurrency",
    ];
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
            standalone: AdmissionSettings::default(),
            rollout_check_ms: 5_000,
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

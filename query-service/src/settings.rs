//! The query service's settings, loaded by `http_edge::service::load_settings`.

use blob_store::StorageSettings;
use http_edge::auth::AuthSettings;
use serde::Deserialize;
use std::net::SocketAddr;

use crate::projector::ProjectorSettings;
use crate::relay::RelaySettings;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct QuerySettings {
    /// Address the service listens on.
    pub listen: SocketAddr,
    /// The event log: `postgres://...` or `sqlite://<file>`.
    pub event_log_url: String,
    /// The read models: `postgres://...` or `sqlite://<file>`.
    pub read_models_url: String,
    /// Connections per pool.
    pub max_connections: u32,
    pub auth: AuthSettings,
    pub projector: ProjectorSettings,
    pub storage: StorageSettings,
    /// Lifetime of the download links the management API hands out, in seconds.
    pub download_link_seconds: u64,
    /// Longest wait of a read that names a log position (`X-Deployments-Log-Position`), in ms.
    pub read_wait_ms: u64,
    /// Publishing events to RabbitMQ; off unless `relay.amqp_url` is set.
    pub relay: RelaySettings,
    /// Connection limits, timeouts and the shutdown grace period.
    pub http: http_edge::serve::HttpSettings,
    /// Reads of the past (`as_of`) replayed at once, at most one per tenant; more wait
    /// `read_wait_ms`, then get 503.
    pub time_travel_concurrency: usize,
    /// The most devices that may be accepted at once, as `GET .../limits/max_devices`
    /// shows it (the command service enforces it); unset: no limit, shown as -1.
    pub max_devices: Option<u64>,
    /// The web console at `/ui/`: served when `console.api_url` names the gateway.
    pub console: console::ConsoleSettings,
}

impl QuerySettings {
    /// Keys (and tables) only the command service reads: the two services of a split
    /// deployment can share one settings file or environment.
    pub const READ_BY_THE_COMMAND_SERVICE: &[&str] = &[
        "artifacts",
        "standalone",
        "max_deployment_devices",
        "rollout_check_ms",
    ];
}

impl Default for QuerySettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            event_log_url: "sqlite://data/events.db".to_owned(),
            read_models_url: "sqlite://data/read-models.db".to_owned(),
            max_connections: 10,
            auth: AuthSettings::default(),
            projector: ProjectorSettings::default(),
            storage: StorageSettings::default(),
            download_link_seconds: 900,
            read_wait_ms: 5000,
            relay: RelaySettings::default(),
            http: Default::default(),
            time_travel_concurrency: 2,
            max_devices: None,
            console: console::ConsoleSettings::default(),
        }
    }
}

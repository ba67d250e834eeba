//! The command service's settings, loaded by `http_edge::service::load_settings`.

use std::net::SocketAddr;

use http_edge::auth::AuthSettings;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CommandSettings {
    /// Address the service listens on.
    pub listen: SocketAddr,
    /// The event log: `postgres://...` or `sqlite://<file>`.
    pub event_log_url: String,
    /// Connections in the event log's pool.
    pub max_connections: u32,
    pub auth: AuthSettings,
}

impl Default for CommandSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            event_log_url: "sqlite://data/events.db".to_owned(),
            max_connections: 10,
            auth: AuthSettings::default(),
        }
    }
}

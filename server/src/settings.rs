//! Settings of the all-in-one server. Every key has a default that works with nothing else
//! installed; see the README for the table.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use http_edge::auth::AuthSettings;
use query_service::projector::ProjectorSettings;
use rand::RngCore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerSettings {
    /// Address to serve the whole API on.
    pub listen: SocketAddr,
    /// Where embedded data lives: the SQLite files and the development signing secret.
    pub data_dir: PathBuf,
    /// The event log; `sqlite://<data_dir>/events.db` when unset.
    pub event_log_url: Option<String>,
    /// The read models; `sqlite://<data_dir>/read-models.db` when unset.
    pub read_models_url: Option<String>,
    /// Connections per PostgreSQL pool.
    pub max_connections: u32,
    pub auth: AuthSettings,
    pub projector: ProjectorSettings,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            event_log_url: None,
            read_models_url: None,
            max_connections: 10,
            auth: AuthSettings::default(),
            projector: ProjectorSettings::default(),
        }
    }
}

impl ServerSettings {
    pub fn event_log_url(&self) -> String {
        self.event_log_url
            .clone()
            .unwrap_or_else(|| sqlite_url(&self.data_dir, "events.db"))
    }

    pub fn read_models_url(&self) -> String {
        self.read_models_url
            .clone()
            .unwrap_or_else(|| sqlite_url(&self.data_dir, "read-models.db"))
    }

    pub fn query_settings(&self) -> query_service::settings::QuerySettings {
        query_service::settings::QuerySettings {
            listen: self.listen,
            event_log_url: self.event_log_url(),
            read_models_url: self.read_models_url(),
            max_connections: self.max_connections,
            auth: self.auth.clone(),
            projector: self.projector.clone(),
        }
    }

    /// With no key configured, the embedded server signs and verifies with an HS256 secret of
    /// its own, made once and kept in the data directory so tokens outlive restarts.
    pub fn with_development_key(mut self) -> anyhow::Result<Self> {
        let configured = self.auth.hs256_secret.is_some()
            || !self.auth.public_keys.is_empty()
            || self.auth.signing_key.is_some();
        if configured {
            return Ok(self);
        }
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating {}", self.data_dir.display()))?;
        let path = self.data_dir.join("hs256.secret");
        let secret = match std::fs::read_to_string(&path) {
            Ok(secret) => secret.trim().to_owned(),
            Err(_) => {
                let mut bytes = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut bytes);
                let secret = base64::engine::general_purpose::STANDARD.encode(bytes);
                write_private(&path, &secret)?;
                secret
            }
        };
        self.auth.hs256_secret = Some(secret);
        Ok(self)
    }
}

fn sqlite_url(dir: &Path, file: &str) -> String {
    format!("sqlite://{}", dir.join(file).display())
}

fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        file.write_all(content.as_bytes())?;
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::write(path, content).with_context(|| format!("creating {}", path.display()))
    }
}

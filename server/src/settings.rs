//! Settings of the all-in-one server. Every key has a default that works with nothing else
//! installed; see the README for the table.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use blob_store::StorageSettings;
use command_service::settings::ArtifactSettings;
use http_edge::auth::AuthSettings;
use query_service::projector::ProjectorSettings;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
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
    /// Artifact storage; the local directory defaults to `<data_dir>/artifacts`, the public
    /// URL to `http://<listen>`, and the link secret to one kept in `<data_dir>/link.secret`.
    pub storage: StorageSettings,
    pub artifacts: ArtifactSettings,
    /// Longest wait of a command for its reads, in milliseconds.
    pub read_wait_ms: u64,
    /// Lifetime of management download links, in seconds.
    pub download_link_seconds: u64,
    /// Publishing events to RabbitMQ; off unless `relay.amqp_url` is set.
    pub relay: query_service::relay::RelaySettings,
    /// Device admission, inventory attributes and the administrator's login, for a fleet
    /// with no other Mender service; on by default.
    pub standalone: crate::standalone::StandaloneSettings,
    /// Connection limits, timeouts and the shutdown grace period.
    pub http: http_edge::serve::HttpSettings,
    /// The most devices one deployment may list.
    pub max_deployment_devices: usize,
    /// Reads of the past (`as_of`) replayed at once, at most one per tenant.
    pub time_travel_concurrency: usize,
    /// The most devices that may be accepted at once; unset: no limit.
    pub max_devices: Option<u64>,
    /// How often device timeouts and failure policies are checked, in milliseconds.
    pub rollout_check_ms: u64,
    /// The web console at `/ui/`; on by default.
    pub console: console::ConsoleSettings,
}

impl ServerSettings {
    /// The settings from the layered sources (see `http_edge::service::load_settings`);
    /// every key must be one this server reads.
    pub fn load(file: Option<&Path>) -> Result<Self, http_edge::service::SettingsError> {
        let settings: Self = http_edge::service::load_settings(file, &[])?;
        // `standalone` flattens the command service's admission keys into the login's, and
        // serde drops unknown keys of a flattened table unseen: check that table by name.
        let unknown = http_edge::service::unknown_in_section(
            file,
            "standalone",
            &crate::standalone::StandaloneSettings::keys(),
        )?;
        if unknown.is_empty() {
            Ok(settings)
        } else {
            Err(http_edge::service::SettingsError::Unknown(unknown))
        }
    }
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
            storage: StorageSettings::default(),
            artifacts: ArtifactSettings::default(),
            read_wait_ms: 5000,
            download_link_seconds: 900,
            relay: Default::default(),
            standalone: Default::default(),
            http: Default::default(),
            max_deployment_devices: command_service::settings::DEFAULT_MAX_DEPLOYMENT_DEVICES,
            time_travel_concurrency: 2,
            max_devices: None,
            rollout_check_ms: 5_000,
            console: console::ConsoleSettings::default(),
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
            storage: self.storage.clone(),
            download_link_seconds: self.download_link_seconds,
            read_wait_ms: self.read_wait_ms,
            relay: self.relay.clone(),
            http: self.http.clone(),
            time_travel_concurrency: self.time_travel_concurrency,
            max_devices: self.max_devices,
            // The all-in-one server mounts the console itself, over its own routes.
            console: console::ConsoleSettings {
                enabled: false,
                api_url: None,
            },
        }
    }

    pub fn command_settings(&self) -> command_service::settings::CommandSettings {
        command_service::settings::CommandSettings {
            listen: self.listen,
            event_log_url: self.event_log_url(),
            read_wait_ms: self.read_wait_ms,
            max_connections: self.max_connections,
            auth: self.auth.clone(),
            storage: self.storage.clone(),
            artifacts: self.artifacts.clone(),
            http: self.http.clone(),
            max_deployment_devices: self.max_deployment_devices,
            max_devices: self.max_devices,
            standalone: self.standalone.admission.clone(),
            rollout_check_ms: self.rollout_check_ms,
        }
    }

    /// Where local artifact files are: `storage.local_dir`, or `artifacts` in the data
    /// directory when it is left at its default.
    pub fn local_artifacts_dir(&self) -> PathBuf {
        if self.storage.local_dir == StorageSettings::default().local_dir {
            self.data_dir.join("artifacts")
        } else {
            self.storage.local_dir.clone()
        }
    }

    /// Fills the storage defaults that depend on the data directory and the bound port.
    pub fn with_local_storage(mut self, port: u16) -> anyhow::Result<Self> {
        let defaults = StorageSettings::default();
        self.storage.local_dir = self.local_artifacts_dir();
        let local = self.storage.backend == blob_store::StorageBackend::Local;
        if local && self.storage.public_url == defaults.public_url {
            // Links naming 0.0.0.0 or [::] reach no one: the operator says where devices
            // reach this server.
            if self.listen.ip().is_unspecified() {
                anyhow::bail!(
                    "listening on {} (every address) leaves download links without a host \
                     devices can reach: set storage.public_url (DEPLOYMENTS_STORAGE__PUBLIC_URL) \
                     to the URL devices and operators use, e.g. http://deployments.example.com:{port}",
                    self.listen
                );
            }
            let scheme = match self.http.tls_certificate {
                Some(_) => "https",
                None => "http",
            };
            self.storage.public_url = format!(
                "{scheme}://{}",
                std::net::SocketAddr::new(self.listen.ip(), port)
            );
        }
        if self.storage.link_secret.is_none() {
            self.storage.link_secret =
                Some(crate::secrets::kept_secret(&self.data_dir, "link.secret")?.into());
        }
        Ok(self)
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
        self.auth.hs256_secret =
            Some(crate::secrets::kept_secret(&self.data_dir, "hs256.secret")?.into());
        Ok(self)
    }
}

fn sqlite_url(dir: &Path, file: &str) -> String {
    format!("sqlite://{}", dir.join(file).display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_secret_shows_when_the_settings_are_printed() {
        let mut settings = ServerSettings::default();
        settings.auth.hs256_secret = Some("hs256-secret-value".into());
        settings.storage.link_secret = Some("link-secret-value".into());
        settings.storage.s3.secret_access_key = Some("s3-secret-value".into());
        settings.standalone.admin_password = Some("admin-password-value".into());
        let printed = format!("{settings:?}\n{settings:#?}");
        for secret in [
            "hs256-secret-value",
            "link-secret-value",
            "s3-secret-value",
            "admin-password-value",
        ] {
            assert!(!printed.contains(secret), "{secret} printed");
        }
    }

    #[test]
    fn download_links_name_an_address_devices_can_reach() {
        let data = tempfile::tempdir().unwrap();
        let on = |listen: &str, public_url: Option<&str>| {
            let mut settings = ServerSettings {
                listen: listen.parse().unwrap(),
                data_dir: data.path().to_owned(),
                ..ServerSettings::default()
            };
            if let Some(url) = public_url {
                settings.storage.public_url = url.to_owned();
            }
            settings
                .with_local_storage(8443)
                .map(|s| s.storage.public_url)
        };
        assert_eq!(on("127.0.0.1:0", None).unwrap(), "http://127.0.0.1:8443");
        assert_eq!(on("[::1]:0", None).unwrap(), "http://[::1]:8443");
        for every in ["0.0.0.0:8080", "[::]:8080"] {
            let error = on(every, None).unwrap_err().to_string();
            assert!(error.contains("set storage.public_url"), "{error}");
            assert_eq!(
                on(every, Some("https://updates.example.com")).unwrap(),
                "https://updates.example.com"
            );
        }
    }

    #[test]
    fn a_settings_file_sets_what_it_names_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("deployments.toml");
        std::fs::write(
            &file,
            "read_wait_ms = 250\n[auth]\nhs256_secret = \"from the file\"\n\
             [standalone]\nadmin_password = \"hunter2\"\n",
        )
        .unwrap();
        let settings = ServerSettings::load(Some(file.as_path())).unwrap();
        assert_eq!(settings.read_wait_ms, 250);
        let secret = settings.auth.hs256_secret.as_ref().unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(secret),
            "from the file"
        );
        assert_eq!(settings.download_link_seconds, 900);
        assert_eq!(settings.auth.leeway_seconds, 30);
        assert_eq!(settings.http.max_connections, 1000);
        assert_eq!(settings.standalone.admin_email, "admin@example.com");
    }
}

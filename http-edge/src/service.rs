//! What every service binary does the same way: settings, logs, the edge layers, shutdown.

use std::path::Path;

use axum::{middleware, Router};
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::de::DeserializeOwned;

/// A settings problem found at start, before anything is opened.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value that does not fit its key (figment names the key and where it came from).
    #[error(transparent)]
    Invalid(#[from] Box<figment::Error>),
    /// Keys nothing reads: a typo, or a setting of another release. Each entry names the key
    /// and where it came from.
    #[error("unknown settings (nothing reads them; see the README's configuration tables): {}", .0.join("; "))]
    Unknown(Vec<String>),
}

/// Environment variables with the settings' prefix that are not settings.
const NOT_SETTINGS: [&str; 2] = ["config", "log_format"];

/// The layered sources: the TOML file when given, then `DEPLOYMENTS_*` environment
/// variables, `__` separating levels (`DEPLOYMENTS_AUTH__MODE`).
fn sources(file: Option<&Path>) -> Figment {
    let mut figment = Figment::new();
    if let Some(file) = file {
        figment = figment.merge(Toml::file_exact(file));
    }
    figment.merge(
        Env::prefixed("DEPLOYMENTS_")
            .ignore(&NOT_SETTINGS)
            .split("__"),
    )
}

/// Where a key was set, for an error message: the file, or the environment variable.
fn origin(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(metadata) if metadata.name.contains("environment") => format!(
            "`{key}` (environment variable DEPLOYMENTS_{})",
            key.replace('.', "__").to_uppercase()
        ),
        Some(metadata) => match &metadata.source {
            Some(source) => format!("`{key}` (in {source})"),
            None => format!("`{key}` ({})", metadata.name),
        },
        None => format!("`{key}`"),
    }
}

/// Layers typed settings: defaults (the embedded mode's, which every settings type fills in
/// field by field with `#[serde(default)]`), then the TOML file when given, then
/// `DEPLOYMENTS_*` environment variables. A key no field reads is an error naming it and its
/// source, unless it starts with one of `read_elsewhere`: the keys another binary of the
/// split deployment reads, so that both services can share one file or environment.
pub fn load_settings<T: DeserializeOwned>(
    file: Option<&Path>,
    read_elsewhere: &[&str],
) -> Result<T, SettingsError> {
    let figment = sources(file);
    let Checked { settings, ignored } = figment.extract::<Checked<T>>().map_err(Box::new)?;
    let unknown: Vec<String> = ignored
        .into_iter()
        .filter(|key| {
            !read_elsewhere
                .iter()
                .any(|known| key == known || key.starts_with(&format!("{known}.")))
        })
        .map(|key| origin(&figment, &key))
        .collect();
    if unknown.is_empty() {
        Ok(settings)
    } else {
        Err(SettingsError::Unknown(unknown))
    }
}

/// The keys under `section` (a table serde reads through `#[serde(flatten)]`, where unknown
/// keys are dropped unseen) that are not in `known`, each with its source.
pub fn unknown_in_section(
    file: Option<&Path>,
    section: &str,
    known: &[String],
) -> Result<Vec<String>, SettingsError> {
    let figment = sources(file);
    let value = match figment.find_value(section) {
        Ok(value) => value,
        Err(_) => return Ok(Vec::new()),
    };
    let Some(table) = value.as_dict() else {
        return Ok(Vec::new());
    };
    Ok(table
        .keys()
        .filter(|key| !known.iter().any(|known| known == *key))
        .map(|key| origin(&figment, &format!("{section}.{key}")))
        .collect())
}

/// Settings and the keys their deserialization passed over.
struct Checked<T> {
    settings: T,
    ignored: Vec<String>,
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Checked<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut ignored = Vec::new();
        let settings =
            serde_ignored::deserialize(deserializer, |path| ignored.push(path.to_string()))?;
        Ok(Self { settings, ignored })
    }
}

/// Adds what every route needs: request ids and spans, and Mender's 404/405 bodies.
pub fn with_edge(routes: Router) -> Router {
    routes
        .fallback(crate::fallback_not_found)
        .method_not_allowed_fallback(crate::method_not_allowed)
        .layer(middleware::from_fn(crate::with_request_id))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}

/// Whether logs are JSON lines (`DEPLOYMENTS_LOG_FORMAT=json`): then nothing else may be
/// written to stderr.
pub fn json_logs() -> bool {
    std::env::var("DEPLOYMENTS_LOG_FORMAT").as_deref() == Ok("json")
}

/// Structured logs on stderr: JSON when `DEPLOYMENTS_LOG_FORMAT=json`, text otherwise, in
/// colour only on a terminal (a journal or a log file gets no escape codes); levels from
/// `RUST_LOG` (default `info`).
pub fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json_logs() {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// A bound listener and the router it serves, plus tasks that live as long as the server.
pub struct HttpServer {
    listener: tokio::net::TcpListener,
    router: Router,
    background: Vec<tokio::task::JoinHandle<()>>,
    settings: crate::serve::HttpSettings,
    tls: Option<crate::tls::ServerTls>,
}

impl HttpServer {
    /// Binds now, so the port is known (and taken) before serving starts.
    pub async fn bind(address: std::net::SocketAddr, router: Router) -> std::io::Result<Self> {
        Ok(Self::on(
            tokio::net::TcpListener::bind(address).await?,
            router,
        ))
    }

    /// Serves on a listener bound earlier (when the router needs to know the port).
    pub fn on(listener: tokio::net::TcpListener, router: Router) -> Self {
        Self {
            listener,
            router,
            background: Vec::new(),
            settings: crate::serve::HttpSettings::default(),
            tls: None,
        }
    }

    /// Connection limits, timeouts, the shutdown grace period, and TLS (whose files are
    /// read now, so that a wrong one stops the start).
    pub fn with_settings(
        mut self,
        settings: crate::serve::HttpSettings,
    ) -> Result<Self, crate::tls::TlsError> {
        self.tls = crate::tls::ServerTls::load(
            settings.tls_certificate.as_deref(),
            settings.tls_key.as_deref(),
        )?;
        self.settings = settings;
        Ok(self)
    }

    /// Whether connections are served with TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Tasks (projectors, relays) stopped when serving ends.
    pub fn with_background(mut self, tasks: Vec<tokio::task::JoinHandle<()>>) -> Self {
        self.background.extend(tasks);
        self
    }

    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map_or(0, |address| address.port())
    }

    /// Serves until `shutdown` completes, lets in-flight requests finish within the grace
    /// period, then stops the background tasks.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let served = crate::serve::serve(
            self.listener,
            self.router,
            &self.settings,
            self.tls,
            shutdown,
        )
        .await;
        for task in self.background {
            task.abort();
        }
        served
    }
}

/// `GET .../alive`: the process is up.
pub async fn alive() -> axum::http::StatusCode {
    axum::http::StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default)]
    struct Settings {
        read_wait_ms: u64,
        storage: Storage,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default)]
    struct Storage {
        bucket: String,
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn known_keys_load() {
        let file = file("read_wait_ms = 7\n[storage]\nbucket = \"b\"\n");
        let settings: Settings = load_settings(Some(file.path()), &[]).unwrap();
        assert_eq!(
            (settings.read_wait_ms, settings.storage.bucket.as_str()),
            (7, "b")
        );
    }

    #[test]
    fn a_key_nothing_reads_is_refused_naming_it_and_the_file() {
        let file = file("read_wait_ms = 7\n[storage]\nbukcet = \"b\"\n[nonsense]\nx = 1\n");
        let error = load_settings::<Settings>(Some(file.path()), &[]).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("`storage.bukcet`"), "{message}");
        assert!(
            message.contains("`nonsense.x`") || message.contains("`nonsense`"),
            "{message}"
        );
        assert!(
            message.contains(&file.path().display().to_string()),
            "{message}"
        );
    }

    #[test]
    fn keys_another_service_reads_pass() {
        let file = file("read_wait_ms = 7\nread_models_url = \"x\"\n[relay]\namqp_url = \"y\"\n");
        let settings: Settings =
            load_settings(Some(file.path()), &["read_models_url", "relay"]).unwrap();
        assert_eq!(settings.read_wait_ms, 7);
        // A prefix only counts as a whole key or table name.
        let file = self::file("relay_typo = 1\n");
        assert!(load_settings::<Settings>(Some(file.path()), &["relay"]).is_err());
    }

    #[test]
    fn a_value_that_does_not_fit_is_refused_naming_the_key() {
        let file = file("read_wait_ms = \"soon\"\n");
        let message = load_settings::<Settings>(Some(file.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(message.contains("read_wait_ms"), "{message}");
    }
}

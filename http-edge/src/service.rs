//! What every service binary does the same way: settings, logs, the edge layers, shutdown.

use std::path::Path;

use axum::{middleware, Router};
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

/// Layers typed settings: defaults (the embedded mode's, which every settings type fills in
/// field by field with `#[serde(default)]`), then the TOML file when given, then
/// `DEPLOYMENTS_*` environment variables, `__` separating levels (`DEPLOYMENTS_AUTH__MODE`).
pub fn load_settings<T: for<'de> Deserialize<'de>>(
    file: Option<&Path>,
) -> Result<T, Box<figment::Error>> {
    let mut figment = Figment::new();
    if let Some(file) = file {
        figment = figment.merge(Toml::file_exact(file));
    }
    figment
        .merge(Env::prefixed("DEPLOYMENTS_").split("__"))
        .extract()
        .map_err(Box::new)
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

/// Structured logs on stderr: JSON when `DEPLOYMENTS_LOG_FORMAT=json`, text otherwise;
/// levels from `RUST_LOG` (default `info`).
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("DEPLOYMENTS_LOG_FORMAT").as_deref() == Ok("json") {
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
        }
    }

    /// Connection limits, timeouts and the shutdown grace period.
    pub fn with_settings(mut self, settings: crate::serve::HttpSettings) -> Self {
        self.settings = settings;
        self
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
        let served =
            crate::serve::serve(self.listener, self.router, &self.settings, shutdown).await;
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

//! What every service binary does the same way: settings, logs, the edge layers, shutdown.

use std::path::Path;

use axum::{middleware, Router};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Layers typed settings: defaults (the embedded mode's), then the TOML file when given, then
/// `DEPLOYMENTS_*` environment variables, `__` separating levels (`DEPLOYMENTS_AUTH__MODE`).
pub fn load_settings<T: Serialize + for<'de> Deserialize<'de> + Default>(
    file: Option<&Path>,
) -> Result<T, Box<figment::Error>> {
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(file) = file {
        figment = figment.merge(Toml::file_exact(file));
    }
    figment
        .merge(Env::prefixed("DEPLOYMENTS_").split("__"))
        .extract()
        .map_err(Box::new)
}

/// The settings file named by `DEPLOYMENTS_CONFIG`, if any.
pub fn settings_file() -> Option<std::path::PathBuf> {
    std::env::var_os("DEPLOYMENTS_CONFIG").map(std::path::PathBuf::from)
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

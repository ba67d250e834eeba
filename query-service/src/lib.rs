//! The query service: projects the event log into read models and serves every read.

pub mod error;
pub mod http;
pub mod projections;
pub mod projector;
pub mod read_models;
pub mod settings;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use events::{EventLog, Position};
use http_edge::auth::Verifier;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http::AppState;
use crate::projections::DeploymentsProjection;
use crate::projector::Projector;
use crate::read_models::ReadModels;
use crate::settings::QuerySettings;

/// The service's parts, before anything runs: routes to serve and projectors to spawn.
pub struct QueryService {
    pub state: AppState,
    pub projectors: Vec<Projector>,
}

impl QueryService {
    pub async fn new(
        settings: &QuerySettings,
        log: Arc<dyn EventLog>,
        verifier: Arc<Verifier>,
    ) -> anyhow::Result<Self> {
        let read_models = ReadModels::connect(&settings.read_models_url, settings.max_connections)
            .await
            .context("opening the read models")?;
        let projectors = vec![Projector::new(
            log.clone(),
            read_models.clone(),
            Arc::new(DeploymentsProjection),
            settings.projector.clone(),
        )];
        Ok(Self {
            state: AppState {
                read_models,
                log,
                verifier,
            },
            projectors,
        })
    }

    /// Starts every projector; they run until the returned handles are aborted.
    pub fn spawn_projectors(&mut self) -> Vec<(watch::Receiver<Position>, tokio::task::JoinHandle<()>)> {
        self.projectors
            .drain(..)
            .map(|projector| {
                let applied = projector.applied();
                (applied, tokio::spawn(projector.run()))
            })
            .collect()
    }
}

/// The query service on its own, as the split deployment runs it.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    projectors: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    pub async fn build(settings: QuerySettings) -> anyhow::Result<Self> {
        let log = events::open_log(&settings.event_log_url, settings.max_connections)
            .await
            .context("opening the event log")?;
        let verifier = Arc::new(Verifier::from_settings(&settings.auth)?);
        let mut service = QueryService::new(&settings, log, verifier).await?;
        let projectors = service
            .spawn_projectors()
            .into_iter()
            .map(|(_, handle)| handle)
            .collect();
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        Ok(Self {
            listener,
            router: http::router(service.state),
            projectors,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |address| address.port())
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await;
        for projector in self.projectors {
            projector.abort();
        }
        served.context("serving HTTP")
    }
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

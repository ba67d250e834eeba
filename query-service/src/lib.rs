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
    pub fn spawn_projectors(
        &mut self,
    ) -> Vec<(watch::Receiver<Position>, tokio::task::JoinHandle<()>)> {
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
        self.listener
            .local_addr()
            .map_or(0, |address| address.port())
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await;
        for projector in self.projectors {
            projector.abort();
        }
        served.context("serving HTTP")
    }
}

//! The query service: projects the event log into read models and serves every read.

pub mod error;
pub mod http;
pub mod projections;
pub mod projector;
pub mod read_models;
pub mod rebuild;
pub mod relay;
pub mod rollout;
pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use blob_store::OpenedStore;
use event_log::EventLog;
use events::Position;
use http_edge::auth::Verifier;
use http_edge::service::HttpServer;
use tokio::sync::watch;

use crate::http::AppState;
use crate::projector::Projector;
use crate::read_models::ReadModels;
use crate::settings::QuerySettings;

/// The service's parts, before anything runs: routes to serve and projectors to spawn.
pub struct QueryService {
    pub state: AppState,
    pub projectors: Vec<Projector>,
    /// Publishes events to a broker, when one is configured.
    pub relay: Option<relay::Relay>,
    /// How often to look for a generation a rebuild made live.
    switch_check: Duration,
}

impl QueryService {
    pub async fn new(
        settings: &QuerySettings,
        log: Arc<dyn EventLog>,
        verifier: Arc<Verifier>,
        storage: OpenedStore,
    ) -> anyhow::Result<Self> {
        let read_models = ReadModels::connect(&settings.read_models_url, settings.max_connections)
            .await
            .context("opening the read models")?;
        // Every projection says how far its reads go before the service serves anything, so
        // that a command never waits on the projections that happened to start first: the
        // log's readers are the lowest of the published positions, and one not yet published
        // would not count.
        for projection in projections::all() {
            let name = projection.name();
            let checkpoint = read_models
                .checkpoint(name)
                .await
                .with_context(|| format!("reading the {name} projection's checkpoint"))?;
            log.publish_applied(name, checkpoint)
                .await
                .with_context(|| format!("publishing how far the {name} projection is"))?;
        }
        let projectors = projections::all()
            .into_iter()
            .map(|projection| {
                Projector::new(
                    log.clone(),
                    read_models.clone(),
                    projection,
                    settings.projector.clone(),
                )
            })
            .collect();
        let relay = relay::Relay::new(log.clone(), read_models.clone(), settings.relay.clone());
        Ok(Self {
            relay,
            switch_check: Duration::from_millis(settings.projector.switch_check_ms),
            state: AppState {
                read_models,
                log,
                verifier,
                store: storage.store,
                local: storage.local,
                storage: Arc::new(settings.storage.clone()),
                download_link_seconds: settings.download_link_seconds,
                read_wait_ms: settings.read_wait_ms,
                replays: Arc::new(http::time_travel::Replays::new(
                    settings.time_travel_concurrency,
                    Duration::from_millis(settings.read_wait_ms),
                )),
                max_devices: settings.max_devices,
            },
            projectors,
        })
    }

    /// How far each projector has got, for commands that wait for their reads.
    pub fn applied(&self) -> Vec<watch::Receiver<Position>> {
        self.projectors.iter().map(Projector::applied).collect()
    }

    /// Starts every projector, the relay and the watch for rebuilt generations; they run
    /// until the returned handles are aborted.
    pub fn spawn_projectors(&mut self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks: Vec<_> = self
            .projectors
            .drain(..)
            .map(|projector| tokio::spawn(projector.run()))
            .collect();
        tasks.push(tokio::spawn(
            self.state
                .read_models
                .clone()
                .follow_switches(self.switch_check),
        ));
        if let Some(relay) = self.relay.take() {
            tasks.push(tokio::spawn(relay.run()));
        }
        tasks
    }
}

/// The query service on its own, as the split deployment runs it.
pub struct Application;

impl Application {
    pub async fn build(settings: QuerySettings) -> anyhow::Result<HttpServer> {
        let log = event_log::open_log(&settings.event_log_url, settings.max_connections)
            .await
            .context("opening the event log")?;
        let verifier = Arc::new(Verifier::from_settings(&settings.auth)?);
        let storage = settings
            .storage
            .open()
            .await
            .context("opening artifact storage")?;
        let mut service = QueryService::new(&settings, log, verifier, storage).await?;
        let projectors = service.spawn_projectors();
        let mut routes = http::routes(service.state);
        match (&settings.console.api_url, settings.console.enabled) {
            (Some(api_url), true) => {
                // The console reads and writes through the gateway, as any client: reads come
                // back here, writes go to the command service.
                routes = routes.merge(console::routes(console::Api::remote(api_url)));
                tracing::info!(api_url, "web console enabled at /ui/");
            }
            (None, true) => tracing::info!(
                "web console off: set console.api_url to the gateway's URL to serve it here"
            ),
            (_, false) => {}
        }
        let router = http_edge::service::with_edge(routes);
        let server = HttpServer::bind(settings.listen, router)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        Ok(server
            .with_settings(settings.http.clone())?
            .with_background(projectors))
    }
}

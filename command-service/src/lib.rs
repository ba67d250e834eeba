//! The command service: validates commands, decides them into events and appends those to
//! the log. It serves the write half of the management API and the whole device API.

pub mod application;
pub mod catalog;
pub mod device_key;
pub mod domain;
pub mod error;
pub mod http;
pub mod read_side;
pub mod rollout_checks;
pub mod settings;
pub mod upload;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use blob_store::BlobStore;
use event_log::EventLog;
use http_edge::auth::Verifier;
use http_edge::service::HttpServer;

use crate::catalog::Catalog;
use crate::http::{AppState, ArtifactStorage, DeviceDoor};
use crate::read_side::ReadSide;
use crate::settings::CommandSettings;

/// The service's parts: its state for the routes and the tasks that keep its tables fresh.
pub struct CommandService {
    pub state: AppState,
    pub background: Vec<tokio::task::JoinHandle<()>>,
}

impl CommandService {
    pub fn new(
        settings: &CommandSettings,
        log: Arc<dyn EventLog>,
        verifier: Arc<Verifier>,
        store: Arc<dyn BlobStore>,
        read_side: Arc<dyn ReadSide>,
    ) -> anyhow::Result<Self> {
        let catalog = Arc::new(Catalog::default());
        let pipeline = application::Pipeline::new(log.clone(), catalog.clone());
        let background = vec![
            tokio::spawn(catalog.clone().follow(log.clone())),
            tokio::spawn(remove_incomplete_uploads(store.clone())),
            tokio::spawn(rollout_checks::keep(
                pipeline.clone(),
                catalog.clone(),
                Duration::from_millis(settings.rollout_check_ms.max(100)),
            )),
        ];
        Ok(Self {
            state: AppState {
                pipeline,
                log,
                verifier,
                artifacts: Arc::new(ArtifactStorage {
                    store,
                    storage: settings.storage.clone(),
                    reader_options: Arc::new(settings.artifacts.reader_options()?),
                }),
                catalog,
                read_side,
                read_wait: Duration::from_millis(settings.read_wait_ms),
                max_deployment_devices: settings.max_deployment_devices,
                max_devices: settings.max_devices,
                door: DeviceDoor::from_settings(&settings.standalone, &settings.auth)?
                    .map(Arc::new),
            },
            background,
        })
    }
}

/// At start and every hour, removes what uploads cut short by a crash left in the store:
/// they hold space no event accounts for.
async fn remove_incomplete_uploads(store: Arc<dyn BlobStore>) {
    let mut every_hour = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every_hour.tick().await;
        match store.remove_incomplete().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed what interrupted uploads left"),
            Err(error) => tracing::warn!(%error, "cannot look for interrupted uploads"),
        }
    }
}

/// The command service on its own, as the split deployment runs it.
pub struct Application;

impl Application {
    pub async fn build(settings: CommandSettings) -> anyhow::Result<HttpServer> {
        let log = event_log::open_log(&settings.event_log_url, settings.max_connections)
            .await
            .context("opening the event log")?;
        let verifier = Arc::new(Verifier::from_settings(&settings.auth)?);
        let store = settings
            .storage
            .open()
            .await
            .context("opening artifact storage")?
            .store;
        // Whichever instance of the query service projects, it publishes how far it got
        // through the log this service shares.
        let read_side: Arc<dyn ReadSide> = Arc::new(read_side::LogReaders::new(log.clone()));
        let service = CommandService::new(&settings, log, verifier, store, read_side)?;
        let server = HttpServer::bind(settings.listen, http::router(service.state))
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        Ok(server
            .with_settings(settings.http.clone())?
            .with_background(service.background))
    }
}

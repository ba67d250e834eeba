//! The all-in-one server: the command and query services in one process, sharing one event
//! log, on embedded SQLite storage unless configured otherwise.

pub mod backup;
pub mod secrets;
pub mod settings;
pub mod standalone;

use std::sync::Arc;

use anyhow::Context;
use command_service::read_side::{FirstOf, InProcess, LogReaders};
use command_service::CommandService;
use http_edge::auth::Verifier;
use http_edge::service::HttpServer;
use query_service::QueryService;

use crate::settings::ServerSettings;

pub struct Server;

impl Server {
    pub async fn build(settings: ServerSettings) -> anyhow::Result<HttpServer> {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let settings = settings.with_development_key()?.with_local_storage(port)?;
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating {}", settings.data_dir.display()))?;
        let log = event_log::open_log(&settings.event_log_url(), settings.max_connections)
            .await
            .context("opening the event log")?;
        let verifier = Arc::new(Verifier::from_settings(&settings.auth)?);
        let storage = settings
            .storage
            .open()
            .await
            .context("opening artifact storage")?;
        let store = storage.store.clone();
        let mut query = QueryService::new(
            &settings.query_settings(),
            log.clone(),
            verifier.clone(),
            storage,
        )
        .await?;
        crate::secrets::restrict_databases(&settings.data_dir)?;
        // This process's projectors when it runs them; another instance's, through the log,
        // when that one holds the projections.
        let read_side = Arc::new(FirstOf(vec![
            Arc::new(InProcess(query.applied())),
            Arc::new(LogReaders::new(log.clone())),
        ]));
        let command = CommandService::new(
            &settings.command_settings(),
            log,
            verifier.clone(),
            store,
            read_side,
        )?;
        let standalone = standalone::routes(
            &settings.standalone,
            &settings.auth,
            &settings.data_dir,
            verifier,
        )?;
        let mut background = query.spawn_projectors();
        background.extend(command.background);
        let mut routes = command_service::http::routes(command.state)
            .merge(query_service::http::routes(query.state));
        if let Some(standalone) = standalone {
            routes = routes.merge(standalone);
        }
        if settings.console.enabled {
            // The console calls the API in process, through the same edge as any client.
            let api = console::Api::in_process(http_edge::service::with_edge(routes.clone()));
            routes = routes.merge(console::routes(api));
        }
        let router = http_edge::service::with_edge(routes);
        Ok(HttpServer::on(listener, router)
            .with_settings(settings.http.clone())?
            .with_background(background))
    }
}

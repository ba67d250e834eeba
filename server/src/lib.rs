//! The all-in-one server: the command and query services in one process, sharing one event
//! log, on embedded SQLite storage unless configured otherwise.

pub mod settings;

use std::sync::Arc;

use anyhow::Context;
use http_edge::auth::Verifier;
use http_edge::service::HttpServer;
use query_service::QueryService;

use crate::settings::ServerSettings;

pub struct Server;

impl Server {
    pub async fn build(settings: ServerSettings) -> anyhow::Result<HttpServer> {
        let settings = settings.with_development_key()?;
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating {}", settings.data_dir.display()))?;
        let log = events::open_log(&settings.event_log_url(), settings.max_connections)
            .await
            .context("opening the event log")?;
        let verifier = Arc::new(Verifier::from_settings(&settings.auth)?);
        let mut query =
            QueryService::new(&settings.query_settings(), log.clone(), verifier.clone()).await?;
        let projectors = query.spawn_projectors();
        let command =
            command_service::http::routes(command_service::http::AppState { log, verifier });
        let router =
            http_edge::service::with_edge(command.merge(query_service::http::routes(query.state)));
        let server = HttpServer::bind(settings.listen, router)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        Ok(server.with_background(projectors))
    }
}

//! The command service: validates commands, decides them into events and appends those to
//! the log. It serves the write half of the management API and the whole device API.

pub mod error;
pub mod http;
pub mod settings;

use std::sync::Arc;

use anyhow::Context;
use http_edge::auth::Verifier;
use http_edge::service::HttpServer;

use crate::http::AppState;
use crate::settings::CommandSettings;

/// The command service on its own, as the split deployment runs it.
pub struct Application;

impl Application {
    pub async fn build(settings: CommandSettings) -> anyhow::Result<HttpServer> {
        let log = events::open_log(&settings.event_log_url, settings.max_connections)
            .await
            .context("opening the event log")?;
        let verifier = Arc::new(Verifier::from_settings(&settings.auth)?);
        HttpServer::bind(settings.listen, http::router(AppState { log, verifier }))
            .await
            .with_context(|| format!("binding {}", settings.listen))
    }
}

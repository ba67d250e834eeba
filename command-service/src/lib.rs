//! The command service: validates commands, decides them into events and appends those to
//! the log. It serves the write half of the management API and the whole device API.

pub mod error;
pub mod http;
pub mod settings;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use http_edge::auth::Verifier;
use tokio::net::TcpListener;

use crate::http::AppState;
use crate::settings::CommandSettings;

/// The command service on its own, as the split deployment runs it.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
}

impl Application {
    pub async fn build(settings: CommandSettings) -> anyhow::Result<Self> {
        let log = events::open_log(&settings.event_log_url, settings.max_connections)
            .await
            .context("opening the event log")?;
        let verifier = Arc::new(Verifier::from_settings(&settings.auth)?);
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        Ok(Self {
            listener,
            router: http::router(AppState { log, verifier }),
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
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")
    }
}

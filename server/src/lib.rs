//! The all-in-one server: the command and query services in one process, sharing one event
//! log, on embedded SQLite storage unless configured otherwise.

pub mod settings;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use http_edge::auth::Verifier;
use query_service::QueryService;
use tokio::net::TcpListener;

use crate::settings::ServerSettings;

pub struct Server {
    listener: TcpListener,
    router: axum::Router,
    projectors: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn build(settings: ServerSettings) -> anyhow::Result<Self> {
        let settings = settings.with_development_key()?;
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating {}", settings.data_dir.display()))?;
        let log = events::open_log(&settings.event_log_url(), settings.max_connections)
            .await
            .context("opening the event log")?;
        let verifier = Arc::new(Verifier::from_settings(&settings.auth)?);
        let mut query =
            QueryService::new(&settings.query_settings(), log.clone(), verifier.clone()).await?;
        let projectors = query
            .spawn_projectors()
            .into_iter()
            .map(|(_, handle)| handle)
            .collect();
        let command =
            command_service::http::routes(command_service::http::AppState { log, verifier });
        let router =
            http_edge::service::with_edge(command.merge(query_service::http::routes(query.state)));
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        Ok(Self {
            listener,
            router,
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

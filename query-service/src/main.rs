use query_service::settings::{load, QuerySettings};
use query_service::{init_tracing, shutdown_signal, Application};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let file = std::env::var_os("DEPLOYMENTS_CONFIG").map(std::path::PathBuf::from);
    let settings: QuerySettings = load(file.as_deref())?;
    let application = Application::build(settings).await?;
    tracing::info!(port = application.port(), "query service listening");
    application.run_until(shutdown_signal()).await
}

use http_edge::service::{init_tracing, load_settings, settings_file, shutdown_signal};
use query_service::settings::QuerySettings;
use query_service::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let settings: QuerySettings = load_settings(settings_file().as_deref())?;
    let application = Application::build(settings).await?;
    tracing::info!(port = application.port(), "query service listening");
    Ok(application.run_until(shutdown_signal()).await?)
}

use command_service::settings::CommandSettings;
use command_service::Application;
use http_edge::service::{init_tracing, load_settings, settings_file, shutdown_signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let settings: CommandSettings = load_settings(settings_file().as_deref())?;
    let application = Application::build(settings).await?;
    tracing::info!(port = application.port(), "command service listening");
    Ok(application.run_until(shutdown_signal()).await?)
}

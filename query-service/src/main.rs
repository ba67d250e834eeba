use std::path::PathBuf;

use clap::Parser;
use http_edge::service::{init_tracing, load_settings, shutdown_signal};
use query_service::settings::QuerySettings;
use query_service::Application;

/// The query service of a split deployment: projects the log into read models, serves every
/// management read and the web console, and relays events to AMQP.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// A TOML settings file; `DEPLOYMENTS_*` environment variables override it.
    #[arg(long, env = "DEPLOYMENTS_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    let settings: QuerySettings = load_settings(
        cli.config.as_deref(),
        QuerySettings::READ_BY_THE_COMMAND_SERVICE,
    )?;
    let application = Application::build(settings).await?;
    tracing::info!(port = application.port(), "query service listening");
    Ok(application.run_until(shutdown_signal()).await?)
}

use std::path::PathBuf;

use clap::Parser;
use command_service::settings::CommandSettings;
use command_service::Application;
use http_edge::service::{init_tracing, load_settings, shutdown_signal};

/// The command service of a split deployment: decides management writes and the device API
/// into events on the log.
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
    let settings: CommandSettings = load_settings(
        cli.config.as_deref(),
        CommandSettings::READ_BY_THE_QUERY_SERVICE,
    )?;
    let application = Application::build(settings).await?;
    tracing::info!(port = application.port(), "command service listening");
    Ok(application.run_until(shutdown_signal()).await?)
}

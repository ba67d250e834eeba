use std::path::PathBuf;

use clap::{Parser, Subcommand};
use deployments::settings::ServerSettings;
use deployments::Server;
use events::TenantId;
use http_edge::auth::{Issuer, TokenKind};
use http_edge::service::{init_tracing, shutdown_signal};

/// An event-sourced, Mender-compatible deployments server.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// A TOML settings file; `DEPLOYMENTS_*` environment variables override it.
    #[arg(long, global = true, env = "DEPLOYMENTS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the management, device and internal APIs (the default).
    Serve,
    /// Print a token signed with the configured key.
    Token {
        /// A user token for this user id.
        #[arg(long, conflicts_with = "device", required_unless_present = "device")]
        user: Option<String>,
        /// A device token for this device id.
        #[arg(long)]
        device: Option<String>,
        /// The tenant the token is scoped to (none by default).
        #[arg(long, default_value = "")]
        tenant: String,
        /// Hours until the token expires.
        #[arg(long, default_value_t = 24)]
        hours: i64,
    },
    /// Replay the whole log into a new generation of the read models while the current one
    /// keeps serving, then make it live; running servers switch to it by themselves.
    Rebuild,
    /// Copy the embedded store (event log, read models, local artifact files, the server's
    /// own secrets) into one file while the server runs. PostgreSQL and S3 are backed up
    /// with their own tools (README, "Backups").
    Backup {
        /// The backup file to write (replaced atomically if it exists).
        file: PathBuf,
    },
    /// Restore a backup into an empty data directory; then start the server, or run
    /// `rebuild` first to replay the restored log into new read models.
    Restore {
        /// A file `backup` wrote.
        file: PathBuf,
    },
    /// Print the log, all tenants, as one JSON envelope a line (NDJSON), for auditors.
    Events {
        /// Start after this log position (0: from the beginning).
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Keep printing new events as they are committed.
        #[arg(long)]
        follow: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // What the server creates in its data directory (databases, artifacts, folders) is its
    // owner's and its group's only; secrets are narrower still (0600).
    deployments::secrets::restrict_new_files();
    let settings = ServerSettings::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            init_tracing();
            let server = Server::build(settings).await?;
            tracing::info!(port = server.port(), "deployments server listening");
            if !http_edge::service::json_logs() {
                eprintln!(
                    "Serving on port {}. Get a token with:\n  cargo run --release -- token --user admin",
                    server.port()
                );
            }
            Ok(server.run_until(shutdown_signal()).await?)
        }
        Command::Token {
            user,
            device,
            tenant,
            hours,
        } => {
            let settings = settings.with_development_key()?;
            let issuer = Issuer::from_settings(&settings.auth)?;
            let (subject, kind) = match (user, device) {
                (Some(user), _) => (user, TokenKind::User),
                (None, Some(device)) => (device, TokenKind::Device),
                (None, None) => anyhow::bail!("name a --user or a --device"),
            };
            let claims = Issuer::claims(
                &subject,
                &TenantId::new(tenant),
                kind,
                chrono::Duration::hours(hours),
            );
            println!("{}", issuer.issue(&claims));
            Ok(())
        }
        Command::Events { after, follow } => {
            use std::io::Write;
            let log = event_log::open_log(&settings.event_log_url(), 2).await?;
            let mut subscription =
                event_log::Subscription::new(log.clone(), events::Position(after), 1000);
            let mut out = std::io::stdout().lock();
            loop {
                if !follow && subscription.position() >= log.head().await? {
                    return Ok(());
                }
                for event in subscription.next_batch().await? {
                    serde_json::to_writer(&mut out, &event)?;
                    out.write_all(b"\n")?;
                }
                out.flush()?;
            }
        }
        Command::Backup { file } => {
            let manifest = deployments::backup::backup(&settings, &file).await?;
            eprintln!(
                "Backed up the log to position {} (read models generation {}, {} artifact files, \
                 {} secrets) in {}.",
                manifest.log_head,
                manifest.read_models_generation,
                manifest.artifact_files,
                manifest.secrets.len(),
                file.display()
            );
            Ok(())
        }
        Command::Restore { file } => {
            let manifest = deployments::backup::restore(&settings, &file)?;
            eprintln!(
                "Restored the backup of {} (log to position {}, {} artifact files) into {}.",
                manifest.created_at.to_rfc3339(),
                manifest.log_head,
                manifest.artifact_files,
                settings.data_dir.display()
            );
            Ok(())
        }
        Command::Rebuild => {
            init_tracing();
            let log = event_log::open_log(&settings.event_log_url(), 2).await?;
            let read_models =
                query_service::read_models::ReadModels::connect(&settings.read_models_url(), 4)
                    .await?;
            let mut reported = std::time::Instant::now();
            let rebuilt = query_service::rebuild::rebuild(
                &read_models,
                log,
                settings.projector.clone(),
                |reached, head| {
                    if reported.elapsed() >= std::time::Duration::from_secs(2) {
                        eprintln!("replayed {} of {} events", reached.0, head.0);
                        reported = std::time::Instant::now();
                    }
                },
            )
            .await?;
            if !rebuilt.dropped.is_empty() {
                eprintln!("Dropped earlier generations {:?}.", rebuilt.dropped);
            }
            eprintln!(
                "Generation {} is live, built up to log position {}; running servers switch to it \
                 within projector.switch_check_ms.",
                rebuilt.generation, rebuilt.position.0
            );
            Ok(())
        }
    }
}

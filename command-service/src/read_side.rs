//! Read-your-writes: a command answers only once the read side shows its events.
//!
//! The wait is bounded; the answer carries the log position in `X-Deployments-Log-Position`
//! either way, so a client that got an answer before the read side caught up can ask a read
//! to wait for that position.

use std::time::Duration;

use async_trait::async_trait;
use events::Position;
use tokio::sync::watch;

/// Response header naming the log position of a command's last event.
pub const LOG_POSITION_HEADER: &str = "x-deployments-log-position";

#[async_trait]
pub trait ReadSide: Send + Sync + 'static {
    /// Waits (at most `limit`) until every projection has applied `position`; says whether
    /// it got there.
    async fn wait_for(&self, position: Position, limit: Duration) -> bool;
}

/// Projectors in this process (the all-in-one server).
pub struct InProcess(pub Vec<watch::Receiver<Position>>);

#[async_trait]
impl ReadSide for InProcess {
    async fn wait_for(&self, position: Position, limit: Duration) -> bool {
        let all = async {
            for applied in &self.0 {
                let mut applied = applied.clone();
                if applied.wait_for(|at| *at >= position).await.is_err() {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(limit, all).await.unwrap_or(false)
    }
}

/// Projectors in other processes: their checkpoints, polled in the read-model generation
/// that is live.
pub struct Checkpoints {
    url: String,
    base: sqlx::AnyPool,
    live: tokio::sync::Mutex<(u64, sqlx::AnyPool)>,
}

impl Checkpoints {
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let base = Self::pool(url).await?;
        Ok(Self {
            url: url.to_owned(),
            live: tokio::sync::Mutex::new((0, base.clone())),
            base,
        })
    }

    async fn pool(url: &str) -> Result<sqlx::AnyPool, sqlx::Error> {
        sqlx::any::AnyPoolOptions::new()
            .max_connections(4)
            .connect(url)
            .await
    }

    async fn slowest(&self) -> Option<Position> {
        // A rebuild moves the reads to a new generation; before the query service first
        // migrates there is no generations table, and generation 0 is the one.
        let live: i64 = sqlx::query_scalar(
            "SELECT MAX(generation) FROM read_model_generations WHERE state = 'live'",
        )
        .fetch_one(&self.base)
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
        let mut cached = self.live.lock().await;
        if cached.0 != live as u64 {
            let url = event_log::generation_url(&self.url, live as u64);
            *cached = (live as u64, Self::pool(&url).await.ok()?);
        }
        let slowest: Option<i64> =
            sqlx::query_scalar("SELECT MIN(position) FROM projection_checkpoints")
                .fetch_one(&cached.1)
                .await
                .ok()?;
        slowest.map(|position| Position(position as u64))
    }
}

#[async_trait]
impl ReadSide for Checkpoints {
    async fn wait_for(&self, position: Position, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.slowest().await.is_some_and(|at| at >= position) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// No read side to wait for (a command service run without one).
pub struct NoReadSide;

#[async_trait]
impl ReadSide for NoReadSide {
    async fn wait_for(&self, _: Position, _: Duration) -> bool {
        false
    }
}

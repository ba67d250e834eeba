//! Runs a projection: reads the log from the projection's checkpoint and writes each batch's
//! read-model changes together with the new checkpoint in one transaction, so a crash at any
//! point neither loses nor doubles an update.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use events::{EventLog, Position, RecordedEvent, Subscription};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};
use tokio::sync::watch;

use crate::read_models::ReadModels;

/// Turns events into read-model rows.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Names the projection's checkpoint; never renamed once deployed.
    fn name(&self) -> &'static str;

    /// Applies one event inside the batch's transaction.
    async fn apply(
        &self,
        transaction: &mut Transaction<'static, Any>,
        event: &RecordedEvent,
    ) -> anyhow::Result<()>;
}

/// How the projector reads and waits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectorSettings {
    /// Events applied per transaction.
    pub batch_size: usize,
    /// How often to read the log when no commit notification arrives, in milliseconds.
    pub poll_interval_ms: u64,
    /// How often an instance that does not hold a projection tries to take it over, in ms.
    pub takeover_interval_ms: u64,
}

impl Default for ProjectorSettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval_ms: 500,
            takeover_interval_ms: 1000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error("the checkpoint moved under the projector (a rebuild or a second projector)")]
    CheckpointMoved,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

pub struct Projector {
    log: Arc<dyn EventLog>,
    read_models: ReadModels,
    projection: Arc<dyn Projection>,
    settings: ProjectorSettings,
    applied: watch::Sender<Position>,
}

impl Projector {
    pub fn new(
        log: Arc<dyn EventLog>,
        read_models: ReadModels,
        projection: Arc<dyn Projection>,
        settings: ProjectorSettings,
    ) -> Self {
        Self {
            log,
            read_models,
            projection,
            settings,
            applied: watch::channel(Position::START).0,
        }
    }

    /// The position the read models reflect, as far as this instance knows.
    pub fn applied(&self) -> watch::Receiver<Position> {
        self.applied.subscribe()
    }

    /// Projects until the task is dropped, taking over whenever the lock becomes free and
    /// starting again from the stored checkpoint after any failure.
    pub async fn run(self) {
        let name = self.projection.name();
        let retry = Duration::from_millis(self.settings.takeover_interval_ms);
        loop {
            let lock = match self.read_models.lock_projection(name, retry).await {
                Ok(lock) => lock,
                Err(error) => {
                    tracing::error!(projection = name, %error, "cannot take the projection lock");
                    tokio::time::sleep(retry).await;
                    continue;
                }
            };
            tracing::info!(projection = name, "projecting");
            match self.project().await {
                Err(BatchError::CheckpointMoved) => {
                    tracing::info!(projection = name, "checkpoint moved; resuming from it")
                }
                Err(BatchError::Failed(error)) => {
                    tracing::error!(projection = name, error = %format!("{error:#}"), "projection failed; retrying");
                    tokio::time::sleep(retry).await;
                }
                Ok(()) => {}
            }
            drop(lock);
        }
    }

    async fn project(&self) -> Result<(), BatchError> {
        let name = self.projection.name();
        let mut checkpoint = self
            .read_models
            .checkpoint(name)
            .await
            .map_err(anyhow::Error::from)?;
        self.applied.send_replace(checkpoint);
        let mut subscription =
            Subscription::new(self.log.clone(), checkpoint, self.settings.batch_size)
                .with_poll_interval(Duration::from_millis(self.settings.poll_interval_ms));
        let idle_check = Duration::from_millis(self.settings.takeover_interval_ms);
        loop {
            // While idle, look at the stored checkpoint now and then: a rebuild resets it, and
            // an idle projector would otherwise notice only at its next batch.
            let Ok(batch) = tokio::time::timeout(idle_check, subscription.next_batch()).await
            else {
                let stored = self
                    .read_models
                    .checkpoint(name)
                    .await
                    .map_err(anyhow::Error::from)?;
                if stored != checkpoint {
                    return Err(BatchError::CheckpointMoved);
                }
                continue;
            };
            checkpoint = self
                .apply_batch(checkpoint, &batch.map_err(anyhow::Error::from)?)
                .await?;
            self.applied.send_replace(checkpoint);
        }
    }

    async fn apply_batch(
        &self,
        checkpoint: Position,
        batch: &[RecordedEvent],
    ) -> Result<Position, BatchError> {
        let Some(last) = batch.last() else {
            return Ok(checkpoint);
        };
        let mut transaction = self
            .read_models
            .pool()
            .begin()
            .await
            .map_err(anyhow::Error::from)?;
        for event in batch {
            self.projection.apply(&mut transaction, event).await?;
        }
        // Guarded by the old value: if a rebuild reset the checkpoint, or another instance
        // advanced it, this batch is stale and must not commit.
        let moved = sqlx::query(
            "UPDATE projection_checkpoints SET position = $1 WHERE projection = $2 AND position = $3",
        )
        .bind(last.position.0 as i64)
        .bind(self.projection.name())
        .bind(checkpoint.0 as i64)
        .execute(&mut *transaction)
        .await
        .map_err(anyhow::Error::from)?;
        if moved.rows_affected() != 1 {
            transaction.rollback().await.map_err(anyhow::Error::from)?;
            return Err(BatchError::CheckpointMoved);
        }
        transaction.commit().await.map_err(anyhow::Error::from)?;
        Ok(last.position)
    }
}

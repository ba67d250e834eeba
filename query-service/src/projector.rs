//! Runs a projection: reads the log from the projection's checkpoint and writes each batch's
//! read-model changes together with the new checkpoint in one transaction, so a crash at any
//! point neither loses nor doubles an update.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use event_log::{EventLog, Subscription};
use events::{Position, RecordedEvent};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};
use tokio::sync::watch;

use crate::read_models::{Generation, ReadModels};

/// Turns events into read-model rows.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Names the projection's checkpoint; never renamed once deployed.
    fn name(&self) -> &'static str;

    /// Applies a batch's events, in order, inside the batch's transaction; the result must be
    /// the same however the log is cut into batches.
    async fn apply(
        &self,
        transaction: &mut Transaction<'static, Any>,
        events: &[RecordedEvent],
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
    /// How often an instance looks for a read-model generation a rebuild made live, in ms.
    pub switch_check_ms: u64,
}

impl Default for ProjectorSettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval_ms: 500,
            takeover_interval_ms: 1000,
            switch_check_ms: 1000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error("the checkpoint moved under the projector (a second projector)")]
    CheckpointMoved,
    #[error("a rebuild made another read-model generation live")]
    GenerationChanged,
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

    /// Projects until the task is dropped, taking over whenever the lock becomes free,
    /// starting again from the stored checkpoint after any failure, and moving to a new
    /// read-model generation when a rebuild makes one live.
    pub async fn run(self) {
        let name = self.projection.name();
        let retry = Duration::from_millis(self.settings.takeover_interval_ms);
        let mut target = self.read_models.watch_target();
        loop {
            let generation = target.borrow_and_update().clone();
            let locked = tokio::select! {
                locked = self.read_models.lock_projection(name, generation.number, retry) => locked,
                _ = target.changed() => continue,
            };
            let lock = match locked {
                Ok(lock) => lock,
                Err(error) => {
                    tracing::error!(projection = name, %error, "cannot take the projection lock");
                    tokio::time::sleep(retry).await;
                    continue;
                }
            };
            tracing::info!(
                projection = name,
                generation = generation.number,
                "projecting"
            );
            match self.project(&generation, &mut target).await {
                Err(BatchError::CheckpointMoved) => {
                    tracing::info!(projection = name, "checkpoint moved; resuming from it")
                }
                Err(BatchError::GenerationChanged) => {
                    tracing::info!(projection = name, "moving to a new read-model generation")
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

    async fn project(
        &self,
        generation: &Generation,
        target: &mut watch::Receiver<Generation>,
    ) -> Result<(), BatchError> {
        let name = self.projection.name();
        let mut checkpoint = generation
            .checkpoint(name)
            .await
            .map_err(anyhow::Error::from)?;
        self.publish(generation, checkpoint).await;
        let mut subscription =
            Subscription::new(self.log.clone(), checkpoint, self.settings.batch_size)
                .with_poll_interval(Duration::from_millis(self.settings.poll_interval_ms));
        let mut serving = self.read_models.watch_serving();
        let idle_check = Duration::from_millis(self.settings.takeover_interval_ms);
        loop {
            let batch = tokio::select! {
                batch = tokio::time::timeout(idle_check, subscription.next_batch()) => batch,
                _ = target.changed() => return Err(BatchError::GenerationChanged),
                // Reads just moved to this generation: what it holds is now what they see.
                _ = serving.changed() => {
                    self.publish(generation, checkpoint).await;
                    continue;
                }
            };
            // While idle, look at the stored checkpoint now and then: another instance may
            // have moved it, and an idle projector would otherwise notice only at its next
            // batch.
            let Ok(batch) = batch else {
                let stored = generation
                    .checkpoint(name)
                    .await
                    .map_err(anyhow::Error::from)?;
                if stored != checkpoint {
                    return Err(BatchError::CheckpointMoved);
                }
                continue;
            };
            checkpoint = self
                .apply_batch(generation, checkpoint, &batch.map_err(anyhow::Error::from)?)
                .await?;
            self.publish(generation, checkpoint).await;
        }
    }

    /// Tells waiting commands how far the reads go, in this process and through the log to
    /// every instance, but only for the generation reads use: while a new one catches up,
    /// its positions say nothing about what a read would see.
    async fn publish(&self, generation: &Generation, checkpoint: Position) {
        if self.read_models.serving().number != generation.number {
            return;
        }
        self.applied.send_replace(checkpoint);
        if let Err(error) = self
            .log
            .publish_applied(self.projection.name(), checkpoint)
            .await
        {
            // Commands in other instances wait a little longer; the projection goes on.
            tracing::warn!(projection = self.projection.name(), %error, "cannot publish how far the projection is");
        }
    }

    async fn apply_batch(
        &self,
        generation: &Generation,
        checkpoint: Position,
        batch: &[RecordedEvent],
    ) -> Result<Position, BatchError> {
        let Some(last) = batch.last() else {
            return Ok(checkpoint);
        };
        let mut transaction = generation
            .pool()
            .begin()
            .await
            .map_err(anyhow::Error::from)?;
        self.projection.apply(&mut transaction, batch).await?;
        // Guarded by the old value: if another instance advanced the checkpoint, this batch
        // is stale and must not commit.
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

//! Read models as they were at a moment: the events a selection picks, up to the moment,
//! replayed by the live projections into a scratch database that lives as long as its value.

use chrono::{DateTime, Utc};
use event_log::{EventLog, LogError, Selection};
use events::{Position, TenantId};

use super::ReadModels;

/// Events read from the log per replayed batch.
const BATCH: usize = 1000;

/// A moment in the log: a position, or a time (events that occurred at or before it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Moment {
    Position(Position),
    Time(DateTime<Utc>),
}

/// Read models replayed to a moment. Their database is deleted when this is dropped.
pub struct PastReadModels {
    pub read_models: ReadModels,
    _directory: tempfile::TempDir,
}

/// Why a replay failed, each cause kept so that it maps to its own answer.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    ReadModels(#[from] sqlx::Error),
    /// A projection failed, or the scratch directory could not be made.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Replays the tenant's events that `selection` picks, up to `moment`, into new read models.
pub async fn replay(
    log: &dyn EventLog,
    tenant: &TenantId,
    selection: &Selection,
    moment: Moment,
) -> Result<PastReadModels, ReplayError> {
    let directory = tempfile::tempdir().map_err(anyhow::Error::from)?;
    let url = format!("sqlite://{}", directory.path().join("past.db").display());
    let past = ReadModels::connect(&url, 1).await?;
    let projections = crate::projections::all();
    let mut after = Position::START;
    loop {
        let page = log
            .read_tenant_selected(tenant, after, BATCH, selection)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        let before = page
            .iter()
            .take_while(|event| match moment {
                Moment::Position(position) => event.position <= position,
                Moment::Time(time) => event.metadata.occurred_at <= time,
            })
            .count();
        let mut transaction = past.pool().begin().await?;
        for projection in &projections {
            projection.apply(&mut transaction, &page[..before]).await?;
        }
        transaction.commit().await?;
        if before < page.len() {
            break;
        }
    }
    Ok(PastReadModels {
        read_models: past,
        _directory: directory,
    })
}

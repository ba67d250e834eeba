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

/// An empty database with every migration applied, made once per process. A replay starts
/// from a copy of it: migrating a new file costs a commit, and a flush to disk, per migration,
/// which was most of what a read of the past cost.
static MIGRATED: tokio::sync::OnceCell<Vec<u8>> = tokio::sync::OnceCell::const_new();

async fn migrated() -> Result<&'static [u8], ReplayError> {
    let bytes = MIGRATED
        .get_or_try_init(|| async {
            let directory = tempfile::tempdir().map_err(anyhow::Error::from)?;
            let file = directory.path().join("migrated.db");
            let made = ReadModels::connect(&format!("sqlite://{}", file.display()), 1).await?;
            // Everything into the main file, so that the file alone is the database (it
            // stays in WAL mode, which is recorded in the file).
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&made.pool())
                .await?;
            let bytes = tokio::fs::read(&file).await.map_err(anyhow::Error::from)?;
            Ok::<_, ReplayError>(bytes)
        })
        .await?;
    Ok(bytes)
}

/// Replays the tenant's events that `selection` picks, up to `moment`, into new read models.
pub async fn replay(
    log: &dyn EventLog,
    tenant: &TenantId,
    selection: &Selection,
    moment: Moment,
) -> Result<PastReadModels, ReplayError> {
    let directory = tempfile::tempdir().map_err(anyhow::Error::from)?;
    let file = directory.path().join("past.db");
    tokio::fs::write(&file, migrated().await?)
        .await
        .map_err(anyhow::Error::from)?;
    let past = ReadModels::connect(&format!("sqlite://{}", file.display()), 1).await?;
    // A scratch database outlives no crash: nothing it writes needs to reach the disk.
    sqlx::query("PRAGMA synchronous = OFF")
        .execute(&past.pool())
        .await?;
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

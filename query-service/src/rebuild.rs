//! Rebuilding the read models without downtime.
//!
//! The log is replayed from position 0 into a new generation beside the live one, which
//! keeps serving and keeps being projected meanwhile. Once the new generation has reached
//! the log's head it is marked live in one statement; every running instance notices, moves
//! its projectors to it, and moves its reads once it has caught up with the old one (see
//! `ReadModels::follow_switches`). The old generation is dropped by the next rebuild, long
//! after every instance has left it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use event_log::EventLog;
use events::Position;

use crate::projections;
use crate::projector::{Projector, ProjectorSettings};
use crate::read_models::ReadModels;

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    /// The generation now live.
    pub generation: u64,
    /// The log position it had reached when it went live.
    pub position: Position,
    /// Generations of earlier rebuilds that were dropped first.
    pub dropped: Vec<u64>,
}

/// How often a rebuild refreshes the new generation's planner statistics (PostgreSQL).
const ANALYZE_EVERY: Duration = Duration::from_secs(5);

/// Builds a new generation from the whole log and makes it live; `progress` hears how far
/// the replay has got now and then.
pub async fn rebuild(
    read_models: &ReadModels,
    log: Arc<dyn EventLog>,
    settings: ProjectorSettings,
    mut progress: impl FnMut(Position, Position),
) -> anyhow::Result<Rebuilt> {
    let _only_rebuild = read_models
        .lock_rebuild()
        .await
        .context("starting a rebuild")?;
    let dropped = read_models
        .stale_generations()
        .await
        .context("listing earlier generations")?;
    for &number in &dropped {
        read_models
            .drop_generation(number)
            .await
            .with_context(|| format!("dropping generation {number}"))?;
    }
    let generation = read_models
        .begin_generation()
        .await
        .context("creating a new generation")?;
    let number = generation.number;
    let building = read_models.pinned(generation);
    let mut applied = Vec::new();
    let mut tasks = Vec::new();
    for projection in projections::all() {
        let projector = Projector::new(log.clone(), building.clone(), projection, settings.clone());
        applied.push(projector.applied());
        tasks.push(tokio::spawn(projector.run()));
    }
    let outcome = async {
        let mut analyzed = tokio::time::Instant::now();
        // Chase the head until one pass finds nothing new: the live generation then trails
        // the new one by at most what arrives in the moment of the switch, which the
        // instances' projectors apply before their reads move.
        loop {
            let head = log.head().await.context("reading the log's head")?;
            for applied in &mut applied {
                loop {
                    let waited = tokio::time::timeout(
                        Duration::from_millis(500),
                        applied.wait_for(|reached| *reached >= head),
                    )
                    .await
                    .map(|reached| reached.is_ok());
                    match waited {
                        Ok(true) => break,
                        Ok(false) => anyhow::bail!("a projector stopped"),
                        Err(_) => progress(*applied.borrow(), head),
                    }
                    // The tables grow fast: keep the planner's statistics up with them.
                    if analyzed.elapsed() >= ANALYZE_EVERY {
                        building
                            .analyze()
                            .await
                            .context("refreshing the new generation's statistics")?;
                        analyzed = tokio::time::Instant::now();
                    }
                }
            }
            progress(head, head);
            if log.head().await.context("reading the log's head")? == head {
                return anyhow::Ok(head);
            }
        }
    }
    .await;
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
    let position = outcome?;
    // What the replay added since the last refresh (or all of it, for a replay shorter than
    // ANALYZE_EVERY) would otherwise be planned for on stale or no statistics until
    // autovacuum comes by, if it ever does.
    building
        .analyze()
        .await
        .context("refreshing the new generation's statistics")?;
    read_models
        .make_live(number)
        .await
        .context("marking the new generation live")?;
    Ok(Rebuilt {
        generation: number,
        position,
        dropped,
    })
}

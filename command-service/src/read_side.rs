//! Read-your-writes: a command answers only once the read side shows its events.
//!
//! The read side is the projections, wherever they run: this process's own projectors
//! ([`InProcess`], in the all-in-one server), or any instance's, through the positions they
//! publish in the event log ([`LogReaders`]). Nothing here reads the query service's tables.
//!
//! The wait is bounded; the answer carries the log position in `X-Deployments-Log-Position`
//! either way, so a client that got an answer before the read side caught up can ask a read
//! to wait for that position.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use event_log::EventLog;
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

/// Projectors anywhere: the positions they publish through the event log, which every
/// instance shares, so that any instance can answer after any write, whichever instance runs
/// the projections. A backend that cannot share them (KurrentDB) answers at once.
///
/// However many requests wait, the process reads the published positions once per
/// notification: whichever waiter wakes first reads them, and the others take its reading.
/// Where the backend announces every publication (PostgreSQL), a reading with no
/// announcement since is as new as any, and a command that starts waiting takes it rather
/// than reading again: most commands then read nothing.
pub struct LogReaders {
    log: Arc<dyn EventLog>,
    /// The last reading: `None` when no projection publishes.
    applied: watch::Sender<Option<Position>>,
    reading: tokio::sync::Mutex<()>,
    /// The announcements counted as the last reading began, and when it began.
    last_reading: std::sync::Mutex<Option<(u64, std::time::Instant)>>,
}

/// How long a reading with no announcement since is trusted: a bound on what a notification
/// lost some other way than the backend can tell could cost.
const READING_TRUSTED_FOR: Duration = Duration::from_secs(1);

impl LogReaders {
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Self {
            log,
            applied: watch::channel(Some(Position::default())).0,
            reading: tokio::sync::Mutex::new(()),
            last_reading: std::sync::Mutex::new(None),
        }
    }

    /// Whether the last reading is as new as any, with `announced` publications counted now.
    fn reading_is_current(&self, announced: u64) -> bool {
        self.log.announces_every_publication()
            && self
                .last_reading
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .is_some_and(|(counted, began)| {
                    counted == announced && began.elapsed() < READING_TRUSTED_FOR
                })
    }
}

#[async_trait]
impl ReadSide for LogReaders {
    async fn wait_for(&self, position: Position, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut changes = self.log.applied_changes();
        let mut readings = self.applied.subscribe();
        loop {
            changes.mark_unchanged();
            readings.mark_unchanged();
            if !self.reading_is_current(*changes.borrow()) {
                match self.reading.try_lock() {
                    // Counted before the read: a publication announced during it is read
                    // again by the next waiter.
                    Ok(_reading) => {
                        let announced = *changes.borrow();
                        if !self.reading_is_current(announced) {
                            let began = std::time::Instant::now();
                            match self.log.applied_by_readers().await {
                                Ok(applied) => {
                                    self.applied.send_replace(applied);
                                    *self
                                        .last_reading
                                        .lock()
                                        .unwrap_or_else(|poisoned| poisoned.into_inner()) =
                                        Some((announced, began));
                                }
                                Err(error) => {
                                    tracing::warn!(%error, "cannot read how far the projections are");
                                }
                            }
                        }
                    }
                    // Another waiter is reading: its reading, once published, is this one's.
                    Err(_) => {
                        let _ = tokio::time::timeout_at(deadline, readings.changed()).await;
                        readings.mark_unchanged();
                    }
                }
            }
            match *self.applied.borrow() {
                Some(applied) if applied >= position => return true,
                Some(_) => {}
                None => return false,
            }
            // Woken by a publication where the backend announces them; polled where it
            // cannot (another process on the same SQLite file).
            let next = tokio::time::Instant::now() + Duration::from_millis(10);
            let wake = tokio::time::timeout_at(next.min(deadline), changes.changed());
            if wake.await.is_ok_and(|changed| changed.is_err()) {
                tokio::time::sleep_until(next.min(deadline)).await;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
        }
    }
}

/// Several ways to learn the same thing: visible as soon as any of them says so.
pub struct FirstOf(pub Vec<Arc<dyn ReadSide>>);

#[async_trait]
impl ReadSide for FirstOf {
    async fn wait_for(&self, position: Position, limit: Duration) -> bool {
        let mut waits: futures::stream::FuturesUnordered<_> = self
            .0
            .iter()
            .map(|side| side.wait_for(position, limit))
            .collect();
        while let Some(visible) = futures::StreamExt::next(&mut waits).await {
            if visible {
                return true;
            }
        }
        false
    }
}

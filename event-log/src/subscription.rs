//! Catch-up-then-live reading of the whole log from a checkpoint.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::log::{EventLog, LogError};
use events::{Position, RecordedEvent};

/// Reads the log in order from a position: first what is already there, then each new event
/// as it commits. Wake-ups from the backend make it prompt; polling makes it certain.
pub struct Subscription {
    log: Arc<dyn EventLog>,
    after: Position,
    batch_size: usize,
    poll_interval: Duration,
    head: watch::Receiver<Position>,
}

impl Subscription {
    pub fn new(log: Arc<dyn EventLog>, after: Position, batch_size: usize) -> Self {
        let head = log.head_changes();
        Self {
            log,
            after,
            batch_size: batch_size.max(1),
            poll_interval: Duration::from_millis(500),
            head,
        }
    }

    /// How long to wait for a wake-up before reading anyway.
    pub fn with_poll_interval(mut self, poll_interval: Duration) -> Self {
        self.poll_interval = poll_interval;
        self
    }

    /// The position of the last event handed out.
    pub fn position(&self) -> Position {
        self.after
    }

    /// The next events after the last batch, waiting until there is at least one.
    pub async fn next_batch(&mut self) -> Result<Vec<RecordedEvent>, LogError> {
        loop {
            // Mark the current head as seen before reading, so a commit that lands during the
            // read still wakes the wait below.
            self.head.borrow_and_update();
            let events = self.log.read_all(self.after, self.batch_size).await?;
            if let Some(last) = events.last() {
                self.after = last.position;
                return Ok(events);
            }
            tokio::select! {
                changed = self.head.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(self.poll_interval).await;
                    }
                }
                _ = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }
}

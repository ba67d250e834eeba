//! Pure decisions: `decide(&state, command) -> Result<events, error>` and
//! `evolve(state, &event) -> state`. Nothing here does I/O.

pub mod admission;
pub mod artifacts;
pub mod deployments;
pub mod device;
pub mod device_index;
pub mod filters;
pub mod inventory;
pub mod tables;

use events::DomainEvent;

/// A stream's state with the one fold that makes it from the stream's events, so that a
/// state folded up to some version can be kept and carried forward with the events after it.
pub trait Folded: Default + Clone + Send + Sync + 'static {
    fn evolve(self, event: &DomainEvent) -> Self;
}

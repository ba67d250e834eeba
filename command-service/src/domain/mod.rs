//! Pure decisions: `decide(&state, command) -> Result<events, error>` and
//! `evolve(state, &event) -> state`. Nothing here does I/O.

pub mod admission;
pub mod artifacts;
pub mod deployments;
pub mod device;
pub mod filters;
pub mod inventory;
pub mod tables;

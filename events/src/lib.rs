//! The event contract of the deployments service.
//!
//! Everything that happens is an event appended to one log. This crate holds what every
//! producer and consumer of that log agrees on: the event types and their wire names, the
//! envelope that carries them, and schema versions with upcasters for older JSON, every
//! stored version pinned by a golden fixture. It does no I/O: the log itself, its storage
//! engines and subscriptions are the `event-log` crate's.

pub mod admission;
pub mod artifact;
pub mod deployment;
mod envelope;
pub mod filter;
mod ids;
pub mod inventory;
mod schema;

pub use envelope::{EventMetadata, NewEvent, Position, RecordedEvent, StreamName, TenantId};
pub use ids::{ArtifactId, DeploymentId};
pub use schema::{DomainEvent, SchemaError};

//! The event contract of the deployments service.
//!
//! Everything that happens is an event appended to one log. This crate holds what every
//! producer and consumer of that log agrees on: the event types and their wire names, the
//! envelope that carries them, schema versions with upcasters for older JSON, and the
//! [`EventLog`] port with its SQLite and PostgreSQL backends.

pub mod artifact;
pub mod deployment;
mod envelope;
mod log;
pub mod memory;
mod migrate;
mod plan;
pub mod postgres;
mod schema;
pub mod sqlite;
mod subscription;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use envelope::{EventMetadata, NewEvent, Position, RecordedEvent, StreamName, TenantId};
pub use log::{AppendError, AppendRequest, Appended, EventLog, ExpectedVersion, LogError};
pub use migrate::{Migration, MigrationSet};
pub use schema::{DomainEvent, SchemaError};
pub use subscription::Subscription;

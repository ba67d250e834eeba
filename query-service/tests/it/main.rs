//! The query service against real databases and a real broker, in one binary.

mod support;

mod projector;
mod relay;
mod upgrades;

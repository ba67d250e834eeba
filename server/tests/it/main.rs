//! The server's integration tests, in one binary: linking the whole stack once instead of
//! once per file is most of what a test run costs on a small machine.
//!
//! Every module starts the real server on port 0 against real backends (embedded SQLite and
//! local files; PostgreSQL with S3), or as a real process where a fault needs one.

#[macro_use]
mod support;

mod admission;
mod api;
mod artifacts;
mod audit;
mod backup;
mod console;
mod deployment_reads;
mod deployments;
mod durability;
mod inventory;
mod inventory_search;
mod openapi;
mod operations;
mod scale_out;
mod split;
mod standalone;
mod tls;

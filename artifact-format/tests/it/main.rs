//! The artifact reader against real `.mender` files from `mender-artifact`, in one binary.
//! The memory test keeps a binary of its own: no other test may disturb its measurement.

#[path = "../common/mod.rs"]
mod common;

mod artifacts;
mod bad_input;
mod signatures;
mod streaming;
mod version1;

//! The HTTP edge both services share: every request gets an id and a span, every error
//! leaves as Mender's `{"error", "request_id"}` body, and tokens are verified before any
//! handler runs.

pub mod auth;
mod error;
mod json;
pub mod metrics;
mod request_id;
pub mod serve;
pub mod service;
pub mod throttle;
pub mod tls;

pub use error::{error_response, fallback_not_found, method_not_allowed, refuse_oversized};
pub use json::JsonBody;
pub use request_id::{current_request_id, with_request_id, RequestId, REQUEST_ID_HEADER};

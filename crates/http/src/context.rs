//! The request context lives below HTTP (`crate::audit::context`), so services and the audit log
//! can use it without importing the HTTP layer; re-exported here for the middleware.

pub use crate::audit::context::*;

/// The header every answer carries its request id in (the request middleware sets it; sealed
/// mode and a standby's own answers too).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

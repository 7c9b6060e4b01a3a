//! The request context lives below HTTP (`crate::audit::context`), so services and the audit log
//! can use it without importing the HTTP layer; re-exported here for the middleware.

pub use crate::audit::context::*;

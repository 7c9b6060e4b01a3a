//! Platform adapters and fakes.
pub mod fake;

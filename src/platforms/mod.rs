//! Platform adapters and fakes.

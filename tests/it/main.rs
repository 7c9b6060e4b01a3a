//! The integration tests: one binary, so the shared fixtures in `common` compile once and every
//! module can use any of them.

mod api_contract;
mod audit;
mod checkout;
mod common;
mod console;
#[cfg(feature = "demo")]
mod incidents;
// The fake platforms and the `demo` subcommand exist only with the `demo` feature (on by default).
#[cfg(feature = "demo")]
mod platform;
#[cfg(feature = "demo")]
mod services;
mod vault_core;

//! The integration tests: one binary, so the shared fixtures in `common` compile once and every
//! module can use any of them.

// Tests unwrap and panic on purpose: a failure is the message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod api_contract;
mod attack;
mod audit;
#[cfg(feature = "demo")]
mod bench;
#[cfg(feature = "demo")]
mod break_glass;
#[cfg(feature = "demo")]
mod budgets;
mod checkout;
mod common;
mod console;
mod holes;
#[cfg(feature = "demo")]
mod incidents;
#[cfg(feature = "demo")]
mod lifetimes;
mod live_ops;
mod metrics;
mod mtls;
mod notify;
mod office;
mod packaging;
// The fake platforms and the `demo` subcommand exist only with the `demo` feature (on by default).
#[cfg(feature = "demo")]
mod platform;
#[cfg(feature = "demo")]
mod publishing;
#[cfg(feature = "demo")]
mod services;
mod suite;
// The fixtures the process-driving tests share (here: the office's tool PKI, `feed`).
#[path = "../support/mod.rs"]
mod support;
mod unseal;
mod vault_core;
#[cfg(feature = "demo")]
mod watch;

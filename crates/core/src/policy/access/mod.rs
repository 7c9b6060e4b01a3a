//! Per-account access policies: who may check an account out, from where, when, for how long, at
//! which level, and which platform calls the resulting token may make.
//!
//! One file per concern: `model.rs` holds the types as loaded, `parse.rs` reads and validates
//! the TOML, and `eval.rs` answers requests against a policy.

mod eval;
mod model;
mod parse;
#[cfg(test)]
mod tests;

pub use eval::{Denial, Subject};
pub use model::{AccountPolicy, BudgetWindow, LevelRule, PolicySet, PostBudget};

//! Accounts and their credentials: creation, versions, rotation with step-up, rollback, freeze
//! (`service.rs`); credential lifetimes and reminders (`lifetimes.rs`); WeChat's quota reset
//! (`quota.rs`); Weibo re-authorisation (`reauthorize.rs`).

pub mod credential;
mod lifetimes;
mod quota;
mod reauthorize;
pub mod service;

pub use credential::{Credential, CredentialInput, Platform};
pub use service::AccountView;

//! Accounts and their credentials: creation, versions, rotation with step-up, rollback, freeze.

pub mod credential;
pub mod service;

pub use credential::{Credential, CredentialInput, Platform};
pub use service::AccountView;

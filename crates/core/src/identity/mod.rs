//! People, roles, passwords, TOTP, sessions and publishing-tool client keys.

pub mod audit_name;
pub mod clients;
pub mod passwords;
pub mod roster;
pub mod sessions;
pub mod totp;
pub mod users;

pub use crate::names::{self, AccountId, Role, Roles, UnknownName, Username};

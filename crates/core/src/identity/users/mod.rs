//! The people service: user accounts (creation with a TOTP enrolment shown once, listing,
//! disabling), login, and the checks that prove a person is present (password + TOTP at login,
//! TOTP alone for step-up). It owns who may manage people and what a lockout means.
//!
//! - `create`: creating a person, one at a time or from a roster, with the enrolment shown once.
//! - `roles`: granting roles, a second admin's confirmation, and the bootstrap confirmation.
//! - `state`: an admin's changes to another person's account (disable, enable, unlock, resets).
//! - `presence`: TOTP proofs and step-up, the checks that a person is there.
//! - `login`: password + TOTP, then a session.
//! - `views`: what the API shows of people.

mod create;
mod login;
mod presence;
mod roles;
mod state;
mod views;

use crate::crypto::Aad;
use crate::error::{Error, Result};
use crate::identity::Username;
use crate::store::users::UserRow;

pub use crate::identity::totp::TotpProof;
pub use create::{Enrolment, Imported, NewUserInput};
pub use presence::StepUp;
pub use views::{UserRowView, UserView};

pub use crate::actor::Person;

/// Where a user's sealed TOTP seed belongs (also used when rewrapping under a new term).
pub(crate) fn seed_aad(username: &str) -> Aad<'_> {
    Aad {
        table: "users",
        row: username,
        field: "totp_seed",
        version: 1,
    }
}

/// The people service; `vault.people()`.
#[derive(Clone)]
pub struct People {
    pub(crate) store: crate::store::Store,
    pub(crate) clock: crate::clock::Clock,
    pub(crate) audit: crate::audit::AuditWriter,
    pub(crate) keys: std::sync::Arc<crate::keys::Keys>,
    pub(crate) config: std::sync::Arc<crate::config::Config>,
    pub(crate) passwords: crate::identity::passwords::Passwords,
    pub(crate) sessions: crate::identity::sessions::Sessions,
}

impl People {
    pub(crate) async fn row(&self, username: &str) -> Result<UserRow> {
        let name =
            Username::parse(username).map_err(|_| Error::NotFound(format!("user {username:?}")))?;
        self.store
            .user_by_name(name.as_str())
            .await?
            .ok_or_else(|| Error::NotFound(format!("user {name}")))
    }
}

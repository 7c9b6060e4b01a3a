//! Login: password + TOTP, then a new session.

use tracing::instrument;

use super::{People, Person};
use crate::actor::{Actor, Principal};
use crate::crypto::SecretString;
use crate::error::{Error, Result, TotpRefusal};
use crate::identity::sessions::NewSession;
use crate::identity::{Roles, Username};

impl People {
    /// Password + TOTP, then a new session, committed with its audit entry. Every failure a
    /// stranger can cause looks the same (unknown user, wrong password, wrong code) and costs one
    /// argon2 verification.
    #[instrument(skip_all)]
    pub async fn login(
        &self,
        actor: &Actor,
        username: &str,
        password: SecretString,
        code: &str,
    ) -> Result<(Person, NewSession)> {
        actor.action("auth.login", None);
        let row = match Username::parse(username) {
            Ok(name) => self.store.user_by_name(name.as_str()).await?,
            Err(_) => None,
        };
        // Recorded before the outcome is known, so failed attempts are attributed to the name
        // tried; a name that is no user's only as a keyed digest (see `audit_name`).
        if let Some(ctx) = &actor.ctx {
            ctx.actor(
                crate::audit::context::ActorKind::Anonymous,
                &self.login_audit_name(username, row.as_ref().map(|r| r.username.as_str())),
            );
        }
        let phc = row.as_ref().map(|r| r.password_hash.clone());
        // The hash is always checked, so every refusal costs the same.
        let password_ok = self.passwords.verify(password, phc).await?;
        let Some(row) = row.filter(|r| !r.disabled) else {
            return Err(Error::Unauthenticated);
        };
        // A locked user is answered exactly as a wrong password, whatever was sent, and the
        // attempt still counts: the lock neither confirms a password nor pauses the count.
        if self.locked(&row).is_some() || !password_ok {
            self.count_failure(&row).await?;
            return Err(Error::Unauthenticated);
        }
        let proof = match self.check_totp(&row, code).await {
            Ok(p) => p,
            // Only someone who knows the password learns that a code was reused.
            Err(e @ Error::TotpInvalid(TotpRefusal::Replayed)) => return Err(e),
            Err(Error::TotpInvalid(TotpRefusal::Wrong) | Error::UserLocked { .. }) => {
                // The caller learns nothing; the log (and the early-warning rule on TOTP
                // failures) learns that the password was right and the code was not.
                actor.detail("refused", "totp_invalid");
                return Err(Error::Unauthenticated);
            }
            Err(e) => return Err(e),
        };
        let person = Person {
            id: row.id,
            username: row.username.clone(),
            roles: Roles::from_stored(&row.roles)?,
            session: None,
        };
        let signed_in = Actor::new(Principal::Person(person.clone()), actor.ctx.clone());
        let session = match self.sessions.create(&signed_in, &person, proof).await {
            // Locked by failures that raced this login: the same answer as any locked user.
            Err(Error::UserLocked { .. }) => return Err(Error::Unauthenticated),
            other => other?,
        };
        Ok((person, session))
    }
}

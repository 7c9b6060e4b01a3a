//! Sessions for people: `mvs_` tokens stored only as keyed hashes, with an idle timeout and a
//! maximum lifetime.

use super::Roles;
use super::users::Person;
use crate::crypto::tokens::{TokenKind, hash_token, well_formed};
use crate::crypto::{SecretString, new_token};
use crate::error::{Error, Result};
use crate::vault::Vault;

pub struct NewSession {
    pub token: SecretString,
    pub expires_at: i64,
}

/// Writing `last_seen` on every request would cost a commit per call; a minute of slack in the idle
/// timeout costs nothing.
const TOUCH_EVERY_SECONDS: i64 = 60;

impl Vault {
    pub async fn create_session(&self, person: &Person) -> Result<NewSession> {
        let token = new_token(TokenKind::Session)?;
        let now = self.clock.unix();
        let expires_at = now + i64::from(self.config.session.max_lifetime_hours) * 3600;
        let hash = hash_token(&self.keys.mac().token, token.expose());
        self.store
            .session_insert(&hash.0, person.id, now, expires_at)
            .await?;
        Ok(NewSession { token, expires_at })
    }

    /// The person behind a session token, or `Unauthenticated` for anything else.
    pub async fn session_person(&self, token: &str) -> Result<Person> {
        if !well_formed(TokenKind::Session, token) {
            return Err(Error::Unauthenticated);
        }
        let hash = hash_token(&self.keys.mac().token, token);
        let s = self
            .store
            .session_get(&hash.0)
            .await?
            .ok_or(Error::Unauthenticated)?;
        let now = self.clock.unix();
        let idle = i64::from(self.config.session.idle_timeout_minutes) * 60;
        if s.expires_at <= now || s.last_seen + idle <= now {
            return Err(Error::Unauthenticated);
        }
        let user = self
            .store
            .user_by_id(s.user_id)
            .await?
            .ok_or(Error::Unauthenticated)?;
        if user.disabled {
            return Err(Error::Unauthenticated);
        }
        if now - s.last_seen >= TOUCH_EVERY_SECONDS {
            self.store.session_touch(&hash.0, now).await?;
        }
        Ok(Person {
            id: user.id,
            username: user.username,
            roles: Roles::from_stored(&user.roles)?,
        })
    }

    pub async fn end_session(&self, token: &str) -> Result<()> {
        let hash = hash_token(&self.keys.mac().token, token);
        self.store.session_revoke(&hash.0).await?;
        Ok(())
    }
}

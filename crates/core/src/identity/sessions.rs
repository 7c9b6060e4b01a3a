//! Sessions for people: `mvs_` tokens stored only as keyed hashes, with an idle timeout and a
//! maximum lifetime. Part of the people service; `vault.sessions()`.

use super::Roles;
use super::totp::TotpProof;
use crate::actor::Actor;
use crate::actor::Person;
use crate::crypto::tokens::{TokenKind, hash_token, well_formed};
use crate::crypto::{SecretString, new_token};
use crate::error::{Error, Result};

pub use crate::actor::{SessionRef, StepUpWindow};

pub struct NewSession {
    pub token: SecretString,
    pub expires_at: i64,
}

/// Writing `last_seen` on every request would cost a commit per call; a minute of slack in the idle
/// timeout costs nothing.
const TOUCH_EVERY_SECONDS: i64 = 60;

#[derive(Clone)]
pub struct Sessions {
    pub(crate) store: crate::store::Store,
    pub(crate) clock: crate::clock::Clock,
    pub(crate) audit: crate::audit::AuditWriter,
    pub(crate) keys: std::sync::Arc<crate::keys::Keys>,
    pub(crate) config: std::sync::Arc<crate::config::Config>,
}

impl Sessions {
    /// A new session for a person who just proved presence; the TOTP step is spent and the session
    /// stored (its step-up window open) in the transaction of the login's audit entry.
    pub(crate) async fn create(
        &self,
        actor: &Actor,
        person: &Person,
        proof: TotpProof,
    ) -> Result<NewSession> {
        let token = new_token(TokenKind::Session)?;
        let now = self.clock.unix();
        let expires_at = now + i64::from(self.config.session.max_lifetime_hours) * 3600;
        let hash = hash_token(&self.keys.mac().token, token.expose());
        let user_id = person.id;
        // Signing in proves the code as a step-up does (and the password besides), so the new
        // session starts inside a step-up window whose step-up is this login's entry.
        let window = i64::from(self.config.session.step_up_minutes) * 60;
        self.audit
            .change(actor, "auth.login", &person.username, move |tx| {
                Box::pin(async move {
                    proof.spend(tx).await?;
                    tx.session_insert(&hash.0, user_id, now, expires_at).await?;
                    if window > 0 && tx.session_open_step_up(&hash.0, now + window).await? {
                        tx.note("step_up_until", crate::clock::rfc3339_unix(now + window));
                    }
                    Ok(())
                })
            })
            .await?;
        Ok(NewSession { token, expires_at })
    }

    /// The person behind a session token, or `Unauthenticated` for anything else.
    pub async fn authenticate(&self, token: &str) -> Result<Person> {
        if !well_formed(TokenKind::Session, token) {
            return Err(Error::Unauthenticated);
        }
        let hash = hash_token(&self.keys.mac().token, token);
        self.by_hash(&hash.0).await
    }

    /// The person of a session read again (after a change to its step-up window).
    pub(crate) async fn reread(&self, session: &SessionRef) -> Result<Person> {
        self.by_hash(&session.hash).await
    }

    async fn by_hash(&self, hash: &[u8]) -> Result<Person> {
        let s = self
            .store
            .session_get(hash)
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
            self.store.session_touch(hash, now).await?;
        }
        // A window is open only once its step-up entry is linked (same transaction), and not
        // at all once windows are switched off (`session.step_up_minutes = 0`).
        let windows = self.config.session.step_up_minutes > 0;
        let step_up = match (s.step_up_until, s.step_up_seq) {
            (Some(until), Some(seq)) if until > now && windows => Some(StepUpWindow { until, seq }),
            _ => None,
        };
        Ok(Person {
            id: user.id,
            username: user.username,
            roles: Roles::from_stored(&user.roles)?,
            session: Some(SessionRef {
                hash: hash.to_vec(),
                step_up,
            }),
        })
    }

    /// The console's CSRF token for a session: an HMAC of the session token under the token key
    /// (domain-separated), so it needs no storage and dies with the session.
    pub fn csrf_token(&self, session_token: &str) -> String {
        let tag = crate::crypto::hmac_parts(
            &self.keys.mac().token,
            &[b"console csrf v1", session_token.as_bytes()],
        );
        hex::encode(tag)
    }

    /// Whether `presented` is the CSRF token of `session_token`, compared in constant time.
    pub fn csrf_ok(&self, session_token: &str, presented: &str) -> bool {
        let expected = self.csrf_token(session_token);
        crate::crypto::ct_eq(expected.as_bytes(), presented.as_bytes())
    }

    /// Ends the acting person's session, committed with its audit entry.
    pub async fn end(&self, actor: &Actor, token: &str) -> Result<()> {
        actor.action("auth.logout", None);
        let person = self.authenticate(token).await?;
        let hash = hash_token(&self.keys.mac().token, token);
        self.audit
            .change(actor, "auth.logout", &person.username, move |tx| {
                Box::pin(async move {
                    tx.session_revoke(&hash.0).await?;
                    Ok(())
                })
            })
            .await
    }
}

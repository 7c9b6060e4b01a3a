//! An admin's changes to another person's account: disable, enable, unlock, and the password and
//! TOTP resets (after which privileged roles wait for a second admin again).

use super::UserRowView as _;
use super::{Enrolment, People, Person, UserView, seed_aad};
use crate::actor::Actor;
use crate::crypto::SecretString;
use crate::error::{Conflict, Error, Result};
use crate::identity::{Role, Roles, passwords, totp};
use crate::store::Tx;
use crate::store::users::UserRow;

impl People {
    /// Disables a user: their sessions end and every checkout they hold or wait for is revoked,
    /// in the same transaction.
    pub async fn disable(&self, actor: &Actor, username: &str) -> Result<UserView> {
        actor.action("user.disable", Some(username));
        let me = actor.require(&[Role::Admin])?;
        if me.username == username {
            return Err(Error::NotPermitted(
                "an admin cannot disable their own account".into(),
            ));
        }
        let row = self.row(username).await?;
        let now = self.clock.unix();
        let name = row.username.clone();
        self.audit
            .change(actor, "user.disable", &row.username, move |tx| {
                Box::pin(async move {
                    tx.user_set_disabled(row.id).await?;
                    let n = tx
                        .revoke_checkouts_of(None, Some(&name), "operator disabled", now)
                        .await?;
                    tx.note("checkouts_revoked", n);
                    Ok(())
                })
            })
            .await?;
        Ok(self.row(username).await?.view())
    }

    /// The target of an admin's change to another person's account: refused for oneself (nobody
    /// unlocks, re-enables or resets their own account with their own say-so).
    async fn other(&self, me: &Person, username: &str, what: &str) -> Result<UserRow> {
        let row = self.row(username).await?;
        if row.username == me.username {
            return Err(Error::NotPermitted(format!(
                "an admin cannot {what} their own account; ask another admin"
            )));
        }
        Ok(row)
    }

    /// An admin's change to another person's account: the admin role, never their own account,
    /// the admin's TOTP step-up spent in the transaction of the change (`op`, given the user id).
    async fn change_other<F>(
        &self,
        actor: &Actor,
        username: &str,
        action: &str,
        totp: Option<&str>,
        note: impl FnOnce(&UserRow),
        op: F,
    ) -> Result<UserView>
    where
        F: for<'t> FnOnce(&'t mut Tx, i64) -> crate::audit::TxFuture<'t, ()> + Send + 'static,
    {
        actor.action(action, Some(username));
        let me = actor.require(&[Role::Admin])?;
        // `user.unlock` → "an admin cannot unlock their own account".
        let verb = action.trim_start_matches("user.");
        let row = self.other(me, username, verb).await?;
        let proof = self.authorize(me, totp).await?;
        note(&row);
        let id = row.id;
        self.audit
            .change(actor, action, &row.username, move |tx| {
                Box::pin(async move {
                    proof.spend(tx).await?;
                    op(tx, id).await
                })
            })
            .await?;
        self.view(&self.row(username).await?).await
    }

    /// Clears a user's lockout and failure count (TOTP step-up of the admin).
    pub async fn unlock(
        &self,
        actor: &Actor,
        username: &str,
        totp: Option<&str>,
    ) -> Result<UserView> {
        let note = |row: &UserRow| {
            actor.detail("failed_attempts", row.failed_attempts);
            actor.detail("was_locked", self.locked(row).is_some());
        };
        self.change_other(actor, username, "user.unlock", totp, note, |tx, id| {
            Box::pin(async move { Ok(tx.user_unlock(id).await?) })
        })
        .await
    }

    /// Enables a disabled user again, unlocked (TOTP step-up of the admin). Their checkouts stay
    /// revoked and their old sessions stay ended; they log in afresh. Enabling an enabled user
    /// changes nothing but is still recorded.
    pub async fn enable(
        &self,
        actor: &Actor,
        username: &str,
        totp: Option<&str>,
    ) -> Result<UserView> {
        let note = |row: &UserRow| actor.detail("was_disabled", row.disabled);
        self.change_other(actor, username, "user.enable", totp, note, |tx, id| {
            Box::pin(async move { Ok(tx.user_set_enabled(id).await?) })
        })
        .await
    }

    /// A new TOTP seed for a user who lost their authenticator (TOTP step-up of the admin): the
    /// enrolment is returned once, the lock is cleared and every session of the user ends. See
    /// [`Self::reset_password`] for what happens to `approver` and `admin`.
    pub async fn reset_totp(
        &self,
        actor: &Actor,
        username: &str,
        totp: Option<&str>,
    ) -> Result<Enrolment> {
        actor.action("user.reset_totp", Some(username));
        let me = actor.require(&[Role::Admin])?;
        let row = self.other(me, username, "reset the TOTP of").await?;
        let proof = self.authorize(me, totp).await?;
        let seed = totp::new_seed()?;
        let sealed = self.keys.seal(&seed_aad(&row.username), seed.expose())?;
        let back = Requalify::of(&row, me, self.clock.unix())?;
        back.note(actor);
        let id = row.id;
        self.audit
            .change(actor, "user.reset_totp", &row.username, move |tx| {
                Box::pin(async move {
                    proof.spend(tx).await?;
                    tx.user_reset_seed(id, &sealed).await?;
                    back.apply(tx).await
                })
            })
            .await?;
        let user = self.view(&self.row(username).await?).await?;
        let totp_uri = totp::otpauth_uri(&seed, &row.username)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("cannot build otpauth uri")))?;
        Ok(Enrolment {
            user,
            totp_uri,
            totp_secret: totp::seed_base32(&seed),
        })
    }

    /// Sets a new password for a user (TOTP step-up of the admin; the password policy applies).
    /// The lock is cleared and every session of the user ends.
    ///
    /// Whoever resets a person's password or TOTP could sign in as them, so a reset must not
    /// let one admin borrow a privileged role: the user's `approver` and `admin` roles go back
    /// to waiting for a second admin's confirmation, as a new grant would.
    pub async fn reset_password(
        &self,
        actor: &Actor,
        username: &str,
        password: SecretString,
        totp: Option<&str>,
    ) -> Result<UserView> {
        actor.action("user.reset_password", Some(username));
        let me = actor.require(&[Role::Admin])?;
        let row = self.other(me, username, "reset the password of").await?;
        passwords::check_policy(&password)?;
        let proof = self.authorize(me, totp).await?;
        let hash = self.passwords.hash(password).await?;
        let back = Requalify::of(&row, me, self.clock.unix())?;
        back.note(actor);
        let id = row.id;
        self.audit
            .change(actor, "user.reset_password", &row.username, move |tx| {
                Box::pin(async move {
                    proof.spend(tx).await?;
                    tx.user_set_password(id, &hash).await?;
                    back.apply(tx).await
                })
            })
            .await?;
        self.view(&self.row(username).await?).await
    }
}

/// After a reset of a person's password or TOTP: the privileged roles they held go back to
/// pending grants, asked for by the admin who reset, so a second admin must confirm them.
struct Requalify {
    user_id: i64,
    username: String,
    stored: String,
    keep: String,
    pending: Vec<Role>,
    by: String,
    now: i64,
}

impl Requalify {
    fn of(row: &UserRow, me: &Person, now: i64) -> Result<Self> {
        let (keep, pending) = Roles::from_stored(&row.roles)?.split_confirmed();
        Ok(Self {
            user_id: row.id,
            username: row.username.clone(),
            stored: row.roles.clone(),
            keep: keep.to_stored(),
            pending,
            by: me.username.clone(),
            now,
        })
    }

    fn note(&self, actor: &Actor) {
        if !self.pending.is_empty() {
            let names: Vec<&str> = self.pending.iter().map(|r| r.as_str()).collect();
            actor.detail("roles_back_to_pending", names);
        }
    }

    async fn apply(self, tx: &mut Tx) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if !tx
            .user_set_roles(self.user_id, &self.stored, &self.keep)
            .await?
        {
            return Err(Error::conflict(
                Conflict::NotPending,
                "the user's roles changed meanwhile; look again and retry",
            ));
        }
        for role in &self.pending {
            tx.grant_request(&self.username, role.as_str(), &self.by, self.now)
                .await?;
        }
        Ok(())
    }
}

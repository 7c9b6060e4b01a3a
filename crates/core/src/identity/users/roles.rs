//! Roles: granting one (privileged roles wait for a second admin), a second admin's
//! confirmation, the root key holder's bootstrap confirmation of the second admin, and the list
//! of grants still waiting.

use super::{People, UserView};
use crate::actor::{Actor, Principal};
use crate::error::{Conflict, Error, Result};
use crate::identity::{Role, Roles, UnknownName};

impl People {
    /// Grants a role to an existing user (TOTP step-up). `approver` and `admin` wait for a
    /// second admin; the others are granted at once. Separation of duties is checked either way.
    /// Returns the user and whether the grant is still pending.
    pub async fn grant_role(
        &self,
        actor: &Actor,
        username: &str,
        role: &str,
        totp: Option<&str>,
    ) -> Result<(UserView, bool)> {
        actor.action("user.grant_role", Some(username));
        actor.detail("role", role);
        let me = actor.require(&[Role::Admin])?;
        let role: Role = role
            .parse()
            .map_err(|e: UnknownName| Error::invalid("role", e.to_string()))?;
        let row = self.row(username).await?;
        let current = Roles::from_stored(&row.roles)?;
        if current.has(role) {
            return Err(Error::conflict(
                Conflict::AlreadyExists,
                format!("{username} already holds the role {role}"),
            ));
        }
        let roles = current.with(role)?;
        let proof = self.authorize(me, totp).await?;
        let pending = Roles::needs_confirmation(role);
        let (by, now, stored) = (me.username.clone(), self.clock.unix(), row.roles.clone());
        let (name, id, new) = (row.username.clone(), row.id, roles.to_stored());
        let made = self
            .audit
            .change(actor, "user.grant_role", username, move |tx| {
                Box::pin(async move {
                    proof.spend(tx).await?;
                    if pending {
                        tx.grant_request(&name, role.as_str(), &by, now).await?;
                        tx.note("pending", true);
                    } else if !tx.user_set_roles(id, &stored, &new).await? {
                        return Err(Error::conflict(
                            Conflict::NotPending,
                            "the user's roles changed meanwhile; look again and retry",
                        ));
                    }
                    Ok(())
                })
            })
            .await;
        made.map_err(|e| {
            e.explain(Conflict::AlreadyExists, || {
                format!("a grant of {role} to {username} is already waiting for confirmation")
            })
        })?;
        Ok((self.view(&self.row(username).await?).await?, pending))
    }

    /// A second admin confirms a pending grant of `approver` or `admin` (TOTP step-up); the admin
    /// who asked for it cannot. Separation of duties is checked again against the roles now.
    pub async fn confirm_role(
        &self,
        actor: &Actor,
        username: &str,
        role: &str,
        totp: Option<&str>,
    ) -> Result<UserView> {
        actor.action("user.confirm_role", Some(username));
        actor.detail("role", role);
        let me = actor.require(&[Role::Admin])?;
        let role: Role = role
            .parse()
            .map_err(|e: UnknownName| Error::invalid("role", e.to_string()))?;
        let row = self.row(username).await?;
        let grant = self
            .store
            .grants_pending(Some(&row.username))
            .await?
            .into_iter()
            .find(|g| g.role == role.as_str())
            .ok_or_else(|| Error::NotFound(format!("a pending grant of {role} to {username}")))?;
        if grant.requested_by == me.username {
            return Err(Error::NotPermitted(
                "a second admin must confirm this grant; the one who asked for it cannot".into(),
            ));
        }
        if row.username == me.username {
            return Err(Error::NotPermitted(
                "nobody confirms a role for themselves".into(),
            ));
        }
        let roles = Roles::from_stored(&row.roles)?.with(role)?;
        let proof = self.authorize(me, totp).await?;
        actor.detail("requested_by", grant.requested_by.clone());
        let (name, id, stored, new) = (
            row.username.clone(),
            row.id,
            row.roles.clone(),
            roles.to_stored(),
        );
        self.audit
            .change(actor, "user.confirm_role", username, move |tx| {
                Box::pin(async move {
                    proof.spend(tx).await?;
                    if tx.grant_take(&name, role.as_str()).await?.is_none() {
                        return Err(Error::NotFound(format!(
                            "a pending grant of {role} to {name}"
                        )));
                    }
                    if !tx.user_set_roles(id, &stored, &new).await? {
                        return Err(Error::conflict(
                            Conflict::NotPending,
                            "the user's roles changed meanwhile; look again and retry",
                        ));
                    }
                    Ok(())
                })
            })
            .await?;
        self.view(&self.row(username).await?).await
    }

    /// The root key holder confirms a pending `admin` grant on the server itself (`mediavault
    /// bootstrap confirm-admin`), only while the vault has fewer than two enabled admins: how a
    /// new vault gets the second admin that every privileged grant needs. Someone holding an
    /// admin session asked for the grant (with their TOTP code); someone with a shell on the
    /// server and the root key confirms it: still two parties. Recorded as the CLI's actor with
    /// `bootstrap: true` and who asked. A refusal is recorded too (outcome `denied`, with the
    /// reason): the CLI has no request whose entry would.
    pub async fn bootstrap_confirm(&self, actor: &Actor, username: &str) -> Result<UserView> {
        let done = self.bootstrap_confirm_once(actor, username).await;
        if let Err(e) = &done {
            let mut entry = actor.entry("user.confirm_role", username);
            entry.outcome = crate::audit::Outcome::Denied;
            entry.detail.insert("bootstrap".into(), true.into());
            entry.detail.insert("refused".into(), e.to_string().into());
            self.audit.record(entry).await?;
        }
        done
    }

    async fn bootstrap_confirm_once(&self, actor: &Actor, username: &str) -> Result<UserView> {
        actor.action("user.confirm_role", Some(username));
        match &actor.who {
            Principal::System(id) if id.starts_with("cli:") => {}
            _ => {
                return Err(Error::NotPermitted(
                    "only the root key holder on the server confirms the bootstrap admin".into(),
                ));
            }
        }
        let row = self.row(username).await?;
        if row.disabled {
            return Err(Error::NotPermitted(format!(
                "user {} is disabled",
                row.username
            )));
        }
        let grant = self
            .store
            .grants_pending(Some(&row.username))
            .await?
            .into_iter()
            .find(|g| g.role == Role::Admin.as_str())
            .ok_or_else(|| {
                Error::conflict(
                    Conflict::NotPending,
                    format!(
                        "{username} has no pending grant of admin (the bootstrap confirms only \
                         admin; an admin asks for it first: `mediavault admin users grant \
                         {username} admin`)"
                    ),
                )
            })?;
        let roles = Roles::from_stored(&row.roles)?.with(Role::Admin)?;
        let asked_by = grant.requested_by.clone();
        let (name, id, stored, new) = (
            row.username.clone(),
            row.id,
            row.roles.clone(),
            roles.to_stored(),
        );
        self.audit
            .change(actor, "user.confirm_role", username, move |tx| {
                Box::pin(async move {
                    // The CLI's actor has no request to carry details: the change notes them.
                    tx.note("role", Role::Admin.as_str());
                    tx.note("bootstrap", true);
                    tx.note("requested_by", asked_by);
                    // Counted inside the transaction: two confirmations racing cannot both pass.
                    let admins = tx.admins_enabled().await?;
                    if admins >= 2 {
                        return Err(Error::conflict(
                            Conflict::BootstrapOver,
                            format!(
                                "the vault has {admins} admins: the bootstrap confirmation is over; \
                                 another admin confirms with `mediavault admin users confirm {name} admin`"
                            ),
                        ));
                    }
                    tx.note("admins_before", admins);
                    if tx.grant_take(&name, Role::Admin.as_str()).await?.is_none() {
                        return Err(Error::NotFound(format!(
                            "a pending grant of admin to {name}"
                        )));
                    }
                    if !tx.user_set_roles(id, &stored, &new).await? {
                        return Err(Error::conflict(
                            Conflict::NotPending,
                            "the user's roles changed meanwhile; look again and retry",
                        ));
                    }
                    Ok(())
                })
            })
            .await?;
        self.view(&self.row(username).await?).await
    }

    /// Every grant waiting for a second admin (the console's home page lists them).
    pub async fn pending_grants(
        &self,
        actor: &Actor,
    ) -> Result<Vec<crate::store::users::GrantRow>> {
        actor.require(&[Role::Admin])?;
        Ok(self.store.grants_pending(None).await?)
    }
}

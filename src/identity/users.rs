//! The people service: user accounts (creation with a TOTP enrolment shown once, listing,
//! disabling), login, and the checks that prove a person is present (password + TOTP at login,
//! TOTP alone for step-up). It owns who may manage people and what a lockout means.

use serde::Serialize;
use tracing::instrument;

use super::roster::RosterEntry;
use super::sessions::{NewSession, SessionRef, StepUpWindow};
use super::{Roles, Username, passwords, totp};
use crate::actor::{Actor, Principal};
use crate::crypto::{Aad, SecretBytes, SecretString};
use crate::error::{Conflict, TotpRefusal};
use crate::error::{Error, Result};
use crate::identity::Role;
use crate::store::Tx;
use crate::store::users::{NewUser, UserRow};
use crate::vault::Vault;

/// What the API shows of a user: never a hash or a seed.
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub username: String,
    pub display_name: String,
    pub roles: Vec<String>,
    pub department: Option<String>,
    pub disabled: bool,
    pub locked_until: Option<String>,
    pub created_at: String,
    /// Privileged roles asked for and waiting for a second admin's confirmation.
    pub pending_roles: Vec<String>,
}

/// An authenticated person.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: i64,
    pub username: String,
    pub roles: Roles,
    /// The session the person acts through (none while logging in, or for the demo's seeding).
    pub session: Option<SessionRef>,
}

impl Person {
    /// The step-up window open on this person's session, if any.
    pub fn step_up(&self) -> Option<StepUpWindow> {
        self.session.as_ref().and_then(|s| s.step_up)
    }
}

/// The enrolment of a new user: shown once, never stored in plaintext.
#[derive(Debug)]
pub struct Enrolment {
    pub user: UserView,
    pub totp_uri: SecretString,
    pub totp_secret: SecretString,
}

/// A person added from a roster: their enrolment and the generated initial password, shown once.
#[derive(Debug)]
pub struct Imported {
    pub enrolment: Enrolment,
    pub password: SecretString,
}

/// What allows a person's creation: the acting admin's step-up (none for the vault itself), or
/// the `user.import` entry (by its sequence number) that recorded the roster and spent the step-up.
enum Authority {
    StepUp(Option<StepUp>),
    Import(i64),
}

/// A new person, checked: name, display name, department, roles (separated), and which of them
/// wait for a second admin.
struct NewPerson {
    username: Username,
    display: String,
    department: Option<String>,
    roles: Roles,
    pending: Vec<Role>,
}

impl NewPerson {
    /// `by_admin`: a person asks, so `approver` and `admin` wait for a second admin; the vault
    /// itself grants directly.
    fn check(
        username: &str,
        display_name: &str,
        roles: &[String],
        department: Option<&str>,
        by_admin: bool,
    ) -> Result<Self> {
        let department = match department.map(str::trim) {
            None | Some("") => None,
            Some(d) if d.chars().count() > 64 || d.chars().any(char::is_control) => {
                return Err(Error::invalid(
                    "department",
                    "department must be at most 64 characters",
                ));
            }
            Some(d) => Some(d.to_owned()),
        };
        let username = Username::parse(username)?;
        let asked = Roles::parse(roles)?;
        let (roles, pending) = if by_admin {
            asked.split_confirmed()
        } else {
            (asked, Vec::new())
        };
        let display = display_name.trim().to_owned();
        if display.is_empty()
            || display.chars().count() > 64
            || display.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                "display_name",
                "display_name must be 1-64 characters",
            ));
        }
        Ok(Self {
            username,
            display,
            department,
            roles,
            pending,
        })
    }
}

pub struct NewUserInput {
    pub username: String,
    pub display_name: String,
    pub roles: Vec<String>,
    pub password: SecretString,
}

/// Where a user's sealed TOTP seed belongs (also used when rewrapping under a new term).
pub(crate) fn seed_aad(username: &str) -> Aad<'_> {
    Aad {
        table: "users",
        row: username,
        field: "totp_seed",
        version: 1,
    }
}

/// How a stored person is shown (the row is the store's; the view is this service's).
pub trait UserRowView {
    fn view(&self) -> UserView;
}

impl UserRowView for UserRow {
    fn view(&self) -> UserView {
        UserView {
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            roles: self
                .roles
                .split(',')
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
            department: self.department.clone(),
            disabled: self.disabled,
            locked_until: self.locked_until.map(crate::clock::rfc3339_unix),
            created_at: crate::clock::rfc3339_unix(self.created_at),
            pending_roles: Vec::new(),
        }
    }
}

/// The people service; `vault.people()`.
pub struct People<'v> {
    pub(crate) v: &'v Vault,
}

/// A TOTP code that checked out against a user's seed at one time step. It is spent inside the
/// transaction of the change it authorises, so a change that is not made leaves the code unused
/// and no code authorises two changes.
#[derive(Debug, Clone, Copy)]
#[must_use = "a proof is spent with `spend` inside the change's transaction"]
pub struct TotpProof {
    user_id: i64,
    step: i64,
    now: i64,
}

impl TotpProof {
    /// Accepts the step, atomically: only if newer than the last accepted one and only while the
    /// user is not locked, so neither a replay nor a code racing a lockout gets through.
    pub async fn spend(self, tx: &mut Tx) -> Result<()> {
        if tx
            .user_accept_totp_step(self.user_id, self.step, self.now)
            .await?
        {
            return Ok(());
        }
        // Locked by failures that raced this code, or the step was used meanwhile.
        if let Some(until) = tx.user_locked_until(self.user_id, self.now).await? {
            return Err(Error::UserLocked {
                until: crate::clock::rfc3339_unix(until),
            });
        }
        Err(Error::TotpInvalid(TotpRefusal::Replayed))
    }
}

/// A step-up code that must be there: a person's sensitive action without one is a clear 400.
pub(crate) fn required_totp(totp: Option<&str>) -> Result<&str> {
    given(totp).ok_or_else(|| Error::invalid("totp", "this action needs your current TOTP code"))
}

fn given(totp: Option<&str>) -> Option<&str> {
    totp.map(str::trim).filter(|t| !t.is_empty())
}

/// What lets a person's sensitive action through, spent with [`Self::spend`] inside the
/// transaction of the change: their TOTP code given with it (which also opens their session's
/// step-up window, when windows are configured), or the window a step-up opened earlier.
#[derive(Debug)]
#[must_use = "a step-up is spent with `spend` inside the change's transaction"]
pub enum StepUp {
    Code {
        proof: TotpProof,
        /// The session whose window this code opens, and until when.
        opens: Option<(Vec<u8>, i64)>,
    },
    Window {
        session: Vec<u8>,
        window: StepUpWindow,
        now: i64,
    },
}

impl StepUp {
    /// Spends the code (and opens the window, linking this change's entry as its step-up), or
    /// checks inside the transaction that the window still stands and names its step-up entry
    /// in this change's entry.
    pub async fn spend(self, tx: &mut Tx) -> Result<()> {
        match self {
            StepUp::Code { proof, opens } => {
                proof.spend(tx).await?;
                tx.note("step_up", "code");
                if let Some((session, until)) = opens
                    && tx.session_open_step_up(&session, until).await?
                {
                    tx.note("step_up_until", crate::clock::rfc3339_unix(until));
                }
                Ok(())
            }
            StepUp::Window {
                session,
                window,
                now,
            } => {
                if !tx.session_step_up_open(&session, window.seq, now).await? {
                    return Err(Error::invalid(
                        "totp",
                        "your step-up has ended; enter your current TOTP code",
                    ));
                }
                tx.note("step_up_seq", window.seq);
                Ok(())
            }
        }
    }
}

impl Vault {
    pub fn people(&self) -> People<'_> {
        People { v: self }
    }
}

impl People<'_> {
    /// Creates a user and returns the TOTP enrolment, shown once. A person needs the admin role
    /// and their TOTP code; roles that need a second admin (`approver`, `admin`) wait as pending
    /// grants. The vault itself (`init`, the CLI, the demo) grants directly.
    #[instrument(skip_all, fields(username = %input.username))]
    pub async fn create(
        &self,
        actor: &Actor,
        input: NewUserInput,
        totp: Option<&str>,
    ) -> Result<Enrolment> {
        self.create_in(actor, input, None, totp).await
    }

    /// As [`Self::create`], naming the department (处室) the person works for; evidence records
    /// of what they publish carry it.
    pub async fn create_in(
        &self,
        actor: &Actor,
        input: NewUserInput,
        department: Option<String>,
        totp: Option<&str>,
    ) -> Result<Enrolment> {
        actor.action("user.create", Some(&input.username));
        let admin = match &actor.who {
            Principal::System(_) => None,
            _ => Some(actor.require(&[Role::Admin])?),
        };
        let new = NewPerson::check(
            &input.username,
            &input.display_name,
            &input.roles,
            department.as_deref(),
            admin.is_some(),
        )?;
        passwords::check_policy(&input.password)?;
        let step = match admin {
            Some(me) => Some(self.authorize(me, totp).await?),
            None => None,
        };
        if self
            .v
            .store
            .user_by_name(new.username.as_str())
            .await?
            .is_some()
        {
            return Err(Error::conflict(
                Conflict::AlreadyExists,
                format!("user {} already exists", new.username),
            ));
        }
        let hash = self.v.passwords.hash(input.password).await?;
        self.insert(actor, new, hash, Authority::StepUp(step)).await
    }

    /// Adds the people of a roster in one go, with one step-up of the admin: every row is checked
    /// first (names, roles, the separation of duties, nobody already there, nobody twice) and
    /// nothing is created if one is wrong. Then a `user.import` entry records the roster (and
    /// spends the step-up), and each person is created in their own `user.create` entry that
    /// names it (`import_seq`), with a generated initial password. Each enrolment, password
    /// included, is returned once. `approver` and `admin` wait for a second admin as ever.
    pub async fn import(
        &self,
        actor: &Actor,
        roster: Vec<RosterEntry>,
        totp: Option<&str>,
    ) -> Result<Vec<Imported>> {
        actor.action("user.import", None);
        let me = actor.require(&[Role::Admin])?;
        if roster.is_empty() {
            return Err(Error::invalid("users", "the roster names nobody"));
        }
        if roster.len() > super::roster::MAX_ROWS {
            return Err(Error::invalid(
                "users",
                format!(
                    "a roster adds at most {} people; split it",
                    super::roster::MAX_ROWS
                ),
            ));
        }
        let mut people = Vec::with_capacity(roster.len());
        let mut seen = std::collections::HashSet::new();
        for (i, e) in roster.iter().enumerate() {
            let at = |e: Error| match e {
                Error::Invalid { field, detail } => Error::Invalid {
                    field,
                    detail: format!("person {} ({:?}): {detail}", i + 1, roster[i].username),
                },
                other => other,
            };
            let new = NewPerson::check(
                &e.username,
                &e.display_name,
                &e.roles,
                e.department.as_deref(),
                true,
            )
            .map_err(at)?;
            if !seen.insert(new.username.as_str().to_owned()) {
                return Err(Error::invalid(
                    "users",
                    format!("person {} ({}) is in the roster twice", i + 1, new.username),
                ));
            }
            people.push(new);
        }
        let mut taken = Vec::new();
        for p in &people {
            if self
                .v
                .store
                .user_by_name(p.username.as_str())
                .await?
                .is_some()
            {
                taken.push(p.username.as_str().to_owned());
            }
        }
        if !taken.is_empty() {
            return Err(Error::conflict(
                Conflict::AlreadyExists,
                format!(
                    "already users here, nothing was added: {}",
                    taken.join(", ")
                ),
            ));
        }
        let step = self.authorize(me, totp).await?;
        let names: Vec<String> = people
            .iter()
            .map(|p| p.username.as_str().to_owned())
            .collect();
        let count = names.len();
        let ((), seq) = self
            .v
            .change_seq(
                actor,
                "user.import",
                &format!("{count} people"),
                move |tx| {
                    Box::pin(async move {
                        step.spend(tx).await?;
                        tx.note("usernames", names);
                        Ok(())
                    })
                },
            )
            .await?;
        let mut out = Vec::with_capacity(count);
        for new in people {
            let password = passwords::generate()?;
            let hash = self.v.passwords.hash(password.clone()).await?;
            let enrolment = self
                .insert(actor, new, hash, Authority::Import(seq))
                .await?;
            out.push(Imported {
                enrolment,
                password,
            });
        }
        Ok(out)
    }

    /// Creates a checked person in one change with its `user.create` entry: sealed TOTP seed,
    /// password hash, pending grants, department; `authority` is spent (or named) in it.
    async fn insert(
        &self,
        actor: &Actor,
        new: NewPerson,
        hash: String,
        authority: Authority,
    ) -> Result<Enrolment> {
        let NewPerson {
            username,
            display,
            department,
            roles,
            pending,
        } = new;
        let seed = totp::new_seed()?;
        let sealed = self
            .v
            .keys
            .seal(&seed_aad(username.as_str()), seed.expose())?;
        let stored_roles = roles.to_stored();
        let now = self.v.clock.unix();
        let pending_names: Vec<String> = pending.iter().map(|r| r.as_str().to_owned()).collect();
        let name = username.as_str().to_owned();
        let by = actor.audit_id().1;
        let grants = pending_names.clone();
        let role_names = roles.names();
        let exists = || format!("user {username} already exists");
        let inserted = self
            .v
            .change(actor, "user.create", username.as_str(), move |tx| {
                Box::pin(async move {
                    match authority {
                        Authority::StepUp(Some(step)) => step.spend(tx).await?,
                        Authority::StepUp(None) => {}
                        Authority::Import(seq) => tx.note("import_seq", seq),
                    }
                    tx.note("roles", role_names);
                    if !grants.is_empty() {
                        tx.note("pending_roles", grants.clone());
                    }
                    tx.user_insert(NewUser {
                        username: &name,
                        display_name: &display,
                        roles: &stored_roles,
                        password_hash: &hash,
                        totp_seed: &sealed,
                        now,
                    })
                    .await?;
                    for role in &grants {
                        tx.grant_request(&name, role, &by, now).await?;
                    }
                    if let Some(d) = &department {
                        tx.user_set_department(&name, d).await?;
                    }
                    Ok(())
                })
            })
            .await;
        inserted.map_err(|e| e.explain(Conflict::AlreadyExists, exists))?;
        let row = self
            .v
            .store
            .user_by_name(username.as_str())
            .await?
            .ok_or_else(|| Error::internal(anyhow::anyhow!("user vanished after insert")))?;
        let totp_uri = totp::otpauth_uri(&seed, username.as_str())
            .ok_or_else(|| Error::internal(anyhow::anyhow!("cannot build otpauth uri")))?;
        let mut user = row.view();
        user.pending_roles = pending_names;
        Ok(Enrolment {
            user,
            totp_uri,
            totp_secret: totp::seed_base32(&seed),
        })
    }

    pub async fn list(&self, actor: &Actor) -> Result<Vec<UserView>> {
        actor.action("user.list", None);
        actor.require(&[Role::Admin])?;
        let grants = self.v.store.grants_pending(None).await?;
        Ok(self
            .v
            .store
            .users_list()
            .await?
            .iter()
            .map(|u| {
                let mut view = u.view();
                view.pending_roles = grants
                    .iter()
                    .filter(|g| g.username == u.username)
                    .map(|g| g.role.clone())
                    .collect();
                view
            })
            .collect())
    }

    pub async fn get(&self, actor: &Actor, username: &str) -> Result<UserView> {
        actor.action("user.get", Some(username));
        actor.require(&[Role::Admin])?;
        self.view(&self.row(username).await?).await
    }

    async fn view(&self, row: &UserRow) -> Result<UserView> {
        let mut view = row.view();
        view.pending_roles = self
            .v
            .store
            .grants_pending(Some(&row.username))
            .await?
            .into_iter()
            .map(|g| g.role)
            .collect();
        Ok(view)
    }

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
            .map_err(|e: super::UnknownName| Error::invalid("role", e.to_string()))?;
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
        let (by, now, stored) = (me.username.clone(), self.v.clock.unix(), row.roles.clone());
        let (name, id, new) = (row.username.clone(), row.id, roles.to_stored());
        let made = self
            .v
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
            .map_err(|e: super::UnknownName| Error::invalid("role", e.to_string()))?;
        let row = self.row(username).await?;
        let grant = self
            .v
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
        self.v
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
            self.v.audit.record(entry).await?;
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
            .v
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
        self.v
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
        Ok(self.v.store.grants_pending(None).await?)
    }

    pub(crate) async fn row(&self, username: &str) -> Result<UserRow> {
        let name =
            Username::parse(username).map_err(|_| Error::NotFound(format!("user {username:?}")))?;
        self.v
            .store
            .user_by_name(name.as_str())
            .await?
            .ok_or_else(|| Error::NotFound(format!("user {name}")))
    }

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
        let now = self.v.clock.unix();
        let name = row.username.clone();
        self.v
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
        self.v
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
        let sealed = self.v.keys.seal(&seed_aad(&row.username), seed.expose())?;
        let back = Requalify::of(&row, me, self.v.clock.unix())?;
        back.note(actor);
        let id = row.id;
        self.v
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
        let hash = self.v.passwords.hash(password).await?;
        let back = Requalify::of(&row, me, self.v.clock.unix())?;
        back.note(actor);
        let id = row.id;
        self.v
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

    /// The decrypted TOTP seed of a user; stays inside the vault.
    pub(crate) async fn seed(&self, row: &UserRow) -> Result<SecretBytes> {
        self.v.know_term_of(&row.totp_seed).await?;
        Ok(self.v.keys.open(&seed_aad(&row.username), &row.totp_seed)?)
    }

    fn locked(&self, row: &UserRow) -> Option<String> {
        row.locked_until
            .filter(|&t| t > self.v.clock.unix())
            .map(crate::clock::rfc3339_unix)
    }

    /// Counts a failure toward the lockout; returns the lock end if the user is locked now.
    async fn count_failure(&self, row: &UserRow) -> Result<Option<i64>> {
        let now = self.v.clock.unix();
        let lock_until = now + i64::from(self.v.config.lockout.minutes) * 60;
        let max = i64::from(self.v.config.lockout.max_failures);
        let locked = self
            .v
            .store
            .user_record_failure(row.id, max, now, lock_until)
            .await?;
        if locked.is_some() {
            tracing::warn!(user = %row.username, "user locked after repeated failures");
        }
        Ok(locked)
    }

    /// Checks a TOTP code of a person: refuses a locked or disabled user, a wrong code (counted
    /// toward the lockout) and a code whose step was already used (also after a restart). The
    /// proof is spent in the transaction of the change it authorises.
    #[instrument(skip_all, fields(user = %row.username))]
    pub(crate) async fn check_totp(&self, row: &UserRow, code: &str) -> Result<TotpProof> {
        if row.disabled {
            return Err(Error::NotPermitted(format!(
                "user {} is disabled",
                row.username
            )));
        }
        if let Some(until) = self.locked(row) {
            return Err(Error::UserLocked { until });
        }
        let seed = self.seed(row).await?;
        let now = self.v.clock.unix();
        let Some(step) = totp::check(&seed, code, now) else {
            if let Some(until) = self.count_failure(row).await? {
                return Err(Error::UserLocked {
                    until: crate::clock::rfc3339_unix(until),
                });
            }
            return Err(Error::TotpInvalid(TotpRefusal::Wrong));
        };
        if step <= row.totp_last_step {
            return Err(Error::TotpInvalid(TotpRefusal::Replayed));
        }
        Ok(TotpProof {
            user_id: row.id,
            step,
            now,
        })
    }

    /// The acting person's own code, for a decision that asks for one every time (approving or
    /// denying a post, closing an incident); no window opens or counts.
    pub(crate) async fn step_up(&self, person: &Person, code: &str) -> Result<TotpProof> {
        let row = self.row(&person.username).await?;
        self.check_totp(&row, code).await
    }

    /// The step-up of a sensitive action (people, tools, rotation, rollback, freeze): the code
    /// given with it, which opens the session's window for `session.step_up_minutes`; or, with no
    /// code, a window still open on the session. A locked or disabled person gets neither.
    pub(crate) async fn authorize(&self, person: &Person, code: Option<&str>) -> Result<StepUp> {
        let row = self.row(&person.username).await?;
        let now = self.v.clock.unix();
        if let Some(code) = given(code) {
            let proof = self.check_totp(&row, code).await?;
            let minutes = i64::from(self.v.config.session.step_up_minutes);
            let opens = person
                .session
                .as_ref()
                .filter(|_| minutes > 0)
                .map(|s| (s.hash.clone(), now + minutes * 60));
            return Ok(StepUp::Code { proof, opens });
        }
        if row.disabled {
            return Err(Error::NotPermitted(format!(
                "user {} is disabled",
                row.username
            )));
        }
        if let Some(until) = self.locked(&row) {
            return Err(Error::UserLocked { until });
        }
        match (&person.session, person.step_up()) {
            (Some(s), Some(window)) if window.until > now => Ok(StepUp::Window {
                session: s.hash.clone(),
                window,
                now,
            }),
            _ => Err(Error::invalid(
                "totp",
                "this action needs your current TOTP code (or a step-up in this session)",
            )),
        }
    }

    /// The person signed in on the acting session.
    pub fn whoami<'a>(&self, actor: &'a Actor) -> Result<&'a Person> {
        match &actor.who {
            Principal::Person(p) => Ok(p),
            _ => Err(Error::NotPermitted("this needs a person's session".into())),
        }
    }

    /// Opens the session's step-up window with the person's code and nothing else: what the
    /// console's and the CLI's "step up" does before a run of changes. Returns the window.
    pub async fn open_step_up(&self, actor: &Actor, code: &str) -> Result<StepUpWindow> {
        actor.action("auth.step_up", None);
        let me = actor.require(&[Role::Admin, Role::Auditor, Role::Approver, Role::Publisher])?;
        let Some(session) = me.session.clone() else {
            return Err(Error::NotPermitted(
                "a step-up window belongs to a signed-in session".into(),
            ));
        };
        if self.v.config.session.step_up_minutes == 0 {
            return Err(Error::conflict(
                Conflict::StepUpOff,
                "step-up windows are switched off here (session.step_up_minutes = 0): give your code with each change",
            ));
        }
        let step = self.authorize(me, Some(required_totp(Some(code))?)).await?;
        let name = me.username.clone();
        self.v
            .change(actor, "auth.step_up", &name, move |tx| {
                Box::pin(async move { step.spend(tx).await })
            })
            .await?;
        let person = self.v.sessions().reread(&session).await?;
        person.step_up().ok_or_else(|| {
            Error::internal(anyhow::anyhow!(
                "step-up committed but its window is not open"
            ))
        })
    }

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
            Ok(name) => self.v.store.user_by_name(name.as_str()).await?,
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
        let password_ok = self.v.passwords.verify(password, phc).await?;
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
        let session = match self.v.sessions().create(&signed_in, &person, proof).await {
            // Locked by failures that raced this login: the same answer as any locked user.
            Err(Error::UserLocked { .. }) => return Err(Error::Unauthenticated),
            other => other?,
        };
        Ok((person, session))
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

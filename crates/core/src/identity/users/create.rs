//! Creating people: one at a time (an admin with their step-up, or the vault itself), or a whole
//! roster under one step-up; each with a TOTP enrolment shown once.

use super::UserRowView as _;
use tracing::instrument;

use super::{People, StepUp, UserView, seed_aad};
use crate::actor::{Actor, Principal};
use crate::crypto::SecretString;
use crate::error::{Conflict, Error, Result};
use crate::identity::roster::RosterEntry;
use crate::identity::{Role, Roles, Username, passwords, totp};
use crate::store::users::NewUser;

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

impl People {
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
        let hash = self.passwords.hash(input.password).await?;
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
        if roster.len() > crate::identity::roster::MAX_ROWS {
            return Err(Error::invalid(
                "users",
                format!(
                    "a roster adds at most {} people; split it",
                    crate::identity::roster::MAX_ROWS
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
            .audit
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
            let hash = self.passwords.hash(password.clone()).await?;
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
            .keys
            .seal(&seed_aad(username.as_str()), seed.expose())?;
        let stored_roles = roles.to_stored();
        let now = self.clock.unix();
        let pending_names: Vec<String> = pending.iter().map(|r| r.as_str().to_owned()).collect();
        let name = username.as_str().to_owned();
        let by = actor.audit_id().1;
        let grants = pending_names.clone();
        let role_names = roles.names();
        let exists = || format!("user {username} already exists");
        let inserted = self
            .audit
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
}

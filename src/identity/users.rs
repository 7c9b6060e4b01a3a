//! User accounts: creation with a TOTP enrolment shown once, listing, disabling, and the checks
//! that prove a person is present (password + TOTP at login, TOTP alone for step-up).

use serde::Serialize;
use tracing::instrument;

use super::{Roles, Username, passwords, totp};
use crate::crypto::{Aad, SecretBytes, SecretString};
use crate::error::{Error, Result};
use crate::store::users::{NewUser, UserRow};
use crate::vault::Vault;

/// What the API shows of a user: never a hash or a seed.
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub username: String,
    pub display_name: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub locked_until: Option<String>,
    pub created_at: String,
}

/// An authenticated person.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: i64,
    pub username: String,
    pub roles: Roles,
}

/// The enrolment of a new user: shown once, never stored in plaintext.
#[derive(Debug)]
pub struct Enrolment {
    pub user: UserView,
    pub totp_uri: SecretString,
    pub totp_secret: SecretString,
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

impl UserRow {
    pub fn view(&self) -> UserView {
        UserView {
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            roles: self
                .roles
                .split(',')
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
            disabled: self.disabled,
            locked_until: self.locked_until.map(crate::clock::rfc3339_unix),
            created_at: crate::clock::rfc3339_unix(self.created_at),
        }
    }
}

impl Vault {
    #[instrument(skip_all, fields(username = %input.username))]
    pub async fn create_user(&self, input: NewUserInput) -> Result<Enrolment> {
        let username = Username::parse(&input.username)?;
        let roles = Roles::parse(&input.roles)?;
        let display = input.display_name.trim();
        if display.is_empty() || display.chars().count() > 64 {
            return Err(Error::invalid(
                "display_name",
                "display_name must be 1-64 characters",
            ));
        }
        passwords::check_policy(&input.password)?;
        if self.store.user_by_name(username.as_str()).await?.is_some() {
            return Err(Error::Conflict {
                code: "already_exists",
                detail: format!("user {username} already exists"),
            });
        }
        let hash = self.passwords.hash(input.password).await?;
        let seed = totp::new_seed()?;
        let sealed = self
            .keys
            .seal(&seed_aad(username.as_str()), seed.expose())?;
        let stored_roles = roles.to_stored();
        let inserted = self
            .store
            .user_insert(NewUser {
                username: username.as_str(),
                display_name: display,
                roles: &stored_roles,
                password_hash: &hash,
                totp_seed: &sealed,
                now: self.clock.unix(),
            })
            .await;
        match inserted {
            Err(e) if crate::store::is_unique_violation(&e) => {
                return Err(Error::Conflict {
                    code: "already_exists",
                    detail: format!("user {username} already exists"),
                });
            }
            other => other?,
        };
        let row = self
            .store
            .user_by_name(username.as_str())
            .await?
            .ok_or_else(|| Error::internal(anyhow::anyhow!("user vanished after insert")))?;
        let totp_uri = totp::otpauth_uri(&seed, username.as_str())
            .ok_or_else(|| Error::internal(anyhow::anyhow!("cannot build otpauth uri")))?;
        Ok(Enrolment {
            user: row.view(),
            totp_uri,
            totp_secret: totp::seed_base32(&seed),
        })
    }

    pub async fn user(&self, username: &str) -> Result<UserRow> {
        let name =
            Username::parse(username).map_err(|_| Error::NotFound(format!("user {username:?}")))?;
        self.store
            .user_by_name(name.as_str())
            .await?
            .ok_or_else(|| Error::NotFound(format!("user {name}")))
    }

    pub async fn disable_user(&self, username: &str) -> Result<UserView> {
        let row = self.user(username).await?;
        self.store.user_set_disabled(row.id).await?;
        Ok(self.user(username).await?.view())
    }

    /// The decrypted TOTP seed of a user; stays inside the vault.
    pub(crate) fn user_seed(&self, row: &UserRow) -> Result<SecretBytes> {
        Ok(self.keys.open(&seed_aad(&row.username), &row.totp_seed)?)
    }

    fn locked(&self, row: &UserRow) -> Option<String> {
        row.locked_until
            .filter(|&t| t > self.clock.unix())
            .map(crate::clock::rfc3339_unix)
    }

    /// Proves presence with a TOTP code: refuses a locked or disabled user, a wrong code (counted
    /// toward the lockout) and a code whose step was already used (also after a restart).
    #[instrument(skip_all, fields(user = %row.username))]
    pub async fn verify_totp(&self, row: &UserRow, code: &str) -> Result<()> {
        if row.disabled {
            return Err(Error::NotPermitted(format!(
                "user {} is disabled",
                row.username
            )));
        }
        if let Some(until) = self.locked(row) {
            return Err(Error::UserLocked { until });
        }
        let seed = self.user_seed(row)?;
        let now = self.clock.unix();
        let Some(step) = totp::check(&seed, code, now) else {
            let lock_until = now + i64::from(self.config.lockout.minutes) * 60;
            let max = i64::from(self.config.lockout.max_failures);
            if let Some(until) = self
                .store
                .user_record_failure(row.id, max, lock_until)
                .await?
            {
                tracing::warn!(user = %row.username, "user locked after repeated wrong codes");
                return Err(Error::UserLocked {
                    until: crate::clock::rfc3339_unix(until),
                });
            }
            return Err(Error::TotpInvalid(
                "the TOTP code is wrong or expired".into(),
            ));
        };
        if step <= row.totp_last_step || !self.store.user_accept_totp_step(row.id, step).await? {
            return Err(Error::TotpInvalid(
                "this TOTP code was already used; wait for the next code and try again".into(),
            ));
        }
        Ok(())
    }

    /// Step-up by username (rotation, approval, checkout): the code belongs to that person.
    pub async fn verify_user_totp(&self, username: &str, code: &str) -> Result<UserRow> {
        let row = self.user(username).await?;
        self.verify_totp(&row, code).await?;
        Ok(row)
    }

    /// Password + TOTP. Every failure a stranger can cause looks the same (unknown user, wrong
    /// password, wrong code) and costs one argon2 verification.
    #[instrument(skip_all)]
    pub async fn login(
        &self,
        username: &str,
        password: SecretString,
        code: &str,
    ) -> Result<Person> {
        let row = match Username::parse(username) {
            Ok(name) => self.store.user_by_name(name.as_str()).await?,
            Err(_) => None,
        };
        let phc = row.as_ref().map(|r| r.password_hash.clone());
        let password_ok = self.passwords.verify(password, phc).await?;
        let Some(row) = row.filter(|r| !r.disabled) else {
            return Err(Error::Unauthenticated);
        };
        if !password_ok {
            if self.locked(&row).is_none() {
                let now = self.clock.unix();
                let lock_until = now + i64::from(self.config.lockout.minutes) * 60;
                self.store
                    .user_record_failure(
                        row.id,
                        i64::from(self.config.lockout.max_failures),
                        lock_until,
                    )
                    .await?;
            }
            return Err(Error::Unauthenticated);
        }
        match self.verify_totp(&row, code).await {
            Ok(()) => {}
            // Only someone who knows the password learns about the lock or a reused code.
            Err(e @ Error::UserLocked { .. }) => return Err(e),
            Err(Error::TotpInvalid(msg)) if msg.contains("already used") => {
                return Err(Error::TotpInvalid(msg));
            }
            Err(Error::TotpInvalid(_)) => return Err(Error::Unauthenticated),
            Err(e) => return Err(e),
        }
        Ok(Person {
            id: row.id,
            username: row.username.clone(),
            roles: Roles::from_stored(&row.roles)?,
        })
    }
}

//! People and their sessions.

use crate::Result;
use async_trait::async_trait;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    /// Comma-separated role names; parsed by `identity`.
    pub roles: String,
    pub password_hash: String,
    pub totp_seed: Vec<u8>,
    pub totp_last_step: i64,
    pub failed_attempts: i64,
    pub locked_until: Option<i64>,
    pub disabled: bool,
    pub created_at: i64,
    /// The office department (处室) the person works for; evidence records name it.
    pub department: Option<String>,
}

pub struct NewUser<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub roles: &'a str,
    pub password_hash: &'a str,
    pub totp_seed: &'a [u8],
    pub now: i64,
}

/// A privileged role waiting for a second admin.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GrantRow {
    pub username: String,
    pub role: String,
    pub requested_by: String,
    pub requested_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub user_id: i64,
    pub created_at: i64,
    pub last_seen: i64,
    pub expires_at: i64,
    /// The end of the session's step-up window, and the audit entry of the step-up that opened
    /// it (set in the same transaction; a window without one is not open).
    pub step_up_until: Option<i64>,
    pub step_up_seq: Option<i64>,
}

#[async_trait]
pub trait UserReads: Send + Sync {
    /// Lockout and replay decisions do not rely on this read being current: the updates that
    /// decide them are conditional statements inside the change's transaction.
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>>;
    async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>>;
    async fn users_list(&self) -> Result<Vec<UserRow>>;
    /// Counts a failed attempt, atomically, and answers whether the user is locked now. A failure
    /// while locked is counted too (the lock keeps its end); once a lock has ended, counting starts
    /// again; the failure that reaches `max_failures` locks until `lock_until`. Deciding in the one
    /// statement means parallel failures cannot slip past the lock.
    async fn user_record_failure(
        &self,
        id: i64,
        max_failures: i64,
        now: i64,
        lock_until: i64,
    ) -> Result<Option<i64>>;
    /// Privileged roles waiting for confirmation: of one user, or of everyone.
    async fn grants_pending(&self, username: Option<&str>) -> Result<Vec<GrantRow>>;
    async fn session_get(&self, hash: &[u8]) -> Result<Option<SessionRow>>;
    async fn session_touch(&self, hash: &[u8], now: i64) -> Result<()>;
}

#[async_trait]
pub trait UserWrites: Send {
    async fn user_insert(&mut self, u: NewUser<'_>) -> Result<i64>;
    async fn user_set_department(&mut self, username: &str, department: &str) -> Result<()>;
    async fn user_set_disabled(&mut self, id: i64) -> Result<()>;
    /// Clears a lockout and the failure count.
    async fn user_unlock(&mut self, id: i64) -> Result<()>;
    /// Enables a disabled user, with a clean failure count and no lock.
    async fn user_set_enabled(&mut self, id: i64) -> Result<()>;
    /// Replaces a user's password hash, clears the failure count and lock, and ends every session
    /// of the user.
    async fn user_set_password(&mut self, id: i64, password_hash: &str) -> Result<()>;
    /// Replaces a user's sealed TOTP seed (a re-enrolment), clears the failure count and lock,
    /// and ends every session. The last accepted step stays: no step is accepted twice.
    async fn user_reset_seed(&mut self, id: i64, sealed: &[u8]) -> Result<()>;
    /// Ends every session of a user.
    async fn user_end_sessions(&mut self, id: i64) -> Result<()>;
    /// Accepts a TOTP time step only if it is newer than the last accepted one and the user is not
    /// locked, atomically, so two concurrent uses of one code cannot both pass and no code races a
    /// lockout. Clears the failure count on success.
    async fn user_accept_totp_step(&mut self, id: i64, step: i64, now: i64) -> Result<bool>;
    /// Until when the user is locked, read inside the transaction (why a step was refused).
    async fn user_locked_until(&mut self, id: i64, now: i64) -> Result<Option<i64>>;
    async fn session_insert(
        &mut self,
        hash: &[u8],
        user_id: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<()>;
    /// Sets a live session's step-up window to end at `until`, not yet linked to an entry: call
    /// [`crate::Tx::session_open_step_up`], which links it.
    async fn session_set_step_up(&mut self, hash: &[u8], until: i64) -> Result<bool>;
    /// Whether the session's window opened by step-up entry `seq` still stands at `now`, read in
    /// the transaction of the change it would authorise (a logout or reset that raced the change
    /// has ended it).
    async fn session_step_up_open(&mut self, hash: &[u8], seq: i64, now: i64) -> Result<bool>;
    /// Enabled users holding the `admin` role, counted in the transaction (the bootstrap
    /// confirmation holds only while there are fewer than two).
    async fn admins_enabled(&mut self) -> Result<i64>;
    async fn session_revoke(&mut self, hash: &[u8]) -> Result<()>;
    async fn user_replace_seed(&mut self, id: i64, sealed: &[u8]) -> Result<()>;
    async fn grant_request(
        &mut self,
        username: &str,
        role: &str,
        requested_by: &str,
        now: i64,
    ) -> Result<()>;
    /// Takes a pending grant away (to confirm it); returns who asked for it.
    async fn grant_take(&mut self, username: &str, role: &str) -> Result<Option<String>>;
    /// Replaces a user's roles, only if they are still `expected` (no change raced this one).
    async fn user_set_roles(&mut self, id: i64, expected: &str, roles: &str) -> Result<bool>;
}

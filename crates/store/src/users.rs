//! People and their sessions.

use super::{Result, Store, Tx};

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

/// `SELECT <every UserRow column> FROM users <tail>` as one static string (sqlx takes `&'static str`).
macro_rules! select_users {
    ($tail:literal) => {
        concat!("SELECT id, username, display_name, roles, password_hash, totp_seed, totp_last_step, failed_attempts, locked_until, disabled, created_at, department FROM users ", $tail)
    };
}

impl Store {
    /// Lockout and replay decisions do not rely on this read being current: the updates that
    /// decide them are conditional statements inside the change's transaction.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(select_users!("WHERE username = ?"))
            .bind(username)
            .fetch_optional(&self.reader)
            .await?)
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(select_users!("WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?)
    }

    pub async fn users_list(&self) -> Result<Vec<UserRow>> {
        Ok(sqlx::query_as(select_users!("ORDER BY username"))
            .fetch_all(&self.reader)
            .await?)
    }

    /// Counts a failed attempt, atomically, and answers whether the user is locked now. A failure
    /// while locked is counted too (the lock keeps its end); once a lock has ended, counting starts
    /// again; the failure that reaches `max_failures` locks until `lock_until`. Deciding in the one
    /// statement means parallel failures cannot slip past the lock.
    pub async fn user_record_failure(
        &self,
        id: i64,
        max_failures: i64,
        now: i64,
        lock_until: i64,
    ) -> Result<Option<i64>> {
        let locked: Option<Option<i64>> = sqlx::query_scalar(
            "UPDATE users SET
                failed_attempts = CASE WHEN locked_until IS NOT NULL AND locked_until <= ?2
                                       THEN 1 ELSE failed_attempts + 1 END,
                locked_until = CASE
                    WHEN locked_until > ?2 THEN locked_until
                    WHEN (CASE WHEN locked_until IS NOT NULL AND locked_until <= ?2
                               THEN 1 ELSE failed_attempts + 1 END) >= ?1 THEN ?3
                    ELSE NULL END
             WHERE id = ?4 RETURNING locked_until",
        )
        .bind(max_failures)
        .bind(now)
        .bind(lock_until)
        .bind(id)
        .fetch_optional(&self.writer)
        .await?;
        Ok(locked.flatten().filter(|&t| t > now))
    }

    /// Privileged roles waiting for confirmation: of one user, or of everyone.
    pub async fn grants_pending(&self, username: Option<&str>) -> Result<Vec<GrantRow>> {
        Ok(sqlx::query_as(
            "SELECT username, role, requested_by, requested_at FROM role_grants
             WHERE ?1 IS NULL OR username = ?1 ORDER BY requested_at, username, role",
        )
        .bind(username)
        .fetch_all(&self.reader)
        .await?)
    }

    pub async fn session_get(&self, hash: &[u8]) -> Result<Option<SessionRow>> {
        Ok(sqlx::query_as(
            "SELECT user_id, created_at, last_seen, expires_at, step_up_until, step_up_seq
             FROM sessions WHERE token_hash = ? AND revoked = 0",
        )
        .bind(hash)
        .fetch_optional(&self.reader)
        .await?)
    }

    pub async fn session_touch(&self, hash: &[u8], now: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen = ? WHERE token_hash = ?")
            .bind(now)
            .bind(hash)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}

impl Store {}

/// Changes: each runs inside the transaction the audit writer hands out.
impl Tx {
    pub async fn user_insert(&mut self, u: NewUser<'_>) -> Result<i64> {
        let id = sqlx::query(
            "INSERT INTO users (username, display_name, roles, password_hash, totp_seed, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(u.username)
        .bind(u.display_name)
        .bind(u.roles)
        .bind(u.password_hash)
        .bind(u.totp_seed)
        .bind(u.now)
        .execute(self.conn())
        .await?
        .last_insert_rowid();
        Ok(id)
    }
    pub async fn user_set_department(&mut self, username: &str, department: &str) -> Result<()> {
        sqlx::query("UPDATE users SET department = ? WHERE username = ?")
            .bind(department)
            .bind(username)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    pub async fn user_set_disabled(&mut self, id: i64) -> Result<()> {
        self.touch_tokens();
        sqlx::query("UPDATE users SET disabled = 1 WHERE id = ?")
            .bind(id)
            .execute(self.conn())
            .await?;
        sqlx::query("UPDATE sessions SET revoked = 1 WHERE user_id = ?")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    /// Clears a lockout and the failure count.
    pub async fn user_unlock(&mut self, id: i64) -> Result<()> {
        sqlx::query("UPDATE users SET failed_attempts = 0, locked_until = NULL WHERE id = ?")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    /// Enables a disabled user, with a clean failure count and no lock.
    pub async fn user_set_enabled(&mut self, id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE users SET disabled = 0, failed_attempts = 0, locked_until = NULL WHERE id = ?",
        )
        .bind(id)
        .execute(self.conn())
        .await?;
        Ok(())
    }
    /// Replaces a user's password hash, clears the failure count and lock, and ends every session
    /// of the user.
    pub async fn user_set_password(&mut self, id: i64, password_hash: &str) -> Result<()> {
        sqlx::query(
            "UPDATE users SET password_hash = ?, failed_attempts = 0, locked_until = NULL WHERE id = ?",
        )
        .bind(password_hash)
        .bind(id)
        .execute(self.conn())
        .await?;
        self.user_end_sessions(id).await
    }
    /// Replaces a user's sealed TOTP seed (a re-enrolment), clears the failure count and lock,
    /// and ends every session. The last accepted step stays: no step is accepted twice.
    pub async fn user_reset_seed(&mut self, id: i64, sealed: &[u8]) -> Result<()> {
        sqlx::query(
            "UPDATE users SET totp_seed = ?, failed_attempts = 0, locked_until = NULL WHERE id = ?",
        )
        .bind(sealed)
        .bind(id)
        .execute(self.conn())
        .await?;
        self.user_end_sessions(id).await
    }
    /// Ends every session of a user.
    pub async fn user_end_sessions(&mut self, id: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET revoked = 1 WHERE user_id = ?")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    /// Accepts a TOTP time step only if it is newer than the last accepted one and the user is not
    /// locked, atomically, so two concurrent uses of one code cannot both pass and no code races a
    /// lockout. Clears the failure count on success.
    pub async fn user_accept_totp_step(&mut self, id: i64, step: i64, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = ?1, failed_attempts = 0
             WHERE id = ?2 AND totp_last_step < ?1 AND disabled = 0
               AND (locked_until IS NULL OR locked_until <= ?3)",
        )
        .bind(step)
        .bind(id)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Until when the user is locked, read inside the transaction (why a step was refused).
    pub async fn user_locked_until(&mut self, id: i64, now: i64) -> Result<Option<i64>> {
        let until: Option<Option<i64>> =
            sqlx::query_scalar("SELECT locked_until FROM users WHERE id = ?")
                .bind(id)
                .fetch_optional(self.conn())
                .await?;
        Ok(until.flatten().filter(|&t| t > now))
    }

    pub async fn session_insert(
        &mut self,
        hash: &[u8],
        user_id: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, last_seen, expires_at) VALUES (?, ?, ?, ?, ?)")
            .bind(hash)
            .bind(user_id)
            .bind(now)
            .bind(now)
            .bind(expires_at)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    /// Opens (or renews) a live session's step-up window until `until`; the entry of the change
    /// that does it is linked as the window's step-up (see [`super::SeqLink`]).
    pub async fn session_open_step_up(&mut self, hash: &[u8], until: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE sessions SET step_up_until = ?, step_up_seq = NULL
             WHERE token_hash = ? AND revoked = 0",
        )
        .bind(until)
        .bind(hash)
        .execute(self.conn())
        .await?;
        self.link_entry(super::SeqLink::SessionStepUp(hash.to_vec()));
        Ok(r.rows_affected() == 1)
    }

    /// Whether the session's window opened by step-up entry `seq` still stands at `now`, read in
    /// the transaction of the change it would authorise (a logout or reset that raced the change
    /// has ended it).
    pub async fn session_step_up_open(&mut self, hash: &[u8], seq: i64, now: i64) -> Result<bool> {
        let open: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM sessions WHERE token_hash = ? AND revoked = 0 AND step_up_seq = ?
               AND step_up_until > ? AND expires_at > ?",
        )
        .bind(hash)
        .bind(seq)
        .bind(now)
        .bind(now)
        .fetch_optional(self.conn())
        .await?;
        Ok(open.is_some())
    }

    /// Enabled users holding the `admin` role, counted in the transaction (the bootstrap
    /// confirmation holds only while there are fewer than two).
    pub async fn admins_enabled(&mut self) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE disabled = 0 AND ',' || roles || ',' LIKE '%,admin,%'",
        )
        .fetch_one(self.conn())
        .await?)
    }

    pub async fn session_revoke(&mut self, hash: &[u8]) -> Result<()> {
        sqlx::query("UPDATE sessions SET revoked = 1 WHERE token_hash = ?")
            .bind(hash)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    pub async fn user_replace_seed(&mut self, id: i64, sealed: &[u8]) -> Result<()> {
        sqlx::query("UPDATE users SET totp_seed = ? WHERE id = ?")
            .bind(sealed)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn grant_request(
        &mut self,
        username: &str,
        role: &str,
        requested_by: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO role_grants (username, role, requested_by, requested_at) VALUES (?, ?, ?, ?)",
        )
        .bind(username)
        .bind(role)
        .bind(requested_by)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Takes a pending grant away (to confirm it); returns who asked for it.
    pub async fn grant_take(&mut self, username: &str, role: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "DELETE FROM role_grants WHERE username = ? AND role = ? RETURNING requested_by",
        )
        .bind(username)
        .bind(role)
        .fetch_optional(self.conn())
        .await?)
    }

    /// Replaces a user's roles, only if they are still `expected` (no change raced this one).
    pub async fn user_set_roles(&mut self, id: i64, expected: &str, roles: &str) -> Result<bool> {
        self.touch_tokens();
        let r = sqlx::query("UPDATE users SET roles = ? WHERE id = ? AND roles = ?")
            .bind(roles)
            .bind(id)
            .bind(expected)
            .execute(self.conn())
            .await?;
        Ok(r.rows_affected() == 1)
    }
}

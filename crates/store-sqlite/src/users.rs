//! People and their sessions.

use async_trait::async_trait;
use mediavault_store::Result;
use mediavault_store::users::*;

use rusqlite::OptionalExtension as _;

use crate::{SqliteStore, SqliteTx};

/// `SELECT <every UserRow column> FROM users <tail>` as one static string (sqlx takes `&'static str`).
macro_rules! select_users {
    ($tail:literal) => {
        concat!("SELECT id, username, display_name, roles, password_hash, totp_seed, totp_last_step, failed_attempts, locked_until, disabled, created_at, department FROM users ", $tail)
    };
}

/// A [`UserRow`] from the columns of [`select_users!`], read through rusqlite.
fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        username: r.get(1)?,
        display_name: r.get(2)?,
        roles: r.get(3)?,
        password_hash: r.get(4)?,
        totp_seed: r.get(5)?,
        totp_last_step: r.get(6)?,
        failed_attempts: r.get(7)?,
        locked_until: r.get(8)?,
        disabled: r.get(9)?,
        created_at: r.get(10)?,
        department: r.get(11)?,
    })
}

#[async_trait]
impl UserReads for SqliteStore {
    /// A point read by key on every checkout and sign-in: through rusqlite on this thread
    /// (`point.rs`).
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>> {
        self.point.read(&self.file, |conn| {
            let mut q = conn.prepare_cached(select_users!("WHERE username = ?1"))?;
            q.query_row([username], user_row).optional()
        })
    }
    async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(select_users!("WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?)
    }
    async fn users_list(&self) -> Result<Vec<UserRow>> {
        Ok(sqlx::query_as(select_users!("ORDER BY username"))
            .fetch_all(&self.reader)
            .await?)
    }
    async fn user_record_failure(
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
    async fn grants_pending(&self, username: Option<&str>) -> Result<Vec<GrantRow>> {
        Ok(sqlx::query_as(
            "SELECT username, role, requested_by, requested_at FROM role_grants
             WHERE ?1 IS NULL OR username = ?1 ORDER BY requested_at, username, role",
        )
        .bind(username)
        .fetch_all(&self.reader)
        .await?)
    }
    async fn session_get(&self, hash: &[u8]) -> Result<Option<SessionRow>> {
        Ok(sqlx::query_as(
            "SELECT user_id, created_at, last_seen, expires_at, step_up_until, step_up_seq
             FROM sessions WHERE token_hash = ? AND revoked = 0",
        )
        .bind(hash)
        .fetch_optional(&self.reader)
        .await?)
    }
    async fn session_touch(&self, hash: &[u8], now: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen = ? WHERE token_hash = ?")
            .bind(now)
            .bind(hash)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl UserWrites for SqliteTx {
    async fn user_insert(&mut self, u: NewUser<'_>) -> Result<i64> {
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
    async fn user_set_department(&mut self, username: &str, department: &str) -> Result<()> {
        sqlx::query("UPDATE users SET department = ? WHERE username = ?")
            .bind(department)
            .bind(username)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    async fn user_set_disabled(&mut self, id: i64) -> Result<()> {
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
    async fn user_unlock(&mut self, id: i64) -> Result<()> {
        sqlx::query("UPDATE users SET failed_attempts = 0, locked_until = NULL WHERE id = ?")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    async fn user_set_enabled(&mut self, id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE users SET disabled = 0, failed_attempts = 0, locked_until = NULL WHERE id = ?",
        )
        .bind(id)
        .execute(self.conn())
        .await?;
        Ok(())
    }
    async fn user_set_password(&mut self, id: i64, password_hash: &str) -> Result<()> {
        sqlx::query(
            "UPDATE users SET password_hash = ?, failed_attempts = 0, locked_until = NULL WHERE id = ?",
        )
        .bind(password_hash)
        .bind(id)
        .execute(self.conn())
        .await?;
        self.user_end_sessions(id).await
    }
    async fn user_reset_seed(&mut self, id: i64, sealed: &[u8]) -> Result<()> {
        sqlx::query(
            "UPDATE users SET totp_seed = ?, failed_attempts = 0, locked_until = NULL WHERE id = ?",
        )
        .bind(sealed)
        .bind(id)
        .execute(self.conn())
        .await?;
        self.user_end_sessions(id).await
    }
    async fn user_end_sessions(&mut self, id: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET revoked = 1 WHERE user_id = ?")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    async fn user_accept_totp_step(&mut self, id: i64, step: i64, now: i64) -> Result<bool> {
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
    async fn user_locked_until(&mut self, id: i64, now: i64) -> Result<Option<i64>> {
        let until: Option<Option<i64>> =
            sqlx::query_scalar("SELECT locked_until FROM users WHERE id = ?")
                .bind(id)
                .fetch_optional(self.conn())
                .await?;
        Ok(until.flatten().filter(|&t| t > now))
    }
    async fn session_insert(
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
    async fn session_set_step_up(&mut self, hash: &[u8], until: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE sessions SET step_up_until = ?, step_up_seq = NULL
             WHERE token_hash = ? AND revoked = 0",
        )
        .bind(until)
        .bind(hash)
        .execute(self.conn())
        .await?;
        Ok(r.rows_affected() == 1)
    }
    async fn session_step_up_open(&mut self, hash: &[u8], seq: i64, now: i64) -> Result<bool> {
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
    async fn admins_enabled(&mut self) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE disabled = 0 AND ',' || roles || ',' LIKE '%,admin,%'",
        )
        .fetch_one(self.conn())
        .await?)
    }
    async fn session_revoke(&mut self, hash: &[u8]) -> Result<()> {
        sqlx::query("UPDATE sessions SET revoked = 1 WHERE token_hash = ?")
            .bind(hash)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    async fn user_replace_seed(&mut self, id: i64, sealed: &[u8]) -> Result<()> {
        sqlx::query("UPDATE users SET totp_seed = ? WHERE id = ?")
            .bind(sealed)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    async fn grant_request(
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
    async fn grant_take(&mut self, username: &str, role: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "DELETE FROM role_grants WHERE username = ? AND role = ? RETURNING requested_by",
        )
        .bind(username)
        .bind(role)
        .fetch_optional(self.conn())
        .await?)
    }
    async fn user_set_roles(&mut self, id: i64, expected: &str, roles: &str) -> Result<bool> {
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

//! People and their sessions.

use async_trait::async_trait;
use mediavault_store::Result;
use mediavault_store::users::*;

use crate::{PgStore, PgTx};

/// `SELECT <every UserRow column> FROM users <tail>` as one static string (sqlx takes `&'static str`).
macro_rules! select_users {
    ($tail:literal) => {
        concat!("SELECT id, username, display_name, roles, password_hash, totp_seed, totp_last_step, failed_attempts, locked_until, disabled, created_at, department FROM users ", $tail)
    };
}

#[async_trait]
impl UserReads for PgStore {
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(select_users!("WHERE username = $1"))
            .bind(username)
            .fetch_optional(&self.reader)
            .await?)
    }
    async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(select_users!("WHERE id = $1"))
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
        // Outside the audit writer, but still a write: through the one entry point.
        let mut tx = self.begin_pg().await?;
        let locked: Option<Option<i64>> = sqlx::query_scalar(
            "UPDATE users SET
                failed_attempts = CASE WHEN locked_until IS NOT NULL AND locked_until <= $2
                                       THEN 1 ELSE failed_attempts + 1 END,
                locked_until = CASE
                    WHEN locked_until > $2 THEN locked_until
                    WHEN (CASE WHEN locked_until IS NOT NULL AND locked_until <= $2
                               THEN 1 ELSE failed_attempts + 1 END) >= $1 THEN $3
                    ELSE NULL END
             WHERE id = $4 RETURNING locked_until",
        )
        .bind(max_failures)
        .bind(now)
        .bind(lock_until)
        .bind(id)
        .fetch_optional(tx.conn())
        .await?;
        tx.conn.commit().await?;
        Ok(locked.flatten().filter(|&t| t > now))
    }
    async fn grants_pending(&self, username: Option<&str>) -> Result<Vec<GrantRow>> {
        Ok(sqlx::query_as(
            "SELECT username, role, requested_by, requested_at FROM role_grants
             WHERE $1 IS NULL OR username = $1 ORDER BY requested_at, username, role",
        )
        .bind(username)
        .fetch_all(&self.reader)
        .await?)
    }
    async fn session_get(&self, hash: &[u8]) -> Result<Option<SessionRow>> {
        Ok(sqlx::query_as(
            "SELECT user_id, created_at, last_seen, expires_at, step_up_until, step_up_seq
             FROM sessions WHERE token_hash = $1 AND revoked = FALSE",
        )
        .bind(hash)
        .fetch_optional(&self.reader)
        .await?)
    }
    async fn session_touch(&self, hash: &[u8], now: i64) -> Result<()> {
        let mut tx = self.begin_pg().await?;
        sqlx::query("UPDATE sessions SET last_seen = $1 WHERE token_hash = $2")
            .bind(now)
            .bind(hash)
            .execute(tx.conn())
            .await?;
        tx.conn.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl UserWrites for PgTx {
    async fn user_insert(&mut self, u: NewUser<'_>) -> Result<i64> {
        let id = sqlx::query_scalar(
            "INSERT INTO users (username, display_name, roles, password_hash, totp_seed, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(u.username)
        .bind(u.display_name)
        .bind(u.roles)
        .bind(u.password_hash)
        .bind(u.totp_seed)
        .bind(u.now)
        .fetch_one(self.conn())
        .await?;
        Ok(id)
    }
    async fn user_set_department(&mut self, username: &str, department: &str) -> Result<()> {
        sqlx::query("UPDATE users SET department = $1 WHERE username = $2")
            .bind(department)
            .bind(username)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    async fn user_set_disabled(&mut self, id: i64) -> Result<()> {
        self.touch_tokens();
        sqlx::query("UPDATE users SET disabled = TRUE WHERE id = $1")
            .bind(id)
            .execute(self.conn())
            .await?;
        sqlx::query("UPDATE sessions SET revoked = TRUE WHERE user_id = $1")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    async fn user_unlock(&mut self, id: i64) -> Result<()> {
        sqlx::query("UPDATE users SET failed_attempts = 0, locked_until = NULL WHERE id = $1")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    async fn user_set_enabled(&mut self, id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE users SET disabled = FALSE, failed_attempts = 0, locked_until = NULL WHERE id = $1",
        )
        .bind(id)
        .execute(self.conn())
        .await?;
        Ok(())
    }
    async fn user_set_password(&mut self, id: i64, password_hash: &str) -> Result<()> {
        sqlx::query(
            "UPDATE users SET password_hash = $1, failed_attempts = 0, locked_until = NULL WHERE id = $2",
        )
        .bind(password_hash)
        .bind(id)
        .execute(self.conn())
        .await?;
        self.user_end_sessions(id).await
    }
    async fn user_reset_seed(&mut self, id: i64, sealed: &[u8]) -> Result<()> {
        sqlx::query(
            "UPDATE users SET totp_seed = $1, failed_attempts = 0, locked_until = NULL WHERE id = $2",
        )
        .bind(sealed)
        .bind(id)
        .execute(self.conn())
        .await?;
        self.user_end_sessions(id).await
    }
    async fn user_end_sessions(&mut self, id: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET revoked = TRUE WHERE user_id = $1")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    async fn user_accept_totp_step(&mut self, id: i64, step: i64, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = $1, failed_attempts = 0
             WHERE id = $2 AND totp_last_step < $1 AND disabled = FALSE
               AND (locked_until IS NULL OR locked_until <= $3)",
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
            sqlx::query_scalar("SELECT locked_until FROM users WHERE id = $1")
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
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, last_seen, expires_at) VALUES ($1, $2, $3, $4, $5)")
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
            "UPDATE sessions SET step_up_until = $1, step_up_seq = NULL
             WHERE token_hash = $2 AND revoked = FALSE",
        )
        .bind(until)
        .bind(hash)
        .execute(self.conn())
        .await?;
        Ok(r.rows_affected() == 1)
    }
    async fn session_step_up_open(&mut self, hash: &[u8], seq: i64, now: i64) -> Result<bool> {
        let open: Option<bool> = sqlx::query_scalar(
            "SELECT TRUE FROM sessions WHERE token_hash = $1 AND revoked = FALSE AND step_up_seq = $2
               AND step_up_until > $3 AND expires_at > $4",
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
            "SELECT COUNT(*) FROM users WHERE disabled = FALSE AND ',' || roles || ',' LIKE '%,admin,%'",
        )
        .fetch_one(self.conn())
        .await?)
    }
    async fn session_revoke(&mut self, hash: &[u8]) -> Result<()> {
        sqlx::query("UPDATE sessions SET revoked = TRUE WHERE token_hash = $1")
            .bind(hash)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    async fn user_replace_seed(&mut self, id: i64, sealed: &[u8]) -> Result<()> {
        sqlx::query("UPDATE users SET totp_seed = $1 WHERE id = $2")
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
            "INSERT INTO role_grants (username, role, requested_by, requested_at) VALUES ($1, $2, $3, $4)",
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
            "DELETE FROM role_grants WHERE username = $1 AND role = $2 RETURNING requested_by",
        )
        .bind(username)
        .bind(role)
        .fetch_optional(self.conn())
        .await?)
    }
    async fn user_set_roles(&mut self, id: i64, expected: &str, roles: &str) -> Result<bool> {
        self.touch_tokens();
        let r = sqlx::query("UPDATE users SET roles = $1 WHERE id = $2 AND roles = $3")
            .bind(roles)
            .bind(id)
            .bind(expected)
            .execute(self.conn())
            .await?;
        Ok(r.rows_affected() == 1)
    }
}

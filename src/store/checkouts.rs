//! Checkouts, approvals and publishing-token hashes.

use super::{Result, Store};

impl Store {
    /// Checkouts whose token is live now.
    pub async fn account_active_checkouts(&self, account: &str, now: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM checkouts WHERE account_id = ? AND status = 'active' AND expires_at > ?",
        )
        .bind(account)
        .bind(now)
        .fetch_one(&self.writer)
        .await?)
    }

    /// Ends every live or pending checkout of an account (freeze, incident). Returns how many.
    pub async fn revoke_account_tokens(&self, account: &str, now: i64) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE checkouts SET status = 'revoked', ended_at = ?, end_reason = 'account frozen'
             WHERE account_id = ? AND status IN ('active', 'approved', 'pending_approval')",
        )
        .bind(now)
        .bind(account)
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected())
    }
}

//! Checkouts, approvals and publishing-token hashes. Every state change is a conditional statement
//! inside a `BEGIN IMMEDIATE` transaction on the single writer connection (the audit writer's), so
//! two racing requests cannot both win, and a freeze committed first is seen by the next insert.

use async_trait::async_trait;
use mediavault_store::Result;
use mediavault_store::checkouts::*;
use mediavault_store::types::CheckoutStatus;

use rusqlite::OptionalExtension as _;

use crate::{SqliteStore, SqliteTx};

/// `SELECT <every CheckoutRow column> FROM checkouts <tail>` as one static string.
macro_rules! select_checkouts {
    ($tail:literal) => {
        concat!("SELECT id, account_id, operator, client_id, purpose, level, status, requested_at, ttl_seconds, approvals_needed, content_sha256, allowed_calls, source_ip, issued_at, expires_at, ended_at, end_reason, claim_deadline, break_glass FROM checkouts ", $tail)
    };
}

/// `SELECT <every BreakGlassRow column> FROM break_glass <tail>` as one static string.
macro_rules! select_break_glass {
    ($tail:literal) => {
        concat!("SELECT checkout_id, account_id, released_by, reason, released_at, closed_by, closed_at, close_note FROM break_glass ", $tail)
    };
}

/// A [`CheckoutRow`] from the columns of [`select_checkouts!`], read through rusqlite.
fn checkout_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CheckoutRow> {
    let bad = crate::point::unknown;
    let level: String = r.get(5)?;
    let status: String = r.get(6)?;
    Ok(CheckoutRow {
        id: r.get(0)?,
        account_id: r.get(1)?,
        operator: r.get(2)?,
        client_id: r.get(3)?,
        purpose: r.get(4)?,
        level: level.parse().map_err(|_| bad(5, "level", level))?,
        status: CheckoutStatus::parse(&status).ok_or_else(|| bad(6, "checkout status", status))?,
        requested_at: r.get(7)?,
        ttl_seconds: r.get(8)?,
        approvals_needed: r.get(9)?,
        content_sha256: r.get(10)?,
        allowed_calls: r.get(11)?,
        source_ip: r.get(12)?,
        issued_at: r.get(13)?,
        expires_at: r.get(14)?,
        ended_at: r.get(15)?,
        end_reason: r.get(16)?,
        claim_deadline: r.get(17)?,
        break_glass: r.get(18)?,
    })
}

#[async_trait]
impl CheckoutReads for SqliteStore {
    /// A point read by key after every checkout's change: through rusqlite on this thread
    /// (`point.rs`).
    async fn checkout_get(&self, id: &str) -> Result<Option<CheckoutRow>> {
        self.point.read(&self.file, |conn| {
            let mut q = conn.prepare_cached(select_checkouts!("WHERE id = ?1"))?;
            q.query_row([id], checkout_row).optional()
        })
    }
    async fn checkouts_live(&self, now: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM checkouts WHERE status = 'active' AND expires_at > ?",
        )
        .bind(now)
        .fetch_one(&self.reader)
        .await?)
    }
    async fn checkout_by_token(&self, hash: &[u8]) -> Result<Option<CheckoutRow>> {
        Ok(sqlx::query_as(select_checkouts!("WHERE token_hash = ?"))
            .bind(hash)
            .fetch_optional(&self.reader)
            .await?)
    }
    async fn checkouts_list(
        &self,
        status: Option<CheckoutStatus>,
        account: Option<&str>,
        now: i64,
    ) -> Result<Vec<CheckoutRow>> {
        // "expired" is derived too: an active row past its expiry, an approval past its deadline.
        Ok(sqlx::query_as(
            select_checkouts!(
                "WHERE (?2 IS NULL OR account_id = ?2)
               AND (?1 IS NULL
                    OR (?1 = 'expired' AND (status = 'expired' OR (status = 'active' AND expires_at <= ?3)
                                            OR (status = 'approved' AND claim_deadline <= ?3)))
                    OR (?1 = 'active' AND status = 'active' AND expires_at > ?3)
                    OR (?1 = 'approved' AND status = 'approved' AND (claim_deadline IS NULL OR claim_deadline > ?3))
                    OR (?1 NOT IN ('active', 'expired', 'approved') AND status = ?1))
             ORDER BY requested_at DESC, id LIMIT 500"
            ),
        )
        .bind(status.map(CheckoutStatus::as_str))
        .bind(account)
        .bind(now)
        .fetch_all(&self.reader)
        .await?)
    }
    async fn approvals_of(&self, checkout: &str) -> Result<Vec<ApprovalRow>> {
        Ok(sqlx::query_as("SELECT approver, decision, comment, at FROM approvals WHERE checkout_id = ? ORDER BY at, approver")
            .bind(checkout)
            .fetch_all(&self.reader)
            .await?)
    }
    async fn checkouts_due(&self, now: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM checkouts
             WHERE (status = 'active' AND expires_at <= ?1) OR (status = 'approved' AND claim_deadline <= ?1)",
        )
        .bind(now)
        .fetch_one(&self.reader)
        .await?)
    }
    async fn account_active_checkouts(&self, account: &str, now: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM checkouts WHERE account_id = ? AND status = 'active' AND expires_at > ?",
        )
        .bind(account)
        .bind(now)
        .fetch_one(&self.reader)
        .await?)
    }
    async fn checkouts_of_operator(&self, operator: &str, limit: i64) -> Result<Vec<CheckoutRow>> {
        Ok(sqlx::query_as(select_checkouts!(
            "WHERE operator = ? ORDER BY requested_at DESC, id LIMIT ?"
        ))
        .bind(operator)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }
    async fn break_glass_get(&self, checkout: &str) -> Result<Option<BreakGlassRow>> {
        Ok(sqlx::query_as(select_break_glass!("WHERE checkout_id = ?"))
            .bind(checkout)
            .fetch_optional(&self.reader)
            .await?)
    }
    async fn break_glass_list(&self, open_only: bool, limit: i64) -> Result<Vec<BreakGlassRow>> {
        Ok(sqlx::query_as(select_break_glass!(
            "WHERE (? OR closed_at IS NULL) ORDER BY released_at DESC, checkout_id LIMIT ?"
        ))
        .bind(!open_only)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }
}

#[async_trait]
impl CheckoutWrites for SqliteTx {
    async fn checkout_insert(&mut self, c: NewCheckout<'_>) -> Result<bool> {
        let (status, issued, expires) = match c.token_hash {
            Some(_) => (
                CheckoutStatus::Active,
                Some(c.now),
                Some(c.now + c.ttl_seconds),
            ),
            None => (CheckoutStatus::PendingApproval, None, None),
        };
        let r = sqlx::query(
            "INSERT INTO checkouts (id, account_id, operator, client_id, purpose, level, status, requested_at, ttl_seconds, approvals_needed, content_sha256, allowed_calls, source_ip, token_hash, issued_at, expires_at, claim_seconds)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?18
             WHERE EXISTS (SELECT 1 FROM accounts WHERE id = ?2 AND status = 'active')
               AND (?7 <> 'active' OR ?17 = 0 OR NOT EXISTS (
                 SELECT 1 FROM checkouts WHERE account_id = ?2 AND status = 'active' AND expires_at > ?8))",
        )
        .bind(c.id)
        .bind(c.account)
        .bind(c.operator)
        .bind(c.client_id)
        .bind(c.purpose)
        .bind(c.level)
        .bind(status)
        .bind(c.now)
        .bind(c.ttl_seconds)
        .bind(c.approvals_needed)
        .bind(c.content_sha256)
        .bind(c.allowed_calls)
        .bind(c.source_ip)
        .bind(c.token_hash)
        .bind(issued)
        .bind(expires)
        .bind(c.exclusive)
        .bind(c.claim_seconds)
        .execute(self.conn())
        .await?;
        Ok(r.rows_affected() == 1)
    }
    async fn approval_add(
        &mut self,
        checkout: &str,
        approver: &str,
        comment: Option<&str>,
        now: i64,
    ) -> Result<Option<CheckoutStatus>> {
        self.touch_tokens();
        let pending: Option<i64> = sqlx::query_scalar(
            "SELECT approvals_needed FROM checkouts WHERE id = ? AND status = 'pending_approval'",
        )
        .bind(checkout)
        .fetch_optional(self.conn())
        .await?;
        let Some(needed) = pending else {
            return Ok(None);
        };
        sqlx::query("INSERT INTO approvals (checkout_id, approver, decision, comment, at) VALUES (?, ?, 'approve', ?, ?)")
            .bind(checkout)
            .bind(approver)
            .bind(comment)
            .bind(now)
            .execute(self.conn())
            .await?;
        let have: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM approvals WHERE checkout_id = ? AND decision = 'approve'",
        )
        .bind(checkout)
        .fetch_one(self.conn())
        .await?;
        let status = if have >= needed {
            CheckoutStatus::Approved
        } else {
            CheckoutStatus::PendingApproval
        };
        sqlx::query(
            "UPDATE checkouts SET status = ?1,
                claim_deadline = CASE WHEN ?1 = 'approved' THEN ?3 + claim_seconds END
             WHERE id = ?2",
        )
        .bind(status)
        .bind(checkout)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(Some(status))
    }
    async fn checkout_break_glass(
        &mut self,
        checkout: &str,
        admin: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool> {
        self.touch_tokens();
        let account: Option<String> = sqlx::query_scalar(
            "UPDATE checkouts SET status = 'approved', break_glass = 1,
                claim_deadline = ?1 + claim_seconds
             WHERE id = ?2 AND status = 'pending_approval' RETURNING account_id",
        )
        .bind(now)
        .bind(checkout)
        .fetch_optional(self.conn())
        .await?;
        let Some(account) = account else {
            return Ok(false);
        };
        sqlx::query(
            "INSERT INTO break_glass (checkout_id, account_id, released_by, reason, released_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(checkout)
        .bind(&account)
        .bind(admin)
        .bind(reason)
        .bind(now)
        .execute(self.conn())
        .await?;
        // Every account the token may reach: its own and the post's targets.
        sqlx::query(
            "UPDATE accounts SET rotation_due_at = COALESCE(rotation_due_at, ?)
             WHERE id = ? OR id IN (SELECT account_id FROM checkout_targets WHERE checkout_id = ?)",
        )
        .bind(now)
        .bind(&account)
        .bind(checkout)
        .execute(self.conn())
        .await?;
        Ok(true)
    }
    async fn break_glass_close(
        &mut self,
        checkout: &str,
        by: &str,
        note: &str,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE break_glass SET closed_by = ?, closed_at = ?, close_note = ?
             WHERE checkout_id = ? AND closed_at IS NULL",
        )
        .bind(by)
        .bind(now)
        .bind(note)
        .bind(checkout)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }
    async fn checkout_deny(
        &mut self,
        checkout: &str,
        approver: &str,
        comment: Option<&str>,
        now: i64,
    ) -> Result<Option<CheckoutStatus>> {
        self.touch_tokens();
        let status: Option<CheckoutStatus> = sqlx::query_scalar(
            "UPDATE checkouts SET
                status = CASE status WHEN 'pending_approval' THEN 'denied' ELSE 'revoked' END,
                ended_at = ?2, end_reason = 'denied by ' || ?3
             WHERE id = ?1 AND (status IN ('pending_approval', 'approved') OR (status = 'active' AND expires_at > ?2))
             RETURNING status",
        )
        .bind(checkout)
        .bind(now)
        .bind(approver)
        .fetch_optional(self.conn())
        .await?;
        if status.is_some() {
            sqlx::query(
                "INSERT INTO approvals (checkout_id, approver, decision, comment, at) VALUES (?, ?, 'deny', ?, ?)
                 ON CONFLICT(checkout_id, approver) DO UPDATE SET decision = 'deny', comment = excluded.comment, at = excluded.at",
            )
            .bind(checkout)
            .bind(approver)
            .bind(comment)
            .bind(now)
            .execute(self.conn())
            .await?;
        }
        Ok(status)
    }
    async fn checkout_claim(
        &mut self,
        checkout: &str,
        token_hash: &[u8],
        now: i64,
        exclusive: bool,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE checkouts SET status = 'active', token_hash = ?2, issued_at = ?3, expires_at = ?3 + ttl_seconds
             WHERE id = ?1 AND status = 'approved' AND claim_deadline > ?3
               AND EXISTS (SELECT 1 FROM accounts a WHERE a.id = checkouts.account_id AND a.status = 'active')
               AND (?4 = 0 OR NOT EXISTS (
                   SELECT 1 FROM checkouts o WHERE o.account_id = checkouts.account_id AND o.status = 'active' AND o.expires_at > ?3))",
        )
        .bind(checkout)
        .bind(token_hash)
        .bind(now)
        .bind(exclusive)
        .execute(self.conn())
        .await?;
        Ok(r.rows_affected() == 1)
    }
    async fn checkout_checkin(&mut self, checkout: &str, now: i64) -> Result<bool> {
        self.touch_tokens();
        let r = sqlx::query(
            "UPDATE checkouts SET status = 'checked_in', ended_at = ?2, end_reason = 'checked in'
             WHERE id = ?1 AND status = 'active' AND expires_at > ?2",
        )
        .bind(checkout)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(r.rows_affected() == 1)
    }
    async fn checkouts_expire(&mut self, now: i64) -> Result<Vec<(String, String, String)>> {
        self.touch_tokens();
        Ok(sqlx::query_as(
            "UPDATE checkouts SET status = 'expired',
                ended_at = CASE status WHEN 'active' THEN expires_at ELSE claim_deadline END,
                end_reason = CASE status WHEN 'active' THEN 'expired' ELSE 'approval not claimed in time' END
             WHERE (status = 'active' AND expires_at <= ?1)
                OR (status = 'approved' AND claim_deadline <= ?1)
             RETURNING id, account_id, operator",
        )
        .bind(now)
        .fetch_all(self.conn())
        .await?)
    }
    async fn revoke_account_tokens(&mut self, account: &str, now: i64) -> Result<u64> {
        self.touch_tokens();
        let r = sqlx::query(
            "UPDATE checkouts SET status = 'revoked', ended_at = ?, end_reason = 'account frozen'
             WHERE account_id = ? AND status IN ('active', 'approved', 'pending_approval')",
        )
        .bind(now)
        .bind(account)
        .execute(self.conn())
        .await?;
        Ok(r.rows_affected())
    }
    async fn revoke_checkouts_of(
        &mut self,
        client: Option<&str>,
        operator: Option<&str>,
        reason: &str,
        now: i64,
    ) -> Result<u64> {
        self.touch_tokens();
        let r = sqlx::query(
            "UPDATE checkouts SET status = 'revoked', ended_at = ?1, end_reason = ?2
             WHERE (client_id = ?3 OR operator = ?4) AND status IN ('active', 'approved', 'pending_approval')",
        )
        .bind(now)
        .bind(reason)
        .bind(client)
        .bind(operator)
        .execute(self.conn())
        .await?;
        Ok(r.rows_affected())
    }
}

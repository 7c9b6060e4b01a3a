//! Accounts and their credential versions.

use async_trait::async_trait;
use mediavault_store::accounts::*;
use mediavault_store::types::{AccountStatus, Platform};
use mediavault_store::{Result, StoreError};
use rusqlite::OptionalExtension as _;

use crate::{SqliteStore, SqliteTx};

/// `SELECT <every AccountRow column><extra> FROM accounts a <tail>` as one static string. The
/// columns carry the table's alias because a join can bring other `created_at`s along.
macro_rules! select_accounts {
    ($extra:literal, $tail:literal) => {
        concat!(
            "SELECT a.id, a.platform, a.display_name, a.status, a.status_reason, a.current_version, a.created_at, a.rotated_at, a.rotation_due_at, a.token_expires_at",
            $extra,
            " FROM accounts a ",
            $tail
        )
    };
}

/// An [`AccountRow`] from the first ten columns of [`select_accounts!`], read through rusqlite.
fn account_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AccountRow> {
    let text = |i: usize| -> rusqlite::Result<String> { r.get(i) };
    let bad = crate::point::unknown;
    let platform = text(1)?;
    let status = text(3)?;
    Ok(AccountRow {
        id: text(0)?,
        platform: platform
            .parse::<Platform>()
            .map_err(|_| bad(1, "platform", platform))?,
        display_name: text(2)?,
        status: AccountStatus::parse(&status).ok_or_else(|| bad(3, "account status", status))?,
        status_reason: r.get(4)?,
        current_version: r.get(5)?,
        created_at: r.get(6)?,
        rotated_at: r.get(7)?,
        rotation_due_at: r.get(8)?,
        token_expires_at: r.get(9)?,
    })
}

#[async_trait]
impl AccountReads for SqliteStore {
    /// A point read by key on every checkout: through rusqlite on this thread (`point.rs`).
    async fn account_get(&self, id: &str) -> Result<Option<AccountRow>> {
        self.point.read(&self.file, |conn| {
            let mut q = conn.prepare_cached(select_accounts!("", "WHERE a.id = ?1"))?;
            q.query_row([id], account_row).optional()
        })
    }
    async fn accounts_list(&self) -> Result<Vec<AccountRow>> {
        Ok(sqlx::query_as(select_accounts!("", "ORDER BY a.id"))
            .fetch_all(&self.reader)
            .await?)
    }
    async fn credential_sealed(&self, account: &str, version: i64) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar(
            "SELECT sealed FROM credential_versions WHERE account_id = ? AND version = ?",
        )
        .bind(account)
        .bind(version)
        .fetch_optional(&self.reader)
        .await?)
    }
    /// A point read by key on every proxied call: through rusqlite on this thread (`point.rs`).
    async fn account_with_current_sealed(
        &self,
        id: &str,
    ) -> Result<Option<(AccountRow, Option<Vec<u8>>)>> {
        self.point.read(&self.file, |conn| {
            let mut q = conn.prepare_cached(select_accounts!(
                ", v.sealed",
                "LEFT JOIN credential_versions v ON v.account_id = a.id AND v.version = a.current_version WHERE a.id = ?1"
            ))?;
            q.query_row([id], |r| Ok((account_row(r)?, r.get(10)?)))
                .optional()
        })
    }
    async fn credential_versions(&self, account: &str) -> Result<Vec<VersionRow>> {
        Ok(sqlx::query_as(
            "SELECT version, created_at, created_by, reason FROM credential_versions WHERE account_id = ? ORDER BY version",
        )
        .bind(account)
        .fetch_all(&self.reader)
        .await?)
    }
    async fn credential_all_sealed(&self) -> Result<Vec<(String, i64, Vec<u8>)>> {
        Ok(sqlx::query_as("SELECT account_id, version, sealed FROM credential_versions ORDER BY account_id, version")
            .fetch_all(&self.reader)
            .await?)
    }
}

#[async_trait]
impl AccountWrites for SqliteTx {
    async fn account_insert(
        &mut self,
        id: &str,
        platform: Platform,
        display_name: &str,
        sealed_v1: &[u8],
        created_by: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO accounts (id, platform, display_name, current_version, created_at, rotated_at) VALUES (?, ?, ?, 1, ?, ?)",
        )
        .bind(id)
        .bind(platform)
        .bind(display_name)
        .bind(now)
        .bind(now)
        .execute(self.conn())
        .await?;
        sqlx::query(
            "INSERT INTO credential_versions (account_id, version, sealed, created_at, created_by, reason) VALUES (?, 1, ?, ?, ?, 'created')",
        )
        .bind(id)
        .bind(sealed_v1)
        .bind(now)
        .bind(created_by)
        .execute(self.conn())
        .await?;
        Ok(())
    }
    async fn credential_replace_sealed(
        &mut self,
        account: &str,
        version: i64,
        sealed: &[u8],
    ) -> Result<()> {
        sqlx::query(
            "UPDATE credential_versions SET sealed = ? WHERE account_id = ? AND version = ?",
        )
        .bind(sealed)
        .bind(account)
        .bind(version)
        .execute(self.conn())
        .await?;
        Ok(())
    }
    async fn credential_add_version(
        &mut self,
        account: &str,
        created_by: &str,
        reason: &str,
        now: i64,
        seal: Seal<'_>,
    ) -> Result<i64, StoreAddError> {
        let max: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM credential_versions WHERE account_id = ?")
                .bind(account)
                .fetch_one(self.conn())
                .await
                .map_err(StoreError::from)?;
        let version = max
            .ok_or_else(|| StoreError::Corrupt(format!("account {account} has no versions")))?
            + 1;
        let sealed = seal(version).map_err(StoreAddError::Crypto)?;
        sqlx::query(
            "INSERT INTO credential_versions (account_id, version, sealed, created_at, created_by, reason) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(account)
        .bind(version)
        .bind(&sealed)
        .bind(now)
        .bind(created_by)
        .bind(reason)
        .execute(self.conn())
        .await
        .map_err(StoreError::from)?;
        sqlx::query("UPDATE accounts SET current_version = ?, rotated_at = ? WHERE id = ?")
            .bind(version)
            .bind(now)
            .bind(account)
            .execute(self.conn())
            .await
            .map_err(StoreError::from)?;
        Ok(version)
    }
    async fn account_set_token_expiry(&mut self, account: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE accounts SET token_expires_at = ? WHERE id = ?")
            .bind(at)
            .bind(account)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    async fn account_rotation_done(&mut self, account: &str) -> Result<()> {
        sqlx::query("UPDATE accounts SET rotation_due_at = NULL WHERE id = ?")
            .bind(account)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    async fn account_set_status(
        &mut self,
        id: &str,
        status: AccountStatus,
        reason: &str,
    ) -> Result<()> {
        self.touch_tokens();
        sqlx::query("UPDATE accounts SET status = ?, status_reason = ? WHERE id = ?")
            .bind(status)
            .bind(reason)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}

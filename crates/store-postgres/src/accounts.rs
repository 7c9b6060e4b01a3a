//! Accounts and their credential versions.

use async_trait::async_trait;
use mediavault_store::accounts::*;
use mediavault_store::types::{AccountStatus, Platform};
use mediavault_store::{Result, StoreError};

use crate::{PgStore, PgTx};

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

#[async_trait]
impl AccountReads for PgStore {
    async fn account_get(&self, id: &str) -> Result<Option<AccountRow>> {
        Ok(sqlx::query_as(select_accounts!("", "WHERE a.id = $1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?)
    }
    async fn accounts_list(&self) -> Result<Vec<AccountRow>> {
        Ok(sqlx::query_as(select_accounts!("", "ORDER BY a.id"))
            .fetch_all(&self.reader)
            .await?)
    }
    async fn credential_sealed(&self, account: &str, version: i64) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar(
            "SELECT sealed FROM credential_versions WHERE account_id = $1 AND version = $2",
        )
        .bind(account)
        .bind(version)
        .fetch_optional(&self.reader)
        .await?)
    }
    /// One statement, as on SQLite: a rotation cannot fall between the two reads.
    async fn account_with_current_sealed(
        &self,
        id: &str,
    ) -> Result<Option<(AccountRow, Option<Vec<u8>>)>> {
        #[derive(sqlx::FromRow)]
        struct Joined {
            #[sqlx(flatten)]
            row: AccountRow,
            sealed: Option<Vec<u8>>,
        }
        let joined: Option<Joined> = sqlx::query_as(select_accounts!(
            ", v.sealed",
            "LEFT JOIN credential_versions v ON v.account_id = a.id AND v.version = a.current_version WHERE a.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(joined.map(|j| (j.row, j.sealed)))
    }
    async fn credential_versions(&self, account: &str) -> Result<Vec<VersionRow>> {
        Ok(sqlx::query_as(
            "SELECT version, created_at, created_by, reason FROM credential_versions WHERE account_id = $1 ORDER BY version",
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
impl AccountWrites for PgTx {
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
            "INSERT INTO accounts (id, platform, display_name, current_version, created_at, rotated_at) VALUES ($1, $2, $3, 1, $4, $5)",
        )
        .bind(id)
        .bind(platform)
        .bind(display_name)
        .bind(now)
        .bind(now)
        .execute(self.conn())
        .await?;
        sqlx::query(
            "INSERT INTO credential_versions (account_id, version, sealed, created_at, created_by, reason) VALUES ($1, 1, $2, $3, $4, 'created')",
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
            "UPDATE credential_versions SET sealed = $1 WHERE account_id = $2 AND version = $3",
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
        let max: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(version) FROM credential_versions WHERE account_id = $1",
        )
        .bind(account)
        .fetch_one(self.conn())
        .await
        .map_err(StoreError::from)?;
        let version = max
            .ok_or_else(|| StoreError::Corrupt(format!("account {account} has no versions")))?
            + 1;
        let sealed = seal(version).map_err(StoreAddError::Crypto)?;
        sqlx::query(
            "INSERT INTO credential_versions (account_id, version, sealed, created_at, created_by, reason) VALUES ($1, $2, $3, $4, $5, $6)",
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
        sqlx::query("UPDATE accounts SET current_version = $1, rotated_at = $2 WHERE id = $3")
            .bind(version)
            .bind(now)
            .bind(account)
            .execute(self.conn())
            .await
            .map_err(StoreError::from)?;
        Ok(version)
    }
    async fn account_set_token_expiry(&mut self, account: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE accounts SET token_expires_at = $1 WHERE id = $2")
            .bind(at)
            .bind(account)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    async fn account_rotation_done(&mut self, account: &str) -> Result<()> {
        sqlx::query("UPDATE accounts SET rotation_due_at = NULL WHERE id = $1")
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
        sqlx::query("UPDATE accounts SET status = $1, status_reason = $2 WHERE id = $3")
            .bind(status)
            .bind(reason)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}

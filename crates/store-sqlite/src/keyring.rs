//! The wrapped keyring and the MAC master, as rows.

use async_trait::async_trait;
use mediavault_store::keyring::*;
use mediavault_store::{Result, StoreError};

use crate::{SqliteStore, SqliteTx};

#[async_trait]
impl KeyringReads for SqliteStore {
    async fn keyring_terms(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        let rows: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT term, wrapped FROM keyring ORDER BY term")
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.into_iter().map(|(t, w)| (t as u32, w)).collect())
    }
    async fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.reader)
            .await?)
    }
    async fn keyring_probes(&self) -> Result<KeyProbes> {
        let credential: Option<(String, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT account_id, version, sealed FROM credential_versions ORDER BY rowid DESC LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await?;
        let seed: Option<(String, Vec<u8>)> =
            sqlx::query_as("SELECT username, totp_seed FROM users ORDER BY id DESC LIMIT 1")
                .fetch_optional(&self.reader)
                .await?;
        Ok(KeyProbes { credential, seed })
    }
    async fn sealed_records(&self) -> Result<SealedRecords> {
        Ok(SealedRecords {
            credentials: sqlx::query_as(
                "SELECT account_id, version, sealed FROM credential_versions ORDER BY account_id, version",
            )
            .fetch_all(&self.reader)
            .await?,
            seeds: sqlx::query_as("SELECT username, totp_seed FROM users ORDER BY id")
                .fetch_all(&self.reader)
                .await?,
            contents: sqlx::query_as(
                "SELECT checkout_id, sealed FROM checkout_content ORDER BY checkout_id",
            )
            .fetch_all(&self.reader)
            .await?,
        })
    }
    async fn keyring_init(
        &self,
        term1: &[u8],
        mac_master: &[u8],
        suite: &str,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("INSERT INTO keyring (term, wrapped, created_at) VALUES (1, ?, ?)")
            .bind(term1)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?)")
            .bind(MAC_MASTER_KEY)
            .bind(mac_master)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?)")
            .bind(CRYPTO_SUITE_KEY)
            .bind(suite.as_bytes())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl KeyringWrites for SqliteTx {
    async fn keyring_add(&mut self, term: u32, wrapped: &[u8], now: i64) -> Result<()> {
        sqlx::query("INSERT INTO keyring (term, wrapped, created_at) VALUES (?, ?, ?)")
            .bind(i64::from(term))
            .bind(wrapped)
            .bind(now)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    async fn keyring_rewrap(&mut self, terms: &[(u32, Vec<u8>)], mac_master: &[u8]) -> Result<()> {
        // Inside the write transaction (serialised with every other writer): none may have been
        // added since the caller read them, or it would stay wrapped under the retired root key.
        let (stored,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM keyring")
            .fetch_one(self.conn())
            .await?;
        if usize::try_from(stored).ok() != Some(terms.len()) {
            return Err(StoreError::KeyringChanged);
        }
        for (term, wrapped) in terms {
            sqlx::query("UPDATE keyring SET wrapped = ? WHERE term = ?")
                .bind(wrapped)
                .bind(i64::from(*term))
                .execute(self.conn())
                .await?;
        }
        sqlx::query("UPDATE meta SET value = ? WHERE key = ?")
            .bind(mac_master)
            .bind(MAC_MASTER_KEY)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    async fn sealed_credentials(&mut self) -> Result<Vec<(String, i64, Vec<u8>)>> {
        Ok(sqlx::query_as(
            "SELECT account_id, version, sealed FROM credential_versions ORDER BY account_id, version",
        )
        .fetch_all(self.conn())
        .await?)
    }
    async fn sealed_seeds(&mut self) -> Result<Vec<(i64, String, Vec<u8>)>> {
        Ok(
            sqlx::query_as("SELECT id, username, totp_seed FROM users ORDER BY id")
                .fetch_all(self.conn())
                .await?,
        )
    }
    async fn sealed_contents(&mut self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(
            sqlx::query_as("SELECT checkout_id, sealed FROM checkout_content ORDER BY checkout_id")
                .fetch_all(self.conn())
                .await?,
        )
    }
    async fn checkout_content_replace_sealed(
        &mut self,
        checkout: &str,
        sealed: &[u8],
    ) -> Result<()> {
        sqlx::query("UPDATE checkout_content SET sealed = ? WHERE checkout_id = ?")
            .bind(sealed)
            .bind(checkout)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}

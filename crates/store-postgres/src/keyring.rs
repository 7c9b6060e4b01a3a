//! The wrapped keyring and the MAC master, as rows.

use async_trait::async_trait;
use mediavault_store::keyring::*;
use mediavault_store::{Result, StoreError};

use crate::{PgStore, PgTx};

#[async_trait]
impl KeyringReads for PgStore {
    async fn keyring_terms(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        let rows: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT term, wrapped FROM keyring ORDER BY term")
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.into_iter().map(|(t, w)| (t as u32, w)).collect())
    }
    async fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.reader)
            .await?)
    }
    async fn keyring_probes(&self) -> Result<KeyProbes> {
        let credential: Option<(String, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT account_id, version, sealed FROM credential_versions ORDER BY added DESC LIMIT 1",
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
        let mut tx = self.begin_pg().await?;
        sqlx::query("INSERT INTO keyring (term, wrapped, created_at) VALUES (1, $1, $2)")
            .bind(term1)
            .bind(now)
            .execute(tx.conn())
            .await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2)")
            .bind(MAC_MASTER_KEY)
            .bind(mac_master)
            .execute(tx.conn())
            .await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2)")
            .bind(CRYPTO_SUITE_KEY)
            .bind(suite.as_bytes())
            .execute(tx.conn())
            .await?;
        tx.conn.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl KeyringWrites for PgTx {
    async fn keyring_add(&mut self, term: u32, wrapped: &[u8], now: i64) -> Result<()> {
        sqlx::query("INSERT INTO keyring (term, wrapped, created_at) VALUES ($1, $2, $3)")
            .bind(i64::from(term))
            .bind(wrapped)
            .bind(now)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    async fn keyring_rewrap(&mut self, terms: &[(u32, Vec<u8>)], mac_master: &[u8]) -> Result<()> {
        // No term may be added until this commits, and none may have been since the caller read
        // them: a term left out would stay wrapped under the retired root key.
        sqlx::query("LOCK TABLE keyring IN EXCLUSIVE MODE")
            .execute(self.conn())
            .await?;
        let (stored,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM keyring")
            .fetch_one(self.conn())
            .await?;
        if usize::try_from(stored).ok() != Some(terms.len()) {
            return Err(StoreError::KeyringChanged);
        }
        for (term, wrapped) in terms {
            sqlx::query("UPDATE keyring SET wrapped = $1 WHERE term = $2")
                .bind(wrapped)
                .bind(i64::from(*term))
                .execute(self.conn())
                .await?;
        }
        sqlx::query("UPDATE meta SET value = $1 WHERE key = $2")
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
        sqlx::query("UPDATE checkout_content SET sealed = $1 WHERE checkout_id = $2")
            .bind(sealed)
            .bind(checkout)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}

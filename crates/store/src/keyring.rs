//! The wrapped keyring and the MAC master, as rows.

use super::{Result, Store, Tx};

pub const MAC_MASTER_KEY: &str = "mac_master";

/// Every sealed record (ciphertext only).
#[derive(Debug, Default)]
pub struct SealedRecords {
    /// Account id, version, sealed credential.
    pub credentials: Vec<(String, i64, Vec<u8>)>,
    /// Username, sealed TOTP seed.
    pub seeds: Vec<(String, Vec<u8>)>,
    /// Checkout id, sealed post.
    pub contents: Vec<(String, Vec<u8>)>,
}

/// Sealed samples for the readiness probe (ciphertext only).
#[derive(Debug)]
pub struct KeyProbes {
    /// Account id, version, sealed credential.
    pub credential: Option<(String, i64, Vec<u8>)>,
    /// Username, sealed TOTP seed.
    pub seed: Option<(String, Vec<u8>)>,
}

impl Store {
    pub async fn keyring_terms(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        let rows: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT term, wrapped FROM keyring ORDER BY term")
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.into_iter().map(|(t, w)| (t as u32, w)).collect())
    }

    pub async fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.reader)
            .await?)
    }

    /// The newest credential version and the newest user's TOTP seed, sealed: what `/readyz`
    /// opens to prove the keys in memory still open what is stored (newest first, because a
    /// rotation re-seals under the newest term).
    pub async fn keyring_probes(&self) -> Result<KeyProbes> {
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

    /// Every sealed record of the store, to prove the keys open them all (a restore).
    pub async fn sealed_records(&self) -> Result<SealedRecords> {
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

    /// Stores the first term and the MAC master in one transaction (init).
    pub async fn keyring_init(&self, term1: &[u8], mac_master: &[u8], now: i64) -> Result<()> {
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
        tx.commit().await?;
        Ok(())
    }
}

/// Changes: each runs inside the transaction the audit writer hands out.
impl Tx {
    pub async fn keyring_add(&mut self, term: u32, wrapped: &[u8], now: i64) -> Result<()> {
        sqlx::query("INSERT INTO keyring (term, wrapped, created_at) VALUES (?, ?, ?)")
            .bind(i64::from(term))
            .bind(wrapped)
            .bind(now)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    /// Replaces every wrapped key at once (root-key rotation): all or nothing.
    pub async fn keyring_rewrap(
        &mut self,
        terms: &[(u32, Vec<u8>)],
        mac_master: &[u8],
    ) -> Result<()> {
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
}

/// Every sealed record, read and replaced inside one transaction: a rewrap re-seals exactly what
/// is stored when it commits, so a secret changed meanwhile by the server is never overwritten
/// with its older value.
impl Tx {
    /// Account id, version, sealed credential of every credential version.
    pub async fn sealed_credentials(&mut self) -> Result<Vec<(String, i64, Vec<u8>)>> {
        Ok(sqlx::query_as(
            "SELECT account_id, version, sealed FROM credential_versions ORDER BY account_id, version",
        )
        .fetch_all(self.conn())
        .await?)
    }

    /// User id, username, sealed TOTP seed of every user.
    pub async fn sealed_seeds(&mut self) -> Result<Vec<(i64, String, Vec<u8>)>> {
        Ok(
            sqlx::query_as("SELECT id, username, totp_seed FROM users ORDER BY id")
                .fetch_all(self.conn())
                .await?,
        )
    }

    /// Checkout id, sealed post of every checkout that carries one.
    pub async fn sealed_contents(&mut self) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(
            sqlx::query_as("SELECT checkout_id, sealed FROM checkout_content ORDER BY checkout_id")
                .fetch_all(self.conn())
                .await?,
        )
    }

    pub async fn checkout_content_replace_sealed(
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

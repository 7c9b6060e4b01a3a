//! The wrapped keyring and the MAC master, as rows.

use super::{Result, Store, Tx};

pub const MAC_MASTER_KEY: &str = "mac_master";

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

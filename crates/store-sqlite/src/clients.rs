//! Publishing tools and their client keys.

use async_trait::async_trait;
use mediavault_store::Result;
use mediavault_store::clients::*;

use rusqlite::OptionalExtension as _;

use crate::{SqliteStore, SqliteTx};

#[async_trait]
impl ClientReads for SqliteStore {
    /// A point read by key on every request of a tool that signs in with its client key (a
    /// checkout): through rusqlite on this thread (`point.rs`).
    async fn client_by_key_hash(&self, hash: &[u8]) -> Result<Option<ClientRow>> {
        self.point.read(&self.file, |conn| {
            let mut q = conn.prepare_cached(
                "SELECT id, name, accounts, created_at, created_by, revoked_at, cert_sha256, cert_subject FROM clients WHERE key_hash = ?1 AND revoked_at IS NULL",
            )?;
            q.query_row([hash], |r| {
                Ok(ClientRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    accounts: r.get(2)?,
                    created_at: r.get(3)?,
                    created_by: r.get(4)?,
                    revoked_at: r.get(5)?,
                    cert_sha256: r.get(6)?,
                    cert_subject: r.get(7)?,
                })
            })
            .optional()
        })
    }
    async fn client_get(&self, id: &str) -> Result<Option<ClientRow>> {
        Ok(sqlx::query_as("SELECT id, name, accounts, created_at, created_by, revoked_at, cert_sha256, cert_subject FROM clients WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?)
    }
    async fn clients_list(&self) -> Result<Vec<ClientRow>> {
        Ok(sqlx::query_as("SELECT id, name, accounts, created_at, created_by, revoked_at, cert_sha256, cert_subject FROM clients ORDER BY name")
            .fetch_all(&self.reader)
            .await?)
    }
}

#[async_trait]
impl ClientWrites for SqliteTx {
    async fn client_insert(
        &mut self,
        id: &str,
        name: &str,
        key_hash: &[u8],
        accounts_json: &str,
        created_by: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO clients (id, name, key_hash, accounts, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(id)
            .bind(name)
            .bind(key_hash)
            .bind(accounts_json)
            .bind(now)
            .bind(created_by)
            .execute(self.conn())
            .await?;
        Ok(())
    }
    async fn client_set_cert(&mut self, id: &str, cert: Option<(&[u8], &str)>) -> Result<bool> {
        // Cached grants carry the binding: they must be read again after it changes.
        self.touch_tokens();
        let (sha, subject) = cert.unzip();
        let r = sqlx::query(
            "UPDATE clients SET cert_sha256 = ?, cert_subject = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(sha)
        .bind(subject)
        .bind(id)
        .execute(self.conn())
        .await?;
        Ok(r.rows_affected() == 1)
    }
    async fn client_revoke(&mut self, id: &str, now: i64) -> Result<bool> {
        self.touch_tokens();
        let r =
            sqlx::query("UPDATE clients SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(self.conn())
                .await?;
        Ok(r.rows_affected() == 1)
    }
}

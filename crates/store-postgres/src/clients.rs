//! Publishing tools and their client keys.

use async_trait::async_trait;
use mediavault_store::Result;
use mediavault_store::clients::*;

use crate::{PgStore, PgTx};

#[async_trait]
impl ClientReads for PgStore {
    async fn client_by_key_hash(&self, hash: &[u8]) -> Result<Option<ClientRow>> {
        Ok(sqlx::query_as(
            "SELECT id, name, accounts, created_at, created_by, revoked_at, cert_sha256, cert_subject FROM clients WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.reader)
        .await?)
    }
    async fn client_get(&self, id: &str) -> Result<Option<ClientRow>> {
        Ok(sqlx::query_as("SELECT id, name, accounts, created_at, created_by, revoked_at, cert_sha256, cert_subject FROM clients WHERE id = $1")
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
impl ClientWrites for PgTx {
    async fn client_insert(
        &mut self,
        id: &str,
        name: &str,
        key_hash: &[u8],
        accounts_json: &str,
        created_by: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO clients (id, name, key_hash, accounts, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6)")
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
        let (sha, subject) = cert.unzip();
        let r = sqlx::query(
            "UPDATE clients SET cert_sha256 = $1, cert_subject = $2 WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(sha)
        .bind(subject)
        .bind(id)
        .execute(self.conn())
        .await?;
        // A binding changes which connections a token issued under this tool may be used on.
        self.touch_tokens();
        Ok(r.rows_affected() == 1)
    }
    async fn client_revoke(&mut self, id: &str, now: i64) -> Result<bool> {
        self.touch_tokens();
        let r =
            sqlx::query("UPDATE clients SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(self.conn())
                .await?;
        Ok(r.rows_affected() == 1)
    }
}

//! Publishing tools and their client keys.

use crate::Result;
use async_trait::async_trait;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClientRow {
    pub id: String,
    pub name: String,
    /// JSON array of account ids the key may use.
    pub accounts: String,
    pub created_at: i64,
    pub created_by: String,
    pub revoked_at: Option<i64>,
    /// SHA-256 of the DER of the client certificate the tool is bound to (32 bytes), if any.
    pub cert_sha256: Option<Vec<u8>>,
    /// That certificate's subject, for display only; never compared.
    pub cert_subject: Option<String>,
}

#[async_trait]
pub trait ClientReads: Send + Sync {
    /// A live client by its key hash. A revocation is seen at once: WAL readers see every commit.
    async fn client_by_key_hash(&self, hash: &[u8]) -> Result<Option<ClientRow>>;
    async fn client_get(&self, id: &str) -> Result<Option<ClientRow>>;
    async fn clients_list(&self) -> Result<Vec<ClientRow>>;
}

#[async_trait]
pub trait ClientWrites: Send {
    async fn client_insert(
        &mut self,
        id: &str,
        name: &str,
        key_hash: &[u8],
        accounts_json: &str,
        created_by: &str,
        now: i64,
    ) -> Result<()>;
    /// Binds a live client to a certificate (fingerprint, subject), or unbinds it with `None`.
    /// Returns whether a live client was changed. Ends cached token grants (the binding is part
    /// of every token issued under the tool's checkouts).
    async fn client_set_cert(&mut self, id: &str, cert: Option<(&[u8], &str)>) -> Result<bool>;
    /// Returns whether a live client was revoked.
    async fn client_revoke(&mut self, id: &str, now: i64) -> Result<bool>;
}

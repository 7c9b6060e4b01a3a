//! Accounts and their credential versions.

use crate::types::{AccountStatus, Platform};
use crate::{Result, StoreError};
use async_trait::async_trait;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRow {
    pub id: String,
    pub platform: Platform,
    pub display_name: String,
    pub status: AccountStatus,
    pub status_reason: Option<String>,
    pub current_version: i64,
    pub created_at: i64,
    pub rotated_at: i64,
    /// Since when the credential is due for rotation (a break-glass release used it); cleared by
    /// the next rotation.
    pub rotation_due_at: Option<i64>,
    /// When the account's platform token expires, as the platform last said (Weibo).
    pub token_expires_at: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionRow {
    pub version: i64,
    pub created_at: i64,
    pub created_by: String,
    pub reason: String,
}

/// Seals a new credential version given its number (the ciphertext's AAD binds it).
pub type Seal<'a> =
    Box<dyn FnOnce(i64) -> Result<Vec<u8>, mediavault_base::crypto::CryptoError> + Send + 'a>;

#[derive(Debug, thiserror::Error)]
pub enum StoreAddError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(mediavault_base::crypto::CryptoError),
}

#[async_trait]
pub trait AccountReads: Send + Sync {
    async fn account_get(&self, id: &str) -> Result<Option<AccountRow>>;
    async fn accounts_list(&self) -> Result<Vec<AccountRow>>;
    /// The sealed credential of one version.
    async fn credential_sealed(&self, account: &str, version: i64) -> Result<Option<Vec<u8>>>;
    /// An account and the sealed credential of its current version, read together in one
    /// statement (every proxied call needs both, and a rotation can never fall between the
    /// two). The credential is None if that version's row is missing.
    async fn account_with_current_sealed(
        &self,
        id: &str,
    ) -> Result<Option<(AccountRow, Option<Vec<u8>>)>>;
    async fn credential_versions(&self, account: &str) -> Result<Vec<VersionRow>>;
    /// Every sealed credential, for rewrapping under a new keyring term.
    async fn credential_all_sealed(&self) -> Result<Vec<(String, i64, Vec<u8>)>>;
}

#[async_trait]
pub trait AccountWrites: Send {
    /// Creates an account with its first credential version in one transaction.
    async fn account_insert(
        &mut self,
        id: &str,
        platform: Platform,
        display_name: &str,
        sealed_v1: &[u8],
        created_by: &str,
        now: i64,
    ) -> Result<()>;
    async fn credential_replace_sealed(
        &mut self,
        account: &str,
        version: i64,
        sealed: &[u8],
    ) -> Result<()>;
    /// Adds the next version and makes it current. `seal` gets the new version number, because
    /// the ciphertext's AAD binds it.
    async fn credential_add_version(
        &mut self,
        account: &str,
        created_by: &str,
        reason: &str,
        now: i64,
        seal: Seal<'_>,
    ) -> Result<i64, StoreAddError>;
    /// Records when the account's platform token expires, as the platform said.
    async fn account_set_token_expiry(&mut self, account: &str, at: i64) -> Result<()>;
    /// A fresh credential was stored: the account is no longer due for rotation.
    async fn account_rotation_done(&mut self, account: &str) -> Result<()>;
    async fn account_set_status(
        &mut self,
        id: &str,
        status: AccountStatus,
        reason: &str,
    ) -> Result<()>;
}

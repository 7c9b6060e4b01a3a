//! The wrapped keyring and the MAC master, as rows.

use crate::Result;
use async_trait::async_trait;

pub const MAC_MASTER_KEY: &str = "mac_master";
/// The `meta` row naming the store's crypto suite (`standard` or `sm`), written once by `init`;
/// a store from before the SM option has none, and is `standard`.
pub const CRYPTO_SUITE_KEY: &str = "crypto_suite";

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

#[async_trait]
pub trait KeyringReads: Send + Sync {
    async fn keyring_terms(&self) -> Result<Vec<(u32, Vec<u8>)>>;
    async fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// The newest credential version and the newest user's TOTP seed, sealed: what `/readyz`
    /// opens to prove the keys in memory still open what is stored (newest first, because a
    /// rotation re-seals under the newest term).
    async fn keyring_probes(&self) -> Result<KeyProbes>;
    /// Every sealed record of the store, to prove the keys open them all (a restore).
    async fn sealed_records(&self) -> Result<SealedRecords>;
    /// Stores the first term, the MAC master and the suite's name in one transaction (init).
    async fn keyring_init(
        &self,
        term1: &[u8],
        mac_master: &[u8],
        suite: &str,
        now: i64,
    ) -> Result<()>;
}

#[async_trait]
pub trait KeyringWrites: Send {
    async fn keyring_add(&mut self, term: u32, wrapped: &[u8], now: i64) -> Result<()>;
    /// Replaces every wrapped key at once (root-key rotation): all or nothing.
    async fn keyring_rewrap(&mut self, terms: &[(u32, Vec<u8>)], mac_master: &[u8]) -> Result<()>;
    /// Account id, version, sealed credential of every credential version.
    async fn sealed_credentials(&mut self) -> Result<Vec<(String, i64, Vec<u8>)>>;
    /// User id, username, sealed TOTP seed of every user.
    async fn sealed_seeds(&mut self) -> Result<Vec<(i64, String, Vec<u8>)>>;
    /// Checkout id, sealed post of every checkout that carries one.
    async fn sealed_contents(&mut self) -> Result<Vec<(String, Vec<u8>)>>;
    async fn checkout_content_replace_sealed(
        &mut self,
        checkout: &str,
        sealed: &[u8],
    ) -> Result<()>;
}

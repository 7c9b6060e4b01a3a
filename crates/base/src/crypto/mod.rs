//! The only module that calls `ring` and the SM (national) primitives.
//!
//! - [`secret`]: secret types that zeroize on drop and never print themselves.
//! - [`suite`]: the two suites (standard: AES-256-GCM, HMAC-SHA256; sm: SM4-GCM, HMAC-SM3, SM2)
//!   and their AEAD, MAC and checkpoint keys.
//! - [`keyring`]: the root key file, the keyring of data keys (numbered terms) wrapped under it, and
//!   AEAD sealing of records with AAD that binds each ciphertext to its place.
//! - [`age`]: the age file format with X25519 recipients (a key share encrypted to its
//!   custodian's own key).
//! - [`cert`]: client certificates as identities (fingerprint and subject), for mutual TLS.
//! - [`tokens`]: bearer tokens (`mvt_`, `mvc_`, `mvs_`), their keyed hashes, and constant-time
//!   comparison.

pub mod age;
pub mod cert;
pub mod keyring;
pub mod secret;
pub mod shares;
pub mod suite;
pub mod tokens;

pub use cert::{CertError, CertFingerprint, CertIdentity};
pub use keyring::{Aad, Keyring, MacKeys, RootKey};
pub use secret::{SecretBytes, SecretString};
pub use suite::{CheckpointKey, MacKey, Suite};
pub use tokens::{TokenKind, new_token};

/// What can go wrong below the domain: never carries key or plaintext material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("ciphertext does not open: it was altered, or moved from another record ({0})")]
    Open(String),
    #[error("ciphertext is malformed: {0}")]
    Malformed(&'static str),
    #[error(
        "the keyring has no term {0}: the store names a term this process cannot unwrap; check that the root key file belongs to this store (after `keys rotate-root`, the new one)"
    )]
    UnknownTerm(u32),
    #[error("the root key does not open this store's keyring (wrong key file?)")]
    WrongRootKey,
    #[error(
        "the backup does not open with this root key: it was altered, or made under another root key (after `keys rotate-root`, backups made before need the old key file)"
    )]
    BackupDoesNotOpen,
    #[error("root key file {path}: {problem}")]
    KeyFile { path: String, problem: String },
    #[error("not a key share: {0}")]
    BadShare(&'static str),
    #[error(
        "these shares do not rebuild the root key: one of them is wrong or altered, or they belong to another split"
    )]
    SharesDoNotCombine,
    #[error("the system random generator failed")]
    Random,
    #[error(transparent)]
    Age(#[from] age::AgeError),
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
    out
}

/// SHA-256 of a payload, hex encoded: what the audit log keeps instead of content.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha256(data))
}

/// SHA-256 of data that arrives in pieces (a streamed export), hex encoded at the end.
#[derive(Clone)]
pub struct Sha256(ring::digest::Context);

impl Sha256 {
    pub fn new() -> Self {
        Self(ring::digest::Context::new(&ring::digest::SHA256))
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish_hex(self) -> String {
        hex::encode(self.0.finish().as_ref())
    }
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

/// Fills `buf` from the operating system's generator.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), CryptoError> {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Random)
}

/// Constant-time equality, for codes and tags that an attacker can probe.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    // ring's constant-time comparison is deprecated in favour of a separate crate; its contract is
    // exactly what we need and it stays available in 0.17.
    #[allow(deprecated)]
    ring::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// The vault's MAC (HMAC-SHA256 or HMAC-SM3, as the key's suite says) over length-prefixed
/// parts, so that ("ab","c") and ("a","bc") differ.
pub fn hmac_parts(key: &MacKey, parts: &[&[u8]]) -> [u8; 32] {
    key.parts(parts)
}

/// Plain HMAC-SHA256 of one message under a raw key, for protocols that define it so (DingTalk's
/// robot signature); the vault's own MACs use [`hmac_parts`].
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&key, msg);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

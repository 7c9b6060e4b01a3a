//! mediavault-base: what every layer stands on.
//!
//! - [`clock`]: the one source of wall-clock time, which tests move instead of sleeping.
//! - [`crypto`]: the only caller of `ring` and of the SM primitives: the two suites (standard:
//!   AES-256-GCM, HMAC-SHA256; sm: SM4-GCM, HMAC-SM3, SM2 checkpoints), the root key file, the
//!   keyring of data keys it wraps, sealing with AAD bound to each record's place, token hashing,
//!   Shamir shares and age files for sealed mode, constant time.
//!
//! It knows nothing of the store, the services or HTTP.

pub mod clock;
pub mod crypto;

pub use clock::Clock;

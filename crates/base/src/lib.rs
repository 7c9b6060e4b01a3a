//! mediavault-base: what every layer stands on.
//!
//! - [`clock`]: the one source of wall-clock time, which tests move instead of sleeping.
//! - [`crypto`]: the only caller of `ring`: the root key file, the keyring of data keys it wraps,
//!   AES-256-GCM sealing with AAD bound to each record's place, token hashing, constant time.
//!
//! It knows nothing of the store, the services or HTTP.

pub mod clock;
pub mod crypto;

pub use clock::Clock;

//! mediavault: a hardened credential vault for an office's new-media accounts.
//!
//! A tour, from the bottom up:
//!
//! - [`crypto`] is the only caller of `ring`: the root key file, the keyring of data keys it wraps,
//!   AES-256-GCM sealing with AAD bound to each record's place, token hashing, constant time.
//! - [`store`] holds all SQL (SQLite through sqlx, WAL, one writer connection).
//! - [`identity`] is people (argon2id passwords, TOTP with persisted replay protection, lockout),
//!   sessions and roles.
//! - [`accounts`] is platform accounts and their credential versions: rotation with TOTP step-up,
//!   rollback, freeze.
//! - [`policy`] parses `policies/*.toml` strictly and answers who may check out what, when, from
//!   where, and which platform calls a token may make.
//! - [`platforms`] holds the platform adapters and, with the `demo` feature (on by default), the
//!   faithful fakes used by tests and demo mode.
//! - [`audit`] is the tamper-evident audit log: one group-committing writer that every request
//!   and domain event passes through before anything is released, an HMAC-SHA256 chain with
//!   verification, checkpoints, exports and retention.
//! - [`http`] is the axum surface: `/api/v1`, problem+json errors from one mapping, TLS serving.
//! - [`vault::Vault`] ties them together and is what every handler shares; [`clock::Clock`] is
//!   the one source of time, so tests move time instead of sleeping.
//!
//! On top:
//!
//! - [`app`] builds the whole application on a bound port and runs its background loops (expiry
//!   sweep, platform heartbeats, security events, the leak canary); [`start`] returns a
//!   [`Running`] handle to reload (what SIGHUP does) or stop it.
//! - [`cli`] is the command line, one file per subcommand (`init`, `serve`, `keys`, `audit`, ...);
//!   the binary (`src/main.rs`) only parses the arguments and calls it. `demo` and
//!   `fake-platforms` exist only with the `demo` feature.

pub mod accounts;
pub mod actor;
pub mod app;
pub mod audit;
pub mod certs;
pub mod checkout;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod error;
pub mod http;
pub mod identity;
pub mod incidents;
pub mod notify;
pub mod platforms;
pub mod policy;
pub mod publishing;
pub mod store;
pub mod vault;

pub use app::{Running, start, start_with};
pub use clock::Clock;
pub use config::Config;
pub use vault::Vault;

//! mediavault: a hardened credential vault for an office's new-media accounts.
//!
//! A tour, from the bottom up (arrows point down only: http → services → policy, platforms,
//! audit → store → crypto):
//!
//! - [`crypto`] is the only caller of `ring`: the root key file, the keyring of data keys it wraps,
//!   AES-256-GCM sealing with AAD bound to each record's place, token hashing, constant time.
//! - [`store`] holds all SQL (SQLite through sqlx, WAL, one writer connection). Reads are methods
//!   on `Store`; every change is a method on `store::Tx`, a transaction only the audit writer
//!   hands out. Typed state (statuses, platforms, levels) lives in `store::types`.
//! - [`audit`] is the tamper-evident audit log: one group-committing writer through which every
//!   change commits together with its entry, and every request and domain event is recorded
//!   before anything is released; an HMAC-SHA256 chain with verification, checkpoints, exports
//!   and retention; and the request context ([`audit::context`]) the services fill in.
//! - [`policy`] parses `policies/*.toml` strictly and answers who may check out what, when, from
//!   where, and which platform calls a token may make.
//! - [`platforms`] holds the platform adapters and, with the `demo` feature (on by default), the
//!   faithful fakes used by tests and demo mode.
//! - [`actor::Actor`] is who acts, typed and authenticated: a person, a tool, a publishing token
//!   or the system, with the request it came with.
//! - The services, each owning every rule of its concept and taking an [`actor::Actor`]:
//!   [`identity`] (people, sessions, TOTP and lockout: `vault.people()`, `vault.sessions()`;
//!   publishing tools: `vault.clients()`), [`accounts`] (credentials, rotation, rollback, freeze:
//!   `vault.accounts()`), [`checkout`] (checkouts, approvals, tokens: `vault.checkouts()`),
//!   [`publishing`] (the proxy gate and hand-outs: `vault.publishing()`) and audit review
//!   (`vault.audit_review()`).
//! - [`incidents`] runs playbooks on an account (freeze, revoke, cancel platform tokens, mark the
//!   credential compromised, seal a checkpoint, capture evidence, notify), with a two-person close
//!   and a report; its `watch` compares what is live on each account with the evidence records and
//!   evaluates the early-warning rules. [`notify`] delivers alerts with retries and dead letters.
//! - [`http`] is the axum surface: `/api/v1`, problem+json errors from one mapping, TLS serving.
//!   A handler parses, calls one service method, renders.
//! - [`vault::Vault`] holds the parts (private to the crate) and hands out the services;
//!   [`clock::Clock`] is the one source of time, so tests move time instead of sleeping.
//!
//! On top:
//!
//! - [`app`] builds the whole application on a bound port and runs its background loops (expiry
//!   sweep, platform heartbeats, security events, the leak canary); [`start`] returns a
//!   [`Running`] handle to reload (what SIGHUP does) or stop it.
//! - [`cli`] is the command line, one file per subcommand (`init`, `serve`, `keys`, `audit`, ...);
//!   the binary (`src/main.rs`) only parses the arguments and calls it. `demo` and
//!   `fake-platforms` exist only with the `demo` feature.

pub mod app;
pub mod certs;
pub mod cli;

pub use app::{Running, start, start_with};
pub use mediavault_core::{
    Clock, Config, Vault, accounts, actor, audit, checkout, clock, config, crypto, error, identity,
    incidents, notify, policy, publishing, review, store, telemetry, vault,
};
pub use mediavault_http as http;

/// The platform adapters and the broker (mediavault-platforms), and in builds with the `demo`
/// feature the fakes of both platforms (mediavault-fake-platforms) under their old path.
pub mod platforms {
    pub use mediavault_platforms::*;

    #[cfg(feature = "demo")]
    pub use mediavault_fake_platforms as fake;
}

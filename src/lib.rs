//! mediavault: a hardened credential vault for an office's new-media accounts.
//!
//! The workspace's crates are its layers (README, "Layout"); arrows point down only: http →
//! core (services → policy, audit) → platforms → store → base. A tour, from the bottom up:
//!
//! - **mediavault-base**: [`clock::Clock`], the one source of time, so tests move time instead
//!   of sleeping; [`crypto`], the only caller of `ring`: the root key file, the keyring of data
//!   keys it wraps, AES-256-GCM sealing with AAD bound to each record's place, token hashing,
//!   constant time.
//! - **mediavault-store** ([`store`]): the storage interface. Reads are methods of the backend
//!   traits reached through `Store`; every change is a method of `store::TxBackend` reached
//!   through `store::Tx`, a transaction only the audit writer hands out. Typed rows and typed
//!   state (statuses, platforms, levels, in `store::types`) are the same for every backend.
//!   **mediavault-store-sqlite** holds the SQL for SQLite (sqlx, WAL, one writer connection, and
//!   the audit writer's own rusqlite connection for batches without changes); only the
//!   composition root names it.
//! - **mediavault-platforms** ([`platforms`]): the WeChat and Weibo clients and the broker;
//!   with the `demo` feature, `platforms::fake` is **mediavault-fake-platforms**, the faithful
//!   fakes used by tests and demo mode.
//! - **mediavault-core**: [`audit`] (the tamper-evident log: one group-committing writer through
//!   which every change commits with its entry; the HMAC-SHA256 chain, checkpoints, exports,
//!   retention; the request context), [`policy`] (policies and playbooks, parsed strictly),
//!   [`actor::Actor`] (who acts, typed and authenticated), and the services, each owning every
//!   rule of its concept and taking an actor: [`identity`] (`vault.people()`,
//!   `vault.sessions()`, `vault.clients()`), [`accounts`], [`checkout`], [`publishing`],
//!   [`incidents`] (playbooks, the watch, early warning), [`review`] (audit review);
//!   [`notify`] delivers alerts. [`vault::Vault`] is the composition root: it opens the parts
//!   and hands each service exactly those it uses.
//! - **mediavault-http** ([`http`]): the axum surface: `/api/v1`, the console, problem+json
//!   errors from one mapping, TLS serving. A handler parses, calls one service method, renders.
//!
//! This crate, on top:
//!
//! - [`app`] serves a vault on a bound port with its background loops; [`start`] returns a
//!   [`Running`] handle to reload (what SIGHUP does) or stop it.
//! - [`cli`] is the command line, one file per subcommand (`init`, `serve`, `keys`, `audit`, ...);
//!   the binary (`src/main.rs`) only parses the arguments and calls it. `demo`, `bench` (the
//!   **mediavault-bench** crate) and `fake-platforms` exist only with the `demo` feature.

pub mod app;
pub mod certs;
pub mod cli;

pub use app::{Running, SealedRunning, Started, start, start_any, start_sealed, start_with};
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

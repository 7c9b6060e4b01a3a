//! mediavault-core: the services and every rule they own, above the store and the platforms and
//! below HTTP (no axum in it).
//!
//! - [`audit`] is the tamper-evident audit log: one group-committing writer through which every
//!   change commits together with its entry, and every request and domain event is recorded
//!   before anything is released; an HMAC-SHA256 chain with verification, checkpoints, exports
//!   and retention; and the request context ([`audit::context`]) the services fill in.
//! - [`policy`] parses `policies/*.toml` strictly and answers who may check out what, when, from
//!   where, and which platform calls a token may make.
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
//! - [`vault::Vault`] holds the parts and hands out the services; [`config`] is the whole
//!   configuration; [`telemetry`] the logs and `/metrics`.
//!
//! Below it, re-exported under the names the services use: [`crypto`] and [`clock`]
//! (mediavault-base), [`store`] (mediavault-store), [`platforms`] (mediavault-platforms).

pub mod accounts;
pub mod actor;
pub mod audit;
pub mod checkout;
pub mod config;
pub mod content;
pub mod error;
pub mod identity;
pub mod incidents;
pub mod keys;
pub mod names;
pub mod notify;
pub mod policy;
pub mod publishing;
pub mod review;
pub mod schema;
pub mod telemetry;
pub mod vault;

pub use mediavault_base::{clock, crypto};
pub use mediavault_platforms as platforms;
pub use mediavault_store as store;

pub use clock::Clock;
pub use config::Config;
pub use vault::Vault;

//! mediavault-store: what the vault asks of its storage, independent of the database. The typed
//! rows, the storage errors (classified once, here), and the traits a backend implements: one
//! pair per concept (`UserReads` on the store, `UserWrites` on a write transaction, and so on),
//! gathered by [`Backend`] and [`TxBackend`]. The SQL lives in one crate per backend
//! (`mediavault-store-sqlite` today); nothing above this crate names a database.
//!
//! [`Store`] and [`Tx`] are what the services hold: a shared handle on a backend, and one write
//! transaction with the audit writer's bookkeeping (notes, sequence links, the token epoch) kept
//! here so every backend gets it the same. Both deref to their backend trait object, so a service
//! calls `store.user_by_name(..)` or `tx.user_insert(..)` with [`prelude`] in scope.

pub mod accounts;
pub mod audit;
pub mod checkouts;
pub mod clients;
pub mod incidents;
pub mod keyring;
pub mod posts;
pub mod types;
pub mod users;

use std::any::Any;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use audit::{AuditFields, AuditRow, ChainHead};

/// sqlx's pool options as every backend starts them: no idle timeout and no maximum lifetime, so
/// no pool runs sqlx's reaper task. In sqlx 0.9.0 a connection released while another is taken
/// can drop the pool's idle count below zero for a moment; a reaper that reads it then loops
/// about 2^64 times without yielding, and that worker thread of the runtime spins at 100 % for
/// good (sqlx issues #3645 and #4289; it hung this project's full-disk test once, in the test's
/// own pool). A connection to a local SQLite file never needs recycling, and a PostgreSQL
/// connection that broke is closed on its error and replaced on the next acquire.
pub fn pool_options<DB: sqlx::Database>() -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .idle_timeout(None)
        .max_lifetime(None)
}

/// Every trait a caller needs in scope to call the store's reads and a transaction's writes.
pub mod prelude {
    pub use crate::accounts::{AccountReads, AccountWrites};
    pub use crate::audit::{AuditReads, AuditWrites};
    pub use crate::checkouts::{CheckoutReads, CheckoutWrites};
    pub use crate::clients::{ClientReads, ClientWrites};
    pub use crate::incidents::{IncidentReads, IncidentWrites};
    pub use crate::keyring::{KeyringReads, KeyringWrites};
    pub use crate::posts::{PostReads, PostWrites};
    pub use crate::users::{UserReads, UserWrites};
    pub use crate::{Backend, TxBackend};
}

use prelude::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no store at {0}: run `mediavault init` first (or point data_dir at the right place)")]
    Missing(String),
    /// A uniqueness constraint refused the row: the id or name already exists. Classified here,
    /// once, so no caller ever looks at a database error's code or text.
    #[error("a row with that key already exists")]
    Duplicate,
    #[error("database: {0}")]
    Db(sqlx::Error),
    /// From a backend's own connection outside sqlx (SQLite's audit walk reads through rusqlite).
    #[error("database: {0}")]
    Read(Box<dyn std::error::Error + Send + Sync>),
    /// From a backend's own statements on its writer connection outside sqlx (SQLite's audit
    /// append, through rusqlite on the connection's handle).
    #[error("database: {0}")]
    Write(Box<dyn std::error::Error + Send + Sync>),
    /// A clustered node tried to write without holding the lease (it is a standby, or it lost
    /// the lease: another node took over, or the lease ran out while it could not renew it).
    #[error(
        "this node is not the active node (a standby, or its lease ended); the change was not made"
    )]
    Fenced,
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// A root-key rotation re-wraps the keyring it read before its transaction; a term added in
    /// between (a `keys rotate` at the same moment) would be left under the old key.
    #[error(
        "the keyring changed while the root key was being rotated (a `keys rotate` ran at the same time); nothing was changed: run the rotation again"
    )]
    KeyringChanged,
    /// What this backend does not do, and what to use instead.
    #[error("{0}")]
    Unsupported(String),
    #[error(
        "{path} has permissions {mode:o}, so other users of this machine can reach the vault's data; run `chmod {fix} {path}`"
    )]
    Exposed {
        path: String,
        mode: u32,
        fix: &'static str,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// `url` with any password replaced by `***` and its query dropped, for messages: never the URL
/// itself, which may hold a password (also as a `?password=` parameter).
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a URL>".into();
    };
    let no_query = |s: &str| s.split('?').next().unwrap_or("").to_owned();
    // The last '@' ends the user info, even when a password holds an unescaped '/', '?' or '@'.
    match rest.rsplit_once('@') {
        Some((userinfo, host_path)) => {
            let host_path = no_query(host_path);
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host_path}"),
                None => format!("{scheme}://{userinfo}@{host_path}"),
            }
        }
        None => format!("{scheme}://{}", no_query(rest)),
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Duplicate,
            _ => StoreError::Db(e),
        }
    }
}

/// A row that records the sequence number of the audit entry its change commits with.
#[derive(Debug, Clone)]
pub enum SeqLink {
    /// The session (by token hash) whose step-up window the entry opened.
    SessionStepUp(Vec<u8>),
}

/// The lease row: which node is active, for which term, where its peers reach it, and how long
/// the lease has left by the database's clock (negative: it ran out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub holder: String,
    pub address: String,
    pub term: i64,
    pub remaining_ms: i64,
}

/// A clustered node's claim to write: its name and the term of the lease it holds. Every write
/// transaction of such a node proves it inside the transaction ([`Backend::begin_tx`]), so a node
/// that lost the lease cannot commit anything, whatever it believes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub node: String,
    pub term: i64,
}

/// Whether this process may write, and how it proves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    /// The only node (no cluster): writes are not fenced.
    Sole,
    /// The active node of a cluster, for this term.
    Active(Fence),
    /// A standby: every write is refused before it starts.
    Standby,
}

/// What a walk of the audit log hands each entry to ([`Store::audit_walk`]); boxed so a backend
/// can run it on a thread of its own, and given back with its state when the walk ends.
pub trait Walker: Send {
    /// Takes one entry; false stops the walk.
    fn visit(&mut self, entry: AuditFields<'_>) -> bool;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

/// A database the vault can run on: every read, plus what only the whole store does.
#[async_trait]
pub trait Backend:
    AccountReads
    + AuditReads
    + CheckoutReads
    + ClientReads
    + IncidentReads
    + KeyringReads
    + PostReads
    + UserReads
    + std::fmt::Debug
    + Send
    + Sync
{
    /// Starts a write transaction that holds the write lock from its first statement, so what it
    /// reads stays true until it commits (also against another process such as the CLI). With a
    /// fence, the transaction first proves the lease is still this node's for that term and has
    /// time left by the database's clock, else fails with [`StoreError::Fenced`]; a takeover
    /// needs the same write lock, so it waits for a proven transaction to end.
    async fn begin_tx(&self, fence: Option<&Fence>) -> Result<Box<dyn TxBackend>>;
    /// Takes the lease for `node` if it is free or ran out, for `ttl_ms` by the database's clock,
    /// with the next term; `None` if another node holds it.
    async fn lease_acquire(&self, node: &str, address: &str, ttl_ms: i64) -> Result<Option<i64>>;
    /// Extends the lease held under `fence` to `ttl_ms` from now; false if it is no longer held
    /// (another node took it, or it ran out first).
    async fn lease_renew(&self, fence: &Fence, ttl_ms: i64) -> Result<bool>;
    /// Whether the lease is held under `fence` with at least `margin_ms` left: what a node checks
    /// before an act the database cannot fence (fetching a platform token).
    async fn lease_confirm(&self, fence: &Fence, margin_ms: i64) -> Result<bool>;
    /// Ends the lease held under `fence` now, so a standby takes over without waiting it out.
    async fn lease_release(&self, fence: &Fence) -> Result<()>;
    /// The lease as it stands.
    async fn lease_current(&self) -> Result<LeaseRow>;
    /// Hands every entry with `lo <= seq <= hi` to `walker`, in seq order, until it says stop;
    /// gives the walker back. The audit verifier's path: as fast as the backend can read.
    async fn audit_walk_boxed(
        &self,
        lo: i64,
        hi: i64,
        walker: Box<dyn Walker>,
    ) -> Result<Box<dyn Walker>>;
    /// Writes a consistent copy of the whole store to `path`, created private (mode 0600).
    async fn snapshot_into(&self, path: &Path) -> Result<()>;
    /// Appends one batch of audit entries in a write transaction of its own: begins (proving
    /// `fence` as [`Backend::begin_tx`] does), inserts each entry's row of `rows` (index-aligned
    /// with the entries; a row refused by a constraint is undone alone, and its entry is not
    /// written), reads the chain head, has `chain` chain the entries still standing onto it,
    /// inserts them, commits, and returns them with each row's refusal. The audit writer's path
    /// for a batch whose changes are all plain rows ([`AppendRow`]). By default the same steps
    /// through [`Backend::begin_tx`]; a backend whose every statement is a hop to another thread
    /// may take them in one.
    async fn audit_append(
        &self,
        fence: Option<&Fence>,
        rows: &[Option<AppendRow>],
        chain: ChainFn<'_>,
    ) -> Result<Appended> {
        let mut tx = self.begin_tx(fence).await?;
        let mut refused = Vec::with_capacity(rows.len());
        for row in rows {
            refused.push(match row {
                None => None,
                Some(row) => row.insert_alone(&mut *tx).await?,
            });
        }
        let standing: Vec<bool> = refused.iter().map(Option::is_none).collect();
        let head = tx.audit_head().await?;
        let audit = chain(head, &standing);
        tx.audit_insert(&audit).await?;
        tx.commit_tx().await?;
        Ok(Appended {
            rows: audit,
            refused,
        })
    }
    /// Cheap liveness check of every connection pool, for `/readyz`.
    async fn ping(&self) -> Result<()>;
    /// Before appending a very large log in one go (seeding the benchmark's six months): lets
    /// the backend keep more of what such a load touches in memory. Nothing by default.
    async fn prepare_bulk_load(&self) -> Result<()> {
        Ok(())
    }
    async fn close(&self);
}

/// The audit writer's chaining of a batch onto a head (sequence numbers, times, the HMAC chain),
/// handed to [`Backend::audit_append`] so the backend can read the head and write the rows in
/// one step. The second argument says which entries of the batch still stand (their row, if
/// any, was inserted); only those are chained. The rule stays the writer's; the store only
/// calls it, once per append (an `FnOnce`, so a second call cannot compile): the writer moves
/// each entry's texts into its row rather than copying them (a token call's entry had been
/// copied field by field on the serial writer).
pub type ChainFn<'a> = Box<dyn FnOnce(ChainHead, &[bool]) -> Vec<AuditRow> + Send + 'a>;

/// A change simple enough to be data rather than code: one row that commits with its audit
/// entry on the append path ([`Backend::audit_append`]), so the batch that carries it needs no
/// general transaction. A proxied call's draft or image is one.
#[derive(Debug, Clone)]
pub enum AppendRow {
    CheckoutMedia(posts::MediaRow),
}

impl AppendRow {
    /// Inserts the row through a general transaction (the default `audit_append`, and a batch
    /// that also carries changes), under a savepoint: a refused row is undone alone and its
    /// refusal is the answer (`Ok(Some)`); a savepoint that fails fails the transaction (`Err`).
    pub async fn insert_alone(&self, tx: &mut dyn TxBackend) -> Result<Option<StoreError>> {
        tx.savepoint().await?;
        let done = match self {
            AppendRow::CheckoutMedia(m) => tx.checkout_media_insert(m).await,
        };
        tx.end_savepoint(done.is_ok()).await?;
        Ok(done.err())
    }
}

/// What [`Backend::audit_append`] committed: the chained rows of the entries that stand, and,
/// index-aligned with the batch, why each refused row was refused.
#[derive(Debug)]
pub struct Appended {
    pub rows: Vec<AuditRow>,
    pub refused: Vec<Option<StoreError>>,
}

/// One write transaction of a backend: every write, plus its own ending.
#[async_trait]
pub trait TxBackend:
    AccountWrites
    + AuditWrites
    + CheckoutWrites
    + ClientWrites
    + IncidentWrites
    + KeyringWrites
    + PostWrites
    + UserWrites
    + Send
{
    /// Writes a chained entry's sequence number where its change asked for it.
    async fn apply_link(&mut self, link: &SeqLink, seq: i64) -> Result<()>;
    /// Starts a nested unit (one change in a batch) that can be undone alone.
    async fn savepoint(&mut self) -> Result<()>;
    /// Keeps (`keep`) or undoes the nested unit; an undone unit never touches the kept units
    /// before it.
    async fn end_savepoint(&mut self, keep: bool) -> Result<()>;
    async fn commit_tx(self: Box<Self>) -> Result<()>;
    /// Whether a statement here could have ended a token or what it was issued under (checkout
    /// status, client revocation, user disable, account freeze).
    fn tokens_touched(&self) -> bool;
    /// The backend's own transaction, for a test's raw statements inside a change.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// The store the services share: a backend behind an `Arc`, who may write, and the token epoch.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Arc<dyn Backend>,
    /// Set by the cluster's lease loop; [`Writer::Sole`] unless the vault runs as a cluster.
    writer: Arc<std::sync::RwLock<Writer>>,
    /// Moves after every commit that may have ended a token; in-memory indexes of live tokens
    /// drop what they hold when it moved (see `checkout::TokenIndex`).
    token_epoch: Arc<AtomicU64>,
}

impl Deref for Store {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        &*self.backend
    }
}

impl Store {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self {
            backend,
            writer: Arc::new(std::sync::RwLock::new(Writer::Sole)),
            token_epoch: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Who may write from now on (the cluster's lease loop sets it).
    pub fn set_writer(&self, writer: Writer) {
        // A panic while the lock is held cannot leave a half-written enum behind.
        *self
            .writer
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = writer;
    }

    /// Who may write now.
    pub fn writer(&self) -> Writer {
        self.writer
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The backend itself, for code that knows which one it opened (tests, the SQLite backup).
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Starts the write transaction every change of vault state runs in (see [`Tx`]).
    pub async fn begin(&self) -> Result<Tx> {
        let inner = match self.writer() {
            Writer::Sole => self.backend.begin_tx(None).await?,
            Writer::Active(fence) => self.backend.begin_tx(Some(&fence)).await?,
            Writer::Standby => return Err(StoreError::Fenced),
        };
        Ok(Tx {
            inner,
            notes: serde_json::Map::new(),
            links: Vec::new(),
            token_epoch: Arc::clone(&self.token_epoch),
        })
    }

    /// Appends a batch of audit entries whose changes are all plain rows, in a transaction of
    /// its own ([`Backend::audit_append`]), fenced as [`Store::begin`] is.
    pub async fn audit_append(
        &self,
        rows: &[Option<AppendRow>],
        chain: ChainFn<'_>,
    ) -> Result<Appended> {
        match self.writer() {
            Writer::Sole => self.backend.audit_append(None, rows, chain).await,
            Writer::Active(fence) => self.backend.audit_append(Some(&fence), rows, chain).await,
            Writer::Standby => Err(StoreError::Fenced),
        }
    }

    /// Moves the token epoch, so every in-memory index of live tokens drops what it holds (a node
    /// that becomes active cannot know what another node ended meanwhile).
    pub fn invalidate_token_caches(&self) {
        self.token_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// The token epoch: read it before a token lookup, and keep what the lookup found only while
    /// it has not moved. It moves after (never before) a commit that may have ended a token.
    pub fn token_epoch(&self) -> u64 {
        self.token_epoch.load(Ordering::SeqCst)
    }

    /// Hands every entry with `lo <= seq <= hi` to `each`, in seq order, until it returns false;
    /// returns `state`. The closure and its state travel boxed once per walk, not per entry.
    /// See [`Backend::prepare_bulk_load`].
    pub async fn prepare_bulk_load(&self) -> Result<()> {
        self.backend.prepare_bulk_load().await
    }

    pub async fn audit_walk<S, F>(&self, lo: i64, hi: i64, state: S, each: F) -> Result<S>
    where
        S: Send + 'static,
        F: FnMut(&mut S, AuditFields<'_>) -> bool + Send + 'static,
    {
        struct Walk<S, F> {
            state: S,
            each: F,
        }
        impl<S, F> Walker for Walk<S, F>
        where
            S: Send + 'static,
            F: FnMut(&mut S, AuditFields<'_>) -> bool + Send + 'static,
        {
            fn visit(&mut self, entry: AuditFields<'_>) -> bool {
                (self.each)(&mut self.state, entry)
            }
            fn into_any(self: Box<Self>) -> Box<dyn Any> {
                self
            }
        }
        let done = self
            .backend
            .audit_walk_boxed(lo, hi, Box::new(Walk { state, each }))
            .await?;
        done.into_any()
            .downcast::<Walk<S, F>>()
            .map(|w| w.state)
            .map_err(|_| StoreError::Corrupt("the audit walk gave back another walker".into()))
    }
}

/// One write transaction. Every change of vault state runs inside one, handed out by the audit
/// writer, so that the change and its audit entry commit together or not at all. The writes are
/// the backend's ([`TxBackend`], through `Deref`); the bookkeeping the audit writer needs is here.
pub struct Tx {
    inner: Box<dyn TxBackend>,
    /// Details a change adds to its own audit entry (ids, versions, counts; never a secret).
    notes: serde_json::Map<String, serde_json::Value>,
    /// Rows that must name the audit entry of the change that is running, once the writer has
    /// given it a sequence number (later in the same transaction).
    links: Vec<SeqLink>,
    token_epoch: Arc<AtomicU64>,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").finish_non_exhaustive()
    }
}

impl Deref for Tx {
    type Target = dyn TxBackend;
    fn deref(&self) -> &Self::Target {
        &*self.inner
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut *self.inner
    }
}

impl Tx {
    /// Adds a detail to the audit entry of the change that is running.
    pub fn note(&mut self, key: &str, value: impl Into<serde_json::Value>) {
        self.notes.insert(key.to_owned(), value.into());
    }

    /// The details noted since the last call.
    pub fn take_notes(&mut self) -> serde_json::Map<String, serde_json::Value> {
        std::mem::take(&mut self.notes)
    }

    /// Asks that `link` be given the sequence number of the running change's audit entry, in
    /// this transaction, once the entry is chained.
    pub fn link_entry(&mut self, link: SeqLink) {
        self.links.push(link);
    }

    /// The links asked for since the last call.
    pub fn take_links(&mut self) -> Vec<SeqLink> {
        std::mem::take(&mut self.links)
    }

    /// Opens (or renews) a live session's step-up window until `until`; the entry of the change
    /// that does it is linked as the window's step-up (see [`SeqLink`]).
    pub async fn session_open_step_up(&mut self, hash: &[u8], until: i64) -> Result<bool> {
        let open = self.inner.session_set_step_up(hash, until).await?;
        self.link_entry(SeqLink::SessionStepUp(hash.to_vec()));
        Ok(open)
    }

    /// Commits; if anything here could have ended a token, bumps the token epoch before the
    /// caller goes on (and so before any waiter of the change is answered).
    pub async fn commit(self) -> Result<()> {
        let touched = self.inner.tokens_touched();
        let r = self.inner.commit_tx().await;
        if touched {
            // Bumped whatever the outcome: an unsure commit costs only cache misses.
            self.token_epoch.fetch_add(1, Ordering::SeqCst);
        }
        r
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::redacted;

    #[test]
    fn redacted_hides_passwords() {
        assert_eq!(
            redacted("postgres://vault:s3cret@db.example:5432/vault?sslmode=disable&password=x"),
            "postgres://vault:***@db.example:5432/vault"
        );
        assert_eq!(
            redacted("postgres://vault@127.0.0.1/vault"),
            "postgres://vault@127.0.0.1/vault"
        );
        assert_eq!(redacted("postgresql://a:b:c@h/d"), "postgresql://a:***@h/d");
        assert_eq!(redacted("postgres://u:pa/ss@h/d"), "postgres://u:***@h/d");
        assert_eq!(
            redacted("postgres://u:p?a@ss@h/d?x=1"),
            "postgres://u:***@h/d"
        );
        assert_eq!(redacted("nonsense"), "<not a URL>");
    }
}

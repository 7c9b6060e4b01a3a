//! mediavault-store: storage. SQLite through sqlx, WAL, `synchronous=FULL`. No SQL outside this
//! crate, so that PostgreSQL can follow behind the same functions.
//!
//! Two pools: one writer connection (SQLite allows one writer; queueing in-process is cheaper and
//! fairer than `SQLITE_BUSY` retries, and it makes check-then-insert sequences atomic per
//! transaction) and a few readers. Plain reads go to the readers, which in WAL mode see every
//! committed write, so token and key lookups never queue behind audit commits. The audit verifier's
//! walk of the whole log reads through rusqlite, on read-only connections of its own
//! ([`Store::audit_walk`] says why).

pub mod accounts;
pub mod audit;
pub mod checkouts;
pub mod clients;
pub mod files;
pub mod incidents;
pub mod keyring;
pub mod posts;
pub mod types;
pub mod users;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

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
    /// From the audit verifier's own read-only connection (see [`Store::audit_walk`]).
    #[error("database: {0}")]
    Read(#[from] rusqlite::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
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

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Duplicate,
            _ => StoreError::Db(e),
        }
    }
}

/// One write transaction on the writer connection (`BEGIN IMMEDIATE`). Every change of vault state
/// runs inside one, handed out by the audit writer, so that the change and its audit entry commit
/// together or not at all. The mutating statements are methods on `Tx`; `Store` keeps the reads.
pub struct Tx {
    conn: sqlx::Transaction<'static, sqlx::Sqlite>,
    /// Details a change adds to its own audit entry (ids, versions, counts; never a secret).
    notes: serde_json::Map<String, serde_json::Value>,
    /// Set by every statement that can end a token or what it was issued under (checkout status,
    /// client revocation, user disable, account freeze); the commit then bumps `token_epoch`.
    tokens_touched: bool,
    token_epoch: Arc<AtomicU64>,
    /// Rows that must name the audit entry of the change that is running, once the writer has
    /// given it a sequence number (later in the same transaction).
    links: Vec<SeqLink>,
}

/// A row that records the sequence number of the audit entry its change commits with.
#[derive(Debug, Clone)]
pub enum SeqLink {
    /// The session (by token hash) whose step-up window the entry opened.
    SessionStepUp(Vec<u8>),
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").finish_non_exhaustive()
    }
}

impl Tx {
    pub(crate) fn conn(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.conn
    }

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

    /// Writes a chained entry's sequence number where its change asked for it.
    pub async fn apply_link(&mut self, link: &SeqLink, seq: i64) -> Result<()> {
        match link {
            SeqLink::SessionStepUp(hash) => {
                sqlx::query("UPDATE sessions SET step_up_seq = ? WHERE token_hash = ?")
                    .bind(seq)
                    .bind(hash)
                    .execute(self.conn())
                    .await?;
            }
        }
        Ok(())
    }

    /// Starts a nested unit (one change in a batch) that can be undone alone.
    pub async fn savepoint(&mut self) -> Result<()> {
        sqlx::query("SAVEPOINT change").execute(self.conn()).await?;
        Ok(())
    }

    /// Keeps (`keep`) or undoes the nested unit. A kept unit's savepoint is left open: the
    /// batch's COMMIT commits the transaction with every savepoint in it, and each statement is a
    /// hop to the connection's worker thread (a RELEASE per change made a batch of proxied
    /// calls a third slower). Savepoints nest, and `ROLLBACK TO change` undoes only back to the
    /// innermost one of that name, so an undone unit never touches the kept units before it.
    pub async fn end_savepoint(&mut self, keep: bool) -> Result<()> {
        if !keep {
            sqlx::query("ROLLBACK TO change")
                .execute(self.conn())
                .await?;
            sqlx::query("RELEASE change").execute(self.conn()).await?;
        }
        Ok(())
    }

    /// Marks this transaction as one that may end live tokens (see [`Store::token_epoch`]).
    pub(crate) fn touch_tokens(&mut self) {
        self.tokens_touched = true;
    }

    /// Commits; if anything here could have ended a token, bumps the token epoch before the
    /// caller goes on (and so before any waiter of the change is answered).
    pub async fn commit(self) -> Result<()> {
        let (touched, epoch) = (self.tokens_touched, Arc::clone(&self.token_epoch));
        let r = self.conn.commit().await;
        if touched {
            // Bumped whatever the outcome: an unsure commit costs only cache misses.
            epoch.fetch_add(1, Ordering::SeqCst);
        }
        r?;
        Ok(())
    }
}

/// Where the database is, and how the pools opened it.
#[derive(Debug)]
struct DbFile {
    path: PathBuf,
    /// A snapshot ([`Store::open_snapshot`]): opened as immutable, so no WAL or lock is touched.
    immutable: bool,
}

impl DbFile {
    /// A rusqlite connection that can only read, with the pools' busy timeout.
    fn open_read_only(&self) -> Result<rusqlite::Connection> {
        use rusqlite::OpenFlags;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = if self.immutable {
            // `immutable` is only a URI parameter; the path goes in percent-encoded, as sqlx does.
            let path = self.path.to_str().ok_or_else(|| {
                StoreError::Corrupt(format!("{} is not UTF-8", self.path.display()))
            })?;
            let encoded: String = path
                .bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' => char::from(b).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            rusqlite::Connection::open_with_flags(
                format!("file:{encoded}?immutable=1"),
                flags | OpenFlags::SQLITE_OPEN_URI,
            )?
        } else {
            rusqlite::Connection::open_with_flags(&self.path, flags)?
        };
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(conn)
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
    /// The database file, for readers outside the pools (the audit verifier's walk).
    file: Arc<DbFile>,
    /// Moves after every commit that may have ended a token; in-memory indexes of live tokens
    /// drop what they hold when it moved (see `checkout::TokenIndex`).
    token_epoch: Arc<AtomicU64>,
}

impl Store {
    /// Opens (and with `create`, creates) the database and applies embedded migrations. The
    /// database and its directory must be private to this user ([`files`]).
    pub async fn open(path: &Path, create: bool) -> Result<Self> {
        if !create && !path.exists() {
            return Err(StoreError::Missing(path.display().to_string()));
        }
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        files::refuse_if_open(dir, "700")?;
        if create {
            files::create_private_file(path)?;
        }
        files::refuse_if_open(path, "600")?;
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // No ping before each acquire (sqlx's default): a connection to a local file does not go
        // stale, and the ping is one more round trip to the connection's worker thread on every
        // transaction and every read. (sqlx still pings each connection when it goes back to the
        // pool; docs/benchmark.md says what that costs the audit writer.)
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            // A transaction that failed on a full disk may have been rolled back by SQLite itself;
            // sqlx's own ROLLBACK then fails, it still counts the transaction as open, and would
            // refuse every later BEGIN: the vault would stay refusing after space returns. Such a
            // connection is closed instead of going back to the pool (which opens a fresh one).
            // The ping lets a rollback still queued on the connection run before looking again.
            .after_release(|conn, _| {
                Box::pin(async move {
                    if conn.is_in_transaction() {
                        conn.ping().await?;
                    }
                    Ok(!conn.is_in_transaction())
                })
            })
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("../../migrations/sqlite")
            .run(&writer)
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.read_only(true))
            .await?;
        for sidecar in files::sidecars(path) {
            files::tighten(&sidecar)?;
        }
        Ok(Self {
            writer,
            reader,
            file: Arc::new(DbFile {
                path: path.to_owned(),
                immutable: false,
            }),
            token_epoch: Arc::new(AtomicU64::new(0)),
        })
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// Starts a write transaction that takes the write lock at once, so what it reads stays true
    /// until it commits (also against another process such as the CLI).
    pub async fn begin(&self) -> Result<Tx> {
        Ok(Tx {
            conn: self.writer.begin_with("BEGIN IMMEDIATE").await?,
            notes: serde_json::Map::new(),
            tokens_touched: false,
            links: Vec::new(),
            token_epoch: Arc::clone(&self.token_epoch),
        })
    }

    /// Writes a consistent copy of the whole database to `path` (`VACUUM INTO`, on the writer
    /// connection, so no write of this process interleaves; it reads one committed snapshot, so
    /// another process writing meanwhile changes nothing in the copy). `path` is created first
    /// with mode 0600, empty, so the copy is never readable by others, whatever the umask.
    pub async fn snapshot_into(&self, path: &Path) -> Result<()> {
        files::create_private_file(path)?;
        let target = path
            .to_str()
            .ok_or_else(|| StoreError::Corrupt(format!("{} is not UTF-8", path.display())))?;
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Opens a database file read-only and immutable (a snapshot, or a restored copy before it is
    /// put in service): nothing is written, no migration runs, no WAL is made.
    pub async fn open_snapshot(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(StoreError::Missing(path.display().to_string()));
        }
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .read_only(true)
            .immutable(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await?;
        Ok(Self {
            writer: pool.clone(),
            reader: pool,
            file: Arc::new(DbFile {
                path: path.to_owned(),
                immutable: true,
            }),
            token_epoch: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The token epoch: read it before a token lookup, and keep what the lookup found only while
    /// it has not moved. It moves after (never before) a commit that may have ended a token.
    pub fn token_epoch(&self) -> u64 {
        self.token_epoch.load(Ordering::SeqCst)
    }

    /// Cheap liveness check of both pools, for `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        sqlx::query("SELECT 1").execute(&self.writer).await?;
        Ok(())
    }
}

/// For tests of this crate and, with the `test-support` feature, of the audit writer in
/// mediavault-core: a store of its own and raw SQL on its pools.
#[cfg(any(test, feature = "test-support"))]
#[allow(clippy::unwrap_used)]
impl Store {
    /// A new store in a temporary directory of mode 0700 (the store refuses a looser one).
    pub async fn open_temp() -> (tempfile::TempDir, Store) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let store = Store::open(&dir.path().join("vault.db"), true)
            .await
            .unwrap();
        (dir, store)
    }

    /// The writer pool, to set up a table a test needs.
    pub fn test_writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// A reader pool, to look at what a test wrote.
    pub fn test_reader(&self) -> &SqlitePool {
        &self.reader
    }
}

#[cfg(any(test, feature = "test-support"))]
impl Tx {
    /// The transaction's connection, for a test's own statements inside a change.
    pub fn test_conn(&mut self) -> &mut sqlx::SqliteConnection {
        self.conn()
    }
}

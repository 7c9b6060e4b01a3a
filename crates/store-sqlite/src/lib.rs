//! mediavault-store-sqlite: the SQLite backend of mediavault-store, through sqlx. WAL,
//! `synchronous=FULL`, migrations in `migrations/sqlite`. All of the vault's SQL for SQLite is in
//! this crate; the traits it implements and the rows it returns are mediavault-store's.
//!
//! Two pools: one writer connection (SQLite allows one writer; queueing in-process is cheaper and
//! fairer than `SQLITE_BUSY` retries, and it makes check-then-insert sequences atomic per
//! transaction) and a few readers. Plain reads go to the readers, which in WAL mode see every
//! committed write, so token and key lookups never queue behind audit commits. The audit verifier's
//! walk of the whole log reads through rusqlite, on read-only connections of its own
//! ([`SqliteStore::audit_walk_boxed`] says why), and so do the hot path's point reads by key
//! (`point.rs` says why), and the audit writer's batches without changes
//! go through a rusqlite write connection of their own (`append.rs` says why). The audit writer
//! runs one batch at a time on one or the other, so its two connections never wait for each
//! other; SQLite's write lock orders them with anything else, as between processes.

/// The chain head as one `SELECT` (a string literal): the last entry, and the latest anchor for
/// a log pruned empty; [`mediavault_store::audit::ChainHead::from_parts`] decides. Read through
/// sqlx and through the audit append's own statements alike.
macro_rules! head_select {
    () => {
        "SELECT (SELECT seq FROM audit_log ORDER BY seq DESC LIMIT 1), \
                (SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1), \
                (SELECT first_seq FROM audit_anchor ORDER BY first_seq DESC LIMIT 1), \
                (SELECT prev_hash FROM audit_anchor ORDER BY first_seq DESC LIMIT 1), \
                (SELECT ts FROM audit_log ORDER BY seq DESC LIMIT 1)"
    };
}

mod accounts;
mod audit;
mod checkouts;
mod clients;
pub mod files;
mod incidents;
mod keyring;
mod posts;
mod users;

use std::any::Any;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mediavault_store::{
    Backend, Fence, LeaseRow, Result, SeqLink, Store, StoreError, TxBackend, Walker,
};
use sqlx::Connection as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The database's clock in Unix milliseconds, as SQL: for SQLite, the clock of the machine that
/// holds the file, which every process on it reads alike (the lease is timed by it, never by a
/// node's own clock).
macro_rules! db_now_ms {
    () => {
        "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
    };
}

/// The proof a write transaction makes before it writes: the lease is `holder`'s for `term` and
/// has time left by the database's clock (binds: holder, term). One text for `begin_tx` and the
/// audit append, so the two cannot prove different things.
macro_rules! fence_held {
    () => {
        concat!(
            "SELECT 1 FROM lease WHERE id = 1 AND holder = ? AND term = ? AND expires_at > ",
            db_now_ms!()
        )
    };
}

mod append;
mod point;

/// Maps an error of the verifier's rusqlite connection.
fn read_error(e: rusqlite::Error) -> StoreError {
    StoreError::Read(Box::new(e))
}

/// One write transaction on the writer connection (`BEGIN IMMEDIATE`).
pub struct SqliteTx {
    conn: sqlx::Transaction<'static, sqlx::Sqlite>,
    /// Set by every statement that can end a token or what it was issued under (checkout status,
    /// client revocation, user disable, account freeze); [`mediavault_store::Tx::commit`] then
    /// bumps the token epoch.
    tokens_touched: bool,
}

impl SqliteTx {
    pub(crate) fn conn(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.conn
    }

    /// Marks this transaction as one that may end live tokens.
    pub(crate) fn touch_tokens(&mut self) {
        self.tokens_touched = true;
    }
}

#[async_trait]
impl TxBackend for SqliteTx {
    async fn apply_link(&mut self, link: &SeqLink, seq: i64) -> Result<()> {
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

    async fn savepoint(&mut self) -> Result<()> {
        sqlx::query("SAVEPOINT change").execute(self.conn()).await?;
        Ok(())
    }

    /// A kept unit's savepoint is left open: the batch's COMMIT commits the transaction with every
    /// savepoint in it, and each statement is a hop to the connection's worker thread (a RELEASE
    /// per change made a batch of proxied calls a third slower). Savepoints nest, and
    /// `ROLLBACK TO change` undoes only back to the innermost one of that name, so an undone unit
    /// never touches the kept units before it.
    async fn end_savepoint(&mut self, keep: bool) -> Result<()> {
        if !keep {
            sqlx::query("ROLLBACK TO change")
                .execute(self.conn())
                .await?;
            sqlx::query("RELEASE change").execute(self.conn()).await?;
        }
        Ok(())
    }

    async fn commit_tx(self: Box<Self>) -> Result<()> {
        self.conn.commit().await?;
        Ok(())
    }

    fn tokens_touched(&self) -> bool {
        self.tokens_touched
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Where the database is, and how the pools opened it.
#[derive(Debug)]
struct DbFile {
    path: PathBuf,
    /// A snapshot ([`SqliteStore::open_snapshot`]): opened as immutable, so no WAL or lock is touched.
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
            )
            .map_err(read_error)?
        } else {
            rusqlite::Connection::open_with_flags(&self.path, flags).map_err(read_error)?
        };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(read_error)?;
        Ok(conn)
    }
}

/// The SQLite store: the writer and reader pools on one database file.
#[derive(Debug)]
pub struct SqliteStore {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
    /// The database file, for readers outside the pools (the audit verifier's walk).
    file: Arc<DbFile>,
    /// The audit writer's connection for batches without changes.
    appender: append::Appender,
    /// Connections for the hot path's point reads (`point.rs` says why).
    point: point::PointReaders,
}

impl SqliteStore {
    /// Opens (and with `create`, creates) the database and applies embedded migrations. The
    /// database and its directory must be private to this user ([`files`]).
    pub async fn open(path: &Path, create: bool) -> Result<Store> {
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
        let writer = mediavault_store::pool_options::<sqlx::Sqlite>()
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
        let reader = mediavault_store::pool_options::<sqlx::Sqlite>()
            .max_connections(4)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.read_only(true))
            .await?;
        for sidecar in files::sidecars(path) {
            files::tighten(&sidecar)?;
        }
        Ok(Store::new(Arc::new(Self {
            writer,
            reader,
            appender: append::Appender::new(path.to_owned()),
            point: point::PointReaders::default(),
            file: Arc::new(DbFile {
                path: path.to_owned(),
                immutable: false,
            }),
        })))
    }

    /// Opens a database file read-only and immutable (a snapshot, or a restored copy before it is
    /// put in service): nothing is written, no migration runs, no WAL is made.
    pub async fn open_snapshot(path: &Path) -> Result<Store> {
        if !path.exists() {
            return Err(StoreError::Missing(path.display().to_string()));
        }
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .read_only(true)
            .immutable(true);
        let pool = mediavault_store::pool_options::<sqlx::Sqlite>()
            .max_connections(1)
            .connect_with(opts)
            .await?;
        Ok(Store::new(Arc::new(Self {
            writer: pool.clone(),
            reader: pool,
            appender: append::Appender::new(path.to_owned()),
            point: point::PointReaders::default(),
            file: Arc::new(DbFile {
                path: path.to_owned(),
                immutable: true,
            }),
        })))
    }
}

#[async_trait]
impl Backend for SqliteStore {
    /// `BEGIN IMMEDIATE`: the write lock is taken at once, and a takeover's `UPDATE lease`
    /// needs it too, so between the proof below and the commit no other node can take the lease.
    async fn begin_tx(&self, fence: Option<&Fence>) -> Result<Box<dyn TxBackend>> {
        let mut conn = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(fence) = fence {
            let held: Option<i64> = sqlx::query_scalar(fence_held!())
                .bind(&fence.node)
                .bind(fence.term)
                .fetch_optional(&mut *conn)
                .await?;
            if held.is_none() {
                // Dropping the transaction rolls it back; nothing was written.
                return Err(StoreError::Fenced);
            }
        }
        Ok(Box::new(SqliteTx {
            conn,
            tokens_touched: false,
        }))
    }

    /// The whole transaction on the audit writer's own thread, through a connection of its own
    /// (`append.rs` says why): no hop to another thread. Blocks its caller for the batch.
    async fn audit_append(
        &self,
        fence: Option<&Fence>,
        rows: &[Option<mediavault_store::AppendRow>],
        chain: mediavault_store::ChainFn<'_>,
    ) -> Result<mediavault_store::Appended> {
        if self.file.immutable {
            return Err(StoreError::Unsupported(
                "a snapshot is read-only: nothing can be appended to its audit log".into(),
            ));
        }
        self.appender.append(fence, rows, chain)
    }

    async fn lease_acquire(&self, node: &str, address: &str, ttl_ms: i64) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(concat!(
            "UPDATE lease SET holder = ?, address = ?, term = term + 1, expires_at = ",
            db_now_ms!(),
            " + ? WHERE id = 1 AND expires_at <= ",
            db_now_ms!(),
            " RETURNING term"
        ))
        .bind(node)
        .bind(address)
        .bind(ttl_ms)
        .fetch_optional(&self.writer)
        .await?)
    }

    async fn lease_renew(&self, fence: &Fence, ttl_ms: i64) -> Result<bool> {
        let r = sqlx::query(concat!(
            "UPDATE lease SET expires_at = ",
            db_now_ms!(),
            " + ? WHERE id = 1 AND holder = ? AND term = ? AND expires_at > ",
            db_now_ms!()
        ))
        .bind(ttl_ms)
        .bind(&fence.node)
        .bind(fence.term)
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn lease_confirm(&self, fence: &Fence, margin_ms: i64) -> Result<bool> {
        let held: Option<i64> = sqlx::query_scalar(concat!(
            "SELECT 1 FROM lease WHERE id = 1 AND holder = ? AND term = ? AND expires_at > ",
            db_now_ms!(),
            " + ?"
        ))
        .bind(&fence.node)
        .bind(fence.term)
        .bind(margin_ms)
        .fetch_optional(&self.reader)
        .await?;
        Ok(held.is_some())
    }

    async fn lease_release(&self, fence: &Fence) -> Result<()> {
        sqlx::query(concat!(
            "UPDATE lease SET expires_at = ",
            db_now_ms!(),
            " WHERE id = 1 AND holder = ? AND term = ?"
        ))
        .bind(&fence.node)
        .bind(fence.term)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn lease_current(&self) -> Result<LeaseRow> {
        let (holder, address, term, remaining_ms): (String, String, i64, i64) =
            sqlx::query_as(concat!(
                "SELECT holder, address, term, expires_at - ",
                db_now_ms!(),
                " FROM lease WHERE id = 1"
            ))
            .fetch_one(&self.reader)
            .await?;
        Ok(LeaseRow {
            holder,
            address,
            term,
            remaining_ms,
        })
    }

    /// One statement for the whole range, on a read-only connection of its own in a blocking
    /// thread, each row's values borrowed straight from SQLite: through sqlx every row crosses a
    /// channel from its worker thread and every value is copied (a walk of the log measured ~5×
    /// slower).
    async fn audit_walk_boxed(
        &self,
        lo: i64,
        hi: i64,
        walker: Box<dyn Walker>,
    ) -> Result<Box<dyn Walker>> {
        let file = Arc::clone(&self.file);
        tokio::task::spawn_blocking(move || {
            let conn = file.open_read_only()?;
            audit::walk(&conn, lo, hi, walker).map_err(read_error)
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("audit walk: {e}")))?
    }

    /// `VACUUM INTO`, on the writer connection, so no write of this process interleaves; it reads
    /// one committed snapshot, so another process writing meanwhile changes nothing in the copy.
    /// `path` is created first with mode 0600, empty, so the copy is never readable by others,
    /// whatever the umask.
    async fn snapshot_into(&self, path: &Path) -> Result<()> {
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

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        sqlx::query("SELECT 1").execute(&self.writer).await?;
        Ok(())
    }

    async fn prepare_bulk_load(&self) -> Result<()> {
        // The writer's page cache from 2 MiB to 256 MiB, for this connection's life: an append
        // touches a leaf of each audit index per person, account, action and outcome, and past
        // about 2 M entries those leaves no longer fit, so seeding fell from ~50 k to ~5 k
        // entries/s. Never on a serving vault (its memory is budgeted): only the seeding path.
        sqlx::query("PRAGMA cache_size = -262144")
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn close(&self) {
        // The point readers first: SQLite checkpoints the WAL into the database and removes it
        // when the last connection closes, and a read-only one cannot, so a point reader closed
        // last left the WAL behind (a stopped vault's files should be the database alone).
        self.point.close();
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// For tests of this crate and, with the `test-support` feature, of mediavault-core: a store of
/// its own and raw SQL on its writer.
#[cfg(any(test, feature = "test-support"))]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub mod testing {
    use super::*;

    /// A new store in a temporary directory of mode 0700 (the store refuses a looser one), and a
    /// pool on its database for a test's own statements.
    pub async fn open_temp() -> (tempfile::TempDir, Store, SqlitePool) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let path = dir.path().join("vault.db");
        let store = SqliteStore::open(&path, true).await.unwrap();
        let raw = mediavault_store::pool_options::<sqlx::Sqlite>()
            .max_connections(1)
            .connect_with(
                SqliteConnectOptions::from_str("sqlite://")
                    .unwrap()
                    .filename(&path)
                    .busy_timeout(BUSY_TIMEOUT),
            )
            .await
            .unwrap();
        (dir, store, raw)
    }

    /// The connection of a change's transaction, for a test's own statements inside the change.
    pub fn conn(tx: &mut mediavault_store::Tx) -> &mut sqlx::SqliteConnection {
        tx.as_any_mut()
            .downcast_mut::<SqliteTx>()
            .expect("a transaction of the SQLite backend")
            .conn()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use mediavault_store::audit::{AuditRow, ChainHead};
    use mediavault_store::{Fence, Writer};

    /// Two nodes on one database: one holds the lease; the other's writes are refused inside the
    /// database, even while it still believes itself active (OpenBao's bug: writes after losing
    /// the lock), and a takeover waits for nothing but the lease running out.
    #[tokio::test]
    async fn a_node_that_lost_the_lease_cannot_write() {
        let (dir, a, _raw) = testing::open_temp().await;
        let b = SqliteStore::open(&dir.path().join("vault.db"), false)
            .await
            .unwrap();
        let term = a.lease_acquire("a", "https://a", 60_000).await.unwrap();
        assert_eq!(term, Some(1));
        assert_eq!(
            b.lease_acquire("b", "https://b", 60_000).await.unwrap(),
            None
        );
        let fence_a = Fence {
            node: "a".into(),
            term: 1,
        };
        a.set_writer(Writer::Active(fence_a.clone()));
        a.begin().await.unwrap().commit().await.unwrap();
        assert!(a.lease_confirm(&fence_a, 30_000).await.unwrap());
        assert!(!a.lease_confirm(&fence_a, 120_000).await.unwrap());
        let seen = b.lease_current().await.unwrap();
        assert_eq!((seen.holder.as_str(), seen.term), ("a", 1));
        assert!(seen.remaining_ms > 50_000, "{seen:?}");

        // B pretends to be active with A's term: refused, the fence names the holder.
        b.set_writer(Writer::Active(Fence {
            node: "b".into(),
            term: 1,
        }));
        assert!(matches!(b.begin().await, Err(StoreError::Fenced)));
        // The audit writer's own path for entries proves the lease the same way.
        let mut rows = |_head: ChainHead, _: &[bool]| vec![row(1)];
        assert!(matches!(
            b.audit_append(&[None], Box::new(&mut rows)).await,
            Err(StoreError::Fenced)
        ));
        assert_eq!(b.audit_head().await.unwrap().seq, 0);
        b.set_writer(Writer::Standby);
        assert!(matches!(b.begin().await, Err(StoreError::Fenced)));

        // A's lease runs out (a short renewal stands in for a paused node); B takes over with the
        // next term; A, which still believes itself active, writes nothing and cannot renew.
        assert!(a.lease_renew(&fence_a, 1).await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            b.lease_acquire("b", "https://b", 60_000).await.unwrap(),
            Some(2)
        );
        assert!(matches!(a.begin().await, Err(StoreError::Fenced)));
        assert!(!a.lease_renew(&fence_a, 60_000).await.unwrap());
        assert!(!a.lease_confirm(&fence_a, 0).await.unwrap());
        // Releasing a lease one no longer holds changes nothing.
        a.lease_release(&fence_a).await.unwrap();
        let fence_b = Fence {
            node: "b".into(),
            term: 2,
        };
        b.set_writer(Writer::Active(fence_b.clone()));
        b.begin().await.unwrap().commit().await.unwrap();
        // A clean stop hands over at once.
        b.lease_release(&fence_b).await.unwrap();
        assert_eq!(
            a.lease_acquire("a", "https://a", 60_000).await.unwrap(),
            Some(3)
        );
    }

    fn row(seq: i64) -> AuditRow {
        AuditRow {
            seq,
            ts: 1_000,
            actor_kind: "system".into(),
            actor_id: "mediavault".into(),
            action: "test.step".into(),
            target: String::new(),
            outcome: "success".into(),
            source_ip: String::new(),
            request_id: String::new(),
            http_method: None,
            http_path: None,
            http_status: None,
            detail: "{}".into(),
            prev_hash: vec![0; 32],
            hash: vec![seq as u8; 32],
        }
    }

    /// A batch appended on the audit writer's own connection is all or nothing: a row refused in
    /// the middle (here a seq that exists) leaves none of the batch, and the next batch goes on
    /// from the head on disk, on the same connection.
    #[tokio::test]
    async fn an_audit_append_that_fails_leaves_nothing_and_the_next_one_goes_on() {
        let (_dir, store, raw) = testing::open_temp().await;
        let mut first = |head: ChainHead, _: &[bool]| vec![row(head.seq + 1), row(head.seq + 2)];
        let done = store
            .audit_append(&[None, None], Box::new(&mut first))
            .await
            .unwrap();
        assert_eq!(done.rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        // 3 is new, 2 is taken: the whole batch goes.
        let mut clash = |head: ChainHead, _: &[bool]| vec![row(head.seq + 1), row(head.seq)];
        assert!(matches!(
            store
                .audit_append(&[None, None], Box::new(&mut clash))
                .await,
            Err(StoreError::Duplicate)
        ));
        // A refused outcome (the typed-state trigger) after a good row: the same.
        let mut untyped = |head: ChainHead, _: &[bool]| {
            let mut bad = row(head.seq + 2);
            bad.outcome = "fine".into();
            vec![row(head.seq + 1), bad]
        };
        assert!(
            store
                .audit_append(&[None, None], Box::new(&mut untyped))
                .await
                .is_err()
        );
        let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM audit_log ORDER BY seq")
            .fetch_all(&raw)
            .await
            .unwrap();
        assert_eq!(seqs, [1, 2]);
        let mut next = |head: ChainHead, _: &[bool]| vec![row(head.seq + 1)];
        assert_eq!(
            store
                .audit_append(&[None], Box::new(&mut next))
                .await
                .unwrap()
                .rows[0]
                .seq,
            3
        );
        // And sqlx's writer sees it at once (the same file, the next transaction).
        let mut tx = store.begin().await.unwrap();
        assert_eq!(tx.audit_head().await.unwrap().seq, 3);
    }

    /// An account and its current version's sealed credential in one read: the same as reading
    /// them one after the other, before and after a new version, and nothing for no account.
    #[tokio::test]
    async fn an_account_is_read_with_its_current_credential() {
        use mediavault_store::types::{AccountStatus, Platform};
        let (_dir, store, _raw) = testing::open_temp().await;
        let current = || async {
            store
                .account_with_current_sealed("wx")
                .await
                .unwrap()
                .unwrap()
        };
        assert!(
            store
                .account_with_current_sealed("nobody")
                .await
                .unwrap()
                .is_none()
        );
        let mut tx = store.begin().await.unwrap();
        tx.account_insert("wx", Platform::Wechat, "WeChat", b"v1", "admin", 1)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let (row, sealed) = current().await;
        assert_eq!((row.id.as_str(), row.current_version), ("wx", 1));
        assert_eq!(sealed.as_deref(), Some(&b"v1"[..]));
        let mut tx = store.begin().await.unwrap();
        tx.credential_add_version("wx", "admin", "rotate", 2, Box::new(|_| Ok(b"v2".to_vec())))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let (row, sealed) = current().await;
        assert_eq!(row.current_version, 2);
        assert_eq!(sealed.as_deref(), Some(&b"v2"[..]));
        assert_eq!(
            store.credential_sealed("wx", 2).await.unwrap(),
            sealed,
            "what the two reads give"
        );
        // Every column of the row as the pool's read gives it (this read maps them itself),
        // including a freeze committed a moment ago and the optional columns once set.
        let mut tx = store.begin().await.unwrap();
        tx.account_set_status("wx", AccountStatus::Frozen, "incident 7")
            .await
            .unwrap();
        tx.account_set_token_expiry("wx", 1_900_000_000)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let (row, _) = current().await;
        assert_eq!(row.status, AccountStatus::Frozen);
        assert_eq!(
            format!("{row:?}"),
            format!("{:?}", store.account_get("wx").await.unwrap().unwrap())
        );
    }

    /// The typed-state triggers of the two tables the append path writes refuse every value no
    /// enum names and let every named one through (0020 rewrote their tests as comparisons).
    #[tokio::test]
    async fn the_append_tables_typed_triggers_refuse_only_unnamed_values() {
        let (_dir, _store, raw) = testing::open_temp().await;
        let audit = |seq: i64, outcome: &str, actor_kind: &str| {
            sqlx::query(
                "INSERT INTO audit_log (seq, ts, actor_kind, actor_id, action, target, outcome, \
                 source_ip, request_id, detail, prev_hash, hash) \
                 VALUES (?, 1, ?, 'a', 'x', '', ?, '', '', '{}', x'00', x'00')",
            )
            .bind(seq)
            .bind(actor_kind.to_owned())
            .bind(outcome.to_owned())
            .execute(&raw)
        };
        let mut seq = 0;
        for outcome in ["success", "denied", "error", "rate_limited"] {
            for kind in ["user", "client", "token", "system", "anonymous"] {
                seq += 1;
                audit(seq, outcome, kind).await.unwrap();
            }
        }
        for (outcome, kind) in [("fine", "user"), ("success", "robot"), ("Success", "user")] {
            let e = audit(seq + 1, outcome, kind).await.unwrap_err().to_string();
            assert!(
                e.contains("audit_log.outcome or audit_log.actor_kind"),
                "{e}"
            );
        }
        // A media row's kind is judged before its checkout is looked up: an unnamed kind is
        // refused by the trigger, a named one gets as far as the foreign key.
        let media = |kind: &str| {
            sqlx::query(
                "INSERT INTO checkout_media (checkout_id, account_id, kind, platform_id, sha256, \
                 created_at) VALUES ('none', 'none', ?, 'm', '00', 1)",
            )
            .bind(kind.to_owned())
            .execute(&raw)
        };
        let e = media("video").await.unwrap_err().to_string();
        assert!(e.contains("checkout_media.kind"), "{e}");
        for kind in ["image_url", "thumb", "draft"] {
            let e = media(kind).await.unwrap_err().to_string();
            assert!(!e.contains("checkout_media.kind"), "{kind}: {e}");
        }
    }

    /// The append connection keeps the head its own commit left, but never past another
    /// connection's commit: an entry written by sqlx's writer (or another process) between two
    /// appends, or a prune, is where the next append attaches.
    #[tokio::test]
    async fn an_append_attaches_to_what_another_connection_wrote_since() {
        let (_dir, store, raw) = testing::open_temp().await;
        let seen = std::sync::Mutex::new(Vec::new());
        let mut next = |head: ChainHead, _: &[bool]| {
            seen.lock().unwrap().push((head.seq, head.hash[0]));
            vec![row(head.seq + 1)]
        };
        store
            .audit_append(&[None], Box::new(&mut next))
            .await
            .unwrap();
        store
            .audit_append(&[None], Box::new(&mut next))
            .await
            .unwrap();
        // Another connection appends seq 3, whose hash starts with 3.
        let mut tx = store.begin().await.unwrap();
        tx.audit_insert(&[row(3)]).await.unwrap();
        tx.commit().await.unwrap();
        store
            .audit_append(&[None], Box::new(&mut next))
            .await
            .unwrap();
        // And a statement of its own on a third connection removes the last two.
        sqlx::query("DELETE FROM audit_log WHERE seq > 2")
            .execute(&raw)
            .await
            .unwrap();
        store
            .audit_append(&[None], Box::new(&mut next))
            .await
            .unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [(0, 0), (1, 1), (3, 3), (2, 2)],
            "the head each append was given"
        );
    }

    /// A plain row that a constraint refuses (here a media row of a checkout that does not
    /// exist) is undone alone: its entry is not chained, the entries around it commit with
    /// consecutive seqs, and the refusal is the row's answer, not the batch's.
    #[tokio::test]
    async fn a_refused_row_in_an_append_is_undone_alone() {
        let (_dir, store, raw) = testing::open_temp().await;
        let media = mediavault_store::AppendRow::CheckoutMedia(mediavault_store::posts::MediaRow {
            checkout_id: "no-such-checkout".into(),
            account_id: "acct".into(),
            kind: mediavault_store::types::MediaKind::Draft,
            platform_id: "m1".into(),
            sha256: "00".into(),
            created_at: 1,
            used_at: None,
        });
        let mut chain = |head: ChainHead, standing: &[bool]| {
            let mut next = head.seq;
            standing
                .iter()
                .filter(|s| **s)
                .map(|_| {
                    next += 1;
                    row(next)
                })
                .collect::<Vec<_>>()
        };
        let done = store
            .audit_append(&[None, Some(media), None], Box::new(&mut chain))
            .await
            .unwrap();
        assert_eq!(done.rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        assert!(done.refused[0].is_none() && done.refused[2].is_none());
        assert!(done.refused[1].is_some());
        let media_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM checkout_media")
            .fetch_one(&raw)
            .await
            .unwrap();
        assert_eq!(media_rows, 0);
        let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM audit_log ORDER BY seq")
            .fetch_all(&raw)
            .await
            .unwrap();
        assert_eq!(seqs, [1, 2]);
    }

    /// A root-key rotation re-wraps the terms it read; a term added since (a `keys rotate` at the
    /// same moment) makes it refuse, changing nothing, rather than leave that term under the
    /// retired key.
    #[tokio::test]
    async fn a_root_rotation_that_missed_a_new_term_changes_nothing() {
        let (_dir, store, _raw) = testing::open_temp().await;
        store
            .keyring_init(b"term-1", b"mac", "standard", 0)
            .await
            .unwrap();
        let read = store.keyring_terms().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.keyring_add(2, b"term-2", 0).await.unwrap();
        tx.commit().await.unwrap();
        let rewrapped: Vec<(u32, Vec<u8>)> =
            read.iter().map(|(t, _)| (*t, b"new".to_vec())).collect();
        let mut tx = store.begin().await.unwrap();
        assert!(matches!(
            tx.keyring_rewrap(&rewrapped, b"new-mac").await,
            Err(StoreError::KeyringChanged)
        ));
        drop(tx);
        let terms = store.keyring_terms().await.unwrap();
        assert_eq!(
            terms,
            vec![(1, b"term-1".to_vec()), (2, b"term-2".to_vec())]
        );
        // With every term, it goes through.
        let all: Vec<(u32, Vec<u8>)> = terms.iter().map(|(t, _)| (*t, b"new".to_vec())).collect();
        let mut tx = store.begin().await.unwrap();
        tx.keyring_rewrap(&all, b"new-mac").await.unwrap();
        tx.commit().await.unwrap();
        assert!(
            store
                .keyring_terms()
                .await
                .unwrap()
                .iter()
                .all(|(_, w)| w == b"new")
        );
    }
}

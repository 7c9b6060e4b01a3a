//! mediavault-store-postgres: the PostgreSQL backend of mediavault-store, through sqlx.
//! Migrations in `migrations/postgres`. All of the vault's SQL for PostgreSQL is in this crate;
//! the traits it implements and the rows it returns are mediavault-store's, with the same table
//! and column names as the SQLite backend.
//!
//! The semantics are SQLite's, reproduced:
//! - **One writer at a time per database.** SQLite has one write lock; here every write
//!   transaction takes the same transaction-scoped advisory lock first ([`PgStore::begin_tx`]),
//!   so the services' check-then-insert sequences stay atomic against this process and any other
//!   (the CLI, a second node), and what a transaction read stays true until it commits. In
//!   process, one writer connection queues them (as SQLite's single writer connection does).
//! - **Savepoints** for one change in a batch, undone alone. PostgreSQL aborts the whole
//!   transaction at the first failed statement; rolling back to the change's savepoint is what
//!   makes it usable again, and the audit writer does exactly that for a change that failed.
//! - **Reads** see every committed write (READ COMMITTED), on a pool of their own.
//!
//! The connection URL may carry a password: it is never logged and never in an error or `Debug`
//! output ([`mediavault_store::redacted`]).

mod accounts;
mod audit;
mod checkouts;
mod clients;
mod incidents;
mod keyring;
mod posts;
mod users;

use std::any::Any;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mediavault_store::{
    Backend, Fence, LeaseRow, Result, SeqLink, Store, StoreError, TxBackend, Walker, redacted,
};
use sqlx::postgres::{PgConnectOptions, PgPool};

/// The advisory lock every write transaction holds (`pg_advisory_xact_lock`): the database's one
/// write lock, as SQLite's. Any constant works as long as every vault process uses the same one;
/// this is "mediavlt" in ASCII, unlikely to collide with another application's locks.
const WRITE_LOCK: i64 = 0x6d65_6469_6176_6c74;

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// One write transaction on the writer connection, holding the write lock.
pub struct PgTx {
    conn: sqlx::Transaction<'static, sqlx::Postgres>,
    /// Set by every statement that can end a token or what it was issued under (checkout status,
    /// client revocation, user disable, account freeze); [`mediavault_store::Tx::commit`] then
    /// bumps the token epoch.
    tokens_touched: bool,
}

impl PgTx {
    pub(crate) fn conn(&mut self) -> &mut sqlx::PgConnection {
        &mut self.conn
    }

    /// Marks this transaction as one that may end live tokens.
    pub(crate) fn touch_tokens(&mut self) {
        self.tokens_touched = true;
    }
}

#[async_trait]
impl TxBackend for PgTx {
    async fn apply_link(&mut self, link: &SeqLink, seq: i64) -> Result<()> {
        match link {
            SeqLink::SessionStepUp(hash) => {
                sqlx::query("UPDATE sessions SET step_up_seq = $1 WHERE token_hash = $2")
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

    /// As on SQLite, a kept unit's savepoint is left open (the COMMIT commits it; a RELEASE per
    /// change would be one more round trip each). Savepoints of one name nest, and
    /// `ROLLBACK TO SAVEPOINT change` undoes only back to the innermost one, so an undone unit
    /// never touches the kept units before it; it also clears the aborted state a failed
    /// statement leaves the transaction in.
    async fn end_savepoint(&mut self, keep: bool) -> Result<()> {
        if !keep {
            sqlx::query("ROLLBACK TO SAVEPOINT change")
                .execute(self.conn())
                .await?;
            sqlx::query("RELEASE SAVEPOINT change")
                .execute(self.conn())
                .await?;
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

/// The PostgreSQL store: a writer pool of one connection and a reader pool, on one database.
pub struct PgStore {
    pub(crate) writer: PgPool,
    pub(crate) reader: PgPool,
    /// For the audit verifier's walk, on a connection of its own ([`audit::walk`]).
    connect: PgConnectOptions,
}

impl std::fmt::Debug for PgStore {
    /// The pools' own `Debug` would print the connect options; only their sizes are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("writer", &self.writer.size())
            .field("reader", &self.reader.size())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database at `url` and applies the embedded migrations. Without `create`,
    /// a database that holds no vault yet is refused (`mediavault init` creates it), so a
    /// mistyped database name does not quietly become an empty vault.
    pub async fn open(url: &str, create: bool) -> Result<Store> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Corrupt(format!("database.url {}: {e}", redacted(url))))?
            // The statements name their tables unqualified; whatever `search_path` the role has,
            // they are the vault's.
            .application_name("mediavault");
        // A network database can restart under the pool: each connection is checked as it is
        // taken (sqlx's default), unlike SQLite's local file.
        let writer = mediavault_store::pool_options::<sqlx::Postgres>()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(opts.clone())
            .await
            .map_err(|e| connect_error(url, e))?;
        if !create && !has_schema(&writer).await? {
            writer.close().await;
            return Err(StoreError::Missing(format!(
                "the PostgreSQL database {}",
                redacted(url)
            )));
        }
        sqlx::migrate!("../../migrations/postgres")
            .run(&writer)
            .await?;
        let reader = mediavault_store::pool_options::<sqlx::Postgres>()
            .max_connections(8)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(opts.clone())
            .await
            .map_err(|e| connect_error(url, e))?;
        Ok(Store::new(Arc::new(Self {
            writer,
            reader,
            connect: opts,
        })))
    }
}

impl PgStore {
    /// The single entry point of every write (the trait's `begin_tx`, and the few writes outside
    /// the audit writer: the keyring's first term, a failed login's count, a session's last use):
    /// a transaction on the writer connection that takes the database's write lock (a
    /// transaction-scoped advisory lock, released by its COMMIT or ROLLBACK) before anything
    /// else, as SQLite's `BEGIN IMMEDIATE` does.
    ///
    /// A takeover ([`Backend::lease_acquire`]) takes the same lock, so it waits for a write
    /// transaction that proved its fence to end, and every later one sees the new term.
    pub(crate) async fn begin_pg(&self) -> Result<PgTx> {
        let mut conn = self.writer.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *conn)
            .await?;
        Ok(PgTx {
            conn,
            tokens_touched: false,
        })
    }
}

/// The database server's clock in Unix milliseconds, as SQL (`clock_timestamp`, not `now()`,
/// which is the transaction's start): the lease is timed by it, never by a node's own clock.
macro_rules! db_now_ms {
    () => {
        "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
    };
}

/// A connection failure, with the URL redacted (sqlx's own message never holds the password, but
/// the operator needs to know which database was meant).
fn connect_error(url: &str, e: sqlx::Error) -> StoreError {
    StoreError::Read(format!("connecting to {}: {e}", redacted(url)).into())
}

/// Whether the vault's migrations ever ran here.
async fn has_schema(pool: &PgPool) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await?,
    )
}

#[async_trait]
impl Backend for PgStore {
    /// Every write of vault state starts here ([`PgStore::begin_pg`]); with a fence, it proves
    /// the lease after taking the write lock.
    async fn begin_tx(&self, fence: Option<&Fence>) -> Result<Box<dyn TxBackend>> {
        let mut tx = self.begin_pg().await?;
        if let Some(fence) = fence {
            let held: Option<bool> = sqlx::query_scalar(concat!(
                "SELECT TRUE FROM lease WHERE id = 1 AND holder = $1 AND term = $2 AND expires_at > ",
                db_now_ms!()
            ))
            .bind(&fence.node)
            .bind(fence.term)
            .fetch_optional(&mut *tx.conn)
            .await?;
            if held.is_none() {
                // Dropping the transaction rolls it back; nothing was written.
                return Err(StoreError::Fenced);
            }
        }
        Ok(Box::new(tx))
    }

    /// Under the write lock, so no fenced write of the previous holder is half-way through.
    async fn lease_acquire(&self, node: &str, address: &str, ttl_ms: i64) -> Result<Option<i64>> {
        let mut tx = self.begin_pg().await?;
        let term: Option<i64> = sqlx::query_scalar(concat!(
            "UPDATE lease SET holder = $1, address = $2, term = term + 1, expires_at = ",
            db_now_ms!(),
            " + $3 WHERE id = 1 AND expires_at <= ",
            db_now_ms!(),
            " RETURNING term"
        ))
        .bind(node)
        .bind(address)
        .bind(ttl_ms)
        .fetch_optional(&mut *tx.conn)
        .await?;
        tx.conn.commit().await?;
        Ok(term)
    }

    /// On a reader connection (no write lock needed: only the holder's own row changes), so a
    /// renewal never queues behind the audit writer's batch on the one writer connection.
    async fn lease_renew(&self, fence: &Fence, ttl_ms: i64) -> Result<bool> {
        let r = sqlx::query(concat!(
            "UPDATE lease SET expires_at = ",
            db_now_ms!(),
            " + $1 WHERE id = 1 AND holder = $2 AND term = $3 AND expires_at > ",
            db_now_ms!()
        ))
        .bind(ttl_ms)
        .bind(&fence.node)
        .bind(fence.term)
        .execute(&self.reader)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn lease_confirm(&self, fence: &Fence, margin_ms: i64) -> Result<bool> {
        let held: Option<bool> = sqlx::query_scalar(concat!(
            "SELECT TRUE FROM lease WHERE id = 1 AND holder = $1 AND term = $2 AND expires_at > ",
            db_now_ms!(),
            " + $3"
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
            " WHERE id = 1 AND holder = $1 AND term = $2"
        ))
        .bind(&fence.node)
        .bind(fence.term)
        .execute(&self.reader)
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

    /// A binary `COPY` of the range on a connection of its own, each entry's fields borrowed from
    /// the received bytes ([`audit::walk`] says why).
    async fn audit_walk_boxed(
        &self,
        lo: i64,
        hi: i64,
        walker: Box<dyn Walker>,
    ) -> Result<Box<dyn Walker>> {
        audit::walk(&self.connect, lo, hi, walker).await
    }

    /// A consistent copy of a PostgreSQL database is the database's own business: `pg_dump`
    /// (a snapshot in one transaction) or continuous archiving with point-in-time recovery, then
    /// `mediavault audit verify` on what was restored (docs/deployment.md).
    async fn snapshot_into(&self, _path: &Path) -> Result<()> {
        Err(StoreError::Unsupported(
            "a PostgreSQL store is backed up with pg_dump (or continuous archiving and PITR), not \
             `mediavault backup`; after a restore, run `mediavault audit verify` (docs/deployment.md)"
                .into(),
        ))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        sqlx::query("SELECT 1").execute(&self.writer).await?;
        Ok(())
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// The backend's own semantics against a real server: run when `MV_TEST_DATABASE_URL` names one
/// (`.ci/run` starts a throwaway one), skipped otherwise. Each test gets a database of its own.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use mediavault_store::audit::AuditRow;
    use sqlx::Connection;

    /// A fresh database on the test server and its URL, or None without a server.
    async fn fresh_db(tag: &str) -> Option<String> {
        let server = std::env::var("MV_TEST_DATABASE_URL").ok()?;
        let (base, _) = server.rsplit_once('/')?;
        let name = format!("mv_store_{tag}_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
        // Two statements: neither may run inside the implicit transaction of a multi-statement one.
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        conn.close().await.unwrap();
        Some(format!("{base}/{name}"))
    }

    fn row(seq: i64, prev: &[u8]) -> AuditRow {
        AuditRow {
            seq,
            ts: 1_700_000_000_000 + seq,
            actor_kind: "system".into(),
            actor_id: "mediavault".into(),
            action: "test.walk".into(),
            target: format!("t{seq}"),
            outcome: "success".into(),
            source_ip: String::new(),
            request_id: "r".into(),
            http_method: (seq % 2 == 0).then(|| "GET".into()),
            http_path: None,
            http_status: (seq % 2 == 0).then_some(200),
            detail: "{\"n\":\"数\"}".into(),
            prev_hash: prev.to_vec(),
            hash: vec![u8::try_from(seq % 251).unwrap(); 32],
        }
    }

    #[tokio::test]
    async fn a_database_without_the_vault_is_refused_unless_creating() {
        let Some(url) = fresh_db("missing").await else {
            return;
        };
        let err = PgStore::open(&url, false).await.unwrap_err();
        assert!(matches!(err, StoreError::Missing(_)), "{err}");
        let store = PgStore::open(&url, true).await.unwrap();
        store.close().await;
        let again = PgStore::open(&url, false).await.unwrap();
        assert!(again.keyring_terms().await.unwrap().is_empty());
        again.close().await;
    }

    /// One writer at a time per database, also across stores (processes): the second `begin_tx`
    /// waits for the first transaction to end.
    #[tokio::test]
    async fn write_transactions_take_turns_across_processes() {
        let Some(url) = fresh_db("turns").await else {
            return;
        };
        let a = PgStore::open(&url, true).await.unwrap();
        let b = PgStore::open(&url, false).await.unwrap();
        let first = a.begin().await.unwrap();
        let waiting = tokio::spawn(async move {
            let tx = b.begin().await.unwrap();
            tx.commit().await.unwrap();
            b
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "a second writer got in");
        first.commit().await.unwrap();
        let b = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the second writer goes on once the first commits")
            .unwrap();
        a.close().await;
        b.close().await;
    }

    /// The account and its current credential in one statement: the current version's text
    /// after a rotation, and every column as `account_get` reads it.
    #[tokio::test]
    async fn an_account_is_read_with_its_current_credential() {
        use mediavault_store::types::{AccountStatus, Platform};
        let Some(url) = fresh_db("account").await else {
            return;
        };
        let store = PgStore::open(&url, true).await.unwrap();
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
        tx.account_set_status("wx", AccountStatus::Frozen, "incident 7")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let (row, sealed) = current().await;
        assert_eq!(
            (row.current_version, row.status),
            (2, AccountStatus::Frozen)
        );
        assert_eq!(sealed.as_deref(), Some(&b"v2"[..]));
        assert_eq!(
            format!("{row:?}"),
            format!("{:?}", store.account_get("wx").await.unwrap().unwrap())
        );
        store.close().await;
    }

    /// A failed statement aborts a PostgreSQL transaction; undoing its savepoint makes the
    /// transaction usable again, and what was kept before it commits. A unique violation is
    /// `Duplicate`.
    #[tokio::test]
    async fn an_undone_savepoint_recovers_from_a_failed_statement() {
        let Some(url) = fresh_db("savepoint").await else {
            return;
        };
        let store = PgStore::open(&url, true).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        tx.savepoint().await.unwrap();
        tx.keyring_add(1, b"kept", 1).await.unwrap();
        tx.end_savepoint(true).await.unwrap();
        tx.savepoint().await.unwrap();
        tx.keyring_add(2, b"undone", 1).await.unwrap();
        let err = tx.keyring_add(1, b"again", 1).await.unwrap_err();
        assert!(matches!(err, StoreError::Duplicate), "{err}");
        tx.end_savepoint(false).await.unwrap();
        tx.keyring_add(3, b"after", 1).await.unwrap();
        tx.commit().await.unwrap();
        let terms: Vec<u32> = store
            .keyring_terms()
            .await
            .unwrap()
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(terms, [1, 3]);
        store.close().await;
    }

    /// The COPY walk hands over every entry in order with its fields as stored, and stops when
    /// asked (its connection dropped, the store unharmed).
    #[tokio::test]
    async fn the_audit_walk_reads_every_field_in_order_and_stops_when_asked() {
        let Some(url) = fresh_db("walk").await else {
            return;
        };
        let store = PgStore::open(&url, true).await.unwrap();
        let mut rows = Vec::new();
        let mut prev = vec![0u8; 32];
        for seq in 1..=1000 {
            let r = row(seq, &prev);
            prev = r.hash.clone();
            rows.push(r);
        }
        let mut tx = store.begin().await.unwrap();
        tx.audit_insert(&rows).await.unwrap();
        tx.commit().await.unwrap();
        let seen = store
            .audit_walk(5, 900, Vec::new(), |seen: &mut Vec<AuditRow>, f| {
                seen.push(AuditRow {
                    seq: f.seq,
                    ts: f.ts,
                    actor_kind: f.actor_kind.into(),
                    actor_id: f.actor_id.into(),
                    action: f.action.into(),
                    target: f.target.into(),
                    outcome: f.outcome.into(),
                    source_ip: f.source_ip.into(),
                    request_id: f.request_id.into(),
                    http_method: f.http_method.map(Into::into),
                    http_path: f.http_path.map(Into::into),
                    http_status: f.http_status,
                    detail: f.detail.into(),
                    prev_hash: f.prev_hash.to_vec(),
                    hash: f.hash.to_vec(),
                });
                true
            })
            .await
            .unwrap();
        assert_eq!(seen, rows[4..900]);
        let stopped = store
            .audit_walk(1, 1000, 0u32, |n, _| {
                *n += 1;
                *n < 10
            })
            .await
            .unwrap();
        assert_eq!(stopped, 10);
        assert_eq!(store.audit_head().await.unwrap().seq, 1000);
        store.close().await;
    }
}

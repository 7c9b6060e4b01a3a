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
use mediavault_store::{Backend, Result, SeqLink, Store, StoreError, TxBackend, Walker, redacted};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

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
        let writer = PgPoolOptions::new()
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
        let reader = PgPoolOptions::new()
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
    /// The single entry point of every write: a transaction on the writer connection that takes
    /// the database's write lock (a transaction-scoped advisory lock, released by its COMMIT or
    /// ROLLBACK) before anything else, as SQLite's `BEGIN IMMEDIATE` does.
    ///
    /// This is also where a fence goes for several vault nodes on one database: a check, inside
    /// this transaction and after the lock, that this node still holds the current leader term
    /// (refusing the transaction otherwise), so a node that lost its lease can never commit.
    async fn begin_tx(&self) -> Result<Box<dyn TxBackend>> {
        let mut conn = self.writer.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *conn)
            .await?;
        Ok(Box::new(PgTx {
            conn,
            tokens_touched: false,
        }))
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

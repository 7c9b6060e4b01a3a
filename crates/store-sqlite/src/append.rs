//! The audit writer's batches without general changes (entries, and plain rows such as a
//! proxied call's draft), on a connection of their own.
//!
//! Through sqlx, each statement of a batch (`BEGIN IMMEDIATE`, the chain head, each `INSERT`,
//! `COMMIT`) is a round trip to the connection's worker thread, and under load each round trip
//! waits for a core twice over; even one hop to lock sqlx's handle took about a quarter of a
//! batch. Here the audit writer's own thread runs the whole transaction through rusqlite, with no
//! hop at all and its statements prepared once. It is a second write connection to the same
//! file, so SQLite's write lock orders it with sqlx's writer (whose transactions come from the
//! same audit writer, one batch at a time) and with other processes, as between any two
//! connections; `synchronous=FULL` and the busy timeout are set as on the pools.
//! docs/benchmark.md has the figures.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use mediavault_store::audit::{ChainHead, HeadParts};
use mediavault_store::{AppendRow, Appended, ChainFn, Fence, Result, StoreError};
use rusqlite::OptionalExtension as _;

/// One row per step: a multi-row statement needs a statement journal (SQLite's copy of every
/// page it touches, to undo the statement alone), and one prepared statement serves every size.
const INSERT_MEDIA: &str = "INSERT INTO checkout_media (checkout_id, account_id, kind, platform_id, sha256, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

const INSERT_ONE: &str = "INSERT OR FAIL INTO audit_log (seq, ts, actor_kind, actor_id, action, target, outcome, source_ip, request_id, http_method, http_path, http_status, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";

/// Maps an error of the append connection; a duplicate key (an entry's seq, a media row) is
/// classified as sqlx's would be.
fn write_error(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            StoreError::Duplicate
        }
        _ => StoreError::Write(Box::new(e)),
    }
}

/// The connection, opened on first use (only a serving vault's audit writer needs it).
#[derive(Debug)]
pub(crate) struct Appender {
    path: PathBuf,
    conn: Mutex<Option<Live>>,
}

/// The open connection and the chain head its own last commit left, if it is still known.
#[derive(Debug)]
struct Live {
    conn: rusqlite::Connection,
    head: Option<KnownHead>,
}

/// The head this connection committed, and SQLite's `data_version` as of that commit.
/// `data_version` moves only when another connection (sqlx's writer, another process such as
/// `audit prune`) commits to the file, never for this connection's own commits; read again under
/// the next batch's write lock, an equal value proves nobody else has written since, so the head
/// is still the log's head and the read of it (three subqueries, about 33 µs a batch under load)
/// is not needed.
#[derive(Debug, Clone, Copy)]
struct KnownHead {
    data_version: i64,
    head: ChainHead,
}

impl Appender {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            conn: Mutex::new(None),
        }
    }

    /// Runs one batch, blocking the calling thread until it is durable (or failed and rolled
    /// back). The audit writer calls it from its own thread.
    pub(crate) fn append(
        &self,
        fence: Option<&Fence>,
        rows: &[Option<AppendRow>],
        chain: ChainFn<'_>,
    ) -> Result<Appended> {
        // Only the audit writer's thread takes this lock; a panic while it was held leaves at
        // worst an open transaction, which is checked for below.
        let mut slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_some_and(|l| !l.conn.is_autocommit()) {
            *slot = None;
        }
        let live = match &mut *slot {
            Some(live) => live,
            None => slot.insert(Live {
                conn: open(&self.path)?,
                head: None,
            }),
        };
        // Known again only once this batch commits.
        let known = live.head.take();
        let result = batch(&live.conn, fence, rows, chain, known);
        match &result {
            Ok((_, head)) => live.head = *head,
            Err(_) if !live.conn.is_autocommit() => {
                // A statement that failed inside the transaction leaves it open: undo all of
                // it. If even that fails (a full disk can do that), the connection is closed,
                // which rolls back, and the next batch opens a fresh one.
                let _ = live.conn.execute_batch("ROLLBACK");
                if !live.conn.is_autocommit() {
                    *slot = None;
                }
            }
            Err(_) => {}
        }
        result.map(|(appended, _)| appended)
    }
}

fn data_version(conn: &rusqlite::Connection) -> Result<i64> {
    conn.prepare_cached("PRAGMA data_version")
        .and_then(|mut q| q.query_row([], |r| r.get(0)))
        .map_err(write_error)
}

/// The log's head under the write lock: the one this connection left, if nobody has committed
/// since (`version`, read under this lock, is still the one of that commit; see [`KnownHead`]),
/// else read from the file.
fn head(conn: &rusqlite::Connection, known: Option<KnownHead>, version: i64) -> Result<ChainHead> {
    if let Some(known) = known
        && known.data_version == version
    {
        return Ok(known.head);
    }
    let parts: HeadParts = conn
        .prepare_cached(head_select!())
        .and_then(|mut q| {
            q.query_row([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
        })
        .map_err(write_error)?;
    ChainHead::from_parts(parts)
}

fn open(path: &std::path::Path) -> Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(write_error)?;
    conn.busy_timeout(crate::BUSY_TIMEOUT)
        .map_err(write_error)?;
    // As the pools' connections: the journal mode is the file's (WAL since `open`), durability
    // and foreign keys are each connection's own. An append touches only the right edge of the
    // log and its indexes, so a page cache of 1 MiB (half SQLite's default) holds what it needs.
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -1024;",
    )
    .map_err(write_error)?;
    Ok(conn)
}

/// Inserts one plain row of a batch. A constraint's refusal undoes that statement alone (SQLite's
/// default `ABORT`) and leaves the transaction open, so it is the row's answer; anything else
/// (I/O, a full disk) fails the batch.
fn insert_row(conn: &rusqlite::Connection, row: &AppendRow) -> Result<Option<StoreError>> {
    let done = match row {
        AppendRow::CheckoutMedia(m) => conn.prepare_cached(INSERT_MEDIA).and_then(|mut q| {
            q.execute(rusqlite::params![
                m.checkout_id,
                m.account_id,
                m.kind.as_str(),
                m.platform_id,
                m.sha256,
                m.created_at,
            ])
        }),
    };
    match done {
        Ok(_) => Ok(None),
        Err(e @ rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Ok(Some(write_error(e)))
        }
        Err(e) => Err(write_error(e)),
    }
}

/// One batch's transaction; with what it appended, the head it leaves (None if that cannot be
/// known: a chained entry whose hash is not 32 bytes is not this code's to judge).
fn batch(
    conn: &rusqlite::Connection,
    fence: Option<&Fence>,
    rows: &[Option<AppendRow>],
    chain: ChainFn<'_>,
    known: Option<KnownHead>,
) -> Result<(Appended, Option<KnownHead>)> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(write_error)?;
    if let Some(fence) = fence {
        let held = conn
            .prepare_cached(fence_held!())
            .and_then(|mut q| {
                q.query_row((&fence.node, fence.term), |_| Ok(()))
                    .optional()
            })
            .map_err(write_error)?;
        if held.is_none() {
            return Err(StoreError::Fenced);
        }
    }
    // Under the write lock nobody else commits until this batch does, and this connection's own
    // commit leaves the value as it is: so it is also the version right after that commit.
    let version = data_version(conn)?;
    let start = head(conn, known, version)?;
    let mut refused = Vec::with_capacity(rows.len());
    for row in rows {
        refused.push(match row {
            Some(row) => insert_row(conn, row)?,
            None => None,
        });
    }
    let standing: Vec<bool> = refused.iter().map(Option::is_none).collect();
    let audit = chain(start, &standing);
    {
        let mut insert = conn.prepare_cached(INSERT_ONE).map_err(write_error)?;
        for r in &audit {
            insert
                .execute(rusqlite::params![
                    r.seq,
                    r.ts,
                    r.actor_kind,
                    r.actor_id,
                    r.action,
                    r.target,
                    r.outcome,
                    r.source_ip,
                    r.request_id,
                    r.http_method,
                    r.http_path,
                    r.http_status,
                    r.detail,
                    r.prev_hash,
                    r.hash,
                ])
                .map_err(write_error)?;
        }
    }
    conn.execute_batch("COMMIT").map_err(write_error)?;
    let end = match audit.last() {
        Some(r) => <[u8; 32]>::try_from(r.hash.as_slice())
            .ok()
            .map(|hash| ChainHead {
                seq: r.seq,
                hash,
                ts: r.ts,
            }),
        None => Some(start),
    };
    let known = end.map(|head| KnownHead {
        data_version: version,
        head,
    });
    Ok((
        Appended {
            rows: audit,
            refused,
        },
        known,
    ))
}

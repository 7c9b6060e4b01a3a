//! Point reads on the hot path through rusqlite, on the calling task's own thread.
//!
//! Through sqlx's pool, one read is a hop to the connection's worker thread and back, and the
//! connection's return to the pool is a task of its own: in a profile of proxied calls
//! (docs/benchmark.md) the one account-and-credential read of each call cost more CPU across the
//! three threads than the platform call itself. The same read on a connection held here is a few
//! microseconds of SQLite on the page cache, so it runs where it is asked, and blocks that worker
//! for no longer than the hop would have cost it. Only reads of one row by a unique key (a primary
//! key or a UNIQUE column) come here; anything that scans stays on the pool. A TOTP checkout makes
//! four of them (its tool's key, the account, the operator, the checkout's row after the change),
//! which were four of its seven hops.

use std::sync::{Mutex, PoisonError};

use mediavault_store::Result;

use crate::{DbFile, read_error};

/// Read-only connections, opened on first use and kept: one per reader at a time, so as many as
/// the runtime's workers that read at once (a connection is not shared between threads while in
/// use; between uses it sits here).
#[derive(Debug, Default)]
pub(crate) struct PointReaders {
    idle: Mutex<Vec<rusqlite::Connection>>,
}

/// More idle connections than this are closed rather than kept (a burst of readers on a busy
/// runtime); the runtime has as many workers as cores, so this is rarely reached.
const KEEP: usize = 8;

impl PointReaders {
    /// Runs `read` on an idle connection (or a new one). A connection whose read failed is closed,
    /// not kept, so a connection left in an unknown state is never reused.
    pub(crate) fn read<T>(
        &self,
        file: &DbFile,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let conn = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match conn {
            Some(c) => c,
            None => file.open_read_only()?,
        };
        let out = read(&conn).map_err(read_error)?;
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < KEEP {
            idle.push(conn);
        }
        Ok(out)
    }

    /// Closes the idle connections, as the store's `close` closes its pools.
    pub(crate) fn close(&self) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// The error of a point read's text column that holds no known value of its type (`what`): the
/// store classifies it as any other failed read.
pub(crate) fn unknown(column: usize, what: &str, value: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        format!("unknown {what} `{value}`").into(),
    )
}

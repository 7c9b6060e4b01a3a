//! The audit log and its prune anchors, as rows. The chain itself is computed in `crate::audit`;
//! this file only stores and fetches.

use crate::Result;
use async_trait::async_trait;

/// One stored entry, exactly as hashed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRow {
    pub seq: i64,
    pub ts: i64,
    pub actor_kind: String,
    pub actor_id: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub source_ip: String,
    pub request_id: String,
    pub http_method: Option<String>,
    pub http_path: Option<String>,
    pub http_status: Option<i64>,
    pub detail: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// An entry's stored fields, borrowed: from an [`AuditRow`], or straight from the database row
/// while verifying, so a walk of the whole log allocates nothing per entry.
#[derive(Debug, Clone, Copy)]
pub struct AuditFields<'a> {
    pub seq: i64,
    pub ts: i64,
    pub actor_kind: &'a str,
    pub actor_id: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub outcome: &'a str,
    pub source_ip: &'a str,
    pub request_id: &'a str,
    pub http_method: Option<&'a str>,
    pub http_path: Option<&'a str>,
    pub http_status: Option<i64>,
    pub detail: &'a str,
    pub prev_hash: &'a [u8],
    pub hash: &'a [u8],
}

impl AuditRow {
    pub fn fields(&self) -> AuditFields<'_> {
        AuditFields {
            seq: self.seq,
            ts: self.ts,
            actor_kind: &self.actor_kind,
            actor_id: &self.actor_id,
            action: &self.action,
            target: &self.target,
            outcome: &self.outcome,
            source_ip: &self.source_ip,
            request_id: &self.request_id,
            http_method: self.http_method.as_deref(),
            http_path: self.http_path.as_deref(),
            http_status: self.http_status,
            detail: &self.detail,
            prev_hash: &self.prev_hash,
            hash: &self.hash,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditAnchor {
    pub first_seq: i64,
    pub prev_hash: Vec<u8>,
    pub pruned_from_seq: i64,
    pub pruned_before: i64,
    pub pruned_at: i64,
    pub mac: Vec<u8>,
}

/// Filters of `GET /audit`; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub target: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub after_seq: i64,
    /// Only entries before this one (paging newest first).
    pub before_seq: Option<i64>,
    /// Newest first instead of in chain order.
    pub newest_first: bool,
    pub limit: i64,
}

impl AuditFilter {
    /// Appends to `q` (a `SELECT … FROM audit_log ` of any backend) the conditions of this filter
    /// that are set, the order and the limit: only the set ones, so the database walks the index
    /// of the filter that is there, in seq order, and stops after a page, even among tens of
    /// millions of entries. A time range becomes a range of seqs, found once through the time
    /// index: the writer never stamps an entry earlier than the one before it, so the first entry
    /// at or after a time (in time, then seq order) bounds the seqs of every later one. The times
    /// are compared too, on `ts_unindexed`: an expression of `ts` that the backend's planner will
    /// not take as a reason to walk the time index instead (SQLite: `+ts`).
    pub fn push_sql<DB>(&self, q: &mut sqlx::QueryBuilder<DB>, ts_unindexed: &str)
    where
        DB: sqlx::Database,
        for<'t> i64: sqlx::Encode<'t, DB>,
        i64: sqlx::Type<DB>,
        for<'t> String: sqlx::Encode<'t, DB>,
        String: sqlx::Type<DB>,
    {
        // One lower and one upper bound on seq, each the tighter of the page's and the time's, so
        // that the planner seeks straight to it (given two, SQLite walks from either).
        let first_at = |q: &mut sqlx::QueryBuilder<DB>, ms: i64| {
            // The first seq at or after a time; past the end (no entry) when there is none.
            q.push("COALESCE((SELECT seq FROM audit_log WHERE ts >= ")
                .push_bind(ms)
                .push(" ORDER BY ts, seq LIMIT 1), ")
                .push_bind(i64::MAX)
                .push(")");
        };
        q.push("WHERE seq > ");
        match self.since_ms {
            None => {
                q.push_bind(self.after_seq);
            }
            Some(since) => {
                // after_seq, or the seq before the first one at `since`, whichever is later.
                q.push("(CASE WHEN ");
                first_at(q, since);
                q.push(" - 1 > ").push_bind(self.after_seq).push(" THEN ");
                first_at(q, since);
                q.push(" - 1 ELSE ").push_bind(self.after_seq).push(" END)");
            }
        }
        match (self.until_ms, self.before_seq) {
            (None, None) => {}
            (None, Some(before)) => {
                q.push(" AND seq < ").push_bind(before);
            }
            (Some(until), before) => {
                // The first seq at `until`, or before_seq, whichever is earlier.
                let before = before.unwrap_or(i64::MAX);
                q.push(" AND seq < (CASE WHEN ");
                first_at(q, until);
                q.push(" < ").push_bind(before).push(" THEN ");
                first_at(q, until);
                q.push(" ELSE ").push_bind(before).push(" END)");
            }
        }
        for (op, ms) in [(" >= ", self.since_ms), (" < ", self.until_ms)] {
            if let Some(ms) = ms {
                q.push(" AND ").push(ts_unindexed).push(op).push_bind(ms);
            }
        }
        for (column, value) in [
            ("actor_id", &self.actor),
            ("target", &self.target),
            ("action", &self.action),
            ("outcome", &self.outcome),
        ] {
            if let Some(v) = value {
                q.push(" AND ")
                    .push(column)
                    .push(" = ")
                    .push_bind(v.clone());
            }
        }
        q.push(if self.newest_first {
            " ORDER BY seq DESC LIMIT "
        } else {
            " ORDER BY seq LIMIT "
        })
        .push_bind(self.limit);
    }
}

/// Where the next entry attaches: the last stored entry, else the latest anchor, else genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: [u8; 32],
    /// The last entry's time (unix ms), 0 when there is none: the writer never stamps an entry
    /// earlier, so time order is chain order and a time range is a range of seqs.
    pub ts: i64,
}

/// What a backend reads for [`ChainHead`] in one statement: the last entry's seq and hash, the
/// latest anchor's first seq and previous hash, and the last entry's time (each None when there is
/// none).
pub type HeadParts = (
    Option<i64>,
    Option<Vec<u8>>,
    Option<i64>,
    Option<Vec<u8>>,
    Option<i64>,
);

impl ChainHead {
    /// The head from what a backend read ([`HeadParts`]): the last entry, else the anchor of a
    /// log pruned empty, else genesis. The same rule for every backend, so it lives here.
    pub fn from_parts((seq, hash, first_seq, prev_hash, ts): HeadParts) -> Result<Self> {
        let to_hash = |v: &[u8], what: &str| {
            <[u8; 32]>::try_from(v)
                .map_err(|_| crate::StoreError::Corrupt(format!("audit {what} is not 32 bytes")))
        };
        Ok(match (seq, hash, first_seq, prev_hash) {
            (Some(seq), Some(hash), _, _) => ChainHead {
                seq,
                hash: to_hash(&hash, "hash")?,
                ts: ts.unwrap_or(0),
            },
            (None, _, Some(first_seq), Some(prev)) => ChainHead {
                seq: first_seq - 1,
                hash: to_hash(&prev, "anchor")?,
                ts: 0,
            },
            (None, _, None, _) => ChainHead {
                seq: 0,
                hash: [0u8; 32],
                ts: 0,
            },
            _ => {
                return Err(crate::StoreError::Corrupt(
                    "audit head or anchor lacks its hash".into(),
                ));
            }
        })
    }
}

#[async_trait]
pub trait AuditReads: Send + Sync {
    async fn audit_head(&self) -> Result<ChainHead>;
    /// The latest prune anchor, if the log was ever pruned.
    async fn audit_anchor(&self) -> Result<Option<AuditAnchor>>;
    /// Up to `limit` entries with `seq > after`, in seq order: the unit in which verify walks.
    async fn audit_chunk(&self, after: i64, limit: i64) -> Result<Vec<AuditRow>>;
    /// The lowest and highest seq stored (None when the log is empty). Two subqueries: SQLite
    /// reads a lone MIN or MAX off the end of the index, but scans the table for both at once.
    async fn audit_seq_bounds(&self) -> Result<Option<(i64, i64)>>;
    async fn audit_entry(&self, seq: i64) -> Result<Option<AuditRow>>;
    async fn audit_query(&self, f: &AuditFilter) -> Result<Vec<AuditRow>>;
    /// Up to `limit` entries after `after_seq` with `ts >= since_ms` that did not succeed or
    /// whose action is one of `actions`, in seq order: what the early-warning rules count. The
    /// filter runs in SQLite, so a busy window of successful requests is never read into memory.
    async fn audit_alert_candidates(
        &self,
        since_ms: i64,
        after_seq: i64,
        limit: i64,
        actions: &[&str],
    ) -> Result<Vec<AuditRow>>;
    /// Entries and failures (any outcome but success) per bucket of `bucket_ms` from `since_ms`,
    /// counting only entries after `after_seq` (0: all), with the last seq each bucket counted:
    /// (bucket index, entries, failures, last seq). With `after_seq` the seqs find the rows, so
    /// counting what is new since an earlier count costs what is new.
    async fn audit_activity(
        &self,
        since_ms: i64,
        bucket_ms: i64,
        after_seq: i64,
    ) -> Result<Vec<(i64, i64, i64, i64)>>;
    /// The first seq whose entry is at or after `ts_ms` (None if every entry is older).
    async fn audit_first_seq_at(&self, ts_ms: i64) -> Result<Option<i64>>;
}

#[async_trait]
pub trait AuditWrites: Send {
    /// Where the next entry attaches. Read inside the batch's `BEGIN IMMEDIATE` transaction, so
    /// another process (the CLI) appending in between cannot fork the chain.
    async fn audit_head(&mut self) -> Result<ChainHead>;
    /// Appends rows with one multi-row `INSERT` per chunk of [`INSERT_CHUNK`]: every sqlx
    /// statement costs a worker-thread hop, so one statement per row would dominate a batch.
    async fn audit_insert(&mut self, rows: &[AuditRow]) -> Result<()>;
    /// Deletes every entry before `anchor.first_seq` and records the anchor, in one transaction.
    async fn audit_prune(&mut self, anchor: &AuditAnchor) -> Result<u64>;
}

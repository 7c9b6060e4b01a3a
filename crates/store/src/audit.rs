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

/// Where the next entry attaches: the last stored entry, else the latest anchor, else genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: [u8; 32],
}

/// What a backend reads for [`ChainHead`] in one statement: the last entry's seq and hash, and
/// the latest anchor's first seq and previous hash (each None when there is none).
pub type HeadParts = (Option<i64>, Option<Vec<u8>>, Option<i64>, Option<Vec<u8>>);

impl ChainHead {
    /// The head from what a backend read ([`HeadParts`]): the last entry, else the anchor of a
    /// log pruned empty, else genesis. The same rule for every backend, so it lives here.
    pub fn from_parts((seq, hash, first_seq, prev_hash): HeadParts) -> Result<Self> {
        let to_hash = |v: &[u8], what: &str| {
            <[u8; 32]>::try_from(v)
                .map_err(|_| crate::StoreError::Corrupt(format!("audit {what} is not 32 bytes")))
        };
        Ok(match (seq, hash, first_seq, prev_hash) {
            (Some(seq), Some(hash), _, _) => ChainHead {
                seq,
                hash: to_hash(&hash, "hash")?,
            },
            (None, _, Some(first_seq), Some(prev)) => ChainHead {
                seq: first_seq - 1,
                hash: to_hash(&prev, "anchor")?,
            },
            (None, _, None, _) => ChainHead {
                seq: 0,
                hash: [0u8; 32],
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
    /// Entries and failures (any outcome but success) per bucket of `bucket_ms` from `since_ms`.
    async fn audit_activity(&self, since_ms: i64, bucket_ms: i64) -> Result<Vec<(i64, i64, i64)>>;
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

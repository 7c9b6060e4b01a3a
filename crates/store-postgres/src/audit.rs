//! The audit log and its prune anchors, as rows. The chain itself is computed in `crate::audit`;
//! this file only stores and fetches.

use async_trait::async_trait;
use mediavault_store::audit::*;
use mediavault_store::{Result, Walker};

use crate::{PgStore, PgTx};

/// Rows per `INSERT` statement: 15 parameters each, far below PostgreSQL's 65535, and few
/// distinct statement shapes for sqlx's statement cache.
pub const INSERT_CHUNK: usize = 100;

/// `SELECT <every column of an entry, in AuditRow's order> FROM audit_log ` followed by the rest of
/// a statement (string literals, for `concat!`): one column list for every read of whole entries.
macro_rules! select_entries {
    ($($rest:literal),+) => {
        concat!(
            "SELECT seq, ts, actor_kind, actor_id, action, target, outcome, source_ip, request_id, \
             http_method, http_path, http_status, detail, prev_hash, hash FROM audit_log ",
            $($rest),+
        )
    };
}

/// One statement (the writer reads the head in every batch): the last entry, and the latest
/// anchor for a log pruned empty; [`ChainHead::from_parts`] decides.
async fn head_in<'c, E>(conn: E) -> Result<ChainHead>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    let parts: HeadParts = sqlx::query_as(
        "SELECT (SELECT seq FROM audit_log ORDER BY seq DESC LIMIT 1), \
                (SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1), \
                (SELECT first_seq FROM audit_anchor ORDER BY first_seq DESC LIMIT 1), \
                (SELECT prev_hash FROM audit_anchor ORDER BY first_seq DESC LIMIT 1), \
                (SELECT ts FROM audit_log ORDER BY seq DESC LIMIT 1)",
    )
    .fetch_one(conn)
    .await?;
    ChainHead::from_parts(parts)
}

/// The walk behind [`mediavault_store::Backend::audit_walk_boxed`]: `COPY (SELECT ...) TO STDOUT`
/// in PostgreSQL's binary format, on a connection of its own, parsed here with every field
/// borrowed from the received bytes. Through sqlx's row stream each row is a `PgRow` with its own
/// offsets vector and a type check per value; the COPY stream hands over one buffer per row and
/// nothing else, which is what lets a walk keep up with the hashing. A walk stopped early drops
/// its connection (a COPY cannot be left half-read on a pooled one).
pub(crate) async fn walk(
    connect: &sqlx::postgres::PgConnectOptions,
    lo: i64,
    hi: i64,
    mut walker: Box<dyn Walker>,
) -> Result<Box<dyn Walker>> {
    use futures_util::StreamExt;
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect_with(connect).await?;
    // COPY takes no bind parameters; both bounds are integers, formatted here.
    let statement = format!(
        concat!(
            "COPY (",
            select_entries!("WHERE seq >= {} AND seq <= {} ORDER BY seq"),
            ") TO STDOUT (FORMAT binary)"
        ),
        lo, hi
    );
    let mut stream = conn.copy_out_raw(&statement).await?;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut header_seen = false;
    let mut stopped = false;
    'read: while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
        let mut at = 0;
        if !header_seen {
            match copy::header_len(&buf) {
                Some(n) => {
                    at = n;
                    header_seen = true;
                }
                None if buf.len() < copy::MIN_HEADER => continue,
                None => return Err(copy::bad("the COPY header")),
            }
        }
        loop {
            match copy::entry(&buf[at..])? {
                copy::Next::Entry(fields, used) => {
                    at += used;
                    if !walker.visit(fields) {
                        stopped = true;
                        break 'read;
                    }
                }
                copy::Next::End => break 'read,
                copy::Next::Partial => break,
            }
        }
        buf.drain(..at);
    }
    drop(stream);
    if stopped {
        // The rest of the COPY is never read: the connection goes, not back to a pool.
        drop(conn);
    } else {
        conn.close().await?;
    }
    Ok(walker)
}

/// PostgreSQL's binary COPY format, as much of it as the walk reads: a header, then per tuple a
/// 16-bit field count and per field a 32-bit length (-1 for NULL) and that many bytes; a count
/// of -1 ends the data. BIGINT is 8 bytes big-endian; TEXT is UTF-8 (checked, as SQLite's walk
/// checks it); BYTEA is the bytes.
mod copy {
    use mediavault_store::StoreError;
    use mediavault_store::audit::AuditFields;

    /// The signature, flags and header-extension length; the extension itself follows.
    const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
    pub const MIN_HEADER: usize = SIGNATURE.len() + 8;
    const FIELDS: i16 = 15;

    pub fn bad(what: &str) -> StoreError {
        StoreError::Corrupt(format!("audit walk: {what} is not what PostgreSQL sends"))
    }

    /// The header's length, once all of it is in `buf`.
    pub fn header_len(buf: &[u8]) -> Option<usize> {
        if buf.len() < MIN_HEADER || !buf.starts_with(SIGNATURE) {
            return None;
        }
        let ext = u32::from_be_bytes(buf[SIGNATURE.len() + 4..MIN_HEADER].try_into().ok()?);
        let len = MIN_HEADER.checked_add(usize::try_from(ext).ok()?)?;
        (buf.len() >= len).then_some(len)
    }

    // Returned by value once per row and matched at once: boxing the entry would be an
    // allocation per row, which is what this walk exists to avoid.
    #[allow(clippy::large_enum_variant)]
    pub enum Next<'a> {
        /// An entry and the bytes it took.
        Entry(AuditFields<'a>, usize),
        /// The end-of-data marker.
        End,
        /// The next tuple is not wholly in the buffer yet.
        Partial,
    }

    struct Cursor<'a> {
        buf: &'a [u8],
        at: usize,
    }

    impl<'a> Cursor<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            let end = self.at.checked_add(n)?;
            let out = self.buf.get(self.at..end)?;
            self.at = end;
            Some(out)
        }
        /// One field: Some(None) for NULL, None when the buffer ends first.
        fn field(&mut self) -> Option<Option<&'a [u8]>> {
            let len = i32::from_be_bytes(self.take(4)?.try_into().ok()?);
            if len < 0 {
                return Some(None);
            }
            self.take(usize::try_from(len).ok()?).map(Some)
        }
    }

    /// Parses the tuple at the start of `buf`.
    pub fn entry(buf: &[u8]) -> Result<Next<'_>, StoreError> {
        let mut c = Cursor { buf, at: 0 };
        let Some(count) = c.take(2) else {
            return Ok(Next::Partial);
        };
        let count = i16::from_be_bytes([count[0], count[1]]);
        if count == -1 {
            return Ok(Next::End);
        }
        if count != FIELDS {
            return Err(bad("a tuple's field count"));
        }
        let mut raw: [Option<&[u8]>; FIELDS as usize] = [None; FIELDS as usize];
        for slot in raw.iter_mut() {
            match c.field() {
                Some(v) => *slot = v,
                None => return Ok(Next::Partial),
            }
        }
        fn int(v: Option<&[u8]>) -> Result<i64, StoreError> {
            v.and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(i64::from_be_bytes)
                .ok_or_else(|| bad("a BIGINT"))
        }
        fn opt_int(v: Option<&[u8]>) -> Result<Option<i64>, StoreError> {
            v.map(|b| int(Some(b))).transpose()
        }
        fn opt_text(v: Option<&[u8]>) -> Result<Option<&str>, StoreError> {
            v.map(|b| std::str::from_utf8(b).map_err(|_| bad("a TEXT value")))
                .transpose()
        }
        fn text(v: Option<&[u8]>) -> Result<&str, StoreError> {
            opt_text(v)?.ok_or_else(|| bad("a NULL in a NOT NULL column"))
        }
        fn blob(v: Option<&[u8]>) -> Result<&[u8], StoreError> {
            v.ok_or_else(|| bad("a NULL in a NOT NULL column"))
        }
        let fields = AuditFields {
            seq: int(raw[0])?,
            ts: int(raw[1])?,
            actor_kind: text(raw[2])?,
            actor_id: text(raw[3])?,
            action: text(raw[4])?,
            target: text(raw[5])?,
            outcome: text(raw[6])?,
            source_ip: text(raw[7])?,
            request_id: text(raw[8])?,
            http_method: opt_text(raw[9])?,
            http_path: opt_text(raw[10])?,
            http_status: opt_int(raw[11])?,
            detail: text(raw[12])?,
            prev_hash: blob(raw[13])?,
            hash: blob(raw[14])?,
        };
        Ok(Next::Entry(fields, c.at))
    }
}

#[async_trait]
impl AuditReads for PgStore {
    async fn audit_head(&self) -> Result<ChainHead> {
        head_in(&self.reader).await
    }
    async fn audit_anchor(&self) -> Result<Option<AuditAnchor>> {
        Ok(sqlx::query_as(
            "SELECT first_seq, prev_hash, pruned_from_seq, pruned_before, pruned_at, mac FROM audit_anchor ORDER BY first_seq DESC LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await?)
    }
    async fn audit_chunk(&self, after: i64, limit: i64) -> Result<Vec<AuditRow>> {
        Ok(
            sqlx::query_as(select_entries!("WHERE seq > $1 ORDER BY seq LIMIT $2"))
                .bind(after)
                .bind(limit)
                .fetch_all(&self.reader)
                .await?,
        )
    }
    async fn audit_seq_bounds(&self) -> Result<Option<(i64, i64)>> {
        let (lo, hi): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT MIN(seq) FROM audit_log), (SELECT MAX(seq) FROM audit_log)",
        )
        .fetch_one(&self.reader)
        .await?;
        Ok(lo.zip(hi))
    }
    async fn audit_entry(&self, seq: i64) -> Result<Option<AuditRow>> {
        Ok(sqlx::query_as(select_entries!("WHERE seq = $1"))
            .bind(seq)
            .fetch_optional(&self.reader)
            .await?)
    }
    async fn audit_query(&self, f: &AuditFilter) -> Result<Vec<AuditRow>> {
        // Only the filters that are set, so the planner walks that filter's index (`ts + 0`: the
        // times must not send it down the time index instead).
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(select_entries!(""));
        f.push_sql(&mut q, "(ts + 0)");
        // Not a named prepared statement: PostgreSQL would switch it to a generic plan after five
        // runs, and for an account with few recent entries that plan walks the primary key back
        // and filters (about 30 ms at 1 M entries, growing with the log) where the plan for the
        // value walks that account's index. An unnamed statement is planned with its values.
        Ok(q.build_query_as()
            .persistent(false)
            .fetch_all(&self.reader)
            .await?)
    }
    async fn audit_alert_candidates(
        &self,
        since_ms: i64,
        after_seq: i64,
        limit: i64,
        actions: &[&str],
    ) -> Result<Vec<AuditRow>> {
        // The window's first seq through the time index (no entry is stamped before its
        // predecessor), the page after `after_seq` within it: never a walk of the whole log, which
        // the early warning would otherwise read on every round.
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(select_entries!(
            "WHERE seq >= COALESCE((SELECT seq FROM audit_log WHERE ts >= "
        ));
        q.push_bind(since_ms)
            .push(" ORDER BY ts, seq LIMIT 1), ")
            .push_bind(i64::MAX)
            .push(") AND (ts + 0) >= ")
            .push_bind(since_ms)
            .push(" AND (seq + 0) > ")
            .push_bind(after_seq)
            .push(" AND (outcome <> 'success' OR action IN (");
        let mut list = q.separated(", ");
        for a in actions {
            list.push_bind(*a);
        }
        list.push_unseparated(")) ORDER BY seq LIMIT ");
        q.push_bind(limit);
        Ok(q.build_query_as().fetch_all(&self.reader).await?)
    }
    async fn audit_activity(
        &self,
        since_ms: i64,
        bucket_ms: i64,
        after_seq: i64,
    ) -> Result<Vec<(i64, i64, i64, i64)>> {
        // From scratch the time index finds the rows; after a seq, the seqs do (each statement
        // keeps the planner off the other index).
        const BY_TIME: &str = "SELECT (ts - $1) / $2 AS bucket, COUNT(*), \
             SUM(CASE WHEN outcome = 'success' THEN 0 ELSE 1 END), MAX(seq) \
             FROM audit_log WHERE ts >= $1 AND (seq + 0) > $3 GROUP BY bucket ORDER BY bucket";
        const BY_SEQ: &str = "SELECT ((ts + 0) - $1) / $2 AS bucket, COUNT(*), \
             SUM(CASE WHEN outcome = 'success' THEN 0 ELSE 1 END), MAX(seq) \
             FROM audit_log WHERE seq > $3 AND (ts + 0) >= $1 GROUP BY bucket ORDER BY bucket";
        Ok(sqlx::query_as(if after_seq > 0 { BY_SEQ } else { BY_TIME })
            .bind(since_ms)
            .bind(bucket_ms.max(1))
            .bind(after_seq)
            .fetch_all(&self.reader)
            .await?)
    }
    async fn audit_first_seq_at(&self, ts_ms: i64) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT MIN(seq) FROM audit_log WHERE ts >= $1")
                .bind(ts_ms)
                .fetch_one(&self.reader)
                .await?,
        )
    }
}

#[async_trait]
impl AuditWrites for PgTx {
    async fn audit_head(&mut self) -> Result<ChainHead> {
        head_in(self.conn()).await
    }
    async fn audit_insert(&mut self, rows: &[AuditRow]) -> Result<()> {
        for chunk in rows.chunks(INSERT_CHUNK) {
            let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                "INSERT INTO audit_log (seq, ts, actor_kind, actor_id, action, target, outcome, source_ip, request_id, http_method, http_path, http_status, detail, prev_hash, hash) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.seq)
                    .push_bind(r.ts)
                    .push_bind(&r.actor_kind)
                    .push_bind(&r.actor_id)
                    .push_bind(&r.action)
                    .push_bind(&r.target)
                    .push_bind(&r.outcome)
                    .push_bind(&r.source_ip)
                    .push_bind(&r.request_id)
                    .push_bind(&r.http_method)
                    .push_bind(&r.http_path)
                    .push_bind(r.http_status)
                    .push_bind(&r.detail)
                    .push_bind(&r.prev_hash)
                    .push_bind(&r.hash);
            });
            q.build().execute(self.conn()).await?;
        }
        Ok(())
    }
    async fn audit_prune(&mut self, anchor: &AuditAnchor) -> Result<u64> {
        let n = sqlx::query("DELETE FROM audit_log WHERE seq < $1")
            .bind(anchor.first_seq)
            .execute(self.conn())
            .await?
            .rows_affected();
        sqlx::query(
            "INSERT INTO audit_anchor (first_seq, prev_hash, pruned_from_seq, pruned_before, pruned_at, mac) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(anchor.first_seq)
        .bind(&anchor.prev_hash)
        .bind(anchor.pruned_from_seq)
        .bind(anchor.pruned_before)
        .bind(anchor.pruned_at)
        .bind(&anchor.mac)
        .execute(self.conn())
        .await?;
        Ok(n)
    }
}

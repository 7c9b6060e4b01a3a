//! The audit log and its prune anchors, as rows. The chain itself is computed in `crate::audit`;
//! this file only stores and fetches.

use async_trait::async_trait;
use mediavault_store::audit::*;
use mediavault_store::{Result, Walker};

use crate::{SqliteStore, SqliteTx};

/// Rows per `INSERT` statement: 15 parameters each, far below SQLite's 32766, and few distinct
/// statement shapes for sqlx's statement cache.
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
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    let parts: HeadParts = sqlx::query_as(head_select!()).fetch_one(conn).await?;
    ChainHead::from_parts(parts)
}

/// The walk behind [`mediavault_store::Backend::audit_walk_boxed`], on the verifier's own
/// read-only connection.
pub(crate) fn walk(
    conn: &rusqlite::Connection,
    lo: i64,
    hi: i64,
    mut walker: Box<dyn Walker>,
) -> rusqlite::Result<Box<dyn Walker>> {
    let mut stmt = conn.prepare(select_entries!("WHERE seq >= ? AND seq <= ? ORDER BY seq"))?;
    let mut rows = stmt.query((lo, hi))?;
    while let Some(r) = rows.next()? {
        let text = |i| r.get_ref(i).and_then(|v| Ok(v.as_str()?));
        let text_or_null = |i| r.get_ref(i).and_then(|v| Ok(v.as_str_or_null()?));
        let int = |i| r.get_ref(i).and_then(|v| Ok(v.as_i64()?));
        let blob = |i| r.get_ref(i).and_then(|v| Ok(v.as_blob()?));
        let row = AuditFields {
            seq: int(0)?,
            ts: int(1)?,
            actor_kind: text(2)?,
            actor_id: text(3)?,
            action: text(4)?,
            target: text(5)?,
            outcome: text(6)?,
            source_ip: text(7)?,
            request_id: text(8)?,
            http_method: text_or_null(9)?,
            http_path: text_or_null(10)?,
            http_status: r.get_ref(11).and_then(|v| Ok(v.as_i64_or_null()?))?,
            detail: text(12)?,
            prev_hash: blob(13)?,
            hash: blob(14)?,
        };
        if !walker.visit(row) {
            break;
        }
    }
    Ok(walker)
}

#[async_trait]
impl AuditReads for SqliteStore {
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
            sqlx::query_as(select_entries!("WHERE seq > ? ORDER BY seq LIMIT ?"))
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
        Ok(sqlx::query_as(select_entries!("WHERE seq = ?"))
            .bind(seq)
            .fetch_optional(&self.reader)
            .await?)
    }
    async fn audit_query(&self, f: &AuditFilter) -> Result<Vec<AuditRow>> {
        // Only the filters that are set, so the planner walks that filter's index (unary plus:
        // the times must not send it down audit_by_ts instead).
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(select_entries!(""));
        f.push_sql(&mut q, "+ts");
        Ok(q.build_query_as().fetch_all(&self.reader).await?)
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
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(select_entries!(
            "WHERE seq >= COALESCE((SELECT seq FROM audit_log WHERE ts >= "
        ));
        q.push_bind(since_ms)
            .push(" ORDER BY ts, seq LIMIT 1), ")
            .push_bind(i64::MAX)
            .push(") AND +ts >= ")
            .push_bind(since_ms)
            .push(" AND +seq > ")
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
        const BY_TIME: &str = "SELECT (ts - ?1) / ?2 AS bucket, COUNT(*), \
             SUM(CASE WHEN outcome = 'success' THEN 0 ELSE 1 END), MAX(seq) \
             FROM audit_log WHERE ts >= ?1 AND +seq > ?3 GROUP BY bucket ORDER BY bucket";
        const BY_SEQ: &str = "SELECT (+ts - ?1) / ?2 AS bucket, COUNT(*), \
             SUM(CASE WHEN outcome = 'success' THEN 0 ELSE 1 END), MAX(seq) \
             FROM audit_log WHERE seq > ?3 AND +ts >= ?1 GROUP BY bucket ORDER BY bucket";
        Ok(sqlx::query_as(if after_seq > 0 { BY_SEQ } else { BY_TIME })
            .bind(since_ms)
            .bind(bucket_ms.max(1))
            .bind(after_seq)
            .fetch_all(&self.reader)
            .await?)
    }
    async fn audit_first_seq_at(&self, ts_ms: i64) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT MIN(seq) FROM audit_log WHERE ts >= ?")
                .bind(ts_ms)
                .fetch_one(&self.reader)
                .await?,
        )
    }
}

#[async_trait]
impl AuditWrites for SqliteTx {
    async fn audit_head(&mut self) -> Result<ChainHead> {
        head_in(self.conn()).await
    }
    async fn audit_insert(&mut self, rows: &[AuditRow]) -> Result<()> {
        for chunk in rows.chunks(INSERT_CHUNK) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT OR FAIL INTO audit_log (seq, ts, actor_kind, actor_id, action, target, outcome, source_ip, request_id, http_method, http_path, http_status, detail, prev_hash, hash) ",
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
        let n = sqlx::query("DELETE FROM audit_log WHERE seq < ?")
            .bind(anchor.first_seq)
            .execute(self.conn())
            .await?
            .rows_affected();
        sqlx::query(
            "INSERT INTO audit_anchor (first_seq, prev_hash, pruned_from_seq, pruned_before, pruned_at, mac) VALUES (?, ?, ?, ?, ?, ?)",
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

//! Reading the stored log: filters for the API and a walk of the whole chain.

use crate::crypto::MacKey;

use super::chain::{Checkpoint, Verifier, VerifyReport, anchor_ok};
use crate::store::audit::{AuditFilter, AuditRow};
use crate::store::{Store, StoreError};

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;
/// Entries below which a walk is not split: a range costs a connection and a task.
const MIN_RANGE: i64 = 20_000;

pub async fn query(store: &Store, filter: &AuditFilter) -> crate::store::Result<Vec<AuditRow>> {
    store.audit_query(filter).await
}

/// Verifies the stored chain from its start (genesis or the latest prune anchor) to its head.
pub async fn verify_store(store: &Store, key: &MacKey) -> crate::store::Result<VerifyReport> {
    verify_store_with(store, key, None).await
}

/// As [`verify_store`], also requiring the chain to hold the checkpointed entry.
#[tracing::instrument(skip_all)]
pub async fn verify_store_with(
    store: &Store,
    key: &MacKey,
    checkpoint: Option<&Checkpoint>,
) -> crate::store::Result<VerifyReport> {
    let anchor = store.audit_anchor().await?;
    let mut v = match &anchor {
        None => Verifier::new(key, 1, super::chain::GENESIS),
        Some(a) => {
            let mut prev = [0u8; 32];
            if anchor_ok(key, a) {
                prev.copy_from_slice(&a.prev_hash);
                Verifier::new(key, a.first_seq, prev)
            } else {
                // A forged anchor vouches for nothing: the walk then expects genesis and names
                // the first entry after the hole it hides.
                Verifier::new(key, 1, super::chain::GENESIS)
            }
        }
    };
    if let Some(cp) = checkpoint {
        v = v.with_checkpoint(cp);
    }
    let ranges = std::thread::available_parallelism().map_or(1, |n| n.get());
    walk_ranges(store, v, ranges, MIN_RANGE).await
}

/// Walks only the entries after `seq`, whose hash an earlier walk verified as `hash`, up to the
/// stored head: the cheap check between whole walks. The verifier it returns reports on those
/// entries alone (`entries_checked` counts them) and holds the new head.
pub async fn verify_after(
    store: &Store,
    key: &MacKey,
    seq: i64,
    hash: [u8; 32],
) -> crate::store::Result<Verifier> {
    let start = Verifier::new(key, seq.saturating_add(1), hash);
    store
        .audit_walk(seq.saturating_add(1), i64::MAX, start, |v, row| v.push(row))
        .await
}

/// Walks the stored log in up to `ranges` slices of its seq span (each at least `min_range`
/// wide) at once, each on its own connection, and joins the walks in order ([`Verifier::join`]),
/// so the report is the one a single walk would give. The first range also takes every seq below
/// the span's start, the last everything above its end (entries appended meanwhile), so no stored
/// entry escapes the walk.
async fn walk_ranges(
    store: &Store,
    mut v: Verifier,
    ranges: usize,
    min_range: i64,
) -> crate::store::Result<VerifyReport> {
    let Some((lo, hi)) = store.audit_seq_bounds().await? else {
        return Ok(v.finish());
    };
    let span = i128::from(hi) - i128::from(lo) + 1;
    let n = (span / i128::from(min_range.max(1))).clamp(1, ranges.max(1) as i128);
    // Range k starts at lo + span·k/n; the bounds are inclusive.
    let bound = |k: i128| i64::try_from(i128::from(lo) + span * k / n).unwrap_or(i64::MAX);
    let mut walks = Vec::new();
    for k in 0..n {
        let first = if k == 0 { i64::MIN } else { bound(k) };
        let last = if k == n - 1 {
            i64::MAX
        } else {
            bound(k + 1) - 1
        };
        // The first range continues the pinned walk; the others start at their first entry.
        let start = (k == 0).then(|| v.clone());
        let (store, base) = (store.clone(), v.clone());
        walks.push(tokio::spawn(async move {
            store
                .audit_walk(first, last, start, move |w, row| {
                    w.get_or_insert_with(|| base.fork(row)).push(row)
                })
                .await
        }));
    }
    let mut joined: Option<Verifier> = None;
    for walk in walks {
        let w = walk
            .await
            .map_err(|e| StoreError::Corrupt(format!("verify task: {e}")))??;
        joined = match (joined, w) {
            (Some(a), Some(b)) => Some(a.join(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(joined.unwrap_or(v).finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::entry_hash;

    use mediavault_store_sqlite::testing::open_temp;
    use sqlx::SqlitePool;

    const N: i64 = 30;

    fn key() -> MacKey {
        MacKey::new(crate::crypto::Suite::Standard, &[3u8; 32])
    }

    /// A store holding a clean chain of `N` entries, and a raw pool on its database.
    async fn chain() -> (tempfile::TempDir, Store, SqlitePool) {
        let (dir, store, raw) = open_temp().await;
        let mut prev = super::super::chain::GENESIS.to_vec();
        let rows: Vec<AuditRow> = (1..=N)
            .map(|seq| {
                let mut row = AuditRow {
                    seq,
                    ts: 1_700_000_000_000 + seq,
                    actor_kind: "user".into(),
                    actor_id: format!("u{seq}"),
                    action: "a".into(),
                    target: "t".into(),
                    outcome: "success".into(),
                    source_ip: "127.0.0.1".into(),
                    request_id: format!("r{seq}"),
                    http_method: (seq % 2 == 0).then(|| "GET".into()),
                    http_path: (seq % 2 == 0).then(|| "/x".into()),
                    http_status: (seq % 2 == 0).then_some(200),
                    detail: "{}".into(),
                    prev_hash: prev.clone(),
                    hash: Vec::new(),
                };
                row.hash = entry_hash(&key(), row.fields()).to_vec();
                prev = row.hash.clone();
                row
            })
            .collect();
        let mut tx = store.begin().await.unwrap();
        tx.audit_insert(&rows).await.unwrap();
        tx.commit().await.unwrap();
        (dir, store, raw)
    }

    async fn exec(raw: &SqlitePool, sql: &'static str) {
        sqlx::query(sql).execute(raw).await.unwrap();
    }

    /// The walk in 3 ranges ([1, 10], [11, 20], [21, 30]) reports exactly what one walk does.
    async fn verify_split(store: &Store, cp: Option<&Checkpoint>) -> VerifyReport {
        let start = || {
            let v = Verifier::new(&key(), 1, super::super::chain::GENESIS);
            match cp {
                Some(cp) => v.with_checkpoint(cp),
                None => v,
            }
        };
        let whole = walk_ranges(store, start(), 1, 1).await.unwrap();
        let split = walk_ranges(store, start(), 3, 1).await.unwrap();
        assert_eq!(split, whole);
        split
    }

    #[tokio::test]
    async fn ranges_walked_at_once_report_what_one_walk_does() {
        let (_dir, store, _) = chain().await;
        let r = verify_split(&store, None).await;
        assert!(r.ok, "{r:?}");
        assert_eq!((r.entries_checked, r.head_seq), (N as u64, N));
        let cases: &[(&[&'static str], i64)] = &[
            // A changed field in the last range, on each side of a seam, and in two ranges.
            (&["UPDATE audit_log SET actor_id = 'm' WHERE seq = 25"], 25),
            (&["UPDATE audit_log SET ts = ts + 1 WHERE seq = 10"], 10),
            (
                &["UPDATE audit_log SET detail = '{\"a\":1}' WHERE seq = 11"],
                11,
            ),
            (
                &[
                    "UPDATE audit_log SET target = 'x' WHERE seq = 22",
                    "UPDATE audit_log SET outcome = 'denied' WHERE seq = 7",
                ],
                7,
            ),
            // Deleted entries at a seam: the missing seq is named.
            (&["DELETE FROM audit_log WHERE seq = 11"], 11),
            (&["DELETE FROM audit_log WHERE seq = 10"], 10),
            (&["DELETE FROM audit_log WHERE seq >= 9 AND seq <= 12"], 9),
            // Renumbered to close the gap: the link at the seam is broken.
            (
                &[
                    "DELETE FROM audit_log WHERE seq = 10",
                    "UPDATE audit_log SET seq = seq + 1000 WHERE seq > 10",
                    "UPDATE audit_log SET seq = seq - 1001 WHERE seq > 1000",
                ],
                10,
            ),
            // Entries swapped across a seam.
            (
                &[
                    "UPDATE audit_log SET seq = -1 WHERE seq = 10",
                    "UPDATE audit_log SET seq = 10 WHERE seq = 11",
                    "UPDATE audit_log SET seq = 11 WHERE seq = -1",
                ],
                10,
            ),
            // A stray entry before the chain's start, and an entry copied past the head.
            (&["UPDATE audit_log SET seq = 0 WHERE seq = 1"], 0),
            (
                &[
                    "INSERT INTO audit_log SELECT 31, ts, actor_kind, actor_id, action, target, outcome, source_ip, request_id, http_method, http_path, http_status, detail, prev_hash, hash FROM audit_log WHERE seq = 30",
                ],
                31,
            ),
        ];
        for (sqls, bad) in cases {
            let (_dir, store, raw) = chain().await;
            for sql in *sqls {
                exec(&raw, sql).await;
            }
            let r = verify_split(&store, None).await;
            assert_eq!(r.first_bad_seq, Some(*bad), "{sqls:?}: {r:?}");
        }
    }

    #[tokio::test]
    async fn a_checkpoint_is_held_by_every_range() {
        let (_dir, store, raw) = chain().await;
        let head = verify_split(&store, None).await;
        let hash = |hex_text: &str| <[u8; 32]>::try_from(hex::decode(hex_text).unwrap()).unwrap();
        let cp = Checkpoint {
            seq: N,
            hash: hash(&head.head_hash),
            unix: 0,
        };
        assert!(verify_split(&store, Some(&cp)).await.ok);
        // A checkpoint that names other contents for an entry of the last range.
        let forged = Checkpoint {
            seq: 25,
            ..cp.clone()
        };
        assert_eq!(
            verify_split(&store, Some(&forged)).await.first_bad_seq,
            Some(25)
        );
        // A tail cut off inside the middle range.
        exec(&raw, "DELETE FROM audit_log WHERE seq > 15").await;
        assert_eq!(
            verify_split(&store, Some(&cp)).await.first_bad_seq,
            Some(16)
        );
    }
}

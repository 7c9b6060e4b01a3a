//! Reading the stored log: filters for the API and a walk of the whole chain.

use ring::hmac;

use super::chain::{Checkpoint, Verifier, VerifyReport, anchor_ok};
use crate::store::Store;
use crate::store::audit::{AuditFilter, AuditRow};

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;
/// Rows read per round trip while verifying, so a long log is never held in memory at once.
const CHUNK: i64 = 1000;

pub async fn query(store: &Store, filter: &AuditFilter) -> crate::store::Result<Vec<AuditRow>> {
    store.audit_query(filter).await
}

/// Verifies the stored chain from its start (genesis or the latest prune anchor) to its head.
pub async fn verify_store(store: &Store, key: &hmac::Key) -> crate::store::Result<VerifyReport> {
    verify_store_with(store, key, None).await
}

/// As [`verify_store`], also requiring the chain to hold the checkpointed entry.
#[tracing::instrument(skip_all)]
pub async fn verify_store_with(
    store: &Store,
    key: &hmac::Key,
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
    let mut after = 0;
    loop {
        let rows = store.audit_chunk(after, CHUNK).await?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for r in &rows {
            if !v.push(r) {
                break;
            }
        }
        if v.is_broken() {
            break;
        }
    }
    Ok(v.finish())
}

//! The in-memory index of live publishing tokens: keyed hash → grant, so a token request does not
//! read the store. It never answers for a token the store considers dead:
//!
//! - every commit that can end a token (check-in, expiry, deny, freeze, client revoke, user
//!   disable, role change) moves the store's token epoch before its caller is answered, and the
//!   index drops everything the moment it sees the epoch moved;
//! - a grant read from the store is kept only if the epoch did not move between the read's start
//!   and the insert, so a read that raced a revocation cannot put a dead token back;
//! - expiry is checked against the clock on every hit;
//! - a miss (or anything else) falls back to the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::TokenGrant;

/// Entries kept at most; past it the index starts over (a miss costs one store read).
const CAPACITY: usize = 65_536;

#[derive(Default)]
struct Inner {
    epoch: u64,
    grants: HashMap<[u8; 32], Arc<TokenGrant>>,
}

/// See the module documentation.
#[derive(Default)]
pub struct TokenIndex {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for TokenIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIndex").finish_non_exhaustive()
    }
}

impl TokenIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The grant of `hash` if it is indexed under the current `epoch` and not expired at `now`.
    pub fn get(&self, hash: &[u8; 32], epoch: u64, now: i64) -> Option<Arc<TokenGrant>> {
        let mut inner = self.lock();
        if inner.epoch != epoch {
            inner.grants.clear();
            inner.epoch = epoch;
            return None;
        }
        match inner.grants.get(hash) {
            Some(g) if g.expires_at > now => Some(Arc::clone(g)),
            Some(_) => {
                inner.grants.remove(hash);
                None
            }
            None => None,
        }
    }

    /// Keeps a grant read from the store, if the epoch read before that read (`read_epoch`) is
    /// still the current one (`now_epoch`, read after it).
    pub fn insert(&self, hash: [u8; 32], grant: Arc<TokenGrant>, read_epoch: u64, now_epoch: u64) {
        if read_epoch != now_epoch {
            return;
        }
        let mut inner = self.lock();
        if inner.epoch != read_epoch {
            if inner.epoch > read_epoch {
                return;
            }
            inner.grants.clear();
            inner.epoch = read_epoch;
        }
        if inner.grants.len() >= CAPACITY {
            inner.grants.clear();
        }
        inner.grants.insert(hash, grant);
    }

    /// Live tokens indexed now (a gauge for `/metrics`; may count expired ones not yet asked for).
    pub fn len(&self) -> usize {
        self.lock().grants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(expires_at: i64) -> Arc<TokenGrant> {
        Arc::new(TokenGrant {
            checkout_id: "co_1".into(),
            account: "a".into(),
            operator: "o".into(),
            client_id: "c".into(),
            expires_at,
            allowed_calls: vec![],
            content_sha256: None,
            targets: vec!["a".into()],
            has_post: false,
            client_cert: None,
            break_glass: false,
        })
    }

    #[test]
    fn a_moved_epoch_empties_the_index_and_a_raced_read_is_not_kept() {
        let ix = TokenIndex::default();
        ix.insert([1; 32], grant(100), 0, 0);
        assert!(ix.get(&[1; 32], 0, 50).is_some());
        // A commit that may end tokens moved the epoch: nothing is served from before it.
        assert!(ix.get(&[1; 32], 1, 50).is_none());
        assert!(ix.is_empty());
        // A read that started before the move is not kept.
        ix.insert([1; 32], grant(100), 1, 2);
        assert!(ix.get(&[1; 32], 2, 50).is_none());
        // Nor one that is older than what the index has already seen.
        ix.insert([2; 32], grant(100), 1, 1);
        assert!(ix.get(&[2; 32], 2, 50).is_none());
    }

    #[test]
    fn an_expired_grant_is_not_served() {
        let ix = TokenIndex::default();
        ix.insert([1; 32], grant(100), 0, 0);
        assert!(ix.get(&[1; 32], 0, 100).is_none());
        assert!(ix.is_empty());
    }
}

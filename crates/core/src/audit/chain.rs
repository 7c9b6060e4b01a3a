//! The HMAC chain, checkpoints and prune anchors.
//!
//! Encoding (version 1). For entry n,
//!
//! ```text
//! hash_n = HMAC-SHA256(audit_key, parts("mediavault-audit-v1", prev_hash, seq, ts, actor_kind,
//!          actor_id, action, target, outcome, source_ip, request_id, http_flag, http_method,
//!          http_path, http_status, detail))
//! ```
//!
//! where `parts` is [`crate::crypto::hmac_parts`]: every part is preceded by its length as a
//! big-endian u64, so no two different entries encode to the same bytes. `prev_hash` is the raw
//! 32-byte hash of entry n−1 (32 zero bytes before the first entry, or the prune anchor's
//! `prev_hash` after a prune); `seq`, `ts` (unix ms) and `http_status` are big-endian i64;
//! `http_flag` is `1` for a request and `0` for a domain event (whose http parts are then empty);
//! `detail` is the stored JSON text, as serde_json writes a `Map` (keys sorted, no whitespace).
//! Everything is covered, so changing any field, seq or ts breaks the entry's hash; the next
//! entry's `prev_hash` pins the order.

use crate::crypto::{CheckpointKey, MacKey, Suite, ct_eq, hmac_parts};
use crate::store::audit::{AuditAnchor, AuditFields};

pub const GENESIS: [u8; 32] = [0u8; 32];
const DOMAIN: &[u8] = b"mediavault-audit-v1";
const ANCHOR_DOMAIN: &[u8] = b"mediavault-audit-anchor-v1";
/// Checkpoints before the SM option: HMAC-SHA256, no suite named. Still read.
const CHECKPOINT_V1: &str = "mvcp1";
/// Checkpoints that name their suite: HMAC-SHA256 (`standard`) or SM2 (`sm`).
const CHECKPOINT_V2: &str = "mvcp2";

/// The hash of an entry given its `prev_hash` field (the stored `hash` is ignored). The writer and
/// every verifier go through this one function.
pub fn entry_hash(key: &MacKey, row: AuditFields<'_>) -> [u8; 32] {
    let seq = row.seq.to_be_bytes();
    let ts = row.ts.to_be_bytes();
    let is_http = row.http_method.is_some() || row.http_path.is_some() || row.http_status.is_some();
    let status = row.http_status.unwrap_or(0).to_be_bytes();
    hmac_parts(
        key,
        &[
            DOMAIN,
            row.prev_hash,
            &seq,
            &ts,
            row.actor_kind.as_bytes(),
            row.actor_id.as_bytes(),
            row.action.as_bytes(),
            row.target.as_bytes(),
            row.outcome.as_bytes(),
            row.source_ip.as_bytes(),
            row.request_id.as_bytes(),
            if is_http { b"1" } else { b"0" },
            row.http_method.unwrap_or("").as_bytes(),
            row.http_path.unwrap_or("").as_bytes(),
            &status,
            row.detail.as_bytes(),
        ],
    )
}

/// The outcome of walking a chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    pub ok: bool,
    pub entries_checked: u64,
    /// The last entry that verified (the anchor's position if none did).
    pub head_seq: i64,
    pub head_hash: String,
    /// The first entry that is wrong or missing.
    pub first_bad_seq: Option<i64>,
    /// What is wrong at `first_bad_seq`, for a human.
    pub problem: Option<String>,
}

/// Walks entries in seq order and stops at the first broken one. A long chain can be walked in
/// ranges at once: [`Self::fork`] starts the walk of a later range, [`Self::join`] appends it.
#[derive(Debug, Clone)]
pub struct Verifier {
    key: MacKey,
    next_seq: i64,
    prev: [u8; 32],
    checked: u64,
    bad: Option<(i64, String)>,
    checkpoint: Option<(i64, [u8; 32])>,
    /// The seq and prev_hash the walk started from, by which [`Self::join`] links it.
    start: (i64, Vec<u8>),
}

impl Verifier {
    /// Starts at `first_seq`, expecting `prev` as its `prev_hash`.
    pub fn new(key: &MacKey, first_seq: i64, prev: [u8; 32]) -> Self {
        Self {
            key: key.clone(),
            next_seq: first_seq,
            prev,
            checked: 0,
            bad: None,
            checkpoint: None,
            start: (first_seq, prev.to_vec()),
        }
    }

    /// Starts wherever the first entry says it starts; for exports of a range, whose start can
    /// only be pinned by the database or a checkpoint.
    pub fn from_first(key: &MacKey, first: AuditFields<'_>) -> Self {
        let prev = <[u8; 32]>::try_from(first.prev_hash).unwrap_or_default();
        Self {
            start: (first.seq, first.prev_hash.to_vec()),
            ..Self::new(key, first.seq, prev)
        }
    }

    /// A walk of a later range, starting at its first entry (push that entry next), taken as
    /// given until [`Self::join`] links it to this walk. It holds the same checkpoint.
    pub fn fork(&self, first: AuditFields<'_>) -> Self {
        Self {
            checkpoint: self.checkpoint,
            ..Self::from_first(&self.key, first)
        }
    }

    /// This walk followed by `next`, a [`Self::fork`] of it that walked the entries after these:
    /// the same result as if this walk had pushed them itself. The link between the two is the
    /// only thing neither checked alone; a break before it wins, as it comes first.
    pub fn join(self, next: Self) -> Self {
        if self.bad.is_some() {
            return self;
        }
        if let Some(bad) = self.link(next.start.0, &next.start.1) {
            return Self {
                bad: Some(bad),
                ..self
            };
        }
        Self {
            checked: self.checked + next.checked,
            start: self.start,
            ..next
        }
    }

    pub fn is_broken(&self) -> bool {
        self.bad.is_some()
    }

    /// Whether an entry at `seq` with `prev_hash` comes right after the walk so far; if not,
    /// where and why not. A deletion is named by the missing seq, anything else by the entry's own.
    fn link(&self, seq: i64, prev_hash: &[u8]) -> Option<(i64, String)> {
        if seq > self.next_seq {
            Some((
                self.next_seq,
                format!(
                    "entry {} is missing (the next stored entry is {seq})",
                    self.next_seq
                ),
            ))
        } else if seq < self.next_seq {
            Some((seq, "entry is out of order or duplicated".to_owned()))
        } else if !ct_eq(prev_hash, &self.prev) {
            Some((seq, "prev_hash does not match the previous entry: an entry was removed, inserted or moved before it".to_owned()))
        } else {
            None
        }
    }

    /// Checks one entry.
    pub fn push(&mut self, row: AuditFields<'_>) -> bool {
        if self.bad.is_some() {
            return false;
        }
        if let Some(bad) = self.link(row.seq, row.prev_hash) {
            self.bad = Some(bad);
            return false;
        }
        let problem = if !ct_eq(&entry_hash(&self.key, row), row.hash) {
            Some(
                "hash does not match the entry's contents: the entry was altered or forged"
                    .to_owned(),
            )
        } else if matches!(self.checkpoint, Some((seq, h)) if seq == row.seq && !ct_eq(&h, row.hash))
        {
            Some("entry differs from the checkpoint: the chain was rewritten from here".to_owned())
        } else {
            None
        };
        if let Some(p) = problem {
            self.bad = Some((row.seq, p));
            return false;
        }
        let Some(next_seq) = row.seq.checked_add(1) else {
            self.bad = Some((
                row.seq,
                "seq is the largest there is; no entry can follow it".to_owned(),
            ));
            return false;
        };
        self.prev.copy_from_slice(row.hash);
        self.next_seq = next_seq;
        self.checked += 1;
        true
    }

    /// Also checks that the chain holds `cp.seq` with `cp.hash` (call before pushing entries).
    /// A checkpoint older than a prune can only be checked when it is exactly the anchor.
    pub fn with_checkpoint(mut self, cp: &Checkpoint) -> Self {
        if cp.seq == self.next_seq.saturating_sub(1) && !ct_eq(&cp.hash, &self.prev) {
            self.bad = Some((
                cp.seq,
                "the chain's start differs from the checkpoint".to_owned(),
            ));
        }
        self.checkpoint = Some((cp.seq, cp.hash));
        self
    }

    /// Ends the walk: a checkpointed entry that never came means the tail was cut off.
    pub fn finish(&mut self) -> VerifyReport {
        if let (None, Some((seq, _))) = (&self.bad, self.checkpoint)
            && self.next_seq <= seq
        {
            self.bad = Some((
                self.next_seq,
                format!(
                    "the chain ends at {} but the checkpoint names entry {seq}: entries were removed from the tail",
                    self.next_seq.saturating_sub(1)
                ),
            ));
        }
        self.report()
    }

    pub fn head(&self) -> (i64, [u8; 32]) {
        (self.next_seq.saturating_sub(1), self.prev)
    }

    pub fn report(&self) -> VerifyReport {
        VerifyReport {
            ok: self.bad.is_none(),
            entries_checked: self.checked,
            // Saturating: an export is untrusted, and its first entry can claim `i64::MIN`.
            head_seq: self.next_seq.saturating_sub(1),
            head_hash: hex::encode(self.prev),
            first_bad_seq: self.bad.as_ref().map(|b| b.0),
            problem: self.bad.as_ref().map(|b| b.1.clone()),
        }
    }
}

pub fn anchor_mac(key: &MacKey, a: &AuditAnchor) -> [u8; 32] {
    hmac_parts(
        key,
        &[
            ANCHOR_DOMAIN,
            &a.first_seq.to_be_bytes(),
            &a.prev_hash,
            &a.pruned_from_seq.to_be_bytes(),
            &a.pruned_before.to_be_bytes(),
            &a.pruned_at.to_be_bytes(),
        ],
    )
}

pub fn anchor_ok(key: &MacKey, a: &AuditAnchor) -> bool {
    a.prev_hash.len() == 32 && ct_eq(&anchor_mac(key, a), &a.mac)
}

/// A chain head signed under the checkpoint key, to be kept outside the vault.
///
/// Line format: `mvcp2:<suite>:<seq>:<hash hex>:<unix ts>:<signature hex>`, where the signature
/// covers `parts("mvcp2", suite, seq, hash, unix)`: an HMAC-SHA256 tag in the standard suite, an
/// SM2 signature (`r || s`, default ID) in the SM suite, which anyone holding the vault's
/// checkpoint public key can check (`audit checkpoint` prints it). `mvcp1` lines (standard suite,
/// before the suite was named) are still read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: [u8; 32],
    pub unix: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error(
        "not a checkpoint line: expected mvcp2:<suite>:<seq>:<hash hex>:<unix ts>:<signature hex>"
    )]
    Malformed,
    #[error(
        "the checkpoint's signature does not match this vault's key (altered, or from another vault)"
    )]
    BadMac,
    #[error(
        "the checkpoint was signed in the {line} suite, but this vault uses the {vault} suite: it is from another vault"
    )]
    OtherSuite { line: Suite, vault: Suite },
}

impl Checkpoint {
    /// What the signature covers, each part length-prefixed by the key.
    fn signed_parts(&self, version: &str, suite: Option<Suite>) -> Vec<Vec<u8>> {
        let mut parts = vec![version.as_bytes().to_vec()];
        if let Some(suite) = suite {
            parts.push(suite.as_str().as_bytes().to_vec());
        }
        parts.extend([
            self.seq.to_be_bytes().to_vec(),
            self.hash.to_vec(),
            self.unix.to_be_bytes().to_vec(),
        ]);
        parts
    }

    pub fn to_line(&self, key: &CheckpointKey) -> String {
        let suite = key.suite();
        let parts = self.signed_parts(CHECKPOINT_V2, Some(suite));
        let signature = key.sign(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>());
        format!(
            "{CHECKPOINT_V2}:{suite}:{}:{}:{}:{}",
            self.seq,
            hex::encode(self.hash),
            self.unix,
            hex::encode(signature)
        )
    }

    pub fn parse(line: &str, key: &CheckpointKey) -> Result<Self, CheckpointError> {
        let parts: Vec<&str> = line.trim().split(':').collect();
        let (version, suite, rest) = match parts.as_slice() {
            [v, seq, hash, unix, sig] if *v == CHECKPOINT_V1 => {
                (CHECKPOINT_V1, None, [*seq, *hash, *unix, *sig])
            }
            [v, suite, seq, hash, unix, sig] if *v == CHECKPOINT_V2 => {
                let suite = Suite::parse(suite).ok_or(CheckpointError::Malformed)?;
                (CHECKPOINT_V2, Some(suite), [*seq, *hash, *unix, *sig])
            }
            _ => return Err(CheckpointError::Malformed),
        };
        let [seq, hash, unix, sig] = rest;
        let seq: i64 = seq.parse().map_err(|_| CheckpointError::Malformed)?;
        let unix: i64 = unix.parse().map_err(|_| CheckpointError::Malformed)?;
        let hash: [u8; 32] = hex::decode(hash)
            .ok()
            .and_then(|h| h.try_into().ok())
            .ok_or(CheckpointError::Malformed)?;
        let sig = hex::decode(sig).map_err(|_| CheckpointError::Malformed)?;
        let line_suite = suite.unwrap_or(Suite::Standard);
        if line_suite != key.suite() {
            return Err(CheckpointError::OtherSuite {
                line: line_suite,
                vault: key.suite(),
            });
        }
        let cp = Self { seq, hash, unix };
        let parts = cp.signed_parts(version, suite);
        if !key.verify(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>(), &sig) {
            return Err(CheckpointError::BadMac);
        }
        Ok(cp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::AuditRow;

    fn key() -> MacKey {
        MacKey::new(Suite::Standard, &[7u8; 32])
    }

    fn checkpoint_key(suite: Suite) -> CheckpointKey {
        match suite {
            Suite::Standard => CheckpointKey::Hmac(key()),
            Suite::Sm => crate::crypto::Keyring::new(
                suite,
                vec![],
                &crate::crypto::SecretBytes::new(vec![7; 32]),
            )
            .unwrap()
            .mac()
            .checkpoint
            .clone(),
        }
    }

    #[test]
    fn checkpoint_round_trips_and_refuses_edits() {
        let cp = Checkpoint {
            seq: 42,
            hash: [9u8; 32],
            unix: 1_700_000_000,
        };
        for suite in Suite::ALL {
            let key = checkpoint_key(suite);
            let line = cp.to_line(&key);
            assert!(line.starts_with(&format!("mvcp2:{suite}:42:")), "{line}");
            assert_eq!(Checkpoint::parse(&line, &key), Ok(cp.clone()));
            let edited = line.replacen(":42:", ":41:", 1);
            assert_eq!(
                Checkpoint::parse(&edited, &key),
                Err(CheckpointError::BadMac)
            );
            assert_eq!(
                Checkpoint::parse("mvcp1:1:zz", &key),
                Err(CheckpointError::Malformed)
            );
        }
        // A line of one suite is named as such in a vault of the other, not as a bad signature.
        let sm_line = cp.to_line(&checkpoint_key(Suite::Sm));
        assert_eq!(
            Checkpoint::parse(&sm_line, &checkpoint_key(Suite::Standard)),
            Err(CheckpointError::OtherSuite {
                line: Suite::Sm,
                vault: Suite::Standard
            })
        );
        // Relabelling an SM line as standard does not pass the HMAC check.
        let relabelled = sm_line.replacen("mvcp2:sm:", "mvcp2:standard:", 1);
        assert_eq!(
            Checkpoint::parse(&relabelled, &checkpoint_key(Suite::Standard)),
            Err(CheckpointError::BadMac)
        );
    }

    /// Checkpoints written before the suite was named (`mvcp1`) still verify.
    #[test]
    fn a_version_one_checkpoint_still_verifies() {
        let cp = Checkpoint {
            seq: 7,
            hash: [3u8; 32],
            unix: 1_600_000_000,
        };
        let mac = hmac_parts(
            &key(),
            &[
                b"mvcp1",
                &7i64.to_be_bytes(),
                &[3u8; 32],
                &1_600_000_000i64.to_be_bytes(),
            ],
        );
        let line = format!(
            "mvcp1:7:{}:1600000000:{}",
            hex::encode([3u8; 32]),
            hex::encode(mac)
        );
        let key = checkpoint_key(Suite::Standard);
        assert_eq!(Checkpoint::parse(&line, &key), Ok(cp));
        assert_eq!(
            Checkpoint::parse(&line.replacen(":7:", ":8:", 1), &key),
            Err(CheckpointError::BadMac)
        );
    }

    #[test]
    fn http_flag_separates_events_from_requests() {
        let event = AuditRow {
            seq: 1,
            ts: 0,
            actor_kind: "system".into(),
            actor_id: String::new(),
            action: "a".into(),
            target: "t".into(),
            outcome: "success".into(),
            source_ip: String::new(),
            request_id: String::new(),
            http_method: None,
            http_path: None,
            http_status: None,
            detail: "{}".into(),
            prev_hash: GENESIS.to_vec(),
            hash: Vec::new(),
        };
        let request = AuditRow {
            http_method: Some(String::new()),
            http_path: Some(String::new()),
            http_status: Some(0),
            ..event.clone()
        };
        assert_ne!(
            entry_hash(&key(), event.fields()),
            entry_hash(&key(), request.fields())
        );
    }

    /// Found by the `exported_rows_read_back_and_verify_without_panic` property: an export whose
    /// first entry claims seq `i64::MIN` overflowed `head_seq` (a panic in a debug build, a wrapped
    /// head in release); an entry at `i64::MAX`, correctly signed, overflowed the next seq.
    #[test]
    fn extreme_seqs_are_refused_without_overflow() {
        let row = |seq: i64| {
            let mut r = AuditRow {
                seq,
                ts: 0,
                actor_kind: "system".into(),
                actor_id: String::new(),
                action: "a".into(),
                target: "t".into(),
                outcome: "success".into(),
                source_ip: String::new(),
                request_id: String::new(),
                http_method: None,
                http_path: None,
                http_status: None,
                detail: "{}".into(),
                prev_hash: GENESIS.to_vec(),
                hash: Vec::new(),
            };
            r.hash = entry_hash(&key(), r.fields()).to_vec();
            r
        };

        let mut low = row(i64::MIN);
        low.hash = vec![0; 32];
        let mut v = Verifier::from_first(&key(), low.fields());
        assert!(!v.push(low.fields()));
        let report = v.finish();
        assert!(!report.ok);
        assert_eq!(report.head_seq, i64::MIN);

        let high = row(i64::MAX);
        let mut v = Verifier::from_first(&key(), high.fields());
        assert!(!v.push(high.fields()));
        let report = v.finish();
        assert_eq!(report.first_bad_seq, Some(i64::MAX));
        assert!(report.problem.unwrap().contains("largest"));
    }
}

//! The one writer of the audit log: group commit over an mpsc channel.
//!
//! Every caller waits for the durable commit of its entry before it goes on (fail closed). The
//! task drains whatever is queued, chains the batch onto the head it reads inside the transaction,
//! inserts it in one `BEGIN IMMEDIATE` transaction (`synchronous=FULL`), and only then answers the
//! waiters. A failed transaction answers every waiter with an error and changes nothing, so the
//! next batch starts again from the head on disk and the vault recovers once the store is writable.

use ring::hmac;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use super::chain::entry_hash;
use crate::clock::Clock;
use crate::http::context::ActorKind;
use crate::store::Store;
use crate::store::audit::{AuditRow, ChainHead};

/// Most entries committed in one transaction; keeps a transaction short under a burst.
const MAX_BATCH: usize = 256;
/// Queue depth before callers wait for room; they wait anyway for their commit.
const QUEUE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Denied,
    Error,
    RateLimited,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
            Outcome::RateLimited => "rate_limited",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "success" => Outcome::Success,
            "denied" => Outcome::Denied,
            "error" => Outcome::Error,
            "rate_limited" => Outcome::RateLimited,
            _ => return None,
        })
    }

    /// 2xx/3xx succeed; 401/403/423 are denials; 429 is a rate limit; any other 4xx/5xx an error.
    pub fn of_status(status: u16) -> Self {
        match status {
            401 | 403 | 423 => Outcome::Denied,
            429 => Outcome::RateLimited,
            s if s >= 400 => Outcome::Error,
            _ => Outcome::Success,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpInfo {
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// An entry before it gets its seq, ts and chain hashes. `detail` holds ids and digests only.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub actor_kind: ActorKind,
    pub actor_id: String,
    pub action: String,
    pub target: String,
    pub outcome: Outcome,
    pub source_ip: String,
    pub request_id: String,
    pub http: Option<HttpInfo>,
    pub detail: Map<String, Value>,
}

impl NewEntry {
    /// A domain event of the vault itself (CLI actions, background tasks).
    pub fn system(action: &str, target: &str, outcome: Outcome) -> Self {
        Self {
            actor_kind: ActorKind::System,
            actor_id: "mediavault".into(),
            action: action.into(),
            target: target.into(),
            outcome,
            source_ip: String::new(),
            request_id: String::new(),
            http: None,
            detail: Map::new(),
        }
    }

    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(key.to_owned(), value.into());
        self
    }
}

/// Where an entry landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub seq: i64,
    pub hash: [u8; 32],
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("the audit log could not be written: {0}")]
    Store(String),
    #[error("the audit writer has stopped")]
    Stopped,
}

type Reply = oneshot::Sender<Result<Committed, AuditError>>;

/// Handle to the writer task; cheap to clone. The task ends when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct AuditWriter {
    tx: mpsc::Sender<(NewEntry, Reply)>,
}

impl AuditWriter {
    /// Starts the writer task on the current runtime. The chain head is read from the store
    /// inside every batch transaction, so it starts from the store's current head.
    pub fn start(store: Store, key: hmac::Key, clock: Clock) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, key, clock, rx));
        Self { tx }
    }

    /// Records an entry and returns once it is durably committed.
    pub async fn record(&self, entry: NewEntry) -> Result<Committed, AuditError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((entry, reply))
            .await
            .map_err(|_| AuditError::Stopped)?;
        answer.await.map_err(|_| AuditError::Stopped)?
    }

    /// Records an event that is not a request (actor kind `system` unless the entry says else).
    pub async fn record_event(&self, entry: NewEntry) -> Result<Committed, AuditError> {
        self.record(entry).await
    }
}

async fn run(
    store: Store,
    key: hmac::Key,
    clock: Clock,
    mut rx: mpsc::Receiver<(NewEntry, Reply)>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (entries, replies): (Vec<NewEntry>, Vec<Reply>) = batch.drain(..).unzip();
        let now_ms = unix_ms(&clock);
        let result = store
            .audit_append(|head| chain_batch(&key, head, now_ms, &entries))
            .await;
        match result {
            Ok(rows) => {
                for (row, reply) in rows.iter().zip(replies) {
                    let mut hash = [0u8; 32];
                    hash.copy_from_slice(&row.hash);
                    // A waiter that gave up (client gone) needs no answer.
                    let _ = reply.send(Ok(Committed { seq: row.seq, hash }));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, entries = replies.len(), "audit batch not committed");
                let err = AuditError::Store(e.to_string());
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}

pub(crate) fn unix_ms(clock: &Clock) -> i64 {
    i64::try_from(clock.now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn chain_batch(key: &hmac::Key, head: ChainHead, ts: i64, entries: &[NewEntry]) -> Vec<AuditRow> {
    let mut prev = head.hash;
    let mut seq = head.seq;
    entries
        .iter()
        .map(|e| {
            seq += 1;
            let mut row = AuditRow {
                seq,
                ts,
                actor_kind: e.actor_kind.as_str().to_owned(),
                actor_id: e.actor_id.clone(),
                action: e.action.clone(),
                target: e.target.clone(),
                outcome: e.outcome.as_str().to_owned(),
                source_ip: e.source_ip.clone(),
                request_id: e.request_id.clone(),
                http_method: e.http.as_ref().map(|h| h.method.clone()),
                http_path: e.http.as_ref().map(|h| h.path.clone()),
                http_status: e.http.as_ref().map(|h| i64::from(h.status)),
                // serde_json's Map is ordered by key here, so this text is canonical.
                detail: Value::Object(e.detail.clone()).to_string(),
                prev_hash: prev.to_vec(),
                hash: Vec::new(),
            };
            let hash = entry_hash(key, &row);
            row.hash = hash.to_vec();
            prev = hash;
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Outcome;

    #[test]
    fn outcome_of_status() {
        for (status, outcome) in [
            (200, Outcome::Success),
            (201, Outcome::Success),
            (302, Outcome::Success),
            (400, Outcome::Error),
            (401, Outcome::Denied),
            (403, Outcome::Denied),
            (404, Outcome::Error),
            (423, Outcome::Denied),
            (429, Outcome::RateLimited),
            (500, Outcome::Error),
            (503, Outcome::Error),
        ] {
            assert_eq!(Outcome::of_status(status), outcome, "{status}");
        }
    }
}

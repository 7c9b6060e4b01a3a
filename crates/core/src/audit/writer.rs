//! The one writer of the audit log, and of every change of vault state: group commit over an mpsc
//! channel.
//!
//! Every caller waits for the durable commit of its entry before it goes on (fail closed). The
//! task drains whatever is queued and opens one `BEGIN IMMEDIATE` transaction (`synchronous=FULL`)
//! for the batch. A job that carries a change runs it inside that transaction, under a savepoint:
//! a change that fails is undone alone and answered at once, and its entry is not written (the
//! request's own entry records the refusal). Then the batch's entries are chained onto the head
//! read inside the transaction and inserted, and only after the commit are the waiters answered.
//! So a change and its audit entry commit together or not at all; a failed transaction answers
//! every waiter with an error and changes nothing, and the next batch starts again from the head
//! on disk. Once a job is queued it runs to its end even if its caller is dropped (a client that
//! disconnects cannot cut a change off from its record). A batch of entries alone (every token
//! use, every read), or of entries and plain rows ([`AuditWriter::commit_row`]: a proxied call's
//! draft or image), is handed to the store whole ([`Store::audit_append`]), which SQLite runs on
//! the writer's own thread with no hop to another; a refused row is undone alone there too.

use std::future::Future;
use std::pin::Pin;

use crate::crypto::MacKey;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use super::chain::entry_hash;
use super::context::ActorKind;
use crate::clock::Clock;
use crate::error::Error;
use crate::store::audit::{AuditRow, ChainHead};
use crate::store::{AppendRow, Store, Tx};

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
    /// None for a change committed with its entry before the response existed.
    pub status: Option<u16>,
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

/// Answers the caller of a plain row: committed with its entry, or why the row was refused.
type RowReply = oneshot::Sender<Result<Committed, Error>>;

/// A future that borrows the batch transaction.
pub type TxFuture<'t, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 't>>;

/// Answers the caller of a change once the batch's fate is known.
type Finish = Box<dyn FnOnce(Result<Committed, AuditError>) + Send>;

/// A change with its result type erased: runs in the batch transaction; on success it hands back
/// what answers its caller after the commit, on failure it has answered the caller already.
type Change = Box<
    dyn for<'t> FnOnce(&'t mut Tx) -> Pin<Box<dyn Future<Output = Option<Finish>> + Send + 't>>
        + Send,
>;

enum Job {
    Entry(NewEntry, Reply),
    Change(NewEntry, Change),
    /// A change that is one plain row ([`AppendRow`]): it keeps a batch on the append path.
    Row(NewEntry, AppendRow, RowReply),
}

/// Handle to the writer (a task on a thread of its own); cheap to clone. The writer and its
/// thread end when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct AuditWriter {
    tx: mpsc::Sender<Job>,
    stats: crate::telemetry::AuditStats,
    /// Becomes true when the writer has stopped other than by its last handle going: its thread
    /// could not start, or a change panicked inside it ([`Self::stopped`]).
    down: tokio::sync::watch::Receiver<bool>,
}

/// Owned by the writer's thread: says the writer is down unless the thread got to the end of a
/// normal run (a panic unwinds through it; a thread that never started drops it unrun).
struct DownOnDrop {
    down: tokio::sync::watch::Sender<bool>,
    ended_normally: bool,
}

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        if !self.ended_normally {
            self.down.send_replace(true);
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl AuditWriter {
    /// Starts the writer on a thread of its own (with a one-thread runtime). On the server's
    /// runtime, each of a batch's round trips to the database connection came back behind every
    /// request task woken meanwhile, and the one writer's batches are what every answer waits
    /// for: docs/benchmark.md has the figures. The chain head is read from the store inside
    /// every batch transaction, so it starts from the store's current head. If the thread cannot
    /// start, every record fails (the channel is closed): fail closed.
    pub fn start(store: Store, key: MacKey, clock: Clock) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = crate::telemetry::AuditStats::default();
        let task = run(store, key, clock, rx, stats.clone());
        let (down_tx, down) = tokio::sync::watch::channel(false);
        let mut guard = DownOnDrop {
            down: down_tx,
            ended_normally: false,
        };
        let spawned = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => {
                        rt.block_on(task);
                        guard.ended_normally = true;
                    }
                    Err(e) => tracing::error!(error = %e, "the audit writer could not start"),
                }
                drop(guard);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "the audit writer could not start");
        }
        Self { tx, stats, down }
    }

    /// Resolves once the writer has stopped for good while handles remain: its thread could not
    /// start, or a change panicked inside it. Every audited request is refused from then on, so
    /// the server stops rather than serve nothing (`mediavault serve` exits with an error; its
    /// service manager restarts it, and in a cluster a standby takes over).
    pub async fn stopped(&self) {
        let mut down = self.down.clone();
        // An error means the thread ended normally, which it does only once no handle is left.
        if down.wait_for(|d| *d).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Commit latency and batch sizes, for `/metrics`.
    pub fn stats(&self) -> &crate::telemetry::AuditStats {
        &self.stats
    }

    /// Whether the writer still takes entries. It stops only if its thread could not start or
    /// a change panicked inside it; then every audited request is refused (503), and `/readyz`
    /// says so.
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Jobs queued and not yet taken by the writer.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Records an entry and returns once it is durably committed.
    pub async fn record(&self, entry: NewEntry) -> Result<Committed, AuditError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job::Entry(entry, reply))
            .await
            .map_err(|_| AuditError::Stopped)?;
        answer.await.map_err(|_| AuditError::Stopped)?
    }

    /// Runs `change` inside the writer's transaction and commits it together with `entry` (plus
    /// whatever the change noted with [`Tx::note`]). Returns the change's result once both are
    /// durable. If the change fails, nothing of it is kept and its error is returned; if the
    /// audit entry cannot be written, the change is undone and `Unavailable` is returned.
    pub async fn commit<T, F>(&self, entry: NewEntry, change: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut Tx) -> TxFuture<'t, T> + Send + 'static,
    {
        Ok(self.commit_entry(entry, change).await?.0)
    }

    /// As [`Self::commit`], also returning the committed entry (its sequence number names it).
    pub async fn commit_entry<T, F>(
        &self,
        entry: NewEntry,
        change: F,
    ) -> Result<(T, Committed), Error>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut Tx) -> TxFuture<'t, T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<(T, Committed), Error>>();
        let job: Change = Box::new(move |tx: &mut Tx| {
            Box::pin(async move {
                match change(tx).await {
                    Ok(value) => Some(Box::new(move |done: Result<Committed, AuditError>| {
                        let _ = reply.send(done.map(|c| (value, c)).map_err(Error::from));
                    }) as Finish),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        None
                    }
                }
            })
        });
        self.submit(Job::Change(entry, job), answer, "the change ran")
            .await
    }

    /// Commits `row` together with `entry`, as [`Self::commit`] does a change; a row refused by
    /// the store (a key that exists) is not kept, its entry is not written, and its error is
    /// returned. A batch whose changes are all such rows takes the store's append path
    /// ([`Store::audit_append`]) whole.
    pub async fn commit_row(&self, entry: NewEntry, row: AppendRow) -> Result<Committed, Error> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Row(entry, row, reply), answer, "the row was written")
            .await
    }

    /// Queues `job` and waits for its answer. A closed answer channel means the job never ran
    /// (its batch failed before it got there, `before` says what did not happen): 503.
    async fn submit<T>(
        &self,
        job: Job,
        answer: oneshot::Receiver<Result<T, Error>>,
        before: &str,
    ) -> Result<T, Error> {
        self.tx
            .send(job)
            .await
            .map_err(|_| Error::from(AuditError::Stopped))?;
        answer
            .await
            .map_err(|_| Error::from(AuditError::Store(format!("batch failed before {before}"))))?
    }

    /// Records an event that is not a request (actor kind `system` unless the entry says else).
    pub async fn record_event(&self, entry: NewEntry) -> Result<Committed, AuditError> {
        self.record(entry).await
    }
}

async fn run(
    store: Store,
    key: MacKey,
    clock: Clock,
    mut rx: mpsc::Receiver<Job>,
    stats: crate::telemetry::AuditStats,
) {
    // The three buffers live as long as the writer: a batch fills them and leaves them empty,
    // so a busy writer allocates nothing for them (a fresh vector per batch grew by doubling
    // inside `recv_many`, a few percent of the vault's CPU under token load).
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut entries = Vec::with_capacity(MAX_BATCH);
    let mut waiters: Vec<Waiter> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let started = std::time::Instant::now();
        stats.batch_size.observe(batch.len() as f64);
        let result = write_batch(
            &store,
            &key,
            &clock,
            batch.drain(..),
            &mut entries,
            &mut waiters,
        )
        .await;
        entries.clear();
        stats
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(rows) => {
                for (row, waiter) in rows.iter().zip(waiters.drain(..)) {
                    let mut hash = [0u8; 32];
                    hash.copy_from_slice(&row.hash);
                    // A waiter that gave up (client gone) needs no answer.
                    waiter.answer(Ok(Committed { seq: row.seq, hash }));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, entries = waiters.len(), "audit batch not committed");
                let err = AuditError::Store(e.to_string());
                for waiter in waiters.drain(..) {
                    waiter.answer(Err(err.clone()));
                }
            }
        }
    }
}

/// Who waits for an entry of the batch.
enum Waiter {
    Entry(Reply),
    Change(Finish),
    Row(RowReply),
}

impl Waiter {
    fn answer(self, r: Result<Committed, AuditError>) {
        match self {
            Waiter::Entry(reply) => {
                let _ = reply.send(r);
            }
            Waiter::Change(finish) => finish(r),
            Waiter::Row(reply) => {
                let _ = reply.send(r.map_err(Error::from));
            }
        }
    }
}

/// One batch in one transaction: the changes under savepoints, then the entries of every job that
/// is still standing, chained and inserted. `entries` and `waiters` stay index-aligned; on error
/// every waiter collected so far is answered by the caller.
async fn write_batch(
    store: &Store,
    key: &MacKey,
    clock: &Clock,
    jobs: std::vec::Drain<'_, Job>,
    entries: &mut Vec<NewEntry>,
    waiters: &mut Vec<Waiter>,
) -> Result<Vec<AuditRow>, crate::store::StoreError> {
    if jobs
        .as_slice()
        .iter()
        .all(|job| matches!(job, Job::Entry(..) | Job::Row(..)))
    {
        // No general change to run: the backend takes the whole transaction in one step.
        let mut rows = Vec::with_capacity(jobs.len());
        for job in jobs {
            match job {
                Job::Entry(entry, reply) => {
                    entries.push(entry);
                    rows.push(None);
                    waiters.push(Waiter::Entry(reply));
                }
                Job::Row(entry, row, reply) => {
                    entries.push(entry);
                    rows.push(Some(row));
                    waiters.push(Waiter::Row(reply));
                }
                // Not here (checked above); never dropped without its caller hearing.
                Job::Change(_, change) => fail_unrun(change),
            }
        }
        let ts = unix_ms(clock);
        let appended = store
            .audit_append(
                &rows,
                Box::new(|head, standing| {
                    let standing = entries
                        .drain(..)
                        .zip(standing)
                        .filter_map(|(e, s)| s.then_some(e));
                    chain_batch(key, head, ts, standing)
                }),
            )
            .await?;
        // A refused row is answered now with its refusal; the waiters left stay aligned with
        // the rows that were chained. Most batches (every token use) have none to take out.
        if appended.refused.iter().all(Option::is_none) {
            return Ok(appended.rows);
        }
        let all = std::mem::take(waiters);
        for (waiter, refused) in all.into_iter().zip(appended.refused) {
            match (waiter, refused) {
                (Waiter::Row(reply), Some(e)) => {
                    let _ = reply.send(Err(Error::from(e)));
                }
                (waiter, _) => waiters.push(waiter),
            }
        }
        return Ok(appended.rows);
    }
    let mut pending = jobs;
    let mut tx = match store.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            // Nothing ran: every job is answered with the error.
            for job in pending {
                unrun(job, waiters);
            }
            return Err(e);
        }
    };
    let mut failure = None;
    // (index of the entry, rows that must name its seq)
    let mut links: Vec<(usize, Vec<crate::store::SeqLink>)> = Vec::new();
    for job in pending.by_ref() {
        match job {
            Job::Entry(entry, reply) => {
                entries.push(entry);
                waiters.push(Waiter::Entry(reply));
            }
            Job::Row(entry, row, reply) => match row.insert_alone(&mut *tx).await {
                Ok(None) => {
                    entries.push(entry);
                    waiters.push(Waiter::Row(reply));
                }
                // Refused alone, as a failed change is: answered at once.
                Ok(Some(e)) => {
                    let _ = reply.send(Err(Error::from(e)));
                }
                Err(e) => {
                    waiters.push(Waiter::Row(reply));
                    failure = Some(e);
                    break;
                }
            },
            Job::Change(mut entry, change) => {
                if let Err(e) = tx.savepoint().await {
                    fail_unrun(change);
                    failure = Some(e);
                    break;
                }
                let finish = change(&mut tx).await;
                let notes = tx.take_notes();
                let asked = tx.take_links();
                if let Err(e) = tx.end_savepoint(finish.is_some()).await {
                    if let Some(f) = finish {
                        waiters.push(Waiter::Change(f));
                    }
                    failure = Some(e);
                    break;
                }
                if let Some(f) = finish {
                    entry.detail.extend(notes);
                    if !asked.is_empty() {
                        links.push((entries.len(), asked));
                    }
                    entries.push(entry);
                    waiters.push(Waiter::Change(f));
                }
            }
        }
    }
    if let Some(e) = failure {
        for job in pending {
            unrun(job, waiters);
        }
        return Err(e);
    }
    let head = tx.audit_head().await?;
    let rows = chain_batch(key, head, unix_ms(clock), entries.drain(..));
    tx.audit_insert(&rows).await?;
    for (index, asked) in &links {
        if let Some(row) = rows.get(*index) {
            for link in asked {
                tx.apply_link(link, row.seq).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(rows)
}

/// Appends many entries in one transaction, chained onto the head read inside it (so it cannot
/// fork the chain even beside a running writer), stamped `ts_ms` (or the head's time, if later).
/// For seeding large logs that span months (the benchmark); a request's entry always goes
/// through [`AuditWriter`].
#[cfg(feature = "seeding")]
pub async fn append_bulk(
    store: &Store,
    key: &MacKey,
    ts_ms: i64,
    entries: Vec<NewEntry>,
) -> Result<(), crate::store::StoreError> {
    let mut tx = store.begin().await?;
    let head = tx.audit_head().await?;
    let rows = chain_batch(key, head, ts_ms, entries);
    tx.audit_insert(&rows).await?;
    tx.commit().await
}

/// A job of a batch that failed before it ran: its caller hears the batch's error (an entry or a
/// row through the waiters the caller answers, a change through its closed reply).
fn unrun(job: Job, waiters: &mut Vec<Waiter>) {
    match job {
        Job::Entry(_, reply) => waiters.push(Waiter::Entry(reply)),
        Job::Row(_, _, reply) => waiters.push(Waiter::Row(reply)),
        Job::Change(_, change) => fail_unrun(change),
    }
}

/// A change that never ran because its batch failed first. The closure owns its caller's reply
/// channel; dropping it closes the channel, which the caller reads as `AuditUnavailable` (503):
/// nothing was changed and nothing recorded.
fn fail_unrun(change: Change) {
    drop(change);
}

pub fn unix_ms(clock: &Clock) -> i64 {
    i64::try_from(clock.now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The rows of `entries`, chained onto `head` and stamped `ts`, or the head's own time if the
/// clock has stepped back since: an entry is never earlier than the one before it, so the log's
/// time order is its chain order and a time range is a range of seqs (what the audit filters
/// rely on). Each entry's texts move into its row.
fn chain_batch(
    key: &MacKey,
    head: ChainHead,
    ts: i64,
    entries: impl IntoIterator<Item = NewEntry>,
) -> Vec<AuditRow> {
    let ts = ts.max(head.ts);
    let mut prev = head.hash;
    let mut seq = head.seq;
    entries
        .into_iter()
        .map(|e| {
            seq += 1;
            let (http_method, http_path, http_status) = match e.http {
                Some(h) => (Some(h.method), Some(h.path), h.status.map(i64::from)),
                None => (None, None, None),
            };
            let mut row = AuditRow {
                seq,
                ts,
                actor_kind: e.actor_kind.as_str().to_owned(),
                actor_id: e.actor_id,
                action: e.action,
                target: e.target,
                outcome: e.outcome.as_str().to_owned(),
                source_ip: e.source_ip,
                request_id: e.request_id,
                http_method,
                http_path,
                http_status,
                // serde_json's Map is ordered by key here, so this text is canonical. Written
                // from the borrowed map (the same text `Value::Object(..).to_string()` gives,
                // without copying the map first).
                detail: detail_text(&e.detail),
                prev_hash: prev.to_vec(),
                hash: Vec::new(),
            };
            let hash = entry_hash(key, row.fields());
            row.hash = hash.to_vec();
            prev = hash;
            row
        })
        .collect()
}

/// The detail's JSON text. A map with string keys and JSON values has no way to fail
/// serializing (a `Value` cannot hold a non-finite number), just as `Value`'s own `Display`,
/// which this replaces, assumed.
fn detail_text(detail: &Map<String, Value>) -> String {
    // Cannot fire: see above; `ToString` on the `Value` panicked in the same case.
    #[allow(clippy::expect_used)]
    serde_json::to_string(detail).expect("a JSON map always serializes")
}

// Here, not in `error`, so the error module knows nothing of the audit log above it.
impl From<AuditError> for Error {
    fn from(e: AuditError) -> Self {
        tracing::error!(error = %e, "audit entry not written; the change was not made");
        Error::AuditUnavailable
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::{AuditWriter, NewEntry, Outcome};
    use crate::clock::Clock;
    use crate::crypto::MacKey;
    use crate::error::Error;

    /// The stored detail text, which the entry's hash covers, is what it was when it came from
    /// `Value::Object(map).to_string()`: key order, escapes, numbers and nesting alike.
    #[test]
    fn detail_text_is_the_value_text() {
        let detail = serde_json::json!({
            "zeta": "quote \" back\\slash\n tab\t 中文 \u{1}",
            "alpha": 12,
            "neg": -3.5,
            "nested": {"b": [true, null, "x"], "a": {}},
            "empty": "",
        });
        let map = detail.as_object().unwrap().clone();
        assert_eq!(super::detail_text(&map), detail.to_string());
        assert!(super::detail_text(&map).starts_with("{\"alpha\":12,"));
    }

    /// A clock stepped back (an NTP correction) cannot stamp an entry earlier than the one before
    /// it: the audit filters take a time range as a range of seqs.
    #[test]
    fn entries_are_never_stamped_before_the_head() {
        let key = MacKey::new(crate::crypto::Suite::Standard, &[7u8; 32]);
        let head = crate::store::audit::ChainHead {
            seq: 41,
            hash: [1u8; 32],
            ts: 5_000,
        };
        let e = NewEntry::system("test.step", "x", Outcome::Success);
        let rows = super::chain_batch(&key, head, 4_000, [e.clone(), e.clone()]);
        assert_eq!(
            rows.iter().map(|r| (r.seq, r.ts)).collect::<Vec<_>>(),
            vec![(42, 5_000), (43, 5_000)]
        );
        let rows = super::chain_batch(&key, head, 6_000, [e]);
        assert_eq!(rows[0].ts, 6_000);
    }

    /// Changes queued together run in one batch transaction, each under its own savepoint (kept
    /// ones stay open until the COMMIT): a failing change in the middle leaves no trace, and the
    /// changes before and after it are committed with their entries on one unbroken chain.
    #[tokio::test]
    async fn a_failed_change_in_a_batch_is_undone_alone() {
        let (_dir, store, raw) = mediavault_store_sqlite::testing::open_temp().await;
        sqlx::query("CREATE TABLE t (name TEXT NOT NULL)")
            .execute(&raw)
            .await
            .unwrap();
        let key = MacKey::new(crate::crypto::Suite::Standard, &[7u8; 32]);
        let writer = AuditWriter::start(store.clone(), key.clone(), Clock::system());
        let put = |name: &'static str, fail: bool| {
            let w = writer.clone();
            async move {
                w.commit(
                    NewEntry::system("test.change", name, Outcome::Success),
                    move |tx| {
                        Box::pin(async move {
                            sqlx::query("INSERT INTO t (name) VALUES (?)")
                                .bind(name)
                                .execute(mediavault_store_sqlite::testing::conn(tx))
                                .await
                                .map_err(crate::store::StoreError::from)?;
                            if fail {
                                return Err(Error::invalid("name", "refused after its insert"));
                            }
                            Ok(())
                        })
                    },
                )
                .await
            }
        };
        // Queued before the writer runs (this runtime has one thread), so one batch takes all.
        let (a, b, c, d, e) = tokio::join!(
            put("a", false),
            put("b", true),
            put("c", false),
            put("d", true),
            put("e", false)
        );
        assert!(a.is_ok() && c.is_ok() && e.is_ok());
        assert!(b.is_err() && d.is_err());
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM t ORDER BY rowid")
            .fetch_all(&raw)
            .await
            .unwrap();
        assert_eq!(names, ["a", "c", "e"]);
        let targets: Vec<String> = sqlx::query_scalar(
            "SELECT target FROM audit_log WHERE action = 'test.change' ORDER BY seq",
        )
        .fetch_all(&raw)
        .await
        .unwrap();
        assert_eq!(targets, ["a", "c", "e"]);
        let report = crate::audit::verify_store(&store, &key).await.unwrap();
        assert!(report.ok, "{report:?}");
        // The next batch starts clean on the same connection.
        put("f", false).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&raw)
            .await
            .unwrap();
        assert_eq!(n, 4);
    }

    /// A plain row the store refuses (here a draft of a checkout that does not exist) answers
    /// its caller with the refusal and leaves neither the row nor its entry, on the append path
    /// (a batch of entries and rows) and beside a change (a general transaction) alike; the
    /// entries around it commit on one unbroken chain.
    #[tokio::test]
    async fn a_refused_row_is_undone_alone_on_either_path() {
        let (_dir, store, raw) = mediavault_store_sqlite::testing::open_temp().await;
        let key = MacKey::new(crate::crypto::Suite::Standard, &[7u8; 32]);
        let writer = AuditWriter::start(store.clone(), key.clone(), Clock::system());
        let draft = || {
            crate::store::AppendRow::CheckoutMedia(crate::store::posts::MediaRow {
                checkout_id: "no-such-checkout".into(),
                account_id: "acct".into(),
                kind: crate::store::types::MediaKind::Draft,
                platform_id: "m1".into(),
                sha256: "00".into(),
                created_at: 1,
                used_at: None,
            })
        };
        let entry = |target: &str| NewEntry::system("test.row", target, Outcome::Success);
        // Queued before the writer runs (this runtime has one thread), so one batch takes all.
        let (a, b, c) = tokio::join!(
            writer.record(entry("a")),
            writer.commit_row(entry("b"), draft()),
            writer.record(entry("c")),
        );
        assert!(a.is_ok() && c.is_ok());
        assert!(matches!(b, Err(Error::Internal(_))), "{b:?}");
        let (d, e, f) = tokio::join!(
            writer.commit_row(entry("d"), draft()),
            writer.commit(entry("e"), |_| Box::pin(async { Ok(()) })),
            writer.record(entry("f")),
        );
        assert!(d.is_err() && e.is_ok() && f.is_ok());
        let targets: Vec<String> = sqlx::query_scalar(
            "SELECT target FROM audit_log WHERE action = 'test.row' ORDER BY seq",
        )
        .fetch_all(&raw)
        .await
        .unwrap();
        assert_eq!(targets, ["a", "c", "e", "f"]);
        let media: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM checkout_media")
            .fetch_one(&raw)
            .await
            .unwrap();
        assert_eq!(media, 0);
        let report = crate::audit::verify_store(&store, &key).await.unwrap();
        assert!(report.ok, "{report:?}");
    }

    /// A measurement, not a check: how many request-shaped entries the writer commits per second
    /// with 64 callers on this machine, and the process CPU per entry. Run by name with
    /// `--ignored --nocapture` on a release build.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement; run by name"]
    async fn writer_throughput() {
        let (_dir, store, _raw) = mediavault_store_sqlite::testing::open_temp().await;
        let key = MacKey::new(crate::crypto::Suite::Standard, &[7u8; 32]);
        let writer = AuditWriter::start(store.clone(), key.clone(), Clock::system());
        let secs: f64 = std::env::var("MV_WRITER_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0);
        let callers: usize = std::env::var("MV_WRITER_CALLERS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(64);
        let cpu = || {
            let s = std::fs::read_to_string("/proc/self/stat").unwrap();
            let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
            (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let cpu0 = cpu();
        let t0 = std::time::Instant::now();
        let mut tasks = Vec::new();
        for i in 0..callers {
            let (w, stop, count) = (writer.clone(), stop.clone(), count.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut e = NewEntry::system("token.introspect", "acct-0001", Outcome::Success);
                    e.actor_kind = super::ActorKind::Token;
                    e.actor_id = format!("chk-{i:04}");
                    e.source_ip = "127.0.0.1".into();
                    e.request_id = "01JABCDEFGHJKMNPQRSTVWXYZ0".into();
                    e.http = Some(super::HttpInfo {
                        method: "GET".into(),
                        path: "/api/v1/token".into(),
                        status: Some(200),
                    });
                    w.record(e).await.unwrap();
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }));
        }
        tokio::time::sleep(std::time::Duration::from_secs_f64(secs)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        let el = t0.elapsed().as_secs_f64();
        let n = count.load(std::sync::atomic::Ordering::Relaxed) as f64;
        let c = cpu() - cpu0;
        println!(
            "writer: {:.0} entries/s, {:.1} us CPU per entry, {:.2} cores",
            n / el,
            c / n * 1e6,
            c / el
        );
    }

    /// A change that panics takes the writer down with it (nothing half-done is committed), and
    /// the handle says so: `stopped` resolves (the server stops on it) and `is_running` is false
    /// (what `/readyz` reports); every later record is refused.
    #[tokio::test]
    async fn a_writer_stopped_by_a_panicking_change_says_it_is_not_running() {
        let (_dir, store, _raw) = mediavault_store_sqlite::testing::open_temp().await;
        let key = MacKey::new(crate::crypto::Suite::Standard, &[7u8; 32]);
        let writer = AuditWriter::start(store.clone(), key, Clock::system());
        writer
            .record(NewEntry::system("test.step", "before", Outcome::Success))
            .await
            .unwrap();
        assert!(writer.is_running());
        let crashed = writer
            .commit(
                NewEntry::system("test.change", "panics", Outcome::Success),
                |_tx| Box::pin(async { panic!("a change that panics") }),
            )
            .await;
        assert!(matches!(crashed, Err::<(), _>(Error::AuditUnavailable)));
        // The thread unwinds: the handle says the writer is down (what stops the server).
        tokio::time::timeout(std::time::Duration::from_secs(10), writer.stopped())
            .await
            .expect("the writer says it stopped");
        assert!(!writer.is_running());
        assert!(
            writer
                .record(NewEntry::system("test.step", "after", Outcome::Success))
                .await
                .is_err()
        );
        let head = store.audit_head().await.unwrap();
        assert_eq!(head.seq, 1, "only the entry before the panic is in the log");
    }

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

//! The tamper-evident audit log.
//!
//! - [`writer`]: [`AuditWriter`], the single group-committing writer every change, request and
//!   domain event goes through, and [`NewEntry`].
//! - [`context`]: the per-request context (request id, peer, the note the services fill in).
//! - [`review`]: the audit review service (`vault.audit_review()`): query, verify, export.
//! - [`chain`]: the HMAC-SHA256 chain encoding, [`chain::Verifier`], checkpoints and prune anchors.
//! - [`query`]: filtering for `GET /audit` and verification of the stored chain.
//! - [`export`]: JSONL/CSV exports that carry the chain fields, and offline re-verification.

pub mod chain;
pub mod context;
pub mod export;
pub mod query;
pub mod review;
pub mod writer;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use chain::{Checkpoint, VerifyReport};
pub use query::{verify_store, verify_store_with};
pub use writer::{AuditError, AuditWriter, Committed, HttpInfo, NewEntry, Outcome, TxFuture};

use crate::store::audit::AuditRow;
use context::{ActorKind, RequestCtx};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorView {
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpView {
    pub method: String,
    pub path: String,
    /// Null for a change committed with its own entry before the response was rendered.
    pub status: Option<i64>,
}

/// An entry as the API shows it: `ts` in RFC 3339 UTC with milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryView {
    pub seq: i64,
    pub ts: String,
    pub actor: ActorView,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub source_ip: String,
    pub request_id: String,
    pub http: Option<HttpView>,
    pub detail: Value,
}

impl From<&AuditRow> for EntryView {
    fn from(r: &AuditRow) -> Self {
        let http = match (&r.http_method, &r.http_path, r.http_status) {
            (Some(m), Some(p), s) => Some(HttpView {
                method: m.clone(),
                path: p.clone(),
                status: s,
            }),
            _ => None,
        };
        Self {
            seq: r.seq,
            ts: rfc3339_ms(r.ts),
            actor: ActorView {
                kind: r.actor_kind.clone(),
                id: r.actor_id.clone(),
            },
            action: r.action.clone(),
            target: r.target.clone(),
            outcome: r.outcome.clone(),
            source_ip: r.source_ip.clone(),
            request_id: r.request_id.clone(),
            http,
            detail: serde_json::from_str(&r.detail).unwrap_or(Value::Object(Map::new())),
        }
    }
}

/// Unix milliseconds as RFC 3339 UTC with exactly three fractional digits.
pub fn rfc3339_ms(ms: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// Parses an RFC 3339 time into unix milliseconds.
pub fn parse_time_ms(s: &str) -> Option<i64> {
    let t = crate::clock::parse_rfc3339(s)?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The entry for one finished request: who and what from the handler's note, the rest from the
/// request and its response. An error response's code goes into `detail.code`.
pub fn request_entry(
    ctx: &RequestCtx,
    method: &str,
    path: &str,
    status: u16,
    error_code: Option<&str>,
) -> NewEntry {
    let note = ctx.note();
    let (actor_kind, actor_id) = note.actor.unwrap_or((ActorKind::Anonymous, String::new()));
    let mut detail = note.detail;
    if let Some(code) = error_code {
        detail.insert("code".into(), Value::String(code.to_owned()));
    }
    NewEntry {
        actor_kind,
        actor_id,
        action: note.action.unwrap_or_else(|| "http.request".into()),
        target: note.target.unwrap_or_else(|| path.to_owned()),
        outcome: Outcome::of_status(status),
        source_ip: ctx.peer.to_string(),
        request_id: ctx.request_id.clone(),
        http: Some(HttpInfo {
            method: method.to_owned(),
            path: path.to_owned(),
            status: Some(status),
        }),
        detail,
    }
}

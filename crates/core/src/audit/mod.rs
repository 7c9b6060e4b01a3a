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
pub mod writer;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use chain::{Checkpoint, VerifyReport};
pub use query::{verify_store, verify_store_with};
pub use writer::{AuditError, AuditWriter, Committed, HttpInfo, NewEntry, Outcome, TxFuture};

use crate::store::audit::AuditRow;
use context::{ActorKind, RequestCtx};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActorView {
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HttpView {
    pub method: String,
    pub path: String,
    /// Null for a change committed with its own entry before the response was rendered.
    pub status: Option<i64>,
}

/// An entry as the API shows it: `ts` in RFC 3339 UTC with milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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

/// The most bytes of one client-supplied text an entry keeps (path, target, method, actor id, a
/// string in `detail`). Every request is audited, anonymous ones included, so without a cap one
/// client with long URLs could grow the log by megabytes a second.
pub const MAX_FIELD_BYTES: usize = 512;

/// Appended where a text was cut.
pub const TRUNCATION_MARK: &str = "…";

/// `text` cut to [`MAX_FIELD_BYTES`] (on a character boundary) and marked; the original length is
/// noted under `name` in `truncated`. Taken by value: a text within the cap, nearly every one,
/// is kept as it is, not copied.
pub(crate) fn capped(name: &str, mut text: String, truncated: &mut Map<String, Value>) -> String {
    if text.len() <= MAX_FIELD_BYTES {
        return text;
    }
    let mut end = MAX_FIELD_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    truncated.insert(name.to_owned(), Value::from(text.len()));
    text.truncate(end);
    text.push_str(TRUNCATION_MARK);
    text
}

/// The entry for one finished request: who and what from the handler's note, the rest from the
/// request (its method and path as the context holds them, already capped) and its response. An
/// error response's code goes into `detail.code`. Client-supplied texts are capped;
/// `detail.truncated` maps each cut field to its original length in bytes. It takes the
/// request's note: call it once, when the request is over.
pub fn request_entry(ctx: &RequestCtx, status: u16, error_code: Option<&str>) -> NewEntry {
    let note = ctx.take_note();
    let (actor_kind, actor_id) = note.actor.unwrap_or((ActorKind::Anonymous, String::new()));
    let mut truncated = Map::new();
    let mut detail = note.detail;
    for (key, value) in detail.iter_mut() {
        // The name is only made for a text that is cut.
        if let Value::String(s) = value
            && s.len() > MAX_FIELD_BYTES
        {
            *s = capped(&format!("detail.{key}"), std::mem::take(s), &mut truncated);
        }
    }
    if let Some(code) = error_code {
        detail.insert("code".into(), Value::String(code.to_owned()));
    }
    let target = match note.target {
        Some(t) => capped("target", t, &mut truncated),
        // The path, as the context capped it; a cut one was cut as the target too.
        None => {
            if let Some(len) = ctx.truncated.get("http.path") {
                truncated.insert("target".into(), len.clone());
            }
            ctx.path.clone()
        }
    };
    let actor_id = capped("actor.id", actor_id, &mut truncated);
    truncated.extend(ctx.truncated.iter().map(|(k, v)| (k.clone(), v.clone())));
    let http = HttpInfo {
        method: ctx.method.clone(),
        path: ctx.path.clone(),
        status: Some(status),
    };
    if !truncated.is_empty() {
        detail.insert("truncated".into(), Value::Object(truncated));
    }
    NewEntry {
        actor_kind,
        actor_id,
        action: note.action.unwrap_or_else(|| "http.request".into()),
        target,
        // A passed-through platform error answers 200 (WeChat's way) but is an error.
        outcome: match error_code {
            Some(_) if status < 400 => Outcome::Error,
            _ => Outcome::of_status(status),
        },
        source_ip: ctx.peer.to_string(),
        request_id: ctx.request_id.clone(),
        http: Some(http),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_texts_are_capped_on_a_char_boundary() {
        let ctx = RequestCtx::new("r".into(), None);
        ctx.detail("call", "é".repeat(400));
        let path = format!("/{}", "é".repeat(1000));
        let ctx = ctx.with_http("GET", &path);
        let e = request_entry(&ctx, 404, Some("not_found"));
        let http = e.http.expect("a request entry");
        assert!(http.path.len() <= MAX_FIELD_BYTES + TRUNCATION_MARK.len());
        assert!(http.path.ends_with(TRUNCATION_MARK));
        assert_eq!(e.target, http.path);
        assert_eq!(e.detail["truncated"]["http.path"], path.len());
        assert_eq!(e.detail["truncated"]["target"], path.len());
        assert_eq!(e.detail["truncated"]["detail.call"], 800);
        assert_eq!(e.detail["code"], "not_found");
        let short = request_entry(
            &RequestCtx::new("r".into(), None).with_http("GET", "/x"),
            200,
            None,
        );
        assert!(short.detail.get("truncated").is_none());
    }
}

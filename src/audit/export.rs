//! Exports with the chain fields, and their offline re-verification.
//!
//! A JSONL line is the API's entry plus `ts_ms` (the exact hashed timestamp), `prev_hash` and
//! `hash` in hex. `detail` is re-serialised with serde_json, which writes a parsed map back to the
//! same canonical text that was hashed, so a line re-verifies without the database.

use ring::hmac;
use serde::{Deserialize, Serialize};

use super::chain::{Checkpoint, Verifier, VerifyReport};
use super::{EntryView, HttpView};
use crate::store::audit::AuditRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jsonl,
    Csv,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jsonl => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    #[serde(flatten)]
    entry: EntryView,
    ts_ms: i64,
    prev_hash: String,
    hash: String,
}

pub fn jsonl_line(r: &AuditRow) -> String {
    let line = Line {
        entry: EntryView::from(r),
        ts_ms: r.ts,
        prev_hash: hex::encode(&r.prev_hash),
        hash: hex::encode(&r.hash),
    };
    serde_json::to_string(&line).unwrap_or_default()
}

const CSV_HEADER: &str = "seq,ts,ts_ms,actor_kind,actor_id,action,target,outcome,source_ip,request_id,http_method,http_path,http_status,detail,prev_hash,hash";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

pub fn csv_line(r: &AuditRow) -> String {
    let fields = [
        r.seq.to_string(),
        super::rfc3339_ms(r.ts),
        r.ts.to_string(),
        r.actor_kind.clone(),
        r.actor_id.clone(),
        r.action.clone(),
        r.target.clone(),
        r.outcome.clone(),
        r.source_ip.clone(),
        r.request_id.clone(),
        r.http_method.clone().unwrap_or_default(),
        r.http_path.clone().unwrap_or_default(),
        r.http_status.map(|s| s.to_string()).unwrap_or_default(),
        r.detail.clone(),
        hex::encode(&r.prev_hash),
        hex::encode(&r.hash),
    ];
    fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",")
}

/// The whole export text of `rows` (header included for CSV), each line ending in `\n`.
pub fn render(format: Format, rows: &[AuditRow]) -> String {
    let mut out = String::new();
    if format == Format::Csv {
        out.push_str(CSV_HEADER);
        out.push('\n');
    }
    for r in rows {
        out.push_str(&match format {
            Format::Jsonl => jsonl_line(r),
            Format::Csv => csv_line(r),
        });
        out.push('\n');
    }
    out
}

/// Reads one JSONL line back into the row it was made from.
pub fn parse_jsonl_line(line: &str) -> Result<AuditRow, String> {
    let l: Line = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let e = l.entry;
    let (http_method, http_path, http_status) = match e.http {
        Some(HttpView {
            method,
            path,
            status,
        }) => (Some(method), Some(path), status),
        None => (None, None, None),
    };
    Ok(AuditRow {
        seq: e.seq,
        ts: l.ts_ms,
        actor_kind: e.actor.kind,
        actor_id: e.actor.id,
        action: e.action,
        target: e.target,
        outcome: e.outcome,
        source_ip: e.source_ip,
        request_id: e.request_id,
        http_method,
        http_path,
        http_status,
        detail: e.detail.to_string(),
        prev_hash: hex::decode(&l.prev_hash).map_err(|_| "prev_hash is not hex".to_owned())?,
        hash: hex::decode(&l.hash).map_err(|_| "hash is not hex".to_owned())?,
    })
}

/// Re-verifies a JSONL export. The first line's `prev_hash` is taken as given (an export of a
/// range starts mid-chain); pass a checkpoint to pin a later entry. A line that does not parse is
/// named by the seq it should have had.
pub fn verify_jsonl(text: &str, key: &hmac::Key, checkpoint: Option<&Checkpoint>) -> VerifyReport {
    let mut verifier: Option<Verifier> = None;
    let mut expected_seq = None::<i64>;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let row = match parse_jsonl_line(line) {
            Ok(r) => r,
            Err(e) => {
                let seq = expected_seq.unwrap_or(1);
                return VerifyReport {
                    ok: false,
                    entries_checked: verifier.as_ref().map_or(0, |v| v.report().entries_checked),
                    head_seq: seq - 1,
                    head_hash: verifier
                        .as_ref()
                        .map(|v| hex::encode(v.head().1))
                        .unwrap_or_default(),
                    first_bad_seq: Some(seq),
                    problem: Some(format!("line for entry {seq} does not parse: {e}")),
                };
            }
        };
        let v = verifier.get_or_insert_with(|| {
            let v = Verifier::from_first(key, &row);
            match checkpoint {
                Some(cp) => v.with_checkpoint(cp),
                None => v,
            }
        });
        if !v.push(&row) {
            break;
        }
        expected_seq = Some(row.seq + 1);
    }
    match verifier {
        Some(mut v) => v.finish(),
        None => VerifyReport {
            ok: true,
            entries_checked: 0,
            head_seq: 0,
            head_hash: String::new(),
            first_bad_seq: None,
            problem: None,
        },
    }
}

//! Exports with the chain fields, and their offline re-verification.
//!
//! A JSONL line is the API's entry plus `ts_ms` (the exact hashed timestamp), `prev_hash` and
//! `hash` in hex. `detail` is re-serialised with serde_json, which writes a parsed map back to the
//! same canonical text that was hashed, so a line re-verifies without the database.
//!
//! Exports are produced a page at a time ([`Pages`], [`stream`]): however long the log, an export
//! holds one page of rows in memory.

use crate::crypto::MacKey;
use serde::{Deserialize, Serialize};

use super::chain::{Checkpoint, Verifier, VerifyReport};
use super::writer::{AuditWriter, NewEntry};
use super::{EntryView, HttpView};
use crate::store::audit::{AuditFilter, AuditRow};
use crate::store::{Result as StoreResult, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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

/// Characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection).
const FORMULA_TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// One CSV cell that a spreadsheet shows as text and never runs: a value that starts with a
/// formula trigger gets a leading `'`, and control characters are written as visible `\u{..}`
/// escapes. This changes the value, on purpose and without a way back: the CSV is a view for
/// people, while the JSONL export carries every field exactly as hashed and is what verification
/// reads. Each CSV row keeps its entry's `hash`, which finds the matching JSONL line.
fn csv_field(s: &str) -> String {
    use std::fmt::Write;
    let mut cell = String::with_capacity(s.len() + 1);
    if s.starts_with(FORMULA_TRIGGERS) {
        cell.push('\'');
    }
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(cell, "\\u{{{:04x}}}", u32::from(c));
        } else {
            cell.push(c);
        }
    }
    if cell.contains([',', '"']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell
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
    render_page(format, rows, true)
}

/// One page of an export; the CSV header goes before the first page only.
pub fn render_page(format: Format, rows: &[AuditRow], first: bool) -> String {
    let mut out = String::new();
    if first && format == Format::Csv {
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

/// Rows read per round trip while exporting: all an export holds in memory at once.
pub const PAGE: i64 = 1000;

/// The entries matching a filter, in seq order, read a page at a time and never past
/// `through_seq`. Fixing the end when the export starts makes it the log as of that moment: a
/// busy log cannot keep it running, and the same parameters produce the same bytes again.
pub struct Pages {
    store: Store,
    filter: AuditFilter,
    through_seq: i64,
    done: bool,
}

impl Pages {
    pub fn new(store: Store, mut filter: AuditFilter, through_seq: i64) -> Self {
        filter.limit = PAGE;
        Self {
            store,
            filter,
            through_seq,
            done: false,
        }
    }

    /// The next page, or `None` once every entry has been returned.
    pub async fn next_page(&mut self) -> StoreResult<Option<Vec<AuditRow>>> {
        if self.done {
            return Ok(None);
        }
        let mut page = self.store.audit_query(&self.filter).await?;
        let full = page.len() as i64 == self.filter.limit;
        let through = self.through_seq;
        page.retain(|r| r.seq <= through);
        let Some(last) = page.last() else {
            self.done = true;
            return Ok(None);
        };
        self.filter.after_seq = last.seq;
        self.done = !full || last.seq >= through;
        Ok(Some(page))
    }
}

/// A streamed export: one text chunk per page. Once the last chunk has been produced, `sent` is
/// recorded with the number of entries and the SHA-256 of every byte of the export, so the log
/// says what left; if that record cannot be written the stream ends in an error, and the client
/// sees a broken transfer rather than a complete one.
pub fn stream(
    pages: Pages,
    format: Format,
    writer: AuditWriter,
    sent: NewEntry,
) -> impl futures_util::Stream<Item = anyhow::Result<String>> + Send + 'static {
    struct State {
        pages: Pages,
        format: Format,
        first: bool,
        entries: u64,
        digest: crate::crypto::Sha256,
        writer: AuditWriter,
        sent: Option<NewEntry>,
        failed: bool,
    }
    let state = State {
        pages,
        format,
        first: true,
        entries: 0,
        digest: crate::crypto::Sha256::new(),
        writer,
        sent: Some(sent),
        failed: false,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        if st.failed {
            return None;
        }
        let rows = match st.pages.next_page().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "audit export stopped: the store could not be read");
                st.failed = true;
                return Some((Err(e.into()), st));
            }
        };
        let text = match rows {
            Some(rows) => {
                st.entries += rows.len() as u64;
                render_page(st.format, &rows, st.first)
            }
            // An empty CSV export is still a header.
            None if st.first && st.format == Format::Csv => render_page(st.format, &[], true),
            None => {
                let sent = st.sent.take()?;
                let sent = sent
                    .detail("entries", st.entries)
                    .detail("sha256", st.digest.clone().finish_hex());
                return match st.writer.record_event(sent).await {
                    Ok(_) => None,
                    Err(e) => {
                        st.failed = true;
                        Some((Err(e.into()), st))
                    }
                };
            }
        };
        st.first = false;
        st.digest.update(text.as_bytes());
        Some((Ok(text), st))
    })
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
pub fn verify_jsonl(text: &str, key: &MacKey, checkpoint: Option<&Checkpoint>) -> VerifyReport {
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
            let v = Verifier::from_first(key, row.fields());
            match checkpoint {
                Some(cp) => v.with_checkpoint(cp),
                None => v,
            }
        });
        if !v.push(row.fields()) {
            break;
        }
        expected_seq = Some(row.seq.saturating_add(1));
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

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_cells_cannot_become_formulas() {
        assert_eq!(csv_field("=1+1"), "'=1+1");
        assert_eq!(csv_field("-2+3"), "'-2+3");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("\tx"), "'\\u{0009}x");
        assert_eq!(csv_field("a\r\nb\u{1b}"), "a\\u{000d}\\u{000a}b\\u{001b}");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("/api/v1/audit"), "/api/v1/audit");
        assert_eq!(csv_field("{\"a\":1}"), "\"{\"\"a\"\":1}\"");
    }

    /// The properties the `audit_jsonl` fuzz target checks: verifying any export never panics and a
    /// failure says why; a line renders and reads back to the same row.
    mod props {
        use proptest::prelude::*;

        use super::super::{jsonl_line, parse_jsonl_line, verify_jsonl};
        use crate::audit::Checkpoint;
        use crate::crypto::MacKey;
        use crate::store::audit::AuditRow;

        fn key() -> MacKey {
            MacKey::new(crate::crypto::Suite::Standard, &[7u8; 32])
        }

        /// The checkpoint keys of both suites, as a keyring derives them.
        fn checkpoint_keys() -> Vec<crate::crypto::CheckpointKey> {
            crate::crypto::Suite::ALL
                .into_iter()
                .map(|suite| {
                    let master = crate::crypto::SecretBytes::new(vec![7; 32]);
                    crate::crypto::Keyring::new(suite, vec![], &master)
                        .unwrap()
                        .mac()
                        .checkpoint
                        .clone()
                })
                .collect()
        }

        fn row() -> impl Strategy<Value = AuditRow> {
            (
                prop_oneof![any::<i64>(), Just(i64::MAX), Just(i64::MIN), 0i64..5],
                any::<i64>(),
                "\\PC{0,8}",
                prop::collection::vec(any::<u8>(), 0..40),
                prop::collection::vec(any::<u8>(), 0..40),
                prop::option::of(("GET|POST", "/[a-z]{0,8}", prop::option::of(100i64..600))),
            )
                .prop_map(|(seq, ts, action, prev_hash, hash, http)| {
                    let (http_method, http_path, http_status) = match http {
                        Some((m, p, s)) => (Some(m), Some(p), s),
                        None => (None, None, None),
                    };
                    AuditRow {
                        seq,
                        ts,
                        actor_kind: "user".into(),
                        actor_id: "alice".into(),
                        action,
                        target: "account:wechat-main".into(),
                        outcome: "success".into(),
                        source_ip: "127.0.0.1".into(),
                        request_id: "r".into(),
                        http_method,
                        http_path,
                        http_status,
                        detail: "{\"a\":1}".into(),
                        prev_hash,
                        hash,
                    }
                })
        }

        fn refused_clearly(text: &str) {
            let report = verify_jsonl(text, &key(), None);
            if !report.ok {
                assert!(
                    report
                        .problem
                        .as_deref()
                        .is_some_and(|p| !p.trim().is_empty()),
                    "{report:?}"
                );
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn any_text_verifies_or_fails_with_a_reason(text in "\\PC{0,300}") {
                refused_clearly(&text);
            }

            #[test]
            fn exported_rows_read_back_and_verify_without_panic(rows in prop::collection::vec(row(), 0..4)) {
                let text: String = rows.iter().map(|r| jsonl_line(r) + "\n").collect();
                for r in &rows {
                    let back = parse_jsonl_line(&jsonl_line(r)).unwrap();
                    prop_assert_eq!((back.seq, back.ts, &back.action, &back.detail), (r.seq, r.ts, &r.action, &r.detail));
                    prop_assert_eq!((&back.prev_hash, &back.hash), (&r.prev_hash, &r.hash));
                    prop_assert_eq!((&back.http_method, &back.http_path, back.http_status), (&r.http_method, &r.http_path, r.http_status));
                }
                refused_clearly(&text);
            }

            #[test]
            fn checkpoints_round_trip(seq in any::<i64>(), hash in any::<[u8; 32]>(), unix in any::<i64>()) {
                let cp = Checkpoint { seq, hash, unix };
                for key in checkpoint_keys() {
                    prop_assert_eq!(Checkpoint::parse(&cp.to_line(&key), &key), Ok(cp.clone()));
                }
            }

            #[test]
            fn any_checkpoint_line_parses_or_is_refused(line in "(mvcp1:|mvcp2:(sm|standard):)?\\PC{0,120}") {
                for key in checkpoint_keys() {
                    let _ = Checkpoint::parse(&line, &key);
                }
            }
        }
    }
}

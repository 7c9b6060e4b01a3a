//! The audit review service: querying, verifying and exporting the log. It owns who may read it
//! (auditors, and admins) and records every review in the log it reads.

use serde::Deserialize;

use crate::actor::Actor;
use crate::audit::export::{self, Format};
use crate::audit::query::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::audit::{EntryView, Outcome, VerifyReport, parse_time_ms, verify_store};
use crate::error::{Error, Result};
use crate::identity::Role;
use crate::store::audit::AuditFilter;

const READERS: &[Role] = &[Role::Auditor, Role::Admin];

/// Everything arrives as text so that a bad value gets a message naming its parameter.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QueryParams {
    /// The acting `actor.id` of an entry (a username, a client id, ...).
    pub actor: Option<String>,
    /// The entry's target.
    pub account: Option<String>,
    pub action: Option<String>,
    /// `success`, `denied`, `error` or `rate_limited`.
    pub outcome: Option<String>,
    /// RFC 3339.
    pub since: Option<String>,
    /// RFC 3339.
    pub until: Option<String>,
    /// Entries after this one (the previous page's `next_after_seq`).
    #[param(value_type = Option<i64>, minimum = 0)]
    pub after_seq: Option<String>,
    /// `desc`: newest first (page on with `before_seq`); `asc` (the default): chain order.
    pub order: Option<String>,
    /// With `order=desc`: entries before this one (the previous page's `next_before_seq`).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub before_seq: Option<String>,
    /// 1-1000; 100 by default.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// `/audit/export` only: `jsonl` (the default) or `csv`.
    pub format: Option<String>,
}

fn invalid(field: &str, detail: String) -> Error {
    Error::Invalid {
        field: Some(field.to_owned()),
        detail,
    }
}

fn time_param(field: &str, v: Option<&str>) -> Result<Option<i64>> {
    v.map(|s| {
        parse_time_ms(s).ok_or_else(|| {
            invalid(
                field,
                format!("{field} must be an RFC 3339 time like 2025-01-31T00:00:00Z"),
            )
        })
    })
    .transpose()
}

fn filter_of(p: &QueryParams) -> Result<AuditFilter> {
    if let Some(o) = &p.outcome
        && Outcome::parse(o).is_none()
    {
        return Err(invalid(
            "outcome",
            "outcome must be success, denied, error or rate_limited".into(),
        ));
    }
    let after_seq = match &p.after_seq {
        None => 0,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| invalid("after_seq", "after_seq must be a number ≥ 0".into()))?,
    };
    let limit = match &p.limit {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                invalid(
                    "limit",
                    format!("limit must be a number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let newest_first = match p.order.as_deref() {
        None | Some("") | Some("asc") => false,
        Some("desc") => true,
        Some(_) => {
            return Err(invalid(
                "order",
                "order must be asc (oldest first) or desc (newest first)".into(),
            ));
        }
    };
    let before_seq = match &p.before_seq {
        None => None,
        Some(s) => Some(
            s.parse::<i64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| invalid("before_seq", "before_seq must be a number ≥ 1".into()))?,
        ),
    };
    let empty_none = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    Ok(AuditFilter {
        actor: empty_none(&p.actor),
        target: empty_none(&p.account),
        action: empty_none(&p.action),
        outcome: empty_none(&p.outcome),
        since_ms: time_param("since", p.since.as_deref())?,
        until_ms: time_param("until", p.until.as_deref())?,
        after_seq,
        before_seq,
        newest_first,
        limit,
    })
}

/// One page of entries and where the next starts.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Page {
    pub entries: Vec<EntryView>,
    pub next_after_seq: Option<i64>,
    /// With `order=desc`: pass as `before_seq` for the next (older) page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before_seq: Option<i64>,
}

fn note_report(actor: &Actor, report: &VerifyReport) {
    actor.detail("ok", report.ok);
    actor.detail("head_seq", report.head_seq);
    if let Some(bad) = report.first_bad_seq {
        tracing::error!(first_bad_seq = bad, problem = ?report.problem, "audit chain broken");
        actor.detail("first_bad_seq", bad);
    }
}

/// Activity in one time bucket.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Activity {
    pub start_ms: i64,
    pub total: i64,
    pub failures: i64,
}

/// A streamed export: text chunks, the last of which is produced only after `audit.export.sent`
/// is recorded.
pub struct Export {
    pub format: Format,
    pub body: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = anyhow::Result<String>> + Send + 'static>,
    >,
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// The audit review service; `vault.audit_review()`.
#[derive(Clone)]
pub struct AuditReview {
    pub(crate) store: crate::store::Store,
    pub(crate) clock: crate::clock::Clock,
    pub(crate) audit: crate::audit::AuditWriter,
    pub(crate) keys: std::sync::Arc<crate::keys::Keys>,
    pub(crate) seen: std::sync::Arc<Seen>,
}

/// What this process has already read of the log, so that a page of the console costs what is
/// new rather than the whole log (tens of millions of entries after six months).
#[derive(Default)]
pub struct Seen {
    /// The last walk of the whole chain that verified, and the head it reached since. One walk at
    /// a time: views that arrive during a walk wait for it rather than starting their own.
    chain: tokio::sync::Mutex<Option<Verified>>,
    /// The activity charts' counts per bucket length, each up to a seq: a view counts only the
    /// entries after it. Exact without a settling time: an entry with a later seq is never
    /// stamped earlier (the writer sees to it). Only `audit prune` removes entries, and never
    /// one younger than `audit.retention_days` (at least 180 days), while the charts reach back
    /// 30 days at most: no bucket a chart shows ever loses an entry, so a prune (by the command,
    /// beside a running server) needs no recount here.
    tallies: std::sync::Mutex<std::collections::HashMap<i64, Tally>>,
}

/// A verified head, and what was walked to reach it.
#[derive(Clone)]
struct Verified {
    /// The anchor the whole walk started from: a prune since starts a whole walk again.
    anchor_first_seq: Option<i64>,
    head_seq: i64,
    head_hash: [u8; 32],
    entries_checked: u64,
    /// When the whole chain was last walked (unix ms).
    whole_at_ms: i64,
}

/// The chain's state as the console shows it: the report, and when the whole chain was last
/// walked (the entries after that walk's head are checked on every view).
#[derive(Debug, Clone)]
pub struct ChainStatus {
    pub report: VerifyReport,
    pub whole_verified_at_ms: i64,
}

/// Counts per bucket start, from `from_ms`, of every entry up to `through_seq`.
struct Tally {
    from_ms: i64,
    through_seq: i64,
    counts: std::collections::BTreeMap<i64, (i64, i64)>,
}

/// Buckets a tally keeps at most; past that the oldest go (charts ask for 24 hours or 30 days).
const MAX_BUCKETS: usize = 1024;

impl AuditReview {
    pub async fn query(&self, actor: &Actor, p: &QueryParams) -> Result<Page> {
        actor.action("audit.query", Some("audit_log"));
        actor.require(READERS)?;
        if p.format.is_some() {
            return Err(invalid(
                "format",
                "format is a parameter of /audit/export".into(),
            ));
        }
        let filter = filter_of(p)?;
        let rows = self.store.audit_query(&filter).await?;
        let more = rows.len() as i64 == filter.limit;
        let last = rows.last().map(|r| r.seq).filter(|_| more);
        let (next, next_before) = if filter.newest_first {
            (None, last)
        } else {
            (last, None)
        };
        let entries: Vec<EntryView> = rows.iter().map(EntryView::from).collect();
        actor.detail("returned", entries.len());
        Ok(Page {
            entries,
            next_after_seq: next,
            next_before_seq: next_before,
        })
    }

    /// Walks the whole chain (every time: this is the check an auditor asks for by name).
    pub async fn verify(&self, actor: &Actor) -> Result<VerifyReport> {
        actor.action("audit.verify", Some("audit_log"));
        actor.require(READERS)?;
        let mut chain = self.seen.chain.lock().await;
        let report = self.walk_whole(&mut chain).await?;
        note_report(actor, &report);
        Ok(report)
    }

    /// The chain's state for the console's audit page: the whole chain is walked on the first
    /// view (and when `whole` asks for it, or after a prune), and on later views only the entries
    /// after the head that walk verified.
    pub async fn chain_status(&self, actor: &Actor, whole: bool) -> Result<ChainStatus> {
        actor.action("audit.verify", Some("audit_log"));
        actor.require(READERS)?;
        let mut chain = self.seen.chain.lock().await;
        let anchor = self.store.audit_anchor().await?.map(|a| a.first_seq);
        let since = match chain.as_ref() {
            Some(v) if !whole && v.anchor_first_seq == anchor => v.clone(),
            _ => {
                let report = self.walk_whole(&mut chain).await?;
                actor.detail("whole", true);
                note_report(actor, &report);
                return Ok(ChainStatus {
                    report,
                    whole_verified_at_ms: crate::audit::writer::unix_ms(&self.clock),
                });
            }
        };
        let walk = crate::audit::query::verify_after(
            &self.store,
            &self.keys.mac().audit,
            since.head_seq,
            since.head_hash,
        )
        .await
        .map_err(Error::internal)?;
        let new = walk.report();
        let report = VerifyReport {
            entries_checked: since.entries_checked + new.entries_checked,
            ..new
        };
        if report.ok {
            let (head_seq, head_hash) = walk.head();
            *chain = Some(Verified {
                head_seq,
                head_hash,
                entries_checked: report.entries_checked,
                ..since.clone()
            });
        } else {
            // Broken after the verified head: the next view walks the whole chain again.
            *chain = None;
        }
        actor.detail("whole", false);
        note_report(actor, &report);
        Ok(ChainStatus {
            report,
            whole_verified_at_ms: since.whole_at_ms,
        })
    }

    /// A walk of the whole chain, remembered (when it verifies) for [`Self::chain_status`].
    async fn walk_whole(&self, chain: &mut Option<Verified>) -> Result<VerifyReport> {
        let anchor = self.store.audit_anchor().await?.map(|a| a.first_seq);
        let report = verify_store(&self.store, &self.keys.mac().audit)
            .await
            .map_err(Error::internal)?;
        *chain = match <[u8; 32]>::try_from(hex::decode(&report.head_hash).unwrap_or_default()) {
            Ok(head_hash) if report.ok => Some(Verified {
                anchor_first_seq: anchor,
                head_seq: report.head_seq,
                head_hash,
                entries_checked: report.entries_checked,
                whole_at_ms: crate::audit::writer::unix_ms(&self.clock),
            }),
            _ => None,
        };
        Ok(report)
    }

    /// Entries and failures per bucket: `buckets` buckets of `bucket_ms` ending now (for charts).
    pub async fn activity(
        &self,
        actor: &Actor,
        bucket_ms: i64,
        buckets: usize,
    ) -> Result<Vec<Activity>> {
        actor.action("audit.activity", Some("audit_log"));
        actor.require(READERS)?;
        let bucket_ms = bucket_ms.max(1);
        let now_ms = self.clock.unix().saturating_mul(1000);
        // Buckets end at the next whole bucket, so the last one is the current hour or day.
        let end = (now_ms / bucket_ms + 1) * bucket_ms;
        let since = end - bucket_ms * buckets as i64;
        let mut out: Vec<Activity> = (0..buckets)
            .map(|i| Activity {
                start_ms: since + bucket_ms * i as i64,
                total: 0,
                failures: 0,
            })
            .collect();
        // What this process counted before, and from where its count goes on.
        let (from_ms, after_seq) = {
            let tallies = self
                .seen
                .tallies
                .lock()
                .map_err(|_| Error::internal(anyhow::anyhow!("activity tally poisoned")))?;
            match tallies.get(&bucket_ms) {
                Some(t) if t.from_ms <= since => (t.from_ms, t.through_seq),
                _ => (since, 0),
            }
        };
        let fresh = self
            .store
            .audit_activity(from_ms, bucket_ms, after_seq)
            .await?;
        let mut tallies = self
            .seen
            .tallies
            .lock()
            .map_err(|_| Error::internal(anyhow::anyhow!("activity tally poisoned")))?;
        let tally = tallies.entry(bucket_ms).or_insert_with(|| Tally {
            from_ms,
            through_seq: 0,
            counts: Default::default(),
        });
        if after_seq == 0 {
            // Counted from scratch (a first view, or a window reaching further back).
            *tally = Tally {
                from_ms,
                through_seq: 0,
                counts: Default::default(),
            };
        }
        // Another view may have counted further meanwhile: then its tally stands, and only
        // entries it has not counted are added.
        if tally.through_seq == after_seq {
            for (b, total, failures, last) in fresh {
                let start = from_ms.saturating_add(b.saturating_mul(bucket_ms));
                let slot = tally.counts.entry(start).or_insert((0, 0));
                slot.0 += total;
                slot.1 += failures;
                tally.through_seq = tally.through_seq.max(last);
            }
        }
        while tally.counts.len() > MAX_BUCKETS {
            tally.counts.pop_first();
            if let Some((&first, _)) = tally.counts.first_key_value() {
                tally.from_ms = first;
            }
        }
        for slot in &mut out {
            if let Some(&(total, failures)) = tally.counts.get(&slot.start_ms) {
                slot.total = total;
                slot.failures = failures;
            }
        }
        Ok(out)
    }

    /// An export, streamed a page at a time up to the head as it is now. The request's own entry
    /// records the format and where the export ends; when the last byte has been produced, an
    /// `audit.export.sent` entry records how many entries and the SHA-256 of what was sent.
    pub async fn export(&self, actor: &Actor, p: &QueryParams) -> Result<Export> {
        actor.action("audit.export", Some("audit_log"));
        actor.require(READERS)?;
        let format = match p.format.as_deref() {
            None | Some("jsonl") => Format::Jsonl,
            Some("csv") => Format::Csv,
            Some(_) => return Err(invalid("format", "format must be jsonl or csv".into())),
        };
        let filter = AuditFilter {
            since_ms: time_param("since", p.since.as_deref())?,
            until_ms: time_param("until", p.until.as_deref())?,
            ..AuditFilter::default()
        };
        let through_seq = self.store.audit_head().await?.seq;
        let ext = if format == Format::Csv {
            "csv"
        } else {
            "jsonl"
        };
        actor.detail("format", ext);
        actor.detail("through_seq", through_seq);
        let sent = actor.entry("audit.export.sent", "audit_log");
        let pages = export::Pages::new(self.store.clone(), filter, through_seq);
        Ok(Export {
            format,
            body: Box::pin(export::stream(pages, format, self.audit.clone(), sent)),
        })
    }
}

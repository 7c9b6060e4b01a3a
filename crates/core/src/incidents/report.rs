//! The incident report: the incident (steps, timeline, signatures, evidence digests), its sealed
//! audit checkpoint, and every audit entry about the account or the incident from the moment it
//! opened until it closed (or now), as Markdown for people and JSON for tools.

use serde::Serialize;

use super::{IncidentView, Incidents, RESPONDERS};
use crate::actor::Actor;
use crate::audit::{EntryView, rfc3339_ms};
use crate::error::{Error, Result};
use crate::store::audit::AuditFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Markdown,
    Json,
}

impl ReportFormat {
    pub fn parse(s: Option<&str>) -> Result<Self> {
        match s {
            None | Some("md") | Some("markdown") => Ok(ReportFormat::Markdown),
            Some("json") => Ok(ReportFormat::Json),
            Some(_) => Err(Error::invalid("format", "format must be md or json")),
        }
    }
}

/// A rendered report.
#[derive(Debug)]
pub struct Report {
    pub content_type: &'static str,
    pub file_name: String,
    pub body: String,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    incident: &'a IncidentView,
    window: Window,
    audit: Vec<EntryView>,
}

#[derive(Serialize)]
struct Window {
    since: String,
    until: String,
}

/// Markdown table cells hold no pipes or line breaks.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

impl Incidents {
    pub async fn report(&self, actor: &Actor, id: &str, format: ReportFormat) -> Result<Report> {
        actor.action("incident.report", Some(id));
        actor.require(RESPONDERS)?;
        let row = self.row(id).await?;
        let view = self.view(id).await?;
        let since = row.opened_ms;
        let until = match row.closed_at {
            Some(c) => c.saturating_mul(1000).saturating_add(999),
            None => crate::audit::writer::unix_ms(&self.clock),
        };
        let mut rows = Vec::new();
        for target in [row.account_id.as_str(), row.id.as_str()] {
            let mut filter = AuditFilter {
                target: Some(target.to_owned()),
                since_ms: Some(since),
                until_ms: Some(until.saturating_add(1)),
                limit: 10_000,
                ..AuditFilter::default()
            };
            loop {
                let page = self.store.audit_query(&filter).await?;
                let full = page.len() as i64 == filter.limit;
                let Some(last) = page.last() else { break };
                filter.after_seq = last.seq;
                rows.extend(page);
                if !full {
                    break;
                }
            }
        }
        rows.sort_by_key(|r| r.seq);
        rows.dedup_by_key(|r| r.seq);
        let entries: Vec<EntryView> = rows.iter().map(EntryView::from).collect();
        actor.detail("entries", entries.len());
        let window = Window {
            since: rfc3339_ms(since),
            until: rfc3339_ms(until),
        };
        let (content_type, ext, body) = match format {
            ReportFormat::Json => {
                let body = serde_json::to_string_pretty(&JsonReport {
                    incident: &view,
                    window,
                    audit: entries,
                })
                .map_err(Error::internal)?;
                ("application/json", "json", body)
            }
            ReportFormat::Markdown => (
                "text/markdown; charset=utf-8",
                "md",
                markdown(&view, &window, &entries),
            ),
        };
        actor.detail("sha256", crate::crypto::sha256_hex(body.as_bytes()));
        Ok(Report {
            content_type,
            file_name: format!("{id}.{ext}"),
            body,
        })
    }
}

fn markdown(v: &IncidentView, w: &Window, audit: &[EntryView]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "# 应急事件报告 / Incident report {}\n", v.incident_id);
    let _ = writeln!(s, "| | |\n| --- | --- |");
    for (k, val) in [
        ("账号 / Account", v.account.clone()),
        ("预案 / Playbook", format!("{} ({})", v.title, v.playbook)),
        ("摘要 / Summary", v.summary.clone()),
        ("状态 / Status", format!("{:?}", v.status).to_lowercase()),
        ("触发 / Trigger", v.trigger.clone()),
        ("发起人 / Opened by", v.opened_by.clone()),
        ("开始 / Opened at", v.opened_at.clone()),
        (
            "结束 / Closed at",
            v.closed_at.clone().unwrap_or_else(|| "—".into()),
        ),
        (
            "审计检查点 / Sealed checkpoint",
            v.checkpoint
                .as_ref()
                .map(|c| format!("`{c}`"))
                .unwrap_or_else(|| "—".into()),
        ),
    ] {
        let _ = writeln!(s, "| {k} | {} |", cell(&val));
    }
    let _ = writeln!(s, "\n## 处置步骤 / Steps\n");
    let _ = writeln!(
        s,
        "| # | kind | step | owner | due | status | by | at | note |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for st in &v.steps {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            st.n,
            st.kind,
            cell(&st.title),
            st.owner_role.as_deref().unwrap_or(""),
            st.due_at.as_deref().unwrap_or(""),
            st.status.as_str(),
            cell(st.done_by.as_deref().unwrap_or("")),
            st.done_at.as_deref().unwrap_or(""),
            cell(st.note.as_deref().unwrap_or(""))
        );
    }
    let _ = writeln!(s, "\n## 时间线 / Timeline\n");
    let _ = writeln!(
        s,
        "| at | who | event | step | detail |\n| --- | --- | --- | --- | --- |"
    );
    for t in &v.timeline {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            t.at,
            cell(&t.actor),
            t.event,
            t.step.map(|n| n.to_string()).unwrap_or_default(),
            cell(&t.detail)
        );
    }
    if !v.evidence.is_empty() {
        let _ = writeln!(s, "\n## 证据 / Evidence\n");
        let _ = writeln!(
            s,
            "| platform id | sha256 | captured | by | deleted |\n| --- | --- | --- | --- | --- |"
        );
        for e in &v.evidence {
            let _ = writeln!(
                s,
                "| {} | `{}` | {} | {} | {} |",
                cell(&e.platform_id),
                e.sha256,
                e.captured_at,
                cell(&e.captured_by),
                e.deleted_at
                    .as_ref()
                    .map(|d| format!("{d} by {}", e.deleted_by.as_deref().unwrap_or("")))
                    .unwrap_or_else(|| "—".into())
            );
        }
    }
    let _ = writeln!(s, "\n## 签字关闭 / Close signatures\n");
    for g in &v.close_signatures {
        let _ = writeln!(s, "- {} at {}", g.username, g.signed_at);
    }
    let _ = writeln!(
        s,
        "\n## 审计记录 / Audit entries ({} – {})\n",
        w.since, w.until
    );
    let _ = writeln!(
        s,
        "| seq | ts | actor | action | target | outcome |\n| --- | --- | --- | --- | --- | --- |"
    );
    for e in audit {
        let _ = writeln!(
            s,
            "| {} | {} | {}:{} | {} | {} | {} |",
            e.seq,
            e.ts,
            e.actor.kind,
            cell(&e.actor.id),
            e.action,
            cell(&e.target),
            e.outcome
        );
    }
    s
}

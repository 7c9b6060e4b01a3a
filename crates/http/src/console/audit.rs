//! The auditor's pages: the log with filters and paging, one entry in full, the chain's
//! verification status, exports, and charts of activity and failures (24 hours, 30 days).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::i18n::url_encode;
use super::layout::page;
use super::{AppState, Fail, Me, OrFail, svg};
use crate::audit::export::Format;
use crate::error::Error;
use crate::review::QueryParams;

const PAGE_SIZE: &str = "50";

#[derive(Deserialize, Default)]
pub struct Filters {
    actor: Option<String>,
    account: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// Older entries than this one (the page is newest first).
    before_seq: Option<String>,
    /// `all`: walk the whole chain again rather than only the entries since the last walk.
    verify: Option<String>,
    format: Option<String>,
    // Handled by the frame, not by the filters.
    #[allow(dead_code)]
    lang: Option<String>,
    #[allow(dead_code)]
    done: Option<String>,
}

fn blank(v: &Option<String>) -> Option<String> {
    v.clone()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_owned())
}

impl Filters {
    fn params(&self) -> QueryParams {
        QueryParams {
            actor: blank(&self.actor),
            account: blank(&self.account),
            action: blank(&self.action),
            outcome: blank(&self.outcome),
            since: blank(&self.since),
            until: blank(&self.until),
            // Newest first: what a reviewer looks for, with or without filters.
            order: Some("desc".into()),
            before_seq: blank(&self.before_seq),
            limit: Some(PAGE_SIZE.into()),
            format: None,
            ..QueryParams::default()
        }
    }

    /// The filters as a query string (without paging), for the next-page and export links.
    fn query(&self) -> String {
        [
            ("actor", &self.actor),
            ("account", &self.account),
            ("action", &self.action),
            ("outcome", &self.outcome),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .iter()
        .filter_map(|(k, v)| blank(v).map(|v| format!("{k}={}", url_encode(&v))))
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// Filters that do not parse (a stray `%`) are a page that says so, like any other bad input.
fn filters(me: &Me, q: Result<Query<Filters>, QueryRejection>) -> Result<Filters, Fail> {
    q.map(|Query(f)| f)
        .map_err(|_| me.fail(Error::invalid("query", "the filters could not be read")))
}

pub async fn page_view(
    State(s): State<AppState>,
    me: Me,
    q: Result<Query<Filters>, QueryRejection>,
) -> Result<Response, Fail> {
    let f = filters(&me, q)?;
    let l = me.lang;
    let review = s.vault.audit_review();
    let status = review
        .chain_status(&me.actor, f.verify.as_deref() == Some("all"))
        .await
        .or_fail(&me)?;
    let report = &status.report;
    let suite = s.vault.crypto_suite();
    let whole_at = crate::audit::rfc3339_ms(status.whole_verified_at_ms)
        .replace('T', " ")
        .get(..19)
        .unwrap_or_default()
        .to_owned();
    let day = review
        .activity(&me.actor, 3_600_000, 24)
        .await
        .or_fail(&me)?;
    let month = review
        .activity(&me.actor, 86_400_000, 30)
        .await
        .or_fail(&me)?;
    let params = f.params();
    let paged = params.before_seq.is_some();
    let result = review.query(&me.actor, &params).await.or_fail(&me)?;
    let q = f.query();
    let hour = |_: usize, a: &crate::review::Activity| {
        crate::audit::rfc3339_ms(a.start_ms)
            .get(11..16)
            .unwrap_or_default()
            .to_owned()
    };
    let date = |_: usize, a: &crate::review::Activity| {
        crate::audit::rfc3339_ms(a.start_ms)
            .get(5..10)
            .unwrap_or_default()
            .to_owned()
    };
    let sel = |v: &str| f.outcome.as_deref() == Some(v);
    let body = html! {
        section.card #chain {
            @if report.ok {
                p.ok #chain-ok { "✔ " (l.t("审计链校验通过：", "The audit chain verifies: ")) (report.entries_checked) (l.t(" 条记录，链头 #", " entries, head #")) (report.head_seq) }
                p.small #chain-when {
                    (l.t("全链校验于 ", "The whole chain was walked at ")) (whole_at) " UTC"
                    (l.t("，此后的新记录在每次打开本页时校验。", "; newer entries are checked each time this page opens. "))
                    a #verify-all href="/console/audit?verify=all" { (l.t("重新校验全链", "Walk the whole chain again")) }
                }
            } @else {
                p.bad #chain-broken { "✘ " (l.t("审计链校验失败，首个异常记录 #", "The audit chain is BROKEN at entry #"))
                    (report.first_bad_seq.map(|s| s.to_string()).unwrap_or_default())
                    (l.t("。请立即报告安全负责人，并导出证据。", ". Report this to the security lead at once and export the evidence.")) }
            }
            p.small #crypto-suite {
                (l.t("密码套件：", "Crypto suite: ")) code { (suite.as_str()) } " (" (suite.describe()) ")"
                @if suite == crate::crypto::Suite::Sm {
                    (l.t("；审计链以 HMAC-SM3 计算，检查点以 SM2 签名。", "; the chain is HMAC-SM3, checkpoints are SM2-signed."))
                }
            }
        }
        div.charts {
            section.card { h2 { (l.t("最近 24 小时", "Last 24 hours")) }
                (svg::chart("chart-24h", &day, hour))
                p.small.legend { span.key.all {} (l.t("全部记录", "all entries")) " " span.key.fail {} (l.t("失败、拒绝、限流", "failures, denials, rate limits")) " (UTC)" } }
            section.card { h2 { (l.t("最近 30 天", "Last 30 days")) }
                (svg::chart("chart-30d", &month, date))
                p.small.legend { span.key.all {} (l.t("全部记录", "all entries")) " " span.key.fail {} (l.t("失败、拒绝、限流", "failures, denials, rate limits")) " (UTC)" } }
        }
        form.filters.card method="get" action="/console/audit" {
            label { (l.t("人员或工具", "Person or tool")) input name="actor" value=(f.actor.clone().unwrap_or_default()); }
            label { (l.t("对象（账号等）", "Target (account, …)")) input name="account" value=(f.account.clone().unwrap_or_default()); }
            label { (l.t("操作", "Action")) input name="action" placeholder="account.rotate" value=(f.action.clone().unwrap_or_default()); }
            label { (l.t("结果", "Outcome"))
                select name="outcome" {
                    option value="" { (l.t("全部", "any")) }
                    option value="success" selected[sel("success")] { (l.t("成功", "success")) }
                    option value="denied" selected[sel("denied")] { (l.t("拒绝", "denied")) }
                    option value="error" selected[sel("error")] { (l.t("错误", "error")) }
                    option value="rate_limited" selected[sel("rate_limited")] { (l.t("限流", "rate limited")) }
                }
            }
            label { (l.t("起始时间", "Since")) input name="since" placeholder="2026-11-01T00:00:00Z" value=(f.since.clone().unwrap_or_default()); }
            label { (l.t("截止时间", "Until")) input name="until" placeholder="2026-11-02T00:00:00Z" value=(f.until.clone().unwrap_or_default()); }
            button type="submit" { (l.t("筛选", "Filter")) }
            a.button.secondary href="/console/audit" { (l.t("清除", "Clear")) }
        }
        p.exports {
            (l.t("导出（按时间范围，含链字段，可离线校验）：", "Export (by time range, with the chain fields for offline verification): "))
            a #export-jsonl href=(format!("/console/audit/export?format=jsonl&{q}")) { "JSONL" } " · "
            a #export-csv href=(format!("/console/audit/export?format=csv&{q}")) { "CSV" }
        }
        table #audit-log {
            thead { tr { th { "#" } th { (l.t("时间 (UTC)", "Time (UTC)")) } th { (l.t("执行者", "Actor")) } th { (l.t("操作", "Action")) }
                th { (l.t("对象", "Target")) } th { (l.t("结果", "Outcome")) } th { (l.t("来源", "Source")) } } }
            tbody { @for e in &result.entries {
                tr.bad[e.outcome != "success"] {
                    td { a href=(format!("/console/audit/entry/{}", e.seq)) { (e.seq) } }
                    td.nowrap { (e.ts.replace('T', " ").trim_end_matches('Z')) }
                    td { span.small { (e.actor.kind) } " " (e.actor.id) }
                    td.action { code { (e.action) } }
                    td { (e.target) }
                    td { (e.outcome) }
                    td { (e.source_ip) }
                }
            } }
        }
        @if result.entries.is_empty() { p { (l.t("没有符合条件的记录。", "No entry matches.")) } }
        p.paging {
            @if paged { a.button.secondary href=(format!("/console/audit?{q}")) { (l.t("最新的记录", "Newest entries")) } " " }
            @if let Some(older) = result.next_before_seq {
                a.button #next-page href=(format!("/console/audit?{q}&before_seq={older}")) { (l.t("更早的记录", "Older entries")) }
            }
        }
    };
    // The page's own entry reads as the query it shows.
    me.actor.action("audit.query", Some("audit_log"));
    Ok(page(&s, &me, l.t("审计日志", "Audit log"), body))
}

pub async fn entry(
    State(s): State<AppState>,
    me: Me,
    seq: Result<Path<i64>, PathRejection>,
) -> Result<Response, Fail> {
    let Ok(Path(seq)) = seq else {
        return Err(me.fail(Error::NotFound("audit entry".into())));
    };
    let l = me.lang;
    let p = QueryParams {
        after_seq: Some((seq - 1).max(0).to_string()),
        limit: Some("1".into()),
        ..QueryParams::default()
    };
    let found = s
        .vault
        .audit_review()
        .query(&me.actor, &p)
        .await
        .or_fail(&me)?;
    let e = found
        .entries
        .into_iter()
        .find(|e| e.seq == seq)
        .ok_or_else(|| me.fail(Error::NotFound(format!("audit entry {seq}"))))?;
    me.actor.detail("seq", seq);
    let detail = serde_json::to_string_pretty(&e.detail).unwrap_or_default();
    let body = html! {
        section.card #entry {
            dl.facts {
                dt { "#" } dd { (e.seq) }
                dt { (l.t("时间 (UTC)", "Time (UTC)")) } dd { (e.ts) }
                dt { (l.t("执行者", "Actor")) } dd { (e.actor.kind) " " (e.actor.id) }
                dt { (l.t("操作", "Action")) } dd { code { (e.action) } }
                dt { (l.t("对象", "Target")) } dd { (e.target) }
                dt { (l.t("结果", "Outcome")) } dd { (e.outcome) }
                dt { (l.t("来源地址", "Source address")) } dd { (e.source_ip) }
                dt { (l.t("请求编号", "Request id")) } dd { code { (e.request_id) } }
                @if let Some(h) = &e.http {
                    dt { "HTTP" } dd { (h.method) " " (h.path) " " (h.status.map(|s| s.to_string()).unwrap_or_else(|| "—".into())) }
                }
                @if let Some(code) = e.detail.get("platform_code") {
                    dt { (l.t("平台错误", "Platform error")) } dd #platform-error {
                        code { (code) }
                        @let hint = e.detail.get(l.t("platform_hint_zh", "platform_hint"));
                        @if let Some(h) = hint.and_then(|h| h.as_str()) { p.warn #platform-hint { (h) } }
                    }
                }
                dt { (l.t("详细信息", "Detail")) } dd { pre { (detail) } }
            }
        }
        p { a href="/console/audit" { (l.t("返回审计日志", "Back to the audit log")) } }
    };
    Ok(page(
        &s,
        &me,
        &format!("{} #{seq}", l.t("审计记录", "Audit entry")),
        body,
    ))
}

pub async fn export(
    State(s): State<AppState>,
    me: Me,
    q: Result<Query<Filters>, QueryRejection>,
) -> Result<Response, Fail> {
    let f = filters(&me, q)?;
    let p = QueryParams {
        since: blank(&f.since),
        until: blank(&f.until),
        format: blank(&f.format),
        ..QueryParams::default()
    };
    let out = s
        .vault
        .audit_review()
        .export(&me.actor, &p)
        .await
        .or_fail(&me)?;
    let ext = if out.format == Format::Csv {
        "csv"
    } else {
        "jsonl"
    };
    let mut resp = axum::body::Body::from_stream(out.body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(out.format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"audit.{ext}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

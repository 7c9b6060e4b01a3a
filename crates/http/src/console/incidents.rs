//! Incident pages for admins and security staff: the list; opening one on an account from a
//! playbook, after a confirmation page that says in words what the automated steps will do; the
//! incident with its checklist, timeline, evidence, close signatures and report; and the evidence
//! records of every post per account with the posts the publication watch could not match.
//!
//! The incidents service decides everything (who may open, which step needs whose TOTP code,
//! that a close needs two different people); these pages only ask and show.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::i18n::role_name;
use super::i18n::url_encode;
use super::layout::{page, when};
use super::{AppState, ConsoleForm, Fail, Lang, Me, OrFail, done};
use crate::error::Error;
use crate::incidents::report::ReportFormat;
use crate::incidents::{CLOSE_SIGNATURES, IncidentQuery, OpenIncident, StepView};
use crate::policy::{AutoAction, ConfirmedAction, StepKind};
use crate::publishing::posts::PostQuery;
use crate::review::QueryParams;
use crate::store::types::{IncidentStatus, StepStatus};

/// What each automated step does, in words a person understands.
fn auto_words(l: Lang, a: AutoAction) -> &'static str {
    match a {
        AutoAction::FreezeAccount => l.t(
            "冻结账号：不能再签出，所有在用的发布令牌立即吊销；之后须由管理员解除冻结。",
            "Freeze the account: no checkout is possible and every live publishing token is revoked at once; an admin unfreezes it later.",
        ),
        AutoAction::RevokeTokens => l.t(
            "吊销该账号的全部发布令牌：正在进行的发布立即中断。",
            "Revoke every publishing token of the account: publishing in progress stops at once.",
        ),
        AutoAction::RefreshPlatformToken => l.t(
            "向平台重新获取访问令牌，使他人可能持有的旧令牌作废（会调用平台接口）。",
            "Fetch a new platform access token, which cancels any old one someone else may hold (calls the platform).",
        ),
        AutoAction::Notify => l.t(
            "通知已配置的通知渠道（企业微信、钉钉等）；渠道不可用不会耽误其他步骤。",
            "Notify the configured channels (WeCom, DingTalk, …); a channel that is down holds nothing up.",
        ),
        AutoAction::MarkCompromised => l.t(
            "把当前凭据标记为已失陷：更换凭据之前，账号不能解除冻结。",
            "Mark the current credential compromised: the account cannot be unfrozen until the credential is rotated.",
        ),
        AutoAction::SealCheckpoint => l.t(
            "封存审计日志链头的签名检查点，作为事件的证据。",
            "Seal a signed checkpoint of the audit log's head into the incident, as evidence.",
        ),
        AutoAction::CaptureEvidence => l.t(
            "从平台抓取所填写的帖子，保存其内容和摘要作为证据（未填写帖子编号时无法抓取）。",
            "Fetch the post named below from the platform and keep its content and digest as evidence (nothing to fetch without a post id).",
        ),
    }
}

fn confirm_words(l: Lang, c: ConfirmedAction) -> &'static str {
    match c {
        ConfirmedAction::DeletePost => l.t(
            "负责人用本人动态验证码确认后，保管库在平台上删除已取证的帖子。",
            "Once its owner confirms with their own TOTP code, the vault deletes the captured posts on the platform.",
        ),
    }
}

fn status_badge(l: Lang, s: IncidentStatus) -> Markup {
    html! {
        @match s {
            IncidentStatus::Open => span.badge.bad { (l.t("处理中", "open")) },
            IncidentStatus::Closed => span.badge.ok { (l.t("已结案", "closed")) },
        }
    }
}

fn step_badge(l: Lang, s: StepStatus) -> Markup {
    html! {
        @match s {
            StepStatus::Pending => span.badge.warn { (l.t("待完成", "pending")) },
            StepStatus::Done => span.badge.ok { (l.t("已完成", "done")) },
            StepStatus::Failed => span.badge.bad { (l.t("失败", "failed")) },
            StepStatus::Skipped => span.badge { (l.t("不适用", "skipped")) },
        }
    }
}

fn trigger_text(l: Lang, t: &str) -> String {
    match t.strip_prefix("rule:") {
        Some(rule) => format!("{}{rule}", l.t("预警规则：", "early-warning rule: ")),
        None if t == "manual" => l.t("人工启动", "opened by a person").to_owned(),
        None => t.to_owned(),
    }
}

fn event_text(l: Lang, e: &str) -> &str {
    match e {
        "opened" => l.t("启动事件", "opened"),
        "step_done" => l.t("完成步骤", "step done"),
        "step_failed" => l.t("步骤失败", "step failed"),
        "step_skipped" => l.t("步骤不适用", "step skipped"),
        "close_signed" => l.t("签署结案", "close signed"),
        "closed" => l.t("结案", "closed"),
        "delete_confirmed" => l.t("确认删除", "deletion confirmed"),
        "post_deleted" => l.t("帖子已删除", "post deleted"),
        "delete_failed" => l.t("删除失败", "deletion failed"),
        other => other,
    }
}

#[derive(Deserialize, Default)]
pub struct ListFilter {
    status: Option<String>,
    account: Option<String>,
    post: Option<String>,
    // Handled by the frame.
    #[allow(dead_code)]
    lang: Option<String>,
    #[allow(dead_code)]
    done: Option<String>,
}

fn filter(me: &Me, q: Result<Query<ListFilter>, QueryRejection>) -> Result<ListFilter, Fail> {
    q.map(|Query(f)| f)
        .map_err(|_| me.fail(Error::invalid("query", "the filters could not be read")))
}

fn blank(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

pub async fn list(
    State(s): State<AppState>,
    me: Me,
    q: Result<Query<ListFilter>, QueryRejection>,
) -> Result<Response, Fail> {
    let f = filter(&me, q)?;
    let l = me.lang;
    let status = blank(f.status);
    let q = IncidentQuery {
        account: blank(f.account),
        status: status.clone(),
    };
    let list = s.vault.incidents().list(&me.actor, &q).await.or_fail(&me)?;
    let tab = |v: &str| status.as_deref().unwrap_or("") == v;
    let body = html! {
        p.buttons {
            a.button #new-incident href="/console/incidents/new" { (l.t("启动应急事件", "Open an incident")) }
            " "
            a.button.secondary href="/console/posts" { (l.t("发布记录与未知帖子", "Post records and unknown posts")) }
        }
        p.tabs {
            a.current[tab("")] href="/console/incidents" { (l.t("全部", "All")) } " · "
            a.current[tab("open")] href="/console/incidents?status=open" { (l.t("处理中", "Open")) } " · "
            a.current[tab("closed")] href="/console/incidents?status=closed" { (l.t("已结案", "Closed")) }
        }
        @if list.is_empty() { p.ok #no-incidents { (l.t("没有应急事件。", "No incident.")) } }
        @else {
            table #incidents {
                thead { tr { th { (l.t("事件", "Incident")) } th { (l.t("账号", "Account")) } th { (l.t("预案", "Playbook")) }
                    th { (l.t("状态", "Status")) } th { (l.t("启动方式", "Trigger")) } th { (l.t("启动", "Opened")) } th { (l.t("结案", "Closed")) } } }
                tbody { @for i in &list {
                    tr {
                        td { a href=(format!("/console/incidents/{}", i.incident_id)) { (i.incident_id) } br; span.small { (i.summary) } }
                        td { (i.account) } td { (i.title) }
                        td { (status_badge(l, i.status)) }
                        td { (trigger_text(l, &i.trigger)) }
                        td { (when(&i.opened_at)) br; span.small { (i.opened_by) } }
                        td { @if let Some(c) = &i.closed_at { (when(c)) } @else { "—" } }
                    }
                } }
            }
        }
    };
    Ok(page(&s, &me, l.t("应急事件", "Incidents"), body))
}

/// The form that starts an incident; `?account=&post=` fill it in (from an unknown post).
pub async fn new(
    State(s): State<AppState>,
    me: Me,
    q: Result<Query<ListFilter>, QueryRejection>,
) -> Result<Response, Fail> {
    let f = filter(&me, q)?;
    let l = me.lang;
    let playbooks = s.vault.incidents().playbooks(&me.actor).or_fail(&me)?;
    let accounts = s.vault.accounts().list(&me.actor).await.or_fail(&me)?;
    let chosen = blank(f.account);
    let body = html! {
        @if playbooks.is_empty() {
            p.warn { (l.t("没有加载任何应急预案（policies/playbooks/*.toml）。", "No playbook is loaded (policies/playbooks/*.toml).")) }
        }
        form.card #open-form method="post" action="/console/incidents/confirm" autocomplete="off" {
            input type="hidden" name="csrf" value=(me.csrf);
            label { (l.t("账号", "Account"))
                select #incident-account name="account" required {
                    @for a in &accounts {
                        option value=(a.id) selected[chosen.as_deref() == Some(a.id.as_str())] { (a.display_name) " (" (a.id) ")" }
                    }
                }
            }
            fieldset { legend { (l.t("应急预案", "Playbook")) }
                @for (i, p) in playbooks.iter().enumerate() {
                    label.check.playbook {
                        input type="radio" name="playbook" value=(p.id) required checked[i == 0];
                        b { (p.title) } br;
                        span.small { (p.description) }
                    }
                }
            }
            label { (l.t("情况说明", "What happened")) textarea #incident-summary name="summary" required maxlength="1000" rows="3" {} }
            label { (l.t("涉及的帖子编号（可选，取证用）", "Platform id of the post concerned (optional, for evidence)"))
                input #incident-post name="post" maxlength="128" value=(blank(f.post).unwrap_or_default()); }
            p.small { (l.t("下一步会先显示将要自动执行的操作，确认后才会启动。", "The next page shows what will run automatically; nothing runs until you confirm.")) }
            button #incident-next type="submit" { (l.t("下一步：查看将执行的操作", "Next: see what will run")) }
        }
    };
    Ok(page(&s, &me, l.t("启动应急事件", "Open an incident"), body))
}

#[derive(Deserialize)]
pub struct OpenForm {
    #[serde(default)]
    csrf: String,
    account: String,
    playbook: String,
    summary: String,
    #[serde(default)]
    post: String,
}

/// The confirmation: what the playbook will do, in words, before anything runs. Changes nothing.
pub async fn confirm(
    State(s): State<AppState>,
    me: Me,
    ConsoleForm(f): ConsoleForm<OpenForm>,
) -> Result<Response, Fail> {
    me.check_csrf(&s, &f.csrf)?;
    let l = me.lang;
    let playbooks = s.vault.incidents().playbooks(&me.actor).or_fail(&me)?;
    let p = playbooks
        .iter()
        .find(|p| p.id == f.playbook)
        .ok_or_else(|| me.fail(Error::NotFound(format!("playbook {:?}", f.playbook))))?;
    let autos: Vec<_> = p
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Auto)
        .collect();
    let manual: Vec<_> = p
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Manual)
        .collect();
    let body = html! {
        section.card #confirm-incident {
            dl.facts {
                dt { (l.t("账号", "Account")) } dd #confirm-account { (f.account) }
                dt { (l.t("应急预案", "Playbook")) } dd { (p.title) }
                dt { (l.t("情况说明", "What happened")) } dd { (f.summary) }
                @if !f.post.trim().is_empty() { dt { (l.t("帖子编号", "Post id")) } dd { code { (f.post.trim()) } } }
            }
            h2 { (l.t("确认后立即自动执行：", "Runs automatically as soon as you confirm:")) }
            @if autos.is_empty() { p { (l.t("（无自动步骤）", "(no automated step)")) } }
            ol #auto-steps { @for st in &autos {
                li { @if let Some(a) = st.action { b { (auto_words(l, a)) } } br; span.small { (st.title) } }
            } }
            h2 { (l.t("随后需人工完成的清单：", "Then this checklist, done by people:")) }
            ol #manual-steps { @for st in &manual {
                li { (st.title)
                    @if let Some(r) = st.owner_role { " · " span.badge { (role_name(l, r.as_str())) } }
                    @if let Some(m) = st.due_minutes { " · " span.small { (l.t("时限 ", "due within ")) (m) (l.t(" 分钟", " min")) } }
                    @if let Some(c) = st.confirm { br; span.small.warn { (confirm_words(l, c)) } }
                }
            } }
            p.small { (l.t("结案需要两位不同人员用各自的动态验证码签署。", "Closing needs the signatures of two different people, each with their own TOTP code.")) }
            form method="post" action="/console/incidents" autocomplete="off" {
                input type="hidden" name="csrf" value=(me.csrf);
                input type="hidden" name="account" value=(f.account);
                input type="hidden" name="playbook" value=(p.id);
                input type="hidden" name="summary" value=(f.summary);
                input type="hidden" name="post" value=(f.post);
                div.buttons {
                    button.danger #incident-open type="submit" { (l.t("确认启动并执行上述操作", "Confirm: open it and run these steps")) }
                    a.button.secondary href="/console/incidents/new" { (l.t("取消", "Cancel")) }
                }
            }
        }
    };
    Ok(page(
        &s,
        &me,
        l.t("确认启动应急事件", "Confirm the incident"),
        body,
    ))
}

pub async fn open(
    State(s): State<AppState>,
    me: Me,
    ConsoleForm(f): ConsoleForm<OpenForm>,
) -> Result<Response, Fail> {
    me.check_csrf(&s, &f.csrf)?;
    let post = Some(f.post.trim().to_owned()).filter(|p| !p.is_empty());
    let view = s
        .vault
        .incidents()
        .open(
            &me.actor,
            OpenIncident {
                account: f.account,
                playbook: f.playbook,
                summary: f.summary,
                post,
            },
        )
        .await
        .or_fail(&me)?;
    Ok(done(
        &format!("/console/incidents/{}", view.incident_id),
        "incident_opened",
    ))
}

fn step_row(l: Lang, me: &Me, id: &str, open: bool, st: &StepView) -> Markup {
    let workable = open && st.kind == "manual" && st.status == StepStatus::Pending;
    html! {
        tr id=(format!("step-{}", st.n)) {
            td { (st.n) }
            td { @if st.kind == "auto" { span.badge { (l.t("自动", "auto")) } } @else { span.badge { (l.t("人工", "manual")) } } }
            td { (st.title)
                @if let Some(r) = &st.owner_role { br; span.small { (l.t("负责：", "Owner: ")) (role_name(l, r)) } }
                @if let Some(d) = &st.due_at { " · " span.small { (l.t("时限 ", "due ")) (when(d)) } } }
            td.step-status { (step_badge(l, st.status)) }
            td { @if let Some(b) = &st.done_by { (b) } @if let Some(t) = &st.done_at { br; span.small { (when(t)) } }
                @if let Some(n) = &st.note { @if !n.is_empty() { br; span.note { (n) } } } }
            td { @if workable {
                form.row method="post" action=(format!("/console/incidents/{id}/steps/{}", st.n)) autocomplete="off" {
                    input type="hidden" name="csrf" value=(me.csrf);
                    input id=(format!("step-{}-note", st.n)) name="note" maxlength="2000" placeholder=(l.t("处理情况（备注）", "What was done (note)"));
                    @if st.action.is_some() {
                        input id=(format!("step-{}-totp", st.n)) name="totp" required inputmode="numeric" pattern="[0-9]{6}" maxlength="6"
                            autocomplete="one-time-code" placeholder=(l.t("本人验证码", "Your TOTP"));
                    }
                    button id=(format!("step-{}-done", st.n)) type="submit" { (l.t("标记完成", "Mark done")) }
                }
            } }
        }
    }
}

pub async fn incident(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<String>,
) -> Result<Response, Fail> {
    let l = me.lang;
    let i = s.vault.incidents().get(&me.actor, &id).await.or_fail(&me)?;
    let open = i.status == IncidentStatus::Open;
    let base = format!("/console/incidents/{}", i.incident_id);
    let signed_by_me = i
        .close_signatures
        .iter()
        .any(|g| g.username == me.person.username);
    let body = html! {
        section.card #incident {
            dl.facts {
                dt { (l.t("事件编号", "Incident id")) } dd #incident-id { (i.incident_id) }
                dt { (l.t("状态", "Status")) } dd #incident-status { (status_badge(l, i.status)) }
                dt { (l.t("账号", "Account")) } dd { a href=(format!("/console/admin/accounts/{}", i.account)) { (i.account) } }
                dt { (l.t("应急预案", "Playbook")) } dd { (i.title) " " span.small { "(" (i.playbook) ")" } }
                dt { (l.t("情况说明", "What happened")) } dd { (i.summary) }
                dt { (l.t("启动方式", "Trigger")) } dd { (trigger_text(l, &i.trigger)) }
                dt { (l.t("启动", "Opened")) } dd { (when(&i.opened_at)) " · " (i.opened_by) }
                @if let Some(c) = &i.closed_at { dt { (l.t("结案", "Closed")) } dd { (when(c)) } }
                @if let Some(c) = &i.checkpoint { dt { (l.t("审计检查点", "Audit checkpoint")) } dd { code.small.wrap { (c) } } }
            }
            p.exports { (l.t("下载事件报告：", "Download the report: "))
                a #report-md href=(format!("{base}/report?format=md")) { "Markdown" } " · "
                a #report-json href=(format!("{base}/report?format=json")) { "JSON" } }
        }
        section.card #checklist {
            h2 { (l.t("处置清单", "Checklist")) }
            table { thead { tr { th { "#" } th { (l.t("类型", "Kind")) } th { (l.t("步骤", "Step")) } th { (l.t("状态", "Status")) }
                th { (l.t("完成人与备注", "Done by, note")) } th {} } }
                tbody { @for st in &i.steps { (step_row(l, &me, &i.incident_id, open, st)) } } }
        }
        @if !i.evidence.is_empty() {
            section.card #evidence {
                h2 { (l.t("已取证的帖子", "Captured posts")) }
                table { thead { tr { th { (l.t("帖子编号", "Post id")) } th { "SHA-256" } th { (l.t("取证", "Captured")) } th { (l.t("删除", "Deleted")) } } }
                    tbody { @for e in &i.evidence { tr {
                        td { code { (e.platform_id) } } td { code.small { (e.sha256) } }
                        td { (when(&e.captured_at)) " · " (e.captured_by) }
                        td { @if let Some(d) = &e.deleted_at { (when(d)) " · " (e.deleted_by.clone().unwrap_or_default()) } @else { "—" } }
                    } } } }
            }
        }
        section.card #timeline {
            h2 { (l.t("时间线", "Timeline")) }
            ol.timeline { @for t in &i.timeline {
                li { span.small { (when(&t.at)) } " · " b { (t.actor) } " · " (event_text(l, &t.event))
                    @if let Some(n) = t.step { " #" (n) }
                    @if !t.detail.is_empty() { " · " span.note { (t.detail) } } }
            } }
        }
        section.card #close {
            h2 { (l.t("结案签署", "Close signatures")) " " span.count { (i.close_signatures.len()) " / " (CLOSE_SIGNATURES) } }
            ul #signatures { @for g in &i.close_signatures { li { b { (g.username) } " · " (when(&g.signed_at)) } } }
            @if open {
                @if signed_by_me {
                    p.notice #waiting-second { (l.t("您已签署，正在等待另一位人员签署结案。", "You have signed; waiting for a second person to sign the close.")) }
                } @else {
                    p.small { (l.t("结案需要两位不同人员签署；第一位签署后事件仍在处理中。", "Closing needs two different people; after the first signature the incident stays open.")) }
                    form method="post" action=(format!("{base}/close")) autocomplete="off" {
                        input type="hidden" name="csrf" value=(me.csrf);
                        label { (l.t("复盘结论", "Review")) textarea #close-review name="review" required maxlength="4000" rows="3" {} }
                        label { (l.t("本人动态验证码", "Your TOTP code"))
                            input #close-totp name="totp" required inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code"; }
                        button #close-submit type="submit" { (l.t("签署结案", "Sign the close")) }
                    }
                }
            }
        }
        p { a href="/console/incidents" { (l.t("返回事件列表", "Back to the incidents")) } }
    };
    Ok(page(
        &s,
        &me,
        &format!("{} {}", l.t("应急事件", "Incident"), i.incident_id),
        body,
    ))
}

#[derive(Deserialize)]
pub struct StepForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
    totp: Option<String>,
}

pub async fn step(
    State(s): State<AppState>,
    me: Me,
    Path((id, n)): Path<(String, i64)>,
    ConsoleForm(f): ConsoleForm<StepForm>,
) -> Result<Response, Fail> {
    me.check_csrf(&s, &f.csrf)?;
    let totp = f.totp.as_deref().map(str::trim).filter(|t| !t.is_empty());
    s.vault
        .incidents()
        .complete_step(&me.actor, &id, n, &f.note, totp)
        .await
        .or_fail(&me)?;
    Ok(done(&format!("/console/incidents/{id}"), "step_done"))
}

#[derive(Deserialize)]
pub struct CloseForm {
    #[serde(default)]
    csrf: String,
    review: String,
    totp: String,
}

pub async fn close(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<String>,
    ConsoleForm(f): ConsoleForm<CloseForm>,
) -> Result<Response, Fail> {
    me.check_csrf(&s, &f.csrf)?;
    let out = s
        .vault
        .incidents()
        .close(&me.actor, &id, &f.review, f.totp.trim())
        .await
        .or_fail(&me)?;
    Ok(done(
        &format!("/console/incidents/{id}"),
        if out.closed {
            "incident_closed"
        } else {
            "close_signed"
        },
    ))
}

#[derive(Deserialize)]
pub struct ReportQuery {
    format: Option<String>,
    #[allow(dead_code)]
    lang: Option<String>,
}

pub async fn report(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<String>,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Response, Fail> {
    let q = q.map_err(|_| me.fail(Error::invalid("format", "format must be md or json")))?;
    let format = ReportFormat::parse(q.format.as_deref()).or_fail(&me)?;
    let out = s
        .vault
        .incidents()
        .report(&me.actor, &id, format)
        .await
        .or_fail(&me)?;
    let mut resp = out.body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(out.content_type),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", out.file_name)) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

fn approvers(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    let who = x.get("approver").and_then(Value::as_str).unwrap_or("?");
                    match x.get("at").and_then(Value::as_str) {
                        Some(at) => format!("{who} ({})", when(at)),
                        None => who.to_owned(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The evidence record of every post per account, and the live posts the publication watch
/// found that the vault did not publish (recorded once each as `watch.unknown_post`).
pub async fn posts(
    State(s): State<AppState>,
    me: Me,
    q: Result<Query<ListFilter>, QueryRejection>,
) -> Result<Response, Fail> {
    let f = filter(&me, q)?;
    let l = me.lang;
    let account = blank(f.account);
    let records = s
        .vault
        .posts()
        .list(
            &me.actor,
            &PostQuery {
                account: account.clone(),
                since: None,
                limit: Some(1000),
            },
        )
        .await
        .or_fail(&me)?;
    let unknown = s
        .vault
        .audit_review()
        .query(
            &me.actor,
            &QueryParams {
                action: Some("watch.unknown_post".into()),
                account: account.clone(),
                limit: Some("1000".into()),
                ..QueryParams::default()
            },
        )
        .await
        .or_fail(&me)?;
    let mut accounts: Vec<&str> = records.iter().map(|p| p.account.as_str()).collect();
    accounts.sort_unstable();
    accounts.dedup();
    let body = html! {
        form.filters.card method="get" action="/console/posts" {
            label { (l.t("账号", "Account")) input name="account" value=(account.clone().unwrap_or_default()); }
            button type="submit" { (l.t("筛选", "Filter")) }
            a.button.secondary href="/console/posts" { (l.t("清除", "Clear")) }
        }
        section.card.warn[!unknown.entries.is_empty()] #unknown-posts {
            h2 { (l.t("发布监测发现的未知帖子", "Posts the publication watch could not match")) span.count { (unknown.entries.len()) } }
            p.small { (l.t(
                "这些帖子出现在账号上，但保管库没有其发布记录：可能是有人绕过保管库发布。可据此启动应急事件。",
                "These posts are live on the account but the vault has no record of publishing them: someone may have published around the vault. Open an incident from here."
            )) }
            @if unknown.entries.is_empty() { p.ok { (l.t("没有未知帖子。", "No unknown post.")) } }
            @else {
                table { thead { tr { th { (l.t("发现时间", "Found")) } th { (l.t("账号", "Account")) } th { (l.t("帖子编号", "Post id")) } th {} } }
                    tbody { @for e in &unknown.entries {
                        @let pid = e.detail.get("platform_id").and_then(Value::as_str).unwrap_or_default();
                        tr {
                            td { (when(&e.ts)) } td { (e.target) } td { code { (pid) } }
                            td { a.button.secondary href=(format!("/console/incidents/new?account={}&post={}", url_encode(&e.target), url_encode(pid))) {
                                (l.t("启动应急事件", "Open an incident")) } }
                        }
                    } }
                }
            }
        }
        @if records.is_empty() { p #no-posts { (l.t("没有经保管库发布的帖子记录。", "No post went out through the vault.")) } }
        @for a in &accounts {
            section.card.posts id=(format!("posts-{a}")) {
                h2 { (l.t("账号 ", "Account ")) (a) }
                table {
                    thead { tr { th { (l.t("时间", "When")) } th { (l.t("发布人（处室）", "Operator (department)")) } th { (l.t("审批人", "Approved by")) }
                        th { (l.t("状态", "Status")) } th { (l.t("平台编号", "Platform ids")) } th { (l.t("内容摘要", "Content digest")) } } }
                    tbody { @for p in records.iter().filter(|p| p.account == *a) {
                        tr {
                            td { (when(&p.created_at)) br; span.small { (p.post_id) } }
                            td { (p.operator) @if let Some(d) = &p.department { " (" (d) ")" } br; span.small { (l.t("工具 ", "tool ")) (p.client) } }
                            td { @let ap = approvers(&p.approvals);
                                @if ap.is_empty() { (l.t("（无需审批）", "(no approval needed)")) } @else { @for x in &ap { (x) br; } } }
                            td { (p.status.as_str()) @if let Some(e) = &p.error { br; span.small.bad { (e) } } }
                            td.ids {
                                @for (k, v) in [("media_id", &p.media_id), ("publish_id", &p.publish_id), ("article_id", &p.article_id), ("status_id", &p.status_id)] {
                                    @if let Some(v) = v { span.small { (k) } " " code { (v) } br; }
                                }
                                @if let Some(u) = &p.article_url { span.small { "URL " code.wrap { (u) } } }
                            }
                            td { @if let Some(c) = &p.content_sha256 { code.small { (c.get(..16).unwrap_or(c)) "…" } } }
                        }
                    } }
                }
            }
        }
    };
    // The page's own entry reads as the evidence listing it shows.
    me.actor.action("post.list", account.as_deref());
    Ok(page(
        &s,
        &me,
        l.t("发布记录与未知帖子", "Post records and unknown posts"),
        body,
    ))
}

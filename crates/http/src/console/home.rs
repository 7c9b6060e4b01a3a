//! The home page: what needs the signed-in person's attention. Each part comes from a service
//! call; a part the person's roles may not read is simply not shown (the service decides).

use axum::extract::State;
use axum::response::Response;
use maud::html;

use super::layout::{page, when};
use super::{AppState, Fail, Me};
use crate::checkout::ListQuery;
use crate::incidents::IncidentQuery;
use crate::store::types::AccountStatus;

/// A credential at least this many days old is due for rotation (`lifetimes.secret_max_age_days`).
pub fn rotation_due_days(s: &AppState) -> i64 {
    i64::from(s.vault.config.lifetimes.secret_max_age_days)
}

/// Whether a platform token expiring at `rfc3339` is within `lifetimes.token_warn_days`.
pub fn token_expiring(s: &AppState, rfc3339: Option<&str>) -> bool {
    let warn = i64::from(s.vault.config.lifetimes.token_warn_days);
    rfc3339
        .and_then(crate::clock::parse_rfc3339)
        .is_some_and(|t| (t - s.vault.clock().now()).whole_days() < warn)
}

/// Whole days since an RFC 3339 time.
pub fn age_days(s: &AppState, rfc3339: &str) -> i64 {
    crate::clock::parse_rfc3339(rfc3339)
        .map(|t| (s.vault.clock().now() - t).whole_days())
        .unwrap_or(0)
}

async fn render(s: &AppState, me: &Me) -> Result<Response, Fail> {
    let l = me.lang;
    let v = &s.vault;
    let pending = v
        .checkouts()
        .list(
            &me.actor,
            &ListQuery {
                status: Some("pending_approval".into()),
                account: None,
            },
        )
        .await
        .ok();
    let users = v.people().list(&me.actor).await.ok();
    let now = v.clock().now();
    let locked: Option<Vec<_>> = users.map(|us| {
        us.into_iter()
            .filter(|u| {
                u.locked_until
                    .as_deref()
                    .and_then(crate::clock::parse_rfc3339)
                    .is_some_and(|t| t > now)
            })
            .collect()
    });
    let accounts = v.accounts().list(&me.actor).await.ok();
    let incidents = v
        .incidents()
        .list(
            &me.actor,
            &IncidentQuery {
                account: None,
                status: Some("open".into()),
            },
        )
        .await
        .ok();
    let grants = v.people().pending_grants(&me.actor).await.ok();
    let reviews = v
        .checkouts()
        .break_glass_reviews(&me.actor, true)
        .await
        .ok();
    let mine = v.checkouts().mine(&me.actor).await.ok();
    me.actor.action("console.home", None);
    let body = html! {
        div.grid {
            @if let Some(p) = &pending {
                section.card #attention-approvals {
                    h2 { (l.t("待审批的签出", "Checkouts waiting for approval")) span.count { (p.len()) } }
                    @if p.is_empty() { p.ok { (l.t("没有待审批的申请。", "Nothing is waiting.")) } }
                    ul { @for c in p {
                        li { b { (c.account) } " · " (c.operator) " · " (c.purpose) " · " span.small { (when(&c.requested_at)) } }
                    } }
                    @if !p.is_empty() { a.button href="/console/approvals" { (l.t("去审批", "Review them")) } }
                }
            }
            @if let Some(open) = &incidents {
                section.card.warn[!open.is_empty()] #attention-incidents {
                    h2 { (l.t("处理中的应急事件", "Open incidents")) span.count { (open.len()) } }
                    @if open.is_empty() { p.ok { (l.t("没有处理中的应急事件。", "No incident is open.")) } }
                    ul { @for i in open {
                        li { a href=(format!("/console/incidents/{}", i.incident_id)) { (i.title) } " · " b { (i.account) }
                            " · " span.small { (when(&i.opened_at)) } }
                    } }
                    a.button.secondary href="/console/incidents" { (l.t("全部事件", "All incidents")) }
                }
            }
            @if let Some(m) = &mine {
                section.card #my-checkouts {
                    h2 { (l.t("我的签出申请", "My checkout requests")) span.count { (m.len()) } }
                    @if m.is_empty() { p.ok { (l.t("您还没有签出申请。", "You have made no checkout request.")) } }
                    ul { @for c in m {
                        li id=(format!("mine-{}", c.checkout_id)) {
                            b { (c.account) } " · " (c.purpose) " · "
                            span.status { (super::i18n::checkout_status(l, c.status)) }
                            @for a in &c.approvals {
                                " · " (a.approver) " " (super::i18n::decision(l, &a.decision))
                                @if let Some(m) = &a.comment { "：" (m) }
                            }
                            @if let Some(b) = &c.break_glass {
                                " · " span.badge.bad { (l.t("紧急放行", "break-glass")) } " " (b.released_by)
                            }
                            " · " span.small { (when(&c.requested_at)) }
                        }
                    } }
                }
            }
            @if let Some(r) = &reviews {
                section.card.warn[!r.is_empty()] #attention-break-glass {
                    h2 { (l.t("待复核的紧急放行", "Break-glass releases to review")) span.count { (r.len()) } }
                    @if r.is_empty() { p.ok { (l.t("没有待复核的紧急放行。", "Nothing is waiting.")) } }
                    ul { @for b in r {
                        li { b { (b.account) } " · " (l.t("放行人 ", "by ")) (b.released_by) " · " (b.reason) " · " span.small { (when(&b.released_at)) } }
                    } }
                    @if !r.is_empty() { a.button href="/console/break-glass" { (l.t("去复核", "Review them")) } }
                }
            }
            @if let Some(g) = &grants {
                section.card #attention-grants {
                    h2 { (l.t("待确认的角色授予", "Role grants waiting for a second admin")) span.count { (g.len()) } }
                    @if g.is_empty() { p.ok { (l.t("没有待确认的授予。", "Nothing is waiting.")) } }
                    ul { @for x in g {
                        li { b { (x.username) } " · " (super::i18n::role_name(l, &x.role)) " · "
                            span.small { (l.t("提出人 ", "asked by ")) (x.requested_by) } }
                    } }
                    @if !g.is_empty() { a.button href="/console/admin/users#pending-grants" { (l.t("去确认", "Review them")) } }
                }
            }
            @if let Some(accts) = &accounts {
                @let due: Vec<_> = accts.iter().filter(|a| a.rotation_due_since.is_some() || age_days(s, &a.rotated_at) >= rotation_due_days(s) || token_expiring(s, a.token_expires_at.as_deref())).collect();
                @let frozen: Vec<_> = accts.iter().filter(|a| a.status == AccountStatus::Frozen).collect();
                section.card #attention-rotation {
                    h2 { (l.t("需要更换的凭据", "Credentials due for rotation")) span.count { (due.len()) } }
                    p.small { (l.t("超过期限未更换的凭据、即将过期的平台令牌，以及紧急放行后须更换的凭据。", "Credentials past their age limit, platform tokens about to expire, and credentials a break-glass release used.")) }
                    @if due.is_empty() { p.ok { (l.t("所有凭据都在有效期内。", "Every credential is recent.")) } }
                    ul { @for a in &due {
                        li { a href=(format!("/console/admin/accounts/{}", a.id)) { (a.display_name) } " · "
                            @if let Some(since) = &a.rotation_due_since {
                                span.badge.bad.rotation-due { (l.t("紧急放行后须更换", "due after break-glass")) } " " span.small { (when(since)) }
                            } @else if token_expiring(s, a.token_expires_at.as_deref()) {
                                span.badge.bad.token-expiring { (l.t("平台令牌即将过期，请重新授权", "platform token expiring: re-authorise")) } " "
                                span.small { (when(a.token_expires_at.as_deref().unwrap_or_default())) }
                            } @else {
                                (age_days(s, &a.rotated_at)) (l.t(" 天", " days"))
                            }
                        }
                    } }
                }
                @if !frozen.is_empty() {
                    section.card.warn #attention-frozen {
                        h2 { (l.t("已冻结的账号", "Frozen accounts")) span.count { (frozen.len()) } }
                        ul { @for a in &frozen {
                            li { a href=(format!("/console/admin/accounts/{}", a.id)) { (a.display_name) }
                                @if let Some(r) = &a.status_reason { " · " (r) } }
                        } }
                    }
                }
            }
            @if let Some(locked) = &locked {
                section.card #attention-locked {
                    h2 { (l.t("被锁定的用户", "Locked users")) span.count { (locked.len()) } }
                    @if locked.is_empty() { p.ok { (l.t("没有被锁定的用户。", "No one is locked out.")) } }
                    ul { @for u in locked {
                        li { (u.username) " · " (u.display_name) " · " (l.t("锁定至 ", "until "))
                            (when(u.locked_until.as_deref().unwrap_or_default())) }
                    } }
                }
            }
            @if pending.is_none() && accounts.is_none() && locked.is_none() && incidents.is_none() && reviews.is_none() && mine.is_none() {
                section.card {
                    p { (l.t(
                        "您的角色在控制台中没有需要处理的事项。发布操作通过发布工具进行。",
                        "Nothing here needs your role's attention. Publishing happens in your publishing tool."
                    )) }
                }
            }
        }
    };
    Ok(page(s, me, l.t("首页", "Home"), body))
}

pub async fn home(State(s): State<AppState>, me: Me) -> Result<Response, Fail> {
    render(&s, &me).await
}

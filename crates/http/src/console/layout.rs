//! The page frame: head with the embedded stylesheet and script, navigation by role, language
//! switch, the session's idle timeout, logout; and the error page.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::{AppState, Lang, Me};
use crate::identity::Role;

fn head(l: Lang, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · " (l.t("新媒体账号保管库", "mediavault")) }
            link rel="stylesheet" href="/console/assets/console.css";
            script src="/console/assets/console.js" defer {}
        }
    }
}

/// The notices a change redirects to, by name; anything else shows nothing.
fn notice(l: Lang, done: &str) -> Option<&'static str> {
    Some(match done {
        "rotated" => l.t(
            "凭据已更换，新版本已生效。",
            "The credential was rotated; the new version is current.",
        ),
        "rolled_back" => l.t(
            "已回滚：所选版本已复制为新的当前版本。",
            "Rolled back: the chosen version is now current as a new version.",
        ),
        "frozen" => l.t(
            "账号已冻结，所有令牌已吊销。",
            "The account is frozen and every token was revoked.",
        ),
        "unfrozen" => l.t("账号已解除冻结。", "The account is active again."),
        "disabled" => l.t(
            "用户已停用，其会话和签出均已结束。",
            "The user is disabled; their sessions and checkouts ended.",
        ),
        "revoked" => l.t("客户端密钥已吊销。", "The client key is revoked."),
        "stepped_up" => l.t(
            "身份验证成功：在有效期内，敏感操作无需再次输入验证码（审批发布、关闭事件除外）。",
            "Stepped up: sensitive changes need no new code while the window lasts (approving posts and closing incidents still do).",
        ),
        "approved" => l.t("已批准。", "Approved."),
        "denied" => l.t("已驳回。", "Denied."),
        "break_glass" => l.t(
            "已紧急放行：全体审批人已收到通知，该账号凭据须随后更换，待另一人复核结案。",
            "Released alone: every approver has been told, the account's credential is due for rotation, and a second person must review it.",
        ),
        "reauthorized" => l.t(
            "微博已重新授权，新令牌已作为新的凭据版本保存。",
            "Weibo re-authorised: the new token is stored as a new credential version.",
        ),
        "quota_cleared" => l.t(
            "微信已清零本账号的接口调用次数。",
            "WeChat reset this account's API call counts.",
        ),
        "review_closed" => l.t("紧急放行复核已结案。", "The break-glass review is closed."),
        "role_confirmed" => l.t(
            "角色已确认，现已生效。",
            "The role is confirmed and in effect.",
        ),
        "incident_opened" => l.t(
            "应急事件已启动，自动步骤已执行，结果见处置清单。",
            "The incident is open; the automated steps ran, see the checklist for their results.",
        ),
        "step_done" => l.t("步骤已标记完成。", "The step is marked done."),
        "close_signed" => l.t(
            "已签署结案，正在等待另一位人员签署。",
            "Signed; waiting for a second person to sign the close.",
        ),
        "incident_closed" => l.t(
            "两位人员均已签署，事件已结案。",
            "Two people signed; the incident is closed.",
        ),
        _ => return None,
    })
}

fn lang_link(path: &str, l: Lang) -> Markup {
    html! {
        @match l {
            Lang::Zh => a.lang href=(format!("{path}?lang=en")) lang="en" { "English" },
            Lang::En => a.lang href=(format!("{path}?lang=zh")) lang="zh-CN" { "中文" },
        }
    }
}

/// A full page for a signed-in person.
pub fn page(s: &AppState, me: &Me, title: &str, body: Markup) -> Response {
    let l = me.lang;
    let idle = u64::from(s.vault.config.session.idle_timeout_minutes) * 60;
    let roles = &me.person.roles;
    let admin = roles.any(&[Role::Admin]);
    let approver = roles.any(&[Role::Approver, Role::Admin]);
    let auditor = roles.any(&[Role::Auditor, Role::Admin]);
    let markup = html! {
        (DOCTYPE)
        html lang=(l.html_lang()) {
            (head(l, title))
            body data-idle=(idle) {
                header.top {
                    a.brand href="/console" { (l.t("新媒体账号保管库", "mediavault")) }
                    nav {
                        a href="/console" { (l.t("首页", "Home")) }
                        @if admin {
                            a href="/console/admin/accounts" { (l.t("账号", "Accounts")) }
                            a href="/console/admin/users" { (l.t("用户", "Users")) }
                            a href="/console/admin/clients" { (l.t("发布工具", "Tools")) }
                        }
                        @if admin || auditor {
                            a href="/console/admin/policies" { (l.t("访问策略", "Policies")) }
                            a href="/console/incidents" { (l.t("应急事件", "Incidents")) }
                            a href="/console/posts" { (l.t("发布记录", "Posts")) }
                        }
                        @if approver {
                            a href="/console/approvals" { (l.t("审批", "Approvals")) }
                        }
                        @if approver || auditor {
                            a href="/console/break-glass" { (l.t("紧急放行复核", "Break-glass reviews")) }
                        }
                        @if auditor {
                            a href="/console/audit" { (l.t("审计日志", "Audit log")) }
                        }
                    }
                    div.who {
                        span #me { (me.person.username) }
                        " · "
                        span.idle title=(l.t("闲置超时后需重新登录", "You must sign in again after this much idle time")) {
                            (l.t("闲置退出：", "Idle sign-out in "))
                            span #idle-left { (idle / 60) ":00" }
                        }
                        " · "
                        @let left = me.step_up_left(s);
                        @if left > 0 {
                            span.stepup #step-up data-left=(left) title=(l.t("在此期间的敏感操作无需再次输入验证码（审批发布除外）", "Sensitive changes need no new code until then (approvals still do)")) {
                                (l.t("身份验证有效：", "Stepped up for "))
                                span #step-up-left { (left / 60) ":" (format!("{:02}", left % 60)) }
                            }
                        } @else {
                            form.inline #step-up-form method="post" action="/console/step-up" {
                                input type="hidden" name="csrf" value=(me.csrf);
                                input type="hidden" name="next" value=(me.path);
                                input #step-up-totp name="totp" required inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code" size="6"
                                    placeholder=(l.t("验证码", "TOTP")) aria-label=(l.t("本人动态验证码", "Your TOTP code"));
                                button #step-up-button type="submit" { (l.t("验证身份", "Step up")) }
                            }
                        }
                        " · "
                        (lang_link(&me.path, l))
                        form.inline method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(me.csrf);
                            button #logout type="submit" { (l.t("退出", "Sign out")) }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(n) = me.done.as_deref().and_then(|d| notice(l, d)) {
                        p.notice #notice role="status" { (n) }
                    }
                    (body)
                }
                footer { (l.t("所有访问和操作均记入防篡改审计日志。", "Every view and action is recorded in the tamper-evident audit log.")) }
            }
        }
    };
    Html(markup.into_string()).into_response()
}

/// A page without a session (login, errors before sign-in).
pub fn bare(l: Lang, path: &str, title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang=(l.html_lang()) {
            (head(l, title))
            body {
                header.top {
                    a.brand href="/console" { (l.t("新媒体账号保管库", "mediavault")) }
                    div.who { (lang_link(path, l)) }
                }
                main.narrow {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
    .into_string()
}

pub fn error_page(
    l: Lang,
    status: StatusCode,
    title: &str,
    todo: &str,
    detail: Option<&str>,
    request_id: &str,
) -> Html<String> {
    Html(bare(
        l,
        "/console",
        title,
        html! {
            div.error #error data-status=(status.as_u16()) {
                p.todo { (todo) }
                @if let Some(d) = detail {
                    p.detail { (l.t("详细信息：", "Details: ")) (d) }
                }
                p.small { (l.t("请求编号：", "Request id: ")) code { (request_id) } " · HTTP " (status.as_u16()) }
                p { a href="/console" { (l.t("返回首页", "Back to the home page")) } }
            }
        },
    ))
}

/// A timestamp as shown: `2026-11-02 14:03 UTC` from RFC 3339.
pub fn when(rfc3339: &str) -> String {
    let s = rfc3339.replace('T', " ");
    let s = s.trim_end_matches('Z');
    let s = s.split('.').next().unwrap_or(s);
    format!("{} UTC", s.get(..16).unwrap_or(s))
}

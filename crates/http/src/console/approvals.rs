//! The approver's pages: checkouts waiting for approval, each with who asks, for which account,
//! why, at which level; and one checkout in full, with the post as it will appear on each target
//! (see `post.rs` for how untrusted HTML is shown), where the approver approves or denies with
//! their own TOTP code and a comment; an admin may release it alone there (break-glass) where the
//! policies allow it.

use axum::extract::{Path, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::layout::{page, when};
use super::{AppState, ConsoleForm, Fail, Me, OrFail, done, post};
use crate::checkout::ListQuery;
use crate::identity::Role;
use crate::policy::Level;
use crate::store::types::CheckoutStatus;

pub async fn page_view(State(s): State<AppState>, me: Me) -> Result<Response, Fail> {
    let l = me.lang;
    let pending = s
        .vault
        .checkouts()
        .list(
            &me.actor,
            &ListQuery {
                status: Some("pending_approval".into()),
                account: None,
            },
        )
        .await
        .or_fail(&me)?;
    let body = html! {
        @if pending.is_empty() {
            p.ok #no-pending { (l.t("目前没有待审批的签出申请。", "No checkout is waiting for approval.")) }
        }
        @for c in &pending {
            section.card.checkout id=(format!("co-{}", c.checkout_id)) {
                h2 { (c.account) " · "
                    @match c.level {
                        Level::Major => span.badge.bad { (l.t("重大信息", "major")) },
                        Level::General => span.badge { (l.t("一般信息", "general")) },
                    }
                }
                dl.facts {
                    dt { (l.t("申请人", "Requested by")) } dd.operator { (c.operator) }
                    dt { (l.t("发布工具", "Tool")) } dd { code { (c.client) } }
                    dt { (l.t("用途", "Purpose")) } dd.purpose { (c.purpose) }
                    dt { (l.t("申请时间", "Requested")) } dd { (when(&c.requested_at)) }
                    dt { (l.t("所需审批", "Approvals needed")) } dd { (c.approvals.iter().filter(|a| a.decision == "approve").count()) " / " (c.approvals_needed) }
                    @if let Some(d) = &c.content_sha256 {
                        dt { (l.t("绑定内容（SHA-256）", "Bound content (SHA-256)")) } dd { @for h in d { code.small { (h) } br; } }
                    }
                }
                p { a.button.review href=(format!("/console/approvals/{}", c.checkout_id)) {
                    @if c.content_sha256.is_some() { (l.t("阅读待发布内容并审批", "Read the post and decide")) }
                    @else { (l.t("查看并审批", "Open and decide")) } } }
            }
        }
    };
    Ok(page(
        &s,
        &me,
        l.t("待审批的签出", "Checkouts waiting for approval"),
        body,
    ))
}

/// One checkout in full: the facts, the operator's department, the target accounts, the post
/// as it will appear, and the decision form.
pub async fn detail(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<String>,
) -> Result<Response, Fail> {
    let l = me.lang;
    let c = s.vault.checkouts().get(&me.actor, &id).await.or_fail(&me)?;
    let pending = c.status == CheckoutStatus::PendingApproval;
    // The service refuses self-approval; the requester is simply not offered the form.
    let decidable =
        pending && c.operator != me.person.username && me.person.roles.any(&[Role::Approver]);
    // Break-glass: offered to an admin (not the requester) where the policies allow it.
    let releasable = c.break_glass_allowed
        && c.operator != me.person.username
        && me.person.roles.any(&[Role::Admin]);
    let body = html! {
        section.card.checkout #checkout id=(format!("co-{}", c.checkout_id)) {
            h2 { (c.account) " · "
                @match c.level {
                    Level::Major => span.badge.bad { (l.t("重大信息", "major")) },
                    Level::General => span.badge { (l.t("一般信息", "general")) },
                }
                " " @if pending { span.badge.warn { (l.t("待审批", "waiting for approval")) } }
                @else { span.badge { (c.status.as_str()) } }
            }
            dl.facts {
                dt { (l.t("申请人", "Requested by")) } dd.operator #operator { (c.operator) }
                dt { (l.t("责任处室", "Responsible department")) } dd #department {
                    @if let Some(d) = &c.department { (d) } @else { span.small { (l.t("（未登记）", "(not recorded)")) } } }
                dt { (l.t("发布工具", "Tool")) } dd { code { (c.client) } }
                dt { (l.t("用途", "Purpose")) } dd.purpose { (c.purpose) }
                dt { (l.t("申请时间", "Requested")) } dd { (when(&c.requested_at)) }
                dt { (l.t("发布到的账号", "Target accounts")) } dd #targets { @for t in &c.targets { span.badge { (t) } " " } }
                dt { (l.t("所需审批", "Approvals needed")) } dd { (c.approvals.iter().filter(|a| a.decision == "approve").count()) " / " (c.approvals_needed) }
                @for a in &c.approvals {
                    dt { (l.t("审批记录", "Decision")) } dd { b { (a.approver) } " · " (a.decision) " · " (when(&a.at))
                        @if let Some(m) = &a.comment { " · " (m) } }
                }
            }
        }
        @if let Some(b) = &c.break_glass {
            (super::break_glass::release_card(l, b))
        }
        section.card #post {
            h2 { (l.t("待发布内容（按发布后的样子显示）", "The post, as it will appear")) }
            @match &c.content {
                Some(content) => {
                    p.small { (l.t("内容摘要（SHA-256）：", "Content digest (SHA-256): ")) code.small { (content.sha256) } }
                    (post::render(l, content))
                }
                None => p { (l.t("此签出未附带内容：批准后令牌可调用策略允许的平台接口。", "This checkout carries no post: once approved, its token may make the platform calls the policy allows.")) },
            }
        }
        @if decidable {
            section.card #decide {
                h2 { (l.t("审批", "Decision")) }
                form method="post" action=(format!("/console/approvals/{}", c.checkout_id)) autocomplete="off" {
                    input type="hidden" name="csrf" value=(me.csrf);
                    label { (l.t("意见（可选）", "Comment (optional)")) input #decide-comment name="comment" maxlength="500"; }
                    label { (l.t("本人动态验证码", "Your TOTP code"))
                        input #decide-totp name="totp" required inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code"; }
                    div.buttons {
                        button.approve #approve type="submit" name="decision" value="approve" { (l.t("批准", "Approve")) }
                        button.danger.deny #deny type="submit" name="decision" value="deny" { (l.t("驳回", "Deny")) }
                    }
                }
            }
        }
        @if releasable {
            section.card.warn #break-glass {
                h2 { (l.t("紧急放行（无法联系审批人时）", "Break-glass (when no approver can be reached)")) }
                p { (l.t(
                    "仅在所有审批人均无法联系、发布又不能等待时使用。放行后：立即通知全体审批人；审计记录和发布记录标注为紧急放行；该账号的凭据须随后更换；由另一人复核后方可结案。",
                    "Only when no approver can be reached and the post cannot wait. Afterwards every approver is told at once, the audit entry and the post record are marked, the account's credential is due for rotation, and a second person must review and close it."
                )) }
                form method="post" action=(format!("/console/approvals/{}/break-glass", c.checkout_id)) autocomplete="off" {
                    input type="hidden" name="csrf" value=(me.csrf);
                    label { (l.t("放行理由（必填，至少 10 个字）", "Reason (required, at least 10 characters)"))
                        textarea #break-glass-reason name="reason" required minlength="10" maxlength="1000" rows="3" {} }
                    label { (l.t("本人动态验证码", "Your TOTP code"))
                        input #break-glass-totp name="totp" required inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code"; }
                    div.buttons {
                        button.danger #break-glass-release type="submit" { (l.t("紧急放行", "Release alone")) }
                    }
                }
            }
        }
        p { a href="/console/approvals" { (l.t("返回待审批列表", "Back to the waiting list")) } }
    };
    Ok(page(
        &s,
        &me,
        l.t("审阅签出申请", "Review a checkout"),
        body,
    ))
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: String,
    decision: String,
    totp: String,
    comment: Option<String>,
}

pub async fn decide(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<String>,
    ConsoleForm(f): ConsoleForm<DecisionForm>,
) -> Result<Response, Fail> {
    me.check_csrf(&s, &f.csrf)?;
    let c = s.vault.checkouts();
    let comment = f.comment.as_deref().filter(|c| !c.trim().is_empty());
    let approve = f.decision == "approve";
    if approve {
        c.approve(&me.actor, &id, f.totp.trim(), comment)
            .await
            .or_fail(&me)?;
    } else {
        c.deny(&me.actor, &id, f.totp.trim(), comment)
            .await
            .or_fail(&me)?;
    }
    Ok(done(
        "/console/approvals",
        if approve { "approved" } else { "denied" },
    ))
}

#[derive(Deserialize)]
pub struct BreakGlassForm {
    #[serde(default)]
    csrf: String,
    reason: String,
    totp: String,
}

pub async fn break_glass(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<String>,
    ConsoleForm(f): ConsoleForm<BreakGlassForm>,
) -> Result<Response, Fail> {
    me.check_csrf(&s, &f.csrf)?;
    s.vault
        .checkouts()
        .break_glass(&me.actor, &id, f.totp.trim(), &f.reason)
        .await
        .or_fail(&me)?;
    Ok(done(&format!("/console/approvals/{id}"), "break_glass"))
}

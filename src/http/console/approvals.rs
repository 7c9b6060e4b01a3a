//! The approver's page: checkouts waiting for approval, each with who asks, for which account,
//! why, at which level; approve or deny with one's own TOTP code and a comment.

use axum::extract::{Path, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::layout::{page, when};
use super::{AppState, ConsoleForm, Fail, Me, OrFail, done};
use crate::checkout::ListQuery;
use crate::policy::Level;

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
                form method="post" action=(format!("/console/approvals/{}", c.checkout_id)) autocomplete="off" {
                    input type="hidden" name="csrf" value=(me.csrf);
                    label { (l.t("意见（可选）", "Comment (optional)")) input name="comment" maxlength="500"; }
                    label { (l.t("本人动态验证码", "Your TOTP code"))
                        input name="totp" required inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code"; }
                    div.buttons {
                        button.approve type="submit" name="decision" value="approve" { (l.t("批准", "Approve")) }
                        button.danger.deny type="submit" name="decision" value="deny" { (l.t("驳回", "Deny")) }
                    }
                }
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

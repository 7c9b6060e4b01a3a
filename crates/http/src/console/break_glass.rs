//! Break-glass reviews (紧急放行复核): every release an admin made alone, open ones first, each with
//! who released which checkout and why; a second person (never the admin who released it) closes
//! the review with a note and their own TOTP code.

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::i18n::Lang;
use super::layout::{page, when};
use super::{AppState, ConsoleForm, Fail, Me, OrFail, done};
use crate::checkout::BreakGlassView;

/// One release as a card: who released which checkout, when and why, and its review.
pub fn release_card(l: Lang, b: &BreakGlassView) -> Markup {
    let open = b.review == "open";
    html! {
        section.card.warn[open] .break-glass id=(format!("bg-{}", b.checkout_id)) {
            h2 { (l.t("紧急放行", "Break-glass release")) " · " (b.account) " "
                @if open { span.badge.bad.review-open { (l.t("待复核", "review open")) } }
                @else { span.badge.review-closed { (l.t("已复核", "reviewed")) } }
            }
            dl.facts {
                dt { (l.t("签出", "Checkout")) } dd { a href=(format!("/console/approvals/{}", b.checkout_id)) { code { (b.checkout_id) } } }
                dt { (l.t("放行人（管理员）", "Released by (admin)")) } dd.released-by { (b.released_by) }
                dt { (l.t("放行时间", "Released")) } dd { (when(&b.released_at)) }
                dt { (l.t("放行理由", "Reason")) } dd.reason { (b.reason) }
                @if let (Some(by), Some(at)) = (&b.closed_by, &b.closed_at) {
                    dt { (l.t("复核人", "Reviewed by")) } dd.closed-by { (by) " · " (when(at)) }
                    @if let Some(n) = &b.close_note { dt { (l.t("复核意见", "Review note")) } dd.close-note { (n) } }
                }
            }
        }
    }
}

pub async fn page_view(State(s): State<AppState>, me: Me) -> Result<Response, Fail> {
    let l = me.lang;
    let all = s
        .vault
        .checkouts()
        .break_glass_reviews(&me.actor, false)
        .await
        .or_fail(&me)?;
    let (open, closed): (Vec<_>, Vec<_>) = all.iter().partition(|b| b.review == "open");
    let body = html! {
        p.small { (l.t(
            "管理员在无法联系审批人时独自放行的重大信息签出。每一次放行都须由另一人（不能是放行的管理员本人）复核并结案。",
            "Major checkouts an admin released alone when no approver could be reached. Each must be reviewed and closed by a second person, never the admin who released it."
        )) }
        @if open.is_empty() {
            p.ok #no-open-reviews { (l.t("没有待复核的紧急放行。", "No break-glass release is waiting for review.")) }
        }
        @for b in &open {
            (release_card(l, b))
            @if b.released_by != me.person.username {
                form.card.review-form id=(format!("close-{}", b.checkout_id)) method="post"
                    action=(format!("/console/break-glass/{}/close", b.checkout_id)) autocomplete="off" {
                    input type="hidden" name="csrf" value=(me.csrf);
                    label { (l.t("复核意见（必填）", "Review note (required)"))
                        textarea.review-note name="note" required maxlength="1000" rows="2" {} }
                    label { (l.t("本人动态验证码", "Your TOTP code"))
                        input.review-totp name="totp" required inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code"; }
                    div.buttons { button.review-close type="submit" { (l.t("复核结案", "Close the review")) } }
                }
            } @else {
                p.small { (l.t("这是您本人的放行，须由另一人复核。", "You released this one: a second person must review it.")) }
            }
        }
        @if !closed.is_empty() {
            h2 { (l.t("已复核", "Reviewed")) }
            @for b in &closed { (release_card(l, b)) }
        }
    };
    Ok(page(
        &s,
        &me,
        l.t("紧急放行复核", "Break-glass reviews"),
        body,
    ))
}

#[derive(Deserialize)]
pub struct CloseForm {
    #[serde(default)]
    csrf: String,
    note: String,
    totp: String,
}

pub async fn close(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<String>,
    ConsoleForm(f): ConsoleForm<CloseForm>,
) -> Result<Response, Fail> {
    me.check_csrf(&s, &f.csrf)?;
    s.vault
        .checkouts()
        .close_break_glass_review(&me.actor, &id, f.totp.trim(), &f.note)
        .await
        .or_fail(&me)?;
    Ok(done("/console/break-glass", "review_closed"))
}

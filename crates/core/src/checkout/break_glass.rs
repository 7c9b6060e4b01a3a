//! Break-glass (紧急放行): when no approver can be reached, an admin may release a pending major
//! checkout alone, where every account it may publish to allows it in its policy
//! (`allow_break_glass`, off by default), with a written reason and a fresh TOTP code. Every
//! approver is told at once; the release, its tokens' audit entries and the posts made under it
//! carry the mark; each of its accounts is due for a credential rotation until the next one; and
//! the release stays an open review until a second person (another admin, an approver or an
//! auditor, never the admin who released it) closes it with a note and their own code.

use serde::Serialize;
use tracing::instrument;

use super::{CheckoutView, Checkouts, effective_status, not_pending};
use crate::actor::Actor;
use crate::clock::rfc3339_unix;
use crate::error::{Conflict, Error, Result};
use crate::identity::{Role, Roles};
use crate::policy::Level;
use crate::store::checkouts::BreakGlassRow;
use crate::store::types::CheckoutStatus;

/// How long a written reason or a review note may be.
const TEXT_MAX: usize = 1000;
/// A reason must say something: more than a word or two.
const REASON_MIN: usize = 10;
/// How many closed reviews a list shows besides the open ones.
const LIST_LIMIT: i64 = 200;

/// A break-glass release and its review.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BreakGlassView {
    pub checkout_id: String,
    pub account: String,
    /// The admin who released the checkout alone.
    pub released_by: String,
    pub reason: String,
    pub released_at: String,
    /// `open` until a second person closes the review, then `closed`.
    #[schema(value_type = String, pattern = "^(open|closed)$")]
    pub review: &'static str,
    pub closed_by: Option<String>,
    pub closed_at: Option<String>,
    pub close_note: Option<String>,
}

impl From<BreakGlassRow> for BreakGlassView {
    fn from(r: BreakGlassRow) -> Self {
        Self {
            review: if r.closed_at.is_some() {
                "closed"
            } else {
                "open"
            },
            checkout_id: r.checkout_id,
            account: r.account_id,
            released_by: r.released_by,
            reason: r.reason,
            released_at: rfc3339_unix(r.released_at),
            closed_by: r.closed_by,
            closed_at: r.closed_at.map(rfc3339_unix),
            close_note: r.close_note,
        }
    }
}

fn written(field: &str, text: &str, min: usize) -> Result<String> {
    let t = text.trim();
    let n = t.chars().count();
    if n < min || n > TEXT_MAX {
        return Err(Error::invalid(
            field,
            format!("{field} must be {min}-{TEXT_MAX} characters"),
        ));
    }
    Ok(t.to_owned())
}

impl Checkouts {
    /// Releases a pending major checkout by one admin alone (break-glass). The checkout becomes
    /// `approved` and is claimed as any approved one.
    #[instrument(skip_all, fields(checkout = %id))]
    pub async fn break_glass(
        &self,
        actor: &Actor,
        id: &str,
        totp: &str,
        reason: &str,
    ) -> Result<CheckoutView> {
        actor.action("checkout.break_glass", Some(id));
        let admin = actor
            .require(&[Role::Admin])
            .map_err(|_| Error::NotPermitted("break-glass needs the admin role".into()))?;
        let reason = written("reason", reason, REASON_MIN)?;
        let row = self.row(id).await?;
        actor.detail("account", row.account_id.clone());
        if row.operator == admin.username {
            // Two people still touch every major post: the operator and the admin who releases it.
            return Err(Error::SelfApproval);
        }
        if row.status != CheckoutStatus::PendingApproval {
            return Err(not_pending(format!(
                "checkout is {}, not pending approval",
                effective_status(&row, self.clock.unix()).as_str()
            )));
        }
        if row.level != Level::Major {
            return Err(Error::NotPermitted(
                "break-glass releases major checkouts only".into(),
            ));
        }
        let targets = self.targets_of(&row).await?;
        if let Some(t) = self.break_glass_refused_by(&targets) {
            return Err(Error::NotPermitted(format!(
                "the policy of account {t} does not allow break-glass (allow_break_glass)"
            )));
        }
        let proof = self.people.step_up(admin, totp).await?;
        actor.detail("break_glass", true);
        actor.detail("reason", reason.clone());
        let told = reason.clone();
        let (cid, who, now) = (id.to_owned(), admin.username.clone(), self.clock.unix());
        self.audit
            .change(actor, "checkout.break_glass", id, move |tx| {
                Box::pin(async move {
                    proof.spend(tx).await?;
                    if !tx.checkout_break_glass(&cid, &who, &reason, now).await? {
                        return Err(not_pending("checkout is no longer pending approval"));
                    }
                    tx.note("status", CheckoutStatus::Approved.as_str());
                    tx.note("notify", "checkout.break_glass");
                    Ok(())
                })
            })
            .await?;
        let row = self.row(id).await?;
        let approvers = self.approvers().await?;
        self.notifier.send(crate::notify::Notice {
            event: "checkout.break_glass".into(),
            account: row.account_id.clone(),
            summary: format!(
                "紧急放行 break-glass: major checkout {} of {} by {} ({}) released by admin {} alone; reason: {}; approvers to review: {}",
                row.id,
                targets.join(", "),
                row.operator,
                row.purpose,
                admin.username,
                told,
                if approvers.is_empty() {
                    "(none enrolled)".to_owned()
                } else {
                    approvers.join(", ")
                },
            ),
            checkout_id: Some(row.id.clone()),
            incident_id: None,
            to: None,
        });
        self.view(&row, false).await
    }

    /// The first of `targets` whose policy does not allow break-glass (or that has none).
    fn break_glass_refused_by<'a>(&self, targets: &'a [String]) -> Option<&'a str> {
        let policies = self.policies.current();
        targets
            .iter()
            .find(|t| {
                !policies
                    .for_account(t)
                    .is_some_and(|p| p.allow_break_glass())
            })
            .map(String::as_str)
    }

    pub(super) fn break_glass_permitted(&self, targets: &[String]) -> bool {
        self.break_glass_refused_by(targets).is_none()
    }

    /// Everyone who may approve: enabled people holding the approver role.
    async fn approvers(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for u in self.store.users_list().await? {
            if !u.disabled && Roles::from_stored(&u.roles)?.any(&[Role::Approver]) {
                out.push(u.username);
            }
        }
        Ok(out)
    }

    /// Break-glass releases: the open reviews, or all (the open ones and the latest closed).
    pub async fn break_glass_reviews(
        &self,
        actor: &Actor,
        open_only: bool,
    ) -> Result<Vec<BreakGlassView>> {
        actor.action("checkout.break_glass.list", None);
        actor.require(&[Role::Admin, Role::Approver, Role::Auditor])?;
        Ok(self
            .store
            .break_glass_list(open_only, LIST_LIMIT)
            .await?
            .into_iter()
            .map(BreakGlassView::from)
            .collect())
    }

    /// The release of one checkout, if it was released by break-glass.
    pub async fn break_glass_of(&self, checkout: &str) -> Result<Option<BreakGlassView>> {
        Ok(self
            .store
            .break_glass_get(checkout)
            .await?
            .map(BreakGlassView::from))
    }

    /// Closes the review of a break-glass release: a second person (admin, approver or auditor;
    /// never the admin who released it) with a note and their own fresh code.
    #[instrument(skip_all, fields(checkout = %id))]
    pub async fn close_break_glass_review(
        &self,
        actor: &Actor,
        id: &str,
        totp: &str,
        note: &str,
    ) -> Result<BreakGlassView> {
        actor.action("checkout.break_glass.review", Some(id));
        let me = actor.require(&[Role::Admin, Role::Approver, Role::Auditor])?;
        let note = written("note", note, 1)?;
        let release =
            self.store.break_glass_get(id).await?.ok_or_else(|| {
                Error::NotFound(format!("break-glass release of checkout {id:?}"))
            })?;
        actor.detail("account", release.account_id.clone());
        if release.released_by == me.username {
            return Err(Error::NotPermitted(
                "the admin who released a checkout cannot review it: a second person must".into(),
            ));
        }
        if release.closed_at.is_some() {
            return Err(Error::conflict(
                Conflict::ReviewClosed,
                "this break-glass review is already closed",
            ));
        }
        let proof = self.people.step_up(me, totp).await?;
        let (cid, who, now) = (id.to_owned(), me.username.clone(), self.clock.unix());
        self.audit
            .change(actor, "checkout.break_glass.review", id, move |tx| {
                Box::pin(async move {
                    proof.spend(tx).await?;
                    if !tx.break_glass_close(&cid, &who, &note, now).await? {
                        return Err(Error::conflict(
                            Conflict::ReviewClosed,
                            "this break-glass review is already closed",
                        ));
                    }
                    Ok(())
                })
            })
            .await?;
        self.store
            .break_glass_get(id)
            .await?
            .map(BreakGlassView::from)
            .ok_or_else(|| Error::NotFound(format!("break-glass release of checkout {id:?}")))
    }
}

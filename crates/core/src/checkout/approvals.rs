//! Approving and denying a pending checkout: approvers only, never on their own request, each
//! decision with a fresh TOTP code.

use tracing::instrument;

use super::{CheckoutView, Checkouts, effective_status, not_pending};
use crate::actor::Actor;
use crate::error::{Conflict, Error, Result};
use crate::identity::Role;
use crate::identity::users::Person;
use crate::store::checkouts::CheckoutRow;
use crate::store::types::CheckoutStatus;

fn comment_text(c: Option<&str>) -> Result<Option<String>> {
    match c.map(str::trim) {
        Some(c) if c.chars().count() > 500 => Err(Error::invalid(
            "comment",
            "comment must be at most 500 characters",
        )),
        Some("") | None => Ok(None),
        Some(c) => Ok(Some(c.to_owned())),
    }
}

impl Checkouts {
    /// The checkout an approver is deciding on: only approvers decide, never on their own request.
    async fn for_decision<'a>(
        &self,
        actor: &'a Actor,
        id: &str,
        verb: &str,
    ) -> Result<(&'a Person, CheckoutRow)> {
        let approver = actor
            .require(&[Role::Approver])
            .map_err(|_| Error::NotPermitted(format!("{verb} needs the approver role")))?;
        let row = self.row(id).await?;
        if row.operator == approver.username {
            return Err(Error::SelfApproval);
        }
        Ok((approver, row))
    }

    #[instrument(skip_all, fields(checkout = %id))]
    pub async fn approve(
        &self,
        actor: &Actor,
        id: &str,
        totp: &str,
        comment: Option<&str>,
    ) -> Result<CheckoutView> {
        actor.action("checkout.approve", Some(id));
        let comment = comment_text(comment)?;
        let (approver, row) = self.for_decision(actor, id, "approving").await?;
        actor.detail("account", row.account_id.clone());
        if row.status != CheckoutStatus::PendingApproval {
            return Err(not_pending(format!(
                "checkout is {}, not pending approval",
                effective_status(&row, self.clock.unix()).as_str()
            )));
        }
        let proof = self.people.step_up(approver, totp).await?;
        let (cid, who, now) = (id.to_owned(), approver.username.clone(), self.clock.unix());
        let made = self
            .audit
            .change(actor, "checkout.approve", id, move |tx| {
                Box::pin(async move {
                    proof.spend(tx).await?;
                    let status = tx
                        .approval_add(&cid, &who, comment.as_deref(), now)
                        .await?
                        .ok_or_else(|| not_pending("checkout is no longer pending approval"))?;
                    tx.note("status", status.as_str());
                    if status == CheckoutStatus::Approved {
                        tx.note("notify", "checkout.approved");
                    }
                    Ok(status)
                })
            })
            .await;
        let status = made.map_err(|e| {
            e.explain(Conflict::AlreadyExists, || {
                "you already approved this checkout; another approver must sign".into()
            })
        })?;
        let row = self.row(id).await?;
        if status == CheckoutStatus::Approved {
            self.notify("checkout.approved", &row, Some(&approver.username));
        }
        self.view(&row, false).await
    }

    #[instrument(skip_all, fields(checkout = %id))]
    pub async fn deny(
        &self,
        actor: &Actor,
        id: &str,
        totp: &str,
        comment: Option<&str>,
    ) -> Result<CheckoutView> {
        actor.action("checkout.deny", Some(id));
        let comment = comment_text(comment)?;
        let (approver, row) = self.for_decision(actor, id, "denying").await?;
        actor.detail("account", row.account_id.clone());
        let proof = self.people.step_up(approver, totp).await?;
        let (cid, who, now) = (id.to_owned(), approver.username.clone(), self.clock.unix());
        self.audit
            .change(actor, "checkout.deny", id, move |tx| {
                Box::pin(async move {
                    proof.spend(tx).await?;
                    let status = tx
                        .checkout_deny(&cid, &who, comment.as_deref(), now)
                        .await?
                        .ok_or_else(|| not_pending("checkout has already ended"))?;
                    tx.note("status", status.as_str());
                    tx.note("notify", "checkout.denied");
                    Ok(())
                })
            })
            .await?;
        let row = self.row(id).await?;
        self.notify("checkout.denied", &row, Some(&approver.username));
        self.view(&row, false).await
    }
}

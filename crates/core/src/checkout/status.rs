//! How a checkout ends, and its status as seen now: check-in by its token or tool, and the
//! scheduled sweep that marks expired ones and tells the channels.

use super::Checkouts;
use crate::actor::{Actor, Principal};
use crate::error::{Conflict, Error, Result};
use crate::store::checkouts::CheckoutRow;
use crate::store::types::CheckoutStatus;

/// Status as seen now: a live row past its expiry, or an approval past its claim deadline, is
/// `expired` even before the sweeper runs.
pub fn effective_status(row: &CheckoutRow, now: i64) -> CheckoutStatus {
    let past = |t: Option<i64>| t.is_some_and(|e| e <= now);
    match row.status {
        CheckoutStatus::Active if past(row.expires_at) => CheckoutStatus::Expired,
        CheckoutStatus::Approved if past(row.claim_deadline) => CheckoutStatus::Expired,
        s => s,
    }
}

impl Checkouts {
    /// Ends a live token: by the token itself or by the tool that holds it.
    pub async fn checkin(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.action("checkout.checkin", Some(id));
        let row = self.row(id).await?;
        let allowed = match &actor.who {
            Principal::Client(c) => c.id == row.client_id,
            Principal::Token(t) => t.checkout_id == row.id,
            _ => false,
        };
        if !allowed {
            return Err(Error::NotPermitted(
                "only the checkout's token or its client key can check it in".into(),
            ));
        }
        actor.detail("account", row.account_id.clone());
        let (cid, now) = (id.to_owned(), self.clock.unix());
        self.audit
            .change(actor, "checkout.checkin", id, move |tx| {
                Box::pin(async move {
                    if !tx.checkout_checkin(&cid, now).await? {
                        return Err(Error::conflict(
                            Conflict::NotActive,
                            "checkout has no live token",
                        ));
                    }
                    Ok(())
                })
            })
            .await
    }

    /// Marks expired tokens, with one audit entry per checkout in the same transaction, and tells
    /// the channels; run on a schedule by the system.
    pub async fn sweep_expired(&self, actor: &Actor) -> Result<usize> {
        let now = self.clock.unix();
        // A quiet sweep writes nothing: only an expiry is an event.
        if self.store.checkouts_due(now).await? == 0 {
            return Ok(0);
        }
        let ended = self
            .audit
            .change(actor, "checkout.expire", "checkouts", move |tx| {
                Box::pin(async move {
                    let ended = tx.checkouts_expire(now).await?;
                    let ids: Vec<&str> = ended.iter().map(|(id, _, _)| id.as_str()).collect();
                    tx.note("expired", ids);
                    Ok(ended)
                })
            })
            .await?;
        for (id, _, _) in &ended {
            if let Ok(Some(row)) = self.store.checkout_get(id).await {
                self.notify("checkout.expired", &row, None);
            }
        }
        Ok(ended.len())
    }
}

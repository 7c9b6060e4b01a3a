//! The checkouts service: a named operator proves presence with TOTP, policy decides, `general`
//! gets a token at once, `major` waits for approvers (never the requester), and the operator
//! claims the token with a fresh code. It owns every rule of that: which tool for which account
//! and operator, policy, account state, approvals and self-approval, who may see or end a
//! checkout. Tokens are stored only as keyed hashes; checkout rows outlive their tokens.
//!
//! One file per concern: `request.rs` creates checkouts, `admission.rs` holds the policy checks
//! a request and a claim share, `approvals.rs` approves and denies, `break_glass.rs` releases a
//! checkout by one admin when no approver can be reached and keeps its review, `token.rs` claims, resolves
//! and describes publishing tokens, `status.rs` ends checkouts (check-in, expiry sweep) and says
//! what status a row has now, and `views.rs` shows checkouts. This file holds the service and
//! the helpers all of them use.

mod admission;
mod approvals;
mod break_glass;
mod index;
mod request;
mod status;
mod token;
mod views;

pub use break_glass::BreakGlassView;
pub use index::TokenIndex;
pub use request::{CheckoutRequest, Outcome};
pub use status::effective_status;
pub use token::{TokenGrant, TokenView};
pub use views::{ApprovalView, CheckoutView, ListQuery};

use crate::error::{Conflict, Error, Result};
use crate::policy::Denial;
use crate::store::checkouts::CheckoutRow;

fn denial(d: Denial) -> Error {
    Error::NotPermitted(d.to_string())
}

fn not_pending(detail: impl Into<String>) -> Error {
    Error::conflict(Conflict::NotPending, detail)
}

/// The checkouts service; `vault.checkouts()`.
#[derive(Clone)]
pub struct Checkouts {
    pub(crate) store: crate::store::Store,
    pub(crate) clock: crate::clock::Clock,
    pub(crate) audit: crate::audit::AuditWriter,
    pub(crate) keys: std::sync::Arc<crate::keys::Keys>,
    pub(crate) people: crate::identity::users::People,
    pub(crate) accounts: crate::accounts::service::Accounts,
    pub(crate) policies: std::sync::Arc<crate::policy::Live>,
    pub(crate) notifier: crate::notify::Notifier,
    /// Live publishing tokens by keyed hash, so a token request reads no store.
    pub(crate) tokens: std::sync::Arc<crate::checkout::TokenIndex>,
}

// The lookups and the notice every part of the service uses.
impl Checkouts {
    async fn row(&self, id: &str) -> Result<CheckoutRow> {
        self.store
            .checkout_get(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("checkout {id:?}")))
    }

    /// The accounts a checkout may publish to: its targets, or its own account alone.
    async fn targets_of(&self, row: &CheckoutRow) -> Result<Vec<String>> {
        let mut t = self.store.checkout_targets(&row.id).await?;
        if t.is_empty() {
            t.push(row.account_id.clone());
        } else if let Some(i) = t.iter().position(|a| *a == row.account_id) {
            // Its own account first.
            let own = t.remove(i);
            t.insert(0, own);
        }
        Ok(t)
    }

    fn notify(&self, event: &str, row: &CheckoutRow, by: Option<&str>) {
        self.notifier.send(crate::notify::Notice {
            event: event.to_owned(),
            account: row.account_id.clone(),
            summary: format!(
                "{event}: {} checkout {} of {} by {} ({}){}",
                row.level.as_str(),
                row.id,
                row.account_id,
                row.operator,
                row.purpose,
                by.map(|b| format!(", by {b}")).unwrap_or_default()
            ),
            checkout_id: Some(row.id.clone()),
            incident_id: None,
            // A decision answers the requester.
            to: by.map(|_| row.operator.clone()),
        });
    }
}

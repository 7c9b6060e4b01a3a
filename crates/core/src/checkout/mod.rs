//! The checkouts service: a named operator proves presence with TOTP, policy decides, `general`
//! gets a token at once, `major` waits for approvers (never the requester), and the operator
//! claims the token with a fresh code. It owns every rule of that: which tool for which account
//! and operator, policy, account state, approvals and self-approval, who may see or end a
//! checkout. Tokens are stored only as keyed hashes; checkout rows outlive their tokens.
//!
//! One file per concern: `request.rs` creates checkouts, `admission.rs` holds the policy checks
//! a request and a claim share, `approvals.rs` approves and denies, `token.rs` claims, resolves
//! and describes publishing tokens, `status.rs` ends checkouts (check-in, expiry sweep) and says
//! what status a row has now, and `views.rs` shows checkouts. This file holds the service and
//! the helpers all of them use.

mod admission;
mod approvals;
mod index;
mod request;
mod status;
mod token;
mod views;

pub use index::TokenIndex;
pub use request::{CheckoutRequest, Outcome};
pub use status::effective_status;
pub use token::{TokenGrant, TokenView};
pub use views::{ApprovalView, CheckoutView, ListQuery};

use crate::error::{Conflict, Error, Result};
use crate::policy::Denial;
use crate::store::checkouts::CheckoutRow;
use crate::vault::Vault;

fn denial(d: Denial) -> Error {
    Error::NotPermitted(d.to_string())
}

fn not_pending(detail: impl Into<String>) -> Error {
    Error::conflict(Conflict::NotPending, detail)
}

/// The checkouts service; `vault.checkouts()`.
pub struct Checkouts<'v> {
    v: &'v Vault,
}

impl Vault {
    pub fn checkouts(&self) -> Checkouts<'_> {
        Checkouts { v: self }
    }
}

// The lookups and the notice every part of the service uses.
impl Checkouts<'_> {
    async fn row(&self, id: &str) -> Result<CheckoutRow> {
        self.v
            .store
            .checkout_get(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("checkout {id:?}")))
    }

    /// The accounts a checkout may publish to: its targets, or its own account alone.
    async fn targets_of(&self, row: &CheckoutRow) -> Result<Vec<String>> {
        let mut t = self.v.store.checkout_targets(&row.id).await?;
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
        self.v.notifier.send(crate::notify::Notice {
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
        });
    }
}

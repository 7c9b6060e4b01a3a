//! Showing checkouts: the view of one (with the post under review for approvers), who may look
//! at it, and the filtered list.

use serde::{Deserialize, Serialize};

use super::{Checkouts, effective_status};
use crate::actor::{Actor, Principal};
use crate::clock::rfc3339_unix;
use crate::content::{ContentView, Post};
use crate::error::{Error, Result};
use crate::identity::Role;
use crate::policy::Level;
use crate::store::checkouts::CheckoutRow;
use crate::store::types::CheckoutStatus;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApprovalView {
    pub approver: String,
    pub decision: String,
    pub comment: Option<String>,
    pub at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckoutView {
    pub checkout_id: String,
    pub account: String,
    pub operator: String,
    pub client: String,
    pub purpose: String,
    #[schema(schema_with = crate::schema::level)]
    pub level: Level,
    #[schema(schema_with = crate::schema::checkout_status)]
    pub status: CheckoutStatus,
    pub requested_at: String,
    pub approvals_needed: i64,
    pub approvals: Vec<ApprovalView>,
    pub expires_at: Option<String>,
    /// An approved checkout must be claimed before this time.
    pub claim_deadline: Option<String>,
    pub ended_at: Option<String>,
    pub end_reason: Option<String>,
    pub allowed_calls: Vec<String>,
    pub content_sha256: Option<Vec<String>>,
    /// Every account this checkout may publish to.
    pub targets: Vec<String>,
    /// The post under review, in full (title, author, summary, HTML body, Weibo text, images by
    /// name and digest), for approvers to read; absent in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<ContentView>,
    /// The operator's department (处室), shown to approvers with the post; absent in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// The evidence records of what went out under this checkout.
    pub posts: Vec<String>,
    /// Set when an admin released this checkout alone (break-glass): who, why, and its review.
    pub break_glass: Option<super::BreakGlassView>,
    /// Whether an admin may release it alone now: pending, major, and every target's policy
    /// allows break-glass.
    pub break_glass_allowed: bool,
}

/// How many of their own checkouts a person's home page shows.
const MINE_LIMIT: i64 = 10;

/// What `GET /checkouts` may filter on.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub status: Option<String>,
    pub account: Option<String>,
}

impl Checkouts {
    /// A checkout as shown; `full` adds the post under review (decrypted) and its evidence.
    pub async fn view(&self, row: &CheckoutRow, full: bool) -> Result<CheckoutView> {
        let content = match (full, self.store.checkout_content(&row.id).await?) {
            (true, Some(c)) => {
                self.keys.know_term_of(&c.sealed).await?;
                Some(Post::open(&self.keys, &row.id, &c.sealed)?.view(&c.content_sha256))
            }
            _ => None,
        };
        let posts = if full {
            self.store
                .posts_of_checkout(&row.id)
                .await?
                .into_iter()
                .map(|p| p.id)
                .collect()
        } else {
            Vec::new()
        };
        let department = if full {
            self.store
                .user_by_name(&row.operator)
                .await?
                .and_then(|u| u.department)
        } else {
            None
        };
        let targets = self.targets_of(row).await?;
        let approvals = self
            .store
            .approvals_of(&row.id)
            .await?
            .into_iter()
            .map(|a| ApprovalView {
                approver: a.approver,
                decision: a.decision,
                comment: a.comment,
                at: rfc3339_unix(a.at),
            })
            .collect();
        let break_glass = if row.break_glass {
            self.break_glass_of(&row.id).await?
        } else {
            None
        };
        let break_glass_allowed = row.status == CheckoutStatus::PendingApproval
            && row.level == Level::Major
            && self.break_glass_permitted(&targets);
        Ok(CheckoutView {
            break_glass,
            break_glass_allowed,
            checkout_id: row.id.clone(),
            account: row.account_id.clone(),
            operator: row.operator.clone(),
            client: row.client_id.clone(),
            purpose: row.purpose.clone(),
            level: row.level,
            status: effective_status(row, self.clock.unix()),
            requested_at: rfc3339_unix(row.requested_at),
            approvals_needed: row.approvals_needed,
            approvals,
            expires_at: row.expires_at.map(rfc3339_unix),
            claim_deadline: row.claim_deadline.map(rfc3339_unix),
            ended_at: row.ended_at.map(rfc3339_unix),
            end_reason: row.end_reason.clone(),
            allowed_calls: serde_json::from_str(&row.allowed_calls).unwrap_or_default(),
            content_sha256: row
                .content_sha256
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            targets,
            content,
            department,
            posts,
        })
    }

    /// One checkout, for whoever may look at it: admins, approvers, auditors, its operator, its
    /// tool, its own token. Anyone else is told it does not exist (ids of other tools' checkouts
    /// are not confirmed).
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<CheckoutView> {
        actor.action("checkout.get", Some(id));
        let row = self.row(id).await?;
        let allowed = match &actor.who {
            Principal::Person(p) => {
                p.roles.any(&[Role::Admin, Role::Approver, Role::Auditor])
                    || p.username == row.operator
            }
            Principal::Client(c) => c.id == row.client_id,
            Principal::Token(t) => t.checkout_id == row.id,
            Principal::System(_) => true,
            Principal::Anonymous => false,
        };
        if !allowed {
            return Err(Error::NotFound(format!("checkout {id:?}")));
        }
        self.view(&row, true).await
    }

    /// The signed-in person's own latest checkouts as operator (their requests and how each was
    /// decided), for their console home.
    pub async fn mine(&self, actor: &Actor) -> Result<Vec<CheckoutView>> {
        actor.action("checkout.mine", None);
        let me = actor.require(&[Role::Publisher])?;
        let rows = self
            .store
            .checkouts_of_operator(&me.username, MINE_LIMIT)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.view(r, false).await?);
        }
        Ok(out)
    }

    pub async fn list(&self, actor: &Actor, q: &ListQuery) -> Result<Vec<CheckoutView>> {
        actor.action("checkout.list", q.account.as_deref());
        actor.require(&[Role::Admin, Role::Approver, Role::Auditor])?;
        let status = match q.status.as_deref() {
            None => None,
            Some(s) => Some(CheckoutStatus::parse(s).ok_or_else(|| {
                let all: Vec<&str> = CheckoutStatus::ALL.iter().map(|c| c.as_str()).collect();
                Error::invalid(
                    "status",
                    format!("status must be one of {}", all.join(", ")),
                )
            })?),
        };
        let rows = self
            .store
            .checkouts_list(status, q.account.as_deref(), self.clock.unix())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.view(r, false).await?);
        }
        Ok(out)
    }
}

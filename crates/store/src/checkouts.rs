//! Checkouts, approvals and publishing-token hashes. Every state change is a conditional statement
//! inside a `BEGIN IMMEDIATE` transaction on the single writer connection (the audit writer's), so
//! two racing requests cannot both win, and a freeze committed first is seen by the next insert.

use crate::Result;
use crate::types::{CheckoutStatus, Level};
use async_trait::async_trait;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CheckoutRow {
    pub id: String,
    pub account_id: String,
    pub operator: String,
    pub client_id: String,
    pub purpose: String,
    pub level: Level,
    pub status: CheckoutStatus,
    pub requested_at: i64,
    pub ttl_seconds: i64,
    pub approvals_needed: i64,
    pub content_sha256: Option<String>,
    pub allowed_calls: String,
    pub source_ip: Option<String>,
    pub issued_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
    /// Set when the checkout is approved: the last moment it can be claimed.
    pub claim_deadline: Option<i64>,
    /// Released by an admin alone (break-glass) instead of by its approvers.
    pub break_glass: bool,
}

/// A break-glass release: an admin released a pending checkout alone, with a reason; open until a
/// second person reviews and closes it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BreakGlassRow {
    pub checkout_id: String,
    pub account_id: String,
    pub released_by: String,
    pub reason: String,
    pub released_at: i64,
    pub closed_by: Option<String>,
    pub closed_at: Option<i64>,
    pub close_note: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApprovalRow {
    pub approver: String,
    pub decision: String,
    pub comment: Option<String>,
    pub at: i64,
}

pub struct NewCheckout<'a> {
    pub id: &'a str,
    pub account: &'a str,
    pub operator: &'a str,
    pub client_id: &'a str,
    pub purpose: &'a str,
    pub level: Level,
    pub ttl_seconds: i64,
    pub approvals_needed: i64,
    pub content_sha256: Option<&'a str>,
    pub allowed_calls: &'a str,
    pub source_ip: &'a str,
    pub now: i64,
    /// Some: issue now (status active) with this token hash. None: wait for approval.
    pub token_hash: Option<&'a [u8]>,
    pub exclusive: bool,
    /// How long an approval stays claimable.
    pub claim_seconds: i64,
}

#[async_trait]
pub trait CheckoutReads: Send + Sync {
    async fn checkout_get(&self, id: &str) -> Result<Option<CheckoutRow>>;
    /// How many checkouts hold a live token at `now` (a gauge of `/metrics`).
    async fn checkouts_live(&self, now: i64) -> Result<i64>;
    /// The checkout a publishing token belongs to, whatever its state.
    async fn checkout_by_token(&self, hash: &[u8]) -> Result<Option<CheckoutRow>>;
    async fn checkouts_list(
        &self,
        status: Option<CheckoutStatus>,
        account: Option<&str>,
        now: i64,
    ) -> Result<Vec<CheckoutRow>>;
    async fn approvals_of(&self, checkout: &str) -> Result<Vec<ApprovalRow>>;
    /// Live tokens past their expiry that the sweeper has not marked yet.
    async fn checkouts_due(&self, now: i64) -> Result<i64>;
    /// Checkouts whose token is live now.
    async fn account_active_checkouts(&self, account: &str, now: i64) -> Result<i64>;
    /// A person's own checkouts as operator, newest first.
    async fn checkouts_of_operator(&self, operator: &str, limit: i64) -> Result<Vec<CheckoutRow>>;
    /// The break-glass release of a checkout, if it was released so.
    async fn break_glass_get(&self, checkout: &str) -> Result<Option<BreakGlassRow>>;
    /// Break-glass releases, newest first: the open ones only, or the last `limit` of all.
    async fn break_glass_list(&self, open_only: bool, limit: i64) -> Result<Vec<BreakGlassRow>>;
}

#[async_trait]
pub trait CheckoutWrites: Send {
    /// Inserts a checkout, only while its account is active (a freeze committed first wins); when
    /// it issues a token on an exclusive account, only if no other token of that account is live.
    /// Returns false if the account was frozen or taken; the caller reads which.
    async fn checkout_insert(&mut self, c: NewCheckout<'_>) -> Result<bool>;
    /// Records one approver's approval; moves the checkout to `approved` once enough distinct
    /// approvers have signed. Returns the new status, or None if the checkout was not pending.
    async fn approval_add(
        &mut self,
        checkout: &str,
        approver: &str,
        comment: Option<&str>,
        now: i64,
    ) -> Result<Option<CheckoutStatus>>;
    /// Releases a pending checkout by one admin alone (break-glass): it becomes `approved` (to be
    /// claimed as any approval), is marked, gets an open review, and every account it may publish
    /// to becomes due for a credential rotation. Returns false if it was not pending.
    async fn checkout_break_glass(
        &mut self,
        checkout: &str,
        admin: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool>;
    /// Closes the open review of a break-glass release. Returns false if there was none open.
    async fn break_glass_close(
        &mut self,
        checkout: &str,
        by: &str,
        note: &str,
        now: i64,
    ) -> Result<bool>;
    /// Denies a checkout. A pending one becomes `denied`; an approved or active one is `revoked`
    /// at once (its token, if any, dies). Returns the new status, or None if already ended.
    async fn checkout_deny(
        &mut self,
        checkout: &str,
        approver: &str,
        comment: Option<&str>,
        now: i64,
    ) -> Result<Option<CheckoutStatus>>;
    /// Issues the token of an approved checkout, once; on an exclusive account only if no other
    /// token is live. Returns false if it was not claimable.
    async fn checkout_claim(
        &mut self,
        checkout: &str,
        token_hash: &[u8],
        now: i64,
        exclusive: bool,
    ) -> Result<bool>;
    /// Ends a live token. Returns false if it was not live.
    async fn checkout_checkin(&mut self, checkout: &str, now: i64) -> Result<bool>;
    /// Marks live tokens past their expiry, and approvals past their claim deadline, as expired;
    /// returns (id, account, operator) of each.
    async fn checkouts_expire(&mut self, now: i64) -> Result<Vec<(String, String, String)>>;
    /// Ends every live or pending checkout of an account (freeze, incident). Returns how many.
    async fn revoke_account_tokens(&mut self, account: &str, now: i64) -> Result<u64>;
    /// Ends every live or pending checkout of a client or an operator that is no longer trusted
    /// (client revoked, user disabled): a token never outlives what it was issued under.
    async fn revoke_checkouts_of(
        &mut self,
        client: Option<&str>,
        operator: Option<&str>,
        reason: &str,
        now: i64,
    ) -> Result<u64>;
}

//! The checkouts service: a named operator proves presence with TOTP, policy decides, `general`
//! gets a token at once, `major` waits for approvers (never the requester), and the operator
//! claims the token with a fresh code. It owns every rule of that: which tool for which account
//! and operator, policy, account state, approvals and self-approval, who may see or end a
//! checkout. Tokens are stored only as keyed hashes; checkout rows outlive their tokens.

mod index;

pub use index::TokenIndex;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::instrument;

use crate::actor::{Actor, Principal};
use crate::clock::rfc3339_unix;
use crate::crypto::tokens::{TokenKind, hash_token, well_formed};
use crate::crypto::{SecretString, new_token};
use crate::error::{Conflict, Error, Result};
use crate::identity::clients::Client;
use crate::identity::users::Person;
use crate::identity::{AccountId, Role, Roles};
use crate::policy::{Denial, Level, Subject};
use crate::publishing::content::{ContentInput, ContentView, Post};
use crate::store::checkouts::{CheckoutRow, NewCheckout};
use crate::store::types::{AccountStatus, CheckoutStatus};
use crate::vault::Vault;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub account: String,
    pub operator: String,
    pub totp: String,
    pub purpose: String,
    pub level: String,
    pub ttl_seconds: Option<u64>,
    pub content_sha256: Option<Vec<String>>,
    /// The post itself, for review; the approval covers exactly this.
    pub content: Option<ContentInput>,
}

/// What a checkout request produced.
pub enum Outcome {
    Issued {
        checkout: CheckoutRow,
        token: SecretString,
    },
    Pending {
        checkout: CheckoutRow,
    },
}

#[derive(Debug, Serialize)]
pub struct ApprovalView {
    pub approver: String,
    pub decision: String,
    pub comment: Option<String>,
    pub at: String,
}

#[derive(Debug, Serialize)]
pub struct CheckoutView {
    pub checkout_id: String,
    pub account: String,
    pub operator: String,
    pub client: String,
    pub purpose: String,
    pub level: Level,
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
}

/// A live publishing token, resolved.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub checkout_id: String,
    pub account: String,
    pub operator: String,
    pub client_id: String,
    pub expires_at: i64,
    pub allowed_calls: Vec<String>,
    pub content_sha256: Option<Vec<String>>,
    /// Every account the token may publish to (its own account first).
    pub targets: Vec<String>,
    /// The checkout carries a post that approvers reviewed (the proxy then binds calls to it).
    pub has_post: bool,
}

fn denial(d: Denial) -> Error {
    Error::NotPermitted(d.to_string())
}

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

/// What `GET /checkouts` may filter on.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub status: Option<String>,
    pub account: Option<String>,
}

/// What the checkout's own token may learn about it (`GET /token`).
#[derive(Debug, Serialize)]
pub struct TokenView {
    pub checkout_id: String,
    pub account: String,
    pub operator: String,
    pub client: String,
    pub expires_at: String,
    pub allowed_calls: Vec<String>,
    pub content_sha256: Option<Vec<String>>,
    pub targets: Vec<String>,
}

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

fn not_pending(detail: impl Into<String>) -> Error {
    Error::conflict(Conflict::NotPending, detail)
}

fn check_digests(d: &Option<Vec<String>>) -> Result<Option<Vec<String>>> {
    let Some(list) = d else { return Ok(None) };
    if list.is_empty() || list.len() > 50 {
        return Err(Error::invalid(
            "content_sha256",
            "content_sha256 must list 1-50 digests",
        ));
    }
    let mut out = Vec::new();
    for h in list {
        let h = h.trim().to_ascii_lowercase();
        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid(
                "content_sha256",
                "each content_sha256 entry must be 64 hex digits",
            ));
        }
        out.push(h);
    }
    Ok(Some(out))
}

fn new_checkout_id() -> Result<String> {
    let mut raw = [0u8; 12];
    crate::crypto::random_bytes(&mut raw)?;
    Ok(format!("co_{}", hex::encode(raw)))
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

impl Checkouts<'_> {
    /// A checkout as shown; `full` adds the post under review (decrypted) and its evidence.
    pub async fn view(&self, row: &CheckoutRow, full: bool) -> Result<CheckoutView> {
        let content = match (full, self.v.store.checkout_content(&row.id).await?) {
            (true, Some(c)) => {
                self.v.know_term_of(&c.sealed).await?;
                Some(Post::open(&self.v.keys, &row.id, &c.sealed)?.view(&c.content_sha256))
            }
            _ => None,
        };
        let posts = if full {
            self.v
                .store
                .posts_of_checkout(&row.id)
                .await?
                .into_iter()
                .map(|p| p.id)
                .collect()
        } else {
            Vec::new()
        };
        let department = if full {
            self.v
                .store
                .user_by_name(&row.operator)
                .await?
                .and_then(|u| u.department)
        } else {
            None
        };
        let targets = self.targets_of(row).await?;
        let approvals = self
            .v
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
        Ok(CheckoutView {
            checkout_id: row.id.clone(),
            account: row.account_id.clone(),
            operator: row.operator.clone(),
            client: row.client_id.clone(),
            purpose: row.purpose.clone(),
            level: row.level,
            status: effective_status(row, self.v.clock.unix()),
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

    async fn row(&self, id: &str) -> Result<CheckoutRow> {
        self.v
            .store
            .checkout_get(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("checkout {id:?}")))
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
            .v
            .store
            .checkouts_list(status, q.account.as_deref(), self.v.clock.unix())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.view(r, false).await?);
        }
        Ok(out)
    }

    /// Policy checks shared by a new checkout and a claim: account usable, tool and person
    /// admitted, source network and hours allowed.
    async fn admit(
        &self,
        actor: &Actor,
        client: &Client,
        account: &str,
        operator: &str,
    ) -> Result<(crate::policy::AccountPolicy, crate::store::users::UserRow)> {
        if !client.may_use(account) {
            return Err(Error::NotPermitted(format!(
                "this client key is not bound to account {account}"
            )));
        }
        let acct = self.v.accounts().row(account).await?;
        if acct.status == AccountStatus::Frozen {
            return Err(Error::AccountFrozen(acct.id));
        }
        let policies = self.v.policies();
        let policy = policies.for_account(&acct.id).cloned().ok_or_else(|| {
            Error::NotPermitted(format!(
                "account {} has no access policy; nothing may check it out",
                acct.id
            ))
        })?;
        let user = self
            .v
            .store
            .user_by_name(operator)
            .await?
            .filter(|u| !u.disabled)
            .ok_or_else(|| {
                Error::NotPermitted(format!("operator {operator:?} is not an active user"))
            })?;
        let roles = Roles::from_stored(&user.roles)?.names();
        policy
            .admits(&Subject {
                username: &user.username,
                roles: &roles,
                client_id: &client.id,
                client_name: &client.name,
            })
            .map_err(denial)?;
        let source = actor
            .source()
            .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        policy.source_allowed(source).map_err(denial)?;
        policy.hours_allowed(self.v.clock.now()).map_err(denial)?;
        Ok((policy, user))
    }

    /// Why an insert or claim on `account` did not take: the account froze in between, or an
    /// exclusive account is held by someone else.
    async fn not_taken(&self, account: &str) -> Error {
        match self.v.accounts().row(account).await {
            Ok(a) if a.status == AccountStatus::Frozen => Error::AccountFrozen(a.id),
            _ => Error::conflict(
                Conflict::AccountCheckedOut,
                format!(
                    "account {account} is exclusive and already checked out; wait for check-in or expiry"
                ),
            ),
        }
    }

    #[instrument(skip_all, fields(account = %req.account, operator = %req.operator))]
    pub async fn request(&self, actor: &Actor, req: CheckoutRequest) -> Result<Outcome> {
        actor.action("checkout.create", Some(&req.account));
        actor.detail("operator", req.operator.clone());
        actor.detail("level", req.level.clone());
        let client = actor.client()?;
        let account = AccountId::parse(&req.account)
            .map_err(|_| Error::invalid("account", "account must be an account id"))?;
        let level: Level = req
            .level
            .parse()
            .map_err(|_| Error::invalid("level", "level must be \"general\" or \"major\""))?;
        let purpose = req.purpose.trim().to_owned();
        if purpose.is_empty() || purpose.chars().count() > 500 {
            return Err(Error::invalid(
                "purpose",
                "purpose must be 1-500 characters",
            ));
        }
        let digests = check_digests(&req.content_sha256)?;
        let post = req.content.map(|c| c.check(account.as_str())).transpose()?;
        let (policy, user) = self
            .admit(actor, client, account.as_str(), &req.operator)
            .await?;
        let mut rule = *policy.level(level).map_err(denial)?;
        if let Some(post) = &post {
            // One post, several accounts: each is admitted on its own policy, and the strictest
            // level rule among them applies to the one approval.
            for t in &post.targets {
                let t = AccountId::parse(t)
                    .map_err(|_| Error::invalid("targets", "each target must be an account id"))?;
                if t.as_str() != account.as_str() {
                    let (p, _) = self.admit(actor, client, t.as_str(), &req.operator).await?;
                    let r = p.level(level).map_err(denial)?;
                    rule.approvals = rule.approvals.max(r.approvals);
                    rule.require_content_binding |= r.require_content_binding;
                }
                let platform = self.v.accounts().row(t.as_str()).await?.platform;
                let fits = match platform {
                    crate::accounts::Platform::Wechat => post.body.is_some(),
                    crate::accounts::Platform::Weibo => post.text.is_some(),
                    crate::accounts::Platform::Generic => false,
                };
                if !fits {
                    return Err(Error::invalid(
                        "content",
                        format!(
                            "target {t} needs {}",
                            match platform {
                                crate::accounts::Platform::Wechat => "a body (the article's HTML)",
                                crate::accounts::Platform::Weibo => "a text (the status)",
                                crate::accounts::Platform::Generic =>
                                    "a WeChat or Weibo account; generic accounts take no posts",
                            }
                        ),
                    ));
                }
            }
        }
        rule.check_content_binding(digests.is_some() || post.is_some())
            .map_err(denial)?;
        let ttl = policy.ttl(req.ttl_seconds).map_err(denial)?;
        let proof = self.v.people().check_totp(&user, &req.totp).await?;

        let id = new_checkout_id()?;
        let now = self.v.clock.unix();
        let calls = serde_json::to_string(&policy.allowed_calls()).map_err(Error::internal)?;
        let digests_json = digests
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(Error::internal)?;
        let token = if rule.approvals == 0 {
            Some(new_token(TokenKind::Publishing)?)
        } else {
            None
        };
        let hash = token
            .as_ref()
            .map(|t| hash_token(&self.v.keys.mac().token, t.expose()));
        actor.detail("checkout_id", id.clone());
        let sealed = match &post {
            Some(p) => {
                let (sealed, sha) = p.seal(&self.v.keys, &id)?;
                actor.detail("content_sha256", sha.clone());
                actor.detail("targets", p.targets.clone());
                Some((sealed, sha, p.targets.clone()))
            }
            None => None,
        };
        let status = if token.is_some() {
            CheckoutStatus::Active
        } else {
            CheckoutStatus::PendingApproval
        };
        actor.detail("status", status.as_str());
        let (cid, aid, op, client_id) = (
            id.clone(),
            account.as_str().to_owned(),
            user.username.clone(),
            client.id.clone(),
        );
        let source = actor.source().map(|s| s.to_string()).unwrap_or_default();
        let exclusive = policy.exclusive();
        let approvals = i64::from(rule.approvals);
        let claim_window = rule.claim_window;
        let inserted = self
            .v
            .change(actor, "checkout.create", account.as_str(), move |tx| {
                Box::pin(async move {
                    proof.spend(tx).await?;
                    let inserted = tx
                        .checkout_insert(NewCheckout {
                            id: &cid,
                            account: &aid,
                            operator: &op,
                            client_id: &client_id,
                            purpose: &purpose,
                            level,
                            ttl_seconds: ttl.as_secs() as i64,
                            approvals_needed: approvals,
                            content_sha256: digests_json.as_deref(),
                            allowed_calls: &calls,
                            source_ip: &source,
                            now,
                            token_hash: hash.as_ref().map(|h| h.0.as_slice()),
                            exclusive,
                            claim_seconds: claim_window.as_secs() as i64,
                        })
                        .await?;
                    if !inserted {
                        // Refused: the code stays unspent with the rest of this change.
                        return Err(Error::conflict(Conflict::AccountCheckedOut, String::new()));
                    }
                    if let Some((sealed, sha, targets)) = &sealed {
                        tx.checkout_content_insert(&cid, sha, sealed, now).await?;
                        for t in targets {
                            tx.checkout_target_insert(&cid, t).await?;
                        }
                    }
                    if status == CheckoutStatus::PendingApproval {
                        tx.note("notify", "checkout.approval_requested");
                    }
                    Ok(())
                })
            })
            .await;
        match inserted {
            Err(Error::Conflict {
                code: Conflict::AccountCheckedOut,
                ..
            }) => return Err(self.not_taken(account.as_str()).await),
            other => other?,
        }
        let checkout = self.row(&id).await?;
        Ok(match token {
            Some(token) => Outcome::Issued { checkout, token },
            None => {
                self.notify("checkout.approval_requested", &checkout, None);
                Outcome::Pending { checkout }
            }
        })
    }

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
                effective_status(&row, self.v.clock.unix()).as_str()
            )));
        }
        let proof = self.v.people().step_up(approver, totp).await?;
        let (cid, who, now) = (
            id.to_owned(),
            approver.username.clone(),
            self.v.clock.unix(),
        );
        let made = self
            .v
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
        let proof = self.v.people().step_up(approver, totp).await?;
        let (cid, who, now) = (
            id.to_owned(),
            approver.username.clone(),
            self.v.clock.unix(),
        );
        self.v
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

    #[instrument(skip_all, fields(checkout = %id))]
    pub async fn claim(
        &self,
        actor: &Actor,
        id: &str,
        operator: &str,
        totp: &str,
    ) -> Result<(CheckoutRow, SecretString)> {
        actor.action("checkout.claim", Some(id));
        let client = actor.client()?;
        let row = self.row(id).await?;
        if row.client_id != client.id || row.operator != operator {
            return Err(Error::NotPermitted(
                "only the requesting tool, for the requesting operator, may claim this checkout"
                    .into(),
            ));
        }
        actor.detail("account", row.account_id.clone());
        let now = self.v.clock.unix();
        if row.status == CheckoutStatus::Approved
            && effective_status(&row, now) == CheckoutStatus::Expired
        {
            return Err(not_pending(format!(
                "the approval expired at {} without being claimed; request the checkout again",
                row.claim_deadline.map(rfc3339_unix).unwrap_or_default()
            )));
        }
        if row.status != CheckoutStatus::Approved {
            return Err(not_pending(format!(
                "checkout is {}; only an approved checkout can be claimed, once",
                effective_status(&row, now).as_str()
            )));
        }
        let (policy, user) = self.admit(actor, client, &row.account_id, operator).await?;
        let proof = self.v.people().check_totp(&user, totp).await?;
        let token = new_token(TokenKind::Publishing)?;
        let hash = hash_token(&self.v.keys.mac().token, token.expose());
        let (cid, now, exclusive) = (id.to_owned(), self.v.clock.unix(), policy.exclusive());
        let made = self
            .v
            .change(actor, "checkout.claim", id, move |tx| {
                Box::pin(async move {
                    proof.spend(tx).await?;
                    if !tx.checkout_claim(&cid, &hash.0, now, exclusive).await? {
                        return Err(Error::conflict(Conflict::AccountCheckedOut, String::new()));
                    }
                    Ok(())
                })
            })
            .await;
        match made {
            Err(Error::Conflict {
                code: Conflict::AccountCheckedOut,
                ..
            }) => {
                let now = self.row(id).await?;
                let status = effective_status(&now, self.v.clock.unix());
                if status == CheckoutStatus::Approved {
                    return Err(self.not_taken(&now.account_id).await);
                }
                if status == CheckoutStatus::Expired && now.status == CheckoutStatus::Approved {
                    return Err(not_pending(
                        "the approval expired without being claimed; request the checkout again",
                    ));
                }
                return Err(not_pending("checkout was already claimed or ended"));
            }
            other => other?,
        }
        Ok((self.row(id).await?, token))
    }

    /// Resolves a publishing token to its live grant; anything else is `Unauthenticated`. A token
    /// also dies with its tool's key and its operator's account.
    pub async fn authenticate(&self, token: &str) -> Result<Arc<TokenGrant>> {
        if !well_formed(TokenKind::Publishing, token) {
            return Err(Error::Unauthenticated);
        }
        let hash = hash_token(&self.v.keys.mac().token, token);
        // Read before the store is: a revocation committed after this read moves it, and the
        // grant found below is then not kept (see `TokenIndex`).
        let epoch = self.v.store.token_epoch();
        let now = self.v.clock.unix();
        if let Some(grant) = self.v.tokens.get(&hash.0, epoch, now) {
            return Ok(grant);
        }
        let row = self
            .v
            .store
            .checkout_by_token(&hash.0)
            .await?
            .ok_or(Error::Unauthenticated)?;
        if effective_status(&row, now) != CheckoutStatus::Active {
            return Err(Error::Unauthenticated);
        }
        let targets = self.targets_of(&row).await?;
        let has_post = self.v.store.checkout_has_content(&row.id).await?;
        let grant = Arc::new(TokenGrant {
            targets,
            has_post,
            allowed_calls: serde_json::from_str(&row.allowed_calls).unwrap_or_default(),
            content_sha256: row
                .content_sha256
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            checkout_id: row.id,
            account: row.account_id,
            operator: row.operator,
            client_id: row.client_id,
            expires_at: row.expires_at.unwrap_or_default(),
        });
        self.v.tokens.insert(
            hash.0,
            Arc::clone(&grant),
            epoch,
            self.v.store.token_epoch(),
        );
        Ok(grant)
    }

    /// What a token may learn about itself.
    pub fn introspect(&self, actor: &Actor) -> Result<TokenView> {
        let g = actor.token()?;
        actor.action("token.introspect", Some(&g.account));
        Ok(TokenView {
            checkout_id: g.checkout_id.clone(),
            account: g.account.clone(),
            operator: g.operator.clone(),
            client: g.client_id.clone(),
            expires_at: rfc3339_unix(g.expires_at),
            allowed_calls: g.allowed_calls.clone(),
            content_sha256: g.content_sha256.clone(),
            targets: g.targets.clone(),
        })
    }

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
        let (cid, now) = (id.to_owned(), self.v.clock.unix());
        self.v
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
        let now = self.v.clock.unix();
        // A quiet sweep writes nothing: only an expiry is an event.
        if self.v.store.checkouts_due(now).await? == 0 {
            return Ok(0);
        }
        let ended = self
            .v
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
            if let Ok(Some(row)) = self.v.store.checkout_get(id).await {
                self.notify("checkout.expired", &row, None);
            }
        }
        Ok(ended.len())
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

//! Checkout: a named operator proves presence with TOTP, policy decides, `general` gets a token at
//! once, `major` waits for approvers (never the requester), and the operator claims the token with
//! a fresh code. Tokens are stored only as keyed hashes; checkout rows outlive their tokens.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use tracing::instrument;

use crate::clock::rfc3339_unix;
use crate::crypto::tokens::{TokenKind, hash_token, well_formed};
use crate::crypto::{SecretString, new_token};
use crate::error::{Error, Result};
use crate::identity::clients::Client;
use crate::identity::users::Person;
use crate::identity::{AccountId, Role, Roles};
use crate::policy::{Denial, Level, Subject};
use crate::store::checkouts::{CheckoutRow, NewCheckout};
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
    pub level: String,
    pub status: String,
    pub requested_at: String,
    pub approvals_needed: i64,
    pub approvals: Vec<ApprovalView>,
    pub expires_at: Option<String>,
    pub ended_at: Option<String>,
    pub end_reason: Option<String>,
    pub allowed_calls: Vec<String>,
    pub content_sha256: Option<Vec<String>>,
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
}

fn denial(d: Denial) -> Error {
    Error::NotPermitted(d.to_string())
}

/// Status as seen now: a live row past its expiry is `expired` even before the sweeper runs.
pub fn effective_status(row: &CheckoutRow, now: i64) -> String {
    if row.status == "active" && row.expires_at.is_some_and(|e| e <= now) {
        "expired".into()
    } else {
        row.status.clone()
    }
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

impl Vault {
    pub async fn checkout_view(&self, row: &CheckoutRow) -> Result<CheckoutView> {
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
        Ok(CheckoutView {
            checkout_id: row.id.clone(),
            account: row.account_id.clone(),
            operator: row.operator.clone(),
            client: row.client_id.clone(),
            purpose: row.purpose.clone(),
            level: row.level.clone(),
            status: effective_status(row, self.clock.unix()),
            requested_at: rfc3339_unix(row.requested_at),
            approvals_needed: row.approvals_needed,
            approvals,
            expires_at: row.expires_at.map(rfc3339_unix),
            ended_at: row.ended_at.map(rfc3339_unix),
            end_reason: row.end_reason.clone(),
            allowed_calls: serde_json::from_str(&row.allowed_calls).unwrap_or_default(),
            content_sha256: row
                .content_sha256
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
        })
    }

    pub async fn checkout_row(&self, id: &str) -> Result<CheckoutRow> {
        self.store
            .checkout_get(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("checkout {id:?}")))
    }

    /// Policy checks shared by a new checkout and a claim: account usable, tool and person
    /// admitted, source network and hours allowed.
    async fn admit(
        &self,
        client: &Client,
        account: &str,
        operator: &str,
        source: IpAddr,
    ) -> Result<(crate::policy::AccountPolicy, crate::store::users::UserRow)> {
        if !client.may_use(account) {
            return Err(Error::NotPermitted(format!(
                "this client key is not bound to account {account}"
            )));
        }
        let acct = self.account_row(account).await?;
        if acct.status == "frozen" {
            return Err(Error::AccountFrozen(acct.id));
        }
        let policies = self.policies();
        let policy = policies.for_account(&acct.id).cloned().ok_or_else(|| {
            Error::NotPermitted(format!(
                "account {} has no access policy; nothing may check it out",
                acct.id
            ))
        })?;
        let user = self
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
        policy.source_allowed(source).map_err(denial)?;
        policy.hours_allowed(self.clock.now()).map_err(denial)?;
        Ok((policy, user))
    }

    #[instrument(skip_all, fields(account = %req.account, operator = %req.operator, client = %client.id))]
    pub async fn request_checkout(
        &self,
        client: &Client,
        req: CheckoutRequest,
        source: IpAddr,
    ) -> Result<Outcome> {
        let account = AccountId::parse(&req.account)
            .map_err(|_| Error::invalid("account", "account must be an account id"))?;
        let level: Level = req
            .level
            .parse()
            .map_err(|_| Error::invalid("level", "level must be \"general\" or \"major\""))?;
        let purpose = req.purpose.trim();
        if purpose.is_empty() || purpose.chars().count() > 500 {
            return Err(Error::invalid(
                "purpose",
                "purpose must be 1-500 characters",
            ));
        }
        let digests = check_digests(&req.content_sha256)?;
        let (policy, user) = self
            .admit(client, account.as_str(), &req.operator, source)
            .await?;
        let rule = *policy.level(level).map_err(denial)?;
        rule.check_content_binding(digests.is_some())
            .map_err(denial)?;
        let ttl = policy.ttl(req.ttl_seconds).map_err(denial)?;
        self.verify_totp(&user, &req.totp).await?;

        let id = new_checkout_id()?;
        let now = self.clock.unix();
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
            .map(|t| hash_token(&self.keys.mac().token, t.expose()));
        let inserted = self
            .store
            .checkout_insert(NewCheckout {
                id: &id,
                account: account.as_str(),
                operator: &user.username,
                client_id: &client.id,
                purpose,
                level: level.as_str(),
                ttl_seconds: ttl.as_secs() as i64,
                approvals_needed: i64::from(rule.approvals),
                content_sha256: digests_json.as_deref(),
                allowed_calls: &calls,
                source_ip: &source.to_string(),
                now,
                token_hash: hash.as_ref().map(|h| h.0.as_slice()),
                exclusive: policy.exclusive(),
            })
            .await?;
        if !inserted {
            return Err(Error::Conflict {
                code: "account_checked_out",
                detail: format!(
                    "account {account} is exclusive and already checked out; wait for check-in or expiry"
                ),
            });
        }
        let checkout = self.checkout_row(&id).await?;
        Ok(match token {
            Some(token) => Outcome::Issued { checkout, token },
            None => {
                self.notify("checkout.approval_requested", &checkout, None);
                Outcome::Pending { checkout }
            }
        })
    }

    /// The checkout an approver is deciding on: only approvers decide, never on their own request.
    async fn checkout_for_decision(
        &self,
        approver: &Person,
        id: &str,
        verb: &str,
    ) -> Result<CheckoutRow> {
        let row = self.checkout_row(id).await?;
        if !approver.roles.has(Role::Approver) {
            return Err(Error::NotPermitted(format!(
                "{verb} needs the approver role"
            )));
        }
        if row.operator == approver.username {
            return Err(Error::SelfApproval);
        }
        Ok(row)
    }

    #[instrument(skip_all, fields(checkout = %id, approver = %approver.username))]
    pub async fn approve_checkout(
        &self,
        approver: &Person,
        id: &str,
        totp: &str,
        comment: Option<&str>,
    ) -> Result<CheckoutRow> {
        let row = self
            .checkout_for_decision(approver, id, "approving")
            .await?;
        if row.status != "pending_approval" {
            return Err(Error::Conflict {
                code: "not_pending",
                detail: format!(
                    "checkout is {}, not pending approval",
                    effective_status(&row, self.clock.unix())
                ),
            });
        }
        self.verify_user_totp(&approver.username, totp).await?;
        match self
            .store
            .approval_add(id, &approver.username, comment, self.clock.unix())
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(Error::Conflict {
                    code: "not_pending",
                    detail: "checkout is no longer pending approval".into(),
                });
            }
            Err(e) if crate::store::is_unique_violation(&e) => {
                return Err(Error::Conflict {
                    code: "already_exists",
                    detail: "you already approved this checkout; another approver must sign".into(),
                });
            }
            Err(e) => return Err(e.into()),
        }
        let row = self.checkout_row(id).await?;
        if row.status == "approved" {
            self.notify("checkout.approved", &row, Some(&approver.username));
        }
        Ok(row)
    }

    #[instrument(skip_all, fields(checkout = %id, approver = %approver.username))]
    pub async fn deny_checkout(
        &self,
        approver: &Person,
        id: &str,
        totp: &str,
        comment: Option<&str>,
    ) -> Result<CheckoutRow> {
        self.checkout_for_decision(approver, id, "denying").await?;
        self.verify_user_totp(&approver.username, totp).await?;
        if self
            .store
            .checkout_deny(id, &approver.username, comment, self.clock.unix())
            .await?
            .is_none()
        {
            return Err(Error::Conflict {
                code: "not_pending",
                detail: "checkout has already ended".into(),
            });
        }
        let row = self.checkout_row(id).await?;
        self.notify("checkout.denied", &row, Some(&approver.username));
        Ok(row)
    }

    #[instrument(skip_all, fields(checkout = %id, client = %client.id))]
    pub async fn claim_checkout(
        &self,
        client: &Client,
        id: &str,
        operator: &str,
        totp: &str,
        source: IpAddr,
    ) -> Result<(CheckoutRow, SecretString)> {
        let row = self.checkout_row(id).await?;
        if row.client_id != client.id || row.operator != operator {
            return Err(Error::NotPermitted(
                "only the requesting tool, for the requesting operator, may claim this checkout"
                    .into(),
            ));
        }
        if row.status != "approved" {
            return Err(Error::Conflict {
                code: "not_pending",
                detail: format!(
                    "checkout is {}; only an approved checkout can be claimed, once",
                    effective_status(&row, self.clock.unix())
                ),
            });
        }
        let (policy, user) = self
            .admit(client, &row.account_id, operator, source)
            .await?;
        self.verify_totp(&user, totp).await?;
        let token = new_token(TokenKind::Publishing)?;
        let hash = hash_token(&self.keys.mac().token, token.expose());
        if !self
            .store
            .checkout_claim(id, &hash.0, self.clock.unix(), policy.exclusive())
            .await?
        {
            let now = self.checkout_row(id).await?;
            if now.status == "approved" {
                return Err(Error::Conflict {
                    code: "account_checked_out",
                    detail: format!(
                        "account {} is exclusive and already checked out",
                        now.account_id
                    ),
                });
            }
            return Err(Error::Conflict {
                code: "not_pending",
                detail: "checkout was already claimed or ended".into(),
            });
        }
        Ok((self.checkout_row(id).await?, token))
    }

    /// Resolves a publishing token to its live grant; anything else is `Unauthenticated`.
    pub async fn token_grant(&self, token: &str) -> Result<TokenGrant> {
        if !well_formed(TokenKind::Publishing, token) {
            return Err(Error::Unauthenticated);
        }
        let hash = hash_token(&self.keys.mac().token, token);
        let row = self
            .store
            .checkout_by_token(&hash.0)
            .await?
            .ok_or(Error::Unauthenticated)?;
        if effective_status(&row, self.clock.unix()) != "active" {
            return Err(Error::Unauthenticated);
        }
        Ok(TokenGrant {
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
        })
    }

    pub async fn checkin(&self, checkout: &str) -> Result<()> {
        if !self
            .store
            .checkout_checkin(checkout, self.clock.unix())
            .await?
        {
            return Err(Error::Conflict {
                code: "not_active",
                detail: "checkout has no live token".into(),
            });
        }
        Ok(())
    }

    /// Marks expired tokens and tells the channels; run on a schedule.
    pub async fn sweep_expired(&self) -> Result<usize> {
        let ended = self.store.checkouts_expire(self.clock.unix()).await?;
        for (id, _, _) in &ended {
            if let Ok(Some(row)) = self.store.checkout_get(id).await {
                self.notify("checkout.expired", &row, None);
            }
        }
        Ok(ended.len())
    }

    fn notify(&self, event: &str, row: &CheckoutRow, by: Option<&str>) {
        self.notifier.send(crate::notify::Notice {
            event: event.to_owned(),
            account: row.account_id.clone(),
            summary: format!(
                "{event}: {} checkout {} of {} by {} ({}){}",
                row.level,
                row.id,
                row.account_id,
                row.operator,
                row.purpose,
                by.map(|b| format!(", by {b}")).unwrap_or_default()
            ),
            checkout_id: Some(row.id.clone()),
        });
    }
}

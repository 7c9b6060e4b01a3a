//! Requesting a checkout: the request as sent, its checks (level, purpose, digests, post and
//! its targets), and the new row, issued at once or pending approval.

use serde::Deserialize;
use tracing::instrument;

use super::{Checkouts, denial};
use crate::actor::Actor;
use crate::content::ContentInput;
use crate::crypto::tokens::{TokenKind, hash_token};
use crate::crypto::{SecretString, new_token};
use crate::error::{Conflict, Error, Result};
use crate::identity::AccountId;
use crate::policy::Level;
use crate::store::checkouts::{CheckoutRow, NewCheckout};
use crate::store::types::CheckoutStatus;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub account: String,
    pub operator: String,
    pub totp: String,
    pub purpose: String,
    #[schema(schema_with = crate::schema::level)]
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

impl Checkouts {
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
                let platform = self.accounts.row(t.as_str()).await?.platform;
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
        let proof = self.people.check_totp(&user, &req.totp).await?;

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
        actor.detail("checkout_id", id.clone());
        let sealed = match &post {
            Some(p) => {
                let (sealed, sha) = p.seal(&self.keys, &id)?;
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
            .audit
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
}

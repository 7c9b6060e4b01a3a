//! Publishing tokens: claiming an approved checkout (which issues its token), resolving a token
//! to its live grant, and what a token may learn about itself.

use std::sync::Arc;

use serde::Serialize;
use tracing::instrument;

use super::{Checkouts, effective_status, not_pending};
use crate::actor::Actor;
use crate::audit::context::RequestCtx;
use crate::clock::rfc3339_unix;
use crate::crypto::tokens::{TokenKind, hash_token, well_formed};
use crate::crypto::{SecretString, new_token};
use crate::error::{Conflict, Error, Result};
use crate::identity::clients::{bound_cert, require_bound_cert};
use crate::store::checkouts::CheckoutRow;
use crate::store::types::CheckoutStatus;

pub use crate::actor::TokenGrant;

/// What the checkout's own token may learn about it (`GET /token`).
// Borrowed from the token's grant: the hottest read of the vault renders it without copying
// each text first. (A plain comment: the doc comment above is the API schema's description.)
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenView<'g> {
    pub checkout_id: &'g str,
    pub account: &'g str,
    pub operator: &'g str,
    pub client: &'g str,
    pub expires_at: String,
    pub allowed_calls: &'g [String],
    pub content_sha256: Option<&'g [String]>,
    pub targets: &'g [String],
}

impl Checkouts {
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
        let now = self.clock.unix();
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
        let proof = self.people.check_totp(&user, totp).await?;
        let token = new_token(TokenKind::Publishing)?;
        let hash = hash_token(&self.keys.mac().token, token.expose());
        let (cid, now, exclusive) = (id.to_owned(), self.clock.unix(), policy.exclusive());
        let made = self
            .audit
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
                let status = effective_status(&now, self.clock.unix());
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
    /// `ctx` carries the connection's client certificate: a token issued under a checkout of a
    /// tool bound to one works only over a connection that presented it.
    pub async fn authenticate(
        &self,
        token: &str,
        ctx: Option<&RequestCtx>,
    ) -> Result<Arc<TokenGrant>> {
        let grant = self.resolve(token).await?;
        require_bound_cert(&grant.client_id, grant.client_cert.as_ref(), ctx)?;
        if grant.break_glass
            && let Some(ctx) = ctx
        {
            // Everything done under an admin's lone release says so in its audit entry.
            ctx.detail("break_glass", true);
        }
        Ok(grant)
    }

    /// The live grant behind a token, from the index or the store.
    async fn resolve(&self, token: &str) -> Result<Arc<TokenGrant>> {
        if !well_formed(TokenKind::Publishing, token) {
            return Err(Error::Unauthenticated);
        }
        let hash = hash_token(&self.keys.mac().token, token);
        // Read before the store is: a revocation committed after this read moves it, and the
        // grant found below is then not kept (see `TokenIndex`).
        let epoch = self.store.token_epoch();
        let now = self.clock.unix();
        if let Some(grant) = self.tokens.get(&hash.0, epoch, now) {
            return Ok(grant);
        }
        let row = self
            .store
            .checkout_by_token(&hash.0)
            .await?
            .ok_or(Error::Unauthenticated)?;
        if effective_status(&row, now) != CheckoutStatus::Active {
            return Err(Error::Unauthenticated);
        }
        let targets = self.targets_of(&row).await?;
        let has_post = self.store.checkout_has_content(&row.id).await?;
        // A revoked tool's checkouts were revoked with it, so the row is there; if it is not,
        // the token is refused rather than treated as unbound.
        let client = self
            .store
            .client_get(&row.client_id)
            .await?
            .ok_or(Error::Unauthenticated)?;
        let client_cert = bound_cert(&client)?;
        let grant = Arc::new(TokenGrant {
            targets,
            has_post,
            client_cert,
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
            break_glass: row.break_glass,
        });
        self.tokens
            .insert(hash.0, Arc::clone(&grant), epoch, self.store.token_epoch());
        Ok(grant)
    }

    /// What a token may learn about itself.
    pub fn introspect<'a>(&self, actor: &'a Actor) -> Result<TokenView<'a>> {
        let g = actor.token()?;
        actor.action("token.introspect", Some(&g.account));
        Ok(TokenView {
            checkout_id: &g.checkout_id,
            account: &g.account,
            operator: &g.operator,
            client: &g.client_id,
            expires_at: rfc3339_unix(g.expires_at),
            allowed_calls: &g.allowed_calls,
            content_sha256: g.content_sha256.as_deref(),
            targets: &g.targets,
        })
    }
}

//! The clients service: publishing tools, each with a client key (`mvc_`) bound to the accounts
//! the tool may use, shown once, stored as a keyed hash, revocable at once (and with it every
//! checkout the tool holds).

use serde::Serialize;

use super::AccountId;
use crate::actor::Actor;
use crate::crypto::tokens::{TokenKind, hash_token, well_formed};
use crate::crypto::{SecretString, new_token};
use crate::error::Conflict;
use crate::error::{Error, Result};
use crate::identity::Role;
use crate::store::clients::ClientRow;

pub use crate::actor::Client;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub accounts: Vec<String>,
    pub created_at: String,
    pub created_by: String,
    pub revoked: bool,
    /// On creation: the bound accounts whose policy does not admit this tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

fn parse_accounts(row: &ClientRow) -> Vec<String> {
    serde_json::from_str(&row.accounts).unwrap_or_default()
}

impl From<&ClientRow> for ClientView {
    fn from(r: &ClientRow) -> Self {
        ClientView {
            client_id: r.id.clone(),
            name: r.name.clone(),
            accounts: parse_accounts(r),
            created_at: crate::clock::rfc3339_unix(r.created_at),
            created_by: r.created_by.clone(),
            revoked: r.revoked_at.is_some(),
            warning: None,
        }
    }
}

/// The clients service; `vault.clients()`.
#[derive(Clone)]
pub struct Clients {
    pub(crate) store: crate::store::Store,
    pub(crate) clock: crate::clock::Clock,
    pub(crate) audit: crate::audit::AuditWriter,
    pub(crate) keys: std::sync::Arc<crate::keys::Keys>,
    pub(crate) people: crate::identity::users::People,
    pub(crate) policies: std::sync::Arc<crate::policy::Live>,
}

impl Clients {
    pub async fn create(
        &self,
        actor: &Actor,
        name: &str,
        accounts: &[String],
        totp: Option<&str>,
    ) -> Result<(ClientView, SecretString)> {
        actor.action("client.create", Some(name));
        // A person needs the admin role and their TOTP code; the vault itself (CLI, demo) not.
        let admin = match &actor.who {
            crate::actor::Principal::System(_) => None,
            _ => Some(actor.require(&[Role::Admin])?),
        };
        let name = name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                "name must be 1-64 printable characters",
            ));
        }
        if accounts.is_empty() {
            return Err(Error::invalid(
                "accounts",
                "a client must be bound to at least one account",
            ));
        }
        let mut ids = Vec::new();
        for a in accounts {
            let id = AccountId::parse(a)
                .map_err(|_| Error::invalid("accounts", format!("{a:?} is not an account id")))?;
            if self.store.account_get(id.as_str()).await?.is_none() {
                return Err(Error::invalid(
                    "accounts",
                    format!("account {id} does not exist"),
                ));
            }
            ids.push(id.as_str().to_owned());
        }
        ids.sort();
        ids.dedup();
        let proof = match admin {
            Some(me) => Some(self.people.authorize(me, totp).await?),
            None => None,
        };
        let mut raw = [0u8; 8];
        crate::crypto::random_bytes(&mut raw)?;
        let id = format!("cl_{}", hex::encode(raw));
        let key = new_token(TokenKind::Client)?;
        let hash = hash_token(&self.keys.mac().token, key.expose());
        let json = serde_json::to_string(&ids).map_err(Error::internal)?;
        actor.detail("client_id", id.clone());
        actor.detail("accounts", ids.clone());
        let now = self.clock.unix();
        let (cid, cname, by) = (id.clone(), name.clone(), actor.audit_id().1);
        let made = self
            .audit
            .change(actor, "client.create", &name, move |tx| {
                Box::pin(async move {
                    if let Some(p) = proof {
                        p.spend(tx).await?;
                    }
                    tx.client_insert(&cid, &cname, &hash.0, &json, &by, now)
                        .await?;
                    Ok(())
                })
            })
            .await;
        made.map_err(|e| {
            e.explain(Conflict::AlreadyExists, || {
                format!("a client named {name:?} already exists")
            })
        })?;
        let row = self
            .store
            .client_get(&id)
            .await?
            .ok_or_else(|| Error::internal(anyhow::anyhow!("client vanished")))?;
        let mut view = ClientView::from(&row);
        let policies = self.policies.current();
        let uncovered: Vec<&str> = view
            .accounts
            .iter()
            .filter(|a| {
                !policies
                    .for_account(a)
                    .is_some_and(|p| p.lists_client(&view.name, &view.client_id))
            })
            .map(String::as_str)
            .collect();
        if !uncovered.is_empty() {
            tracing::warn!(client = %view.client_id, accounts = ?uncovered, "client created that no policy admits");
            view.warning = Some(format!(
                "no access policy admits the tool {:?} for {}: add it to `[who] clients` in those policies and reload, or its checkouts are refused",
                view.name,
                uncovered.join(", ")
            ));
        }
        Ok((view, key))
    }

    pub async fn list(&self, actor: &Actor) -> Result<Vec<ClientView>> {
        actor.action("client.list", None);
        actor.require(&[Role::Admin, Role::Auditor])?;
        Ok(self
            .store
            .clients_list()
            .await?
            .iter()
            .map(ClientView::from)
            .collect())
    }

    /// Revokes a client key and, in the same transaction, every checkout the tool holds or waits
    /// for: a token never outlives the tool it was issued to.
    pub async fn revoke(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.action("client.revoke", Some(id));
        actor.require(&[Role::Admin])?;
        let now = self.clock.unix();
        let cid = id.to_owned();
        self.audit
            .change(actor, "client.revoke", id, move |tx| {
                Box::pin(async move {
                    if !tx.client_revoke(&cid, now).await? {
                        return Err(Error::NotFound(format!("live client {cid:?}")));
                    }
                    let n = tx
                        .revoke_checkouts_of(Some(&cid), None, "client revoked", now)
                        .await?;
                    tx.note("checkouts_revoked", n);
                    Ok(())
                })
            })
            .await
    }

    /// The live client behind a key, or `Unauthenticated`.
    pub async fn authenticate(&self, key: &str) -> Result<Client> {
        if !well_formed(TokenKind::Client, key) {
            return Err(Error::Unauthenticated);
        }
        let hash = hash_token(&self.keys.mac().token, key);
        let row = self
            .store
            .client_by_key_hash(&hash.0)
            .await?
            .ok_or(Error::Unauthenticated)?;
        Ok(Client {
            accounts: parse_accounts(&row),
            id: row.id,
            name: row.name,
        })
    }
}

//! Publishing tools: a client key (`mvc_`) bound to the accounts the tool may use, shown once,
//! stored as a keyed hash, revocable at once.

use serde::Serialize;

use super::AccountId;
use crate::crypto::tokens::{TokenKind, hash_token, well_formed};
use crate::crypto::{SecretString, new_token};
use crate::error::{Error, Result};
use crate::store::clients::ClientRow;
use crate::vault::Vault;

#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub accounts: Vec<String>,
}

impl Client {
    pub fn may_use(&self, account: &str) -> bool {
        self.accounts.iter().any(|a| a == account)
    }
}

#[derive(Debug, Serialize)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub accounts: Vec<String>,
    pub created_at: String,
    pub created_by: String,
    pub revoked: bool,
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
        }
    }
}

impl Vault {
    pub async fn create_client(
        &self,
        actor: &str,
        name: &str,
        accounts: &[String],
    ) -> Result<(ClientView, SecretString)> {
        let name = name.trim();
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
        let mut raw = [0u8; 8];
        crate::crypto::random_bytes(&mut raw)?;
        let id = format!("cl_{}", hex::encode(raw));
        let key = new_token(TokenKind::Client)?;
        let hash = hash_token(&self.keys.mac().token, key.expose());
        let json = serde_json::to_string(&ids).map_err(Error::internal)?;
        match self
            .store
            .client_insert(&id, name, &hash.0, &json, actor, self.clock.unix())
            .await
        {
            Err(e) if crate::store::is_unique_violation(&e) => {
                return Err(Error::Conflict {
                    code: "already_exists",
                    detail: format!("a client named {name:?} already exists"),
                });
            }
            r => r?,
        }
        let row = self
            .store
            .client_get(&id)
            .await?
            .ok_or_else(|| Error::internal(anyhow::anyhow!("client vanished")))?;
        Ok((ClientView::from(&row), key))
    }

    pub async fn revoke_client(&self, id: &str) -> Result<()> {
        if !self.store.client_revoke(id, self.clock.unix()).await? {
            return Err(Error::NotFound(format!("live client {id:?}")));
        }
        Ok(())
    }

    /// The live client behind a key, or `Unauthenticated`.
    pub async fn client_by_key(&self, key: &str) -> Result<Client> {
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

//! Account operations. Authorisation (which role may call what) is checked by the HTTP layer;
//! step-up TOTP is checked here because it is part of what a rotation or freeze is.

use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::credential::{Credential, CredentialInput, Platform};
use crate::clock::rfc3339_unix;
use crate::error::{Error, Result};
use crate::identity::AccountId;
use crate::identity::users::Person;
use crate::store::accounts::{AccountRow, StoreAddError};
use crate::vault::Vault;

#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    pub id: String,
    pub platform: String,
    pub display_name: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub credential_version: i64,
    pub created_at: String,
    pub rotated_at: String,
    pub active_checkouts: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionView {
    pub version: i64,
    pub created_at: String,
    pub created_by: String,
    pub reason: String,
    pub current: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    pub id: String,
    pub platform: String,
    pub display_name: String,
    pub credential: CredentialInput,
}

fn reason_text(reason: &str) -> Result<String> {
    let r = reason.trim();
    if r.is_empty() || r.chars().count() > 500 {
        return Err(Error::invalid("reason", "reason must be 1-500 characters"));
    }
    Ok(r.to_owned())
}

impl Vault {
    async fn account_view(&self, row: AccountRow) -> Result<AccountView> {
        let active = self
            .store
            .account_active_checkouts(&row.id, self.clock.unix())
            .await?;
        Ok(AccountView {
            id: row.id,
            platform: row.platform,
            display_name: row.display_name,
            status: row.status,
            status_reason: row.status_reason,
            credential_version: row.current_version,
            created_at: rfc3339_unix(row.created_at),
            rotated_at: rfc3339_unix(row.rotated_at),
            active_checkouts: active,
        })
    }

    pub async fn account_row(&self, id: &str) -> Result<AccountRow> {
        let id = AccountId::parse(id).map_err(|_| Error::NotFound(format!("account {id:?}")))?;
        self.store
            .account_get(id.as_str())
            .await?
            .ok_or_else(|| Error::NotFound(format!("account {id}")))
    }

    #[instrument(skip_all, fields(account = %input.id))]
    pub async fn create_account(
        &self,
        actor: &Person,
        input: CreateAccount,
    ) -> Result<AccountView> {
        let id = AccountId::parse(&input.id)?;
        let platform = Platform::parse(&input.platform)?;
        let display = input.display_name.trim();
        if display.is_empty() || display.chars().count() > 100 {
            return Err(Error::invalid(
                "display_name",
                "display_name must be 1-100 characters",
            ));
        }
        let credential = input.credential.check(platform)?;
        let sealed = credential.seal(&self.keys, id.as_str(), 1)?;
        let r = self
            .store
            .account_insert(
                id.as_str(),
                platform.as_str(),
                display,
                &sealed,
                &actor.username,
                self.clock.unix(),
            )
            .await;
        match r {
            Err(e) if crate::store::is_unique_violation(&e) => {
                return Err(Error::Conflict {
                    code: "already_exists",
                    detail: format!("account {id} already exists"),
                });
            }
            other => other?,
        }
        self.account(id.as_str()).await
    }

    pub async fn account(&self, id: &str) -> Result<AccountView> {
        let row = self.account_row(id).await?;
        self.account_view(row).await
    }

    pub async fn accounts(&self) -> Result<Vec<AccountView>> {
        let mut out = Vec::new();
        for row in self.store.accounts_list().await? {
            out.push(self.account_view(row).await?);
        }
        Ok(out)
    }

    /// The current credential, decrypted; never leaves the vault unless policy says so.
    pub async fn current_credential(&self, account: &str) -> Result<(AccountRow, Credential)> {
        let row = self.account_row(account).await?;
        let sealed = self
            .store
            .credential_sealed(&row.id, row.current_version)
            .await?
            .ok_or_else(|| {
                Error::internal(anyhow::anyhow!(
                    "account {} lacks its current version",
                    row.id
                ))
            })?;
        let cred = Credential::open(&self.keys, &row.id, row.current_version, &sealed)?;
        Ok((row, cred))
    }

    async fn add_version(
        &self,
        row: &AccountRow,
        actor: &Person,
        reason: &str,
        cred: &Credential,
    ) -> Result<i64> {
        self.store
            .credential_add_version(&row.id, &actor.username, reason, self.clock.unix(), |v| {
                cred.seal(&self.keys, &row.id, v)
            })
            .await
            .map_err(|e| match e {
                StoreAddError::Store(s) => Error::from(s),
                StoreAddError::Crypto(c) => Error::from(c),
            })
    }

    /// Stores a new credential version after a TOTP step-up. Nothing is stored if any check fails.
    #[instrument(skip_all, fields(account = %account, actor = %actor.username))]
    pub async fn rotate(
        &self,
        actor: &Person,
        account: &str,
        input: CredentialInput,
        reason: &str,
        totp: &str,
    ) -> Result<i64> {
        let row = self.account_row(account).await?;
        let platform = Platform::parse(&row.platform)?;
        let reason = reason_text(reason)?;
        let cred = input.check(platform)?;
        self.verify_user_totp(&actor.username, totp).await?;
        let version = self.add_version(&row, actor, &reason, &cred).await?;
        self.after_credential_change(&row.id).await;
        Ok(version)
    }

    /// Makes an earlier version current again by copying it into a new version, so history only
    /// ever grows and the audit trail reads in order.
    #[instrument(skip_all, fields(account = %account, actor = %actor.username))]
    pub async fn rollback(
        &self,
        actor: &Person,
        account: &str,
        version: i64,
        reason: &str,
        totp: &str,
    ) -> Result<i64> {
        let row = self.account_row(account).await?;
        let reason = reason_text(reason)?;
        if version == row.current_version {
            return Err(Error::Conflict {
                code: "already_current",
                detail: format!("version {version} is already current"),
            });
        }
        let sealed = self
            .store
            .credential_sealed(&row.id, version)
            .await?
            .ok_or_else(|| Error::NotFound(format!("version {version} of account {}", row.id)))?;
        self.verify_user_totp(&actor.username, totp).await?;
        let cred = Credential::open(&self.keys, &row.id, version, &sealed)?;
        let new = self
            .add_version(
                &row,
                actor,
                &format!("rollback to v{version}: {reason}"),
                &cred,
            )
            .await?;
        self.after_credential_change(&row.id).await;
        Ok(new)
    }

    pub async fn versions(&self, account: &str) -> Result<Vec<VersionView>> {
        let row = self.account_row(account).await?;
        Ok(self
            .store
            .credential_versions(&row.id)
            .await?
            .into_iter()
            .map(|v| VersionView {
                current: v.version == row.current_version,
                version: v.version,
                created_at: rfc3339_unix(v.created_at),
                created_by: v.created_by,
                reason: v.reason,
            })
            .collect())
    }

    /// Freezes (or unfreezes) an account after a TOTP step-up. Freezing revokes every live token
    /// of the account at once.
    #[instrument(skip_all, fields(account = %account, actor = %actor.username, frozen))]
    pub async fn set_frozen(
        &self,
        actor: &Person,
        account: &str,
        frozen: bool,
        reason: &str,
        totp: &str,
    ) -> Result<AccountView> {
        let row = self.account_row(account).await?;
        let reason = reason_text(reason)?;
        self.verify_user_totp(&actor.username, totp).await?;
        self.freeze_unchecked(&row.id, frozen, &reason).await?;
        self.account(&row.id).await
    }

    /// Freeze without step-up: for incident automation, which runs as the system.
    pub async fn freeze_unchecked(&self, account: &str, frozen: bool, reason: &str) -> Result<u64> {
        let status = if frozen { "frozen" } else { "active" };
        self.store
            .account_set_status(account, status, reason)
            .await?;
        if frozen {
            return Ok(self
                .store
                .revoke_account_tokens(account, self.clock.unix())
                .await?);
        }
        Ok(0)
    }

    /// Current credentials of the active accounts of one platform (canary, heartbeat).
    pub async fn platform_credentials(&self, platform: Platform) -> Vec<(String, Credential)> {
        let Ok(rows) = self.store.accounts_list().await else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for row in rows
            .into_iter()
            .filter(|r| r.platform == platform.as_str() && r.status == "active")
        {
            if let Ok((_, cred)) = self.current_credential(&row.id).await {
                out.push((row.id, cred));
            }
        }
        out
    }

    /// What must follow any change of the current credential: tokens that were issued for the
    /// old secret keep working (they never held it), but cached platform tokens must go.
    async fn after_credential_change(&self, account: &str) {
        self.broker.invalidate(account);
        // The new secret is checked against the platform off the request path; a refusal is a
        // security event (HeartbeatFailed), not an error of the rotation, which already happened.
        if let Ok((row, cred)) = self.current_credential(account).await
            && let Ok(platform) = Platform::parse(&row.platform)
            && platform != Platform::Generic
        {
            let broker = std::sync::Arc::clone(&self.broker);
            let account = account.to_owned();
            tokio::spawn(async move {
                let _ = broker.heartbeat(&account, platform, &cred).await;
            });
        }
    }
}

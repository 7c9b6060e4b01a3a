//! The accounts service: platform accounts and their credential versions. It owns who may see and
//! change them (admins change, auditors read), the TOTP step-up of every change, and what a
//! freeze means (the status and the revocation of every token, in one transaction).

use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::credential::{Credential, CredentialInput, Platform};
use crate::actor::Actor;
use crate::clock::rfc3339_unix;
use crate::error::Conflict;
use crate::error::{Error, Result};
use crate::identity::{AccountId, Role};
use crate::store::accounts::{AccountRow, StoreAddError};
use crate::store::types::AccountStatus;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AccountView {
    pub id: String,
    #[schema(schema_with = crate::schema::platform)]
    pub platform: Platform,
    pub display_name: String,
    #[schema(schema_with = crate::schema::account_status)]
    pub status: AccountStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub credential_version: i64,
    pub created_at: String,
    pub rotated_at: String,
    /// Since when the credential is due for rotation: a break-glass release used this account.
    /// Null once it has been rotated since.
    pub rotation_due_since: Option<String>,
    /// When the account's platform token expires, as the platform last said (Weibo's OAuth
    /// token, from the heartbeat's `get_token_info`); null where the platform says nothing.
    pub token_expires_at: Option<String>,
    /// WeChat: what is left today of the AppID's token fetches (WeChat's daily limits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wechat_budget: Option<WechatBudgetView>,
    pub active_checkouts: i64,
    /// On creation: why the account cannot be checked out yet (no policy covers it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VersionView {
    pub version: i64,
    pub created_at: String,
    pub created_by: String,
    pub reason: String,
    pub current: bool,
}

/// What the loaded policies cover; `GET /policies`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyCoverage {
    pub policies: Vec<PolicyView>,
    /// Accounts no policy names: nobody can check them out (deny by default).
    pub accounts_without_policy: Vec<String>,
    /// Live tools (`name (id)`) that no policy of an account they are bound to lists.
    pub clients_without_policy: Vec<String>,
}

/// One access policy, as far as it says who may use what.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyView {
    pub account: String,
    pub account_exists: bool,
    pub file: String,
    pub users: Vec<String>,
    pub roles: Vec<String>,
    /// Tool names or ids as the policy lists them.
    pub clients: Vec<String>,
    /// Live tools the policy admits that are bound to the account.
    pub admitted_clients: Vec<PolicyClient>,
    /// Listed tool names or ids that match no live tool bound to the account.
    pub unmatched_clients: Vec<String>,
    /// Approvals a `general` / `major` checkout needs; `null`: that level cannot be requested.
    pub approvals_general: Option<u8>,
    pub approvals_major: Option<u8>,
    pub exclusive: bool,
    pub allowed_calls: Vec<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyClient {
    pub client_id: String,
    pub name: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    pub id: String,
    #[schema(schema_with = crate::schema::platform)]
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

/// The accounts service; `vault.accounts()`.
#[derive(Clone)]
pub struct Accounts {
    pub(crate) store: crate::store::Store,
    pub(crate) clock: crate::clock::Clock,
    pub(crate) audit: crate::audit::AuditWriter,
    pub(crate) keys: std::sync::Arc<crate::keys::Keys>,
    pub(crate) people: crate::identity::users::People,
    pub(crate) policies: std::sync::Arc<crate::policy::Live>,
    pub(crate) broker: std::sync::Arc<crate::platforms::Broker>,
    pub(crate) notifier: crate::notify::Notifier,
    pub(crate) lifetimes: crate::config::LifetimesConfig,
    /// When each (account, reminder) last went out, by the vault's clock; in memory, so a
    /// restart may remind once more.
    pub(crate) reminded:
        std::sync::Arc<std::sync::Mutex<std::collections::HashMap<(String, &'static str), i64>>>,
    /// Weibo re-authorisations admins started, by the SHA-256 of their state; in memory, so a
    /// restart ends them (the admin starts again).
    pub(crate) weibo_grants:
        std::sync::Arc<std::sync::Mutex<std::collections::HashMap<[u8; 32], PendingGrant>>>,
}

/// What is left today of a WeChat AppID's token budget, as this vault process has spent it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WechatBudgetView {
    /// `force_refresh` stable tokens left today (WeChat allows 20 a day, 30 s apart); incident
    /// playbooks spend them to cancel every other stable token.
    pub force_refreshes_left: u32,
    /// Classic `cgi-bin/token` fetches left today (WeChat allows 2,000).
    pub classic_fetches_left: u32,
    /// When WeChat resets both: the next midnight, Beijing time.
    pub resets_at: String,
    /// `clear_quota` resets left this month (WeChat allows 10 a month; `POST
    /// /accounts/{id}/clear-quota`).
    pub quota_resets_left: u32,
}

impl Accounts {
    /// A WeChat account's token budget (its AppID's; the credential says which).
    pub async fn wechat_budget(&self, account: &str) -> Option<WechatBudgetView> {
        let b = self.token_budget(account).await?;
        Some(WechatBudgetView {
            force_refreshes_left: b.force_refreshes_left,
            classic_fetches_left: b.classic_fetches_left,
            resets_at: rfc3339_unix(b.resets_at),
            quota_resets_left: self.quota_resets_left(account).await.ok()?,
        })
    }

    /// Today's token budget of a WeChat account's AppID, as the broker has spent it (no audit
    /// read: `/metrics` asks on every scrape).
    pub async fn token_budget(
        &self,
        account: &str,
    ) -> Option<crate::platforms::broker::WechatBudget> {
        let (row, cred) = self.current_credential(account).await.ok()?;
        if row.platform != Platform::Wechat {
            return None;
        }
        Some(self.broker.wechat_budget(cred.app_id.as_deref()?))
    }

    async fn view(&self, row: AccountRow) -> Result<AccountView> {
        let wechat_budget = if row.platform == Platform::Wechat {
            self.wechat_budget(&row.id).await
        } else {
            None
        };
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
            rotation_due_since: row.rotation_due_at.map(rfc3339_unix),
            token_expires_at: row.token_expires_at.map(rfc3339_unix),
            wechat_budget,
            active_checkouts: active,
            warning: None,
        })
    }

    pub(crate) async fn row(&self, id: &str) -> Result<AccountRow> {
        let id = known_id(id)?;
        self.store
            .account_get(id.as_str())
            .await?
            .ok_or_else(|| Error::NotFound(format!("account {id}")))
    }

    #[instrument(skip_all, fields(account = %input.id))]
    pub async fn create(&self, actor: &Actor, input: CreateAccount) -> Result<AccountView> {
        actor.action("account.create", Some(&input.id));
        // An admin, or the vault itself (the CLI).
        if !matches!(actor.who, crate::actor::Principal::System(_)) {
            actor.require(&[Role::Admin])?;
        }
        let id = AccountId::parse(&input.id)?;
        let platform: Platform = input.platform.parse().map_err(|_| {
            Error::invalid(
                "platform",
                format!(
                    "unknown platform {:?}; use wechat, weibo or generic",
                    input.platform
                ),
            )
        })?;
        let display = input.display_name.trim().to_owned();
        if display.is_empty() || display.chars().count() > 100 {
            return Err(Error::invalid(
                "display_name",
                "display_name must be 1-100 characters",
            ));
        }
        let credential = input.credential.check(platform)?;
        let sealed = credential.seal(&self.keys, id.as_str(), 1)?;
        actor.detail("platform", platform.as_str());
        let (aid, by, now) = (
            id.as_str().to_owned(),
            actor.audit_id().1,
            self.clock.unix(),
        );
        let made = self
            .audit
            .change(actor, "account.create", id.as_str(), move |tx| {
                Box::pin(async move {
                    tx.account_insert(&aid, platform, &display, &sealed, &by, now)
                        .await?;
                    Ok(())
                })
            })
            .await;
        made.map_err(|e| {
            e.explain(Conflict::AlreadyExists, || {
                format!("account {id} already exists")
            })
        })?;
        let mut view = self.view(self.row(id.as_str()).await?).await?;
        if self.policies.current().for_account(id.as_str()).is_none() {
            tracing::warn!(account = %id, "account created without an access policy");
            view.warning = Some(format!(
                "no access policy covers account {id}: nothing can check it out until policies/{id}.toml exists and the server reloads"
            ));
        }
        Ok(view)
    }

    pub async fn get(&self, actor: &Actor, id: &str) -> Result<AccountView> {
        actor.action("account.get", Some(id));
        actor.require(&[Role::Admin, Role::Auditor])?;
        self.view(self.row(id).await?).await
    }

    pub async fn list(&self, actor: &Actor) -> Result<Vec<AccountView>> {
        actor.action("account.list", None);
        actor.require(&[Role::Admin, Role::Auditor])?;
        let mut out = Vec::new();
        for row in self.store.accounts_list().await? {
            out.push(self.view(row).await?);
        }
        Ok(out)
    }

    /// The loaded access policies, for reading (admins and auditors).
    pub fn policies(&self, actor: &Actor) -> Result<std::sync::Arc<crate::policy::PolicySet>> {
        actor.action("policy.list", None);
        actor.require(&[Role::Admin, Role::Auditor])?;
        Ok(self.policies.current())
    }

    /// What each loaded policy covers (admins and auditors): its account (and whether that
    /// account exists), who may check out, the live tools it admits for that account, the tool
    /// names it lists that no live tool answers to, and the accounts and tools no policy covers,
    /// which cannot be checked out or cannot check anything out.
    pub async fn policy_coverage(&self, actor: &Actor) -> Result<PolicyCoverage> {
        actor.action("policy.list", None);
        actor.require(&[Role::Admin, Role::Auditor])?;
        let set = self.policies.current();
        let accounts = self.store.accounts_list().await?;
        let clients: Vec<(String, String, Vec<String>)> = self
            .store
            .clients_list()
            .await?
            .into_iter()
            .filter(|c| c.revoked_at.is_none())
            .map(|c| {
                let bound: Vec<String> = serde_json::from_str(&c.accounts).unwrap_or_default();
                (c.id, c.name, bound)
            })
            .collect();
        let mut policies = Vec::new();
        for p in set.iter() {
            let (users, roles, listed) = p.who();
            let admitted: Vec<PolicyClient> = clients
                .iter()
                .filter(|(id, name, bound)| {
                    listed.iter().any(|l| l == id || l == name)
                        && bound.iter().any(|a| a == p.account())
                })
                .map(|(id, name, _)| PolicyClient {
                    client_id: id.clone(),
                    name: name.clone(),
                })
                .collect();
            let unmatched = listed
                .iter()
                .filter(|l| !admitted.iter().any(|c| &&c.client_id == l || &&c.name == l))
                .cloned()
                .collect();
            let level = |l| p.level(l).ok().map(|r| r.approvals);
            policies.push(PolicyView {
                account: p.account().to_owned(),
                account_exists: accounts.iter().any(|a| a.id == p.account()),
                file: p
                    .source()
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                users: users.to_vec(),
                roles: roles.iter().map(|r| (*r).to_owned()).collect(),
                clients: listed.to_vec(),
                admitted_clients: admitted,
                unmatched_clients: unmatched,
                approvals_general: level(crate::policy::Level::General),
                approvals_major: level(crate::policy::Level::Major),
                exclusive: p.exclusive(),
                allowed_calls: p.allowed_calls(),
            });
        }
        let accounts_without_policy = accounts
            .iter()
            .filter(|a| set.for_account(&a.id).is_none())
            .map(|a| a.id.clone())
            .collect();
        let clients_without_policy = clients
            .iter()
            .filter(|(id, name, bound)| {
                !bound.iter().any(|a| {
                    set.for_account(a).is_some_and(|p| {
                        let (_, _, listed) = p.who();
                        listed.iter().any(|l| l == id || l == name)
                    })
                })
            })
            .map(|(id, name, _)| format!("{name} ({id})"))
            .collect();
        Ok(PolicyCoverage {
            policies,
            accounts_without_policy,
            clients_without_policy,
        })
    }

    /// One stored version, decrypted, for the vault itself only (no person, tool or token can
    /// ask for it, and no command exposes it): the library's own tests use it to prove what a
    /// version holds and that it opens only where it belongs.
    pub async fn open_version(
        &self,
        actor: &Actor,
        account: &str,
        version: Option<i64>,
    ) -> Result<Credential> {
        if !matches!(actor.who, crate::actor::Principal::System(_)) {
            return Err(Error::NotPermitted(
                "only the vault itself opens a credential".into(),
            ));
        }
        let row = self.row(account).await?;
        let version = version.unwrap_or(row.current_version);
        let sealed = self
            .store
            .credential_sealed(&row.id, version)
            .await?
            .ok_or_else(|| Error::NotFound(format!("version {version} of account {}", row.id)))?;
        self.keys.know_term_of(&sealed).await?;
        Ok(Credential::open(&self.keys, &row.id, version, &sealed)?)
    }

    /// The current credential, decrypted; never leaves the vault unless policy says so.
    pub(crate) async fn current_credential(
        &self,
        account: &str,
    ) -> Result<(AccountRow, Credential)> {
        let id = known_id(account)?;
        let (row, sealed) = self
            .store
            .account_with_current_sealed(id.as_str())
            .await?
            .ok_or_else(|| Error::NotFound(format!("account {id}")))?;
        let sealed = sealed.ok_or_else(|| {
            Error::internal(anyhow::anyhow!(
                "account {} lacks its current version",
                row.id
            ))
        })?;
        self.keys.know_term_of(&sealed).await?;
        let cred = Credential::open(&self.keys, &row.id, row.current_version, &sealed)?;
        Ok((row, cred))
    }

    /// Stores `cred` as the next version, with the step-up spent and the audit entry written in
    /// the same transaction. A `fresh` credential (a rotation, not a rollback to an older one)
    /// ends the account's being due for rotation.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn add_version(
        &self,
        actor: &Actor,
        action: &str,
        row: &AccountRow,
        reason: String,
        cred: Credential,
        proof: crate::identity::users::StepUp,
        fresh: bool,
    ) -> Result<i64> {
        let by = actor.audit_id().1;
        let (account, now) = (row.id.clone(), self.clock.unix());
        let keys = std::sync::Arc::clone(&self.keys);
        self.audit
            .change(actor, action, &row.id, move |tx| {
                Box::pin(async move {
                    proof.spend(tx).await?;
                    let v = tx
                        .credential_add_version(
                            &account,
                            &by,
                            &reason,
                            now,
                            Box::new(|v| cred.seal(&keys, &account, v)),
                        )
                        .await
                        .map_err(|e| match e {
                            StoreAddError::Store(s) => Error::from(s),
                            StoreAddError::Crypto(c) => Error::from(c),
                        })?;
                    tx.note("credential_version", v);
                    if fresh {
                        tx.account_rotation_done(&account).await?;
                    }
                    Ok(v)
                })
            })
            .await
    }

    /// Stores a new credential version after a TOTP step-up. Nothing is stored if any check fails
    /// or the audit entry cannot be written.
    #[instrument(skip_all, fields(account = %account))]
    pub async fn rotate(
        &self,
        actor: &Actor,
        account: &str,
        input: CredentialInput,
        reason: &str,
        totp: Option<&str>,
    ) -> Result<i64> {
        actor.action("account.rotate", Some(account));
        let me = actor.require(&[Role::Admin])?;
        let row = self.row(account).await?;
        let reason = reason_text(reason)?;
        let cred = input.check(row.platform)?;
        let proof = self.people.authorize(me, totp).await?;
        let version = self
            .add_version(actor, "account.rotate", &row, reason, cred, proof, true)
            .await?;
        self.after_credential_change(&row.id).await;
        Ok(version)
    }

    /// Makes an earlier version current again by copying it into a new version, so history only
    /// ever grows and the audit trail reads in order.
    #[instrument(skip_all, fields(account = %account))]
    pub async fn rollback(
        &self,
        actor: &Actor,
        account: &str,
        version: i64,
        reason: &str,
        totp: Option<&str>,
    ) -> Result<i64> {
        actor.action("account.rollback", Some(account));
        actor.detail("to_version", version);
        let me = actor.require(&[Role::Admin])?;
        let row = self.row(account).await?;
        let reason = reason_text(reason)?;
        if version == row.current_version {
            return Err(Error::conflict(
                Conflict::AlreadyCurrent,
                format!("version {version} is already current"),
            ));
        }
        if self
            .store
            .credential_compromised_up_to(&row.id)
            .await?
            .is_some_and(|bad| version <= bad)
        {
            return Err(Error::conflict(
                Conflict::CredentialCompromised,
                format!(
                    "version {version} of account {} was marked compromised by an incident",
                    row.id
                ),
            ));
        }
        let sealed = self
            .store
            .credential_sealed(&row.id, version)
            .await?
            .ok_or_else(|| Error::NotFound(format!("version {version} of account {}", row.id)))?;
        let proof = self.people.authorize(me, totp).await?;
        self.keys.know_term_of(&sealed).await?;
        let cred = Credential::open(&self.keys, &row.id, version, &sealed)?;
        let new = self
            .add_version(
                actor,
                "account.rollback",
                &row,
                format!("rollback to v{version}: {reason}"),
                cred,
                proof,
                false,
            )
            .await?;
        self.after_credential_change(&row.id).await;
        Ok(new)
    }

    pub async fn versions(&self, actor: &Actor, account: &str) -> Result<Vec<VersionView>> {
        actor.action("account.versions", Some(account));
        actor.require(&[Role::Admin, Role::Auditor])?;
        let row = self.row(account).await?;
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
    /// of the account in the same transaction.
    #[instrument(skip_all, fields(account = %account, frozen))]
    pub async fn set_frozen(
        &self,
        actor: &Actor,
        account: &str,
        frozen: bool,
        reason: &str,
        totp: Option<&str>,
    ) -> Result<AccountView> {
        let action = if frozen {
            "account.freeze"
        } else {
            "account.unfreeze"
        };
        actor.action(action, Some(account));
        let me = actor.require(&[Role::Admin])?;
        let row = self.row(account).await?;
        let reason = reason_text(reason)?;
        let proof = self.people.authorize(me, totp).await?;
        self.freeze_with(actor, &row.id, frozen, reason, Some(proof))
            .await?;
        self.view(self.row(&row.id).await?).await
    }

    /// The status change and, when freezing, the revocation of every token of the account: one
    /// transaction, so no checkout admitted in between keeps a token. Without a proof it is the
    /// system acting (incident automation).
    pub(crate) async fn freeze_with(
        &self,
        actor: &Actor,
        account: &str,
        frozen: bool,
        reason: String,
        proof: Option<crate::identity::users::StepUp>,
    ) -> Result<u64> {
        let (action, status) = if frozen {
            ("account.freeze", AccountStatus::Frozen)
        } else {
            ("account.unfreeze", AccountStatus::Active)
        };
        let (id, now) = (account.to_owned(), self.clock.unix());
        self.audit
            .change(actor, action, account, move |tx| {
                Box::pin(async move {
                    if let Some(p) = proof {
                        p.spend(tx).await?;
                    }
                    if !frozen && tx.credential_is_compromised(&id).await? {
                        return Err(Error::conflict(
                            Conflict::CredentialCompromised,
                            format!(
                                "an incident marked the credential of account {id} compromised; rotate it before unfreezing"
                            ),
                        ));
                    }
                    tx.account_set_status(&id, status, &reason).await?;
                    let revoked = if frozen {
                        tx.revoke_account_tokens(&id, now).await?
                    } else {
                        0
                    };
                    tx.note("tokens_revoked", revoked);
                    Ok(revoked)
                })
            })
            .await
    }

    /// Current credentials of the active accounts of one platform (canary, heartbeat).
    pub(crate) async fn platform_credentials(
        &self,
        platform: Platform,
    ) -> Vec<(String, Credential)> {
        let Ok(rows) = self.store.accounts_list().await else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for row in rows
            .into_iter()
            .filter(|r| r.platform == platform && r.status == AccountStatus::Active)
        {
            if let Ok((_, cred)) = self.current_credential(&row.id).await {
                out.push((row.id, cred));
            }
        }
        out
    }

    /// What must follow any change of the current credential: tokens that were issued for the
    /// old secret keep working (they never held it), but cached platform tokens must go.
    pub(super) async fn after_credential_change(&self, account: &str) {
        self.broker.invalidate(account);
        // The new secret is checked against the platform off the request path; a refusal is a
        // security event (HeartbeatFailed), not an error of the rotation, which already happened.
        if let Ok((row, cred)) = self.current_credential(account).await
            && row.platform != Platform::Generic
        {
            let me = self.clone();
            let account = account.to_owned();
            tokio::spawn(async move {
                if let Ok(Some(left)) = me.broker.heartbeat(&account, row.platform, &cred).await {
                    me.learn_token_expiry(&account, left).await;
                }
            });
        }
    }
}

/// A Weibo re-authorisation an admin started; the `state` Weibo hands back names it (kept by its
/// SHA-256, compared as a map key of a digest, never the state itself).
#[derive(Debug, Clone)]
pub(crate) struct PendingGrant {
    pub(super) account: String,
    pub(super) admin: String,
    pub(super) redirect_uri: String,
    pub(super) expires_at: i64,
}

/// An account id as a lookup takes it: one that cannot exist is simply not found.
fn known_id(id: &str) -> Result<AccountId> {
    AccountId::parse(id).map_err(|_| Error::NotFound(format!("account {id:?}")))
}

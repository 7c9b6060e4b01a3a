//! The publishing service: what a publishing token may do. It owns the proxy gate (the token's
//! account, the policy's allowed calls, the approved content digests, the account's state), the
//! policy-gated hand-outs (platform token, credential reveal, platform-login code), and the rule
//! that a platform call is recorded before it is sent and runs to its end once sent.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::Method;
use serde::Serialize;
use serde_json::Value;

use crate::accounts::{Credential, Platform};
use crate::actor::Actor;
use crate::checkout::TokenGrant;
use crate::error::{Error, Result};
use crate::platforms::PlatformError;
use crate::platforms::broker::ApiRequest;
use crate::policy::AccountPolicy;
use crate::store::types::AccountStatus;
use crate::vault::Vault;

/// One call a tool makes through the proxy, as received.
#[derive(Debug)]
pub struct ProxyCall {
    pub account: String,
    /// The platform path without its leading slash, e.g. `cgi-bin/draft/add`.
    pub path: String,
    pub method: Method,
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// The platform's answer, passed back unchanged.
#[derive(Debug)]
pub struct ProxyAnswer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// A brokered platform access token, serialised once into the response; `Debug` hides it.
#[derive(Serialize)]
pub struct TokenHandout {
    pub access_token: String,
    pub expires_in: i64,
}

/// A platform-login code computed from the account's stored seed; `Debug` hides it.
#[derive(Serialize)]
pub struct LoginCode {
    pub code: String,
    pub expires_in: u64,
}

impl std::fmt::Debug for TokenHandout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenHandout")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for LoginCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginCode")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

fn platform_error(e: PlatformError) -> Error {
    match e {
        PlatformError::Api {
            platform,
            code,
            message,
        } => Error::Platform {
            platform,
            code,
            message,
        },
        PlatformError::Refused { detail, .. } => Error::invalid("path", detail),
        other => Error::Platform {
            platform: other.platform(),
            code: -1,
            message: other.to_string(),
        },
    }
}

/// The ids a platform answered for a new post (WeChat `publish_id`/`msg_data_id`/`article_id`,
/// Weibo `idstr`), as a JSON object; none for other answers.
fn platform_ids(body: &[u8]) -> Option<Value> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let mut ids = serde_json::Map::new();
    for key in ["publish_id", "msg_data_id", "article_id", "idstr"] {
        match v.get(key) {
            Some(Value::String(s)) => {
                ids.insert(key.to_owned(), Value::String(s.clone()));
            }
            Some(Value::Number(n)) => {
                ids.insert(key.to_owned(), Value::String(n.to_string()));
            }
            _ => {}
        }
    }
    (!ids.is_empty()).then_some(Value::Object(ids))
}

/// The publishing service; `vault.publishing()`.
pub struct Publishing<'v> {
    v: &'v Vault,
}

impl Vault {
    pub fn publishing(&self) -> Publishing<'_> {
        Publishing { v: self }
    }
}

impl Publishing<'_> {
    /// Asks the account's current policy (a token outlives no policy change; no policy denies),
    /// without copying it on every proxied call.
    fn policy_says(&self, account: &str, ask: impl FnOnce(&AccountPolicy) -> bool) -> Result<bool> {
        self.v
            .policies()
            .for_account(account)
            .map(ask)
            .ok_or_else(|| Error::NotPermitted(format!("account {account} has no access policy")))
    }

    async fn usable_account(&self, grant: &TokenGrant) -> Result<(Platform, Credential)> {
        let (row, cred) = self.v.accounts().current_credential(&grant.account).await?;
        if row.status == AccountStatus::Frozen {
            return Err(Error::AccountFrozen(row.id));
        }
        Ok((row.platform, cred))
    }

    /// Forwards one call to the platform with the credential injected. Refused before anything
    /// leaves: another account, a call the policy does not allow, a body whose digest is not
    /// approved, a frozen account. The call is recorded (durably) before it is sent; once sent
    /// it runs to its end on its own task, so a tool that hangs up cannot make the vault forget
    /// a call the platform received.
    pub async fn proxy(&self, actor: &Actor, call: ProxyCall) -> Result<ProxyAnswer> {
        let grant = actor.token()?;
        let digest = crate::crypto::sha256_hex(&call.body);
        actor.action("platform.call", Some(&call.account));
        actor.detail("call", format!("{} {}", call.method, call.path));
        actor.detail("payload_sha256", digest.clone());
        actor.detail("payload_bytes", call.body.len());
        actor.detail("operator", grant.operator.clone());
        actor.detail("client", grant.client_id.clone());
        if call.account != grant.account {
            return Err(Error::NotPermitted(format!(
                "this token is for account {}, not {}",
                grant.account, call.account
            )));
        }
        if !self.policy_says(&call.account, |p| {
            p.call_allowed(call.method.as_str(), &call.path)
        })? {
            return Err(Error::NotPermitted(format!(
                "{} {} is not among this token's allowed calls",
                call.method, call.path
            )));
        }
        if let Some(approved) = &grant.content_sha256
            && call.method == Method::POST
            && !approved
                .iter()
                .any(|d| crate::crypto::ct_eq(d.as_bytes(), digest.as_bytes()))
        {
            return Err(Error::ContentNotApproved);
        }
        let (platform, cred) = self.usable_account(grant).await?;
        // Recorded before it is sent: if this entry cannot be written, nothing leaves.
        self.v
            .audit
            .record(actor.entry("platform.send", &call.account))
            .await?;
        let broker = Arc::clone(&self.v.broker);
        let sent = tokio::spawn(async move {
            let path = format!("/{}", call.path);
            let req = ApiRequest {
                method: call.method,
                path: &path,
                query: call.query.as_deref().unwrap_or(""),
                body: call.body,
                content_type: call.content_type.as_deref(),
            };
            broker.forward(&call.account, platform, &cred, req).await
        });
        let answer = sent
            .await
            .map_err(Error::internal)?
            .map_err(platform_error)?;
        if let Some(e) = answer.error(platform.as_str()) {
            actor.detail("platform_code", answer.errcode.unwrap_or_default());
            return Err(platform_error(e));
        }
        actor.detail("platform_status", answer.status);
        if let Some(ids) = platform_ids(&answer.body) {
            // What the publication watch matches live posts against (until evidence records).
            actor.detail("platform_ids", ids);
        }
        Ok(ProxyAnswer {
            status: answer.status,
            content_type: answer.content_type,
            body: answer.body,
        })
    }

    /// Drops the broker's cached platform token of an account, so the next call fetches a fresh
    /// one (after a rotation, or when the platform's own settings changed). The vault itself only.
    pub fn forget_platform_token(&self, actor: &Actor, account: &str) -> Result<()> {
        if !matches!(actor.who, crate::actor::Principal::System(_)) {
            return Err(Error::NotPermitted(
                "only the vault itself drops a platform token".into(),
            ));
        }
        self.v.broker.invalidate(account);
        Ok(())
    }

    /// The brokered WeChat access token, where policy allows handing it out.
    pub async fn platform_token(&self, actor: &Actor) -> Result<TokenHandout> {
        let grant = actor.token()?;
        actor.action("platform.token_handout", Some(&grant.account));
        if !self.policy_says(&grant.account, AccountPolicy::allow_platform_token)? {
            return Err(Error::NotPermitted(
                "policy does not allow handing out the platform token for this account".into(),
            ));
        }
        let (platform, cred) = self.usable_account(grant).await?;
        if platform != Platform::Wechat {
            return Err(Error::NotPermitted(
                "only WeChat accounts have a brokered platform token".into(),
            ));
        }
        let lease = self
            .v
            .broker
            .wechat_token_lease(&grant.account, &cred)
            .await
            .map_err(platform_error)?;
        Ok(TokenHandout {
            access_token: lease.token.expose().to_owned(),
            expires_in: lease.expires_in,
        })
    }

    /// The account's credential fields, where policy allows revealing them.
    pub async fn reveal(&self, actor: &Actor) -> Result<Value> {
        let grant = actor.token()?;
        actor.action("credential.reveal", Some(&grant.account));
        if !self.policy_says(&grant.account, AccountPolicy::allow_reveal)? {
            return Err(Error::NotPermitted(
                "policy does not allow revealing this account's credential".into(),
            ));
        }
        let (_, cred) = self.usable_account(grant).await?;
        let mut out = serde_json::Map::new();
        let mut put = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                out.insert(k.to_owned(), Value::String(v.to_owned()));
            }
        };
        put("app_id", cred.app_id.as_deref());
        put("app_secret", cred.app_secret.as_ref().map(|s| s.expose()));
        put("app_key", cred.app_key.as_deref());
        put(
            "access_token",
            cred.access_token.as_ref().map(|s| s.expose()),
        );
        put("username", cred.username.as_deref());
        put("password", cred.password.as_ref().map(|s| s.expose()));
        put(
            "login_password",
            cred.login_password.as_ref().map(|s| s.expose()),
        );
        Ok(Value::Object(out))
    }

    /// The current platform-login code, where policy allows it.
    pub async fn login_code(&self, actor: &Actor) -> Result<LoginCode> {
        let grant = actor.token()?;
        actor.action("credential.totp", Some(&grant.account));
        if !self.policy_says(&grant.account, AccountPolicy::allow_login_totp)? {
            return Err(Error::NotPermitted(
                "policy does not allow platform-login codes for this account".into(),
            ));
        }
        let (_, cred) = self.usable_account(grant).await?;
        let seed = cred
            .login_totp_seed
            .as_ref()
            .and_then(|s| crate::identity::totp::seed_from_base32(s.expose()))
            .ok_or_else(|| Error::NotFound("a login TOTP seed for this account".into()))?;
        let now = self.v.clock.unix();
        let code = crate::identity::totp::code_at(&seed, now)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("totp")))?;
        Ok(LoginCode {
            code,
            expires_in: crate::identity::totp::seconds_left(now),
        })
    }
}

//! The publishing service: what a publishing token may do. It owns the proxy gate (the token's
//! account, the policy's allowed calls, the approved content digests, the account's state), the
//! policy-gated hand-outs (platform token, credential reveal, platform-login code), and the rule
//! that a platform call is recorded before it is sent and runs to its end once sent.

pub use crate::content;
mod evidence;
pub mod gate;
pub mod hints;
pub mod posts;

use std::sync::Arc;

use crate::platforms::Method;
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::accounts::{Credential, Platform};
use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::platforms::PlatformError;
use crate::platforms::broker::ApiRequest;
use crate::policy::AccountPolicy;
use crate::store::types::AccountStatus;
use content::Post;

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

/// The platform's answer, passed back unchanged: its status and body, errors included, so a
/// platform SDK reads its own error code. `refusal` says when the body is a platform error, with
/// the vault's explanation to put beside it.
#[derive(Debug)]
pub struct ProxyAnswer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
    pub refusal: Option<PlatformRefusal>,
}

/// A platform error carried in a passed-through answer.
#[derive(Debug, Clone)]
pub struct PlatformRefusal {
    pub platform: &'static str,
    pub code: i64,
    /// The platform's message, with any credential the broker knows of scrubbed out.
    pub message: String,
    pub hint: Option<hints::PlatformHint>,
}

/// A brokered platform access token, serialised once into the response; `Debug` hides it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenHandout {
    pub access_token: String,
    pub expires_in: i64,
}

/// A platform-login code computed from the account's stored seed; `Debug` hides it.
#[derive(Serialize, utoipa::ToSchema)]
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

/// The publishing service; `vault.publishing()`.
#[derive(Clone)]
pub struct Publishing {
    pub(crate) store: crate::store::Store,
    pub(crate) clock: crate::clock::Clock,
    pub(crate) audit: crate::audit::AuditWriter,
    pub(crate) keys: std::sync::Arc<crate::keys::Keys>,
    pub(crate) accounts: crate::accounts::service::Accounts,
    pub(crate) broker: std::sync::Arc<crate::platforms::Broker>,
    pub(crate) metrics: std::sync::Arc<crate::telemetry::Metrics>,
    pub(crate) policies: std::sync::Arc<crate::policy::Live>,
}

impl Publishing {
    /// Asks the account's current policy (a token outlives no policy change; no policy denies),
    /// without copying it on every proxied call.
    fn policy_says(&self, account: &str, ask: impl FnOnce(&AccountPolicy) -> bool) -> Result<bool> {
        self.policies
            .current()
            .for_account(account)
            .map(ask)
            .ok_or_else(|| Error::NotPermitted(format!("account {account} has no access policy")))
    }

    async fn usable_account(&self, account: &str) -> Result<(Platform, Credential)> {
        let (row, cred) = self.accounts.current_credential(account).await?;
        if row.status == AccountStatus::Frozen {
            return Err(Error::AccountFrozen(row.id));
        }
        Ok((row.platform, cred))
    }

    /// Forwards one call to the platform with the credential injected. Refused before anything
    /// leaves: an account the checkout does not target, a call or a query parameter the policy
    /// does not allow, content that was not approved (see [`gate`]), a frozen account. The call
    /// is recorded (durably) before it is sent, and a publish gets its evidence record in that
    /// same commit; once sent it runs to its end on its own task, which also records what the
    /// platform created and completes the evidence, so a tool that hangs up cannot make the
    /// vault forget a call the platform received.
    pub async fn proxy(&self, actor: &Actor, call: ProxyCall) -> Result<ProxyAnswer> {
        let grant = actor.token()?;
        let digest = crate::crypto::sha256_hex(&call.body);
        actor.action("platform.call", Some(&call.account));
        actor.detail("call", format!("{} {}", call.method, call.path));
        actor.detail("payload_sha256", digest.clone());
        actor.detail("payload_bytes", call.body.len());
        actor.detail("operator", grant.operator.clone());
        actor.detail("client", grant.client_id.clone());
        actor.detail("checkout_id", grant.checkout_id.clone());
        let query = crate::platforms::pairs_without_token(call.query.as_deref().unwrap_or(""));
        if !query.is_empty() {
            let shown: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            actor.detail("query", shown.join("&"));
        }
        if !grant.targets.contains(&call.account) {
            return Err(Error::NotPermitted(format!(
                "this token is for account {}, not {}",
                grant.targets.join(", "),
                call.account
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
        let mut refused = None;
        self.policy_says(&call.account, |p| {
            refused = p
                .query_refused(
                    call.method.as_str(),
                    &call.path,
                    query.iter().map(|(k, _)| k.as_str()),
                )
                .map(str::to_owned);
            true
        })?;
        if let Some(name) = refused {
            return Err(Error::NotPermitted(format!(
                "the query parameter {name:?} is not allowed for {} {} by the account's policy",
                call.method, call.path
            )));
        }
        let (platform, cred) = self.usable_account(&call.account).await?;
        let approved = if grant.has_post {
            self.approved_post(&grant.checkout_id).await?
        } else {
            None
        };
        // The media this checkout created are needed to check a bound post's calls and to tie a
        // submit to its draft; a plain draft of an unbound checkout needs none, and reading them
        // all on every call would grow with every draft the checkout makes.
        let needs_media = call.method == Method::POST
            && (approved.is_some() || call.path.ends_with("freepublish/submit"));
        let media = if needs_media {
            self.store
                .checkout_media(&grant.checkout_id, &call.account)
                .await?
        } else {
            Vec::new()
        };
        let plan = gate::plan(
            platform,
            &gate::Call {
                method: &call.method,
                path: &call.path,
                content_type: call.content_type.as_deref(),
                body: &call.body,
            },
            approved.as_ref().map(|(_, p)| p),
            grant.content_sha256.as_deref(),
            &media,
        )
        .map_err(|why| {
            actor.detail("refused", why);
            Error::ContentNotApproved
        })?;
        let content_sha = approved.as_ref().map(|(sha, _)| sha.clone());
        // Recorded before it is sent: if this cannot be written, nothing leaves. A publish
        // writes its evidence record (status `sending`) in the same commit.
        let follow = self
            .before_send(
                actor,
                grant,
                &call,
                platform,
                plan,
                content_sha,
                &media,
                &digest,
            )
            .await?;
        let broker = Arc::clone(&self.broker);
        let audit = self.audit.clone();
        let clock = self.clock.clone();
        let (who, account) = (actor.clone(), call.account.clone());
        let checkout_id = grant.checkout_id.clone();
        let sent = tokio::spawn(async move {
            let path = format!("/{}", call.path);
            let req = ApiRequest {
                method: call.method,
                path: &path,
                query: call.query.as_deref().unwrap_or(""),
                body: call.body,
                content_type: call.content_type.as_deref(),
            };
            let answer = broker.forward(&call.account, platform, &cred, req).await;
            let kept = evidence::after_send(
                &audit,
                &clock,
                &who,
                &checkout_id,
                &account,
                platform,
                follow,
                answer.as_ref().ok(),
            )
            .await;
            (answer, kept)
        });
        let (answer, kept) = sent.await.map_err(Error::internal)?;
        match &answer {
            Ok(a) => self.metrics.platform_call(
                platform.as_str(),
                Some(a.errcode.unwrap_or(0)),
                a.error(platform.as_str()).is_some(),
            ),
            Err(_) => self.metrics.platform_call(platform.as_str(), None, true),
        }
        let answer = match answer {
            Ok(a) => a,
            // WeChat refused the token fetch behind the call (an address not on the allow-list, a
            // frozen AppSecret, a spent quota): the tool gets WeChat's own answer, as its SDK
            // would have had it fetched the token itself.
            Err(PlatformError::Api { code, message, .. }) if platform == Platform::Wechat => {
                crate::platforms::PlatformResponse {
                    status: 200,
                    body: Bytes::from(
                        serde_json::json!({ "errcode": code, "errmsg": message }).to_string(),
                    ),
                    content_type: Some("application/json; charset=utf-8".into()),
                    errcode: Some(code),
                    errmsg: Some(message),
                }
            }
            Err(e) => return Err(platform_error(e)),
        };
        kept?;
        actor.detail("platform_status", answer.status);
        let refusal = match answer.error(platform.as_str()) {
            Some(PlatformError::Api { code, message, .. }) => {
                actor.detail("platform_code", code);
                let hint = hints::explain(platform, code, &message);
                if let Some(h) = &hint {
                    actor.detail("platform_hint", h.en.clone());
                    actor.detail("platform_hint_zh", h.zh.clone());
                }
                Some(PlatformRefusal {
                    platform: platform.as_str(),
                    code,
                    message,
                    hint,
                })
            }
            _ => None,
        };
        Ok(ProxyAnswer {
            status: answer.status,
            content_type: answer.content_type,
            body: answer.body,
            refusal,
        })
    }

    /// [`Self::proxy`] for the vault's own calls (publishing an approved post), which stop at the
    /// first platform error.
    async fn proxy_strict(&self, actor: &Actor, call: ProxyCall) -> Result<ProxyAnswer> {
        let answer = self.proxy(actor, call).await?;
        match answer.refusal {
            Some(r) => Err(Error::Platform {
                platform: r.platform,
                code: r.code,
                message: r.message,
            }),
            None => Ok(answer),
        }
    }

    /// The approved post of a checkout and its digest, if it carries one.
    async fn approved_post(&self, checkout: &str) -> Result<Option<(String, Post)>> {
        match self.store.checkout_content(checkout).await? {
            None => Ok(None),
            Some(row) => {
                self.keys.know_term_of(&row.sealed).await?;
                let post = Post::open(&self.keys, checkout, &row.sealed)?;
                Ok(Some((row.content_sha256, post)))
            }
        }
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
        let (platform, cred) = self.usable_account(&grant.account).await?;
        if platform != Platform::Wechat {
            return Err(Error::NotPermitted(
                "only WeChat accounts have a brokered platform token".into(),
            ));
        }
        let lease = self
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
        let (_, cred) = self.usable_account(&grant.account).await?;
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
        let (_, cred) = self.usable_account(&grant.account).await?;
        let seed = cred
            .login_totp_seed
            .as_ref()
            .and_then(|s| crate::identity::totp::seed_from_base32(s.expose()))
            .ok_or_else(|| Error::NotFound("a login TOTP seed for this account".into()))?;
        let now = self.clock.unix();
        let code = crate::identity::totp::code_at(&seed, now)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("totp")))?;
        Ok(LoginCode {
            code,
            expires_in: crate::identity::totp::seconds_left(now),
        })
    }
}

fn answer_json(a: &ProxyAnswer) -> Value {
    serde_json::from_slice(&a.body).unwrap_or(Value::Null)
}

fn answer_id(a: &ProxyAnswer, key: &str) -> Result<String> {
    answer_json(a)
        .get(key)
        .and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .ok_or_else(|| Error::Platform {
            platform: "platform",
            code: -1,
            message: format!("the answer carries no {key}"),
        })
}

impl Publishing {
    /// Publishes a checkout's approved post on each of its target accounts, building the
    /// platform calls itself (WeChat: images, cover, draft, submit, status; Weibo: the status).
    /// Every call goes through [`Self::proxy`], so each is gated, recorded before it is sent and
    /// leaves its evidence exactly as a tool's own calls would. A target whose post already went
    /// out is skipped. Only the checkout's own token may do this.
    pub async fn publish_approved(
        &self,
        actor: &Actor,
        checkout: &str,
    ) -> Result<Vec<posts::PostView>> {
        let grant = actor.token()?.clone();
        actor.action("checkout.publish", Some(checkout));
        if grant.checkout_id != checkout {
            return Err(Error::NotPermitted(
                "only the checkout's own token may publish its post".into(),
            ));
        }
        let (_, post) = self.approved_post(checkout).await?.ok_or_else(|| {
            Error::invalid(
                "checkout",
                "this checkout carries no post; publish through the proxy instead",
            )
        })?;
        let done: Vec<String> = self
            .store
            .posts_of_checkout(checkout)
            .await?
            .into_iter()
            .filter(|p| p.status != crate::store::types::PostStatus::Failed)
            .map(|p| p.account_id)
            .collect();
        for account in grant.targets.iter().filter(|t| !done.contains(t)) {
            let platform = self.accounts.row(account).await?.platform;
            let call = |path: &str, query: Option<&str>, ct: &str, body: Vec<u8>| ProxyCall {
                account: account.clone(),
                path: path.to_owned(),
                method: Method::POST,
                query: query.map(str::to_owned),
                content_type: Some(ct.to_owned()),
                body: Bytes::from(body),
            };
            match platform {
                Platform::Wechat => {
                    let body = post.body.as_deref().unwrap_or("");
                    let mut html = body.to_owned();
                    let mut thumb = None;
                    for img in &post.images {
                        let (ct, data) = crate::platforms::payload::multipart_file(
                            "media",
                            &img.name,
                            &img.content_type,
                            &img.data,
                        );
                        if img.role == content::ImageRole::Cover {
                            let a = self
                                .proxy_strict(
                                    actor,
                                    call(
                                        "cgi-bin/material/add_material",
                                        Some("type=image"),
                                        &ct,
                                        data,
                                    ),
                                )
                                .await?;
                            thumb = Some(answer_id(&a, "media_id")?);
                        } else {
                            let a = self
                                .proxy_strict(
                                    actor,
                                    call("cgi-bin/media/uploadimg", None, &ct, data),
                                )
                                .await?;
                            let url = answer_id(&a, "url")?;
                            html = html.replace(&format!("cid:{}", img.name), &url);
                        }
                    }
                    let draft = crate::platforms::payload::wechat_draft(
                        &crate::platforms::payload::WechatArticle {
                            title: &post.title,
                            author: &post.author,
                            digest: &post.digest,
                            content: &html,
                            thumb_media_id: thumb.as_deref(),
                            need_open_comment: 0,
                            only_fans_can_comment: 0,
                        },
                    );
                    let json = "application/json";
                    let a = self
                        .proxy_strict(actor, call("cgi-bin/draft/add", None, json, draft))
                        .await?;
                    let media_id = answer_id(&a, "media_id")?;
                    let submit = serde_json::to_vec(&serde_json::json!({ "media_id": media_id }))
                        .map_err(Error::internal)?;
                    let a = self
                        .proxy_strict(
                            actor,
                            call("cgi-bin/freepublish/submit", None, json, submit),
                        )
                        .await?;
                    let publish_id = answer_id(&a, "publish_id")?;
                    let get = serde_json::to_vec(&serde_json::json!({ "publish_id": publish_id }))
                        .map_err(Error::internal)?;
                    // The status call is best effort: the post is out; a later
                    // `freepublish/get` through the proxy completes the record too.
                    if self.policy_says(account, |p| {
                        p.call_allowed("POST", "cgi-bin/freepublish/get")
                    })? {
                        self.proxy_strict(actor, call("cgi-bin/freepublish/get", None, json, get))
                            .await?;
                    }
                }
                Platform::Weibo => {
                    let text = post.text.as_deref().unwrap_or("");
                    let form = crate::platforms::payload::weibo_share_form(text);
                    self.proxy_strict(
                        actor,
                        call(
                            "2/statuses/share.json",
                            None,
                            "application/x-www-form-urlencoded",
                            form.into_bytes(),
                        ),
                    )
                    .await?;
                }
                Platform::Generic => {
                    return Err(Error::invalid(
                        "targets",
                        format!("account {account} is generic; the vault publishes nothing there"),
                    ));
                }
            }
        }
        actor.action("checkout.publish", Some(checkout));
        Ok(self
            .store
            .posts_of_checkout(checkout)
            .await?
            .into_iter()
            .map(posts::PostView::from)
            .collect())
    }
}

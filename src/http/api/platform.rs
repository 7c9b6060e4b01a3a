//! Using a token: the publishing proxy and the policy-gated hand-outs. The credential is injected
//! here and never sent to the tool; every forwarded payload's SHA-256 goes into the audit record.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::accounts::Platform;
use crate::checkout::TokenGrant;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::extract::{Ctx, TokenAuth};
use crate::platforms::PlatformError;
use crate::platforms::broker::ApiRequest;
use crate::policy::AccountPolicy;
use crate::vault::Vault;

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

/// Asks the account's current policy (a token outlives no policy change; no policy denies),
/// without copying it on every proxied call.
fn policy_says(
    vault: &Vault,
    account: &str,
    ask: impl FnOnce(&AccountPolicy) -> bool,
) -> Result<bool> {
    vault
        .policies()
        .for_account(account)
        .map(ask)
        .ok_or_else(|| Error::NotPermitted(format!("account {account} has no access policy")))
}

async fn usable_account(
    vault: &Vault,
    grant: &TokenGrant,
) -> Result<(Platform, crate::accounts::Credential)> {
    let (row, cred) = vault.current_credential(&grant.account).await?;
    if row.status == "frozen" {
        return Err(Error::AccountFrozen(row.id));
    }
    Ok((Platform::parse(&row.platform)?, cred))
}

pub async fn proxy(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    TokenAuth(grant): TokenAuth,
    Path((account, path)): Path<(String, String)>,
    parts: axum::http::request::Parts,
    body: Bytes,
) -> Result<Response> {
    let method = parts.method.clone();
    let query = parts.uri.query().map(str::to_owned);
    let headers = &parts.headers;
    let digest = crate::crypto::sha256_hex(&body);
    ctx.action("platform.call", Some(&account));
    ctx.detail("call", format!("{method} {path}"));
    ctx.detail("payload_sha256", digest.clone());
    ctx.detail("payload_bytes", body.len());
    if account != grant.account {
        return Err(Error::NotPermitted(format!(
            "this token is for account {}, not {account}",
            grant.account
        )));
    }
    if !policy_says(&s.vault, &account, |p| {
        p.call_allowed(method.as_str(), &path)
    })? {
        return Err(Error::NotPermitted(format!(
            "{method} {path} is not among this token's allowed calls"
        )));
    }
    if let Some(approved) = &grant.content_sha256
        && method == Method::POST
        && !approved
            .iter()
            .any(|d| crate::crypto::ct_eq(d.as_bytes(), digest.as_bytes()))
    {
        return Err(Error::ContentNotApproved);
    }
    let (platform, cred) = usable_account(&s.vault, &grant).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let platform_path = format!("/{path}");
    let req = ApiRequest {
        method,
        path: &platform_path,
        query: query.as_deref().unwrap_or(""),
        body,
        content_type,
    };
    let answer = s
        .vault
        .broker
        .forward(&account, platform, &cred, req)
        .await
        .map_err(platform_error)?;
    if let Some(e) = answer.error(platform.as_str()) {
        ctx.detail("platform_code", answer.errcode.unwrap_or_default());
        return Err(platform_error(e));
    }
    ctx.detail("platform_status", answer.status);
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut resp = (status, answer.body).into_response();
    let ct = answer
        .content_type
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
        .unwrap_or(HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    Ok(resp)
}

pub async fn platform_token(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    TokenAuth(grant): TokenAuth,
) -> Result<Json<Value>> {
    ctx.action("platform.token_handout", Some(&grant.account));
    if !policy_says(
        &s.vault,
        &grant.account,
        AccountPolicy::allow_platform_token,
    )? {
        return Err(Error::NotPermitted(
            "policy does not allow handing out the platform token for this account".into(),
        ));
    }
    let (platform, cred) = usable_account(&s.vault, &grant).await?;
    if platform != Platform::Wechat {
        return Err(Error::NotPermitted(
            "only WeChat accounts have a brokered platform token".into(),
        ));
    }
    let lease = s
        .vault
        .broker
        .wechat_token_lease(&grant.account, &cred)
        .await
        .map_err(platform_error)?;
    Ok(Json(
        json!({"access_token": lease.token.expose(), "expires_in": lease.expires_in}),
    ))
}

pub async fn credential(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    TokenAuth(grant): TokenAuth,
) -> Result<Json<Value>> {
    ctx.action("credential.reveal", Some(&grant.account));
    if !policy_says(&s.vault, &grant.account, AccountPolicy::allow_reveal)? {
        return Err(Error::NotPermitted(
            "policy does not allow revealing this account's credential".into(),
        ));
    }
    let (_, cred) = usable_account(&s.vault, &grant).await?;
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
    Ok(Json(Value::Object(out)))
}

pub async fn credential_totp(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    TokenAuth(grant): TokenAuth,
) -> Result<Json<Value>> {
    ctx.action("credential.totp", Some(&grant.account));
    if !policy_says(&s.vault, &grant.account, AccountPolicy::allow_login_totp)? {
        return Err(Error::NotPermitted(
            "policy does not allow platform-login codes for this account".into(),
        ));
    }
    let (_, cred) = usable_account(&s.vault, &grant).await?;
    let seed = cred
        .login_totp_seed
        .as_ref()
        .and_then(|s| crate::identity::totp::seed_from_base32(s.expose()))
        .ok_or_else(|| Error::NotFound("a login TOTP seed for this account".into()))?;
    let now = s.vault.clock.unix();
    let code = crate::identity::totp::code_at(&seed, now)
        .ok_or_else(|| Error::internal(anyhow::anyhow!("totp")))?;
    Ok(Json(
        json!({"code": code, "expires_in": crate::identity::totp::seconds_left(now)}),
    ))
}

//! Using a token: the publishing proxy and the policy-gated hand-outs. The rules are the
//! publishing service's; this only turns HTTP into a [`ProxyCall`] and the answer back.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::AppState;
use crate::error::Result;
use crate::extract::{ApiBytes, ApiPath, TokenAuth};
use crate::publishing::{LoginCode, ProxyCall, TokenHandout};

/// The path is the platform's own (`cgi-bin/draft/add`, `2/statuses/share.json`); the query and
/// the body (JSON, a form, or a multipart upload) pass through as the platform's SDK sent them.
#[utoipa::path(
    method(get, post),
    path = "/platform/{account}/{*path}",
    tag = "publishing",
    security(("token" = [])),
    params(
        ("account" = String, Path, description = "one of the checkout's target accounts"),
        ("path" = String, Path, description = "the platform API path, e.g. `cgi-bin/draft/add`; the policy's allowed calls decide"),
    ),
    request_body(
        description = "passed to the platform unchanged",
        content(
            (Value = "application/json"),
            (String = "application/x-www-form-urlencoded"),
            (String = "multipart/form-data"),
        ),
    ),
    responses((
        status = 200,
        description = "the platform's answer: its status and body, unchanged, errors included (WeChat answers its errors with 200 and an errcode, Weibo with 400 or 403 and an error_code); on a platform error the vault adds `Mediavault-Platform-Error` (platform and code) and, where it can explain the code, `Mediavault-Platform-Hint`",
        body = Value,
        content_type = "application/json",
        headers(
            ("Mediavault-Platform-Error" = String, description = "on a platform error: the platform and its code, e.g. `wechat 40164`"),
            ("Mediavault-Platform-Hint" = String, description = "on a platform error the vault can explain: what it means and the step to take"),
        ),
    ),
    (
        status = 400,
        description = "Weibo's own error answer, passed through with its headers as above; or the vault's refusal as problem+json",
        content(
            (Value = "application/json"),
            (crate::problem::ProblemBody<'static> = "application/problem+json"),
        ),
    ),
    (
        status = 403,
        description = "Weibo's own error answer (authentication, rate limits), passed through with its headers as above; or the vault's refusal as problem+json",
        content(
            (Value = "application/json"),
            (crate::problem::ProblemBody<'static> = "application/problem+json"),
        ),
    )),
)]
pub async fn proxy(
    State(s): State<AppState>,
    TokenAuth(token): TokenAuth,
    ApiPath((account, path)): ApiPath<(String, String)>,
    parts: axum::http::request::Parts,
    ApiBytes(body): ApiBytes,
) -> Result<Response> {
    let call = ProxyCall {
        account,
        path,
        method: parts.method,
        query: parts.uri.query().map(str::to_owned),
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
    };
    let answer = s.vault.publishing().proxy(&token, call).await?;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut resp = (status, answer.body).into_response();
    let ct = answer
        .content_type
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
        .unwrap_or(HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    if let Some(r) = &answer.refusal {
        // The platform's error stays the body; the vault's explanation goes beside it, and the
        // request's audit entry is an error with the platform's code.
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&format!("{} {}", r.platform, r.code)) {
            h.insert(PLATFORM_ERROR, v);
        }
        if let Some(v) = r
            .hint
            .as_ref()
            .and_then(|hint| HeaderValue::from_str(&hint.en).ok())
        {
            h.insert(PLATFORM_HINT, v);
        }
        resp.extensions_mut()
            .insert(crate::problem::ErrorCode("platform_error"));
    }
    Ok(resp)
}

/// On a passed-through platform error: the platform and its code, e.g. `wechat 40164`.
const PLATFORM_ERROR: HeaderName = HeaderName::from_static("mediavault-platform-error");
/// On a passed-through platform error the vault can explain: what it means and the step to take.
const PLATFORM_HINT: HeaderName = HeaderName::from_static("mediavault-platform-hint");

#[utoipa::path(
    post,
    path = "/platform-token",
    tag = "publishing",
    security(("token" = [])),
    responses((status = 200, description = "the platform access token, where the policy allows hand-out", body = TokenHandout)),
)]
pub async fn platform_token(
    State(s): State<AppState>,
    TokenAuth(token): TokenAuth,
) -> Result<Json<TokenHandout>> {
    Ok(Json(s.vault.publishing().platform_token(&token).await?))
}

#[utoipa::path(
    get,
    path = "/credential",
    tag = "publishing",
    security(("token" = [])),
    responses((status = 200, description = "the credential's fields, where the policy allows reveal", body = BTreeMap<String, String>)),
)]
pub async fn credential(
    State(s): State<AppState>,
    TokenAuth(token): TokenAuth,
) -> Result<Json<Value>> {
    Ok(Json(s.vault.publishing().reveal(&token).await?))
}

#[utoipa::path(
    get,
    path = "/credential/totp",
    tag = "publishing",
    security(("token" = [])),
    responses((status = 200, description = "the platform login's current second-factor code; never the seed", body = LoginCode)),
)]
pub async fn credential_totp(
    State(s): State<AppState>,
    TokenAuth(token): TokenAuth,
) -> Result<Json<LoginCode>> {
    Ok(Json(s.vault.publishing().login_code(&token).await?))
}

//! Using a token: the publishing proxy and the policy-gated hand-outs. The rules are the
//! publishing service's; this only turns HTTP into a [`ProxyCall`] and the answer back.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
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
        description = "the platform's answer: its status and body, unchanged",
        body = Value,
        content_type = "application/json",
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
    Ok(resp)
}

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

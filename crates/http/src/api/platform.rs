//! Using a token: the publishing proxy and the policy-gated hand-outs. The rules are the
//! publishing service's; this only turns HTTP into a [`ProxyCall`] and the answer back.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::AppState;
use crate::error::Result;
use crate::extract::TokenAuth;
use crate::publishing::{LoginCode, ProxyCall, TokenHandout};

pub async fn proxy(
    State(s): State<AppState>,
    TokenAuth(token): TokenAuth,
    Path((account, path)): Path<(String, String)>,
    parts: axum::http::request::Parts,
    body: Bytes,
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

pub async fn platform_token(
    State(s): State<AppState>,
    TokenAuth(token): TokenAuth,
) -> Result<Json<TokenHandout>> {
    Ok(Json(s.vault.publishing().platform_token(&token).await?))
}

pub async fn credential(
    State(s): State<AppState>,
    TokenAuth(token): TokenAuth,
) -> Result<Json<Value>> {
    Ok(Json(s.vault.publishing().reveal(&token).await?))
}

pub async fn credential_totp(
    State(s): State<AppState>,
    TokenAuth(token): TokenAuth,
) -> Result<Json<LoginCode>> {
    Ok(Json(s.vault.publishing().login_code(&token).await?))
}

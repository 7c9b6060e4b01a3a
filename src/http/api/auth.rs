use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::crypto::SecretString;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::extract::{Anonymous, ApiJson, Session, bearer};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: SecretString,
    totp: String,
}

pub async fn login(
    State(s): State<AppState>,
    Anonymous(anon): Anonymous,
    ApiJson(b): ApiJson<LoginBody>,
) -> Result<(StatusCode, Json<Value>)> {
    let (person, session) = s
        .vault
        .people()
        .login(&anon, &b.username, b.password, &b.totp)
        .await?;
    Ok((
        StatusCode::OK,
        Json(json!({
            "session_token": session.token.expose(),
            "expires_at": crate::clock::rfc3339_unix(session.expires_at),
            "user": {"username": person.username, "roles": person.roles.names()},
        })),
    ))
}

pub async fn logout(
    State(s): State<AppState>,
    Session(me): Session,
    headers: axum::http::HeaderMap,
) -> Result<StatusCode> {
    let token = bearer(&headers).ok_or(Error::Unauthenticated)?;
    s.vault.sessions().end(&me, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}

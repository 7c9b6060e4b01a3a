use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::crypto::SecretString;
use crate::error::{Error, Result};
use crate::extract::{Anonymous, ApiJson, Session, bearer};

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepUpBody {
    totp: String,
}

/// Opens the session's step-up window: the changes that follow within it need no code.
pub async fn step_up(
    State(s): State<AppState>,
    Session(me): Session,
    ApiJson(b): ApiJson<StepUpBody>,
) -> Result<Json<Value>> {
    let w = s.vault.people().open_step_up(&me, &b.totp).await?;
    Ok(Json(json!({
        "step_up_until": crate::clock::rfc3339_unix(w.until),
        "step_up_seq": w.seq,
    })))
}

/// Who is signed in on this session, and the step-up window left.
pub async fn session(State(s): State<AppState>, Session(me): Session) -> Result<Json<Value>> {
    let now = s.vault.clock().unix();
    let person = s.vault.people().whoami(&me)?;
    let window = person.step_up().filter(|w| w.until > now);
    Ok(Json(json!({
        "username": person.username,
        "roles": person.roles.names(),
        "step_up_until": window.map(|w| crate::clock::rfc3339_unix(w.until)),
        "step_up_seconds_left": window.map_or(0, |w| w.until - now),
        "step_up_seq": window.map(|w| w.seq),
    })))
}

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::crypto::SecretString;
use crate::error::Result;
use crate::http::AppState;
use crate::http::context::ActorKind;
use crate::http::extract::{ApiJson, Ctx, bearer};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: SecretString,
    totp: String,
}

pub async fn login(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    ApiJson(b): ApiJson<LoginBody>,
) -> Result<(StatusCode, Json<Value>)> {
    // Recorded before the outcome is known, so failed attempts are attributed to the name tried;
    // a name that is no user's is only ever recorded as a keyed digest.
    ctx.actor(
        ActorKind::Anonymous,
        &s.vault.login_audit_name(&b.username).await?,
    );
    ctx.action("auth.login", None);
    let person = s.vault.login(&b.username, b.password, &b.totp).await?;
    ctx.actor(ActorKind::User, &person.username);
    let session = s.vault.create_session(&person).await?;
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
    Ctx(ctx): Ctx,
    headers: axum::http::HeaderMap,
) -> Result<StatusCode> {
    ctx.action("auth.logout", None);
    let token = bearer(&headers).ok_or(crate::error::Error::Unauthenticated)?;
    let person = s.vault.session_person(&token).await?;
    ctx.actor(ActorKind::User, &person.username);
    s.vault.end_session(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}

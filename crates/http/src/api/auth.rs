use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::crypto::SecretString;
use crate::error::{Error, Result};
use crate::extract::{Anonymous, ApiJson, Session, bearer};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    #[schema(value_type = String, format = Password)]
    password: SecretString,
    /// The person's current TOTP code.
    totp: String,
}

/// A new session; the token is shown this once.
#[derive(Serialize, ToSchema)]
pub struct LoginAnswer {
    /// `mvs_…`: the bearer credential of this session.
    session_token: String,
    expires_at: String,
    user: SessionUser,
}

#[derive(Serialize, ToSchema)]
pub struct SessionUser {
    username: String,
    roles: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "people",
    request_body = LoginBody,
    responses((status = 200, description = "signed in; the step-up window is open", body = LoginAnswer)),
)]
pub async fn login(
    State(s): State<AppState>,
    Anonymous(anon): Anonymous,
    ApiJson(b): ApiJson<LoginBody>,
) -> Result<(StatusCode, Json<LoginAnswer>)> {
    let (person, session) = s
        .vault
        .people()
        .login(&anon, &b.username, b.password, &b.totp)
        .await?;
    Ok((
        StatusCode::OK,
        Json(LoginAnswer {
            session_token: session.token.expose().to_owned(),
            expires_at: crate::clock::rfc3339_unix(session.expires_at),
            user: SessionUser {
                username: person.username,
                roles: person.roles.names(),
            },
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "people",
    security(("session" = []), ("session_cookie" = [])),
    responses((status = 204, description = "the session and its step-up window ended")),
)]
pub async fn logout(
    State(s): State<AppState>,
    Session(me): Session,
    headers: axum::http::HeaderMap,
) -> Result<StatusCode> {
    let token = bearer(&headers).ok_or(Error::Unauthenticated)?;
    s.vault.sessions().end(&me, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepUpBody {
    totp: String,
}

#[derive(Serialize, ToSchema)]
pub struct StepUpAnswer {
    step_up_until: String,
    /// The `auth.step_up` audit entry that changes made in this window name.
    step_up_seq: i64,
}

/// Opens the session's step-up window: the changes that follow within it need no code.
#[utoipa::path(
    post,
    path = "/auth/step-up",
    tag = "people",
    security(("session" = []), ("session_cookie" = [])),
    request_body = StepUpBody,
    responses((status = 200, description = "the window is open", body = StepUpAnswer)),
)]
pub async fn step_up(
    State(s): State<AppState>,
    Session(me): Session,
    ApiJson(b): ApiJson<StepUpBody>,
) -> Result<Json<StepUpAnswer>> {
    let w = s.vault.people().open_step_up(&me, &b.totp).await?;
    Ok(Json(StepUpAnswer {
        step_up_until: crate::clock::rfc3339_unix(w.until),
        step_up_seq: w.seq,
    }))
}

/// Who is signed in, and the step-up window left (`null`, `null` and 0 when none is open).
#[derive(Serialize, ToSchema)]
pub struct SessionAnswer {
    username: String,
    roles: Vec<String>,
    step_up_until: Option<String>,
    step_up_seconds_left: i64,
    step_up_seq: Option<i64>,
}

/// Who is signed in on this session, and the step-up window left.
#[utoipa::path(
    get,
    path = "/auth/session",
    tag = "people",
    security(("session" = []), ("session_cookie" = [])),
    responses((status = 200, description = "this session", body = SessionAnswer)),
)]
pub async fn session(
    State(s): State<AppState>,
    Session(me): Session,
) -> Result<Json<SessionAnswer>> {
    let now = s.vault.clock().unix();
    let person = s.vault.people().whoami(&me)?;
    let window = person.step_up().filter(|w| w.until > now);
    Ok(Json(SessionAnswer {
        username: person.username.clone(),
        roles: person.roles.names(),
        step_up_until: window.map(|w| crate::clock::rfc3339_unix(w.until)),
        step_up_seconds_left: window.map_or(0, |w| w.until - now),
        step_up_seq: window.map(|w| w.seq),
    }))
}

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::crypto::SecretString;
use crate::error::Result;
use crate::extract::{ApiJson, Session};
use crate::identity::roster::RosterEntry;
use crate::identity::users::{NewUserInput, UserView};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    username: String,
    display_name: String,
    roles: Vec<String>,
    password: SecretString,
    totp: Option<String>,
    department: Option<String>,
}

pub async fn create(
    State(s): State<AppState>,
    Session(me): Session,
    ApiJson(b): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<Value>)> {
    let e = s
        .vault
        .people()
        .create_in(
            &me,
            NewUserInput {
                username: b.username,
                display_name: b.display_name,
                roles: b.roles,
                password: b.password,
            },
            b.department,
            b.totp.as_deref(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "username": e.user.username,
            "display_name": e.user.display_name,
            "roles": e.user.roles,
            "pending_roles": e.user.pending_roles,
            "department": e.user.department,
            "totp_uri": e.totp_uri.expose(),
            "totp_secret": e.totp_secret.expose(),
        })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    users: Vec<RosterEntry>,
    totp: Option<String>,
}

/// Onboarding in one go: every person of the roster, with one step-up; each enrolment (and
/// initial password) is in the answer, once.
pub async fn import(
    State(s): State<AppState>,
    Session(me): Session,
    ApiJson(b): ApiJson<ImportBody>,
) -> Result<(StatusCode, Json<Value>)> {
    let made = s
        .vault
        .people()
        .import(&me, b.users, b.totp.as_deref())
        .await?;
    let created: Vec<Value> = made
        .iter()
        .map(|m| {
            let e = &m.enrolment;
            json!({
                "username": e.user.username,
                "display_name": e.user.display_name,
                "roles": e.user.roles,
                "pending_roles": e.user.pending_roles,
                "department": e.user.department,
                "password": m.password.expose(),
                "totp_uri": e.totp_uri.expose(),
                "totp_secret": e.totp_secret.expose(),
            })
        })
        .collect();
    Ok((StatusCode::CREATED, Json(json!({ "created": created }))))
}

pub async fn list(State(s): State<AppState>, Session(me): Session) -> Result<Json<Vec<UserView>>> {
    Ok(Json(s.vault.people().list(&me).await?))
}

pub async fn get_one(
    State(s): State<AppState>,
    Session(me): Session,
    Path(username): Path<String>,
) -> Result<Json<UserView>> {
    Ok(Json(s.vault.people().get(&me, &username).await?))
}

pub async fn disable(
    State(s): State<AppState>,
    Session(me): Session,
    Path(username): Path<String>,
) -> Result<Json<UserView>> {
    Ok(Json(s.vault.people().disable(&me, &username).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    role: String,
    totp: Option<String>,
}

pub async fn grant_role(
    State(s): State<AppState>,
    Session(me): Session,
    Path(username): Path<String>,
    ApiJson(b): ApiJson<GrantBody>,
) -> Result<(StatusCode, Json<UserView>)> {
    let (view, pending) = s
        .vault
        .people()
        .grant_role(&me, &username, &b.role, b.totp.as_deref())
        .await?;
    let status = if pending {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    totp: Option<String>,
}

pub async fn confirm_role(
    State(s): State<AppState>,
    Session(me): Session,
    Path((username, role)): Path<(String, String)>,
    ApiJson(b): ApiJson<ConfirmBody>,
) -> Result<Json<UserView>> {
    Ok(Json(
        s.vault
            .people()
            .confirm_role(&me, &username, &role, b.totp.as_deref())
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepUp {
    totp: Option<String>,
}

pub async fn unlock(
    State(s): State<AppState>,
    Session(me): Session,
    Path(username): Path<String>,
    ApiJson(b): ApiJson<StepUp>,
) -> Result<Json<UserView>> {
    Ok(Json(
        s.vault
            .people()
            .unlock(&me, &username, b.totp.as_deref())
            .await?,
    ))
}

pub async fn enable(
    State(s): State<AppState>,
    Session(me): Session,
    Path(username): Path<String>,
    ApiJson(b): ApiJson<StepUp>,
) -> Result<Json<UserView>> {
    Ok(Json(
        s.vault
            .people()
            .enable(&me, &username, b.totp.as_deref())
            .await?,
    ))
}

pub async fn reset_totp(
    State(s): State<AppState>,
    Session(me): Session,
    Path(username): Path<String>,
    ApiJson(b): ApiJson<StepUp>,
) -> Result<Json<Value>> {
    let e = s
        .vault
        .people()
        .reset_totp(&me, &username, b.totp.as_deref())
        .await?;
    Ok(Json(json!({
        "username": e.user.username,
        "roles": e.user.roles,
        "pending_roles": e.user.pending_roles,
        "totp_uri": e.totp_uri.expose(),
        "totp_secret": e.totp_secret.expose(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    password: SecretString,
    totp: Option<String>,
}

pub async fn reset_password(
    State(s): State<AppState>,
    Session(me): Session,
    Path(username): Path<String>,
    ApiJson(b): ApiJson<ResetPassword>,
) -> Result<Json<UserView>> {
    Ok(Json(
        s.vault
            .people()
            .reset_password(&me, &username, b.password, b.totp.as_deref())
            .await?,
    ))
}

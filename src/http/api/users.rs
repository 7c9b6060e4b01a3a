use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::crypto::SecretString;
use crate::error::Result;
use crate::http::AppState;
use crate::http::extract::{ApiJson, Ctx, Session};
use crate::identity::Role;
use crate::identity::users::{NewUserInput, UserView};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    username: String,
    display_name: String,
    roles: Vec<String>,
    password: SecretString,
}

pub async fn create(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
    ApiJson(b): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<Value>)> {
    ctx.action("user.create", Some(&b.username));
    session.require(&[Role::Admin])?;
    let e = s
        .vault
        .create_user(NewUserInput {
            username: b.username,
            display_name: b.display_name,
            roles: b.roles,
            password: b.password,
        })
        .await?;
    ctx.detail("roles", e.user.roles.clone());
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "username": e.user.username,
            "display_name": e.user.display_name,
            "roles": e.user.roles,
            "totp_uri": e.totp_uri.expose(),
        })),
    ))
}

pub async fn list(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
) -> Result<Json<Vec<UserView>>> {
    ctx.action("user.list", None);
    session.require(&[Role::Admin])?;
    Ok(Json(
        s.vault
            .store
            .users_list()
            .await?
            .iter()
            .map(|u| u.view())
            .collect(),
    ))
}

pub async fn get_one(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
    Path(username): Path<String>,
) -> Result<Json<UserView>> {
    ctx.action("user.get", Some(&username));
    session.require(&[Role::Admin])?;
    Ok(Json(s.vault.user(&username).await?.view()))
}

pub async fn disable(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
    Path(username): Path<String>,
) -> Result<Json<UserView>> {
    ctx.action("user.disable", Some(&username));
    let me = session.require(&[Role::Admin])?;
    if me.username == username {
        return Err(crate::error::Error::NotPermitted(
            "an admin cannot disable their own account".into(),
        ));
    }
    Ok(Json(s.vault.disable_user(&username).await?))
}

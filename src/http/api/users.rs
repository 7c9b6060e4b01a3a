use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::crypto::SecretString;
use crate::error::Result;
use crate::http::AppState;
use crate::http::extract::{ApiJson, Session};
use crate::identity::users::{NewUserInput, UserView};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    username: String,
    display_name: String,
    roles: Vec<String>,
    password: SecretString,
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
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "username": e.user.username,
            "display_name": e.user.display_name,
            "roles": e.user.roles,
            "department": e.user.department,
            "totp_uri": e.totp_uri.expose(),
        })),
    ))
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

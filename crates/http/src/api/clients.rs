use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::Result;
use crate::extract::{ApiJson, Session};
use crate::identity::clients::ClientView;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    name: String,
    accounts: Vec<String>,
    totp: Option<String>,
}

pub async fn create(
    State(s): State<AppState>,
    Session(me): Session,
    ApiJson(b): ApiJson<CreateClient>,
) -> Result<(StatusCode, Json<Value>)> {
    let (view, key) = s
        .vault
        .clients()
        .create(&me, &b.name, &b.accounts, b.totp.as_deref())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"client_id": view.client_id, "name": view.name, "accounts": view.accounts, "client_key": key.expose(), "warning": view.warning}),
        ),
    ))
}

pub async fn list(
    State(s): State<AppState>,
    Session(me): Session,
) -> Result<Json<Vec<ClientView>>> {
    Ok(Json(s.vault.clients().list(&me).await?))
}

pub async fn delete(
    State(s): State<AppState>,
    Session(me): Session,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    s.vault.clients().revoke(&me, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

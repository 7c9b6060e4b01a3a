use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::Result;
use crate::http::AppState;
use crate::http::extract::{ApiJson, Ctx, Session};
use crate::identity::Role;
use crate::identity::clients::ClientView;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    name: String,
    accounts: Vec<String>,
}

pub async fn create(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
    ApiJson(b): ApiJson<CreateClient>,
) -> Result<(StatusCode, Json<Value>)> {
    ctx.action("client.create", Some(&b.name));
    let me = session.require(&[Role::Admin])?;
    let (view, key) = s
        .vault
        .create_client(&me.username, &b.name, &b.accounts)
        .await?;
    ctx.detail("client_id", view.client_id.clone());
    ctx.detail("accounts", view.accounts.clone());
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"client_id": view.client_id, "name": view.name, "accounts": view.accounts, "client_key": key.expose()}),
        ),
    ))
}

pub async fn list(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
) -> Result<Json<Vec<ClientView>>> {
    ctx.action("client.list", None);
    session.require(&[Role::Admin, Role::Auditor])?;
    Ok(Json(
        s.vault
            .store
            .clients_list()
            .await?
            .iter()
            .map(ClientView::from)
            .collect(),
    ))
}

pub async fn delete(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    ctx.action("client.revoke", Some(&id));
    session.require(&[Role::Admin])?;
    s.vault.revoke_client(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::Result;
use crate::extract::{ApiJson, ApiPath, Session};
use crate::identity::clients::ClientView;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    name: String,
    /// The account ids the tool may check out.
    accounts: Vec<String>,
    totp: Option<String>,
}

/// A new publishing tool; its key is shown this once.
#[derive(Serialize, ToSchema)]
pub struct NewClient {
    client_id: String,
    name: String,
    accounts: Vec<String>,
    /// `mvc_…`: the tool's bearer credential.
    client_key: String,
    /// The bound accounts whose policy does not admit this tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<String>,
}

#[utoipa::path(
    post,
    path = "/clients",
    tag = "people",
    security(("session" = []), ("session_cookie" = [])),
    request_body = CreateClient,
    responses((status = 201, description = "created; the key is shown once", body = NewClient)),
)]
pub async fn create(
    State(s): State<AppState>,
    Session(me): Session,
    ApiJson(b): ApiJson<CreateClient>,
) -> Result<(StatusCode, Json<NewClient>)> {
    let (view, key) = s
        .vault
        .clients()
        .create(&me, &b.name, &b.accounts, b.totp.as_deref())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewClient {
            client_id: view.client_id,
            name: view.name,
            accounts: view.accounts,
            client_key: key.expose().to_owned(),
            warning: view.warning,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/clients",
    tag = "people",
    security(("session" = []), ("session_cookie" = [])),
    responses((status = 200, description = "every publishing tool; never a key", body = Vec<ClientView>)),
)]
pub async fn list(
    State(s): State<AppState>,
    Session(me): Session,
) -> Result<Json<Vec<ClientView>>> {
    Ok(Json(s.vault.clients().list(&me).await?))
}

#[utoipa::path(
    delete,
    path = "/clients/{client_id}",
    tag = "people",
    security(("session" = []), ("session_cookie" = [])),
    params(("client_id" = String, Path, description = "the tool's id")),
    responses((status = 204, description = "revoked: the key stops working at once")),
)]
pub async fn delete(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode> {
    s.vault.clients().revoke(&me, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

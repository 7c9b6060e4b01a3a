use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::Result;
use crate::extract::{ApiJson, ApiPath, Session};
use crate::identity::clients::{CertView, ClientView};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    name: String,
    /// The account ids the tool may check out.
    accounts: Vec<String>,
    totp: Option<String>,
    /// The tool's client certificate, PEM (optional): once bound, the key works only over a TLS
    /// connection that presents this certificate.
    certificate: Option<String>,
}

/// A new publishing tool; its key is shown this once.
#[derive(Serialize, ToSchema)]
pub struct NewClient {
    client_id: String,
    name: String,
    accounts: Vec<String>,
    /// `mvc_…`: the tool's bearer credential.
    client_key: String,
    /// The client certificate the tool is bound to, if one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<CertView>,
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
        .create(
            &me,
            &b.name,
            &b.accounts,
            b.totp.as_deref(),
            b.certificate.as_deref(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewClient {
            client_id: view.client_id,
            name: view.name,
            accounts: view.accounts,
            client_key: key.expose().to_owned(),
            certificate: view.certificate,
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

/// Binds a tool to a client certificate, or unbinds it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetCertificate {
    /// The tool's client certificate, PEM; `null` unbinds (the key alone works again).
    certificate: Option<String>,
    totp: Option<String>,
}

#[utoipa::path(
    put,
    path = "/clients/{client_id}/certificate",
    tag = "people",
    security(("session" = []), ("session_cookie" = [])),
    params(("client_id" = String, Path, description = "the tool's id")),
    request_body = SetCertificate,
    responses((status = 200, description = "bound (or unbound); the tool as it is now", body = ClientView)),
)]
pub async fn set_certificate(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<SetCertificate>,
) -> Result<Json<ClientView>> {
    Ok(Json(
        s.vault
            .clients()
            .set_certificate(&me, &id, b.certificate.as_deref(), b.totp.as_deref())
            .await?,
    ))
}

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::accounts::CredentialInput;
use crate::accounts::service::{AccountView, CreateAccount, VersionView};
use crate::error::Result;
use crate::extract::{ApiJson, ApiPath, Session};

#[utoipa::path(
    post,
    path = "/accounts",
    tag = "accounts",
    security(("session" = []), ("session_cookie" = [])),
    request_body = CreateAccount,
    responses((status = 201, description = "added; never a secret in the answer", body = AccountView)),
)]
pub async fn create(
    State(s): State<AppState>,
    Session(me): Session,
    ApiJson(b): ApiJson<CreateAccount>,
) -> Result<(StatusCode, Json<AccountView>)> {
    let view = s.vault.accounts().create(&me, b).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(
    get,
    path = "/accounts",
    tag = "accounts",
    security(("session" = []), ("session_cookie" = [])),
    responses((status = 200, description = "every account; never a secret", body = Vec<AccountView>)),
)]
pub async fn list(
    State(s): State<AppState>,
    Session(me): Session,
) -> Result<Json<Vec<AccountView>>> {
    Ok(Json(s.vault.accounts().list(&me).await?))
}

#[utoipa::path(
    get,
    path = "/accounts/{id}",
    tag = "accounts",
    security(("session" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "the account id")),
    responses((status = 200, description = "the account; never a secret", body = AccountView)),
)]
pub async fn get_one(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AccountView>> {
    Ok(Json(s.vault.accounts().get(&me, &id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    credential: CredentialInput,
    reason: String,
    totp: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Rotated {
    credential_version: i64,
}

#[utoipa::path(
    post,
    path = "/accounts/{id}/rotate",
    tag = "accounts",
    security(("session" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "the account id")),
    request_body = RotateBody,
    responses((status = 200, description = "the new credential version is current", body = Rotated)),
)]
pub async fn rotate(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<RotateBody>,
) -> Result<Json<Rotated>> {
    let v = s
        .vault
        .accounts()
        .rotate(&me, &id, b.credential, &b.reason, b.totp.as_deref())
        .await?;
    Ok(Json(Rotated {
        credential_version: v,
    }))
}

#[utoipa::path(
    get,
    path = "/accounts/{id}/versions",
    tag = "accounts",
    security(("session" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "the account id")),
    responses((status = 200, description = "the credential versions, never their secrets", body = Vec<VersionView>)),
)]
pub async fn versions(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<VersionView>>> {
    Ok(Json(s.vault.accounts().versions(&me, &id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    version: i64,
    reason: String,
    totp: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RolledBack {
    /// The new current version, a copy of `restored_from`.
    credential_version: i64,
    restored_from: i64,
}

#[utoipa::path(
    post,
    path = "/accounts/{id}/rollback",
    tag = "accounts",
    security(("session" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "the account id")),
    request_body = RollbackBody,
    responses((status = 200, description = "the older secret is current again, as a new version", body = RolledBack)),
)]
pub async fn rollback(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<RollbackBody>,
) -> Result<Json<RolledBack>> {
    let v = s
        .vault
        .accounts()
        .rollback(&me, &id, b.version, &b.reason, b.totp.as_deref())
        .await?;
    Ok(Json(RolledBack {
        credential_version: v,
        restored_from: b.version,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FreezeBody {
    reason: String,
    totp: Option<String>,
}

#[utoipa::path(
    post,
    path = "/accounts/{id}/freeze",
    tag = "accounts",
    security(("session" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "the account id")),
    request_body = FreezeBody,
    responses((status = 200, description = "frozen; every live token of the account revoked", body = AccountView)),
)]
pub async fn freeze(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<FreezeBody>,
) -> Result<Json<AccountView>> {
    Ok(Json(
        s.vault
            .accounts()
            .set_frozen(&me, &id, true, &b.reason, b.totp.as_deref())
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/accounts/{id}/unfreeze",
    tag = "accounts",
    security(("session" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "the account id")),
    request_body = FreezeBody,
    responses((status = 200, description = "checkouts allowed again", body = AccountView)),
)]
pub async fn unfreeze(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<FreezeBody>,
) -> Result<Json<AccountView>> {
    Ok(Json(
        s.vault
            .accounts()
            .set_frozen(&me, &id, false, &b.reason, b.totp.as_deref())
            .await?,
    ))
}

/// `GET /policies`: what each loaded access policy covers.
#[utoipa::path(
    get,
    path = "/policies",
    tag = "accounts",
    security(("session" = []), ("session_cookie" = [])),
    responses((status = 200, description = "what each loaded access policy covers", body = crate::accounts::service::PolicyCoverage)),
)]
pub async fn policies(
    State(s): State<AppState>,
    Session(me): Session,
) -> Result<Json<crate::accounts::service::PolicyCoverage>> {
    Ok(Json(s.vault.accounts().policy_coverage(&me).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearQuotaBody {
    /// The admin's code, unless a step-up window is open.
    totp: Option<String>,
}

/// A WeChat API quota reset, and how many the AppID has left this month.
#[derive(Serialize, ToSchema)]
pub struct QuotaCleared {
    account: String,
    quota_resets_left: u32,
}

#[utoipa::path(
    post,
    path = "/accounts/{id}/clear-quota",
    tag = "accounts",
    security(("session" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "the account id (WeChat)")),
    request_body = ClearQuotaBody,
    responses((status = 200, description = "WeChat reset the AppID's API call counts (clear_quota/v2, with the AppSecret)", body = QuotaCleared)),
)]
pub async fn clear_quota(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<ClearQuotaBody>,
) -> Result<Json<QuotaCleared>> {
    let left = s
        .vault
        .accounts()
        .clear_quota(&me, &id, b.totp.as_deref())
        .await?;
    Ok(Json(QuotaCleared {
        account: id,
        quota_resets_left: left,
    }))
}

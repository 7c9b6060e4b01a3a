use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::accounts::CredentialInput;
use crate::accounts::service::{AccountView, CreateAccount, VersionView};
use crate::error::Result;
use crate::extract::{ApiJson, Session};

pub async fn create(
    State(s): State<AppState>,
    Session(me): Session,
    ApiJson(b): ApiJson<CreateAccount>,
) -> Result<(StatusCode, Json<AccountView>)> {
    let view = s.vault.accounts().create(&me, b).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn list(
    State(s): State<AppState>,
    Session(me): Session,
) -> Result<Json<Vec<AccountView>>> {
    Ok(Json(s.vault.accounts().list(&me).await?))
}

pub async fn get_one(
    State(s): State<AppState>,
    Session(me): Session,
    Path(id): Path<String>,
) -> Result<Json<AccountView>> {
    Ok(Json(s.vault.accounts().get(&me, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    credential: CredentialInput,
    reason: String,
    totp: Option<String>,
}

pub async fn rotate(
    State(s): State<AppState>,
    Session(me): Session,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<RotateBody>,
) -> Result<Json<Value>> {
    let v = s
        .vault
        .accounts()
        .rotate(&me, &id, b.credential, &b.reason, b.totp.as_deref())
        .await?;
    Ok(Json(json!({ "credential_version": v })))
}

pub async fn versions(
    State(s): State<AppState>,
    Session(me): Session,
    Path(id): Path<String>,
) -> Result<Json<Vec<VersionView>>> {
    Ok(Json(s.vault.accounts().versions(&me, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    version: i64,
    reason: String,
    totp: Option<String>,
}

pub async fn rollback(
    State(s): State<AppState>,
    Session(me): Session,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<RollbackBody>,
) -> Result<Json<Value>> {
    let v = s
        .vault
        .accounts()
        .rollback(&me, &id, b.version, &b.reason, b.totp.as_deref())
        .await?;
    Ok(Json(
        json!({ "credential_version": v, "restored_from": b.version }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeBody {
    reason: String,
    totp: Option<String>,
}

pub async fn freeze(
    State(s): State<AppState>,
    Session(me): Session,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<FreezeBody>,
) -> Result<Json<AccountView>> {
    Ok(Json(
        s.vault
            .accounts()
            .set_frozen(&me, &id, true, &b.reason, b.totp.as_deref())
            .await?,
    ))
}

pub async fn unfreeze(
    State(s): State<AppState>,
    Session(me): Session,
    Path(id): Path<String>,
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
pub async fn policies(
    State(s): State<AppState>,
    Session(me): Session,
) -> Result<Json<crate::accounts::service::PolicyCoverage>> {
    Ok(Json(s.vault.accounts().policy_coverage(&me).await?))
}

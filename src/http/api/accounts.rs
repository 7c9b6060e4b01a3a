use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::accounts::CredentialInput;
use crate::accounts::service::{AccountView, CreateAccount, VersionView};
use crate::error::Result;
use crate::http::AppState;
use crate::http::extract::{ApiJson, Ctx, Session};
use crate::identity::Role;

pub async fn create(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
    ApiJson(b): ApiJson<CreateAccount>,
) -> Result<(StatusCode, Json<AccountView>)> {
    ctx.action("account.create", Some(&b.id));
    let me = session.require(&[Role::Admin])?;
    let view = s.vault.create_account(me, b).await?;
    ctx.detail("platform", view.platform.clone());
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn list(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
) -> Result<Json<Vec<AccountView>>> {
    ctx.action("account.list", None);
    session.require(&[Role::Admin, Role::Auditor])?;
    Ok(Json(s.vault.accounts().await?))
}

pub async fn get_one(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
    Path(id): Path<String>,
) -> Result<Json<AccountView>> {
    ctx.action("account.get", Some(&id));
    session.require(&[Role::Admin, Role::Auditor])?;
    Ok(Json(s.vault.account(&id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    credential: CredentialInput,
    reason: String,
    totp: String,
}

pub async fn rotate(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<RotateBody>,
) -> Result<Json<Value>> {
    ctx.action("account.rotate", Some(&id));
    let me = session.require(&[Role::Admin])?;
    let v = s
        .vault
        .rotate(me, &id, b.credential, &b.reason, &b.totp)
        .await?;
    ctx.detail("credential_version", v);
    Ok(Json(json!({ "credential_version": v })))
}

pub async fn versions(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
    Path(id): Path<String>,
) -> Result<Json<Vec<VersionView>>> {
    ctx.action("account.versions", Some(&id));
    session.require(&[Role::Admin, Role::Auditor])?;
    Ok(Json(s.vault.versions(&id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    version: i64,
    reason: String,
    totp: String,
}

pub async fn rollback(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<RollbackBody>,
) -> Result<Json<Value>> {
    ctx.action("account.rollback", Some(&id));
    ctx.detail("to_version", b.version);
    let me = session.require(&[Role::Admin])?;
    let v = s
        .vault
        .rollback(me, &id, b.version, &b.reason, &b.totp)
        .await?;
    ctx.detail("credential_version", v);
    Ok(Json(
        json!({ "credential_version": v, "restored_from": b.version }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeBody {
    reason: String,
    totp: String,
}

pub async fn freeze(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<FreezeBody>,
) -> Result<Json<AccountView>> {
    ctx.action("account.freeze", Some(&id));
    let me = session.require(&[Role::Admin])?;
    Ok(Json(
        s.vault
            .set_frozen(me, &id, true, &b.reason, &b.totp)
            .await?,
    ))
}

pub async fn unfreeze(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<FreezeBody>,
) -> Result<Json<AccountView>> {
    ctx.action("account.unfreeze", Some(&id));
    let me = session.require(&[Role::Admin])?;
    Ok(Json(
        s.vault
            .set_frozen(me, &id, false, &b.reason, &b.totp)
            .await?,
    ))
}

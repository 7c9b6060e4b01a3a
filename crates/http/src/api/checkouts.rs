use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::checkout::{CheckoutRequest, CheckoutView, ListQuery, Outcome, TokenView};
use crate::clock::rfc3339_unix;
use crate::error::Result;
use crate::extract::{ApiJson, ApiQuery, Caller, ClientAuth, Session, TokenAuth};

pub async fn create(
    State(s): State<AppState>,
    ClientAuth(tool): ClientAuth,
    ApiJson(b): ApiJson<CheckoutRequest>,
) -> Result<(StatusCode, Json<Value>)> {
    Ok(match s.vault.checkouts().request(&tool, b).await? {
        Outcome::Issued { checkout, token } => (
            StatusCode::CREATED,
            Json(json!({
                "checkout_id": checkout.id,
                "status": "active",
                "token": token.expose(),
                "expires_at": checkout.expires_at.map(rfc3339_unix),
                "account": checkout.account_id,
                "operator": checkout.operator,
            })),
        ),
        Outcome::Pending { checkout } => (
            StatusCode::ACCEPTED,
            Json(json!({
                "checkout_id": checkout.id,
                "status": "pending_approval",
                "approvals_needed": checkout.approvals_needed,
            })),
        ),
    })
}

pub async fn get_one(
    State(s): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<CheckoutView>> {
    Ok(Json(s.vault.checkouts().get(&who, &id).await?))
}

pub async fn list(
    State(s): State<AppState>,
    Session(me): Session,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<CheckoutView>>> {
    Ok(Json(s.vault.checkouts().list(&me, &q).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    totp: String,
    comment: Option<String>,
}

pub async fn approve(
    State(s): State<AppState>,
    Session(me): Session,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<Decision>,
) -> Result<Json<CheckoutView>> {
    Ok(Json(
        s.vault
            .checkouts()
            .approve(&me, &id, &b.totp, b.comment.as_deref())
            .await?,
    ))
}

pub async fn deny(
    State(s): State<AppState>,
    Session(me): Session,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<Decision>,
) -> Result<Json<CheckoutView>> {
    Ok(Json(
        s.vault
            .checkouts()
            .deny(&me, &id, &b.totp, b.comment.as_deref())
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    operator: String,
    totp: String,
}

pub async fn claim(
    State(s): State<AppState>,
    ClientAuth(tool): ClientAuth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ClaimBody>,
) -> Result<(StatusCode, Json<Value>)> {
    let (row, token) = s
        .vault
        .checkouts()
        .claim(&tool, &id, &b.operator, &b.totp)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"checkout_id": row.id, "token": token.expose(), "expires_at": row.expires_at.map(rfc3339_unix)}),
        ),
    ))
}

pub async fn checkin(
    State(s): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    s.vault.checkouts().checkin(&who, &id).await?;
    Ok(Json(json!({"checkout_id": id, "status": "checked_in"})))
}

pub async fn introspect(
    State(s): State<AppState>,
    TokenAuth(token): TokenAuth,
) -> Result<Json<TokenView>> {
    Ok(Json(s.vault.checkouts().introspect(&token)?))
}

pub async fn publish(
    State(s): State<AppState>,
    TokenAuth(token): TokenAuth,
    Path(id): Path<String>,
) -> Result<Json<Vec<crate::publishing::posts::PostView>>> {
    Ok(Json(
        s.vault.publishing().publish_approved(&token, &id).await?,
    ))
}

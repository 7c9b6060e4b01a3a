use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::checkout::{CheckoutRequest, CheckoutView, Outcome};
use crate::clock::rfc3339_unix;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::extract::{ApiJson, ApiQuery, Caller, ClientAuth, Ctx, Session, TokenAuth};
use crate::identity::Role;

pub async fn create(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    ClientAuth(client): ClientAuth,
    ApiJson(b): ApiJson<CheckoutRequest>,
) -> Result<(StatusCode, Json<Value>)> {
    ctx.action("checkout.create", Some(&b.account));
    ctx.detail("operator", b.operator.clone());
    ctx.detail("level", b.level.clone());
    match s.vault.request_checkout(&client, b, ctx.peer).await? {
        Outcome::Issued { checkout, token } => {
            ctx.detail("checkout_id", checkout.id.clone());
            ctx.detail("status", "active");
            Ok((
                StatusCode::CREATED,
                Json(json!({
                    "checkout_id": checkout.id,
                    "status": "active",
                    "token": token.expose(),
                    "expires_at": checkout.expires_at.map(rfc3339_unix),
                    "account": checkout.account_id,
                    "operator": checkout.operator,
                })),
            ))
        }
        Outcome::Pending { checkout } => {
            ctx.detail("checkout_id", checkout.id.clone());
            ctx.detail("status", "pending_approval");
            Ok((
                StatusCode::ACCEPTED,
                Json(
                    json!({"checkout_id": checkout.id, "status": "pending_approval", "approvals_needed": checkout.approvals_needed}),
                ),
            ))
        }
    }
}

pub async fn get_one(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CheckoutView>> {
    ctx.action("checkout.get", Some(&id));
    let row = s.vault.checkout_row(&id).await?;
    let allowed = match &caller {
        Caller::Person(p) => {
            p.roles.any(&[Role::Admin, Role::Approver, Role::Auditor]) || p.username == row.operator
        }
        Caller::Client(c) => c.id == row.client_id,
        Caller::Token(t) => t.checkout_id == row.id,
    };
    if !allowed {
        // Same answer as a missing checkout: ids of other tools' checkouts are not confirmed.
        return Err(Error::NotFound(format!("checkout {id:?}")));
    }
    Ok(Json(s.vault.checkout_view(&row).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    account: Option<String>,
}

const STATUSES: &[&str] = &[
    "pending_approval",
    "approved",
    "denied",
    "active",
    "checked_in",
    "expired",
    "revoked",
];

pub async fn list(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<CheckoutView>>> {
    ctx.action("checkout.list", q.account.as_deref());
    session.require(&[Role::Admin, Role::Approver, Role::Auditor])?;
    if let Some(st) = &q.status
        && !STATUSES.contains(&st.as_str())
    {
        return Err(Error::invalid(
            "status",
            format!("status must be one of {}", STATUSES.join(", ")),
        ));
    }
    let rows = s
        .vault
        .store
        .checkouts_list(
            q.status.as_deref(),
            q.account.as_deref(),
            s.vault.clock.unix(),
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(s.vault.checkout_view(r).await?);
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    totp: String,
    comment: Option<String>,
}

fn comment(c: &Option<String>) -> Result<Option<&str>> {
    match c.as_deref().map(str::trim) {
        Some(c) if c.chars().count() > 500 => Err(Error::invalid(
            "comment",
            "comment must be at most 500 characters",
        )),
        Some("") | None => Ok(None),
        Some(c) => Ok(Some(c)),
    }
}

pub async fn approve(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<Decision>,
) -> Result<Json<CheckoutView>> {
    ctx.action("checkout.approve", Some(&id));
    let row = s
        .vault
        .approve_checkout(&session.0, &id, &b.totp, comment(&b.comment)?)
        .await?;
    ctx.detail("account", row.account_id.clone());
    ctx.detail("status", row.status.clone());
    Ok(Json(s.vault.checkout_view(&row).await?))
}

pub async fn deny(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<Decision>,
) -> Result<Json<CheckoutView>> {
    ctx.action("checkout.deny", Some(&id));
    let row = s
        .vault
        .deny_checkout(&session.0, &id, &b.totp, comment(&b.comment)?)
        .await?;
    ctx.detail("account", row.account_id.clone());
    ctx.detail("status", row.status.clone());
    Ok(Json(s.vault.checkout_view(&row).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    operator: String,
    totp: String,
}

pub async fn claim(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    ClientAuth(client): ClientAuth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ClaimBody>,
) -> Result<(StatusCode, Json<Value>)> {
    ctx.action("checkout.claim", Some(&id));
    let (row, token) = s
        .vault
        .claim_checkout(&client, &id, &b.operator, &b.totp, ctx.peer)
        .await?;
    ctx.detail("account", row.account_id.clone());
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"checkout_id": row.id, "token": token.expose(), "expires_at": row.expires_at.map(rfc3339_unix)}),
        ),
    ))
}

pub async fn checkin(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    ctx.action("checkout.checkin", Some(&id));
    let row = s.vault.checkout_row(&id).await?;
    let allowed = match &caller {
        Caller::Client(c) => c.id == row.client_id,
        Caller::Token(t) => t.checkout_id == row.id,
        Caller::Person(_) => false,
    };
    if !allowed {
        return Err(Error::NotPermitted(
            "only the checkout's token or its client key can check it in".into(),
        ));
    }
    s.vault.checkin(&id).await?;
    ctx.detail("account", row.account_id.clone());
    Ok(Json(json!({"checkout_id": id, "status": "checked_in"})))
}

pub async fn introspect(Ctx(ctx): Ctx, TokenAuth(g): TokenAuth) -> Json<Value> {
    ctx.action("token.introspect", Some(&g.account));
    Json(json!({
        "checkout_id": g.checkout_id,
        "account": g.account,
        "operator": g.operator,
        "client": g.client_id,
        "expires_at": rfc3339_unix(g.expires_at),
        "allowed_calls": g.allowed_calls,
        "content_sha256": g.content_sha256,
    }))
}

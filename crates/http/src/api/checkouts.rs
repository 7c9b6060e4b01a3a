use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::checkout::{
    BreakGlassView, CheckoutRequest, CheckoutView, ListQuery, Outcome, TokenView,
};
use crate::clock::rfc3339_unix;
use crate::error::Result;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller, ClientAuth, Session, TokenAuth};
use crate::publishing::posts::PostView;

/// A checkout that needed no approval: its token, shown this once.
#[derive(Serialize, ToSchema)]
pub struct Issued {
    checkout_id: String,
    #[schema(value_type = String, pattern = "^active$")]
    status: &'static str,
    /// `mvt_…`: the publishing token.
    token: String,
    expires_at: Option<String>,
    account: String,
    operator: String,
}

/// A checkout waiting for its approvals; the token is claimed after them.
#[derive(Serialize, ToSchema)]
pub struct Pending {
    checkout_id: String,
    #[schema(value_type = String, pattern = "^pending_approval$")]
    status: &'static str,
    approvals_needed: i64,
}

#[utoipa::path(
    post,
    path = "/checkouts",
    tag = "checkouts",
    security(("client" = [])),
    request_body = CheckoutRequest,
    responses(
        (status = 201, description = "issued at once", body = Issued),
        (status = 202, description = "waiting for approval", body = Pending),
    ),
)]
pub async fn create(
    State(s): State<AppState>,
    ClientAuth(tool): ClientAuth,
    ApiJson(b): ApiJson<CheckoutRequest>,
) -> Result<Response> {
    Ok(match s.vault.checkouts().request(&tool, b).await? {
        Outcome::Issued { checkout, token } => (
            StatusCode::CREATED,
            Json(Issued {
                checkout_id: checkout.id,
                status: "active",
                token: token.expose().to_owned(),
                expires_at: checkout.expires_at.map(rfc3339_unix),
                account: checkout.account_id,
                operator: checkout.operator,
            }),
        )
            .into_response(),
        Outcome::Pending { checkout } => (
            StatusCode::ACCEPTED,
            Json(Pending {
                checkout_id: checkout.id,
                status: "pending_approval",
                approvals_needed: checkout.approvals_needed,
            }),
        )
            .into_response(),
    })
}

#[utoipa::path(
    get,
    path = "/checkouts/{id}",
    tag = "checkouts",
    security(("session" = []), ("session_cookie" = []), ("client" = []), ("token" = [])),
    params(("id" = String, Path, description = "the checkout id")),
    responses((status = 200, description = "the checkout, with the post under review", body = CheckoutView)),
)]
pub async fn get_one(
    State(s): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CheckoutView>> {
    Ok(Json(s.vault.checkouts().get(&who, &id).await?))
}

#[utoipa::path(
    get,
    path = "/checkouts",
    tag = "checkouts",
    security(("session" = []), ("session_cookie" = [])),
    params(ListQuery),
    responses((status = 200, description = "the checkouts, without their posts", body = Vec<CheckoutView>)),
)]
pub async fn list(
    State(s): State<AppState>,
    Session(me): Session,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<CheckoutView>>> {
    Ok(Json(s.vault.checkouts().list(&me, &q).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The approver's own current code, always (a step-up window does not cover it).
    totp: String,
    comment: Option<String>,
}

#[utoipa::path(
    post,
    path = "/checkouts/{id}/approve",
    tag = "checkouts",
    security(("session" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "the checkout id")),
    request_body = Decision,
    responses((status = 200, description = "approved (the last approval makes it claimable)", body = CheckoutView)),
)]
pub async fn approve(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<Decision>,
) -> Result<Json<CheckoutView>> {
    Ok(Json(
        s.vault
            .checkouts()
            .approve(&me, &id, &b.totp, b.comment.as_deref())
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/checkouts/{id}/deny",
    tag = "checkouts",
    security(("session" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "the checkout id")),
    request_body = Decision,
    responses((status = 200, description = "denied", body = CheckoutView)),
)]
pub async fn deny(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<Decision>,
) -> Result<Json<CheckoutView>> {
    Ok(Json(
        s.vault
            .checkouts()
            .deny(&me, &id, &b.totp, b.comment.as_deref())
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassBody {
    /// Why no approver could be reached and why this cannot wait (10-1,000 characters); shown to
    /// every approver and kept in the audit entry and the post's record.
    reason: String,
    /// The admin's own current code, always (a step-up window does not cover it).
    totp: String,
}

#[utoipa::path(
    post,
    path = "/checkouts/{id}/break-glass",
    tag = "checkouts",
    security(("session" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "the checkout id")),
    request_body = BreakGlassBody,
    responses((status = 200, description = "released by this admin alone: approved, to be claimed as any approval; every approver is notified and a review is open", body = CheckoutView)),
)]
pub async fn break_glass(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<BreakGlassBody>,
) -> Result<Json<CheckoutView>> {
    Ok(Json(
        s.vault
            .checkouts()
            .break_glass(&me, &id, &b.totp, &b.reason)
            .await?,
    ))
}

/// What `GET /break-glass` may filter on.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReviewQuery {
    /// Only the reviews still open (default: the open ones and the latest closed ones).
    open: Option<bool>,
}

#[utoipa::path(
    get,
    path = "/break-glass",
    tag = "checkouts",
    security(("session" = []), ("session_cookie" = [])),
    params(ReviewQuery),
    responses((status = 200, description = "break-glass releases, newest first, with their reviews", body = Vec<BreakGlassView>)),
)]
pub async fn break_glass_list(
    State(s): State<AppState>,
    Session(me): Session,
    ApiQuery(q): ApiQuery<ReviewQuery>,
) -> Result<Json<Vec<BreakGlassView>>> {
    Ok(Json(
        s.vault
            .checkouts()
            .break_glass_reviews(&me, q.open.unwrap_or(false))
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    /// What the reviewer found (1-1,000 characters).
    note: String,
    /// The reviewer's own current code, always.
    totp: String,
}

#[utoipa::path(
    post,
    path = "/break-glass/{id}/close",
    tag = "checkouts",
    security(("session" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "the checkout id of the release")),
    request_body = ReviewBody,
    responses((status = 200, description = "the review closed by a second person", body = BreakGlassView)),
)]
pub async fn break_glass_close(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<ReviewBody>,
) -> Result<Json<BreakGlassView>> {
    Ok(Json(
        s.vault
            .checkouts()
            .close_break_glass_review(&me, &id, &b.totp, &b.note)
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    operator: String,
    /// The operator's fresh code.
    totp: String,
}

/// The token of an approved checkout, shown this once.
#[derive(Serialize, ToSchema)]
pub struct Claimed {
    checkout_id: String,
    /// `mvt_…`: the publishing token.
    token: String,
    expires_at: Option<String>,
}

#[utoipa::path(
    post,
    path = "/checkouts/{id}/claim",
    tag = "checkouts",
    security(("client" = [])),
    params(("id" = String, Path, description = "the checkout id")),
    request_body = ClaimBody,
    responses((status = 201, description = "the token, once, after approval", body = Claimed)),
)]
pub async fn claim(
    State(s): State<AppState>,
    ClientAuth(tool): ClientAuth,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<ClaimBody>,
) -> Result<(StatusCode, Json<Claimed>)> {
    let (row, token) = s
        .vault
        .checkouts()
        .claim(&tool, &id, &b.operator, &b.totp)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Claimed {
            checkout_id: row.id,
            token: token.expose().to_owned(),
            expires_at: row.expires_at.map(rfc3339_unix),
        }),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct CheckedIn {
    checkout_id: String,
    #[schema(value_type = String, pattern = "^checked_in$")]
    status: &'static str,
}

#[utoipa::path(
    post,
    path = "/checkouts/{id}/checkin",
    tag = "checkouts",
    security(("token" = []), ("client" = []), ("session" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "the checkout id")),
    responses((status = 200, description = "checked in: the token stopped working", body = CheckedIn)),
)]
pub async fn checkin(
    State(s): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CheckedIn>> {
    s.vault.checkouts().checkin(&who, &id).await?;
    Ok(Json(CheckedIn {
        checkout_id: id,
        status: "checked_in",
    }))
}

#[utoipa::path(
    get,
    path = "/token",
    tag = "publishing",
    security(("token" = [])),
    responses((status = 200, description = "what this token may do", body = TokenView)),
)]
pub async fn introspect(
    State(s): State<AppState>,
    TokenAuth(token): TokenAuth,
) -> Result<Response> {
    // Rendered here, while the token's grant it borrows from is still at hand.
    Ok(Json(s.vault.checkouts().introspect(&token)?).into_response())
}

#[utoipa::path(
    post,
    path = "/checkouts/{id}/publish",
    tag = "publishing",
    security(("token" = [])),
    params(("id" = String, Path, description = "the checkout id")),
    responses((status = 200, description = "the evidence record of each target's post", body = Vec<PostView>)),
)]
pub async fn publish(
    State(s): State<AppState>,
    TokenAuth(token): TokenAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<PostView>>> {
    Ok(Json(
        s.vault.publishing().publish_approved(&token, &id).await?,
    ))
}

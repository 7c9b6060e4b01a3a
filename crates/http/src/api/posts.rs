//! `/posts`: the evidence record of every post that went out through the vault.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::Result;
use crate::extract::{ApiPath, ApiQuery, Session};
use crate::publishing::posts::{PostQuery, PostView};

#[utoipa::path(
    get,
    path = "/posts",
    tag = "evidence",
    security(("session" = []), ("session_cookie" = [])),
    params(PostQuery),
    responses((status = 200, description = "evidence records, newest first", body = Vec<PostView>)),
)]
pub async fn list(
    State(s): State<AppState>,
    Session(me): Session,
    ApiQuery(q): ApiQuery<PostQuery>,
) -> Result<Json<Vec<PostView>>> {
    Ok(Json(s.vault.posts().list(&me, &q).await?))
}

#[utoipa::path(
    get,
    path = "/posts/{id}",
    tag = "evidence",
    security(("session" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "the post record id")),
    responses((status = 200, description = "one evidence record", body = PostView)),
)]
pub async fn get_one(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PostView>> {
    Ok(Json(s.vault.posts().get(&me, &id).await?))
}

/// One `mediavault.post.v1` packet per line: the record, its checkout and approvals, and the
/// approved content with its images.
#[utoipa::path(
    get,
    path = "/posts/export",
    tag = "evidence",
    security(("session" = []), ("session_cookie" = [])),
    params(PostQuery),
    responses((status = 200, description = "the packets as a file", body = String, content_type = "application/x-ndjson")),
)]
pub async fn export(
    State(s): State<AppState>,
    Session(me): Session,
    ApiQuery(q): ApiQuery<PostQuery>,
) -> Result<Response> {
    let body = s.vault.posts().export(&me, &q).await?;
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"posts.jsonl\""),
    );
    Ok(resp)
}

//! `/audit`: query, verify and export the audit log.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::audit::VerifyReport;
use crate::audit::export::Format;
use crate::error::Result;
use crate::extract::{ApiQuery, Session};
use crate::review::{Page, QueryParams};

#[utoipa::path(
    get,
    path = "/audit",
    tag = "audit",
    security(("session" = []), ("session_cookie" = [])),
    params(QueryParams),
    responses((status = 200, description = "one page of entries", body = Page)),
)]
pub async fn list(
    State(s): State<AppState>,
    Session(me): Session,
    ApiQuery(p): ApiQuery<QueryParams>,
) -> Result<Json<Page>> {
    Ok(Json(s.vault.audit_review().query(&me, &p).await?))
}

#[utoipa::path(
    get,
    path = "/audit/verify",
    tag = "audit",
    security(("session" = []), ("session_cookie" = [])),
    responses((status = 200, description = "the chain walked from its anchor", body = VerifyReport)),
)]
pub async fn verify(State(s): State<AppState>, Session(me): Session) -> Result<Json<VerifyReport>> {
    Ok(Json(s.vault.audit_review().verify(&me).await?))
}

/// Streamed; JSONL is the evidence format (every field as hashed), CSV a view for spreadsheets.
#[utoipa::path(
    get,
    path = "/audit/export",
    tag = "audit",
    security(("session" = []), ("session_cookie" = [])),
    params(QueryParams),
    responses((
        status = 200,
        description = "the entries as a file, with their chain fields",
        content(
            (String = "application/x-ndjson"),
            (String = "text/csv; charset=utf-8"),
        ),
    )),
)]
pub async fn export(
    State(s): State<AppState>,
    Session(me): Session,
    ApiQuery(p): ApiQuery<QueryParams>,
) -> Result<Response> {
    let out = s.vault.audit_review().export(&me, &p).await?;
    let ext = if out.format == Format::Csv {
        "csv"
    } else {
        "jsonl"
    };
    let mut resp = Body::from_stream(out.body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(out.format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"audit.{ext}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

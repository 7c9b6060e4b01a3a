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

pub async fn list(
    State(s): State<AppState>,
    Session(me): Session,
    ApiQuery(p): ApiQuery<QueryParams>,
) -> Result<Json<Page>> {
    Ok(Json(s.vault.audit_review().query(&me, &p).await?))
}

pub async fn verify(State(s): State<AppState>, Session(me): Session) -> Result<Json<VerifyReport>> {
    Ok(Json(s.vault.audit_review().verify(&me).await?))
}

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

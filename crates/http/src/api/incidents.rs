//! `/playbooks` and `/incidents`: parse, call one incidents-service method, render.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::AppState;
use crate::error::Result;
use crate::extract::{ApiJson, ApiQuery, Session};
use crate::incidents::report::ReportFormat;
use crate::incidents::{CloseOutcome, IncidentQuery, IncidentSummary, IncidentView, OpenIncident};
use crate::policy::Playbook;

pub async fn playbooks(
    State(s): State<AppState>,
    Session(me): Session,
) -> Result<Json<Vec<Playbook>>> {
    Ok(Json(s.vault.incidents().playbooks(&me)?))
}

pub async fn open(
    State(s): State<AppState>,
    Session(me): Session,
    ApiJson(b): ApiJson<OpenIncident>,
) -> Result<(StatusCode, Json<IncidentView>)> {
    let view = s.vault.incidents().open(&me, b).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn list(
    State(s): State<AppState>,
    Session(me): Session,
    ApiQuery(q): ApiQuery<IncidentQuery>,
) -> Result<Json<Vec<IncidentSummary>>> {
    Ok(Json(s.vault.incidents().list(&me, &q).await?))
}

pub async fn get_one(
    State(s): State<AppState>,
    Session(me): Session,
    Path(id): Path<String>,
) -> Result<Json<IncidentView>> {
    Ok(Json(s.vault.incidents().get(&me, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    #[serde(default)]
    note: String,
    totp: Option<String>,
}

pub async fn complete_step(
    State(s): State<AppState>,
    Session(me): Session,
    Path((id, n)): Path<(String, i64)>,
    ApiJson(b): ApiJson<CompleteBody>,
) -> Result<Json<IncidentView>> {
    Ok(Json(
        s.vault
            .incidents()
            .complete_step(&me, &id, n, &b.note, b.totp.as_deref())
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseBody {
    review: String,
    totp: String,
}

pub async fn close(
    State(s): State<AppState>,
    Session(me): Session,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<CloseBody>,
) -> Result<(StatusCode, Json<CloseOutcome>)> {
    let out = s
        .vault
        .incidents()
        .close(&me, &id, &b.review, &b.totp)
        .await?;
    let status = if out.closed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(out)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    format: Option<String>,
}

pub async fn report(
    State(s): State<AppState>,
    Session(me): Session,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response> {
    let format = ReportFormat::parse(q.format.as_deref())?;
    let out = s.vault.incidents().report(&me, &id, format).await?;
    let mut resp = out.body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(out.content_type),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", out.file_name)) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

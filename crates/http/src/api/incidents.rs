//! `/playbooks` and `/incidents`: parse, call one incidents-service method, render.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::Result;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Session};
use crate::incidents::report::ReportFormat;
use crate::incidents::{CloseOutcome, IncidentQuery, IncidentSummary, IncidentView, OpenIncident};
use crate::policy::Playbook;

#[utoipa::path(
    get,
    path = "/playbooks",
    tag = "incidents",
    security(("session" = []), ("session_cookie" = [])),
    responses((status = 200, description = "the loaded playbooks", body = Vec<Playbook>)),
)]
pub async fn playbooks(
    State(s): State<AppState>,
    Session(me): Session,
) -> Result<Json<Vec<Playbook>>> {
    Ok(Json(s.vault.incidents().playbooks(&me)?))
}

#[utoipa::path(
    post,
    path = "/incidents",
    tag = "incidents",
    security(("session" = []), ("session_cookie" = [])),
    request_body = OpenIncident,
    responses((status = 201, description = "opened; the automated steps have run", body = IncidentView)),
)]
pub async fn open(
    State(s): State<AppState>,
    Session(me): Session,
    ApiJson(b): ApiJson<OpenIncident>,
) -> Result<(StatusCode, Json<IncidentView>)> {
    let view = s.vault.incidents().open(&me, b).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(
    get,
    path = "/incidents",
    tag = "incidents",
    security(("session" = []), ("session_cookie" = [])),
    params(IncidentQuery),
    responses((status = 200, description = "the incidents", body = Vec<IncidentSummary>)),
)]
pub async fn list(
    State(s): State<AppState>,
    Session(me): Session,
    ApiQuery(q): ApiQuery<IncidentQuery>,
) -> Result<Json<Vec<IncidentSummary>>> {
    Ok(Json(s.vault.incidents().list(&me, &q).await?))
}

#[utoipa::path(
    get,
    path = "/incidents/{id}",
    tag = "incidents",
    security(("session" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "the incident id")),
    responses((status = 200, description = "the incident with its steps, timeline, signatures and evidence", body = IncidentView)),
)]
pub async fn get_one(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<IncidentView>> {
    Ok(Json(s.vault.incidents().get(&me, &id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    #[serde(default)]
    note: String,
    /// The owner's code, for a step that deletes posts.
    totp: Option<String>,
}

#[utoipa::path(
    post,
    path = "/incidents/{id}/steps/{n}/complete",
    tag = "incidents",
    security(("session" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "the incident id"), ("n" = i64, Path, description = "the step number")),
    request_body = CompleteBody,
    responses((status = 200, description = "the step is done", body = IncidentView)),
)]
pub async fn complete_step(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath((id, n)): ApiPath<(String, i64)>,
    ApiJson(b): ApiJson<CompleteBody>,
) -> Result<Json<IncidentView>> {
    Ok(Json(
        s.vault
            .incidents()
            .complete_step(&me, &id, n, &b.note, b.totp.as_deref())
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseBody {
    review: String,
    totp: String,
}

#[utoipa::path(
    post,
    path = "/incidents/{id}/close",
    tag = "incidents",
    security(("session" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "the incident id")),
    request_body = CloseBody,
    responses((status = 200, description = "a second, different person signed: closed", body = CloseOutcome), (status = 202, description = "the first signature: waiting for a second person", body = CloseOutcome)),
)]
pub async fn close(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(id): ApiPath<String>,
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// `md` (the default) or `json`.
    format: Option<String>,
}

#[utoipa::path(
    get,
    path = "/incidents/{id}/report",
    tag = "incidents",
    security(("session" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "the incident id"), ReportQuery),
    responses((
        status = 200,
        description = "the report as a file: timeline, steps, evidence digests, the sealed checkpoint, the audit entries",
        content((String = "text/markdown; charset=utf-8"), (Value = "application/json")),
    )),
)]
pub async fn report(
    State(s): State<AppState>,
    Session(me): Session,
    ApiPath(id): ApiPath<String>,
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

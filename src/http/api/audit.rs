//! `/audit`: query, verify and export the audit log (auditor; admin may read).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::audit::export::{self, Format};
use crate::audit::query::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::audit::{EntryView, NewEntry, Outcome, parse_time_ms, verify_store};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::context::ActorKind;
use crate::http::extract::{ApiQuery, Ctx, Session};
use crate::identity::Role;
use crate::store::audit::AuditFilter;

const READERS: &[Role] = &[Role::Auditor, Role::Admin];

/// Everything arrives as text so that a bad value gets a message naming its parameter.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct QueryParams {
    actor: Option<String>,
    account: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
    after_seq: Option<String>,
    limit: Option<String>,
    format: Option<String>,
}

fn invalid(field: &str, detail: String) -> Error {
    Error::Invalid {
        field: Some(field.to_owned()),
        detail,
    }
}

fn time_param(field: &str, v: Option<&str>) -> Result<Option<i64>> {
    v.map(|s| {
        parse_time_ms(s).ok_or_else(|| {
            invalid(
                field,
                format!("{field} must be an RFC 3339 time like 2025-01-31T00:00:00Z"),
            )
        })
    })
    .transpose()
}

fn filter_of(p: &QueryParams) -> Result<AuditFilter> {
    if let Some(o) = &p.outcome
        && Outcome::parse(o).is_none()
    {
        return Err(invalid(
            "outcome",
            "outcome must be success, denied, error or rate_limited".into(),
        ));
    }
    let after_seq = match &p.after_seq {
        None => 0,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| invalid("after_seq", "after_seq must be a number ≥ 0".into()))?,
    };
    let limit = match &p.limit {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                invalid(
                    "limit",
                    format!("limit must be a number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let empty_none = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    Ok(AuditFilter {
        actor: empty_none(&p.actor),
        target: empty_none(&p.account),
        action: empty_none(&p.action),
        outcome: empty_none(&p.outcome),
        since_ms: time_param("since", p.since.as_deref())?,
        until_ms: time_param("until", p.until.as_deref())?,
        after_seq,
        limit,
    })
}

pub async fn list(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
    ApiQuery(p): ApiQuery<QueryParams>,
) -> Result<Json<Value>> {
    ctx.action("audit.query", Some("audit_log"));
    session.require(READERS)?;
    if p.format.is_some() {
        return Err(invalid(
            "format",
            "format is a parameter of /audit/export".into(),
        ));
    }
    let filter = filter_of(&p)?;
    let rows = s
        .vault
        .store
        .audit_query(&filter)
        .await
        .map_err(Error::internal)?;
    let next = if rows.len() as i64 == filter.limit {
        rows.last().map(|r| r.seq)
    } else {
        None
    };
    let entries: Vec<EntryView> = rows.iter().map(EntryView::from).collect();
    ctx.detail("returned", entries.len());
    Ok(Json(json!({ "entries": entries, "next_after_seq": next })))
}

pub async fn verify(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
) -> Result<Json<Value>> {
    ctx.action("audit.verify", Some("audit_log"));
    session.require(READERS)?;
    let report = verify_store(&s.vault.store, &s.vault.keys.mac().audit)
        .await
        .map_err(Error::internal)?;
    ctx.detail("ok", report.ok);
    ctx.detail("head_seq", report.head_seq);
    if let Some(bad) = report.first_bad_seq {
        tracing::error!(first_bad_seq = bad, problem = ?report.problem, "audit chain broken");
        ctx.detail("first_bad_seq", bad);
    }
    Ok(Json(
        serde_json::to_value(&report).map_err(Error::internal)?,
    ))
}

pub async fn export(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    session: Session,
    ApiQuery(p): ApiQuery<QueryParams>,
) -> Result<Response> {
    ctx.action("audit.export", Some("audit_log"));
    let person = session.require(READERS)?;
    let format = match p.format.as_deref() {
        None | Some("jsonl") => Format::Jsonl,
        Some("csv") => Format::Csv,
        Some(_) => return Err(invalid("format", "format must be jsonl or csv".into())),
    };
    let filter = AuditFilter {
        since_ms: time_param("since", p.since.as_deref())?,
        until_ms: time_param("until", p.until.as_deref())?,
        ..AuditFilter::default()
    };
    // The body is streamed after this request's own entry is committed; it ends at the head as it
    // is now, and a second entry records what was sent once the stream is done.
    let through_seq = s
        .vault
        .store
        .audit_head()
        .await
        .map_err(Error::internal)?
        .seq;
    let ext = if format == Format::Csv {
        "csv"
    } else {
        "jsonl"
    };
    ctx.detail("format", ext);
    ctx.detail("through_seq", through_seq);
    let mut sent = NewEntry::system("audit.export.sent", "audit_log", Outcome::Success)
        .detail("format", ext)
        .detail("through_seq", through_seq);
    sent.actor_kind = ActorKind::User;
    sent.actor_id = person.username.clone();
    sent.source_ip = ctx.peer.to_string();
    sent.request_id = ctx.request_id.clone();
    let pages = export::Pages::new(s.vault.store.clone(), filter, through_seq);
    let body = Body::from_stream(export::stream(pages, format, s.vault.audit.clone(), sent));
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"audit.{ext}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

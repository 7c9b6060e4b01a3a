//! The console's unseal page (`/console/unseal`): a custodian types their name and pastes their
//! share. Served while the vault is sealed; it calls the same service as `POST /api/v1/unseal`.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Form, Router};
use maud::{Markup, html};
use serde::Deserialize;

use super::Lang;
use super::layout::bare;
use crate::api::unseal::{Peer, Seal};
use crate::crypto::SecretString;
use crate::problem::{code_of, status_of};
use crate::vault::seal::{Submitter, UnsealStatus};

/// The page, its form and the assets it needs (nothing else of the console answers sealed).
pub fn routes() -> Router {
    Router::new()
        .route("/unseal", get(page).post(submit))
        .route("/assets/console.css", get(super::css))
        .route("/assets/console.js", get(super::js))
        .layer(axum::middleware::from_fn(super::security_headers))
}

#[derive(Deserialize)]
pub struct UnsealForm {
    custodian: String,
    share: SecretString,
}

async fn page(seal: Seal, lang: Lang) -> Response {
    let Some(Extension(u)) = seal else {
        return Redirect::to("/console").into_response();
    };
    match u.status().await {
        Ok(s) if !s.sealed => Redirect::to("/console").into_response(),
        Ok(s) => render(lang, StatusCode::OK, &s, None),
        Err(e) => (status_of(&e), e.to_string()).into_response(),
    }
}

async fn submit(seal: Seal, lang: Lang, Peer(peer): Peer, Form(f): Form<UnsealForm>) -> Response {
    let Some(Extension(u)) = seal else {
        return Redirect::to("/console").into_response();
    };
    let by = Submitter {
        custodian: f.custodian.trim().to_owned(),
        source_ip: peer.map(|p| p.ip().to_string()).unwrap_or_default(),
        request_id: crate::context::current_request_id().unwrap_or_default(),
    };
    match u.submit(by, f.share).await {
        Ok(s) if !s.sealed => Redirect::to("/console").into_response(),
        Ok(s) => render(lang, StatusCode::OK, &s, Some(Ok(()))),
        Err(e) => {
            let status = status_of(&e);
            let now = u.status().await;
            match now {
                Ok(s) => render(lang, status, &s, Some(Err((code_of(&e), e.to_string())))),
                Err(_) => (status, e.to_string()).into_response(),
            }
        }
    }
}

fn render(
    l: Lang,
    status: StatusCode,
    s: &UnsealStatus,
    result: Option<Result<(), (&'static str, String)>>,
) -> Response {
    let body: Markup = html! {
        p id="sealed" data-threshold=(s.threshold) data-held=(s.submitted.len()) {
            (l.t("保管库已封存：需要 ", "The vault is sealed: "))
            (s.threshold)
            (l.t(" 位保管人提交各自的密钥份额才能解封。", " custodians must submit their key shares to unseal it."))
            " " (l.t("已提交：", "Submitted: ")) (s.submitted.len()) " / " (s.threshold)
            @if !s.submitted.is_empty() {
                " (" (s.submitted.join(", ")) ")"
            }
        }
        @match &result {
            Some(Ok(())) => p.notice id="accepted" { (l.t("份额已接受。", "Share accepted.")) },
            Some(Err((code, detail))) => div.error id="error" data-code=(code) {
                p.todo { (l.t("份额未被接受。", "The share was not accepted.")) }
                p.detail { (detail) }
            },
            None => {},
        }
        form method="post" action="/console/unseal" {
            label { (l.t("保管人", "Custodian")) input name="custodian" required autocomplete="username"; }
            label { (l.t("密钥份额", "Key share")) input name="share" type="password" required autocomplete="off"; }
            button type="submit" { (l.t("提交份额", "Submit share")) }
        }
        p.small { (l.t("提交记录（保管人、时间、来源，不含份额）在解封后写入审计日志。", "Who submitted (custodian, time, address; never the share) enters the audit log when the vault opens.")) }
    };
    (
        status,
        Html(bare(
            l,
            "/console/unseal",
            l.t("解封保管库", "Unseal the vault"),
            body,
        )),
    )
        .into_response()
}

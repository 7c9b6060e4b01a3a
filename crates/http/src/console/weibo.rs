//! Re-authorising a Weibo account (重新授权): the OAuth code exchange, done in the console by an
//! admin. The account page's button sends the admin's browser to Weibo's authorisation page;
//! Weibo sends it back to `/console/weibo/callback` with a code. The session cookie is
//! `SameSite=Strict`, so that first hop back from weibo.com carries no session: the callback is a
//! plain page holding nothing but a link onward, and the admin's click makes a same-site request
//! (`/console/weibo/confirm`) that does, where the new token is stored with the admin's code.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::i18n::{Lang, url_encode};
use super::layout::{bare, page};
use super::{AppState, ConsoleForm, Fail, Me, OrFail, done};
use crate::error::Error;

/// Where Weibo sends the admin back: this console's own callback, on the host the admin's browser
/// reached it by (the URL registered as the app's 授权回调页 on open.weibo.com must match).
fn redirect_uri(s: &AppState, headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let plausible = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !plausible {
        return None;
    }
    let scheme = if s.vault.config.tls.plain_http {
        "http"
    } else {
        "https"
    };
    Some(format!("{scheme}://{host}/console/weibo/callback"))
}

#[derive(Deserialize)]
pub struct StartForm {
    #[serde(default)]
    csrf: String,
}

/// The account page's 重新授权 button: off to Weibo's authorisation page.
pub async fn start(
    State(s): State<AppState>,
    me: Me,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
    ConsoleForm(f): ConsoleForm<StartForm>,
) -> Result<Response, Fail> {
    me.check_csrf(&s, &f.csrf)?;
    let uri = redirect_uri(&s, &headers)
        .ok_or_else(|| me.fail(Error::invalid("host", "the request names no usable host")))?;
    let to = s
        .vault
        .accounts()
        .weibo_authorize(&me.actor, &id, &uri)
        .await
        .or_fail(&me)?;
    Ok(Redirect::to(&to).into_response())
}

#[derive(Deserialize)]
pub struct Back {
    code: Option<String>,
    state: Option<String>,
    /// Weibo's own refusal (the owner declined).
    error: Option<String>,
}

/// Weibo's redirect back (no session: see the module comment). Shows a link onward, or Weibo's
/// refusal; it stores nothing and shows nothing of the vault.
pub async fn callback(lang: Lang, Query(q): Query<Back>) -> Response {
    let l = lang;
    let body = match (&q.code, &q.state, &q.error) {
        (Some(code), Some(state), None) if code.len() <= 256 && state.len() <= 128 => {
            let next = format!(
                "/console/weibo/confirm?code={}&state={}",
                url_encode(code),
                url_encode(state)
            );
            html! {
                p { (l.t("微博已返回授权码。请继续，在保管库中确认并保存新的令牌。", "Weibo sent back an authorisation code. Continue to confirm and store the new token in the vault.")) }
                p { a.button #weibo-continue href=(next) { (l.t("继续", "Continue")) } }
            }
        }
        _ => html! {
            p.warn #weibo-refused { (l.t("微博没有授权（或链接不完整）。请回到账号页面重新开始。", "Weibo did not grant access (or the link is incomplete). Start again from the account page.")) }
            p { a href="/console/admin/accounts" { (l.t("返回账号列表", "Back to the accounts")) } }
        },
    };
    let mut resp = Html(bare(
        l,
        "/console/weibo/callback",
        l.t("微博重新授权", "Weibo re-authorisation"),
        body,
    ))
    .into_response();
    // The code is in this page's URL: no one else should keep it.
    resp.headers_mut().insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    resp
}

#[derive(Deserialize)]
pub struct Confirm {
    code: String,
    state: String,
}

/// The admin's own confirmation, with their session: which account, and their code.
pub async fn confirm_page(
    State(s): State<AppState>,
    me: Me,
    Query(q): Query<Confirm>,
) -> Result<Response, Fail> {
    let l = me.lang;
    let account = s
        .vault
        .accounts()
        .weibo_grant_account(&me.actor, &q.state)
        .or_fail(&me)?;
    let body = html! {
        section.card #weibo-confirm {
            p { (l.t("保存账号 ", "Store the new Weibo access token of account ")) b #weibo-account { (account) }
                (l.t(" 的新微博令牌（作为一次凭据更换，旧版本保留在历史中）。", " (as a credential rotation; the old version stays in the history).")) }
            form method="post" action="/console/weibo/confirm" autocomplete="off" {
                input type="hidden" name="csrf" value=(me.csrf);
                input type="hidden" name="code" value=(q.code);
                input type="hidden" name="state" value=(q.state);
                (me.totp_field(&s, "weibo-totp"))
                button #weibo-store type="submit" { (l.t("保存新令牌", "Store the new token")) }
            }
        }
    };
    Ok(page(
        &s,
        &me,
        l.t("确认微博重新授权", "Confirm the Weibo re-authorisation"),
        body,
    ))
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    csrf: String,
    code: String,
    state: String,
    #[serde(default)]
    totp: String,
}

pub async fn confirm(
    State(s): State<AppState>,
    me: Me,
    ConsoleForm(f): ConsoleForm<ConfirmForm>,
) -> Result<Response, Fail> {
    me.check_csrf(&s, &f.csrf)?;
    let accounts = s.vault.accounts();
    let account = accounts
        .weibo_grant_account(&me.actor, &f.state)
        .or_fail(&me)?;
    accounts
        .weibo_reauthorize(&me.actor, &f.state, &f.code, Some(f.totp.trim()))
        .await
        .or_fail(&me)?;
    Ok(done(
        &format!("/console/admin/accounts/{account}"),
        "reauthorized",
    ))
}

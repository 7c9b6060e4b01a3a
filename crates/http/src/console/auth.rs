//! Sign-in with password and TOTP, sign-out. The login form carries its own CSRF token (a random
//! value in a `__Host-` cookie and in the form) because there is no session yet.

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::layout::bare;
use super::{AppState, ConsoleForm, Fail, Lang, Me, cookie, safe_next};
use crate::crypto::SecretString;
use crate::error::{Error, TotpRefusal};
use crate::extract::{Anonymous, SESSION_COOKIE};
use crate::problem::{ErrorCode, code_of};

const LOGIN_COOKIE: &str = "__Host-mv_login";

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    next: Option<String>,
    expired: Option<String>,
    bye: Option<String>,
}

fn new_login_nonce() -> String {
    let mut b = [0u8; 16];
    if crate::crypto::random_bytes(&mut b).is_err() {
        return String::new();
    }
    hex::encode(b)
}

/// Where the sign-in form posts: `/console/login`, with the page to go on to in the address as
/// well as in the form. The login tier refuses an attempt before its body is read, and the form it
/// shows again (`refused_as_page`) can only learn `next` from the address.
fn login_action(next: &str) -> String {
    if next == "/console" {
        return "/console/login".to_owned();
    }
    let encoded: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
    format!("/console/login?next={encoded}")
}

fn login_form(l: Lang, next: &str, message: Option<&str>) -> Response {
    let nonce = new_login_nonce();
    let body = html! {
        @if let Some(m) = message {
            p.error #login-error role="alert" { (m) }
        }
        form.card method="post" action=(login_action(next)) autocomplete="off" {
            input type="hidden" name="csrf" value=(nonce);
            input type="hidden" name="next" value=(next);
            label { (l.t("用户名", "Username"))
                input #username name="username" required autocomplete="username" autofocus; }
            label { (l.t("密码", "Password"))
                input #password type="password" name="password" required autocomplete="current-password"; }
            label { (l.t("动态验证码（6 位）", "TOTP code (6 digits)"))
                input #totp name="totp" required inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code"; }
            button #login type="submit" { (l.t("登录", "Sign in")) }
        }
        p.small { (l.t(
            "请使用本人账户登录。连续多次失败会暂时锁定账户。",
            "Sign in with your own account. Repeated failures lock the account for a while."
        )) }
    };
    let mut resp = Html(bare(l, "/console/login", l.t("登录", "Sign in"), body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{LOGIN_COOKIE}={nonce}; Secure; HttpOnly; SameSite=Strict; Path=/"
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub async fn login_page(lang: Lang, Query(q): Query<LoginQuery>) -> Response {
    let msg = if q.expired.is_some() {
        Some(lang.t(
            "会话已因闲置超时结束，请重新登录。",
            "Your session ended after being idle; sign in again.",
        ))
    } else if q.bye.is_some() {
        Some(lang.t("您已安全退出。", "You are signed out."))
    } else {
        None
    };
    login_form(lang, safe_next(q.next.as_deref()), msg)
}

/// The login tier's refusal (a 429 from the limiter inside) as a console page: the sign-in form
/// again with how long to wait, or the error page for a step-up; the status, `Retry-After` and
/// the code the audit records stay the limiter's.
pub async fn refused_as_page(lang: Lang, req: Request, next: Next) -> Response {
    let next_page = Query::<LoginQuery>::try_from_uri(req.uri())
        .ok()
        .and_then(|Query(q)| q.next);
    let sign_in = req.uri().path().ends_with("/login");
    let resp = next.run(req).await;
    if resp.status() != StatusCode::TOO_MANY_REQUESTS {
        return resp;
    }
    let retry_after = resp.headers().get(header::RETRY_AFTER).cloned();
    let seconds = retry_after
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1);
    let refusal = Error::RateLimited {
        retry_after: seconds,
    };
    let code = code_of(&refusal);
    let mut page = if sign_in {
        let msg = match lang {
            Lang::Zh => format!("尝试过于频繁，请在 {seconds} 秒后再试。"),
            Lang::En => format!("Too many attempts; try again in {seconds} seconds."),
        };
        login_form(lang, safe_next(next_page.as_deref()), Some(&msg))
    } else {
        Fail::new(lang, refusal).into_response()
    };
    *page.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    if let Some(v) = retry_after {
        page.headers_mut().insert(header::RETRY_AFTER, v);
    }
    page.extensions_mut().insert(ErrorCode(code));
    page
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    next: Option<String>,
    username: String,
    password: SecretString,
    totp: String,
}

pub async fn login(
    State(s): State<AppState>,
    lang: Lang,
    headers: HeaderMap,
    Anonymous(actor): Anonymous,
    ConsoleForm(f): ConsoleForm<LoginForm>,
) -> Result<Response, Fail> {
    let nonce_ok = cookie(&headers, LOGIN_COOKIE)
        .is_some_and(|c| !c.is_empty() && crate::crypto::ct_eq(c.as_bytes(), f.csrf.as_bytes()));
    let next = safe_next(f.next.as_deref()).to_owned();
    if !nonce_ok {
        actor.action("console.csrf", Some("/console/login"));
        return Err(Fail {
            lang,
            kind: super::FailKind::Csrf,
        });
    }
    match s
        .vault
        .people()
        .login(&actor, &f.username, f.password, f.totp.trim())
        .await
    {
        Ok((_, session)) => {
            let mut resp = Redirect::to(&next).into_response();
            let h = resp.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{SESSION_COOKIE}={}; Secure; HttpOnly; SameSite=Strict; Path=/",
                session.token.expose()
            )) {
                h.append(header::SET_COOKIE, v);
            }
            h.append(
                header::SET_COOKIE,
                HeaderValue::from_static(
                    "__Host-mv_login=; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
                ),
            );
            Ok(resp)
        }
        Err(e) => {
            let msg = match &e {
                Error::Unauthenticated => lang.t(
                    "用户名、密码或动态验证码不正确。请核对后重试。",
                    "The username, password or TOTP code is wrong. Check them and try again.",
                ),
                Error::TotpInvalid(TotpRefusal::Replayed) => lang.t(
                    "该动态验证码已使用过。请等待下一个验证码后重试。",
                    "That TOTP code was already used. Wait for the next code and try again.",
                ),
                Error::UserLocked { .. } => lang.t(
                    "账户因多次失败被暂时锁定。请稍后再试，或请管理员协助。",
                    "The account is locked after repeated failures. Try again later or ask an administrator.",
                ),
                Error::RateLimited { .. } => lang.t(
                    "尝试过于频繁，请稍后再试。",
                    "Too many attempts; wait a moment and try again.",
                ),
                _ => return Err(Fail::new(lang, e)),
            };
            let mut resp = login_form(lang, &next, Some(msg));
            *resp.status_mut() = match e {
                Error::UserLocked { .. } => StatusCode::LOCKED,
                _ => StatusCode::UNAUTHORIZED,
            };
            resp.extensions_mut().insert(ErrorCode(code_of(&e)));
            Ok(resp)
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub csrf: String,
}

pub async fn logout(
    State(s): State<AppState>,
    me: Me,
    ConsoleForm(f): ConsoleForm<CsrfOnly>,
) -> Result<Response, Fail> {
    me.check_csrf(&s, &f.csrf)?;
    s.vault
        .sessions()
        .end(&me.actor, &me.token)
        .await
        .map_err(|e| me.fail(e))?;
    let mut resp = Redirect::to("/console/login?bye=1").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "__Host-mv_session=; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        ),
    );
    Ok(resp)
}

#[derive(Deserialize)]
pub struct StepUpForm {
    csrf: String,
    totp: String,
    next: Option<String>,
}

/// Opens the session's step-up window, then back to the page the person came from.
pub async fn step_up(
    State(s): State<AppState>,
    me: Me,
    ConsoleForm(f): ConsoleForm<StepUpForm>,
) -> Result<Response, Fail> {
    me.check_csrf(&s, &f.csrf)?;
    let next = safe_next(f.next.as_deref()).to_owned();
    s.vault
        .people()
        .open_step_up(&me.actor, f.totp.trim())
        .await
        .map_err(|e| me.fail(e))?;
    Ok(super::done(&next, "stepped_up"))
}

//! The web console at `/console`: server-rendered pages for admins, approvers and security staff.
//!
//! Every page and action calls one service method, the same one the API calls, and renders what
//! it returns; no rule is checked here (the navigation only hides links a role cannot use, the
//! services refuse). Requests pass through the same outermost audit middleware as the API, so
//! every page view and every refusal is recorded. What this layer adds is the browser's share of
//! the work: the `__Host-` session cookie, a CSRF token on every form (an HMAC of the session
//! token, from the sessions service), strict security headers on every response, pages in
//! Chinese or English, and errors as pages that say what to do next.

mod admin;
mod approvals;
mod audit;
mod auth;
mod break_glass;
mod home;
mod i18n;
mod incidents;
mod layout;
mod post;
mod svg;
pub mod unseal;
mod weibo;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use tower::ServiceBuilder;

use super::AppState;
use super::context::{RequestCtx, current_request_id};
use super::extract::SESSION_COOKIE;
use super::limits::{Layer, PeerKey};
use super::problem::{ErrorCode, code_of, status_of};
use crate::actor::{Actor, Principal};
use crate::error::Error;
use crate::identity::users::Person;
pub use i18n::Lang;

/// The language cookie; `?lang=en` on any page sets it.
pub const LANG_COOKIE: &str = "__Host-mv_lang";

/// The strict policy: scripts and styles only from the console's own embedded files, no inline
/// code, no framing, forms only to the console.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `login` is the login tier's layer, the API's own: an address's sign-in attempts are counted
/// together whichever door they come through. Showing the sign-in form is not an attempt, so
/// people behind one office address can open it freely. `general` is the API's general tier:
/// every console request counts against the same per-address budget as the API's general routes,
/// so a stolen session cookie cannot hammer the console (an export, the audit pages) at a rate
/// the API would refuse, and switching doors buys no fresh budget. Its refusal is a page too.
pub fn routes(login: Layer<PeerKey>, general: Layer<PeerKey>) -> Router<AppState> {
    // A refusal of the tier is a page in the person's language (the sign-in form again, saying
    // how long to wait), not the API's problem+json.
    let attempts = ServiceBuilder::new()
        .layer(middleware::from_fn(auth::refused_as_page))
        .layer(login);
    let login = Router::new()
        .route(
            "/login",
            get(auth::login_page).merge(post(auth::login).layer(attempts.clone())),
        )
        .route("/step-up", post(auth::step_up).layer(attempts));
    Router::new()
        .merge(login)
        .route("/", get(home::home))
        .route("/logout", post(auth::logout))
        .route("/admin/accounts", get(admin::accounts))
        .route("/admin/accounts/{id}", get(admin::account))
        .route("/admin/accounts/{id}/rotate", post(admin::rotate))
        .route("/admin/accounts/{id}/rollback", post(admin::rollback))
        .route("/admin/accounts/{id}/status", post(admin::set_status))
        .route("/admin/accounts/{id}/clear-quota", post(admin::clear_quota))
        .route("/admin/accounts/{id}/weibo/authorize", post(weibo::start))
        .route("/weibo/callback", get(weibo::callback))
        .route(
            "/weibo/confirm",
            get(weibo::confirm_page).post(weibo::confirm),
        )
        .route("/admin/users", get(admin::users).post(admin::create_user))
        .route("/admin/users/import", post(admin::import_users))
        .route("/admin/users/{name}/disable", post(admin::disable_user))
        .route("/admin/users/{name}/confirm", post(admin::confirm_role))
        .route(
            "/admin/clients",
            get(admin::clients).post(admin::create_client),
        )
        .route("/admin/clients/{id}/revoke", post(admin::revoke_client))
        .route("/admin/policies", get(admin::policies))
        .route("/approvals", get(approvals::page_view))
        .route(
            "/approvals/{id}",
            get(approvals::detail).post(approvals::decide),
        )
        .route("/approvals/{id}/break-glass", post(approvals::break_glass))
        .route("/break-glass", get(break_glass::page_view))
        .route("/break-glass/{id}/close", post(break_glass::close))
        .route("/incidents", get(incidents::list).post(incidents::open))
        .route("/incidents/new", get(incidents::new))
        .route("/incidents/confirm", post(incidents::confirm))
        .route("/incidents/{id}", get(incidents::incident))
        .route("/incidents/{id}/steps/{n}", post(incidents::step))
        .route("/incidents/{id}/close", post(incidents::close))
        .route("/incidents/{id}/report", get(incidents::report))
        .route("/posts", get(incidents::posts))
        .route("/audit", get(audit::page_view))
        .route("/audit/export", get(audit::export))
        .route("/audit/entry/{seq}", get(audit::entry))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .fallback(not_found)
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn(auth::refused_as_page))
                .layer(general),
        )
        .layer(middleware::from_fn(security_headers))
}

pub(crate) async fn css() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    )
}

pub(crate) async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    )
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}

async fn not_found(lang: Lang) -> Response {
    Fail::new(lang, Error::NotFound("page".into())).into_response()
}

/// Every console response: CSP, no framing, no sniffing, no referrer, never cached. A `?lang=`
/// choice is remembered in a cookie.
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let chosen = i18n::query_lang(req.uri().query());
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if let Some(lang) = chosen
        && let Ok(v) = HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={}; Secure; Path=/; SameSite=Strict; Max-Age=31536000",
            lang.code()
        ))
    {
        h.append(header::SET_COOKIE, v);
    }
    resp
}

/// A cookie's value from the request headers.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Where to go after login: only a console path, never another site.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/console") && !n.contains("//") && !n.contains('\\') => n,
        _ => "/console",
    }
}

/// The signed-in person of a console request: the session cookie, checked by the sessions
/// service, as the acting [`Actor`], with the CSRF token of that session and the language.
pub struct Me {
    pub actor: Actor,
    pub person: Person,
    pub lang: Lang,
    pub csrf: String,
    pub path: String,
    /// The notice of a change just made (`?done=`), shown from a fixed list.
    pub done: Option<String>,
    token: String,
}

impl FromRequestParts<AppState> for Me {
    type Rejection = Fail;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Fail> {
        let lang = Lang::of(&parts.headers, parts.uri.query());
        // Inside the nested router the path lost its `/console` prefix; links need the whole one.
        let path = parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map(|u| u.0.path().to_owned())
            .unwrap_or_else(|| format!("/console{}", parts.uri.path()));
        let to_login = || Fail {
            lang,
            kind: FailKind::Login {
                next: if parts.method == axum::http::Method::GET {
                    path.clone()
                } else {
                    "/console".into()
                },
            },
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE).map(str::to_owned) else {
            return Err(to_login());
        };
        let person = match state.vault.sessions().authenticate(&token).await {
            Ok(p) => p,
            Err(Error::Unauthenticated) => return Err(to_login()),
            Err(e) => return Err(Fail::new(lang, e)),
        };
        let ctx = parts.extensions.get::<RequestCtx>().cloned();
        let actor = Actor::new(Principal::Person(person.clone()), ctx);
        let csrf = state.vault.sessions().csrf_token(&token);
        let done = parts.uri.query().and_then(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == "done")
                .map(|(_, v)| v.to_owned())
        });
        Ok(Me {
            done,
            actor,
            person,
            lang,
            csrf,
            path,
            token,
        })
    }
}

impl Me {
    /// Refuses a form whose CSRF token is not this session's; nothing is called, and the refusal
    /// is audited as `console.csrf` (denied).
    pub fn check_csrf(&self, state: &AppState, presented: &str) -> Result<(), Fail> {
        if state.vault.sessions().csrf_ok(&self.token, presented) {
            return Ok(());
        }
        self.actor.action("console.csrf", Some(&self.path));
        Err(Fail {
            lang: self.lang,
            kind: FailKind::Csrf,
        })
    }

    pub fn fail(&self, e: Error) -> Fail {
        Fail::new(self.lang, e)
    }

    pub fn t(&self, zh: &'static str, en: &'static str) -> &'static str {
        self.lang.t(zh, en)
    }

    /// Seconds left in this session's step-up window (0: none open).
    pub fn step_up_left(&self, state: &AppState) -> i64 {
        let now = state.vault.clock().unix();
        self.person.step_up().map_or(0, |w| (w.until - now).max(0))
    }

    /// The compact code input of a form in a table row, optional as [`Self::totp_field`].
    pub fn totp_inline(&self, state: &AppState) -> maud::Markup {
        let l = self.lang;
        let open = self.step_up_left(state) > 0;
        maud::html! {
            @if open {
                input name="totp" placeholder=(l.t("已验证，可留空", "stepped up")) inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code";
            } @else {
                input name="totp" required placeholder=(l.t("本人验证码", "Your TOTP")) inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code";
            }
        }
    }

    /// The "your TOTP code" field of a form for a sensitive change: required unless the session's
    /// step-up window is open, in which case it may stay empty.
    pub fn totp_field(&self, state: &AppState, id: &str) -> maud::Markup {
        let l = self.lang;
        let open = self.step_up_left(state) > 0;
        maud::html! {
            label { (l.t("本人动态验证码", "Your TOTP code"))
                @if open {
                    input id=(id) name="totp" inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code"
                        placeholder=(l.t("已验证身份，可留空", "stepped up: may stay empty"));
                } @else {
                    input id=(id) name="totp" required inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code";
                }
            }
        }
    }
}

/// A form body; a malformed one is a page (its parser's message is not shown: it could quote a
/// secret typed into the wrong field).
pub struct ConsoleForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ConsoleForm<T> {
    type Rejection = Fail;

    async fn from_request(req: Request, state: &S) -> Result<Self, Fail> {
        let lang = Lang::of(req.headers(), req.uri().query());
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(ConsoleForm(v)),
            Err(_) => Err(Fail {
                lang,
                kind: FailKind::BadForm,
            }),
        }
    }
}

/// Why a console request did not produce its page; rendered as a page in the user's language.
pub struct Fail {
    lang: Lang,
    kind: FailKind,
}

enum FailKind {
    Domain(Error),
    Login { next: String },
    Csrf,
    BadForm,
}

impl Fail {
    pub fn new(lang: Lang, e: Error) -> Self {
        let kind = match e {
            Error::Unauthenticated => FailKind::Login {
                next: "/console".into(),
            },
            e => FailKind::Domain(e),
        };
        Fail { lang, kind }
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let l = self.lang;
        let (status, code, title, todo, detail) = match &self.kind {
            FailKind::Login { next } => {
                let to = format!("/console/login?next={}", i18n::url_encode(next));
                return Redirect::to(&to).into_response();
            }
            FailKind::Csrf => (
                StatusCode::FORBIDDEN,
                "csrf_refused",
                l.t("表单校验失败，操作未执行", "The form was refused; nothing was changed"),
                l.t(
                    "表单已过期，或不是从本控制台的页面提交的。请返回上一页，刷新后重新提交。",
                    "The form has expired or did not come from a console page. Go back, reload the page and submit it again.",
                ),
                None,
            ),
            FailKind::BadForm => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                l.t("表单内容不完整，操作未执行", "The form is incomplete; nothing was changed"),
                l.t(
                    "请返回上一页，填写所有必填项后重新提交。",
                    "Go back, fill in every required field and submit again.",
                ),
                None,
            ),
            FailKind::Domain(e) => {
                let (title, todo) = i18n::error_text(l, e);
                let detail = match e {
                    // Internal causes are logged by the problem mapping, never shown.
                    Error::Internal(_) | Error::Unavailable(_) | Error::AuditUnavailable => None,
                    e => Some(e.to_string()),
                };
                if matches!(e, Error::Internal(_)) {
                    tracing::error!(error = ?e, "internal error in the console");
                }
                (status_of(e), code_of(e), title, todo, detail)
            }
        };
        let request_id = current_request_id().unwrap_or_default();
        let body = layout::error_page(l, status, title, todo, detail.as_deref(), &request_id);
        let mut resp = (status, body).into_response();
        resp.extensions_mut().insert(ErrorCode(code));
        resp
    }
}

/// Turns a service result into a console result in the user's language.
pub trait OrFail<T> {
    fn or_fail(self, me: &Me) -> Result<T, Fail>;
}

impl<T> OrFail<T> for std::result::Result<T, crate::error::Error> {
    fn or_fail(self, me: &Me) -> Result<T, Fail> {
        self.map_err(|e| me.fail(e))
    }
}

/// After a change: back to a page (303), which shows a fixed notice named by `done`.
pub fn done(to: &str, done: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{sep}done={done}")).into_response()
}

//! The Sina Weibo API (real base `https://api.weibo.com`).
//!
//! Errors are `{"request","error_code","error"}`. Weibo answers
//! authentication failures (213xx) and rate limiting (10022-10024) with
//! HTTP 403 and other errors with HTTP 400; the fake follows that split, and
//! clients should key on `error_code` rather than the status.
//!
//! The access token is taken from the form body, then the query string, then
//! an `Authorization: OAuth2 <token>` header. Bodies are parsed as
//! `application/x-www-form-urlencoded` whatever the content type; multipart
//! (`share.json` with a `pic`) is not parsed, so such a request reports a
//! missing `status`. Check order: HTTP method, access token, injected error,
//! parameters.

use std::collections::HashMap;

use axum::http::{Method, StatusCode, header};
use serde_json::json;
use time::format_description::BorrowedFormatItem;
use time::macros::{format_description, offset};
use time::{OffsetDateTime, UtcOffset};

use super::{Reply, Req, State, WEIBO_TOKEN_TTL, lookup, parse_urlencoded};

/// The post-2016 limit; the legacy 140 in the error text is Weibo's own.
const MAX_TEXT_CHARS: usize = 2000;

/// Weibo's `created_at`, always rendered in Beijing time.
const CREATED_AT: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short] [month repr:short] [day] [hour]:[minute]:[second] +0800 [year]"
);
const BEIJING: UtcOffset = offset!(+8);

#[derive(Default)]
pub(crate) struct WeiboState {
    /// app_key -> the access token currently registered for it.
    apps: HashMap<String, App>,
    tokens: HashMap<String, Token>,
    /// Last posted text per user, for Weibo's duplicate-post rule.
    last_text: HashMap<u64, String>,
    statuses: u64,
    /// Every status posted, in order, with its text (what `statuses/user_timeline` lists).
    pub(crate) posted: Vec<PostedStatus>,
    /// OAuth codes handed out by `oauth2/authorize` and not yet exchanged:
    /// code -> (app_key, uid, redirect_uri).
    codes: HashMap<String, (String, u64, String)>,
}

/// A status live on a Weibo account.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PostedStatus {
    pub uid: u64,
    pub id: u64,
    pub idstr: String,
    pub text: String,
    pub app_key: String,
    pub created_at: i64,
    /// Weibo's `visible.type`: 0 public; anything else is restricted (1: only the author).
    pub visible: u8,
}

struct App {
    /// What `oauth2/access_token` checks `client_secret` against.
    secret: String,
    access_token: String,
}

struct Token {
    app_key: String,
    uid: u64,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
}

impl WeiboState {
    pub(crate) fn add_app(
        &mut self,
        app_key: &str,
        secret: &str,
        access_token: &str,
        uid: u64,
        now: OffsetDateTime,
    ) {
        // Re-registering an app replaces its token; the old one stops working.
        if let Some(old) = self.apps.get(app_key) {
            self.tokens.remove(&old.access_token);
        }
        self.apps.insert(
            app_key.to_owned(),
            App {
                secret: secret.to_owned(),
                access_token: access_token.to_owned(),
            },
        );
        self.tokens.insert(
            access_token.to_owned(),
            Token {
                app_key: app_key.to_owned(),
                uid,
                created_at: now,
                expires_at: now + WEIBO_TOKEN_TTL,
            },
        );
    }
}

fn message(code: i64) -> &'static str {
    match code {
        10001 => "system error!",
        10008 => "param error, see doc for more info",
        10021 => "HTTP method is not suported for this request!",
        10022 => "IP requests out of rate limit!",
        10023 => "User requests out of rate limit!",
        10024 => "User requests for this api out of rate limit!",
        20012 => "Text too long, please input text less than 140 characters!",
        20019 => "repeat content!",
        20101 => "target weibo does not exist!",
        21301 => "auth faild!",
        21314 => "Token used",
        21315 => "Token expired",
        21327 => "expired_token",
        21332 => "invalid_access_token",
        21322 => "redirect_uri_mismatch",
        21323 => "invalid_client",
        21325 => "invalid_grant",
        _ => "unknown error",
    }
}

fn status_for(code: i64) -> StatusCode {
    match code {
        21300..=21399 | 10022..=10024 => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    }
}

pub(crate) fn error(req: &Req, code: i64) -> Reply {
    Reply::with_status(
        status_for(code),
        json!({ "request": req.path, "error_code": code, "error": message(code) }),
    )
}

pub(crate) struct Caller {
    app_key: String,
    pub(crate) uid: u64,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
}

/// The user and app a live access token belongs to (for the outsider helper).
pub(crate) fn owner_of(st: &State, token: &str) -> Option<(u64, String)> {
    st.weibo
        .tokens
        .get(token)
        .filter(|t| st.now() < t.expires_at)
        .map(|t| (t.uid, t.app_key.clone()))
}

pub(crate) fn authorize(st: &State, req: &Req, form: &[(String, String)]) -> Result<Caller, Reply> {
    let header_token = req
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("OAuth2 "))
        .map(str::trim);
    let token = lookup(form, "access_token")
        .or_else(|| req.query_param("access_token"))
        .or(header_token)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(error(req, 21301));
    };
    let Some(t) = st.weibo.tokens.get(token) else {
        return Err(error(req, 21332));
    };
    if st.now() >= t.expires_at {
        return Err(error(req, 21327));
    }
    Ok(Caller {
        app_key: t.app_key.clone(),
        uid: t.uid,
        created_at: t.created_at,
        expires_at: t.expires_at,
    })
}

fn prelude(st: &mut State, req: &Req) -> Result<(Caller, Vec<(String, String)>), Reply> {
    if req.method != Method::POST {
        return Err(error(req, 10021));
    }
    let form = parse_urlencoded(&String::from_utf8_lossy(&req.body));
    let caller = authorize(st, req, &form)?;
    if let Some(code) = st.take_injection(&req.path) {
        return Err(error(req, code));
    }
    Ok((caller, form))
}

/// `POST /oauth2/get_token_info`
pub(crate) fn get_token_info(st: &mut State, req: &Req) -> Reply {
    match prelude(st, req) {
        Ok((caller, _)) => {
            let expire_in = (caller.expires_at - st.now()).whole_seconds();
            Reply::ok(json!({
                "uid": caller.uid,
                "appkey": caller.app_key,
                "scope": "",
                "create_at": caller.created_at.unix_timestamp(),
                "expire_in": expire_in,
            }))
        }
        Err(e) => e,
    }
}

/// `GET /oauth2/authorize?client_id&redirect_uri&response_type=code&state`: on weibo.com the
/// account's owner signs in and grants the app; the fake grants at once, for the user of the app's
/// current token, and sends the browser back to `redirect_uri` with a one-time code.
pub(crate) fn oauth_authorize(st: &mut State, req: &Req) -> Reply {
    let (Some(app_key), Some(redirect_uri)) = (
        req.query_param("client_id"),
        req.query_param("redirect_uri"),
    ) else {
        return error(req, 21323);
    };
    if req.query_param("response_type") != Some("code") {
        return error(req, 21323);
    }
    let Some(uid) = st
        .weibo
        .apps
        .get(app_key)
        .and_then(|a| st.weibo.tokens.get(&a.access_token))
        .map(|t| t.uid)
    else {
        return error(req, 21323);
    };
    let Some(code) = st.random_hex(16) else {
        return error(req, 10001);
    };
    st.weibo.codes.insert(
        code.clone(),
        (app_key.to_owned(), uid, redirect_uri.to_owned()),
    );
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let mut to = format!("{redirect_uri}{sep}code={code}");
    if let Some(state) = req.query_param("state") {
        to.push_str("&state=");
        to.push_str(&percent_encode(state));
    }
    Reply::redirect(to)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `POST /oauth2/access_token` (form `client_id, client_secret, grant_type=authorization_code,
/// code, redirect_uri`): a code is good once, for its app and `redirect_uri`; the answer is a new
/// access token for the user who granted it (the app's earlier token keeps working until it
/// expires, as on Weibo).
pub(crate) fn oauth_access_token(st: &mut State, req: &Req) -> Reply {
    if req.method != Method::POST {
        return error(req, 10021);
    }
    let form = parse_urlencoded(&String::from_utf8_lossy(&req.body));
    let field = |name: &str| lookup(&form, name).unwrap_or_default().to_owned();
    let (app_key, secret, code, redirect_uri) = (
        field("client_id"),
        field("client_secret"),
        field("code"),
        field("redirect_uri"),
    );
    if field("grant_type") != "authorization_code" {
        return error(req, 21323);
    }
    match st.weibo.apps.get(&app_key) {
        Some(app) if app.secret == secret => {}
        _ => return error(req, 21323),
    }
    let Some((code_app, uid, code_uri)) = st.weibo.codes.remove(&code) else {
        return error(req, 21325);
    };
    if code_app != app_key {
        return error(req, 21325);
    }
    if code_uri != redirect_uri {
        return error(req, 21322);
    }
    let Some(suffix) = st.random_hex(16) else {
        return error(req, 10001);
    };
    let token = format!("2.00{suffix}");
    let now = st.now();
    st.weibo.tokens.insert(
        token.clone(),
        Token {
            app_key: app_key.clone(),
            uid,
            created_at: now,
            expires_at: now + super::WEIBO_TOKEN_TTL,
        },
    );
    if let Some(app) = st.weibo.apps.get_mut(&app_key) {
        app.access_token = token.clone();
    }
    let ttl = i64::try_from(super::WEIBO_TOKEN_TTL.as_secs()).unwrap_or(i64::MAX);
    Reply::ok(json!({
        "access_token": token,
        "remind_in": ttl.to_string(),
        "expires_in": ttl,
        "uid": uid.to_string(),
        "isRealName": "true",
    }))
}

/// `POST /2/statuses/share.json`
pub(crate) fn share(st: &mut State, req: &Req) -> Reply {
    let (caller, form) = match prelude(st, req) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let Some(text) = lookup(&form, "status").filter(|s| !s.trim().is_empty()) else {
        return error(req, 10008);
    };
    if text.chars().count() > MAX_TEXT_CHARS {
        return error(req, 20012);
    }
    if st.weibo.last_text.get(&caller.uid).map(String::as_str) == Some(text) {
        return error(req, 20019);
    }
    let created_at = match st.now().to_offset(BEIJING).format(CREATED_AT) {
        Ok(s) => s,
        Err(_) => return error(req, 10001),
    };
    st.weibo.last_text.insert(caller.uid, text.to_owned());
    st.weibo.statuses += 1;
    let id = 4_990_000_000_000_000_u64 + st.weibo.statuses;
    let posted_at = st.now().unix_timestamp();
    st.weibo.posted.push(PostedStatus {
        visible: 0,
        uid: caller.uid,
        id,
        idstr: id.to_string(),
        text: text.to_owned(),
        app_key: caller.app_key.clone(),
        created_at: posted_at,
    });
    let screen_name = format!("fake_user_{}", caller.uid);
    let status = json!({
        "created_at": created_at,
        "id": id,
        "idstr": id.to_string(),
        "mid": id.to_string(),
        "text": text,
        "source": format!("<a href=\"http://app.weibo.com/t/feed/{}\" rel=\"nofollow\">mediavault</a>", caller.app_key),
        "favorited": false,
        "truncated": false,
        "pic_urls": [],
        "reposts_count": 0,
        "comments_count": 0,
        "attitudes_count": 0,
        "visible": { "type": 0, "list_id": 0 },
        "user": {
            "id": caller.uid,
            "idstr": caller.uid.to_string(),
            "screen_name": screen_name,
            "name": screen_name,
        },
    });
    Reply::ok(status)
}

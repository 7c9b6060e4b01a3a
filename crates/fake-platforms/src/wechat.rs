//! The WeChat Official Account API (real base `https://api.weixin.qq.com`).
//!
//! Every answer is HTTP 200 with JSON, errors included, as WeChat does.
//! Check order for token endpoints: request shape, appid (40013), secret
//! (40125), IP whitelist (40164), frozen AppSecret (40243), injected error, issuance. For API
//! endpoints: HTTP method (43002), access_token (41001/40001/42001), injected
//! error, request body. An injection is consumed only by a request that gets
//! as far as that step.

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{Reply, Req, State};

/// 102 random bytes encode to 136 URL-safe base64 characters, the length and
/// alphabet of real WeChat access tokens.
const TOKEN_BYTES: usize = 102;

/// Stands in for WeChat's server-side failure when the RNG is unavailable.
const SYSTEM_ERROR: i64 = -1;

#[derive(Default)]
pub(crate) struct WechatState {
    apps: HashMap<String, App>,
    whitelists: HashMap<String, Vec<IpAddr>>,
    /// Apps whose AppSecret an administrator froze in the WeChat console: no token is issued
    /// (40243) until it is unfrozen.
    frozen: std::collections::HashSet<String>,
    /// Every token ever issued, kept after death so a stale token can be told
    /// apart (42001 expired vs 40001 cancelled) from one never issued.
    tokens: HashMap<String, Token>,
    publishes: u64,
    /// Every article published through `freepublish/submit`, in order, with its content.
    pub(crate) published: Vec<PublishedArticle>,
    /// Articles no longer live, with the `publish_status` WeChat then reports for them: 5, all
    /// deleted by the account's own users; 6, blocked by the platform after success.
    pub(crate) gone: Vec<(PublishedArticle, i64)>,
}

/// An article live on an official account (what `freepublish/batchget` lists).
#[derive(Clone, Debug, serde::Serialize)]
pub struct PublishedArticle {
    pub app_id: String,
    pub publish_id: String,
    pub article_id: String,
    pub msg_data_id: u64,
    /// The draft's `articles` array as it was added.
    pub articles: Value,
    pub published_at: i64,
}

struct App {
    secret: String,
    classic_current: Option<String>,
    classic_previous: Option<String>,
    stable_current: Option<String>,
    /// Drafts in the draft box: media_id -> the `articles` array. Publishing takes one out.
    drafts: HashMap<String, Value>,
    /// Permanent image material (covers): media_id -> URL.
    materials: HashMap<String, String>,
    fetches: usize,
    /// Stable tokens issued with `force_refresh`, and classic tokens issued.
    stable_forced: usize,
    classic_issued: usize,
    /// `force_refresh` stable tokens issued on one day (Beijing time): WeChat allows 20.
    forced_today: (i64, u32),
    /// `clear_quota` resets in one month (year * 12 + month, Beijing time): WeChat allows 10.
    resets_this_month: (i64, u32),
}

/// WeChat allows this many `clear_quota` resets per AppID a month.
const RESETS_PER_MONTH: u32 = 10;

/// WeChat issues at most this many `force_refresh` stable tokens per AppID a day.
const FORCED_PER_DAY: u32 = 20;

fn beijing_day(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp() + 8 * 3600).div_euclid(86_400)
}

struct Token {
    app_id: String,
    expires_at: OffsetDateTime,
    cancelled_at: Option<OffsetDateTime>,
}

enum TokenState {
    Valid,
    Expired,
    Cancelled,
}

impl Token {
    fn state(&self, now: OffsetDateTime) -> TokenState {
        match self.cancelled_at {
            // Whichever came first decides the error: a token that expired
            // before it would have been cancelled reports expiry.
            Some(c) if c <= now && c < self.expires_at => TokenState::Cancelled,
            _ if now >= self.expires_at => TokenState::Expired,
            _ => TokenState::Valid,
        }
    }

    fn cancel_at(&mut self, at: OffsetDateTime) {
        self.cancelled_at = Some(self.cancelled_at.map_or(at, |c| c.min(at)));
    }
}

impl WechatState {
    pub(crate) fn add_app(&mut self, app_id: &str, secret: &str, now: OffsetDateTime) {
        if let Some(app) = self.apps.get_mut(app_id) {
            if app.secret == secret {
                return;
            }
            // Resetting the AppSecret in the WeChat console kills every token
            // issued under the old one; calls using them answer 40001.
            app.secret = secret.to_owned();
            app.classic_current = None;
            app.classic_previous = None;
            app.stable_current = None;
            for token in self.tokens.values_mut().filter(|t| t.app_id == app_id) {
                token.cancel_at(now);
            }
            return;
        }
        self.apps.insert(
            app_id.to_owned(),
            App {
                secret: secret.to_owned(),
                classic_current: None,
                classic_previous: None,
                stable_current: None,
                drafts: HashMap::new(),
                materials: HashMap::new(),
                fetches: 0,
                stable_forced: 0,
                classic_issued: 0,
                forced_today: (0, 0),
                resets_this_month: (0, 0),
            },
        );
    }

    pub(crate) fn set_frozen(&mut self, app_id: &str, frozen: bool) {
        if frozen {
            self.frozen.insert(app_id.to_owned());
        } else {
            self.frozen.remove(app_id);
        }
    }

    pub(crate) fn set_whitelist(&mut self, app_id: &str, ips: Option<Vec<IpAddr>>) {
        match ips {
            Some(ips) => {
                self.whitelists.insert(app_id.to_owned(), ips);
            }
            None => {
                self.whitelists.remove(app_id);
            }
        }
    }

    pub(crate) fn token_fetches(&self, app_id: &str) -> usize {
        self.apps.get(app_id).map_or(0, |a| a.fetches)
    }

    /// (stable tokens issued with `force_refresh`, classic tokens issued) for this app.
    pub(crate) fn pool_refreshes(&self, app_id: &str) -> (usize, usize) {
        self.apps
            .get(app_id)
            .map_or((0, 0), |a| (a.stable_forced, a.classic_issued))
    }
}

/// Whether `secret` is the app's current AppSecret (for the outsider helpers).
pub(crate) fn secret_matches(st: &State, app_id: &str, secret: &str) -> bool {
    st.wechat
        .apps
        .get(app_id)
        .is_some_and(|a| a.secret == secret)
}

impl WechatState {}

fn message(code: i64) -> &'static str {
    match code {
        -1 => "system error",
        40001 => "invalid credential, access_token is invalid or not latest",
        40002 => "invalid grant_type",
        40004 => "invalid media type",
        40007 => "invalid media_id",
        40013 => "invalid appid",
        40125 => "invalid appsecret",
        41001 => "access_token missing",
        41002 => "appid missing",
        41004 => "appsecret missing",
        42001 => "access_token expired",
        43001 => "require GET method",
        43002 => "require POST method",
        44002 => "empty post data",
        45009 => "reach max api daily quota limit",
        40243 => "AppSecret is frozen, please unfreeze it on mp.weixin.qq.com",
        48006 => "forbid to clear quota because of reaching the limit",
        45011 => "api minute-quota reach limit  mustslower  retry next minute",
        40097 => "invalid args",
        53600 => "Article ID invalid",
        47001 => "data format error",
        48001 => "api unauthorized",
        50002 => "user limited",
        _ => "unknown error",
    }
}

fn rid(st: &State) -> String {
    st.random_hex(12)
        .map(|h| format!("{}-{}-{}", &h[..8], &h[8..16], &h[16..]))
        .unwrap_or_else(|| "00000000-00000000-00000000".to_owned())
}

fn error_with(st: &State, code: i64, msg: &str) -> Reply {
    Reply::ok(json!({ "errcode": code, "errmsg": format!("{msg} rid: {}", rid(st)) }))
}

pub(crate) fn error(st: &State, code: i64) -> Reply {
    error_with(st, code, message(code))
}

pub(crate) fn injected(st: &mut State, req: &Req) -> Result<(), Reply> {
    match st.take_injection(&req.path) {
        Some(code) => Err(error(st, code)),
        None => Ok(()),
    }
}

pub(crate) fn require_post(st: &State, req: &Req) -> Result<(), Reply> {
    if req.method == axum::http::Method::POST {
        Ok(())
    } else {
        Err(error(st, 43002))
    }
}

/// Resolves the `access_token` query parameter to the owning app.
pub(crate) fn authorize(st: &State, req: &Req) -> Result<String, Reply> {
    let Some(token) = req.query_param("access_token").filter(|t| !t.is_empty()) else {
        return Err(error(st, 41001));
    };
    let Some(info) = st.wechat.tokens.get(token) else {
        return Err(error(st, 40001));
    };
    match info.state(st.now()) {
        TokenState::Valid => Ok(info.app_id.clone()),
        TokenState::Expired => Err(error(st, 42001)),
        TokenState::Cancelled => Err(error(st, 40001)),
    }
}

/// Parses a JSON object body, with WeChat's codes for empty and malformed.
pub(crate) fn json_body(st: &State, req: &Req) -> Result<serde_json::Map<String, Value>, Reply> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Err(error(st, 44002));
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(error(st, 47001)),
    }
}

fn authenticate(st: &State, req: &Req, app_id: &str, secret: &str) -> Result<(), Reply> {
    let Some(app) = st.wechat.apps.get(app_id) else {
        return Err(error(st, 40013));
    };
    if app.secret != secret {
        return Err(error(st, 40125));
    }
    if let (Some(list), Some(peer)) = (st.wechat.whitelists.get(app_id), req.peer) {
        let peer = canonical(peer);
        if !list.iter().any(|ip| canonical(*ip) == peer) {
            let v6 = match peer {
                IpAddr::V4(v4) => v4.to_ipv6_mapped().to_string(),
                IpAddr::V6(v6) => v6.to_string(),
            };
            let msg = format!("invalid ip {peer} ipv6 {v6}, not in whitelist");
            return Err(error_with(st, 40164, &msg));
        }
    }
    if st.wechat.frozen.contains(app_id) {
        return Err(error(st, 40243));
    }
    Ok(())
}

/// A dual-stack listener reports IPv4 peers as `::ffff:a.b.c.d`; WeChat
/// whitelists are written with plain IPv4 addresses.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn new_token(st: &mut State, app_id: &str, now: OffsetDateTime) -> Result<String, Reply> {
    let Some(token) = st.random_b64(TOKEN_BYTES) else {
        return Err(error(st, SYSTEM_ERROR));
    };
    let expires_at = now + st.config.token_ttl;
    st.wechat.tokens.insert(
        token.clone(),
        Token {
            app_id: app_id.to_owned(),
            expires_at,
            cancelled_at: None,
        },
    );
    Ok(token)
}

fn token_reply(token: &str, expires_in: i64) -> Reply {
    Reply::ok(json!({ "access_token": token, "expires_in": expires_in }))
}

fn ttl_secs(st: &State) -> i64 {
    i64::try_from(st.config.token_ttl.as_secs()).unwrap_or(i64::MAX)
}

/// `GET /cgi-bin/token`: the classic pool.
pub(crate) fn token(st: &mut State, req: &Req) -> Reply {
    classic(st, req).unwrap_or_else(|e| e)
}

fn classic(st: &mut State, req: &Req) -> Result<Reply, Reply> {
    if req.query_param("grant_type") != Some("client_credential") {
        return Err(error(st, 40002));
    }
    let app_id = req.query_param("appid").filter(|s| !s.is_empty());
    let Some(app_id) = app_id else {
        return Err(error(st, 41002));
    };
    let Some(secret) = req.query_param("secret").filter(|s| !s.is_empty()) else {
        return Err(error(st, 41004));
    };
    authenticate(st, req, app_id, secret)?;
    injected(st, req)?;

    let now = st.now();
    let overlap = st.config.classic_overlap;
    let token = new_token(st, app_id, now)?;
    let WechatState { apps, tokens, .. } = &mut st.wechat;
    let Some(app) = apps.get_mut(app_id) else {
        // `authenticate` just found the app under this same lock.
        return Err(error(st, 40013));
    };
    // WeChat keeps exactly one predecessor alive for the overlap window;
    // anything older dies the moment a newer token is issued.
    if let Some(older) = app.classic_previous.take()
        && let Some(t) = tokens.get_mut(&older)
    {
        t.cancel_at(now);
    }
    if let Some(prev) = app.classic_current.take() {
        if let Some(t) = tokens.get_mut(&prev) {
            t.cancel_at(now + overlap);
        }
        app.classic_previous = Some(prev);
    }
    app.classic_current = Some(token.clone());
    app.fetches += 1;
    app.classic_issued += 1;
    Ok(token_reply(&token, ttl_secs(st)))
}

/// `POST /cgi-bin/stable_token`: the stable pool, independent of classic.
pub(crate) fn stable_token(st: &mut State, req: &Req) -> Reply {
    stable(st, req).unwrap_or_else(|e| e)
}

fn stable(st: &mut State, req: &Req) -> Result<Reply, Reply> {
    require_post(st, req)?;
    let body = json_body(st, req)?;
    if body.get("grant_type").and_then(Value::as_str) != Some("client_credential") {
        return Err(error(st, 40002));
    }
    let str_field = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let Some(app_id) = str_field("appid") else {
        return Err(error(st, 41002));
    };
    let Some(secret) = str_field("secret") else {
        return Err(error(st, 41004));
    };
    let force = match body.get("force_refresh") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(error(st, 47001)),
    };
    authenticate(st, req, app_id, secret)?;
    injected(st, req)?;

    let now = st.now();
    if force {
        let today = beijing_day(now);
        let spent = st
            .wechat
            .apps
            .get(app_id)
            .map(|a| a.forced_today)
            .filter(|(day, _)| *day == today)
            .map_or(0, |(_, n)| n);
        if spent >= FORCED_PER_DAY {
            return Err(error(st, 45009));
        }
        if let Some(app) = st.wechat.apps.get_mut(app_id) {
            app.forced_today = (today, spent + 1);
        }
    }
    let current = st
        .wechat
        .apps
        .get(app_id)
        .and_then(|a| a.stable_current.clone());
    if !force
        && let Some(cur) = &current
        && let Some(t) = st.wechat.tokens.get(cur)
        && matches!(t.state(now), TokenState::Valid)
    {
        let remaining = (t.expires_at - now).whole_seconds().max(1);
        let reply = token_reply(cur, remaining);
        if let Some(app) = st.wechat.apps.get_mut(app_id) {
            app.fetches += 1;
        }
        return Ok(reply);
    }
    let token = new_token(st, app_id, now)?;
    // In normal mode the previous token is already dead (or we would have
    // returned it); with force_refresh it is cancelled immediately.
    if let Some(prev) = current
        && let Some(t) = st.wechat.tokens.get_mut(&prev)
    {
        t.cancel_at(now);
    }
    if let Some(app) = st.wechat.apps.get_mut(app_id) {
        app.stable_current = Some(token.clone());
        app.fetches += 1;
        if force {
            app.stable_forced += 1;
        }
    }
    Ok(token_reply(&token, ttl_secs(st)))
}

/// `POST /cgi-bin/clear_quota/v2` `{appid, appsecret}`: resets the app's API call counts (here:
/// drops every 45009 queued by `inject_error`), ten times a month, then 48006.
pub(crate) fn clear_quota(st: &mut State, req: &Req) -> Reply {
    let run = |st: &mut State| -> Result<Reply, Reply> {
        require_post(st, req)?;
        let body = json_body(st, req)?;
        let field = |name: &str| {
            body.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let Some(app_id) = field("appid") else {
            return Err(error(st, 41002));
        };
        let Some(secret) = field("appsecret") else {
            return Err(error(st, 41004));
        };
        authenticate(st, req, app_id, secret)?;
        injected(st, req)?;
        let now = st
            .now()
            .to_offset(time::UtcOffset::from_hms(8, 0, 0).unwrap_or(time::UtcOffset::UTC));
        let month = i64::from(now.year()) * 12 + i64::from(u8::from(now.month()));
        let used = st
            .wechat
            .apps
            .get(app_id)
            .map(|a| a.resets_this_month)
            .filter(|(m, _)| *m == month)
            .map_or(0, |(_, n)| n);
        if used >= RESETS_PER_MONTH {
            return Err(error(st, 48006));
        }
        if let Some(app) = st.wechat.apps.get_mut(app_id) {
            app.resets_this_month = (month, used + 1);
        }
        st.clear_quota_injections();
        Ok(Reply::ok(json!({ "errcode": 0, "errmsg": "ok" })))
    };
    run(st).unwrap_or_else(|e| e)
}

/// `GET /cgi-bin/getcallbackip`
pub(crate) fn callback_ip(st: &mut State, req: &Req) -> Reply {
    let run = |st: &mut State| -> Result<Reply, Reply> {
        authorize(st, req)?;
        injected(st, req)?;
        Ok(Reply::ok(json!({
            "ip_list": [
                "101.226.103.0/25",
                "101.226.62.0/26",
                "101.226.125.0/26",
                "58.251.80.0/25",
                "183.3.234.0/26",
                "183.61.51.0/26",
                "223.166.222.0/24",
            ]
        })))
    };
    run(st).unwrap_or_else(|e| e)
}

/// `POST /cgi-bin/draft/add`
pub(crate) fn draft_add(st: &mut State, req: &Req) -> Reply {
    let run = |st: &mut State| -> Result<Reply, Reply> {
        require_post(st, req)?;
        let app_id = authorize(st, req)?;
        injected(st, req)?;
        let body = json_body(st, req)?;
        let well_formed = match body.get("articles") {
            Some(Value::Array(articles)) if !articles.is_empty() => articles.iter().all(|a| {
                a.get("title").and_then(Value::as_str).is_some()
                    && a.get("content").and_then(Value::as_str).is_some()
            }),
            _ => false,
        };
        if !well_formed {
            return Err(error(st, 47001));
        }
        let articles = body.get("articles").cloned().unwrap_or(Value::Null);
        // A cover must be this account's own image material.
        let thumbs_known = articles.as_array().is_some_and(|list| {
            list.iter()
                .all(|a| match a.get("thumb_media_id").and_then(Value::as_str) {
                    None => true,
                    Some(id) => st
                        .wechat
                        .apps
                        .get(&app_id)
                        .is_some_and(|app| app.materials.contains_key(id)),
                })
        });
        if !thumbs_known {
            return Err(error(st, 40007));
        }
        let Some(media_id) = st.random_b64(48) else {
            return Err(error(st, SYSTEM_ERROR));
        };
        if let Some(app) = st.wechat.apps.get_mut(&app_id) {
            app.drafts.insert(media_id.clone(), articles);
        }
        Ok(Reply::ok(json!({ "media_id": media_id })))
    };
    run(st).unwrap_or_else(|e| e)
}

/// `POST /cgi-bin/freepublish/submit`
pub(crate) fn freepublish_submit(st: &mut State, req: &Req) -> Reply {
    let run = |st: &mut State| -> Result<Reply, Reply> {
        require_post(st, req)?;
        let app_id = authorize(st, req)?;
        injected(st, req)?;
        let body = json_body(st, req)?;
        let Some(media_id) = body.get("media_id").and_then(Value::as_str) else {
            return Err(error(st, 47001));
        };
        // Drafts belong to one account: another app's media_id is unknown. Publishing takes
        // the draft out of the draft box, so it cannot be published twice.
        let Some(articles) = st
            .wechat
            .apps
            .get_mut(&app_id)
            .and_then(|a| a.drafts.remove(media_id))
        else {
            return Err(error(st, 40007));
        };
        st.wechat.publishes += 1;
        let n = st.wechat.publishes;
        let publish_id = (100_000_000 + n).to_string();
        let msg_data_id = 2_247_483_600_u64 + n;
        let Some(article_id) = st.random_b64(48) else {
            return Err(error(st, SYSTEM_ERROR));
        };
        let published_at = st.now().unix_timestamp();
        st.wechat.published.push(PublishedArticle {
            app_id,
            publish_id: publish_id.clone(),
            article_id,
            msg_data_id,
            articles,
            published_at,
        });
        Ok(Reply::ok(json!({
            "errcode": 0,
            "errmsg": "ok",
            "publish_id": publish_id,
            "msg_data_id": msg_data_id,
        })))
    };
    run(st).unwrap_or_else(|e| e)
}

/// `POST /cgi-bin/media/uploadimg`. Real requests are multipart with a
/// `media` part; the fake accepts any non-empty body.
pub(crate) fn upload_img(st: &mut State, req: &Req) -> Reply {
    let run = |st: &mut State| -> Result<Reply, Reply> {
        require_post(st, req)?;
        authorize(st, req)?;
        injected(st, req)?;
        if req.body.is_empty() {
            return Err(error(st, 44002));
        }
        let Some(id) = st.random_b64(48) else {
            return Err(error(st, SYSTEM_ERROR));
        };
        Ok(Reply::ok(json!({
            "url": format!("http://mmbiz.qpic.cn/mmbiz_jpg/{id}/0"),
        })))
    };
    run(st).unwrap_or_else(|e| e)
}

/// `POST /cgi-bin/freepublish/get`: the fake publishes at once, so a known publish_id reports
/// success (`publish_status` 0) with its article, until it is deleted (5) or blocked (6).
pub(crate) fn freepublish_get(st: &mut State, req: &Req) -> Reply {
    let run = |st: &mut State| -> Result<Reply, Reply> {
        require_post(st, req)?;
        let app_id = authorize(st, req)?;
        injected(st, req)?;
        let body = json_body(st, req)?;
        let Some(publish_id) = body.get("publish_id").and_then(Value::as_str) else {
            return Err(error(st, 47001));
        };
        if let Some((p, status)) = st
            .wechat
            .gone
            .iter()
            .find(|(p, _)| p.app_id == app_id && p.publish_id == publish_id)
        {
            // Deleted by the account's users (5) or blocked by the platform (6) after success.
            return Ok(Reply::ok(json!({
                "publish_id": p.publish_id,
                "publish_status": status,
                "article_id": p.article_id,
                "article_detail": { "count": 0, "item": [] },
                "fail_idx": [],
            })));
        }
        let Some(p) = st
            .wechat
            .published
            .iter()
            .find(|p| p.app_id == app_id && p.publish_id == publish_id)
        else {
            return Err(error(st, 40007));
        };
        let count = p.articles.as_array().map_or(0, Vec::len);
        let items: Vec<Value> = (1..=count)
            .map(|idx| {
                json!({
                    "idx": idx,
                    "article_url": format!("https://mp.weixin.qq.com/s/{}_{idx}", p.article_id),
                })
            })
            .collect();
        Ok(Reply::ok(json!({
            "publish_id": p.publish_id,
            "publish_status": 0,
            "article_id": p.article_id,
            "article_detail": { "count": count, "item": items },
            "fail_idx": [],
        })))
    };
    run(st).unwrap_or_else(|e| e)
}

/// `POST /cgi-bin/material/add_material?type=image`: permanent image material (a cover). Real
/// requests are multipart with a `media` part; the fake accepts any non-empty body.
pub(crate) fn add_material(st: &mut State, req: &Req) -> Reply {
    let run = |st: &mut State| -> Result<Reply, Reply> {
        require_post(st, req)?;
        let app_id = authorize(st, req)?;
        injected(st, req)?;
        if req.query_param("type") != Some("image") {
            return Err(error(st, 40004));
        }
        if req.body.is_empty() {
            return Err(error(st, 44002));
        }
        let (Some(media_id), Some(id)) = (st.random_b64(32), st.random_b64(48)) else {
            return Err(error(st, SYSTEM_ERROR));
        };
        let url = format!("http://mmbiz.qpic.cn/mmbiz_png/{id}/0");
        if let Some(app) = st.wechat.apps.get_mut(&app_id) {
            app.materials.insert(media_id.clone(), url.clone());
        }
        Ok(Reply::ok(json!({ "media_id": media_id, "url": url })))
    };
    run(st).unwrap_or_else(|e| e)
}

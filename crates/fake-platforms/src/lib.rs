//! mediavault-fake-platforms: in-process fakes of the WeChat Official Account API and the Sina
//! Weibo API. Linked by `demo`, `fake-platforms`, `bench` and the tests; never by a production
//! build (the binary's `demo` feature brings it in).
//!
//! The vault never reaches the internet, so tests and demo mode point it at
//! these fakes instead. They aim to be faithful where the vault's behaviour
//! depends on it (endpoints, JSON shapes, error codes, WeChat's two token
//! pools and their cancellation rules) and they record every request so a test
//! can assert exactly what reached "the platform".
//!
//! One router serves both platforms: WeChat lives under `/cgi-bin/`, Weibo
//! under `/oauth2/` and `/2/`, and the control API under `/_fake/`.
//!
//! The peer address is only known when the router is served with connect info
//! (as [`FakePlatforms::serve`] does). Without it the WeChat IP whitelist
//! cannot be checked and is skipped rather than failing every token call.

mod posts;
mod wechat;
mod weibo;

pub use wechat::PublishedArticle;
pub use weibo::PostedStatus;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequest, Path, Request, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// How long a Weibo access token registered with
/// [`FakePlatforms::add_weibo_app`] lives. Weibo grants ordinary apps 30-day
/// tokens; `FakeConfig` only carries WeChat's knobs so its public shape stays
/// as agreed.
pub const WEIBO_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Requests bigger than this are refused before recording; WeChat's own limit
/// for `uploadimg` is 1 MB, so real traffic never comes close.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// `advance` is capped so the fake clock cannot overflow `OffsetDateTime`.
const MAX_OFFSET: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

#[derive(Clone, Debug)]
pub struct FakeConfig {
    /// How long the previous classic token survives after a new one is issued.
    pub classic_overlap: Duration,
    /// Lifetime of WeChat access tokens (both pools).
    pub token_ttl: Duration,
    /// How long each platform call takes before it is answered (a real platform takes tens of
    /// milliseconds); zero by default. The control endpoints answer at once.
    pub response_delay: Duration,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            classic_overlap: Duration::from_secs(300),
            token_ttl: Duration::from_secs(7200),
            response_delay: Duration::ZERO,
        }
    }
}

/// One request as it reached the fake platform.
#[derive(Clone, Debug, Serialize)]
pub struct RecordedCall {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Lossy UTF-8 so binary uploads still show up without breaking JSON.
    pub body: String,
    /// On the fake's clock, so it lines up with token expiry after `advance`.
    pub at_unix: i64,
}

#[derive(Clone)]
pub struct FakePlatforms {
    state: Arc<Mutex<State>>,
}

pub(crate) struct State {
    config: FakeConfig,
    offset: Duration,
    calls: Vec<RecordedCall>,
    injections: HashMap<String, VecDeque<(i64, u32)>>,
    rng: SystemRandom,
    wechat: wechat::WechatState,
    weibo: weibo::WeiboState,
}

impl State {
    pub(crate) fn now(&self) -> OffsetDateTime {
        // The fake is an outside platform with its own clock (tests move it with `advance`), so
        // it reads the wall clock itself rather than share the vault's.
        #[allow(clippy::disallowed_methods)]
        let wall = OffsetDateTime::now_utc();
        wall + self.offset
    }

    /// Consumes one pending injected error for `path`, if any.
    /// What `clear_quota` resets: every queued 45009 (a spent daily quota) on every path.
    pub(crate) fn clear_quota_injections(&mut self) {
        for queue in self.injections.values_mut() {
            queue.retain(|(code, _)| *code != 45009);
        }
        self.injections.retain(|_, q| !q.is_empty());
    }

    pub(crate) fn take_injection(&mut self, path: &str) -> Option<i64> {
        let queue = self.injections.get_mut(path)?;
        let (code, remaining) = queue.front_mut()?;
        let code = *code;
        *remaining -= 1;
        if *remaining == 0 {
            queue.pop_front();
        }
        if queue.is_empty() {
            self.injections.remove(path);
        }
        Some(code)
    }

    pub(crate) fn random_bytes(&self, n: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; n];
        self.rng.fill(&mut buf).ok()?;
        Some(buf)
    }

    /// URL-safe base64 of `n` random bytes: the alphabet WeChat tokens use.
    pub(crate) fn random_b64(&self, n: usize) -> Option<String> {
        self.random_bytes(n).map(|b| URL_SAFE_NO_PAD.encode(b))
    }

    pub(crate) fn random_hex(&self, n: usize) -> Option<String> {
        self.random_bytes(n).map(hex::encode)
    }
}

/// A platform answer, produced while the state lock is held and turned into an
/// HTTP response after it is released.
pub(crate) struct Reply {
    status: StatusCode,
    body: Value,
    /// A redirect's target (Weibo's OAuth authorize page sends the browser back).
    location: Option<String>,
}

impl Reply {
    pub(crate) fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            location: None,
        }
    }

    pub(crate) fn with_status(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body,
            location: None,
        }
    }

    pub(crate) fn redirect(to: String) -> Self {
        Self {
            status: StatusCode::FOUND,
            body: Value::Null,
            location: Some(to),
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self.location {
            Some(to) => (self.status, [(axum::http::header::LOCATION, to)]).into_response(),
            None => (self.status, axum::Json(self.body)).into_response(),
        }
    }
}

/// What the platform handlers need from a request, gathered once so they can
/// run synchronously under the state lock.
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) peer: Option<IpAddr>,
}

impl Req {
    pub(crate) fn query_param(&self, name: &str) -> Option<&str> {
        lookup(&self.query, name)
    }
}

pub(crate) fn lookup<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl<S: Send + Sync> FromRequest<S> for Req {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let query = parse_urlencoded(req.uri().query().unwrap_or(""));
        let headers = req.headers().clone();
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ci| ci.0.ip());
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            method,
            path,
            query,
            headers,
            body,
            peer,
        })
    }
}

/// `application/x-www-form-urlencoded` decoding, written out because the
/// crate does not depend on `form_urlencoded` directly. Malformed escapes are
/// kept literally, as browsers and most servers do.
pub(crate) fn parse_urlencoded(input: &str) -> Vec<(String, String)> {
    input
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(part), String::new()),
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(&[hi, lo])) => hex_val(hi).zip(hex_val(lo)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock (only possible from a bug in a handler)
    // leaves the bookkeeping usable; refusing all later requests would hide
    // the original failure behind a cascade of unrelated ones.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakePlatforms {
    pub fn new(config: FakeConfig) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                config,
                offset: Duration::ZERO,
                calls: Vec::new(),
                injections: HashMap::new(),
                rng: SystemRandom::new(),
                wechat: wechat::WechatState::default(),
                weibo: weibo::WeiboState::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Runs a platform handler under the state lock.
    fn handle(&self, req: &Req, f: fn(&mut State, &Req) -> Reply) -> Reply {
        f(&mut self.lock(), req)
    }

    pub fn router(&self) -> Router {
        macro_rules! platform {
            ($f:path) => {
                any(
                    |AxState(fp): AxState<FakePlatforms>, req: Req| async move {
                        fp.handle(&req, $f)
                    },
                )
            };
        }
        Router::new()
            .route("/cgi-bin/token", platform!(wechat::token))
            .route("/cgi-bin/stable_token", platform!(wechat::stable_token))
            .route("/cgi-bin/getcallbackip", platform!(wechat::callback_ip))
            .route("/cgi-bin/clear_quota/v2", platform!(wechat::clear_quota))
            .route("/cgi-bin/draft/add", platform!(wechat::draft_add))
            .route(
                "/cgi-bin/freepublish/submit",
                platform!(wechat::freepublish_submit),
            )
            .route("/cgi-bin/media/uploadimg", platform!(wechat::upload_img))
            .route(
                "/cgi-bin/material/add_material",
                platform!(wechat::add_material),
            )
            .route(
                "/cgi-bin/freepublish/get",
                platform!(wechat::freepublish_get),
            )
            .route("/oauth2/get_token_info", platform!(weibo::get_token_info))
            .route("/oauth2/authorize", platform!(weibo::oauth_authorize))
            .route("/oauth2/access_token", platform!(weibo::oauth_access_token))
            .route("/2/statuses/share.json", platform!(weibo::share))
            .merge(self.posts_routes())
            .route("/_fake/calls", get(ctl_calls).delete(ctl_clear_calls))
            .route("/_fake/published", get(ctl_published))
            .route("/_fake/wechat/apps", post(ctl_wechat_app))
            .route("/_fake/wechat/whitelist", post(ctl_whitelist))
            .route(
                "/_fake/wechat/token_fetches/{app_id}",
                get(ctl_token_fetches),
            )
            .route("/_fake/weibo/apps", post(ctl_weibo_app))
            .route("/_fake/inject", post(ctl_inject))
            .route("/_fake/advance", post(ctl_advance))
            .layer(middleware::from_fn_with_state(self.clone(), record))
            .with_state(self.clone())
    }

    /// Serves [`Self::router`] with connect info (so the IP whitelist works)
    /// until the returned future is dropped or the listener fails.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let app = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).await
    }

    pub fn add_wechat_app(&self, app_id: &str, app_secret: &str) {
        let mut st = self.lock();
        let now = st.now();
        st.wechat.add_app(app_id, app_secret, now);
    }

    pub fn add_weibo_app(&self, app_key: &str, app_secret: &str, access_token: &str, uid: u64) {
        let mut st = self.lock();
        let now = st.now();
        st.weibo
            .add_app(app_key, app_secret, access_token, uid, now);
    }

    /// The account's own users delete a published article in the WeChat console (not through the
    /// API): `freepublish/get` then reports `publish_status` 5. False if it is not live.
    pub fn user_deletes_wechat_article(&self, app_id: &str, article_id: &str) -> bool {
        posts::gone_wechat(&mut self.lock(), app_id, article_id, 5)
    }

    /// WeChat blocks a published article after success: `freepublish/get` then reports
    /// `publish_status` 6. False if it is not live.
    pub fn platform_blocks_wechat_article(&self, app_id: &str, article_id: &str) -> bool {
        posts::gone_wechat(&mut self.lock(), app_id, article_id, 6)
    }

    /// A Weibo status becomes restricted (`visible.type` other than 0), as when it is set to
    /// only-me or hidden. False if there is no such status.
    pub fn restrict_weibo_status(&self, status_id: &str, visible: u8) -> bool {
        let mut st = self.lock();
        match st.weibo.posted.iter_mut().find(|s| s.idstr == status_id) {
            Some(s) => {
                s.visible = visible;
                true
            }
            None => false,
        }
    }

    /// The account's owner deletes a Weibo status on weibo.com: `statuses/show` then answers
    /// 20101. False if there is no such status.
    pub fn user_deletes_weibo_status(&self, status_id: &str) -> bool {
        let mut st = self.lock();
        let before = st.weibo.posted.len();
        st.weibo.posted.retain(|s| s.idstr != status_id);
        st.weibo.posted.len() != before
    }

    /// Freezes (or unfreezes) the app's AppSecret, as an administrator can in the WeChat
    /// console: the token endpoints then answer 40243 for it.
    pub fn freeze_app_secret(&self, app_id: &str, frozen: bool) {
        self.lock().wechat.set_frozen(app_id, frozen);
    }

    /// `None` removes the whitelist. May be set before the app is registered.
    pub fn set_ip_whitelist(&self, app_id: &str, ips: Option<Vec<IpAddr>>) {
        self.lock().wechat.set_whitelist(app_id, ips);
    }

    /// Queues `times` answers of `errcode` for `path`. Injections for the same
    /// path queue up behind each other. An injection is only consumed by a
    /// request that gets as far as the injection check (the check order is
    /// documented in `wechat.rs` and `weibo.rs`). Paths under `/oauth2/`
    /// and `/2/` answer in Weibo's error format, the rest in WeChat's.
    pub fn inject_error(&self, path: &str, errcode: i64, times: u32) {
        if times == 0 {
            return;
        }
        self.lock()
            .injections
            .entry(path.to_owned())
            .or_default()
            .push_back((errcode, times));
    }

    pub fn advance(&self, by: Duration) {
        let mut st = self.lock();
        st.offset = st.offset.saturating_add(by).min(MAX_OFFSET);
    }

    /// The articles published on a WeChat app, oldest first, with their content.
    pub fn wechat_published(&self, app_id: &str) -> Vec<PublishedArticle> {
        self.lock()
            .wechat
            .published
            .iter()
            .filter(|p| p.app_id == app_id)
            .cloned()
            .collect()
    }

    /// The statuses posted on a Weibo account (by uid), oldest first, with their text.
    pub fn weibo_statuses(&self, uid: u64) -> Vec<PostedStatus> {
        self.lock()
            .weibo
            .posted
            .iter()
            .filter(|s| s.uid == uid)
            .cloned()
            .collect()
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.lock().calls.clone()
    }

    /// From now on each platform call waits `delay` before it is answered.
    pub fn set_response_delay(&self, delay: Duration) {
        self.lock().config.response_delay = delay;
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Successful answers from either token endpoint for this app, including
    /// stable-pool answers that returned the still-valid current token: each
    /// is a round trip the vault chose to make.
    pub fn token_fetches(&self, app_id: &str) -> usize {
        self.lock().wechat.token_fetches(app_id)
    }
}

/// Posts (issue 10): listing, fetch, delete, publish status, and outsider publishing.
impl FakePlatforms {
    fn posts_routes(&self) -> Router<FakePlatforms> {
        macro_rules! platform {
            ($f:path) => {
                any(
                    |AxState(fp): AxState<FakePlatforms>, req: Req| async move {
                        fp.handle(&req, $f)
                    },
                )
            };
        }
        Router::new()
            .route(
                "/cgi-bin/freepublish/batchget",
                platform!(posts::wechat_batchget),
            )
            .route(
                "/cgi-bin/freepublish/getarticle",
                platform!(posts::wechat_getarticle),
            )
            .route(
                "/cgi-bin/freepublish/delete",
                platform!(posts::wechat_delete),
            )
            .route(
                "/2/statuses/user_timeline.json",
                platform!(posts::weibo_timeline),
            )
            .route("/2/statuses/show.json", platform!(posts::weibo_show))
            .route("/2/statuses/destroy.json", platform!(posts::weibo_destroy))
            .route("/_fake/wechat/outsider_post", post(ctl_outsider_wechat))
            .route("/_fake/weibo/outsider_post", post(ctl_outsider_weibo))
            .route(
                "/_fake/wechat/pool_refreshes/{app_id}",
                get(ctl_pool_refreshes),
            )
    }

    /// Someone holding the AppSecret publishes an article directly on WeChat, not through the
    /// vault (normal-mode `stable_token`, so no token of the vault's is cancelled). Returns the
    /// article id, or `None` if the app or the secret is wrong.
    pub fn outsider_publish_wechat(
        &self,
        app_id: &str,
        app_secret: &str,
        title: &str,
        content: &str,
    ) -> Option<String> {
        posts::outsider_wechat(&mut self.lock(), app_id, app_secret, title, content)
    }

    /// Someone holding the account's Weibo access token posts a status directly.
    pub fn outsider_publish_weibo(&self, access_token: &str, text: &str) -> Option<u64> {
        posts::outsider_weibo(&mut self.lock(), access_token, text)
    }

    /// Per token pool: (stable tokens issued with `force_refresh`, classic tokens issued).
    pub fn pool_refreshes(&self, app_id: &str) -> (usize, usize) {
        self.lock().wechat.pool_refreshes(app_id)
    }
}

#[derive(Deserialize)]
struct OutsiderWechatBody {
    app_id: String,
    app_secret: String,
    title: String,
    content: String,
}

async fn ctl_outsider_wechat(
    AxState(fp): AxState<FakePlatforms>,
    axum::Json(b): axum::Json<OutsiderWechatBody>,
) -> Response {
    match fp.outsider_publish_wechat(&b.app_id, &b.app_secret, &b.title, &b.content) {
        Some(id) => axum::Json(json!({ "article_id": id })).into_response(),
        None => StatusCode::FORBIDDEN.into_response(),
    }
}

#[derive(Deserialize)]
struct OutsiderWeiboBody {
    access_token: String,
    text: String,
}

async fn ctl_outsider_weibo(
    AxState(fp): AxState<FakePlatforms>,
    axum::Json(b): axum::Json<OutsiderWeiboBody>,
) -> Response {
    match fp.outsider_publish_weibo(&b.access_token, &b.text) {
        Some(id) => axum::Json(json!({ "id": id })).into_response(),
        None => StatusCode::FORBIDDEN.into_response(),
    }
}

async fn ctl_pool_refreshes(
    AxState(fp): AxState<FakePlatforms>,
    Path(app_id): Path<String>,
) -> axum::Json<Value> {
    let (stable_forced, classic) = fp.pool_refreshes(&app_id);
    axum::Json(json!({ "app_id": app_id, "stable_forced": stable_forced, "classic": classic }))
}

/// Records every non-control request before routing it on.
async fn record(AxState(fp): AxState<FakePlatforms>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/_fake/") {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let delay = {
        let mut st = fp.lock();
        let at_unix = st.now().unix_timestamp();
        st.calls.push(RecordedCall {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or("").to_owned(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
            at_unix,
        });
        st.config.response_delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

async fn ctl_calls(AxState(fp): AxState<FakePlatforms>) -> axum::Json<Vec<RecordedCall>> {
    axum::Json(fp.calls())
}

/// Everything published on either platform, for the demo and for people looking at the fake.
async fn ctl_published(AxState(fp): AxState<FakePlatforms>) -> axum::Json<Value> {
    let st = fp.lock();
    axum::Json(json!({ "wechat": st.wechat.published, "weibo": st.weibo.posted }))
}

async fn ctl_clear_calls(AxState(fp): AxState<FakePlatforms>) -> StatusCode {
    fp.clear_calls();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct WechatAppBody {
    app_id: String,
    app_secret: String,
}

async fn ctl_wechat_app(
    AxState(fp): AxState<FakePlatforms>,
    axum::Json(b): axum::Json<WechatAppBody>,
) -> StatusCode {
    fp.add_wechat_app(&b.app_id, &b.app_secret);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct WhitelistBody {
    app_id: String,
    ips: Option<Vec<IpAddr>>,
}

async fn ctl_whitelist(
    AxState(fp): AxState<FakePlatforms>,
    axum::Json(b): axum::Json<WhitelistBody>,
) -> StatusCode {
    fp.set_ip_whitelist(&b.app_id, b.ips);
    StatusCode::NO_CONTENT
}

async fn ctl_token_fetches(
    AxState(fp): AxState<FakePlatforms>,
    Path(app_id): Path<String>,
) -> axum::Json<Value> {
    let count = fp.token_fetches(&app_id);
    axum::Json(json!({ "app_id": app_id, "count": count }))
}

#[derive(Deserialize)]
struct WeiboAppBody {
    app_key: String,
    app_secret: String,
    access_token: String,
    uid: u64,
}

async fn ctl_weibo_app(
    AxState(fp): AxState<FakePlatforms>,
    axum::Json(b): axum::Json<WeiboAppBody>,
) -> StatusCode {
    fp.add_weibo_app(&b.app_key, &b.app_secret, &b.access_token, b.uid);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct InjectBody {
    path: String,
    errcode: i64,
    times: u32,
}

async fn ctl_inject(
    AxState(fp): AxState<FakePlatforms>,
    axum::Json(b): axum::Json<InjectBody>,
) -> StatusCode {
    fp.inject_error(&b.path, b.errcode, b.times);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct AdvanceBody {
    seconds: u64,
}

async fn ctl_advance(
    AxState(fp): AxState<FakePlatforms>,
    axum::Json(b): axum::Json<AdvanceBody>,
) -> StatusCode {
    fp.advance(Duration::from_secs(b.seconds));
    StatusCode::NO_CONTENT
}

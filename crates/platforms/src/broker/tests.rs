// Test helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The broker against the fake platforms, served on a real port.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::*;
use crate::TransportKind;
use mediavault_fake_platforms::{FakeConfig, FakePlatforms};

const ACCOUNT: &str = "gov-wechat";
const APP: &str = "wx_test_app";
const SECRET: &str = "OLDSECRETMARKER0123456789abcdef";
const NEW_SECRET: &str = "NEWSECRETMARKER0123456789abcdef";
const WB_ACCOUNT: &str = "gov-weibo";
const WB_KEY: &str = "wb_app_key";
const WB_TOKEN: &str = "2.00WEIBOTOKENMARKER";

struct Env {
    fake: FakePlatforms,
    broker: Arc<Broker>,
    events: mpsc::UnboundedReceiver<SecurityEvent>,
    clock: Clock,
    base: String,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Env {
    async fn new() -> Self {
        let fake = FakePlatforms::new(FakeConfig {
            classic_overlap: Duration::ZERO,
            ..FakeConfig::default()
        });
        fake.add_wechat_app(APP, SECRET);
        fake.add_weibo_app(WB_KEY, "wb_secret", WB_TOKEN, 42);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(fake.clone().serve(listener));
        let clock = Clock::system();
        let (tx, events) = mpsc::unbounded_channel();
        let broker = Arc::new(Broker::new(&config(&base), clock.clone(), tx).unwrap());
        Self {
            fake,
            broker,
            events,
            clock,
            base,
            server,
        }
    }

    fn events(&mut self) -> Vec<SecurityEvent> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }

    fn kinds(&mut self) -> Vec<SecurityEventKind> {
        self.events().into_iter().map(|e| e.kind).collect()
    }

    async fn draft(&self, cred: &Credential) -> PlatformResponse {
        self.broker
            .forward(ACCOUNT, Platform::Wechat, cred, draft_request())
            .await
            .unwrap()
    }

    /// Someone outside the vault who has the AppSecret.
    async fn outsider_force_refresh(&self) {
        let answer: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/cgi-bin/stable_token", self.base))
            .json(&serde_json::json!({
                "grant_type": "client_credential",
                "appid": APP,
                "secret": SECRET,
                "force_refresh": true,
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(answer["access_token"].is_string(), "{answer}");
    }

    async fn outsider_classic(&self) {
        let answer: serde_json::Value = reqwest::Client::new()
            .get(format!(
                "{}/cgi-bin/token?grant_type=client_credential&appid={APP}&secret={SECRET}",
                self.base
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(answer["access_token"].is_string(), "{answer}");
    }

    fn stable_fetches(&self) -> usize {
        self.fake
            .calls()
            .iter()
            .filter(|c| c.path == "/cgi-bin/stable_token")
            .count()
    }
}

fn config(base: &str) -> PlatformsConfig {
    PlatformsConfig {
        wechat_base_url: base.to_owned(),
        weibo_base_url: base.to_owned(),
        canary_interval_seconds: 60,
        heartbeat_interval_seconds: 60,
        request_timeout_seconds: 5,
    }
}

fn wechat_cred(secret: &str) -> Credential {
    Credential {
        app_id: Some(APP.to_owned()),
        app_secret: Some(SecretString::from(secret)),
        ..Default::default()
    }
}

fn weibo_cred(token: &str) -> Credential {
    Credential {
        app_key: Some(WB_KEY.to_owned()),
        app_secret: Some(SecretString::from("wb_secret")),
        access_token: Some(SecretString::from(token)),
        ..Default::default()
    }
}

fn draft_request() -> ApiRequest<'static> {
    ApiRequest {
        method: Method::POST,
        path: "/cgi-bin/draft/add",
        query: "",
        body: Bytes::from_static(br#"{"articles":[{"title":"t","content":"c"}]}"#),
        content_type: Some("application/json"),
    }
}

fn assert_draft_ok(r: &PlatformResponse) {
    assert_eq!(r.status, 200);
    assert!(!r.is_error(), "{:?}", r.errcode);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(v["media_id"].is_string(), "{v}");
}

#[tokio::test]
async fn fifty_concurrent_forwards_on_a_cold_cache_share_one_fetch() {
    let env = Env::new().await;
    let cred = Arc::new(wechat_cred(SECRET));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let broker = Arc::clone(&env.broker);
        let cred = Arc::clone(&cred);
        tasks.push(tokio::spawn(async move {
            broker
                .forward(ACCOUNT, Platform::Wechat, &cred, draft_request())
                .await
        }));
    }
    for t in tasks {
        assert_draft_ok(&t.await.unwrap().unwrap());
    }
    assert_eq!(env.fake.token_fetches(APP), 1);
    assert_eq!(env.stable_fetches(), 1);
}

#[tokio::test]
async fn outsider_force_refresh_is_caught_by_the_canary_and_the_broker_recovers() {
    let mut env = Env::new().await;
    let cred = wechat_cred(SECRET);
    let accounts = vec![(ACCOUNT.to_owned(), cred.clone())];
    assert_draft_ok(&env.draft(&cred).await);

    let first = env.broker.canary_round(&accounts).await;
    let outcome = first[0].1.clone().unwrap();
    assert!(outcome.canary_renewed && outcome.stable_checked);
    assert!(!outcome.canary_tripped && !outcome.stable_cancelled);
    assert!(env.events().is_empty());

    env.outsider_force_refresh().await;
    let second = env.broker.canary_round(&accounts).await;
    let outcome = second[0].1.clone().unwrap();
    assert!(outcome.stable_cancelled && !outcome.canary_tripped);
    let events = env.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].account, ACCOUNT);
    assert_eq!(events[0].kind, SecurityEventKind::TokenCancelledExternally);
    assert_eq!(
        events[0].kind.as_str(),
        "platform.token_cancelled_externally"
    );
    assert!(!events[0].detail.contains(SECRET));

    // The canary already renewed the stable token: the next call works at once, with no retry
    // and no second alarm.
    let before = env.fake.calls().len();
    assert_draft_ok(&env.draft(&cred).await);
    assert_eq!(env.fake.calls().len(), before + 1);
    assert!(env.events().is_empty());
}

#[tokio::test]
async fn outsider_classic_fetch_trips_the_canary() {
    let mut env = Env::new().await;
    let cred = wechat_cred(SECRET);
    let accounts = vec![(ACCOUNT.to_owned(), cred.clone())];
    assert_draft_ok(&env.draft(&cred).await);
    env.broker.canary_round(&accounts).await[0]
        .1
        .clone()
        .unwrap();
    assert!(env.events().is_empty());

    env.outsider_classic().await;
    let outcome = env.broker.canary_check(ACCOUNT, &cred).await.unwrap();
    assert!(outcome.canary_tripped && outcome.canary_renewed);
    assert!(!outcome.stable_cancelled, "the stable pool is independent");
    let events = env.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, SecurityEventKind::CanaryTripped);
    assert_eq!(events[0].kind.as_str(), "platform.canary_tripped");

    // A fresh canary was fetched: the next round is quiet, and publishing never stopped.
    let outcome = env.broker.canary_check(ACCOUNT, &cred).await.unwrap();
    assert_eq!(
        outcome,
        CanaryOutcome {
            stable_checked: true,
            ..CanaryOutcome::default()
        }
    );
    assert_draft_ok(&env.draft(&cred).await);
    assert!(env.events().is_empty());
}

#[tokio::test]
async fn forward_reports_an_external_cancellation_and_retries_once() {
    let mut env = Env::new().await;
    let cred = wechat_cred(SECRET);
    assert_draft_ok(&env.draft(&cred).await);
    env.outsider_force_refresh().await;

    assert_draft_ok(&env.draft(&cred).await);
    assert_eq!(
        env.kinds(),
        vec![SecurityEventKind::TokenCancelledExternally]
    );
    let drafts = env
        .fake
        .calls()
        .iter()
        .filter(|c| c.path == "/cgi-bin/draft/add")
        .count();
    assert_eq!(drafts, 3, "first call, rejected call, one retry");
    // Normal mode handed back the outsider's token, so no force_refresh was needed.
    let forced = env
        .fake
        .calls()
        .iter()
        .filter(|c| c.path == "/cgi-bin/stable_token" && c.body.contains("\"force_refresh\":true"))
        .count();
    assert_eq!(forced, 1, "only the outsider's");
}

#[tokio::test]
async fn an_expired_token_is_renewed_without_an_alarm() {
    let mut env = Env::new().await;
    let cred = wechat_cred(SECRET);
    assert_draft_ok(&env.draft(&cred).await);
    // The platform's clock runs past expiry while the vault's does not: WeChat says 42001.
    env.fake.advance(Duration::from_secs(7300));
    assert_draft_ok(&env.draft(&cred).await);
    assert!(env.events().is_empty());
    assert_eq!(env.fake.token_fetches(APP), 2);
}

#[tokio::test]
async fn the_cache_lives_by_the_vault_clock() {
    let env = Env::new().await;
    let cred = wechat_cred(SECRET);
    let t1 = env.broker.wechat_token(ACCOUNT, &cred).await.unwrap();
    let t2 = env.broker.wechat_token(ACCOUNT, &cred).await.unwrap();
    assert_eq!(t1.expose(), t2.expose());
    assert_eq!(env.fake.token_fetches(APP), 1);

    // Inside the refresh margin the broker asks again; WeChat re-serves the live token, which is
    // then kept until its own expiry instead of being asked for on every call.
    env.clock.advance(Duration::from_secs(7200 - 200));
    let t3 = env.broker.wechat_token(ACCOUNT, &cred).await.unwrap();
    assert_eq!(env.fake.token_fetches(APP), 2);
    env.broker.wechat_token(ACCOUNT, &cred).await.unwrap();
    assert_eq!(env.fake.token_fetches(APP), 2);
    assert_eq!(t1.expose(), t3.expose());

    let lease = env.broker.wechat_token_lease(ACCOUNT, &cred).await.unwrap();
    assert!(lease.expires_in > 0 && lease.expires_in <= 7200);
}

#[tokio::test]
async fn after_rotation_and_invalidate_only_the_new_secret_is_used() {
    let mut env = Env::new().await;
    let old = wechat_cred(SECRET);
    assert_draft_ok(&env.draft(&old).await);
    env.broker
        .canary_round(&[(ACCOUNT.to_owned(), old.clone())])
        .await;

    // The admin resets the AppSecret at WeChat (which kills every token issued under the old
    // one) and rotates it in the vault.
    env.fake.add_wechat_app(APP, NEW_SECRET);
    env.broker.invalidate(ACCOUNT);
    let mark = env.fake.calls().len();

    let new = wechat_cred(NEW_SECRET);
    assert_draft_ok(&env.draft(&new).await);
    let round = env
        .broker
        .canary_round(&[(ACCOUNT.to_owned(), new.clone())])
        .await;
    let outcome = round[0].1.clone().unwrap();
    assert!(!outcome.canary_tripped && !outcome.stable_cancelled);
    env.broker
        .verify_credential(Platform::Wechat, &new)
        .await
        .unwrap();
    assert!(env.events().is_empty(), "a rotation is not a leak");

    let after = &env.fake.calls()[mark..];
    assert!(after.iter().any(|c| c.body.contains(NEW_SECRET)));
    for c in after {
        assert!(
            !c.query.contains(SECRET) && !c.body.contains(SECRET),
            "{} {}",
            c.path,
            c.query
        );
    }
}

#[tokio::test]
async fn a_changed_credential_is_not_served_an_old_token_even_without_invalidate() {
    let mut env = Env::new().await;
    assert_draft_ok(&env.draft(&wechat_cred(SECRET)).await);
    env.fake.add_wechat_app(APP, NEW_SECRET);
    assert_draft_ok(&env.draft(&wechat_cred(NEW_SECRET)).await);
    assert!(env.events().is_empty());
}

#[tokio::test]
async fn the_app_secret_only_ever_reaches_token_endpoints() {
    let env = Env::new().await;
    let cred = wechat_cred(SECRET);
    assert_draft_ok(&env.draft(&cred).await);
    let upload = ApiRequest {
        method: Method::POST,
        path: "/cgi-bin/media/uploadimg",
        query: "type=image&access_token=CALLER",
        body: Bytes::from_static(b"\x89PNG fake image"),
        content_type: Some("image/png"),
    };
    let r = env
        .broker
        .forward(ACCOUNT, Platform::Wechat, &cred, upload)
        .await
        .unwrap();
    assert!(!r.is_error(), "{:?}", r.errmsg);
    env.broker
        .canary_round(&[(ACCOUNT.to_owned(), cred.clone())])
        .await;
    env.broker.force_refresh(ACCOUNT, &cred).await.unwrap();
    assert_draft_ok(&env.draft(&cred).await);
    env.broker
        .verify_credential(Platform::Wechat, &cred)
        .await
        .unwrap();

    let calls = env.fake.calls();
    assert!(calls.iter().any(|c| c.path == "/cgi-bin/token"));
    for c in &calls {
        let has_secret = c.query.contains(SECRET) || c.body.contains(SECRET);
        let token_endpoint = c.path == "/cgi-bin/stable_token" || c.path == "/cgi-bin/token";
        assert_eq!(has_secret, token_endpoint, "{} {}", c.method, c.path);
        if !token_endpoint {
            assert!(!c.query.contains("CALLER"), "caller's token replaced");
            assert_eq!(c.query.matches("access_token=").count(), 1);
        }
    }
}

#[tokio::test]
async fn platform_errors_come_back_with_their_codes() {
    let env = Env::new().await;
    let cred = wechat_cred(SECRET);

    // An API call's error is the platform's answer, passed through.
    env.fake.inject_error("/cgi-bin/draft/add", 45009, 1);
    let r = env.draft(&cred).await;
    assert_eq!((r.status, r.errcode), (200, Some(45009)));
    assert!(r.is_error());
    assert_eq!(r.error("wechat").and_then(|e| e.code()), Some(45009));

    // Failing to get a token is an error: there is no answer to pass on.
    env.broker.invalidate(ACCOUNT);
    env.fake.inject_error("/cgi-bin/stable_token", 40164, 1);
    let e = env
        .broker
        .forward(ACCOUNT, Platform::Wechat, &cred, draft_request())
        .await
        .unwrap_err();
    assert_eq!((e.platform(), e.code()), ("wechat", Some(40164)));
    assert!(!e.to_string().contains(SECRET));
    assert_draft_ok(&env.draft(&cred).await);
}

#[tokio::test]
async fn weibo_calls_get_the_stored_token_injected() {
    let env = Env::new().await;
    let cred = weibo_cred(WB_TOKEN);
    let share = |method: Method, query: &'static str| ApiRequest {
        method,
        path: "/2/statuses/share.json",
        query,
        body: Bytes::from_static(b"status=hello%20world&access_token=EVIL"),
        content_type: Some("application/x-www-form-urlencoded; charset=utf-8"),
    };
    let r = env
        .broker
        .forward(
            WB_ACCOUNT,
            Platform::Weibo,
            &cred,
            share(Method::POST, "access_token=EVIL2&x=1"),
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.errcode), (200, None));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["text"], "hello world");
    let call = env.fake.calls().pop().unwrap();
    assert_eq!(
        call.body,
        format!("status=hello+world&access_token={WB_TOKEN}")
    );
    assert_eq!(call.query, "x=1");

    // GET: the token goes into the query; Weibo answers its own error format.
    let r = env
        .broker
        .forward(
            WB_ACCOUNT,
            Platform::Weibo,
            &cred,
            ApiRequest {
                body: Bytes::new(),
                content_type: None,
                ..share(Method::GET, "access_token=EVIL2")
            },
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.errcode), (400, Some(10021)));
    let call = env.fake.calls().pop().unwrap();
    assert_eq!(call.query, format!("access_token={WB_TOKEN}"));

    env.fake.inject_error("/2/statuses/share.json", 10023, 1);
    let r = env
        .broker
        .forward(WB_ACCOUNT, Platform::Weibo, &cred, share(Method::POST, ""))
        .await
        .unwrap();
    assert_eq!((r.status, r.errcode), (403, Some(10023)));
    assert_eq!(r.error("weibo").and_then(|e| e.code()), Some(10023));

    let r = env
        .broker
        .forward(
            WB_ACCOUNT,
            Platform::Weibo,
            &weibo_cred("2.00REVOKED"),
            share(Method::POST, ""),
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.errcode), (403, Some(21332)));
}

#[tokio::test]
async fn heartbeats_verify_credentials_and_report_refusals() {
    let mut env = Env::new().await;
    env.broker
        .heartbeat(ACCOUNT, Platform::Wechat, &wechat_cred(SECRET))
        .await
        .unwrap();
    let left = env
        .broker
        .heartbeat(WB_ACCOUNT, Platform::Weibo, &weibo_cred(WB_TOKEN))
        .await
        .unwrap();
    // The fake's Weibo tokens live 30 days, as the platform's default grant.
    assert!(
        left.is_some_and(|s| (29 * 86_400..=30 * 86_400).contains(&s)),
        "{left:?}"
    );
    assert!(env.events().is_empty());

    let e = env
        .broker
        .heartbeat(ACCOUNT, Platform::Wechat, &wechat_cred("WRONGSECRETMARKER"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(40125));
    let e = env
        .broker
        .heartbeat(WB_ACCOUNT, Platform::Weibo, &weibo_cred("2.00WRONGTOKEN"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(21332));
    let mut other_app = weibo_cred(WB_TOKEN);
    other_app.app_key = Some("someone_else".to_owned());
    assert!(matches!(
        env.broker
            .verify_credential(Platform::Weibo, &other_app)
            .await,
        Err(PlatformError::Refused { .. })
    ));

    let events = env.events();
    let kinds: Vec<_> = events
        .iter()
        .map(|e| (e.account.as_str(), e.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (ACCOUNT, SecurityEventKind::HeartbeatFailed),
            (WB_ACCOUNT, SecurityEventKind::HeartbeatFailed)
        ]
    );
    assert_eq!(events[0].kind.as_str(), "platform.heartbeat_failed");
    for e in &events {
        assert!(!e.detail.contains("WRONGSECRETMARKER") && !e.detail.contains("WRONGTOKEN"));
    }
}

#[tokio::test]
async fn refused_paths_and_credentials() {
    let env = Env::new().await;
    let cred = wechat_cred(SECRET);
    for path in [
        "/cgi-bin/stable_token",
        "/cgi-bin/token",
        "/cgi-bin/../_fake/calls",
    ] {
        let e = env
            .broker
            .forward(
                ACCOUNT,
                Platform::Wechat,
                &cred,
                ApiRequest {
                    path,
                    ..draft_request()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(e, PlatformError::Refused { .. }), "{path}: {e}");
    }
    let e = env
        .broker
        .forward(
            WB_ACCOUNT,
            Platform::Weibo,
            &weibo_cred(WB_TOKEN),
            ApiRequest {
                path: "/oauth2/revokeoauth2",
                ..draft_request()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, PlatformError::Refused { .. }), "{e}");
    let e = env
        .broker
        .forward(
            ACCOUNT,
            Platform::Wechat,
            &Credential::default(),
            draft_request(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, PlatformError::Refused { .. }), "{e}");
    let e = env
        .broker
        .forward(ACCOUNT, Platform::Generic, &cred, draft_request())
        .await
        .unwrap_err();
    assert!(matches!(e, PlatformError::Refused { .. }), "{e}");
    // Nothing reached the platform.
    assert!(env.fake.calls().is_empty());
}

#[tokio::test]
async fn transport_errors_name_no_secret() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (tx, _rx) = mpsc::unbounded_channel();
    let broker = Broker::new(&config(&base), Clock::system(), tx).unwrap();
    let cred = wechat_cred(SECRET);
    let e = broker.canary_check(ACCOUNT, &cred).await.unwrap_err();
    assert_eq!(
        e,
        PlatformError::Transport {
            platform: "wechat",
            kind: TransportKind::Connect
        }
    );
    let shown = format!("{e} {e:?}");
    assert!(
        !shown.contains(SECRET) && !shown.contains("secret="),
        "{shown}"
    );
    let e = broker
        .forward(
            WB_ACCOUNT,
            Platform::Weibo,
            &weibo_cred(WB_TOKEN),
            draft_request(),
        )
        .await
        .unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(WB_TOKEN), "{shown}");
}

#[tokio::test]
async fn the_twenty_first_forced_refresh_of_a_day_is_refused_before_wechat_sees_it() {
    let env = Env::new().await;
    let cred = wechat_cred(SECRET);
    let app = cred.app_id.clone().unwrap();
    assert_eq!(env.broker.wechat_budget(&app).force_refreshes_left, 20);
    for _ in 0..20 {
        env.broker.force_refresh(ACCOUNT, &cred).await.unwrap();
    }
    let budget = env.broker.wechat_budget(&app);
    assert_eq!(budget.force_refreshes_left, 0);
    let e = env.broker.force_refresh(ACCOUNT, &cred).await.unwrap_err();
    assert!(
        e.to_string().contains("20 force_refresh") && e.to_string().contains("Beijing"),
        "{e}"
    );
    // The next day (midnight Beijing time) the budget is whole again, at the vault and at WeChat
    // (the fake counts too, and would answer 45009).
    let to_midnight = std::time::Duration::from_secs((budget.resets_at - env.clock.unix()) as u64);
    env.clock.advance(to_midnight);
    env.fake.advance(to_midnight);
    assert_eq!(env.broker.wechat_budget(&app).force_refreshes_left, 20);
    env.broker.force_refresh(ACCOUNT, &cred).await.unwrap();
}

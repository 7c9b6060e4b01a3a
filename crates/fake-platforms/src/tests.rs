use std::time::Duration;

use serde_json::{Value, json};

use super::*;

const APP: &str = "wx1234567890abcdef";
const SECRET: &str = "s3cr3t-0123456789abcdef0123456789";

struct Harness {
    fp: FakePlatforms,
    base: String,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn start() -> Harness {
    let fp = FakePlatforms::new(FakeConfig::default());
    fp.add_wechat_app(APP, SECRET);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(fp.clone().serve(listener));
    Harness {
        fp,
        base,
        http: reqwest::Client::new(),
        server,
    }
}

impl Harness {
    async fn get(&self, path_and_query: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "WeChat always answers 200");
        resp.json().await.unwrap()
    }

    async fn post_json(&self, path_and_query: &str, body: &Value) -> Value {
        self.post_raw(path_and_query, body.to_string()).await
    }

    async fn post_raw(&self, path_and_query: &str, body: String) -> Value {
        let resp = self
            .http
            .post(format!("{}{path_and_query}", self.base))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "WeChat always answers 200");
        resp.json().await.unwrap()
    }

    async fn classic(&self) -> String {
        let v = self
            .get(&format!(
                "/cgi-bin/token?grant_type=client_credential&appid={APP}&secret={SECRET}"
            ))
            .await;
        assert_eq!(v["expires_in"], 7200, "{v}");
        v["access_token"].as_str().unwrap().to_owned()
    }

    async fn stable(&self, force: bool) -> Value {
        self.post_json(
            "/cgi-bin/stable_token",
            &json!({"grant_type":"client_credential","appid":APP,"secret":SECRET,"force_refresh":force}),
        )
        .await
    }

    async fn stable_token(&self, force: bool) -> String {
        let v = self.stable(force).await;
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// errcode of an API call made with `token` (0 on success).
    async fn use_token(&self, token: &str) -> i64 {
        let v = self
            .get(&format!("/cgi-bin/getcallbackip?access_token={token}"))
            .await;
        if v["ip_list"].is_array() {
            0
        } else {
            v["errcode"].as_i64().unwrap()
        }
    }

    async fn weibo(&self, path: &str, form: &str, auth: Option<&str>) -> (u16, Value) {
        let mut rb = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned());
        if let Some(t) = auth {
            rb = rb.header("authorization", format!("OAuth2 {t}"));
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }
}

#[tokio::test]
async fn classic_token_shape_and_previous_cancelled_only_after_overlap() {
    let h = start().await;
    let t1 = h.classic().await;
    assert_eq!(t1.len(), 136);
    assert!(
        t1.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_eq!(h.use_token(&t1).await, 0);

    let t2 = h.classic().await;
    assert_ne!(t1, t2);
    assert_eq!(h.use_token(&t1).await, 0, "previous survives the overlap");
    h.fp.advance(Duration::from_secs(299));
    assert_eq!(h.use_token(&t1).await, 0, "still inside the 300 s overlap");
    h.fp.advance(Duration::from_secs(2));
    assert_eq!(h.use_token(&t1).await, 40001, "cancelled after overlap");
    assert_eq!(h.use_token(&t2).await, 0);

    // Two fetches in quick succession: only the immediate predecessor lives.
    let t3 = h.classic().await;
    let t4 = h.classic().await;
    assert_eq!(
        h.use_token(&t2).await,
        40001,
        "older than previous dies at once"
    );
    assert_eq!(h.use_token(&t3).await, 0);
    assert_eq!(h.use_token(&t4).await, 0);
    assert_eq!(h.fp.token_fetches(APP), 4);
}

#[tokio::test]
async fn stable_normal_mode_returns_same_token_with_remaining_lifetime() {
    let h = start().await;
    let s1 = h.stable(false).await;
    assert_eq!(s1["expires_in"], 7200);
    h.fp.advance(Duration::from_secs(1000));
    let s2 = h.stable(false).await;
    assert_eq!(s1["access_token"], s2["access_token"]);
    let remaining = s2["expires_in"].as_i64().unwrap();
    assert!((6195..=6200).contains(&remaining), "{remaining}");
    assert_eq!(h.fp.token_fetches(APP), 2);
}

#[tokio::test]
async fn stable_force_refresh_cancels_previous_immediately() {
    let h = start().await;
    let s1 = h.stable_token(false).await;
    let s2 = h.stable_token(true).await;
    assert_ne!(s1, s2);
    assert_eq!(h.use_token(&s1).await, 40001);
    assert_eq!(h.use_token(&s2).await, 0);
    // Normal mode afterwards keeps handing out the refreshed token.
    assert_eq!(h.stable_token(false).await, s2);
}

#[tokio::test]
async fn classic_and_stable_pools_are_independent() {
    let h = start().await;
    let c1 = h.classic().await;
    let s1 = h.stable_token(false).await;

    let _c2 = h.classic().await;
    let c3 = h.classic().await;
    assert_eq!(h.use_token(&c1).await, 40001);
    assert_eq!(
        h.use_token(&s1).await,
        0,
        "classic fetches leave stable alone"
    );
    assert_eq!(h.stable_token(false).await, s1);

    let s2 = h.stable_token(true).await;
    assert_eq!(h.use_token(&s1).await, 40001);
    assert_eq!(
        h.use_token(&c3).await,
        0,
        "stable refresh leaves classic alone"
    );
    assert_eq!(h.use_token(&s2).await, 0);
    h.fp.advance(Duration::from_secs(600));
    assert_eq!(
        h.use_token(&c3).await,
        0,
        "current classic token is not on a timer"
    );
}

#[tokio::test]
async fn bad_credentials_and_secret_reset() {
    let h = start().await;
    let v = h
        .get("/cgi-bin/token?grant_type=client_credential&appid=wxnope&secret=nope")
        .await;
    assert_eq!(v["errcode"], 40013);
    assert!(
        v["errmsg"]
            .as_str()
            .unwrap()
            .starts_with("invalid appid rid: ")
    );

    let v = h
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={APP}&secret=wrong"
        ))
        .await;
    assert_eq!(v["errcode"], 40125);
    let v = h
        .post_json(
            "/cgi-bin/stable_token",
            &json!({"grant_type":"client_credential","appid":APP,"secret":"wrong"}),
        )
        .await;
    assert_eq!(v["errcode"], 40125);
    let v = h
        .get(&format!(
            "/cgi-bin/token?grant_type=password&appid={APP}&secret={SECRET}"
        ))
        .await;
    assert_eq!(v["errcode"], 40002);
    assert_eq!(h.fp.token_fetches(APP), 0, "failures are not fetches");

    let c = h.classic().await;
    let s = h.stable_token(false).await;
    h.fp.add_wechat_app(APP, SECRET);
    assert_eq!(
        h.use_token(&c).await,
        0,
        "re-registering unchanged is a no-op"
    );
    h.fp.add_wechat_app(APP, "new-secret");
    assert_eq!(h.use_token(&c).await, 40001);
    assert_eq!(h.use_token(&s).await, 40001);
    let v = h
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={APP}&secret={SECRET}"
        ))
        .await;
    assert_eq!(v["errcode"], 40125, "old secret is dead");
}

#[tokio::test]
async fn tokens_expire_with_42001_and_unknown_are_40001() {
    let h = start().await;
    let c = h.classic().await;
    let s = h.stable_token(false).await;
    h.fp.advance(Duration::from_secs(7199));
    assert_eq!(h.use_token(&c).await, 0);
    h.fp.advance(Duration::from_secs(2));
    assert_eq!(h.use_token(&c).await, 42001);
    assert_eq!(h.use_token(&s).await, 42001);
    let s2 = h.stable_token(false).await;
    assert_ne!(
        s, s2,
        "normal mode issues a new token once the old one expired"
    );
    assert_eq!(h.use_token(&s2).await, 0);
    assert_eq!(h.use_token("not-a-token").await, 40001);
    let v = h.get("/cgi-bin/getcallbackip").await;
    assert_eq!(v["errcode"], 41001);
}

#[tokio::test]
async fn stable_token_body_errors() {
    let h = start().await;
    assert_eq!(
        h.post_raw("/cgi-bin/stable_token", String::new()).await["errcode"],
        44002
    );
    assert_eq!(
        h.post_raw("/cgi-bin/stable_token", "{nope".into()).await["errcode"],
        47001
    );
    let v = h
        .post_json(
            "/cgi-bin/stable_token",
            &json!({"grant_type":"client_credential","appid":APP,"secret":SECRET,"force_refresh":"yes"}),
        )
        .await;
    assert_eq!(v["errcode"], 47001);
}

#[tokio::test]
async fn injected_errors_come_after_token_validation_and_run_out() {
    let h = start().await;
    let t = h.classic().await;
    h.fp.inject_error("/cgi-bin/draft/add", 45009, 2);
    let body = json!({"articles":[{"title":"t","content":"<p>c</p>"}]});
    let path = format!("/cgi-bin/draft/add?access_token={t}");

    // A bad token is reported as such and does not consume the injection.
    let v = h
        .post_json("/cgi-bin/draft/add?access_token=bogus", &body)
        .await;
    assert_eq!(v["errcode"], 40001);
    for _ in 0..2 {
        let v = h.post_json(&path, &body).await;
        assert_eq!(v["errcode"], 45009);
        assert!(
            v["errmsg"]
                .as_str()
                .unwrap()
                .starts_with("reach max api daily quota limit rid: ")
        );
    }
    assert!(h.post_json(&path, &body).await["media_id"].is_string());

    // On token paths the injection fires before issuance.
    h.fp.inject_error("/cgi-bin/token", -1, 1);
    let url = format!("/cgi-bin/token?grant_type=client_credential&appid={APP}&secret={SECRET}");
    assert_eq!(h.get(&url).await["errcode"], -1);
    assert_eq!(
        h.use_token(&t).await,
        0,
        "failed fetch did not rotate the token"
    );
    assert_eq!(h.fp.token_fetches(APP), 1);
    assert!(h.get(&url).await["access_token"].is_string());
}

#[tokio::test]
async fn draft_then_freepublish() {
    let h = start().await;
    let t = h.classic().await;
    let draft = json!({"articles":[{"title":"通知","content":"<p>正文</p>","author":"办公室"}]});
    let v = h
        .post_json(&format!("/cgi-bin/draft/add?access_token={t}"), &draft)
        .await;
    let media_id = v["media_id"].as_str().unwrap().to_owned();

    let submit = format!("/cgi-bin/freepublish/submit?access_token={t}");
    let v = h.post_json(&submit, &json!({"media_id": media_id})).await;
    assert_eq!(v["errcode"], 0);
    assert_eq!(v["errmsg"], "ok");
    assert!(v["publish_id"].is_string());
    assert!(v["msg_data_id"].is_u64());

    let v = h
        .post_json(&submit, &json!({"media_id": "never-created"}))
        .await;
    assert_eq!(v["errcode"], 40007);
    assert_eq!(h.post_raw(&submit, String::new()).await["errcode"], 44002);

    let add = format!("/cgi-bin/draft/add?access_token={t}");
    assert_eq!(h.post_raw(&add, String::new()).await["errcode"], 44002);
    assert_eq!(
        h.post_json(&add, &json!({"articles": []})).await["errcode"],
        47001
    );
    let no_title = json!({"articles":[{"content":"x"}]});
    assert_eq!(h.post_json(&add, &no_title).await["errcode"], 47001);
    assert_eq!(h.get(&add).await["errcode"], 43002);

    let up = format!("/cgi-bin/media/uploadimg?access_token={t}");
    let v = h.post_raw(&up, "\u{1}PNG-bytes".into()).await;
    assert!(
        v["url"]
            .as_str()
            .unwrap()
            .starts_with("http://mmbiz.qpic.cn/mmbiz_jpg/")
    );
    assert_eq!(h.post_raw(&up, String::new()).await["errcode"], 44002);
}

#[tokio::test]
async fn ip_whitelist_applies_to_token_calls() {
    let h = start().await;
    h.fp.set_ip_whitelist(APP, Some(vec!["10.1.2.3".parse().unwrap()]));
    let url = format!("/cgi-bin/token?grant_type=client_credential&appid={APP}&secret={SECRET}");
    let v = h.get(&url).await;
    assert_eq!(v["errcode"], 40164);
    assert!(
        v["errmsg"]
            .as_str()
            .unwrap()
            .starts_with("invalid ip 127.0.0.1 ipv6 ::ffff:127.0.0.1, not in whitelist rid: "),
        "{v}"
    );
    assert_eq!(h.stable(false).await["errcode"], 40164);
    h.fp.set_ip_whitelist(
        APP,
        Some(vec![
            "10.1.2.3".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
        ]),
    );
    assert!(h.get(&url).await["access_token"].is_string());
    h.fp.set_ip_whitelist(APP, None);
    assert!(h.get(&url).await["access_token"].is_string());
}

#[tokio::test]
async fn whitelist_skipped_without_connect_info() {
    use tower::ServiceExt as _;
    let fp = FakePlatforms::new(FakeConfig::default());
    fp.add_wechat_app(APP, SECRET);
    fp.set_ip_whitelist(APP, Some(vec!["10.1.2.3".parse().unwrap()]));
    let req = axum::http::Request::get(format!(
        "/cgi-bin/token?grant_type=client_credential&appid={APP}&secret={SECRET}"
    ))
    .body(Body::empty())
    .unwrap();
    let resp = fp.router().oneshot(req).await.unwrap();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(v["access_token"].is_string(), "{v}");
}

#[tokio::test]
async fn weibo_share_and_errors() {
    let h = start().await;
    h.fp.add_weibo_app("3456789012", "wbsecret", "2.00abcTOKEN", 1_234_567_890);
    let share = "/2/statuses/share.json";

    let (status, v) = h
        .weibo(share, "access_token=2.00abcTOKEN&status=Hello+%E5%BE%AE%E5%8D%9A+https%3A%2F%2Fexample.gov.cn%2Fa", None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["text"], "Hello 微博 https://example.gov.cn/a");
    assert_eq!(v["user"]["id"], 1_234_567_890_u64);
    assert_eq!(v["idstr"], v["id"].as_u64().unwrap().to_string());
    let created = v["created_at"].as_str().unwrap();
    assert!(created.contains(" +0800 "), "{created}");

    // Same text again, this time authenticated by header.
    let (status, v) = h
        .weibo(
            share,
            "status=Hello+%E5%BE%AE%E5%8D%9A+https%3A%2F%2Fexample.gov.cn%2Fa",
            Some("2.00abcTOKEN"),
        )
        .await;
    assert_eq!((status, v["error_code"].as_i64()), (400, Some(20019)));
    assert_eq!(v["error"], "repeat content!");
    assert_eq!(v["request"], share);

    let long = "a".repeat(2001);
    let (status, v) = h
        .weibo(
            share,
            &format!("access_token=2.00abcTOKEN&status={long}"),
            None,
        )
        .await;
    assert_eq!((status, v["error_code"].as_i64()), (400, Some(20012)));
    let ok_len = "b".repeat(2000);
    let (status, _) = h
        .weibo(
            share,
            &format!("access_token=2.00abcTOKEN&status={ok_len}"),
            None,
        )
        .await;
    assert_eq!(status, 200);

    let (status, v) = h.weibo(share, "access_token=2.00abcTOKEN", None).await;
    assert_eq!((status, v["error_code"].as_i64()), (400, Some(10008)));

    let (status, v) = h.weibo(share, "access_token=wrong&status=x", None).await;
    assert_eq!((status, v["error_code"].as_i64()), (403, Some(21332)));
    assert_eq!(v["error"], "invalid_access_token");

    h.fp.inject_error(share, 10023, 1);
    let (status, v) = h
        .weibo(share, "access_token=2.00abcTOKEN&status=fresh", None)
        .await;
    assert_eq!((status, v["error_code"].as_i64()), (403, Some(10023)));
    assert_eq!(v["error"], "User requests out of rate limit!");
    let (status, _) = h
        .weibo(share, "access_token=2.00abcTOKEN&status=fresh", None)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn weibo_token_info_expiry_and_rotation() {
    let h = start().await;
    h.fp.add_weibo_app("3456789012", "wbsecret", "tok-1", 42);
    let (status, v) = h
        .weibo("/oauth2/get_token_info", "access_token=tok-1", None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["uid"], 42);
    assert_eq!(v["appkey"], "3456789012");
    assert_eq!(v["scope"], "");
    let expire_in = v["expire_in"].as_i64().unwrap();
    assert!(expire_in > 0 && expire_in <= WEIBO_TOKEN_TTL.as_secs() as i64);
    assert!(v["create_at"].as_i64().unwrap() > 1_600_000_000);

    // The query string works too.
    let (status, _) = h
        .weibo("/oauth2/get_token_info?access_token=tok-1", "", None)
        .await;
    assert_eq!(status, 200);

    h.fp.advance(WEIBO_TOKEN_TTL + Duration::from_secs(1));
    let (status, v) = h
        .weibo(
            "/2/statuses/share.json",
            "access_token=tok-1&status=x",
            None,
        )
        .await;
    assert_eq!((status, v["error_code"].as_i64()), (403, Some(21327)));
    assert_eq!(v["error"], "expired_token");

    h.fp.add_weibo_app("3456789012", "wbsecret", "tok-2", 42);
    let (_, v) = h
        .weibo("/oauth2/get_token_info", "access_token=tok-1", None)
        .await;
    assert_eq!(v["error_code"], 21332, "replaced token is unknown");
    let (status, _) = h
        .weibo("/oauth2/get_token_info", "access_token=tok-2", None)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn calls_are_recorded_in_order_without_control_calls() {
    let h = start().await;
    let t = h.classic().await;
    let draft = json!({"articles":[{"title":"T","content":"C"}]});
    h.post_json(&format!("/cgi-bin/draft/add?access_token={t}"), &draft)
        .await;
    h.http
        .get(format!("{}/_fake/calls", h.base))
        .send()
        .await
        .unwrap();

    let calls = h.fp.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].method, "GET");
    assert_eq!(calls[0].path, "/cgi-bin/token");
    assert_eq!(
        calls[0].query,
        format!("grant_type=client_credential&appid={APP}&secret={SECRET}")
    );
    assert_eq!(calls[0].body, "");
    assert_eq!(calls[1].method, "POST");
    assert_eq!(calls[1].path, "/cgi-bin/draft/add");
    assert_eq!(calls[1].query, format!("access_token={t}"));
    assert_eq!(
        serde_json::from_str::<Value>(&calls[1].body).unwrap(),
        draft
    );
    let now = mediavault_base::Clock::system().unix();
    assert!((calls[0].at_unix - now).abs() < 60);

    // Recorded on the fake clock.
    h.fp.advance(Duration::from_secs(3600));
    h.get("/cgi-bin/getcallbackip").await;
    assert!(h.fp.calls()[2].at_unix >= now + 3600);

    h.fp.clear_calls();
    assert!(h.fp.calls().is_empty());
}

#[tokio::test]
async fn control_api_over_http() {
    let fp = FakePlatforms::new(FakeConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(fp.clone().serve(listener));
    let http = reqwest::Client::new();
    let ctl = |path: &str, body: Value| http.post(format!("{base}{path}")).json(&body).send();

    let r = ctl(
        "/_fake/wechat/apps",
        json!({"app_id":"wxctl","app_secret":"sec"}),
    )
    .await
    .unwrap();
    assert!(r.status().is_success());
    let r = ctl(
        "/_fake/weibo/apps",
        json!({"app_key":"k","app_secret":"s","access_token":"wt","uid":7}),
    )
    .await
    .unwrap();
    assert!(r.status().is_success());
    let r = ctl(
        "/_fake/inject",
        json!({"path":"/cgi-bin/token","errcode":45009,"times":1}),
    )
    .await
    .unwrap();
    assert!(r.status().is_success());

    let token_url =
        format!("{base}/cgi-bin/token?grant_type=client_credential&appid=wxctl&secret=sec");
    let v: Value = http
        .get(&token_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["errcode"], 45009);
    let v: Value = http
        .get(&token_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = v["access_token"].as_str().unwrap().to_owned();
    let v: Value = http
        .get(format!("{base}/_fake/wechat/token_fetches/wxctl"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["count"], 1);

    let r = ctl("/_fake/advance", json!({"seconds": 7201}))
        .await
        .unwrap();
    assert!(r.status().is_success());
    let v: Value = http
        .get(format!("{base}/cgi-bin/getcallbackip?access_token={token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["errcode"], 42001);

    let calls: Vec<Value> = http
        .get(format!("{base}/_fake/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths: Vec<&str> = calls.iter().map(|c| c["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        ["/cgi-bin/token", "/cgi-bin/token", "/cgi-bin/getcallbackip"]
    );
    assert!(calls[0]["query"].as_str().unwrap().contains("appid=wxctl"));

    let r = http
        .delete(format!("{base}/_fake/calls"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert!(fp.calls().is_empty());
    server.abort();
}

#[test]
fn urlencoded_parsing() {
    let pairs = parse_urlencoded("a=1&b=x+y%20z&c=%E5%BE%AE&d&e=%zz&f=100%&&g=%3d");
    let want: Vec<(String, String)> = [
        ("a", "1"),
        ("b", "x y z"),
        ("c", "微"),
        ("d", ""),
        ("e", "%zz"),
        ("f", "100%"),
        ("g", "="),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(pairs, want);
}

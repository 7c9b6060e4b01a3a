//! Issue: platform broker and publishing proxy, against the shipped fake WeChat and Weibo.

use std::time::Duration;

use crate::common::*;
use mediavault::platforms::SecurityEventKind;
use mediavault::platforms::fake::{FakeConfig, FakePlatforms};
use serde_json::{Value, json};

const APP_ID: &str = "wx55aa66bb77cc88dd";
const SECRET: &str = "SECRET-MARKER-0b5e";

struct P {
    app: TestApp,
    fake: FakePlatforms,
    fake_url: String,
    admin_s: String,
    alice: TestUser,
    bob: TestUser,
    key: String,
}

fn policy() -> String {
    "account = \"wx\"\nexclusive = false\nallowed_calls = [\"POST cgi-bin/draft/add\", \"POST cgi-bin/freepublish/submit\", \"GET cgi-bin/getcallbackip\"]\n[who]\nroles = [\"publisher\"]\nclients = [\"cms\"]\n[levels.general]\napprovals = 0\n[levels.major]\napprovals = 1\nrequire_content_binding = true\n".into()
}

async fn setup() -> P {
    let fake = FakePlatforms::new(FakeConfig {
        classic_overlap: Duration::from_secs(0),
        ..Default::default()
    });
    fake.add_wechat_app(APP_ID, SECRET);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(fake.clone().serve(listener));
    let url = fake_url.clone();
    let app = spawn_with(Options {
        policies: Some(vec![("wx.toml", policy())]),
        tweak: Some(Box::new(move |c| {
            c.platforms.wechat_base_url = url.clone();
            c.platforms.weibo_base_url = url;
            c.platforms.canary_interval_seconds = 1;
        })),
        ..Default::default()
    })
    .await;
    let admin_s = app.login(&app.admin.clone()).await;
    let alice = app.create_user(&admin_s, "alice", &["publisher"]).await;
    let bob = app.create_user(&admin_s, "bob", &["approver"]).await;
    let r = app.post(&admin_s, "/api/v1/accounts", json!({"id": "wx", "platform": "wechat", "display_name": "公众号", "credential": {"app_id": APP_ID, "app_secret": SECRET}})).await;
    assert_eq!(r.0, 201, "{}", r.1);
    let r = app.create_client(&admin_s, "cms", &["wx"]).await;
    let key = r.1["client_key"].as_str().unwrap().to_owned();
    P {
        app,
        fake,
        fake_url,
        admin_s,
        alice,
        bob,
        key,
    }
}

impl P {
    async fn token(&self) -> (String, String) {
        let code = self.app.code(&self.alice);
        let (st, v) = self.app.post(&self.key, "/api/v1/checkouts", json!({"account": "wx", "operator": "alice", "totp": code, "purpose": "p", "level": "general"})).await;
        assert_eq!(st, 201, "{v}");
        (
            v["token"].as_str().unwrap().to_owned(),
            v["checkout_id"].as_str().unwrap().to_owned(),
        )
    }
    async fn draft(&self, token: &str) -> (u16, Value) {
        self.app
            .post(
                token,
                "/api/v1/platform/wx/cgi-bin/draft/add",
                json!({"articles": [{"title": "标题", "content": "<p>正文</p>"}]}),
            )
            .await
    }
    fn api_calls(&self) -> usize {
        self.fake
            .calls()
            .iter()
            .filter(|c| !c.path.contains("token"))
            .count()
    }
}

#[tokio::test]
async fn fifty_concurrent_calls_on_a_cold_cache_fetch_one_token() {
    let p = setup().await;
    let (token, _) = p.token().await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let c = p.app.client.clone();
        let url = p.app.url("/api/v1/platform/wx/cgi-bin/getcallbackip");
        let t = token.clone();
        tasks.push(tokio::spawn(async move {
            c.get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let stable = p
        .fake
        .calls()
        .iter()
        .filter(|c| c.path == "/cgi-bin/stable_token")
        .count();
    assert_eq!(stable, 1, "exactly one token fetch");
}

async fn wait_for_event(p: &P, kind: SecurityEventKind) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        // Security events are durable only as audit records; that is where the test looks.
        let (_, audit) = p
            .app
            .get(
                &p.admin_s,
                &format!("/api/v1/audit?action={}", kind.as_str()),
            )
            .await;
        if !audit["entries"].as_array().unwrap().is_empty() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no {kind:?} event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_outsider_with_the_appsecret_raises_a_security_event_and_publishing_goes_on() {
    let p = setup().await;
    let (token, _) = p.token().await;
    assert_eq!(p.draft(&token).await.0, 200);
    let outsider = reqwest::Client::new();
    let r: Value = outsider
        .post(format!("{}/cgi-bin/stable_token", p.fake_url))
        .json(&json!({"grant_type": "client_credential", "appid": APP_ID, "secret": SECRET, "force_refresh": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["access_token"].is_string(), "{r}");
    wait_for_event(&p, SecurityEventKind::TokenCancelledExternally).await;
    let r = outsider
        .get(format!(
            "{}/cgi-bin/token?grant_type=client_credential&appid={APP_ID}&secret={SECRET}",
            p.fake_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_for_event(&p, SecurityEventKind::CanaryTripped).await;
    let (st, v) = p.draft(&token).await;
    assert_eq!(st, 200, "publishing keeps working: {v}");
    // The events are in the audit log.
    let (_, audit) = p
        .app
        .get(&p.admin_s, "/api/v1/audit?action=platform.canary_tripped")
        .await;
    assert!(!audit["entries"].as_array().unwrap().is_empty(), "{audit}");
}

#[tokio::test]
async fn rotation_drops_the_cached_token_and_never_sends_the_old_secret_again() {
    let p = setup().await;
    let (token, _) = p.token().await;
    assert_eq!(p.draft(&token).await.0, 200);
    p.fake.add_wechat_app(APP_ID, "NEW-SECRET-9e1");
    let code = p.app.code(&p.app.admin);
    let r = p.app.post(&p.admin_s, "/api/v1/accounts/wx/rotate", json!({"credential": {"app_id": APP_ID, "app_secret": "NEW-SECRET-9e1"}, "reason": "泄露后轮换", "totp": code})).await;
    assert_eq!(r.0, 200, "{}", r.1);
    let mark = p.fake.calls().len();
    let (st, v) = p.draft(&token).await;
    assert_eq!(st, 200, "{v}");
    let after = &p.fake.calls()[mark..];
    assert!(
        after
            .iter()
            .any(|c| c.body.contains("NEW-SECRET-9e1") || c.query.contains("NEW-SECRET-9e1")),
        "fetched with the new secret"
    );
    assert!(
        after
            .iter()
            .all(|c| !c.body.contains(SECRET) && !c.query.contains(SECRET)),
        "old secret sent again"
    );
}

#[tokio::test]
async fn the_appsecret_reaches_only_the_platforms_token_endpoints() {
    let p = setup().await;
    let (token, id) = p.token().await;
    let mut answers = vec![p.draft(&token).await.1.to_string()];
    answers.push(p.app.get(&token, "/api/v1/token").await.1.to_string());
    answers.push(p.app.get(&token, "/api/v1/credential").await.1.to_string());
    answers.push(
        p.app
            .post(&token, "/api/v1/platform-token", json!({}))
            .await
            .1
            .to_string(),
    );
    answers.push(
        p.app
            .post(
                &token,
                &format!("/api/v1/checkouts/{id}/checkin"),
                json!({}),
            )
            .await
            .1
            .to_string(),
    );
    let export = p
        .app
        .client
        .get(p.app.url("/api/v1/audit/export?format=jsonl"))
        .bearer_auth(&p.admin_s)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    answers.push(export);
    for a in &answers {
        assert!(
            !a.contains(SECRET),
            "secret in an answer or the audit log: {a}"
        );
    }
    assert!(!captured_logs().contains(SECRET), "secret in the logs");
    for c in p.fake.calls() {
        if c.body.contains(SECRET) || c.query.contains(SECRET) {
            assert!(
                c.path.ends_with("/token") || c.path.ends_with("/stable_token"),
                "secret sent to {}",
                c.path
            );
        }
    }
}

#[tokio::test]
async fn after_checkin_or_freeze_the_next_call_never_reaches_the_platform() {
    let p = setup().await;
    let (token, id) = p.token().await;
    assert_eq!(p.draft(&token).await.0, 200);
    p.app
        .post(
            &token,
            &format!("/api/v1/checkouts/{id}/checkin"),
            json!({}),
        )
        .await;
    let before = p.api_calls();
    assert_eq!(p.draft(&token).await.0, 401);
    assert_eq!(p.api_calls(), before);
    let (token, _) = p.token().await;
    let code = p.app.code(&p.app.admin);
    assert_eq!(
        p.app
            .post(
                &p.admin_s,
                "/api/v1/accounts/wx/freeze",
                json!({"reason": "疑似被盗", "totp": code})
            )
            .await
            .0,
        200
    );
    assert_eq!(p.draft(&token).await.0, 401);
    assert_eq!(p.api_calls(), before);
}

#[tokio::test]
async fn calls_outside_the_grant_or_with_unapproved_content_are_refused_before_the_platform() {
    let p = setup().await;
    let (token, _) = p.token().await;
    let before = p.fake.calls().len();
    let (st, v) = p
        .app
        .post(&token, "/api/v1/platform/wx/cgi-bin/menu/create", json!({}))
        .await;
    assert_eq!(st, 403, "{v}");
    let (st, _) = p
        .app
        .post(
            &token,
            "/api/v1/platform/other/cgi-bin/draft/add",
            json!({}),
        )
        .await;
    assert_eq!(st, 403, "a token used for another account");
    assert_eq!(p.fake.calls().len(), before);
    // A major checkout bound to one digest.
    let approved = json!({"articles": [{"title": "批准稿", "content": "已审"}]}).to_string();
    let digest = mediavault::crypto::sha256_hex(approved.as_bytes());
    let code = p.app.code(&p.alice);
    let (st, v) = p.app.post(&p.key, "/api/v1/checkouts", json!({"account": "wx", "operator": "alice", "totp": code, "purpose": "重大", "level": "major", "content_sha256": [digest]})).await;
    assert_eq!(st, 202, "{v}");
    let id = v["checkout_id"].as_str().unwrap().to_owned();
    let bob_s = p.app.login(&p.bob).await;
    let code = p.app.code(&p.bob);
    assert_eq!(
        p.app
            .post(
                &bob_s,
                &format!("/api/v1/checkouts/{id}/approve"),
                json!({"totp": code})
            )
            .await
            .0,
        200
    );
    let code = p.app.code(&p.alice);
    let (_, v) = p
        .app
        .post(
            &p.key,
            &format!("/api/v1/checkouts/{id}/claim"),
            json!({"operator": "alice", "totp": code}),
        )
        .await;
    let major = v["token"].as_str().unwrap().to_owned();
    let before = p.fake.calls().len();
    let r = p
        .app
        .client
        .post(p.app.url("/api/v1/platform/wx/cgi-bin/draft/add"))
        .bearer_auth(&major)
        .header("content-type", "application/json")
        .body(r#"{"articles":[{"title":"改过的","content":"未审"}]}"#)
        .send()
        .await
        .unwrap();
    let (st, v) = into_pair(r).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("content_not_approved"))
    );
    assert_eq!(p.fake.calls().len(), before);
    let r = p
        .app
        .client
        .post(p.app.url("/api/v1/platform/wx/cgi-bin/draft/add"))
        .bearer_auth(&major)
        .header("content-type", "application/json")
        .body(approved)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A proxied call the platform refuses answers as the platform did (its status and body, so the
/// tool's own SDK reads the errcode), with the vault's explanation beside it in headers and in the
/// audit entry; the vault's own refusals stay problem+json.
#[tokio::test]
async fn platform_errors_reach_the_tool_as_the_platform_sent_them_with_the_vaults_explanation() {
    let p = setup().await;
    let (token, _) = p.token().await;
    let draft = |token: String| {
        let app = &p.app;
        async move {
            let r = app
                .client
                .post(app.url("/api/v1/platform/wx/cgi-bin/draft/add"))
                .bearer_auth(&token)
                .json(&json!({"articles": [{"title": "标题", "content": "<p>正文</p>"}]}))
                .send()
                .await
                .unwrap();
            let header = |name: &str| {
                r.headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_owned())
            };
            let (error, hint) = (
                header("mediavault-platform-error"),
                header("mediavault-platform-hint"),
            );
            let ct = header("content-type").unwrap_or_default();
            let (st, v) = into_pair(r).await;
            (st, v, error, hint, ct)
        }
    };
    // A spent daily quota: WeChat's 200 with its errcode, unchanged.
    p.fake.inject_error("/cgi-bin/draft/add", 45009, 1);
    let (st, v, error, hint, ct) = draft(token.clone()).await;
    assert_eq!(st, 200, "{v}");
    assert!(ct.starts_with("application/json"), "{ct}");
    assert_eq!(v["errcode"], 45009, "{v}");
    assert!(
        v["errmsg"]
            .as_str()
            .unwrap()
            .starts_with("reach max api daily quota limit")
    );
    assert_eq!(v.get("code"), None, "not a problem+json: {v}");
    assert_eq!(error.as_deref(), Some("wechat 45009"));
    assert!(hint.unwrap().contains("midnight Beijing time"));

    // An AppSecret frozen in the WeChat console: the token fetch behind the call is refused, and
    // the tool sees WeChat's answer as if it had fetched the token itself.
    p.fake.freeze_app_secret(APP_ID, true);
    let (token2, _) = p.token().await;
    let code = p.app.code(&p.app.admin);
    let (st, v) = p
        .app
        .post(&p.admin_s, "/api/v1/accounts/wx/rotate", json!({"credential": {"app_id": APP_ID, "app_secret": SECRET}, "reason": "重新存入", "totp": code}))
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v, error, hint, _) = draft(token2.clone()).await;
    assert_eq!((st, v["errcode"].as_i64()), (200, Some(40243)), "{v}");
    assert_eq!(error.as_deref(), Some("wechat 40243"));
    assert!(hint.unwrap().contains("frozen in the WeChat console"));
    p.fake.freeze_app_secret(APP_ID, false);

    // The office resets the AppSecret in the WeChat console, restricting the calling addresses
    // as it goes, and an admin rotates the new secret in: the vault drops its cached platform
    // token, so the next call fetches one, which WeChat refuses for the vault's address. The
    // explanation names the address WeChat saw and where to allow it.
    const NEW_SECRET: &str = "SECRET-MARKER-0b5e-reset";
    p.fake.add_wechat_app(APP_ID, NEW_SECRET);
    p.fake
        .set_ip_whitelist(APP_ID, Some(vec!["10.0.0.1".parse().unwrap()]));
    let code = p.app.code(&p.app.admin);
    let (st, v) = p
        .app
        .post(&p.admin_s, "/api/v1/accounts/wx/rotate", json!({"credential": {"app_id": APP_ID, "app_secret": NEW_SECRET}, "reason": "AppSecret reset", "totp": code}))
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v, error, hint, _) = draft(token.clone()).await;
    assert_eq!((st, v["errcode"].as_i64()), (200, Some(40164)), "{v}");
    assert!(v["errmsg"].as_str().unwrap().contains("not in whitelist"));
    assert_eq!(error.as_deref(), Some("wechat 40164"));
    let hint = hint.unwrap();
    assert!(
        hint.contains("127.0.0.1") && hint.contains("IP whitelist"),
        "{hint}"
    );
    assert!(!v.to_string().contains(NEW_SECRET));

    // The vault's own refusals are still problem+json.
    let (st, v) = p
        .app
        .post(
            &token,
            "/api/v1/platform/wx/cgi-bin/material/batchget_material",
            json!({}),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("not_permitted")),
        "{v}"
    );

    // Each platform error is an error in the audit log, with the platform's code and the
    // explanation in both languages.
    let (_, audit) = p
        .app
        .get(
            &p.admin_s,
            "/api/v1/audit?action=platform.call&outcome=error",
        )
        .await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{audit}");
    // Oldest first.
    let newest = &entries[2];
    assert_eq!(newest["http"]["status"], 200);
    assert_eq!(newest["detail"]["code"], "platform_error");
    assert_eq!(newest["detail"]["platform_code"], 40164);
    assert!(
        newest["detail"]["platform_hint_zh"]
            .as_str()
            .unwrap()
            .contains("IP白名单"),
        "{newest}"
    );
    assert!(newest["detail"]["payload_sha256"].as_str().unwrap().len() == 64);
    let codes: Vec<i64> = entries
        .iter()
        .map(|e| e["detail"]["platform_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [45009, 40243, 40164]);
    // The console's audit entry shows the explanation in Chinese.
    let page = p
        .app
        .console_page(
            &p.admin_s,
            &format!("/console/audit/entry/{}", newest["seq"]),
        )
        .await;
    assert!(
        page.contains("id=\"platform-hint\"")
            && page.contains("IP白名单")
            && page.contains("127.0.0.1"),
        "{page}"
    );
}

/// The README's first command prints a walkthrough; run it exactly as printed.
#[test]
fn demo_walkthrough_runs_as_printed() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let mut demo = Command::new(env!("CARGO_BIN_EXE_mediavault"))
        .args(["demo", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(demo.stdout.take().unwrap());
    let mut script = String::new();
    let mut inside = false;
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "demo ended before printing the walkthrough"
        );
        if line.starts_with("# --- walkthrough") {
            inside = true;
        }
        if inside {
            script.push_str(&line);
        }
        if line.starts_with("# --- end of walkthrough") {
            break;
        }
    }
    let mut bash = Command::new("bash")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    bash.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let res = bash.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&res.stdout);
    demo.kill().unwrap();
    let _ = demo.wait();
    assert!(
        res.status.success(),
        "walkthrough failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(stdout.contains("media_id"), "{stdout}");
    assert!(stdout.contains("\"ok\":true"), "{stdout}");
    assert!(stdout.contains("walkthrough done"));
}

/// Found by Schemathesis (scripts/schemathesis.sh): axum's own rejections answered plain text
/// where every error is problem+json. A step number that is not a number, a path segment that is
/// not UTF-8 once decoded, and an upload over the body limit to the proxy are each a problem with
/// its status, and the oversized upload never reaches the platform.
#[tokio::test]
async fn a_bad_path_segment_or_an_oversized_upload_is_a_problem_not_plain_text() {
    let p = setup().await;
    let (token, _) = p.token().await;
    let problem = |r: reqwest::Response| async move {
        let ctype = r.headers()["content-type"].to_str().unwrap().to_owned();
        let (st, v) = into_pair(r).await;
        assert_eq!(ctype, "application/problem+json", "{st} {v}");
        assert_eq!(v["status"], st, "{v}");
        (st, v)
    };
    let c = &p.app.client;
    let r = c
        .post(
            p.app
                .url("/api/v1/incidents/inc_1/steps/null,null/complete"),
        )
        .bearer_auth(&p.admin_s)
        .json(&json!({"note": ""}))
        .send()
        .await
        .unwrap();
    let (st, v) = problem(r).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("invalid_request")));
    assert_eq!(
        v["detail"],
        "invalid path: a path parameter must be a number"
    );
    let r = c
        .get(p.app.url("/api/v1/users/%FF%FE"))
        .bearer_auth(&p.admin_s)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, 400);
    let before = p.api_calls();
    let r = c
        .post(p.app.url("/api/v1/platform/wx/cgi-bin/draft/add"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    let (st, v) = problem(r).await;
    assert_eq!((st, v["code"].as_str()), (413, Some("payload_too_large")));
    assert_eq!(p.api_calls(), before);
}

/// A spent daily quota (45009) is reset with the AppSecret, which only the vault holds: an admin
/// action with a step-up, ten times a month at most, the eleventh refused before WeChat sees it.
#[tokio::test]
async fn an_admin_resets_a_spent_wechat_quota_ten_times_a_month_at_most() {
    let p = setup().await;
    let (token, _) = p.token().await;
    p.fake.inject_error("/cgi-bin/draft/add", 45009, 50);
    let (st, v) = p.draft(&token).await;
    assert_eq!((st, v["errcode"].as_i64()), (200, Some(45009)), "{v}");
    let (_, acct) = p.app.get(&p.admin_s, "/api/v1/accounts/wx").await;
    assert_eq!(acct["wechat_budget"]["quota_resets_left"], 10, "{acct}");
    // Only an admin may; a publisher's attempt sends nothing.
    let alice_s = p.app.login(&p.alice).await;
    let code = p.app.code(&p.alice);
    let (st, v) = p
        .app
        .post(
            &alice_s,
            "/api/v1/accounts/wx/clear-quota",
            json!({"totp": code}),
        )
        .await;
    assert_eq!(st, 403, "{v}");
    let resets = || {
        p.fake
            .calls()
            .iter()
            .filter(|c| c.path == "/cgi-bin/clear_quota/v2")
            .count()
    };
    assert_eq!(resets(), 0);
    let code = p.app.code(&p.app.admin);
    let (st, v) = p
        .app
        .post(
            &p.admin_s,
            "/api/v1/accounts/wx/clear-quota",
            json!({"totp": code}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["quota_resets_left"], 9);
    let (st, v) = p.draft(&token).await;
    assert_eq!(
        (st, v.get("errcode")),
        (200, None),
        "the quota is back: {v}"
    );
    for left in (0..9).rev() {
        let code = p.app.code(&p.app.admin);
        let (st, v) = p
            .app
            .post(
                &p.admin_s,
                "/api/v1/accounts/wx/clear-quota",
                json!({"totp": code}),
            )
            .await;
        assert_eq!(
            (st, v["quota_resets_left"].as_u64()),
            (200, Some(left)),
            "{v}"
        );
    }
    let code = p.app.code(&p.app.admin);
    let (st, v) = p
        .app
        .post(
            &p.admin_s,
            "/api/v1/accounts/wx/clear-quota",
            json!({"totp": code}),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (409, Some("quota_resets_spent")),
        "{v}"
    );
    assert_eq!(resets(), 10, "the eleventh never reached WeChat");
    let (_, audit) = p
        .app
        .get(&p.admin_s, "/api/v1/audit?action=account.clear_quota.done")
        .await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 10);
    let page = p
        .app
        .console_page(&p.admin_s, "/console/admin/accounts/wx")
        .await;
    assert!(page.contains("<b id=\"quota-resets-left\">0</b>"), "{page}");
}

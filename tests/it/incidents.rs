//! Issue 10: emergency playbooks that act, incidents, early warning and publication watch, against
//! the shipped fake WeChat, a real local webhook receiver, and the vault over TLS on port 0.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use mediavault::config::{NotifyChannel, NotifyKind};
use mediavault::platforms::fake::{FakeConfig, FakePlatforms};
use serde_json::{Value, json};

const APP_ID: &str = "wx11incident22aa";
const SECRET: &str = "SECRET-MARKER-inc9";

fn policy() -> String {
    "account = \"wx\"\nexclusive = false\nallowed_calls = [\"POST cgi-bin/draft/add\", \"POST cgi-bin/freepublish/submit\", \"GET cgi-bin/getcallbackip\"]\n[who]\nroles = [\"publisher\"]\nclients = [\"cms\"]\n[levels.general]\napprovals = 0\n[levels.major]\napprovals = 1\n".into()
}

/// What the local webhook receiver got.
type Inbox = Arc<Mutex<Vec<Value>>>;

/// A real webhook receiver on 127.0.0.1:0 that answers like a WeCom robot.
async fn receiver() -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let keep = Arc::clone(&inbox);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let keep = Arc::clone(&keep);
            async move {
                keep.lock().unwrap().push(v);
                axum::Json(json!({"errcode": 0, "errmsg": "ok"}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, inbox)
}

/// A receiver that accepts every connection and never answers.
async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    url
}

struct W {
    app: TestApp,
    fake: FakePlatforms,
    admin_s: String,
    alice: TestUser,
    bob: TestUser,
    carol: TestUser,
    key: String,
}

type Tweak = Box<dyn FnOnce(&mut mediavault::Config) + Send>;

async fn world(channel: NotifyChannel, tweak: Option<Tweak>) -> W {
    let fake = FakePlatforms::new(FakeConfig {
        classic_overlap: Duration::from_secs(0),
        ..Default::default()
    });
    fake.add_wechat_app(APP_ID, SECRET);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(fake.clone().serve(listener));
    let playbooks = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/playbooks");
    let app = spawn_with(Options {
        policies: Some(vec![("wx.toml", policy())]),
        tweak: Some(Box::new(move |c| {
            c.platforms.wechat_base_url = fake_url.clone();
            c.platforms.weibo_base_url = fake_url;
            c.playbooks_dir = Some(playbooks);
            c.notify = vec![channel];
            if let Some(t) = tweak {
                t(c);
            }
        })),
        ..Default::default()
    })
    .await;
    let admin_s = app.login(&app.admin.clone()).await;
    let alice = app.create_user(&admin_s, "alice", &["publisher"]).await;
    let bob = app.create_user(&admin_s, "bob", &["approver"]).await;
    let carol = app.create_user(&admin_s, "carol", &["auditor"]).await;
    let r = app.post(&admin_s, "/api/v1/accounts", json!({"id": "wx", "platform": "wechat", "display_name": "公众号", "credential": {"app_id": APP_ID, "app_secret": SECRET}})).await;
    assert_eq!(r.0, 201, "{}", r.1);
    let r = app.create_client(&admin_s, "cms", &["wx"]).await;
    let key = r.1["client_key"].as_str().unwrap().to_owned();
    W {
        app,
        fake,
        admin_s,
        alice,
        bob,
        carol,
        key,
    }
}

impl W {
    async fn checkout(&self) -> (u16, Value) {
        let code = self.app.code(&self.alice);
        self.app
            .post(&self.key, "/api/v1/checkouts", json!({"account": "wx", "operator": "alice", "totp": code, "purpose": "发布", "level": "general"}))
            .await
    }

    async fn token(&self) -> String {
        let (st, v) = self.checkout().await;
        assert_eq!(st, 201, "{v}");
        v["token"].as_str().unwrap().to_owned()
    }

    async fn audit(&self, action: &str) -> Vec<Value> {
        let (st, v) = self
            .app
            .get(&self.admin_s, &format!("/api/v1/audit?action={action}"))
            .await;
        assert_eq!(st, 200, "{v}");
        v["entries"].as_array().unwrap().clone()
    }

    async fn open(&self, playbook: &str, post: Option<&str>) -> Value {
        let mut body = json!({"account": "wx", "playbook": playbook, "summary": "测试 test"});
        if let Some(p) = post {
            body["post"] = json!(p);
        }
        let (st, v) = self
            .app
            .post(&self.admin_s, "/api/v1/incidents", body)
            .await;
        assert_eq!(st, 201, "{v}");
        v
    }
}

fn channel(url: &str) -> NotifyChannel {
    let mut c = NotifyChannel::new("ops", NotifyKind::Generic, url);
    c.attempts = 2;
    c.timeout_seconds = 1;
    c.backoff_ms = 100;
    c
}

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn wechat_playbook_freezes_revokes_cancels_notifies_and_needs_a_rotation() {
    let (url, inbox) = receiver().await;
    let w = world(channel(&url), None).await;
    let t1 = w.token().await;
    let t2 = w.token().await;
    for t in [&t1, &t2] {
        assert_eq!(w.app.get(t, "/api/v1/token").await.0, 200);
    }
    let before = w.fake.pool_refreshes(APP_ID);

    let inc = w.open("wechat-account-compromised", None).await;
    let id = inc["incident_id"].as_str().unwrap().to_owned();
    assert_eq!(inc["status"], "open");

    // Both tokens refused at once; a new checkout answers 423.
    for t in [&t1, &t2] {
        assert_eq!(w.app.get(t, "/api/v1/token").await.0, 401);
    }
    let (st, v) = w.checkout().await;
    assert_eq!(st, 423, "{v}");
    assert_eq!(v["code"], "account_frozen");

    // Exactly one forced refresh in each token pool.
    let after = w.fake.pool_refreshes(APP_ID);
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 1));
    let forced = w
        .fake
        .calls()
        .iter()
        .filter(|c| c.path == "/cgi-bin/stable_token" && c.body.contains("\"force_refresh\":true"))
        .count();
    assert_eq!(forced, 1);

    // Every automated step ran, with its time; the manual ones wait with owners and due times.
    let steps = inc["steps"].as_array().unwrap();
    for s in steps {
        if s["kind"] == "auto" {
            assert_eq!(s["status"], "done", "{s}");
            assert!(s["done_at"].as_str().unwrap().ends_with('Z'), "{s}");
        } else {
            assert_eq!(s["status"], "pending", "{s}");
            assert!(
                s["owner_role"].is_string() && s["due_at"].is_string(),
                "{s}"
            );
        }
    }
    // The sealed checkpoint names the vault's suite.
    let suite = test_suite().unwrap_or_default();
    assert!(
        inc["checkpoint"]
            .as_str()
            .unwrap()
            .starts_with(&format!("mvcp2:{suite}:")),
        "{inc}"
    );
    let events: Vec<&str> = inc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["event"].as_str().unwrap())
        .collect();
    assert_eq!(events[0], "opened");
    assert_eq!(events.iter().filter(|e| **e == "step_done").count(), 6);

    // The webhook receiver got the alert.
    eventually("the alert", || async {
        inbox
            .lock()
            .unwrap()
            .iter()
            .any(|v| v["incident_id"] == id.as_str() && v["event"] == "incident.opened")
    })
    .await;
    assert!(!w.audit("notify.send").await.is_empty());

    // A manual step is completed with a note, by its owner role.
    let (st, v) = w
        .app
        .post(
            &w.admin_s,
            &format!("/api/v1/incidents/{id}/steps/7/complete"),
            json!({"note": "AppSecret 已重置"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["steps"][6]["status"], "done");
    assert_eq!(v["steps"][6]["done_by"], "admin");
    let (st, v) = w
        .app
        .post(
            &w.admin_s,
            &format!("/api/v1/incidents/{id}/steps/7/complete"),
            json!({"note": "again"}),
        )
        .await;
    assert_eq!((st, v["code"].as_str()), (409, Some("step_not_pending")));

    // Unfreeze is refused until the credential was rotated after the incident opened.
    let admin = w.app.admin.clone();
    let code = w.app.code(&admin);
    let (st, v) = w
        .app
        .post(
            &w.admin_s,
            "/api/v1/accounts/wx/unfreeze",
            json!({"reason": "done", "totp": code}),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (409, Some("credential_compromised")),
        "{v}"
    );
    let code = w.app.code(&admin);
    let (st, v) = w
        .app
        .post(
            &w.admin_s,
            "/api/v1/accounts/wx/rollback",
            json!({"version": 1, "reason": "x", "totp": code}),
        )
        .await;
    assert_eq!(st, 409, "{v}");
    w.fake.add_wechat_app(APP_ID, "SECRET-MARKER-new1");
    let code = w.app.code(&admin);
    let (st, v) = w
        .app
        .post(&w.admin_s, "/api/v1/accounts/wx/rotate", json!({"credential": {"app_id": APP_ID, "app_secret": "SECRET-MARKER-new1"}, "reason": "incident", "totp": code}))
        .await;
    assert_eq!(st, 200, "{v}");
    let code = w.app.code(&admin);
    let (st, v) = w
        .app
        .post(
            &w.admin_s,
            "/api/v1/accounts/wx/unfreeze",
            json!({"reason": "rotated", "totp": code}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "active");

    // Close: the first signature answers 202, the same person again does not close it, a second
    // person does.
    let code = w.app.code(&admin);
    let (st, v) = w
        .app
        .post(
            &w.admin_s,
            &format!("/api/v1/incidents/{id}/close"),
            json!({"review": "处置完毕", "totp": code}),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["closed"], false);
    let code = w.app.code(&admin);
    let (st, v) = w
        .app
        .post(
            &w.admin_s,
            &format!("/api/v1/incidents/{id}/close"),
            json!({"review": "again", "totp": code}),
        )
        .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (409, Some("already_signed")),
        "{v}"
    );
    let carol_s = w.app.login(&w.carol).await;
    let code = w.app.code(&w.carol);
    let (st, v) = w
        .app
        .post(
            &carol_s,
            &format!("/api/v1/incidents/{id}/close"),
            json!({"review": "复核无误", "totp": code}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["incident"]["status"], "closed");
    let (st, v) = w.app.get(&carol_s, "/api/v1/incidents?status=closed").await;
    assert_eq!(st, 200);
    assert_eq!(v.as_array().unwrap().len(), 1);

    // The report, in Markdown and JSON: timeline, sealed checkpoint, the account's audit entries.
    let r = w
        .app
        .client
        .get(
            w.app
                .url(&format!("/api/v1/incidents/{id}/report?format=md")),
        )
        .bearer_auth(&carol_s)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/markdown")
    );
    let md = r.text().await.unwrap();
    assert!(md.contains(&format!("mvcp2:{suite}:")), "{md}");
    assert!(
        md.contains("incident.open") && md.contains("account.unfreeze"),
        "{md}"
    );
    assert!(
        md.contains("close_signed") && md.contains("冻结账号"),
        "{md}"
    );
    let (st, v) = w
        .app
        .get(
            &carol_s,
            &format!("/api/v1/incidents/{id}/report?format=json"),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["incident"]["checkpoint"], inc["checkpoint"]);
    let actions: Vec<&str> = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"incident.open") && actions.contains(&"platform.send"),
        "{actions:?}"
    );
    assert!(actions.contains(&"account.rotate") && actions.contains(&"incident.close"));
    assert!(!md.contains(SECRET) && !v.to_string().contains(SECRET));
}

#[tokio::test]
async fn a_webhook_that_never_answers_does_not_hold_up_the_freeze() {
    let url = black_hole().await;
    let w = world(channel(&url), None).await;
    let token = w.token().await;
    let started = Instant::now();
    let inc = w.open("wechat-account-compromised", None).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let id = inc["incident_id"].as_str().unwrap();
    // Open and frozen while the delivery is still pending.
    assert!(w.app.vault().notifications_in_flight() > 0);
    let (_, acct) = w.app.get(&w.admin_s, "/api/v1/accounts/wx").await;
    assert_eq!(acct["status"], "frozen");
    assert_eq!(w.app.get(&token, "/api/v1/token").await.0, 401);
    let (_, v) = w
        .app
        .get(&w.admin_s, &format!("/api/v1/incidents/{id}"))
        .await;
    assert_eq!(v["status"], "open");
    // The final failure is audited as a dead letter, by channel name, never the URL.
    eventually("the dead letter", || async {
        !w.audit("notify.dead_letter").await.is_empty()
    })
    .await;
    let dead = &w.audit("notify.dead_letter").await[0];
    assert_eq!(dead["outcome"], "error");
    assert_eq!(dead["target"], "notify:ops");
    assert_eq!(dead["detail"]["attempts"], 2);
    assert_eq!(dead["detail"]["incident_id"], id);
    assert!(!dead.to_string().contains(&url));
    assert_eq!(w.app.vault().notifications_in_flight(), 0);
}

#[tokio::test]
async fn harmful_content_is_captured_and_deleted_only_after_an_approvers_totp() {
    let (url, _inbox) = receiver().await;
    let w = world(channel(&url), None).await;
    let article = w
        .fake
        .outsider_publish_wechat(APP_ID, SECRET, "违规标题", "<p>有害内容 harmful</p>")
        .unwrap();
    let inc = w.open("harmful-content", Some(&article)).await;
    let id = inc["incident_id"].as_str().unwrap();
    let ev = &inc["evidence"][0];
    assert_eq!(ev["platform_id"], article.as_str());
    assert_eq!(ev["sha256"].as_str().unwrap().len(), 64);
    assert!(ev["content"].to_string().contains("有害内容"));
    assert!(ev["deleted_at"].is_null());
    let delete_step = inc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["action"] == "delete_post")
        .unwrap()["n"]
        .as_i64()
        .unwrap();
    let deletes = || {
        w.fake
            .calls()
            .iter()
            .filter(|c| c.path == "/cgi-bin/freepublish/delete")
            .count()
    };
    let path = format!("/api/v1/incidents/{id}/steps/{delete_step}/complete");
    // An admin cannot confirm the approver's step; the approver needs a TOTP code, a right one.
    let (st, _) = w.app.post(&w.admin_s, &path, json!({"note": "x"})).await;
    assert_eq!(st, 403);
    let bob_s = w.app.login(&w.bob).await;
    let (st, v) = w.app.post(&bob_s, &path, json!({"note": "删除"})).await;
    assert_eq!((st, v["field"].as_str()), (400, Some("totp")), "{v}");
    let (st, _) = w
        .app
        .post(&bob_s, &path, json!({"note": "删除", "totp": "000000"}))
        .await;
    assert_eq!(st, 401);
    assert_eq!(deletes(), 0, "nothing deleted before the confirmation");
    let code = w.app.code(&w.bob);
    let (st, v) = w
        .app
        .post(&bob_s, &path, json!({"note": "已删除", "totp": code}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(deletes(), 1);
    assert_eq!(v["evidence"][0]["deleted_by"], "bob");
    assert_eq!(v["steps"][(delete_step - 1) as usize]["status"], "done");
    // The post is gone from the platform; the evidence stays.
    let (st, v) = w
        .app
        .get(&w.admin_s, &format!("/api/v1/incidents/{id}"))
        .await;
    assert_eq!(st, 200);
    assert!(v["evidence"][0]["content"].to_string().contains("有害内容"));
    let confirm = w.audit("incident.confirm").await;
    let sends = w.audit("platform.send").await;
    assert!(confirm[0]["seq"].as_i64() < sends.last().unwrap()["seq"].as_i64());
}

#[tokio::test]
async fn the_publication_watch_finds_an_outsiders_post_and_the_rule_freezes_the_account() {
    let (url, inbox) = receiver().await;
    let tweak: Tweak = Box::new(|c| {
        c.watch.interval_seconds = 1;
        c.early_warning.rules = vec![mediavault::config::WarningRule {
            name: "unknown-post".into(),
            kind: mediavault::config::RuleKind::UnknownPost,
            threshold: 1,
            window_minutes: 15,
            open_playbook: Some("wechat-account-compromised".into()),
        }];
    });
    let w = world(channel(&url), Some(tweak)).await;

    // A post made through the vault never raises it.
    let token = w.token().await;
    let (st, v) = w
        .app
        .post(
            &token,
            "/api/v1/platform/wx/cgi-bin/draft/add",
            json!({"articles": [{"title": "通知", "content": "<p>正文</p>"}]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = w
        .app
        .post(
            &token,
            "/api/v1/platform/wx/cgi-bin/freepublish/submit",
            json!({"media_id": v["media_id"]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let listed = || {
        w.fake
            .calls()
            .iter()
            .filter(|c| c.path == "/cgi-bin/freepublish/batchget")
            .count()
    };
    let start = listed();
    eventually("two watch rounds", || async { listed() >= start + 2 }).await;
    assert!(w.audit("watch.unknown_post").await.is_empty());
    assert!(w.audit("alert.raised").await.is_empty());
    let (_, acct) = w.app.get(&w.admin_s, "/api/v1/accounts/wx").await;
    assert_eq!(acct["status"], "active");

    // An outsider with the AppSecret publishes straight on WeChat.
    let article = w
        .fake
        .outsider_publish_wechat(APP_ID, SECRET, "假消息", "<p>not ours</p>")
        .unwrap();
    let posted = Instant::now();
    eventually("the unknown post", || async {
        !w.audit("watch.unknown_post").await.is_empty()
    })
    .await;
    assert!(
        posted.elapsed() < Duration::from_millis(2500),
        "{:?}",
        posted.elapsed()
    );
    let found = w.audit("watch.unknown_post").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["detail"]["platform_id"], article.as_str());
    // The alert goes out, and the rule opened the account-compromised playbook: frozen.
    eventually("the alert", || async {
        inbox
            .lock()
            .unwrap()
            .iter()
            .any(|v| v["event"] == "alert.unknown_post")
    })
    .await;
    // The alert and the rule's playbook run side by side: the alert may arrive first.
    eventually("the rule's incident", || async {
        let (_, list) = w
            .app
            .get(&w.admin_s, "/api/v1/incidents?account=wx&status=open")
            .await;
        list.as_array().is_some_and(|l| !l.is_empty())
    })
    .await;
    let (_, list) = w
        .app
        .get(&w.admin_s, "/api/v1/incidents?account=wx&status=open")
        .await;
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["trigger"], "rule:unknown-post");
    assert_eq!(list[0]["opened_by"], "system:mediavault");
    let (_, acct) = w.app.get(&w.admin_s, "/api/v1/accounts/wx").await;
    assert_eq!(acct["status"], "frozen");
    assert_eq!(w.checkout().await.0, 423);
    // Reported once, not once per round.
    let rounds = listed();
    eventually("another round", || async { listed() > rounds + 1 }).await;
    assert_eq!(w.audit("watch.unknown_post").await.len(), 1);
    let (_, list) = w.app.get(&w.admin_s, "/api/v1/incidents").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn early_warning_counts_failures_and_events_in_a_busy_log() {
    use mediavault::audit::{NewEntry, Outcome};
    use mediavault::config::{RuleKind, WarningRule};
    let (url, inbox) = receiver().await;
    let rule = |name: &str, kind, threshold| WarningRule {
        name: name.into(),
        kind,
        threshold,
        window_minutes: 15,
        open_playbook: None,
    };
    let rules = vec![
        rule("totp-user", RuleKind::TotpFailuresUser, 3),
        rule("heartbeat", RuleKind::HeartbeatFailed, 2),
    ];
    let tweak: Tweak = Box::new(move |c| c.early_warning.rules = rules);
    let w = world(channel(&url), Some(tweak)).await;
    let (_, store, keys) = mediavault::vault::open_store(&w.app.config).await.unwrap();
    let side =
        mediavault::audit::AuditWriter::start(store, keys.mac().audit.clone(), w.app.clock.clone());
    let vault = &w.app.running.as_ref().unwrap().vault;

    // Successful traffic all around the events: the rules never count it.
    let busy = || async {
        for _ in 0..30 {
            let (st, _) = w.app.get(&w.admin_s, "/api/v1/accounts").await;
            assert_eq!(st, 200);
        }
    };
    busy().await;
    // Two logins with the right password and a wrong code, and one heartbeat failure: below
    // both thresholds.
    let admin = w.app.admin.clone();
    let wrong = || async {
        let r = w
            .app
            .client
            .post(w.app.url("/api/v1/auth/login"))
            .json(
                &json!({"username": admin.username, "password": admin.password, "totp": "000000"}),
            )
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        // The caller is told nothing about which factor failed.
        assert_eq!(v["code"], "unauthenticated", "{v}");
    };
    let heartbeat = || async {
        side.record(NewEntry::system(
            "platform.heartbeat_failed",
            "wx",
            Outcome::Success,
        ))
        .await
        .unwrap();
    };
    wrong().await;
    wrong().await;
    heartbeat().await;
    busy().await;
    vault.incidents().evaluate_rules(None).await.unwrap();
    assert!(w.audit("alert.raised").await.is_empty());

    // The third wrong code and the second failure cross them: one alert each, for the user and
    // for the account, and a notification.
    wrong().await;
    heartbeat().await;
    busy().await;
    vault.incidents().evaluate_rules(None).await.unwrap();
    let alerts = w.audit("alert.raised").await;
    let raised: Vec<(String, String)> = alerts
        .iter()
        .map(|a| {
            (
                a["detail"]["rule"].as_str().unwrap().to_owned(),
                a["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        raised.contains(&("totp-user".into(), admin.username.clone())),
        "{raised:?}"
    );
    assert!(
        raised.contains(&("heartbeat".into(), "wx".into())),
        "{raised:?}"
    );
    assert_eq!(raised.len(), 2, "{raised:?}");
    eventually("the notifications", || async {
        inbox.lock().unwrap().len() >= 2
    })
    .await;
    // Nothing new: evaluated again, nothing fires twice.
    vault.incidents().evaluate_rules(None).await.unwrap();
    assert_eq!(w.audit("alert.raised").await.len(), 2);
}

/// WeChat's daily token budget is tracked per account: the account page, the API and `/metrics`
/// show what is left, and the playbook's forced refresh spends one and says how many remain.
#[tokio::test]
async fn a_playbooks_forced_refresh_spends_the_wechat_daily_budget_and_shows_what_is_left() {
    let (url, _inbox) = receiver().await;
    let w = world(channel(&url), None).await;
    let (_, acct) = w.app.get(&w.admin_s, "/api/v1/accounts/wx").await;
    assert_eq!(acct["wechat_budget"]["force_refreshes_left"], 20, "{acct}");
    let inc = w.open("wechat-account-compromised", None).await;
    let step = inc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["action"] == "refresh_platform_token")
        .cloned()
        .unwrap();
    assert_eq!(step["status"], "done", "{step}");
    assert!(
        step["note"]
            .as_str()
            .unwrap()
            .contains("19 force_refresh left today"),
        "{step}"
    );
    let (_, acct) = w.app.get(&w.admin_s, "/api/v1/accounts/wx").await;
    assert_eq!(acct["wechat_budget"]["force_refreshes_left"], 19, "{acct}");
    assert!(
        acct["wechat_budget"]["classic_fetches_left"]
            .as_u64()
            .unwrap()
            < 2000
    );
    let metrics = w
        .app
        .client
        .get(w.app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "mediavault_wechat_token_budget_left{account=\"wx\",kind=\"force_refresh\"} 19"
        ),
        "{metrics}"
    );
    let page = w
        .app
        .console_page(&w.admin_s, "/console/admin/accounts/wx")
        .await;
    assert!(page.contains("强制刷新剩余 <b>19</b> / 20"), "{page}");
}

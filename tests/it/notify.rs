//! Issue 24, notifications: Feishu (飞书) custom bots join the channels, in their signed mode, with
//! the same retries and dead letters as the others; a decided checkout is addressed to its
//! requester.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use base64::Engine as _;
use mediavault::config::{NotifyChannel, NotifyKind};
use serde_json::{Value, json};

const SECRET: &str = "feishu-bot-signing-secret";

/// A Feishu custom bot as its documents describe it: it checks `timestamp` and `sign`
/// (base64 HMAC-SHA256 keyed with "timestamp\nsecret" over nothing) against its own secret,
/// answers `{"code":0}` when they match, and `{"code":19021}` when they do not.
async fn feishu_bot(secret: &'static str) -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = Arc::clone(&got);
    let bot = axum::Router::new().route(
        "/open-apis/bot/v2/hook/{id}",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let sink = Arc::clone(&sink);
            async move {
                let ts = v["timestamp"].as_str().unwrap_or_default();
                let key = format!("{ts}\n{secret}");
                let want = base64::engine::general_purpose::STANDARD
                    .encode(mediavault::crypto::hmac_sha256(key.as_bytes(), b""));
                if v["sign"] != want.as_str() {
                    return axum::Json(json!({"code": 19021, "data": {}, "msg": "sign match fail or timestamp is not within one hour from current time"}));
                }
                sink.lock().unwrap().push(v);
                axum::Json(json!({"code": 0, "data": {}, "msg": "success"}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/open-apis/bot/v2/hook/7a1b2c3d",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, bot).await });
    (url, got)
}

fn channel(name: &str, url: &str, secret: &str) -> NotifyChannel {
    let mut c = NotifyChannel::new(name, NotifyKind::Feishu, url);
    c.secret = Some(secret.into());
    c.attempts = 2;
    c.backoff_ms = 50;
    c
}

#[tokio::test]
async fn feishu_bots_get_signed_notices_and_a_decision_is_addressed_to_its_requester() {
    let (good, got) = feishu_bot(SECRET).await;
    let (bad, refused) = feishu_bot("another-bots-secret").await;
    let bad_url = bad.clone();
    let app = spawn_with(Options {
        policies: Some(vec![(
            "wx.toml",
            "account = \"wx\"\nallowed_calls = [\"POST cgi-bin/draft/add\"]\n[who]\nroles = [\"publisher\"]\nclients = [\"cms\"]\n[levels.major]\napprovals = 1\n".into(),
        )]),
        tweak: Some(Box::new(move |c| {
            c.notify = vec![channel("feishu", &good, SECRET), channel("feishu-misconfigured", &bad, SECRET)];
        })),
        ..Default::default()
    })
    .await;
    let admin_s = app.login(&app.admin.clone()).await;
    let alice = app.create_user(&admin_s, "alice", &["publisher"]).await;
    let bob = app.create_user(&admin_s, "bob", &["approver"]).await;
    let r = app.post(&admin_s, "/api/v1/accounts", json!({"id": "wx", "platform": "wechat", "display_name": "wx", "credential": {"app_id": "a", "app_secret": "b"}})).await;
    assert_eq!(r.0, 201, "{}", r.1);
    let key = app.create_client(&admin_s, "cms", &["wx"]).await.1["client_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = app.code(&alice);
    let (st, v) = app.post(&key, "/api/v1/checkouts", json!({"account": "wx", "operator": "alice", "totp": code, "purpose": "重大稿件", "level": "major"})).await;
    assert_eq!(st, 202, "{v}");
    let id = v["checkout_id"].as_str().unwrap().to_owned();
    let bob_s = app.login(&bob).await;
    let code = app.code(&bob);
    let (st, v) = app
        .post(
            &bob_s,
            &format!("/api/v1/checkouts/{id}/approve"),
            json!({"totp": code}),
        )
        .await;
    assert_eq!(st, 200, "{v}");

    // The bot whose secret matches gets both notices as Feishu text messages; the decision is
    // addressed to alice, the requester.
    let texts = || -> Vec<String> {
        got.lock()
            .unwrap()
            .iter()
            .map(|v| v["content"]["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    until("the approval notice", async || {
        texts().iter().any(|t| t.contains("checkout.approved"))
    })
    .await;
    let all = texts();
    let decided = all
        .iter()
        .find(|t| t.contains("checkout.approved"))
        .unwrap();
    assert!(decided.starts_with("【mediavault】致 alice："), "{decided}");
    assert!(decided.contains("by bob"), "{decided}");
    assert!(
        all.iter()
            .any(|t| t.contains("checkout.approval_requested")),
        "{all:?}"
    );
    assert!(got.lock().unwrap().iter().all(|v| v["msg_type"] == "text"));

    // The bot that refuses the signature never shows a notice: each becomes an audited dead
    // letter after its attempts, by channel name, never the URL.
    let auditor = app.create_user(&admin_s, "audrey", &["auditor"]).await;
    let auditor_s = app.login(&auditor).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let dead = loop {
        let (_, page) = app
            .get(&auditor_s, "/api/v1/audit?action=notify.dead_letter")
            .await;
        let entries = page["entries"].as_array().unwrap().clone();
        if entries.len() >= 2 {
            break entries;
        }
        assert!(Instant::now() < deadline, "no dead letters: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(refused.lock().unwrap().is_empty());
    for d in &dead {
        assert_eq!(d["target"], "notify:feishu-misconfigured", "{d}");
        assert_eq!(d["detail"]["kind"], "feishu");
        assert_eq!(d["detail"]["attempts"], 2);
        assert!(
            d["detail"]["error"].as_str().unwrap().contains("19021"),
            "{d}"
        );
        assert!(!d.to_string().contains(&bad_url));
    }
}

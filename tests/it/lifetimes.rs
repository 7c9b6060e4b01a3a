//! Issue 24, credential lifetimes: the vault learns when the Weibo account's OAuth token expires
//! (the heartbeat's `get_token_info`), records it, and reminds the channels and the console's home
//! page before it does; a credential older than `lifetimes.secret_max_age_days` is reminded of too.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::publishing::setup_with;
use serde_json::Value;

async fn inbox() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = Arc::clone(&got);
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let sink = Arc::clone(&sink);
            async move {
                sink.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    (url, got)
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_vault_learns_the_weibo_tokens_expiry_and_reminds_before_it_and_of_old_secrets() {
    let (hook, got) = inbox().await;
    let p = setup_with(
        "",
        Some(Box::new(move |c| {
            c.platforms.heartbeat_interval_seconds = 1;
            c.notify = vec![mediavault::config::NotifyChannel::new(
                "ops",
                mediavault::config::NotifyKind::Generic,
                &hook,
            )];
        })),
    )
    .await;
    let events = |event: &str| -> Vec<Value> {
        got.lock()
            .unwrap()
            .iter()
            .filter(|n| n["event"] == event)
            .cloned()
            .collect()
    };
    let expiry = async || -> Option<time::OffsetDateTime> {
        let (_, a) = p.app.get(&p.admin_s, "/api/v1/accounts/wb").await;
        a["token_expires_at"]
            .as_str()
            .and_then(mediavault::clock::parse_rfc3339)
    };

    // The heartbeat learns the token's 30 days; nothing is due yet.
    until("the token's expiry", async || expiry().await.is_some()).await;
    let left = expiry().await.unwrap() - p.app.clock.now();
    assert!((29..=30).contains(&left.whole_days()), "{left}");
    let (_, a) = p.app.get(&p.admin_s, "/api/v1/accounts/wx").await;
    assert_eq!(
        a["token_expires_at"],
        Value::Null,
        "WeChat says nothing of it"
    );
    assert!(events("credential.token_expiring").is_empty());
    let auditor_s = p.app.login(&p.auditor).await;
    let (_, page) = p
        .app
        .get(&auditor_s, "/api/v1/audit?action=account.token_expiry")
        .await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 1, "{page}");

    // Twenty days on at Weibo: ten days left, inside the fourteen-day warning.
    p.fake.advance(Duration::from_secs(20 * 86_400));
    until("the new expiry", async || {
        expiry()
            .await
            .is_some_and(|e| (e - p.app.clock.now()).whole_days() < 11)
    })
    .await;
    until("the reminder", async || {
        !events("credential.token_expiring").is_empty()
    })
    .await;
    let told = events("credential.token_expiring");
    assert_eq!(told[0]["account"], "wb");
    assert!(
        told[0]["summary"]
            .as_str()
            .unwrap()
            .contains("re-authorise"),
        "{told:?}"
    );
    // The console's home page lists it for the admin.
    let home = p
        .app
        .client
        .get(p.app.url("/console"))
        .header("cookie", format!("__Host-mv_session={}", p.admin_s))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(home.contains("平台令牌即将过期"), "{home}");

    // Ninety-one days on at the vault: both credentials are past their age; each reminder goes
    // out once a day, not once a heartbeat.
    p.app.clock.advance(Duration::from_secs(91 * 86_400));
    until("the age reminders", async || {
        events("credential.rotation_due").len() >= 2
    })
    .await;
    // Two more heartbeat rounds (each asks Weibo about the token) send nothing again.
    let rounds = || {
        p.fake
            .calls()
            .iter()
            .filter(|c| c.path == "/oauth2/get_token_info")
            .count()
    };
    let now = rounds();
    until("two more rounds", async || rounds() >= now + 2).await;
    let due = events("credential.rotation_due");
    assert_eq!(due.len(), 2, "{due:?}");
    let mut accounts: Vec<&str> = due.iter().map(|n| n["account"].as_str().unwrap()).collect();
    accounts.sort_unstable();
    assert_eq!(accounts, ["wb", "wx"]);
}

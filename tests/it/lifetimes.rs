//! Issue 24, credential lifetimes: the vault learns when the Weibo account's OAuth token expires
//! (the heartbeat's `get_token_info`), records it, and reminds the channels and the console's home
//! page before it does; a credential older than `lifetimes.secret_max_age_days` is reminded of too.

use std::time::Duration;

use crate::common::*;
use crate::publishing::setup_with;
use serde_json::Value;

#[tokio::test]
async fn the_vault_learns_the_weibo_tokens_expiry_and_reminds_before_it_and_of_old_secrets() {
    let (hook, got) = webhook_inbox().await;
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
    let home = p.app.console_page(&p.admin_s, "/console").await;
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

/// The value of the hidden field `name` on a console page.
fn field(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker).expect("the field") + marker.len();
    body[start..start + body[start..].find('"').unwrap()].to_owned()
}

/// Re-authorising the Weibo account in the console: the admin goes to Weibo's authorisation page
/// and comes back with a code, which the vault exchanges (with the app secret) for the account's
/// new token, stored as the next credential version with the admin's code.
#[tokio::test]
async fn an_admin_reauthorises_the_weibo_account_in_the_console_and_the_new_token_is_a_rotation() {
    let p = setup_with("", None).await;
    let ca = std::fs::read(p.app.dir.path().join("certs/ca.pem")).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = format!("__Host-mv_session={}", p.admin_s);
    let page = http
        .get(p.app.url("/console/admin/accounts/wb"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"weibo-authorize\""), "{page}");
    let csrf = field(&page, "csrf");
    let r = http
        .post(p.app.url("/console/admin/accounts/wb/weibo/authorize"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to_weibo = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        to_weibo.contains("/oauth2/authorize?client_id=3344556677&redirect_uri="),
        "{to_weibo}"
    );
    // Weibo (the fake grants at once) sends the browser back with a code.
    let r = http.get(&to_weibo).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let back = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        back.starts_with(&p.app.url("/console/weibo/callback?code=")),
        "{back}"
    );
    // The hop back carries no session (the cookie is SameSite=Strict): a page with a link on.
    let landing = http.get(&back).send().await.unwrap().text().await.unwrap();
    let start = landing.find("id=\"weibo-continue\" href=\"").unwrap() + 26;
    let next = landing[start..start + landing[start..].find('"').unwrap()].replace("&amp;", "&");
    let confirm = http
        .get(p.app.url(&next))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        confirm.contains("<b id=\"weibo-account\">wb</b>"),
        "{confirm}"
    );
    let form = [
        ("csrf", field(&confirm, "csrf")),
        ("code", field(&confirm, "code")),
        ("state", field(&confirm, "state")),
        ("totp", p.app.code(&p.app.admin)),
    ];
    let r = http
        .post(p.app.url("/console/weibo/confirm"))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("/console/admin/accounts/wb?done=reauthorized")
    );
    // A rotation: version 2 with its reason, the token's expiry learnt, the exchange recorded.
    let (_, versions) = p.app.get(&p.admin_s, "/api/v1/accounts/wb/versions").await;
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert!(
        versions
            .iter()
            .any(|v| v["current"] == true && v["reason"].as_str().unwrap().contains("OAuth")),
        "{versions:?}"
    );
    let (_, acct) = p.app.get(&p.admin_s, "/api/v1/accounts/wb").await;
    assert!(acct["token_expires_at"].is_string(), "{acct}");
    let auditor_s = p.app.login(&p.auditor).await;
    let (_, sends) = p
        .app
        .get(&auditor_s, "/api/v1/audit?action=platform.send&account=wb")
        .await;
    assert!(
        sends["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["detail"]["call"] == "POST oauth2/access_token"),
        "{sends}"
    );
    // Posts now go out with the new token (the fake issued it to the same user).
    let code = p.app.code(&p.alice);
    let (st, v) = p.app.post(&p.key, "/api/v1/checkouts", serde_json::json!({"account": "wb", "operator": "alice", "totp": code, "purpose": "通报", "level": "general"})).await;
    assert_eq!(st, 201, "{v}");
    let r = p
        .app
        .client
        .post(p.app.url("/api/v1/platform/wb/2/statuses/share.json"))
        .bearer_auth(v["token"].as_str().unwrap())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(mediavault::platforms::payload::weibo_share_form(
            "重新授权后的第一条",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sent = p.fake.calls();
    let share = sent
        .iter()
        .rev()
        .find(|c| c.path == "/2/statuses/share.json")
        .unwrap();
    assert!(
        !share.body.contains("2.00WEIBO-TOKEN-MARKER") && share.body.contains("access_token=2.00"),
        "the old token is no longer used"
    );
    // The same code and state cannot be used twice.
    let r = http
        .post(p.app.url("/console/weibo/confirm"))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// The account pages in Chromium, for the README: a Weibo account with its token's expiry and the
/// re-authorisation button, and a WeChat account with today's token budget and the quota reset.
#[tokio::test]
async fn in_chromium_the_account_pages_show_budgets_and_lifetimes() {
    let p = setup_with(
        "",
        Some(Box::new(|c| c.platforms.heartbeat_interval_seconds = 1)),
    )
    .await;
    // Ten days left at Weibo: inside the warning.
    p.fake.advance(Duration::from_secs(20 * 86_400));
    until("the token's expiry", async || {
        let (_, a) = p.app.get(&p.admin_s, "/api/v1/accounts/wb").await;
        a["token_expires_at"].is_string()
    })
    .await;
    let d = crate::console::Driver::start().await;
    d.login(&p.app, &p.app.admin).await;
    d.goto(&p.app.url("/console/admin/accounts/wb")).await;
    d.wait_text("#token-expires", "即将过期").await;
    d.wait("#weibo-authorize").await;
    d.screenshot("17-account-weibo-lifetime").await;
    d.goto(&p.app.url("/console/admin/accounts/wx")).await;
    d.wait_text("#wechat-budget", "强制刷新剩余").await;
    d.wait("#clear-quota-submit").await;
    d.screenshot("18-account-wechat-budget").await;
}

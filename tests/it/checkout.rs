//! Issue: people, roles, TOTP-verified checkout, tiered approval and publishing tokens.

use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};

fn policy(account: &str, extra: &str) -> String {
    format!(
        "account = \"{account}\"\nexclusive = true\nallowed_calls = [\"POST cgi-bin/draft/add\", \"GET cgi-bin/getcallbackip\"]\n{extra}\n[who]\nroles = [\"publisher\"]\nclients = [\"cms\"]\n[levels.general]\napprovals = 0\n[levels.major]\napprovals = 1\n"
    )
}

fn shanghai_hhmm(offset_minutes: i64) -> String {
    // The test vault's clock starts at the real time; the policy's hours are set around it.
    let t = mediavault::Clock::system()
        .now()
        .to_offset(time::macros::offset!(+8))
        + time::Duration::minutes(offset_minutes);
    format!("{:02}:{:02}", t.hour(), t.minute())
}

struct World {
    app: TestApp,
    admin_s: String,
    alice: TestUser,
    bob: TestUser,
    carol: TestUser,
    client_key: String,
}

async fn world() -> World {
    let hours = format!(
        "allowed_hours = {{ from = \"{}\", to = \"{}\" }}",
        shanghai_hhmm(-120),
        shanghai_hhmm(-60)
    );
    let app = spawn_with(Options {
        policies: Some(vec![
            ("wx.toml", policy("wx", "")),
            ("wb.toml", policy("wb", &hours)),
            (
                "lan.toml",
                policy("lan", "allowed_networks = [\"10.99.0.0/16\"]"),
            ),
        ]),
        ..Default::default()
    })
    .await;
    let admin_s = app.login(&app.admin.clone()).await;
    let alice = app
        .create_user(&admin_s, "alice", &["publisher", "approver"])
        .await;
    let bob = app.create_user(&admin_s, "bob", &["approver"]).await;
    let carol = app.create_user(&admin_s, "carol", &["publisher"]).await;
    for id in ["wx", "wb", "lan", "other"] {
        let r = app
            .post(&admin_s, "/api/v1/accounts", json!({"id": id, "platform": "wechat", "display_name": id, "credential": {"app_id": "wx1", "app_secret": "s"}}))
            .await;
        assert_eq!(r.0, 201, "{}", r.1);
    }
    let r = app
        .create_client(&admin_s, "cms", &["wx", "wb", "lan"])
        .await;
    assert_eq!(r.0, 201, "{}", r.1);
    let client_key = r.1["client_key"].as_str().unwrap().to_owned();
    assert!(client_key.starts_with("mvc_"));
    World {
        app,
        admin_s,
        alice,
        bob,
        carol,
        client_key,
    }
}

impl World {
    async fn checkout(&self, account: &str, who: &TestUser, level: &str) -> (u16, Value) {
        let code = self.app.code(who);
        self.checkout_with(account, who, &code, level).await
    }
    async fn checkout_with(
        &self,
        account: &str,
        who: &TestUser,
        code: &str,
        level: &str,
    ) -> (u16, Value) {
        self.app
            .post(&self.client_key, "/api/v1/checkouts", json!({"account": account, "operator": who.username, "totp": code, "purpose": "发布通知", "level": level}))
            .await
    }
}

#[tokio::test]
async fn happy_path_checkout_introspect_checkin() {
    let w = world().await;
    let (st, v) = w.checkout("wx", &w.alice, "general").await;
    assert_eq!(st, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("mvt_"));
    assert_eq!(v["status"], "active");
    let (st, info) = w.app.get(&token, "/api/v1/token").await;
    assert_eq!(st, 200);
    assert_eq!(info["account"], "wx");
    assert_eq!(info["operator"], "alice");
    assert_eq!(info["checkout_id"], v["checkout_id"]);
    assert!(
        info["allowed_calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "POST cgi-bin/draft/add")
    );
    let acct = w.app.get(&w.admin_s, "/api/v1/accounts/wx").await.1;
    assert_eq!(acct["active_checkouts"], 1);
    let id = v["checkout_id"].as_str().unwrap();
    let (st, _) = w
        .app
        .post(
            &token,
            &format!("/api/v1/checkouts/{id}/checkin"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, p) = w.app.get(&token, "/api/v1/token").await;
    assert_eq!(st, 401, "{p}");
    // History stays.
    let hist = w
        .app
        .get(&w.admin_s, &format!("/api/v1/checkouts/{id}"))
        .await
        .1;
    assert_eq!(hist["status"], "checked_in");
    // The token is stored only as a keyed hash.
    for (path, bytes) in stored_bytes(&w.app.config).await {
        assert!(!contains(&bytes, token.as_bytes()), "{}", path.display());
    }
}

#[tokio::test]
async fn totp_code_is_never_accepted_twice_even_after_restart() {
    let mut w = world().await;
    let code = w.app.code(&w.alice);
    let (st, v) = w.checkout_with("wx", &w.alice, &code, "general").await;
    assert_eq!(st, 201, "{v}");
    let id = v["checkout_id"].as_str().unwrap().to_owned();
    w.app
        .post(
            &w.client_key,
            &format!("/api/v1/checkouts/{id}/checkin"),
            json!({}),
        )
        .await;
    let (st, v) = w.checkout_with("wx", &w.alice, &code, "general").await;
    assert_eq!(st, 401);
    assert!(
        v["detail"].as_str().unwrap().contains("already used"),
        "{v}"
    );
    w.app.restart().await;
    let (st, v) = w.checkout_with("wx", &w.alice, &code, "general").await;
    assert_eq!(st, 401, "{v}");
    assert_eq!(v["code"], "totp_invalid");
}

#[tokio::test]
async fn five_wrong_codes_lock_until_the_lock_ends() {
    let w = world().await;
    for i in 1..=5 {
        let (st, v) = w.checkout_with("wx", &w.carol, "000000", "general").await;
        let expect = if i < 5 { 401 } else { 423 };
        assert_eq!(st, expect, "attempt {i}: {v}");
    }
    let (st, v) = w.checkout("wx", &w.carol, "general").await;
    assert_eq!(st, 423, "right code while locked: {v}");
    assert_eq!(v["code"], "user_locked");
    assert!(v["locked_until"].as_str().is_some());
    w.app.clock.advance(Duration::from_secs(15 * 60));
    let (st, v) = w.checkout("wx", &w.carol, "general").await;
    assert_eq!(st, 201, "after the lock: {v}");
}

#[tokio::test]
async fn major_checkout_needs_another_persons_approval_and_claims_once() {
    let w = world().await;
    let (st, v) = w.checkout("wx", &w.alice, "major").await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["status"], "pending_approval");
    let id = v["checkout_id"].as_str().unwrap().to_owned();
    let alice_s = w.app.login(&w.alice).await;
    let code = w.app.code(&w.alice);
    let (st, v) = w
        .app
        .post(
            &alice_s,
            &format!("/api/v1/checkouts/{id}/approve"),
            json!({"totp": code}),
        )
        .await;
    assert_eq!(st, 403);
    assert_eq!(v["code"], "self_approval");
    let bob_s = w.app.login(&w.bob).await;
    let (st, _) = w
        .app
        .post(
            &bob_s,
            &format!("/api/v1/checkouts/{id}/approve"),
            json!({"totp": "123456"}),
        )
        .await;
    assert_eq!(st, 401);
    // Claiming before approval is refused.
    let code = w.app.code(&w.alice);
    let (st, _) = w
        .app
        .post(
            &w.client_key,
            &format!("/api/v1/checkouts/{id}/claim"),
            json!({"operator": "alice", "totp": code}),
        )
        .await;
    assert_eq!(st, 409);
    let code = w.app.code(&w.bob);
    let (st, v) = w
        .app
        .post(
            &bob_s,
            &format!("/api/v1/checkouts/{id}/approve"),
            json!({"totp": code, "comment": "同意发布"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "approved");
    assert_eq!(v["approvals"][0]["approver"], "bob");
    let code = w.app.code(&w.alice);
    let (st, v) = w
        .app
        .post(
            &w.client_key,
            &format!("/api/v1/checkouts/{id}/claim"),
            json!({"operator": "alice", "totp": code}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    assert_eq!(w.app.get(&token, "/api/v1/token").await.0, 200);
    let code = w.app.code(&w.alice);
    let (st, _) = w
        .app
        .post(
            &w.client_key,
            &format!("/api/v1/checkouts/{id}/claim"),
            json!({"operator": "alice", "totp": code}),
        )
        .await;
    assert_eq!(st, 409, "second claim");
    // Denial after approval revokes the live token at once.
    let code = w.app.code(&w.bob);
    let (st, v) = w
        .app
        .post(
            &bob_s,
            &format!("/api/v1/checkouts/{id}/deny"),
            json!({"totp": code}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "revoked");
    assert_eq!(w.app.get(&token, "/api/v1/token").await.0, 401);
}

#[tokio::test]
async fn refusals_carry_the_right_codes() {
    let w = world().await;
    // Expired token.
    let (_, v) = w.checkout("wx", &w.alice, "general").await;
    let token = v["token"].as_str().unwrap().to_owned();
    w.app.clock.advance(Duration::from_secs(16 * 60));
    assert_eq!(w.app.get(&token, "/api/v1/token").await.0, 401);
    let id = v["checkout_id"].as_str().unwrap();
    assert_eq!(
        w.app
            .get(&w.admin_s, &format!("/api/v1/checkouts/{id}"))
            .await
            .1["status"],
        "expired"
    );
    // A token is bound to its checkout: it cannot read another tool's checkout.
    let (_, v2) = w.checkout("wx", &w.carol, "general").await;
    let token2 = v2["token"].as_str().unwrap().to_owned();
    assert_eq!(
        w.app
            .get(&token2, &format!("/api/v1/checkouts/{id}"))
            .await
            .0,
        404
    );
    // Client key not bound to the account.
    let (st, v) = w.checkout("other", &w.alice, "general").await;
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("not_permitted")),
        "{v}"
    );
    // Outside the allowed networks.
    let (st, v) = w.checkout("lan", &w.alice, "general").await;
    assert_eq!(st, 403, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("network"), "{v}");
    // Outside the allowed hours.
    let (st, v) = w.checkout("wb", &w.alice, "general").await;
    assert_eq!(st, 403, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("hour"),
        "{v}"
    );
    // An approver without the publisher role is not admitted.
    let (st, _) = w.checkout("wx", &w.bob, "general").await;
    assert_eq!(st, 403);
    // Too long a TTL.
    let code = w.app.code(&w.carol);
    let (st, v) = w.app.post(&w.client_key, "/api/v1/checkouts", json!({"account": "wx", "operator": "carol", "totp": code, "purpose": "p", "level": "general", "ttl_seconds": 7200})).await;
    assert_eq!(st, 403, "{v}");
    // A frozen account is 423.
    let code = w.app.code(&w.app.admin);
    assert_eq!(
        w.app
            .post(
                &w.admin_s,
                "/api/v1/accounts/wx/freeze",
                json!({"reason": "test", "totp": code})
            )
            .await
            .0,
        200
    );
    let (st, v) = w.checkout("wx", &w.alice, "general").await;
    assert_eq!((st, v["code"].as_str()), (423, Some("account_frozen")));
    // The freeze revoked carol's live token.
    assert_eq!(w.app.get(&token2, "/api/v1/token").await.0, 401);
    // A revoked client key stops working at once.
    let clients = w.app.get(&w.admin_s, "/api/v1/clients").await.1;
    let cid = clients[0]["client_id"].as_str().unwrap();
    let r = w
        .app
        .client
        .delete(w.app.url(&format!("/api/v1/clients/{cid}")))
        .bearer_auth(&w.admin_s)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (st, _) = w.checkout("wb", &w.alice, "general").await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn concurrent_checkouts_of_an_exclusive_account_exactly_one_wins() {
    let w = world().await;
    let ca = w.app.code(&w.alice);
    let cc = totp_now(&w.app, &w.carol);
    let c1 = client_for(w.app.dir.path());
    let c2 = client_for(w.app.dir.path());
    let send = |c: reqwest::Client, op: &str, code: String| {
        let req = c
            .post(w.app.url("/api/v1/checkouts"))
            .bearer_auth(&w.client_key)
            .json(&json!({"account": "wx", "operator": op, "totp": code, "purpose": "p", "level": "general"}));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let (a, b) = tokio::join!(
        tokio::spawn(send(c1, "alice", ca)),
        tokio::spawn(send(c2, "carol", cc))
    );
    let mut got = [a.unwrap(), b.unwrap()];
    got.sort();
    assert_eq!(got, [201, 409]);
}

fn totp_now(app: &TestApp, u: &TestUser) -> String {
    mediavault::identity::totp::code_at(&u.seed, app.clock.unix()).unwrap()
}

#[tokio::test]
async fn login_burst_is_rate_limited_per_address() {
    let app = spawn_with_login_burst(3).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let r = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"username": "admin", "password": "wrong password!", "totp": "000000"}))
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["code"], "rate_limited");
            statuses.push(429);
        } else {
            statuses.push(r.status().as_u16());
        }
    }
    assert_eq!(&statuses[..3], &[401, 401, 401]);
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    // Another address is still served.
    let other = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(app.dir.path().join("certs/ca.pem")).unwrap(),
            )
            .unwrap(),
        )
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let r = other
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": "wrong password!", "totp": "000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Health endpoints are never limited.
    for _ in 0..20 {
        assert_eq!(
            app.client
                .get(app.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
}

#[test]
fn policy_check_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.toml"), policy("wx", "")).unwrap();
    std::fs::write(
        dir.path().join("typo.toml"),
        policy("wb", "exclusiv = true"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mediavault"))
        .args(["policy", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("typo.toml:4"), "{err}");
    assert!(err.contains("exclusiv"), "{err}");
    std::fs::remove_file(dir.path().join("typo.toml")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mediavault"))
        .args(["policy", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The shipped policies are valid.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mediavault"))
        .args(["policy", "check", "policies"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The real binary: SIGHUP with a broken policy file keeps the old policies working.
#[tokio::test]
async fn sighup_with_a_broken_policy_keeps_the_old_set() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    // The store is set up the way an operator does it: `mediavault init`, then the people, the
    // account and the tool through the API of a vault on this data dir. That vault stops and the
    // real binary serves the store, so SIGHUP reaches a real process.
    let mut app = spawn_with(Options {
        policies: Some(vec![(
            "wx.toml",
            policy("wx", "").replace("exclusive = true", "exclusive = false"),
        )]),
        plain_http: true,
        ..Default::default()
    })
    .await;
    let pol = app.config.policies_dir.clone();
    let admin_s = app.login(&app.admin.clone()).await;
    let mut seeds = Vec::new();
    for name in ["p1", "p2"] {
        seeds.push(app.create_user(&admin_s, name, &["publisher"]).await.seed);
    }
    let (st, v) = app
        .post(&admin_s, "/api/v1/accounts", json!({"id": "wx", "platform": "wechat", "display_name": "wx", "credential": {"app_id": "a", "app_secret": "b"}}))
        .await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = app.create_client(&admin_s, "cms", &["wx"]).await;
    assert_eq!(st, 201, "{v}");
    let key = v["client_key"].as_str().unwrap().to_owned();
    app.stop().await;
    let cfg = app.cli_config.clone();

    let bin = env!("CARGO_BIN_EXE_mediavault");
    let mut server = Command::new(bin)
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(base.starts_with("http://"), "{line}");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = server.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });

    let http = reqwest::Client::new();
    // The real binary runs on the real clock, so its codes are computed from it too.
    let now = || mediavault::Clock::system().unix();
    let code = |s: &mediavault::crypto::SecretBytes| {
        mediavault::identity::totp::code_at(s, now()).unwrap()
    };
    let post = |path: &str, bearer: &str, body: Value| {
        let req = http
            .post(format!("{base}{path}"))
            .bearer_auth(bearer)
            .json(&body);
        async move { into_pair(req.send().await.unwrap()).await }
    };
    let checkout = |op: &str, c: String| {
        post(
            "/api/v1/checkouts",
            &key,
            json!({"account": "wx", "operator": op, "totp": c, "purpose": "p", "level": "general"}),
        )
    };
    assert_eq!(checkout("p1", code(&seeds[0])).await.0, 201);

    std::fs::write(pol.join("wx.toml"), policy("wx", "exclusiv = false")).unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &server.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let l = rx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("no reload message");
        if l.contains("policy reload failed") {
            assert!(l.contains("wx.toml"), "{l}");
            break;
        }
    }
    let (st, v) = checkout("p2", code(&seeds[1])).await;
    assert_eq!(st, 201, "old policies still in force: {v}");
    server.kill().unwrap();
    let _ = server.wait();
}

/// In-process, the reload that SIGHUP triggers: a broken policy file is refused by name and the
/// old set stays in force; once fixed, the next reload takes it.
#[tokio::test]
async fn reload_with_a_broken_policy_keeps_the_old_set() {
    let app = spawn_with(Options {
        policies: Some(vec![("wx.toml", policy("wx", ""))]),
        ..Default::default()
    })
    .await;
    let running = app.running.as_ref().unwrap();
    let wb = app.config.policies_dir.join("wb.toml");
    std::fs::write(&wb, policy("wb", "exclusiv = false")).unwrap();
    let reloaded = running.reload().await;
    let err = reloaded.policies.unwrap_err().to_string();
    assert!(err.contains("wb.toml"), "{err}");
    assert!(reloaded.keyring.is_ok(), "{:?}", reloaded.keyring);
    assert_eq!(
        app.vault().policies().len(),
        1,
        "old policies still in force"
    );
    assert!(captured_logs().contains("policy reload failed"));

    std::fs::write(&wb, policy("wb", "")).unwrap();
    assert_eq!(running.reload().await.policies.unwrap(), 2);
    assert_eq!(app.vault().policies().len(), 2);
}

/// Approval requests and decisions reach the configured webhook channels (a real receiver on
/// loopback standing in for a WeCom robot).
#[tokio::test]
async fn approval_events_reach_the_webhook_channels() {
    let (url, got) = webhook_inbox().await;
    let app = spawn_with(Options {
        policies: Some(vec![("wx.toml", policy("wx", ""))]),
        tweak: Some(Box::new(move |c| {
            c.notify = vec![mediavault::config::NotifyChannel::new(
                "robot",
                mediavault::config::NotifyKind::Wecom,
                &url,
            )];
        })),
        ..Default::default()
    })
    .await;
    let s = app.login(&app.admin.clone()).await;
    let alice = app.create_user(&s, "alice", &["publisher"]).await;
    app.post(&s, "/api/v1/accounts", json!({"id": "wx", "platform": "wechat", "display_name": "wx", "credential": {"app_id": "a", "app_secret": "b"}})).await;
    let key = app.create_client(&s, "cms", &["wx"]).await.1["client_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = app.code(&alice);
    let (st, _) = app.post(&key, "/api/v1/checkouts", json!({"account": "wx", "operator": "alice", "totp": code, "purpose": "重大稿件", "level": "major"})).await;
    assert_eq!(st, 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let texts: Vec<String> = got
            .lock()
            .unwrap()
            .iter()
            .map(|v| v["text"]["content"].as_str().unwrap_or_default().to_owned())
            .collect();
        if texts
            .iter()
            .any(|t| t.contains("checkout.approval_requested") && t.contains("alice"))
        {
            assert!(got.lock().unwrap().iter().all(|v| v["msgtype"] == "text"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no notice: {texts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The index of live tokens never serves a token the store considers dead: a token that was just
/// used (and so is indexed) is refused on its very next request after a check-in, a freeze of its
/// account, or a revocation of its tool's key.
#[tokio::test]
async fn an_indexed_token_dies_at_once_with_checkin_freeze_and_client_revoke() {
    let w = world().await;
    let live = |token: String| {
        let app = &w.app;
        async move {
            for _ in 0..3 {
                assert_eq!(app.get(&token, "/api/v1/token").await.0, 200);
            }
        }
    };
    // Check-in by the token itself.
    let (st, v) = w.checkout("wx", &w.alice, "general").await;
    assert_eq!(st, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    live(token.clone()).await;
    let id = v["checkout_id"].as_str().unwrap();
    let (st, _) = w
        .app
        .post(
            &token,
            &format!("/api/v1/checkouts/{id}/checkin"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(w.app.get(&token, "/api/v1/token").await.0, 401);

    // Freeze of the account.
    let (st, v) = w.checkout("wx", &w.carol, "general").await;
    assert_eq!(st, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    live(token.clone()).await;
    let code = w.app.code(&w.app.admin);
    let freeze = json!({"reason": "test", "totp": code});
    let (st, _) = w
        .app
        .post(&w.admin_s, "/api/v1/accounts/wx/freeze", freeze)
        .await;
    assert_eq!(st, 200);
    assert_eq!(w.app.get(&token, "/api/v1/token").await.0, 401);
    let code = w.app.code(&w.app.admin);
    let unfreeze = json!({"reason": "test over", "totp": code});
    let (st, _) = w
        .app
        .post(&w.admin_s, "/api/v1/accounts/wx/unfreeze", unfreeze)
        .await;
    assert_eq!(st, 200);

    // Revocation of the tool's key.
    let (st, v) = w.checkout("wx", &w.alice, "general").await;
    assert_eq!(st, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    live(token.clone()).await;
    let clients = w.app.get(&w.admin_s, "/api/v1/clients").await.1;
    let cid = clients[0]["client_id"].as_str().unwrap();
    let r = w
        .app
        .client
        .delete(w.app.url(&format!("/api/v1/clients/{cid}")))
        .bearer_auth(&w.admin_s)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(w.app.get(&token, "/api/v1/token").await.0, 401);
}

//! Issue: close the holes found by an attack on the running vault (the items fixed in services).

use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};

fn policy(account: &str) -> String {
    format!(
        "account = \"{account}\"\nexclusive = false\nallowed_calls = [\"GET cgi-bin/getcallbackip\"]\n[who]\nroles = [\"publisher\"]\nclients = [\"cms\"]\n[levels.general]\napprovals = 0\n[levels.major]\napprovals = 1\n"
    )
}

struct World {
    app: TestApp,
    admin_s: String,
    key: String,
}

async fn world() -> World {
    let app = spawn_with(Options {
        policies: Some(vec![("wx.toml", policy("wx"))]),
        ..Default::default()
    })
    .await;
    let admin_s = app.login(&app.admin.clone()).await;
    let r = app.post(&admin_s, "/api/v1/accounts", json!({"id": "wx", "platform": "wechat", "display_name": "wx", "credential": {"app_id": "wx1", "app_secret": "s"}})).await;
    assert_eq!(r.0, 201, "{}", r.1);
    let r = app.create_client(&admin_s, "cms", &["wx"]).await;
    assert_eq!(r.0, 201, "{}", r.1);
    let key = r.1["client_key"].as_str().unwrap().to_owned();
    World { app, admin_s, key }
}

async fn login(app: &TestApp, user: &TestUser, password: &str, code: &str) -> (u16, Value) {
    app.post(
        "",
        "/api/v1/auth/login",
        json!({"username": user.username, "password": password, "totp": code}),
    )
    .await
}

#[tokio::test]
async fn lockout_answers_a_locked_user_as_a_wrong_password_and_keeps_counting() {
    let w = world().await;
    let app = &w.app;
    let carol = app.create_user(&w.admin_s, "carol", &["publisher"]).await;
    for i in 1..=5 {
        let code = app.code(&carol);
        let (st, v) = login(app, &carol, "wrong-password-1", &code).await;
        assert_eq!(
            (st, &v["code"]),
            (401, &json!("unauthenticated")),
            "try {i}"
        );
    }
    let db = raw_db(&app.config).await;
    let locked: Option<i64> =
        sqlx::query_scalar("SELECT locked_until FROM users WHERE username = 'carol'")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert!(locked.is_some(), "five wrong passwords lock");
    // Locked: the right password and code get exactly the wrong-password answer.
    let code = app.code(&carol);
    let (st, right) = login(app, &carol, &carol.password, &code).await;
    let code = app.code(&carol);
    let (st2, wrong) = login(app, &carol, "wrong-password-2", &code).await;
    assert_eq!((st, st2), (401, 401), "{right} {wrong}");
    assert_eq!(right["code"], wrong["code"]);
    assert_eq!(right["detail"], wrong["detail"]);
    assert!(right.get("locked_until").is_none(), "{right}");
    // Both attempts during the lock were counted.
    let failures: i64 =
        sqlx::query_scalar("SELECT failed_attempts FROM users WHERE username = 'carol'")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(failures, 7);
    // After the lock the right credentials work again.
    app.clock.advance(Duration::from_secs(16 * 60));
    let code = app.code(&carol);
    let (st, v) = login(app, &carol, &carol.password, &code).await;
    assert_eq!(st, 200, "{v}");
}

#[tokio::test]
async fn parallel_wrong_codes_cannot_slip_past_the_lock() {
    let w = world().await;
    let app = &w.app;
    app.create_user(&w.admin_s, "carol", &["publisher"]).await;
    let mut tasks = Vec::new();
    for _ in 0..18 {
        let client = app.client.clone();
        let url = app.url("/api/v1/checkouts");
        let key = w.key.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"account": "wx", "operator": "carol", "totp": "000000", "purpose": "p", "level": "general"}))
                .send()
                .await
                .unwrap();
            into_pair(r).await
        }));
    }
    let mut invalid = 0;
    for t in tasks {
        let (st, v) = t.await.unwrap();
        match v["code"].as_str() {
            Some("totp_invalid") => invalid += 1,
            Some("user_locked") => assert_eq!(st, 423),
            other => panic!("unexpected {st} {other:?}: {v}"),
        }
    }
    assert!(
        invalid <= 5,
        "{invalid} wrong codes were judged while the lock should hold"
    );
}

#[tokio::test]
async fn an_approval_not_claimed_by_its_deadline_expires() {
    let w = world().await;
    let app = &w.app;
    let alice = app.create_user(&w.admin_s, "alice", &["publisher"]).await;
    let bob = app.create_user(&w.admin_s, "bob", &["approver"]).await;
    let bob_s = app.login(&bob).await;
    let code = app.code(&alice);
    let (st, v) = app
        .post(&w.key, "/api/v1/checkouts", json!({"account": "wx", "operator": "alice", "totp": code, "purpose": "p", "level": "major"}))
        .await;
    assert_eq!(st, 202, "{v}");
    let id = v["checkout_id"].as_str().unwrap().to_owned();
    let code = app.code(&bob);
    let (st, v) = app
        .post(
            &bob_s,
            &format!("/api/v1/checkouts/{id}/approve"),
            json!({"totp": code}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["claim_deadline"].is_string(), "{v}");
    // Weeks later (here: past the default 30 minutes) the approval no longer issues a token.
    app.clock.advance(Duration::from_secs(31 * 60));
    let code = app.code(&alice);
    let (st, v) = app
        .post(
            &w.key,
            &format!("/api/v1/checkouts/{id}/claim"),
            json!({"operator": "alice", "totp": code}),
        )
        .await;
    assert_eq!((st, &v["code"]), (409, &json!("not_pending")), "{v}");
    assert!(v["detail"].as_str().unwrap().contains("expired"), "{v}");
    assert!(v.get("token").is_none());
    // The server's own sweep records the end.
    let admin_s = app.login(&app.admin.clone()).await;
    let v = app
        .wait_for(&admin_s, &format!("/api/v1/checkouts/{id}"), |v| {
            !v["ended_at"].is_null()
        })
        .await;
    assert_eq!(v["status"], "expired", "{v}");
    assert_eq!(v["end_reason"], "approval not claimed in time", "{v}");
    let (_, v) = app
        .get(&admin_s, "/api/v1/audit?action=checkout.expire")
        .await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["entries"][0]["actor"]["kind"], "system", "{v}");
    assert_eq!(v["entries"][0]["detail"]["expired"], json!([id]), "{v}");
}

#[tokio::test]
async fn one_admin_session_cannot_defeat_the_two_person_rule() {
    let w = world().await;
    let app = &w.app;
    // No step-up, no new user and no new tool. (The world was set up with the admin's codes,
    // which opened this session's step-up window: the thief comes after it has run out.)
    app.clock
        .advance(std::time::Duration::from_secs(5 * 60 + 1));
    let (st, v) = app
        .post(&w.admin_s, "/api/v1/users", json!({"username": "mallory", "display_name": "m", "roles": ["publisher"], "password": PASSWORD}))
        .await;
    assert_eq!((st, &v["field"]), (400, &json!("totp")), "{v}");
    let (st, v) = app
        .post(
            &w.admin_s,
            "/api/v1/clients",
            json!({"name": "rogue", "accounts": ["wx"]}),
        )
        .await;
    assert_eq!((st, &v["field"]), (400, &json!("totp")), "{v}");
    assert_eq!(app.get(&w.admin_s, "/api/v1/users/mallory").await.0, 404);
    // Separation of duties: an auditor stands alone, so does an admin.
    for roles in [
        json!(["auditor", "publisher"]),
        json!(["admin", "approver"]),
    ] {
        let code = app.code(&app.admin);
        let (st, v) = app
            .post(&w.admin_s, "/api/v1/users", json!({"username": "mixed", "display_name": "m", "roles": roles, "password": PASSWORD, "totp": code}))
            .await;
        assert_eq!((st, &v["field"]), (400, &json!("roles")), "{v}");
    }
    // With step-up: a publisher at once, an approver only as a pending grant.
    let code = app.code(&app.admin);
    let (st, v) = app
        .post(&w.admin_s, "/api/v1/users", json!({"username": "alice", "display_name": "a", "roles": ["publisher"], "password": PASSWORD, "totp": code}))
        .await;
    assert_eq!(st, 201, "{v}");
    let alice = TestUser {
        username: "alice".into(),
        password: PASSWORD.into(),
        seed: std::sync::Arc::new(
            mediavault::identity::totp::seed_from_base32(
                v["totp_uri"]
                    .as_str()
                    .unwrap()
                    .split("secret=")
                    .nth(1)
                    .unwrap()
                    .split('&')
                    .next()
                    .unwrap(),
            )
            .unwrap(),
        ),
    };
    let code = app.code(&app.admin);
    let (st, v) = app
        .post(&w.admin_s, "/api/v1/users", json!({"username": "bob", "display_name": "b", "roles": ["approver"], "password": PASSWORD, "totp": code}))
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["roles"], json!([]), "{v}");
    assert_eq!(v["pending_roles"], json!(["approver"]), "{v}");
    let bob = TestUser {
        username: "bob".into(),
        password: PASSWORD.into(),
        seed: std::sync::Arc::new(
            mediavault::identity::totp::seed_from_base32(
                v["totp_uri"]
                    .as_str()
                    .unwrap()
                    .split("secret=")
                    .nth(1)
                    .unwrap()
                    .split('&')
                    .next()
                    .unwrap(),
            )
            .unwrap(),
        ),
    };
    // The admin who asked cannot confirm it.
    let code = app.code(&app.admin);
    let (st, v) = app
        .post(
            &w.admin_s,
            "/api/v1/users/bob/roles/approver/confirm",
            json!({"totp": code}),
        )
        .await;
    assert_eq!((st, &v["code"]), (403, &json!("not_permitted")), "{v}");
    // So the major checkout the admin staged cannot be approved by bob.
    let code = app.code(&alice);
    let (st, v) = app
        .post(&w.key, "/api/v1/checkouts", json!({"account": "wx", "operator": "alice", "totp": code, "purpose": "p", "level": "major"}))
        .await;
    assert_eq!(st, 202, "{v}");
    let id = v["checkout_id"].as_str().unwrap().to_owned();
    let bob_s = app.login(&bob).await;
    let path = format!("/api/v1/checkouts/{id}/approve");
    let (st, v) = app
        .post(&bob_s, &path, json!({"totp": app.code(&bob)}))
        .await;
    assert_eq!(st, 403, "{v}");
    // A second admin confirms; now bob approves.
    app.confirm_role("bob", "approver").await;
    let (st, v) = app
        .post(&bob_s, &path, json!({"totp": app.code(&bob)}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "approved");
    let (_, v) = app
        .get(
            &w.admin_s,
            "/api/v1/audit?action=user.confirm_role&outcome=success",
        )
        .await;
    // Two confirmations: admin2's own admin role, by the root key holder on the server (how the
    // vault got its second admin), then bob's approver role, by admin2.
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{v}");
    assert_eq!(entries[0]["target"], "admin2", "{v}");
    assert_eq!(entries[0]["actor"]["id"], "cli:operator", "{v}");
    assert_eq!(entries[0]["detail"]["bootstrap"], true, "{v}");
    let e = &entries[1];
    assert_eq!(e["target"], "bob", "{v}");
    assert_eq!(e["actor"]["id"], "admin2", "{v}");
    assert_eq!(e["detail"]["requested_by"], "admin", "{v}");
}

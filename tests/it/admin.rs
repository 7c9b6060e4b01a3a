//! Issue 13: the people endpoints an admin needs to run the vault (unlock, enable, TOTP reset,
//! password reset), `GET /policies`, and the `mediavault admin` CLI against a real server.

use std::sync::Arc;

use crate::common::*;
use mediavault::identity::totp;
use serde_json::{Value, json};

fn policy(account: &str) -> String {
    format!(
        "account = \"{account}\"\nexclusive = true\nallowed_calls = [\"GET cgi-bin/getcallbackip\"]\n[who]\nroles = [\"publisher\"]\nclients = [\"cms\"]\n[levels.general]\napprovals = 0\n"
    )
}

async fn app() -> TestApp {
    spawn_with(Options {
        policies: Some(vec![("wx.toml", policy("wx"))]),
        tweak: Some(Box::new(|c| {
            c.rate_limits.login_per_minute = 10_000;
            c.rate_limits.login_burst = 10_000;
        })),
        ..Default::default()
    })
    .await
}

async fn login_status(app: &TestApp, user: &TestUser, password: &str) -> u16 {
    let code = app.code(user);
    app.post(
        "",
        "/api/v1/auth/login",
        json!({"username": user.username, "password": password, "totp": code}),
    )
    .await
    .0
}

#[tokio::test]
async fn unlock_enable_and_resets_take_step_up_and_are_audited() {
    let app = app().await;
    let admin_s = app.login(&app.admin.clone()).await;
    let carol = app.create_user(&admin_s, "carol", &["publisher"]).await;
    let carol_s = app.login(&carol).await;

    // Locked by wrong passwords; unlock needs the admin's code, then carol logs in again.
    for _ in 0..5 {
        assert_eq!(login_status(&app, &carol, "wrong password!").await, 401);
    }
    assert_eq!(login_status(&app, &carol, PASSWORD).await, 401, "locked");
    let listed = app.get(&admin_s, "/api/v1/users/carol").await.1;
    assert!(listed["locked_until"].is_string(), "{listed}");
    let (st, v) = app
        .post(&admin_s, "/api/v1/users/carol/unlock", json!({}))
        .await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = app
        .post(
            &admin_s,
            "/api/v1/users/carol/unlock",
            json!({"totp": "000000"}),
        )
        .await;
    assert_eq!(st, 401, "a wrong step-up code: {v}");
    let code = app.code(&app.admin);
    let (st, v) = app
        .post(
            &admin_s,
            "/api/v1/users/carol/unlock",
            json!({"totp": code}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["locked_until"].is_null(), "{v}");
    assert_eq!(login_status(&app, &carol, PASSWORD).await, 200);

    // Disable, then enable.
    let (st, _) = app
        .post(&admin_s, "/api/v1/users/carol/disable", json!({}))
        .await;
    assert_eq!(st, 200);
    assert_eq!(login_status(&app, &carol, PASSWORD).await, 401);
    let code = app.code(&app.admin);
    let (st, v) = app
        .post(
            &admin_s,
            "/api/v1/users/carol/enable",
            json!({"totp": code}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["disabled"], false);
    assert_eq!(login_status(&app, &carol, PASSWORD).await, 200);

    // Password reset: the policy applies, sessions end, the new password works.
    let carol_s2 = app.login(&carol).await;
    let code = app.code(&app.admin);
    let (st, v) = app
        .post(
            &admin_s,
            "/api/v1/users/carol/reset-password",
            json!({"password": "short", "totp": code}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["field"], "password", "{v}");
    let code = app.code(&app.admin);
    let new_pw = "a brand new passphrase";
    let (st, v) = app
        .post(
            &admin_s,
            "/api/v1/users/carol/reset-password",
            json!({"password": new_pw, "totp": code}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(app.get(&carol_s2, "/api/v1/token").await.0, 401);
    assert_eq!(login_status(&app, &carol, PASSWORD).await, 401);
    assert_eq!(login_status(&app, &carol, new_pw).await, 200);

    // TOTP reset: the base32 secret is returned once and is what logs in from now on.
    let code = app.code(&app.admin);
    let (st, v) = app
        .post(
            &admin_s,
            "/api/v1/users/carol/reset-totp",
            json!({"totp": code}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let secret = v["totp_secret"].as_str().unwrap();
    assert!(v["totp_uri"].as_str().unwrap().contains(secret));
    let old = TestUser {
        password: new_pw.into(),
        ..carol.clone()
    };
    assert_eq!(login_status(&app, &old, new_pw).await, 401, "the old seed");
    let renewed = TestUser {
        seed: Arc::new(totp::seed_from_base32(secret).unwrap()),
        ..old
    };
    assert_eq!(login_status(&app, &renewed, new_pw).await, 200);
    drop(carol_s);

    // Not on oneself.
    let code = app.code(&app.admin);
    let (st, v) = app
        .post(
            &admin_s,
            "/api/v1/users/admin/reset-totp",
            json!({"totp": code}),
        )
        .await;
    assert_eq!(st, 403, "{v}");

    // Each change is one audited entry, with the admin as actor and no secret in it.
    let (_, page) = app
        .get(&admin_s, "/api/v1/audit?action=user.reset_totp&limit=10")
        .await;
    let entries = page["entries"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["outcome"] == "success"
            && e["actor"]["id"] == "admin"
            && e["target"] == "carol"),
        "{page}"
    );
    let all = app
        .get(&admin_s, "/api/v1/audit?limit=1000")
        .await
        .1
        .to_string();
    for action in [
        "user.unlock",
        "user.enable",
        "user.reset_password",
        "user.reset_totp",
    ] {
        assert!(all.contains(action), "{action} missing");
    }
    assert!(!all.contains(secret) && !all.contains(new_pw));
    assert!(!captured_logs().contains(secret));
}

#[tokio::test]
async fn a_reset_sends_privileged_roles_back_to_a_second_admin() {
    let app = app().await;
    let admin_s = app.login(&app.admin.clone()).await;
    let bob = app.create_user(&admin_s, "bob", &["approver"]).await;
    let code = app.code(&app.admin);
    let (st, v) = app
        .post(
            &admin_s,
            "/api/v1/users/bob/reset-password",
            json!({"password": "another long passphrase", "totp": code}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["roles"], json!([]), "{v}");
    assert_eq!(v["pending_roles"], json!(["approver"]), "{v}");
    // The resetting admin cannot confirm it; a second admin can.
    let code = app.code(&app.admin);
    let (st, _) = app
        .post(
            &admin_s,
            "/api/v1/users/bob/roles/approver/confirm",
            json!({"totp": code}),
        )
        .await;
    assert_eq!(st, 403);
    app.confirm_role("bob", "approver").await;
    let v = app.get(&admin_s, "/api/v1/users/bob").await.1;
    assert_eq!(v["roles"], json!(["approver"]), "{v}");
    drop(bob);
}

#[tokio::test]
async fn policies_show_what_they_cover() {
    let app = app().await;
    let admin_s = app.login(&app.admin.clone()).await;
    for id in ["wx", "other"] {
        let r = app
            .post(&admin_s, "/api/v1/accounts", json!({"id": id, "platform": "wechat", "display_name": id, "credential": {"app_id": "wx1", "app_secret": "s"}}))
            .await;
        assert_eq!(r.0, 201, "{}", r.1);
    }
    assert_eq!(app.create_client(&admin_s, "cms", &["wx"]).await.0, 201);
    assert_eq!(
        app.create_client(&admin_s, "stray", &["other"]).await.0,
        201
    );
    let (st, v) = app.get(&admin_s, "/api/v1/policies").await;
    assert_eq!(st, 200, "{v}");
    let p: &Value = &v["policies"][0];
    assert_eq!(p["account"], "wx");
    assert_eq!(p["account_exists"], true);
    assert_eq!(p["file"], "wx.toml");
    assert_eq!(p["roles"], json!(["publisher"]));
    assert_eq!(p["admitted_clients"][0]["name"], "cms");
    assert_eq!(p["unmatched_clients"], json!([]));
    assert_eq!(p["approvals_general"], 0);
    assert!(p["approvals_major"].is_null());
    assert_eq!(v["accounts_without_policy"], json!(["other"]));
    let stray = v["clients_without_policy"].as_array().unwrap();
    assert!(stray.len() == 1 && stray[0].as_str().unwrap().starts_with("stray ("));
    // A publisher may not read them.
    let carol = app.create_user(&admin_s, "carol", &["publisher"]).await;
    let carol_s = app.login(&carol).await;
    assert_eq!(app.get(&carol_s, "/api/v1/policies").await.0, 403);
}

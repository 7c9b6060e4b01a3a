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
    // Creating carol with a code opened the admin's step-up window; once it has run out, a
    // change without a code is refused.
    app.clock
        .advance(std::time::Duration::from_secs(5 * 60 + 1));
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

/// Issue 19: a new vault has one admin, and privileged roles need a second to confirm them. The
/// root key holder, on the server, confirms the second admin with `mediavault bootstrap
/// confirm-admin` (beside the running server) — and only while the vault has fewer than two.
#[tokio::test]
async fn the_bootstrap_confirms_the_second_admin_and_no_more() {
    let app = app().await;
    let admin_s = app.login(&app.admin.clone()).await;
    let users = app.get(&admin_s, "/api/v1/users").await.1;
    assert_eq!(
        users.as_array().unwrap().len(),
        1,
        "init made one admin: {users}"
    );

    // The first admin asks for a second; the admin role waits for a confirmation.
    let code = app.code(&app.admin);
    let (st, v) = app
        .post(&admin_s, "/api/v1/users", json!({"username": "admin2", "display_name": "Second admin", "roles": ["admin"], "password": PASSWORD, "totp": code}))
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["roles"], json!([]), "{v}");
    assert_eq!(v["pending_roles"], json!(["admin"]), "{v}");
    let admin2 = TestUser {
        username: "admin2".into(),
        password: PASSWORD.into(),
        seed: Arc::new(totp::seed_from_base32(v["totp_secret"].as_str().unwrap()).unwrap()),
    };
    // Not by the admin who asked (and there is no other).
    let code = app.code(&app.admin);
    let (st, v) = app
        .post(
            &admin_s,
            "/api/v1/users/admin2/roles/admin/confirm",
            json!({"totp": code}),
        )
        .await;
    assert_eq!((st, &v["code"]), (403, &json!("not_permitted")), "{v}");

    // The root key holder confirms it on the server.
    let out = app
        .cli(&["bootstrap", "confirm-admin", "admin2", "--json"])
        .await;
    assert!(out.ok, "{}", out.stderr);
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["username"], "admin2", "{v}");
    assert_eq!(v["roles"], json!(["admin"]), "{v}");
    assert_eq!(v["pending_roles"], json!([]), "{v}");
    let (st, v) = app
        .get(&admin_s, "/api/v1/audit?action=user.confirm_role")
        .await;
    assert_eq!(st, 200, "{v}");
    let entries = v["entries"].as_array().unwrap();
    let confirmed: Vec<&Value> = entries
        .iter()
        .filter(|e| e["outcome"] == "success")
        .collect();
    assert_eq!(confirmed.len(), 1, "{v}");
    let e = confirmed[0];
    assert_eq!(e["target"], "admin2", "{e}");
    assert_eq!(
        e["actor"],
        json!({"kind": "system", "id": format!("cli:{OS_USER}")}),
        "the local CLI, by the OS user who ran it: {e}"
    );
    assert_eq!(e["detail"]["bootstrap"], true, "{e}");
    assert_eq!(e["detail"]["role"], "admin", "{e}");
    assert_eq!(e["detail"]["requested_by"], "admin", "{e}");
    assert_eq!(e["detail"]["admins_before"], 1, "{e}");
    // admin2 works as an admin at once, on the running server.
    let admin2_s = app.login(&admin2).await;
    assert_eq!(app.get(&admin2_s, "/api/v1/users").await.0, 200);

    // With two admins the bootstrap is over: a third pending admin is refused, and nothing
    // changes.
    let code = app.code(&app.admin);
    let (st, v) = app
        .post(&admin_s, "/api/v1/users", json!({"username": "admin3", "display_name": "Third admin", "roles": ["admin"], "password": PASSWORD, "totp": code}))
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["pending_roles"], json!(["admin"]), "{v}");
    let out = app.cli(&["bootstrap", "confirm-admin", "admin3"]).await;
    assert!(!out.ok, "{}", out.stdout);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(
        out.stderr.contains(
            "error: the vault has 2 admins: the bootstrap confirmation is over; another admin \
             confirms with `mediavault admin users confirm admin3 admin`"
        ),
        "{}",
        out.stderr
    );
    // The refusal's code, as the API would give it, ends the line for scripts.
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("error: the vault has 2 admins")
                && l.ends_with("`mediavault admin users confirm admin3 admin` (bootstrap_over)")),
        "{}",
        out.stderr
    );
    let v = app.get(&admin_s, "/api/v1/users/admin3").await.1;
    assert_eq!(v["roles"], json!([]), "{v}");
    assert_eq!(v["pending_roles"], json!(["admin"]), "{v}");
    let (_, v) = app
        .get(
            &admin_s,
            "/api/v1/audit?action=user.confirm_role&outcome=success",
        )
        .await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 1, "{v}");
    // The way the message names: the second admin confirms.
    let code = app.code(&admin2);
    let (st, v) = app
        .post(
            &admin2_s,
            "/api/v1/users/admin3/roles/admin/confirm",
            json!({"totp": code}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["roles"], json!(["admin"]), "{v}");

    // A name with no pending grant of admin is refused clearly, as is a name of nobody.
    app.create_user(&admin_s, "carol", &["publisher"]).await;
    let out = app.cli(&["bootstrap", "confirm-admin", "carol"]).await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains(
            "error: carol has no pending grant of admin (the bootstrap confirms only admin; an \
             admin asks for it first: `mediavault admin users grant carol admin`)"
        ),
        "{}",
        out.stderr
    );
    let out = app.cli(&["bootstrap", "confirm-admin", "nobody"]).await;
    assert!(!out.ok);
    assert!(
        out.stderr
            .lines()
            .any(|l| l == "error: user nobody not found (not_found)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("error: user nobody not found"),
        "{}",
        out.stderr
    );
    let v = app.get(&admin_s, "/api/v1/users/carol").await.1;
    assert_eq!(v["roles"], json!(["publisher"]), "{v}");
    assert_eq!(v["pending_roles"], json!([]), "{v}");

    // Each refusal is in the audit log as the CLI's, denied, with its reason: a security
    // officer sees someone on the server trying.
    let (_, v) = app
        .get(
            &admin_s,
            "/api/v1/audit?action=user.confirm_role&outcome=denied",
        )
        .await;
    let denied: Vec<(&str, &str)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"]["id"] == format!("cli:{OS_USER}"))
        .map(|e| {
            assert_eq!(e["detail"]["bootstrap"], true, "{e}");
            (
                e["target"].as_str().unwrap(),
                e["detail"]["refused"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(denied.len(), 3, "{v}");
    for (target, why) in [
        ("admin3", "the bootstrap confirmation is over"),
        ("carol", "has no pending grant of admin"),
        ("nobody", "not found"),
    ] {
        assert!(
            denied.iter().any(|(t, r)| *t == target && r.contains(why)),
            "{target}: {denied:?}"
        );
    }
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

/// Runs `mediavault admin --profile PROFILE ARGS…` with `stdin` as its standard input (not a
/// terminal, so every prompt reads one line). Async, so the server in this runtime keeps serving.
async fn admin_cli(
    profile: &std::path::Path,
    args: &[&str],
    stdin: &str,
) -> (bool, String, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mediavault"))
        .arg("admin")
        .arg("--profile")
        .arg(profile)
        .args(args)
        .env_remove("MEDIAVAULT_ADMIN_PROFILE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    crate::common::feed(&mut input, stdin.as_bytes()).await;
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn admin_cli_from_login_to_a_first_checkout() {
    use std::os::unix::fs::PermissionsExt;
    let app = app().await;
    let profile = app.dir.path().join("home/.config/mediavault/admin.toml");
    let ca = app.dir.path().join("certs/ca.pem");
    let ca = ca.to_str().unwrap();

    // Before login: a clear message, no crash.
    let (ok, _, err) = admin_cli(&profile, &["users", "list"], "").await;
    assert!(!ok && err.contains("admin login"), "{err}");

    // Login: username by flag, password and TOTP code from standard input.
    let code = app.code(&app.admin);
    let (ok, out, err) = admin_cli(
        &profile,
        &[
            "login",
            "--url",
            &app.base,
            "--ca",
            ca,
            "--username",
            "admin",
        ],
        &format!("{PASSWORD}\n{code}\n"),
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("signed in as admin"), "{out}");
    let mode = std::fs::metadata(&profile).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the profile holds a session");
    let text = std::fs::read_to_string(&profile).unwrap();
    assert!(text.contains("session_token = \"mvs_") && !text.contains(PASSWORD));

    // A user with a department; the enrolment's base32 secret is printed once.
    let code = app.code(&app.admin);
    let (ok, out, err) = admin_cli(
        &profile,
        &[
            "users",
            "add",
            "carol",
            "--role",
            "publisher",
            "--department",
            "宣传处",
            "--display-name",
            "Carol",
        ],
        &format!("{PASSWORD}\n{code}\n"),
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(out.contains('█'), "the QR code: {out}");
    let secret = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret: "))
        .unwrap()
        .to_owned();
    let carol = TestUser {
        username: "carol".into(),
        password: PASSWORD.into(),
        seed: Arc::new(totp::seed_from_base32(&secret).unwrap()),
    };

    // An account, its secret from standard input, never on the command line.
    let app_secret = "wechat-app-secret-0123456789";
    let (ok, out, err) = admin_cli(
        &profile,
        &[
            "accounts",
            "add",
            "wx",
            "--platform",
            "wechat",
            "--display-name",
            "公众号",
            "--secret-stdin",
        ],
        &format!("wx_app_1\n{app_secret}\n"),
    )
    .await;
    assert!(ok, "{out}{err}");

    // The tool named in the policy; its key is shown once.
    let code = app.code(&app.admin);
    let (ok, out, err) = admin_cli(
        &profile,
        &["--json", "clients", "add", "cms", "--account", "wx"],
        &format!("{code}\n"),
    )
    .await;
    assert!(ok, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let client_key = v["client_key"].as_str().unwrap().to_owned();
    let client_id = v["client_id"].as_str().unwrap().to_owned();

    // What the policies cover, and lists.
    let (ok, out, err) = admin_cli(&profile, &["policies"], "").await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("wx [wx.toml]") && out.contains("cms ("),
        "{out}"
    );
    let (ok, out, _) = admin_cli(&profile, &["users", "list"], "").await;
    assert!(
        ok && out.contains("carol") && out.contains("宣传处"),
        "{out}"
    );
    let (ok, out, _) = admin_cli(&profile, &["accounts", "list"], "").await;
    assert!(
        ok && out.contains("wx") && !out.contains(app_secret),
        "{out}"
    );

    // The tool's first checkout through the API.
    let code = app.code(&carol);
    let (st, v) = app
        .post(
            &client_key,
            "/api/v1/checkouts",
            json!({"account": "wx", "operator": "carol", "totp": code, "purpose": "first post", "level": "general"}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert!(v["token"].as_str().unwrap().starts_with("mvt_"));

    // Bound to a client certificate (mutual TLS), the key alone is refused; unbound, it works.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "cms-cert");
    let cert_file = app.dir.path().join("cms.pem");
    std::fs::write(&cert_file, params.self_signed(&key).unwrap().pem()).unwrap();
    let code = app.code(&app.admin);
    let (ok, out, err) = admin_cli(
        &profile,
        &[
            "--json",
            "clients",
            "bind",
            &client_id,
            "--cert",
            cert_file.to_str().unwrap(),
        ],
        &format!("{code}\n"),
    )
    .await;
    assert!(ok, "{out}{err}");
    let bound: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(bound["certificate"]["subject"], "CN=cms-cert", "{bound}");
    // This vault asks for no client certificates: the binding says the tool cannot work yet.
    assert!(
        bound["warning"]
            .as_str()
            .unwrap()
            .contains("tls.client_ca_file"),
        "{bound}"
    );
    let code = app.code(&carol);
    let checkout = json!({"account": "wx", "operator": "carol", "totp": code, "purpose": "second post", "level": "general"});
    let (st, v) = app.post(&client_key, "/api/v1/checkouts", checkout).await;
    assert_eq!(
        (st, &v["code"]),
        (401, &json!("client_certificate_required")),
        "{v}"
    );
    let code = app.code(&app.admin);
    let (ok, out, err) = admin_cli(
        &profile,
        &["clients", "unbind", &client_id],
        &format!("{code}\n"),
    )
    .await;
    assert!(ok, "{out}{err}");

    // It shows in the CLI's lists and the audit log, and the chain verifies.
    let (ok, out, _) = admin_cli(&profile, &["checkouts", "list"], "").await;
    assert!(
        ok && out.contains("carol") && out.contains("active"),
        "{out}"
    );
    let (ok, out, _) = admin_cli(&profile, &["audit", "tail", "-n", "50"], "").await;
    assert!(
        ok && out.contains("client.create") && out.contains("checkout"),
        "{out}"
    );
    let (ok, out, err) = admin_cli(&profile, &["audit", "verify"], "").await;
    assert!(ok && out.contains("verifies"), "{out}{err}");

    // A TOTP reset through the CLI: the new secret is what carol logs in with.
    let code = app.code(&app.admin);
    let (ok, out, err) = admin_cli(
        &profile,
        &["users", "reset-totp", "carol"],
        &format!("{code}\n"),
    )
    .await;
    assert!(ok && out.contains('█'), "{out}{err}");
    let new_secret = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret: "))
        .unwrap();
    assert_ne!(new_secret, secret);

    // A wrong step-up code is the server's clear refusal, and nothing changes. (The codes
    // above kept the session's step-up window open; the CLI asks again once it has run out.)
    app.clock
        .advance(std::time::Duration::from_secs(5 * 60 + 1));
    let (ok, _, err) = admin_cli(&profile, &["users", "unlock", "carol"], "000000\n").await;
    assert!(!ok && err.contains("totp_invalid"), "{err}");

    // The audit log names the admin for every change; no secret reached it or the logs.
    let all = app
        .get(
            &app.login(&app.admin.clone()).await,
            "/api/v1/audit?limit=1000",
        )
        .await
        .1
        .to_string();
    assert!(!all.contains(app_secret) && !all.contains(&secret) && !all.contains(&client_key));
    assert!(!captured_logs().contains(app_secret));

    // Logout forgets the session.
    let (ok, _, err) = admin_cli(&profile, &["logout"], "").await;
    assert!(ok, "{err}");
    let (ok, _, err) = admin_cli(&profile, &["users", "list"], "").await;
    assert!(!ok && err.contains("admin login"), "{err}");
}

/// The standalone fakes know the apps given on the command line or in a file.
#[cfg(feature = "demo")]
#[tokio::test]
async fn fake_platforms_alone_serve_the_apps_they_are_given() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("apps.toml");
    std::fs::write(
        &apps,
        "[[weibo]]\napp_key = \"k1\"\napp_secret = \"s1\"\naccess_token = \"t1\"\nuid = 42\n",
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mediavault"))
        .args([
            "fake-platforms",
            "--listen",
            "127.0.0.1:0",
            "--wechat-app",
            "wx1:sekrit",
            "--apps",
        ])
        .arg(&apps)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let base = first.rsplit(' ').next().unwrap().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{first}");
    let v: Value = reqwest::get(format!(
        "{base}/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=sekrit"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(v["access_token"].is_string(), "{v}");
    let v: Value = reqwest::Client::new()
        .post(format!("{base}/oauth2/get_token_info"))
        .form(&[("access_token", "t1")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["uid"], 42, "{v}");
    child.kill().await.unwrap();
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_mediavault"))
        .args(["fake-platforms", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("/_fake/wechat/apps") && help.contains("--weibo-app"),
        "{help}"
    );
}

/// The README's CLI table names every command the binary has, down to `admin users reset-totp`.
#[test]
fn readme_cli_table_lists_every_command() {
    use clap::CommandFactory;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("## CLI\n").nth(1).unwrap();
    let section = section.split("\n## ").next().unwrap();
    let rows: Vec<&str> = section.lines().filter(|l| l.starts_with("| `")).collect();
    fn leaves(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        let subs: Vec<&clap::Command> = cmd
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .collect();
        if subs.is_empty() {
            out.push(path);
            return;
        }
        for s in subs {
            let mut p = path.clone();
            p.push(s.get_name().to_owned());
            leaves(s, p, out);
        }
    }
    let mut all = Vec::new();
    leaves(&mediavault::cli::Cli::command(), Vec::new(), &mut all);
    assert!(all.len() > 30, "{all:?}");
    for path in all {
        let (leaf, parents) = path.split_last().unwrap();
        let prefix = if parents.is_empty() {
            format!("`{leaf}")
        } else {
            format!("`{} ", parents.join(" "))
        };
        let found = rows.iter().any(|r| {
            let first = r.split(" | ").next().unwrap_or_default();
            first.contains(&prefix)
                && first
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .any(|w| w == leaf)
        });
        assert!(found, "README's CLI table lacks `{}`", path.join(" "));
    }
}

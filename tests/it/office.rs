//! Issue 19: what a real office meets on day one. Step-up windows that people can live with,
//! onboarding many people with one code, and the small things (headers, the console's slash).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

const WINDOW: Duration = Duration::from_secs(5 * 60);

fn policy(account: &str) -> String {
    format!(
        "account = \"{account}\"\nexclusive = false\nallowed_calls = [\"GET cgi-bin/getcallbackip\"]\n[who]\nroles = [\"publisher\"]\nclients = [\"cms\"]\n[levels.general]\napprovals = 0\n[levels.major]\napprovals = 1\n"
    )
}

/// The audit entries with `action`, oldest first.
async fn entries(app: &TestApp, session: &str, action: &str) -> Vec<Value> {
    let (st, v) = app
        .get(
            session,
            &format!("/api/v1/audit?action={action}&limit=1000"),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v["entries"].as_array().unwrap().clone()
}

async fn window(app: &TestApp, session: &str) -> Value {
    let (st, v) = app.get(session, "/api/v1/auth/session").await;
    assert_eq!(st, 200, "{v}");
    v
}

#[tokio::test]
async fn a_step_up_window_lets_an_admin_work_and_every_change_names_it() {
    let app = spawn_app().await;
    let s = app.login(&app.admin.clone()).await;

    // The login proved the TOTP code: its window is open, and says so.
    let w = window(&app, &s).await;
    assert_eq!(w["username"], "admin");
    let left = w["step_up_seconds_left"].as_i64().unwrap();
    assert!((295..=300).contains(&left), "{w}");
    let login_seq = w["step_up_seq"].as_i64().unwrap();
    let logins = entries(&app, &s, "auth.login").await;
    assert_eq!(logins.last().unwrap()["seq"], login_seq);

    // Two changes with no code, back to back (one code per 30 s step would refuse the second).
    for name in ["pia", "quinn"] {
        let (st, v) = app
            .post(&s, "/api/v1/users", json!({"username": name, "display_name": name, "roles": ["publisher"], "password": PASSWORD}))
            .await;
        assert_eq!(st, 201, "{v}");
    }
    let (st, v) = app.post(&s, "/api/v1/users/pia/unlock", json!({})).await;
    assert_eq!(st, 200, "{v}");
    let made = entries(&app, &s, "user.create").await;
    let made: Vec<&Value> = made
        .iter()
        .filter(|e| e["target"] == "pia" || e["target"] == "quinn")
        .collect();
    assert_eq!(made.len(), 2);
    for e in made {
        assert_eq!(e["detail"]["step_up_seq"], login_seq, "{e}");
    }
    let unlock = entries(&app, &s, "user.unlock").await;
    assert_eq!(unlock[0]["detail"]["step_up_seq"], login_seq, "{unlock:?}");

    // Four minutes later the console's countdown has one minute left; after five, it is over and
    // a change without a code is refused, saying which field is missing.
    app.clock.advance(Duration::from_secs(4 * 60));
    let left = window(&app, &s).await["step_up_seconds_left"]
        .as_i64()
        .unwrap();
    assert!((55..=60).contains(&left), "{left}");
    app.clock.advance(Duration::from_secs(61));
    let w = window(&app, &s).await;
    assert_eq!(
        (
            &w["step_up_seconds_left"],
            &w["step_up_until"],
            &w["step_up_seq"]
        ),
        (&json!(0), &Value::Null, &Value::Null),
        "{w}"
    );
    let (st, v) = app.post(&s, "/api/v1/users/quinn/unlock", json!({})).await;
    assert_eq!((st, &v["field"]), (400, &json!("totp")), "{v}");

    // One code opens a new window; the changes under it name that step-up's own entry.
    let code = app.code(&app.admin);
    let (st, v) = app
        .post(&s, "/api/v1/auth/step-up", json!({"totp": code}))
        .await;
    assert_eq!(st, 200, "{v}");
    let step_seq = v["step_up_seq"].as_i64().unwrap();
    assert!(step_seq > login_seq);
    let stepped = entries(&app, &s, "auth.step_up").await;
    assert_eq!(stepped.last().unwrap()["seq"], step_seq);
    // The same code again is a replay.
    let (st, v) = app
        .post(&s, "/api/v1/auth/step-up", json!({"totp": code}))
        .await;
    assert_eq!((st, &v["code"]), (401, &json!("totp_invalid")), "{v}");
    let (st, v) = app.post(&s, "/api/v1/users/quinn/unlock", json!({})).await;
    assert_eq!(st, 200, "{v}");
    let unlock = entries(&app, &s, "user.unlock").await;
    assert_eq!(unlock.last().unwrap()["detail"]["step_up_seq"], step_seq);

    // A code given with a change is a step-up too: recorded as such, and it opens a window.
    app.clock.advance(WINDOW + Duration::from_secs(1));
    let (st, v) = app.post(&s, "/api/v1/accounts", json!({"id": "wx", "platform": "wechat", "display_name": "wx", "credential": {"app_id": "wx1", "app_secret": "s"}})).await;
    assert_eq!(st, 201, "{v}");
    let code = app.code(&app.admin);
    let (st, v) = app
        .post(
            &s,
            "/api/v1/clients",
            json!({"name": "cms", "accounts": ["wx"], "totp": code}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let made = entries(&app, &s, "client.create").await;
    let made = made.last().unwrap();
    assert_eq!(made["detail"]["step_up"], "code", "{made}");
    assert!(made["detail"]["step_up_until"].is_string(), "{made}");
    assert_eq!(window(&app, &s).await["step_up_seq"], made["seq"]);

    // The window belongs to the session: another login of the same admin has its own, and
    // logout ends this one with the session.
    let (st, _) = app.post(&s, "/api/v1/auth/logout", json!({})).await;
    assert_eq!(st, 204);
    let (st, v) = app.post(&s, "/api/v1/users/quinn/unlock", json!({})).await;
    assert_eq!((st, &v["code"]), (401, &json!("unauthenticated")), "{v}");

    // The idle timeout ends it too: a session left alone is gone, window and all.
    let s2 = app.login(&app.admin.clone()).await;
    app.clock.advance(Duration::from_secs(
        u64::from(app.config.session.idle_timeout_minutes) * 60 + 1,
    ));
    let (st, v) = app.get(&s2, "/api/v1/auth/session").await;
    assert_eq!(st, 401, "{v}");
}

#[tokio::test]
async fn a_window_never_signs_an_approval_or_outlives_a_reset() {
    let app = spawn_with(Options {
        policies: Some(vec![("wx.toml", policy("wx"))]),
        ..Default::default()
    })
    .await;
    let s = app.login(&app.admin.clone()).await;
    let (st, v) = app.post(&s, "/api/v1/accounts", json!({"id": "wx", "platform": "wechat", "display_name": "wx", "credential": {"app_id": "wx1", "app_secret": "s"}})).await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = app.create_client(&s, "cms", &["wx"]).await;
    assert_eq!(st, 201, "{v}");
    let key = v["client_key"].as_str().unwrap().to_owned();
    let alice = app.create_user(&s, "alice", &["publisher"]).await;
    let carol = app.create_user(&s, "carol", &["approver"]).await;

    let code = app.code(&alice);
    let (st, v) = app
        .post(&key, "/api/v1/checkouts", json!({"account": "wx", "operator": "alice", "totp": code, "purpose": "重大信息", "level": "major"}))
        .await;
    assert_eq!(st, 202, "{v}");
    let id = v["checkout_id"].as_str().unwrap().to_owned();

    // Carol has just logged in (her window is open), and opened it again explicitly: still, an
    // approval asks for her code.
    let cs = app.login(&carol).await;
    let code = app.code(&carol);
    let (st, v) = app
        .post(&cs, "/api/v1/auth/step-up", json!({"totp": code}))
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = app
        .post(&cs, &format!("/api/v1/checkouts/{id}/approve"), json!({}))
        .await;
    let asks_code =
        |st: u16, v: &Value| st == 400 && v["detail"].as_str().unwrap().contains("totp");
    assert!(asks_code(st, &v), "{st} {v}");
    let (st, v) = app
        .post(&cs, &format!("/api/v1/checkouts/{id}/deny"), json!({}))
        .await;
    assert!(asks_code(st, &v), "{st} {v}");
    let (st, v) = app.get(&key, &format!("/api/v1/checkouts/{id}")).await;
    assert_eq!(v["status"], "pending_approval", "{st} {v}");
    let code = app.code(&carol);
    let (st, v) = app
        .post(
            &cs,
            &format!("/api/v1/checkouts/{id}/approve"),
            json!({"totp": code}),
        )
        .await;
    assert_eq!(st, 200, "{v}");

    // A password reset ends every session of the person, and with them their windows.
    let (st, v) = app
        .post(
            &s,
            "/api/v1/users/carol/reset-password",
            json!({"password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, _) = app.get(&cs, "/api/v1/auth/session").await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn with_windows_off_every_change_takes_its_own_code() {
    let app = spawn_with(Options {
        tweak: Some(Box::new(|c| c.session.step_up_minutes = 0)),
        ..Default::default()
    })
    .await;
    let s = app.login(&app.admin.clone()).await;
    let w = window(&app, &s).await;
    assert_eq!(w["step_up_seconds_left"], 0, "{w}");
    let (st, v) = app
        .post(&s, "/api/v1/users", json!({"username": "pia", "display_name": "p", "roles": ["publisher"], "password": PASSWORD}))
        .await;
    assert_eq!((st, &v["field"]), (400, &json!("totp")), "{v}");
    let code = app.code(&app.admin);
    let (st, v) = app
        .post(&s, "/api/v1/auth/step-up", json!({"totp": code}))
        .await;
    assert_eq!((st, &v["code"]), (409, &json!("step_up_off")), "{v}");
    // The refused step-up did not spend the code: the change it was meant for goes through.
    let (st, v) = app
        .post(&s, "/api/v1/users", json!({"username": "pia", "display_name": "p", "roles": ["publisher"], "password": PASSWORD, "totp": code}))
        .await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = app.post(&s, "/api/v1/users/pia/unlock", json!({})).await;
    assert_eq!((st, &v["field"]), (400, &json!("totp")), "{v}");
}

fn roster(n: usize) -> Vec<Value> {
    (1..=n)
        .map(|i| {
            let roles: &[&str] = match i {
                1 => &["auditor"],
                2 => &["approver"],
                3 => &["approver", "publisher"],
                _ => &["publisher"],
            };
            json!({
                "username": format!("staff{i:02}"),
                "display_name": format!("工作人员{i}"),
                "department": if i % 2 == 0 { "宣传处" } else { "办公室" },
                "roles": roles,
            })
        })
        .collect()
}

#[tokio::test]
async fn twenty_people_join_with_one_code_each_audited() {
    let app = spawn_app().await;
    let s = app.login(&app.admin.clone()).await;
    // Long after the login, so the import itself needs (and spends) one code.
    app.clock.advance(WINDOW + Duration::from_secs(1));
    let code = app.code(&app.admin);
    let started = Instant::now();
    let (st, v) = app
        .post(
            &s,
            "/api/v1/users/import",
            json!({"users": roster(20), "totp": code}),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(st, 201, "{v}");
    eprintln!("20 people imported in {took:?}");
    let created = v["created"].as_array().unwrap();
    assert_eq!(created.len(), 20);

    // Each enrolment is in the answer, once; the privileged roles wait for a second admin.
    let mut passwords = std::collections::HashSet::new();
    for (i, p) in created.iter().enumerate() {
        assert_eq!(p["username"], format!("staff{:02}", i + 1));
        assert!(
            p["totp_uri"]
                .as_str()
                .unwrap()
                .starts_with("otpauth://totp/")
        );
        assert!(passwords.insert(p["password"].as_str().unwrap().to_owned()));
    }
    assert_eq!(created[0]["roles"], json!(["auditor"]));
    assert_eq!(created[1]["roles"], json!([]));
    assert_eq!(created[1]["pending_roles"], json!(["approver"]));
    assert_eq!(created[2]["roles"], json!(["publisher"]));
    assert_eq!(created[3]["department"], "宣传处");

    // A person logs in with what was handed over.
    let last = &created[19];
    let person = TestUser {
        username: "staff20".into(),
        password: last["password"].as_str().unwrap().into(),
        seed: std::sync::Arc::new(
            mediavault::identity::totp::seed_from_base32(last["totp_secret"].as_str().unwrap())
                .unwrap(),
        ),
    };
    let ps = app.login(&person).await;
    assert_eq!(window(&app, &ps).await["username"], "staff20");

    // One import entry spent the code; twenty user.create entries name it; nothing secret in
    // any of them.
    let imports = entries(&app, &s, "user.import").await;
    assert_eq!(imports.len(), 1, "{imports:?}");
    let import = &imports[0];
    assert_eq!(import["detail"]["step_up"], "code", "{import}");
    let made: Vec<Value> = entries(&app, &s, "user.create")
        .await
        .into_iter()
        .filter(|e| e["target"].as_str().unwrap().starts_with("staff"))
        .collect();
    assert_eq!(made.len(), 20);
    for e in &made {
        assert_eq!(e["outcome"], "success");
        assert_eq!(e["detail"]["import_seq"], import["seq"], "{e}");
        assert!(e["actor"]["id"] == "admin", "{e}");
    }
    let all = app.get(&s, "/api/v1/audit?limit=1000").await.1.to_string();
    for p in created {
        assert!(!all.contains(p["password"].as_str().unwrap()));
        assert!(!all.contains(p["totp_secret"].as_str().unwrap()));
    }
    assert!(!captured_logs().contains(last["password"].as_str().unwrap()));
}

#[tokio::test]
async fn a_bad_roster_adds_nobody_and_says_where() {
    let app = spawn_app().await;
    let s = app.login(&app.admin.clone()).await;
    let count = |v: &Value| v.as_array().unwrap().len();
    let before = count(&app.get(&s, "/api/v1/users").await.1);

    // A bad row, late in the roster: 400 naming the row and field; the rows before it are not made.
    let mut people = roster(5);
    people[3]["roles"] = json!(["admin", "auditor"]);
    let (st, v) = app
        .post(&s, "/api/v1/users/import", json!({"users": people}))
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("person 4"), "{v}");
    // Twice the same name, and a name that exists.
    let mut people = roster(3);
    people[2]["username"] = json!("staff01");
    let (st, v) = app
        .post(&s, "/api/v1/users/import", json!({"users": people}))
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("twice"), "{v}");
    let mut people = roster(3);
    people[1]["username"] = json!("admin");
    let (st, v) = app
        .post(&s, "/api/v1/users/import", json!({"users": people}))
        .await;
    assert_eq!((st, &v["code"]), (409, &json!("already_exists")), "{v}");
    assert!(v["detail"].as_str().unwrap().contains("admin"), "{v}");
    // Nobody at all, and more than a roster holds.
    for users in [json!([]), Value::Array(roster(201))] {
        let (st, v) = app
            .post(&s, "/api/v1/users/import", json!({"users": users}))
            .await;
        assert_eq!((st, &v["field"]), (400, &json!("users")), "{v}");
    }
    assert_eq!(count(&app.get(&s, "/api/v1/users").await.1), before);
    assert!(
        !entries(&app, &s, "user.create")
            .await
            .iter()
            .any(|e| e["target"].as_str().unwrap().starts_with("staff"))
    );

    // Not an admin: refused whatever the roster.
    let pub_user = app.create_user(&s, "pia", &["publisher"]).await;
    let ps = app.login(&pub_user).await;
    let (st, v) = app
        .post(&ps, "/api/v1/users/import", json!({"users": roster(1)}))
        .await;
    assert_eq!((st, &v["code"]), (403, &json!("not_permitted")), "{v}");
}

#[tokio::test]
async fn api_answers_are_never_cached_or_sniffed_and_the_console_slash_redirects() {
    let app = spawn_app().await;
    let s = app.login(&app.admin.clone()).await;
    for (path, bearer, status) in [
        ("/api/v1/auth/session", s.as_str(), 200),
        ("/api/v1/users", "", 401),
        ("/api/v1/no-such-thing", s.as_str(), 404),
        ("/healthz", "", 200),
        ("/console/login", "", 200),
    ] {
        let r = app
            .client
            .get(app.url(path))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{path}");
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert_eq!(h["strict-transport-security"], "max-age=31536000", "{path}");
        assert!(h.get("server").is_none(), "{path}: no banner: {h:?}");
    }
    // Plain HTTP (loopback only) sends no HSTS: it would tell a browser nothing true.
    let plain = spawn_with(Options {
        plain_http: true,
        ..Default::default()
    })
    .await;
    let r = plain
        .client
        .get(plain.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("strict-transport-security").is_none());
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let no_redirect = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(app.dir.path().join("certs/ca.pem")).unwrap(),
            )
            .unwrap(),
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect.get(app.url("/console/")).send().await.unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/console");
}

//! Issue: one service layer that owns every rule, and audit records that commit with the change.

use std::time::Duration;

use crate::common::*;
use mediavault::platforms::fake::{FakeConfig, FakePlatforms};
use serde_json::{Value, json};

const APP_ID: &str = "wx55aa66bb77cc88dd";
const SECRET: &str = "SECRET-MARKER-7c1d";

fn policy(account: &str) -> String {
    format!(
        "account = \"{account}\"\nexclusive = false\nallowed_calls = [\"POST cgi-bin/draft/add\", \"GET cgi-bin/getcallbackip\"]\n[who]\nroles = [\"publisher\"]\nclients = [\"cms\"]\n[levels.general]\napprovals = 0\n[levels.major]\napprovals = 1\n"
    )
}

struct World {
    app: TestApp,
    fake: FakePlatforms,
    admin_s: String,
    alice: TestUser,
    bob: TestUser,
    bob_s: String,
    key: String,
}

/// A vault with the shipped fake WeChat behind it; `slow` delays every platform answer, so a
/// test can hang up while a call is in flight.
async fn world(slow: Option<Duration>) -> World {
    let fake = FakePlatforms::new(FakeConfig {
        classic_overlap: Duration::from_secs(0),
        ..Default::default()
    });
    fake.add_wechat_app(APP_ID, SECRET);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_url = format!("http://{}", listener.local_addr().unwrap());
    let mut router = fake.router();
    if let Some(delay) = slow {
        router = router.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| async move {
                tokio::time::sleep(delay).await;
                next.run(req).await
            },
        ));
    }
    tokio::spawn(async move { axum::serve(listener, router).await });
    let url = fake_url.clone();
    let app = spawn_with(Options {
        policies: Some(vec![("wx.toml", policy("wx")), ("wy.toml", policy("wy"))]),
        tweak: Some(Box::new(move |c| {
            c.platforms.wechat_base_url = url.clone();
            c.platforms.weibo_base_url = url;
        })),
        ..Default::default()
    })
    .await;
    let admin_s = app.login(&app.admin.clone()).await;
    let alice = app.create_user(&admin_s, "alice", &["publisher"]).await;
    let bob = app.create_user(&admin_s, "bob", &["approver"]).await;
    let bob_s = app.login(&bob).await;
    for id in ["wx", "wy"] {
        let r = app.post(&admin_s, "/api/v1/accounts", json!({"id": id, "platform": "wechat", "display_name": id, "credential": {"app_id": APP_ID, "app_secret": SECRET}})).await;
        assert_eq!(r.0, 201, "{}", r.1);
    }
    let r = app.create_client(&admin_s, "cms", &["wx", "wy"]).await;
    assert_eq!(r.0, 201, "{}", r.1);
    let key = r.1["client_key"].as_str().unwrap().to_owned();
    World {
        app,
        fake,
        admin_s,
        alice,
        bob,
        bob_s,
        key,
    }
}

impl World {
    async fn checkout(&self, account: &str, level: &str) -> (u16, Value) {
        let code = self.app.code(&self.alice);
        self.app
            .post(&self.key, "/api/v1/checkouts", json!({"account": account, "operator": "alice", "totp": code, "purpose": "发布通知", "level": level}))
            .await
    }

    fn drafts_received(&self) -> usize {
        self.fake
            .calls()
            .iter()
            .filter(|c| c.path.contains("draft/add"))
            .count()
    }

    async fn block_audit(&self) -> RawDb {
        let db = raw_db(&self.app.config).await;
        db.block_audit("blocked by test").await;
        db
    }
}

async fn unblock_audit(db: &RawDb) {
    db.unblock_audit().await;
}

async fn scalar(db: &RawDb, sql: &'static str) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>(sql)
        .fetch_one(db.pool())
        .await
        .unwrap()
        .unwrap_or(0)
}

/// Everything a change could have touched, read straight from the database.
async fn snapshot(db: &RawDb) -> Vec<i64> {
    let mut out = Vec::new();
    for sql in [
        "SELECT COUNT(*) FROM users",
        "SELECT COUNT(*) FROM users WHERE disabled",
        "SELECT COUNT(*) FROM sessions",
        "SELECT COUNT(*) FROM clients",
        "SELECT COUNT(*) FROM clients WHERE revoked_at IS NOT NULL",
        "SELECT COUNT(*) FROM accounts WHERE status = 'frozen'",
        "SELECT CAST(SUM(current_version) AS BIGINT) FROM accounts",
        "SELECT COUNT(*) FROM credential_versions",
        "SELECT COUNT(*) FROM checkouts",
        "SELECT COUNT(*) FROM checkouts WHERE status = 'active'",
        "SELECT COUNT(*) FROM checkouts WHERE status = 'approved'",
        "SELECT COUNT(*) FROM checkouts WHERE status = 'pending_approval'",
        "SELECT COUNT(*) FROM approvals",
        "SELECT CAST(SUM(totp_last_step) AS BIGINT) FROM users",
        "SELECT COUNT(*) FROM audit_log",
    ] {
        out.push(scalar(db, sql).await);
    }
    out
}

#[tokio::test]
async fn with_the_audit_log_unwritable_every_change_answers_503_and_changes_nothing() {
    let w = world(None).await;
    let app = &w.app;
    // State to act on: a rotated account (so there is a version to roll back to), a frozen one,
    // a pending major checkout, an approved one, and a live token.
    let code = app.code(&app.admin);
    let r = app.post(&w.admin_s, "/api/v1/accounts/wx/rotate", json!({"credential": {"app_id": APP_ID, "app_secret": "v2"}, "reason": "r", "totp": code})).await;
    assert_eq!(r.0, 200, "{}", r.1);
    let code = app.code(&app.admin);
    let r = app
        .post(
            &w.admin_s,
            "/api/v1/accounts/wy/freeze",
            json!({"reason": "r", "totp": code}),
        )
        .await;
    assert_eq!(r.0, 200, "{}", r.1);
    let (st, pending) = w.checkout("wx", "major").await;
    assert_eq!(st, 202, "{pending}");
    let pending = pending["checkout_id"].as_str().unwrap().to_owned();
    let (st, approved) = w.checkout("wx", "major").await;
    assert_eq!(st, 202, "{approved}");
    let approved = approved["checkout_id"].as_str().unwrap().to_owned();
    let code = app.code(&w.bob);
    let r = app
        .post(
            &w.bob_s,
            &format!("/api/v1/checkouts/{approved}/approve"),
            json!({"totp": code}),
        )
        .await;
    assert_eq!(r.0, 200, "{}", r.1);
    let (st, live) = w.checkout("wx", "general").await;
    assert_eq!(st, 201, "{live}");
    let token = live["token"].as_str().unwrap().to_owned();
    let live_id = live["checkout_id"].as_str().unwrap().to_owned();

    let db = w.block_audit().await;
    let before = snapshot(&db).await;
    let admin = app.admin.clone();
    let mut answers = Vec::new();
    let admin_post = |path: &str, body: Value| (path.to_owned(), body);
    let admin_calls = vec![
        admin_post(
            "/api/v1/accounts/wx/rotate",
            json!({"credential": {"app_id": APP_ID, "app_secret": "v3"}, "reason": "r"}),
        ),
        admin_post(
            "/api/v1/accounts/wx/rollback",
            json!({"version": 1, "reason": "r"}),
        ),
        admin_post("/api/v1/accounts/wx/freeze", json!({"reason": "r"})),
        admin_post("/api/v1/accounts/wy/unfreeze", json!({"reason": "r"})),
    ];
    for (path, mut body) in admin_calls {
        body["totp"] = json!(app.code(&admin));
        answers.push((path.clone(), app.post(&w.admin_s, &path, body).await));
    }
    answers.push((
        "create user".into(),
        app.post(&w.admin_s, "/api/v1/users", json!({"username": "dave", "display_name": "d", "roles": ["publisher"], "password": PASSWORD})).await,
    ));
    answers.push((
        "create client".into(),
        app.create_client(&w.admin_s, "other", &["wx"]).await,
    ));
    let code = app.code(&admin);
    answers.push((
        "login".into(),
        app.post(
            "",
            "/api/v1/auth/login",
            json!({"username": "admin", "password": admin.password, "totp": code}),
        )
        .await,
    ));
    answers.push(("checkout".into(), w.checkout("wx", "general").await));
    let code = app.code(&w.bob);
    answers.push((
        "approve".into(),
        app.post(
            &w.bob_s,
            &format!("/api/v1/checkouts/{pending}/approve"),
            json!({"totp": code}),
        )
        .await,
    ));
    let code = app.code(&w.alice);
    answers.push((
        "claim".into(),
        app.post(
            &w.key,
            &format!("/api/v1/checkouts/{approved}/claim"),
            json!({"operator": "alice", "totp": code}),
        )
        .await,
    ));
    answers.push((
        "checkin".into(),
        app.post(
            &token,
            &format!("/api/v1/checkouts/{live_id}/checkin"),
            json!({}),
        )
        .await,
    ));
    for (what, (st, v)) in &answers {
        assert_eq!(*st, 503, "{what}: {v}");
        assert_eq!(v["code"], "audit_unavailable", "{what}: {v}");
        let text = v.to_string();
        assert!(
            !text.contains("mvs_") && !text.contains("mvt_") && !text.contains("mvc_"),
            "{what} released a credential: {text}"
        );
    }
    // Nothing changed: not a row, not a status, not a TOTP step.
    assert_eq!(snapshot(&db).await, before);
    unblock_audit(&db).await;
    let acct = app.get(&w.admin_s, "/api/v1/accounts/wx").await.1;
    assert_eq!(acct["credential_version"], 2, "{acct}");
    assert_eq!(acct["status"], "active");
    assert_eq!(
        app.get(&w.admin_s, "/api/v1/accounts/wy").await.1["status"],
        "frozen"
    );
    assert_eq!(app.get(&w.admin_s, "/api/v1/users/dave").await.0, 404);
    let v = app
        .get(&w.bob_s, &format!("/api/v1/checkouts/{pending}"))
        .await
        .1;
    assert_eq!(v["status"], "pending_approval", "{v}");
    assert_eq!(v["approvals"].as_array().unwrap().len(), 0);
    let v = app
        .get(&w.bob_s, &format!("/api/v1/checkouts/{approved}"))
        .await
        .1;
    assert_eq!(v["status"], "approved", "{v}");
    // The live token still works; the check-in never happened.
    assert_eq!(app.get(&token, "/api/v1/token").await.0, 200);
    // And the log is whole.
    let v = app.get(&w.admin_s, "/api/v1/audit/verify").await.1;
    assert_eq!(v["ok"], true, "{v}");
}

#[tokio::test]
async fn with_the_audit_log_unwritable_the_platform_receives_nothing() {
    let w = world(None).await;
    let (st, v) = w.checkout("wx", "general").await;
    assert_eq!(st, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    let db = w.block_audit().await;
    let (st, v) = w
        .app
        .post(
            &token,
            "/api/v1/platform/wx/cgi-bin/draft/add",
            json!({"articles": [{"title": "t", "content": "c"}]}),
        )
        .await;
    assert_eq!((st, &v["code"]), (503, &json!("audit_unavailable")), "{v}");
    assert_eq!(
        w.drafts_received(),
        0,
        "the platform saw an unrecorded call"
    );
    unblock_audit(&db).await;
    let (st, v) = w
        .app
        .post(
            &token,
            "/api/v1/platform/wx/cgi-bin/draft/add",
            json!({"articles": [{"title": "t", "content": "c"}]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(w.drafts_received(), 1);
}

#[tokio::test]
async fn a_tool_that_hangs_up_mid_call_leaves_the_call_and_its_record_together() {
    let w = world(Some(Duration::from_millis(600))).await;
    let (st, v) = w.checkout("wx", "general").await;
    assert_eq!(st, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    // The tool gives up long before the platform answers, closing its connection.
    let r = w
        .app
        .client
        .post(w.app.url("/api/v1/platform/wx/cgi-bin/draft/add"))
        .bearer_auth(&token)
        .json(&json!({"articles": [{"title": "t", "content": "c"}]}))
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(r.is_err(), "the call should have been cut short");
    // The vault carries on without the tool: the platform gets the call, and the log gets both
    // the record made before sending and the outcome.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, sent) = w
            .app
            .get(&w.admin_s, "/api/v1/audit?action=platform.send")
            .await;
        let (_, done) = w
            .app
            .get(&w.admin_s, "/api/v1/audit?action=platform.call")
            .await;
        let sent = sent["entries"].as_array().unwrap().len();
        let done = done["entries"].as_array().unwrap().len();
        if w.drafts_received() == 1 && sent == 1 && done == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "platform calls {}, send records {sent}, outcome records {done}",
            w.drafts_received()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, done) = w
        .app
        .get(&w.admin_s, "/api/v1/audit?action=platform.call")
        .await;
    let e = &done["entries"][0];
    assert_eq!(e["outcome"], "success", "{e}");
    // The draft's media row is the request's change: its entry committed with it, before any
    // response existed (status null), and says what the platform answered and created.
    assert_eq!(e["http"]["status"], Value::Null, "{e}");
    assert_eq!(e["detail"]["platform_status"], 200, "{e}");
    assert_eq!(e["detail"]["media_kind"], "draft", "{e}");
    assert_eq!(e["detail"]["operator"], "alice");
}

#[tokio::test]
async fn revoking_the_client_or_disabling_the_operator_kills_live_tokens() {
    let w = world(None).await;
    let (st, v) = w.checkout("wx", "general").await;
    assert_eq!(st, 201, "{v}");
    let by_client = v["token"].as_str().unwrap().to_owned();
    let (st, v) = w.checkout("wx", "general").await;
    assert_eq!(st, 201, "{v}");
    let by_operator = v["token"].as_str().unwrap().to_owned();
    assert_eq!(w.app.get(&by_client, "/api/v1/token").await.0, 200);

    // Disabling the operator revokes every checkout they hold.
    let r = w
        .app
        .post(&w.admin_s, "/api/v1/users/alice/disable", json!({}))
        .await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(w.app.get(&by_operator, "/api/v1/token").await.0, 401);
    assert_eq!(w.app.get(&by_client, "/api/v1/token").await.0, 401);
    let (_, v) = w
        .app
        .get(&w.admin_s, "/api/v1/audit?action=user.disable")
        .await;
    assert_eq!(v["entries"][0]["detail"]["checkouts_revoked"], 2, "{v}");

    // Revoking a client does the same for the tool's tokens.
    let bob_tool = w.app.create_client(&w.admin_s, "cms2", &["wx"]).await;
    let client_id = bob_tool.1["client_id"].as_str().unwrap().to_owned();
    let r = w
        .app
        .client
        .delete(w.app.url(&format!("/api/v1/clients/{client_id}")))
        .bearer_auth(&w.admin_s)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (_, v) = w
        .app
        .get(&w.admin_s, "/api/v1/audit?action=client.revoke")
        .await;
    assert_eq!(v["entries"][0]["outcome"], "success", "{v}");
}

#[tokio::test]
async fn a_freeze_racing_checkouts_leaves_no_live_token() {
    let w = world(None).await;
    // Many checkouts in flight while the account freezes: whatever order they commit in, none
    // may hold a working token once the freeze has committed.
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let code = w.app.code(&w.alice);
        let client = w.app.client.clone();
        let url = w.app.url("/api/v1/checkouts");
        let key = w.key.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"account": "wx", "operator": "alice", "totp": code, "purpose": "p", "level": "general"}))
                .send()
                .await
                .unwrap();
            into_pair(r).await
        }));
    }
    let code = w.app.code(&w.app.admin);
    let freeze = w.app.post(
        &w.admin_s,
        "/api/v1/accounts/wx/freeze",
        json!({"reason": "incident", "totp": code}),
    );
    let (st, v) = freeze.await;
    assert_eq!(st, 200, "{v}");
    let mut tokens = Vec::new();
    for t in tasks {
        let (st, v) = t.await.unwrap();
        if st == 201 {
            tokens.push(v["token"].as_str().unwrap().to_owned());
        } else {
            assert!([401, 423].contains(&st), "{st} {v}");
        }
    }
    for t in &tokens {
        assert_eq!(w.app.get(t, "/api/v1/token").await.0, 401);
    }
    // Unfreezing does not bring any of them back.
    let code = w.app.code(&w.app.admin);
    let r = w
        .app
        .post(
            &w.admin_s,
            "/api/v1/accounts/wx/unfreeze",
            json!({"reason": "done", "totp": code}),
        )
        .await;
    assert_eq!(r.0, 200, "{}", r.1);
    for t in &tokens {
        assert_eq!(w.app.get(t, "/api/v1/token").await.0, 401);
    }
}

#[tokio::test]
async fn expiry_by_the_sweeper_and_a_policy_reload_are_audited_as_the_system() {
    let w = world(None).await;
    let (st, v) = w.checkout("wx", "general").await;
    assert_eq!(st, 201, "{v}");
    let id = v["checkout_id"].as_str().unwrap().to_owned();
    w.app.clock.advance(Duration::from_secs(24 * 3600));
    // The server's own sweep (every `checkout.expiry_sweep_seconds` of real time) finds the token
    // expired.
    let admin_s = w.app.login(&w.app.admin.clone()).await;
    let v = w
        .app
        .wait_for(&admin_s, "/api/v1/audit?action=checkout.expire", |v| {
            !v["entries"].as_array().unwrap().is_empty()
        })
        .await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 1, "{v}");
    let e = &v["entries"][0];
    assert_eq!(e["actor"]["kind"], "system", "{v}");
    assert_eq!(e["detail"]["expired"], json!([id]), "{v}");
    // A sweep finds each expiry once: when a later checkout's expiry is recorded, the sweeps that
    // ran between (every second here) have not recorded the first again.
    let (st, v) = w.checkout("wx", "general").await;
    assert_eq!(st, 201, "{v}");
    let second = v["checkout_id"].as_str().unwrap().to_owned();
    w.app.clock.advance(Duration::from_secs(24 * 3600));
    let admin_s = w.app.login(&w.app.admin.clone()).await;
    let v = w
        .app
        .wait_for(&admin_s, "/api/v1/audit?action=checkout.expire", |v| {
            v["entries"].as_array().unwrap().len() > 1
        })
        .await;
    let expired: Vec<&Value> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["detail"]["expired"])
        .collect();
    assert_eq!(expired, [&json!([id]), &json!([second])], "{v}");

    // A reload (what SIGHUP does), good then broken, is recorded with its result.
    let running = w.app.running.as_ref().unwrap();
    assert_eq!(running.reload().await.policies.unwrap(), 2);
    std::fs::write(w.app.config.policies_dir.join("bad.toml"), "nonsense = [").unwrap();
    assert!(running.reload().await.policies.is_err());
    let (_, v) = w
        .app
        .get(&admin_s, "/api/v1/audit?action=policy.reload")
        .await;
    let outcomes: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["success", "error"], "{v}");
}

/// The layering the design asks for (README, "Layout"): each crate depends only on the crates
/// below it, so a wrong arrow is a build error, and this names the edges that are allowed. (That
/// no handler reaches the store, the keyring or the broker follows: the vault's parts are private
/// to mediavault-core.)
#[test]
fn each_crate_depends_only_on_the_layers_below_it() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let allowed: &[(&str, &[&str])] = &[
        ("base", &[]),
        ("store", &["mediavault-base"]),
        ("store-sqlite", &["mediavault-base", "mediavault-store"]),
        ("store-postgres", &["mediavault-base", "mediavault-store"]),
        ("platforms", &["mediavault-base", "mediavault-store"]),
        ("fake-platforms", &[]),
        (
            "core",
            &[
                "mediavault-base",
                "mediavault-store",
                "mediavault-store-sqlite",
                "mediavault-store-postgres",
                "mediavault-platforms",
            ],
        ),
        ("http", &["mediavault-core"]),
        (
            "bench",
            &[
                "mediavault-core",
                "mediavault-http",
                "mediavault-fake-platforms",
            ],
        ),
    ];
    let mut crates: Vec<String> = std::fs::read_dir(root.join("crates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    crates.sort();
    let mut known: Vec<&str> = allowed.iter().map(|(c, _)| *c).collect();
    known.sort();
    assert_eq!(crates, known, "a new crate needs its place in the layers");
    let mut offenders = Vec::new();
    for (krate, below) in allowed {
        let text =
            std::fs::read_to_string(root.join("crates").join(krate).join("Cargo.toml")).unwrap();
        let manifest: toml::Table = toml::from_str(&text).unwrap();
        let deps = manifest
            .get("dependencies")
            .and_then(|d| d.as_table())
            .cloned()
            .unwrap_or_default();
        for name in deps.keys().filter(|n| n.starts_with("mediavault")) {
            if !below.contains(&name.as_str()) {
                offenders.push(format!("{krate} depends on {name}"));
            }
        }
    }
    // Above the store, only the composition root (mediavault-core's `vault`) names a backend; every
    // service sees the store traits alone. Test modules aside.
    fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    for krate in ["core", "http", "platforms", "bench"] {
        sources(&root.join("crates").join(krate).join("src"), &mut files);
    }
    let composition_root = root.join("crates/core/src/vault");
    for file in files.iter().filter(|f| !f.starts_with(&composition_root)) {
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (backend, name) in [
            ("mediavault_store_sqlite", "SQLite"),
            ("mediavault_store_postgres", "PostgreSQL"),
        ] {
            if code.contains(backend) {
                offenders.push(format!("{} names the {name} backend", file.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

/// No two modules of a crate import each other, at any depth of the module tree down to the
/// third level (README, "Layout"): a circle is how a crate's layers rot back into one. Reads the
/// sources (test modules aside) and resolves every `crate::` and `super::` path to the module it
/// names.
#[test]
fn no_module_imports_one_that_imports_it_back() {
    use std::collections::{BTreeMap, BTreeSet};
    type Module = Vec<String>;
    fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs")
                && p.file_name().is_some_and(|n| n != "tests.rs")
            {
                out.push(p);
            }
        }
    }
    fn module_of(src: &std::path::Path, file: &std::path::Path) -> Module {
        let rel = file.strip_prefix(src).unwrap().with_extension("");
        let mut parts: Module = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if matches!(
            parts.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            parts.pop();
        }
        parts
    }
    // The module a path names: `crate::a::b::Item` → the longest prefix that is a module.
    fn target(me: &Module, path: &str, modules: &BTreeSet<Module>) -> Option<Module> {
        let mut parts = path.split("::");
        let mut base: Module = match parts.next()? {
            "crate" => Vec::new(),
            "self" => me.clone(),
            "super" => me[..me.len().saturating_sub(1)].to_vec(),
            _ => return None,
        };
        let mut rest: Vec<&str> = parts.collect();
        while rest.first() == Some(&"super") {
            base.pop();
            rest.remove(0);
        }
        let full: Module = base
            .into_iter()
            .chain(rest.iter().map(|s| s.to_string()))
            .collect();
        (1..=full.len())
            .rev()
            .map(|k| full[..k].to_vec())
            .find(|m| modules.contains(m))
    }
    // The modules that reach themselves through their imports.
    fn circles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Module> {
        let mut found = Vec::new();
        for start in graph.keys() {
            let mut seen = BTreeSet::new();
            let mut todo: Vec<&Module> = graph[start].iter().collect();
            while let Some(m) = todo.pop() {
                if m == start {
                    found.push(start.clone());
                    break;
                }
                if seen.insert(m.clone()) {
                    todo.extend(graph.get(m).into_iter().flatten());
                }
            }
        }
        found
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut srcs = vec![root.join("src")];
    for e in std::fs::read_dir(root.join("crates")).unwrap() {
        srcs.push(e.unwrap().path().join("src"));
    }
    let path_re = |text: &str| -> Vec<String> {
        // Paths start at a word boundary with crate/super/self and run through `::ident`s.
        let mut out = Vec::new();
        let bytes = text.as_bytes();
        for start in ["crate::", "super::", "self::"] {
            let mut from = 0;
            while let Some(i) = text[from..].find(start) {
                let at = from + i;
                from = at + start.len();
                if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                    continue;
                }
                let end = text[at..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .map_or(text.len(), |e| at + e);
                out.push(text[at..end].trim_end_matches(':').to_owned());
            }
        }
        out
    };
    let mut offenders = Vec::new();
    for src in &srcs {
        let mut list = Vec::new();
        files(src, &mut list);
        let modules: BTreeSet<Module> = list.iter().map(|f| module_of(src, f)).collect();
        for depth in 1..=3 {
            let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
            for f in &list {
                let me = module_of(src, f);
                if me.is_empty() {
                    continue;
                }
                let text = std::fs::read_to_string(f).unwrap();
                let text = text.split("#[cfg(test)]").next().unwrap_or("");
                let mine: Module = me.iter().take(depth).cloned().collect();
                for path in path_re(text) {
                    let Some(t) = target(&me, &path, &modules) else {
                        continue;
                    };
                    let t: Module = t.into_iter().take(depth).collect();
                    let nested = t.starts_with(&mine) || mine.starts_with(&t);
                    if !nested {
                        graph.entry(mine.clone()).or_default().insert(t);
                    }
                }
            }
            for m in circles(&graph) {
                offenders.push(format!(
                    "{}: {} is on a circle",
                    src.display(),
                    m.join("::")
                ));
            }
        }
    }
    offenders.sort();
    offenders.dedup();
    assert!(offenders.is_empty(), "{offenders:#?}");
}

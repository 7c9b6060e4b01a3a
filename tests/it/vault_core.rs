//! Issue: vault core. Encrypted store, keys, accounts and rotation, through the real server.

use std::process::Command;

use crate::common::*;
use mediavault::actor::Actor;
use serde_json::{Value, json};

const MARKER: &str = "APPSECRET-MARKER-7f3a9c";

async fn wechat_account(app: &TestApp, session: &str, id: &str, secret: &str) -> (u16, Value) {
    app.post(
        session,
        "/api/v1/accounts",
        json!({"id": id, "platform": "wechat", "display_name": "官方公众号", "credential": {"app_id": "wx0123456789abcdef", "app_secret": secret}}),
    )
    .await
}

#[tokio::test]
async fn no_secret_reaches_disk_logs_or_answers() {
    let mut app = spawn_app().await;
    let s = app.login(&app.admin.clone()).await;
    let (st, created) = wechat_account(&app, &s, "wechat-main", MARKER).await;
    assert_eq!(st, 201, "{created}");
    let mut answers = vec![created.to_string()];
    answers.push(app.get(&s, "/api/v1/accounts").await.1.to_string());
    answers.push(
        app.get(&s, "/api/v1/accounts/wechat-main")
            .await
            .1
            .to_string(),
    );
    let code = app.code(&app.admin);
    let rotated = app
        .post(&s, "/api/v1/accounts/wechat-main/rotate", json!({"credential": {"app_id": "wx0123456789abcdef", "app_secret": format!("{MARKER}-v2")}, "reason": "季度轮换", "totp": code}))
        .await;
    assert_eq!(rotated.0, 200, "{}", rotated.1);
    answers.push(rotated.1.to_string());
    answers.push(
        app.get(&s, "/api/v1/accounts/wechat-main/versions")
            .await
            .1
            .to_string(),
    );
    // A wrong-type secret is echoed by nobody either.
    let bad = app
        .post(&s, "/api/v1/accounts", json!({"id": "x", "platform": "wechat", "display_name": "x", "credential": {"app_id": "wx1", "app_secret": {"nested": MARKER}}}))
        .await;
    assert_eq!(bad.0, 400);
    answers.push(bad.1.to_string());

    let seed_b32 = mediavault::identity::totp::seed_base32(&app.admin.seed);
    let admin_seed = app.admin.seed.expose().to_vec();
    let needles: Vec<&[u8]> = vec![MARKER.as_bytes(), seed_b32.expose().as_bytes(), &admin_seed];
    // Read the raw bytes while the server still runs (WAL not yet checkpointed), then after stop.
    let mut snapshots = stored_bytes(&app.config).await;
    assert!(
        snapshots.iter().any(|(p, _)| {
            let p = p.to_string_lossy();
            p.ends_with("-wal") || p.contains("pg_wal")
        }) || (on_postgres() && std::env::var_os("PG_THROWAWAY_DIR").is_none()),
        "expected a WAL file"
    );
    app.stop().await;
    snapshots.extend(stored_bytes(&app.config).await);
    for (path, bytes) in &snapshots {
        for n in &needles {
            assert!(!contains(bytes, n), "secret found in {}", path.display());
        }
    }
    let logs = captured_logs();
    assert!(
        logs.contains("/api/v1/accounts/wechat-main/rotate"),
        "request logging is captured"
    );
    for n in &needles {
        assert!(!contains(logs.as_bytes(), n), "secret found in logs");
        for a in &answers {
            assert!(!contains(a.as_bytes(), n), "secret found in an answer: {a}");
        }
    }
}

#[tokio::test]
async fn moved_or_altered_ciphertext_fails_to_open_clearly() {
    let app = spawn_app().await;
    let s = app.login(&app.admin.clone()).await;
    assert_eq!(wechat_account(&app, &s, "acct-a", "secret-a").await.0, 201);
    assert_eq!(wechat_account(&app, &s, "acct-b", "secret-b").await.0, 201);
    let db = raw_db(&app.config).await;
    // Copy a's sealed credential onto b.
    sqlx::query("UPDATE credential_versions SET sealed = (SELECT sealed FROM credential_versions WHERE account_id = 'acct-a') WHERE account_id = 'acct-b'")
        .execute(db.pool())
        .await
        .unwrap();
    // What the store holds: the vault's own read (system only; no front door opens one).
    let err = app
        .vault()
        .accounts()
        .open_version(&Actor::system(), "acct-b", None)
        .await
        .unwrap_err();
    let msg = format!("{:#}", anyhow::Error::from(err));
    assert!(
        msg.contains("does not open") && msg.contains("acct-b"),
        "{msg}"
    );
    // Flip one byte of a's ciphertext.
    let mut sealed: Vec<u8> =
        sqlx::query_scalar("SELECT sealed FROM credential_versions WHERE account_id = 'acct-a'")
            .fetch_one(db.pool())
            .await
            .unwrap();
    sealed[30] ^= 1;
    sqlx::query(db.sql("UPDATE credential_versions SET sealed = ? WHERE account_id = 'acct-a'"))
        .bind(&sealed)
        .execute(db.pool())
        .await
        .unwrap();
    // What the store holds: the vault's own read (system only; no front door opens one).
    let err = app
        .vault()
        .accounts()
        .open_version(&Actor::system(), "acct-a", None)
        .await
        .unwrap_err();
    let msg = format!("{:#}", anyhow::Error::from(err));
    assert!(
        msg.contains("does not open") || msg.contains("malformed"),
        "{msg}"
    );
    // Through the API the corrupted record is an internal error with a request id, not a panic.
    let code = app.code(&app.admin);
    let r = app
        .post(
            &s,
            "/api/v1/accounts/acct-b/rollback",
            json!({"version": 1, "reason": "test", "totp": code}),
        )
        .await;
    assert!(r.0 == 409 || r.0 == 500, "{:?}", r);
    // The server still serves.
    assert_eq!(app.get(&s, "/api/v1/accounts").await.0, 200);
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mediavault"))
}

fn write_config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let p = dir.join("mediavault.toml");
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    // On PostgreSQL, a database of its own, left to the throwaway server (this vault's files are
    // a temporary dir that outlives no test either).
    let database = match TestDb::new() {
        Some(db) => {
            let table = format!("\n[database]\nurl = \"{}\"\n", db.url);
            std::mem::forget(db);
            table
        }
        None => String::new(),
    };
    std::fs::write(
        &p,
        format!(
            "data_dir = \"{d}/data\"\nlisten = \"127.0.0.1:0\"\npolicies_dir = \"{d}/policies\"\n[tls]\nplain_http = true\n{extra}{database}",
            d = dir.display()
        ),
    )
    .unwrap();
    p
}

fn init_store(dir: &std::path::Path) -> std::path::PathBuf {
    let cfg = write_config(dir, "");
    let mut child = bin()
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "init",
            "--admin",
            "root",
            "--password-stdin",
            "--json",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["totp_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    cfg
}

#[test]
fn init_twice_changes_nothing_and_key_problems_stop_the_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = init_store(dir.path());
    let before = all_bytes_under(&dir.path().join("data"));
    let again = bin()
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "init",
            "--admin",
            "root",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(before, all_bytes_under(&dir.path().join("data")));

    let key = dir.path().join("data/root.key");
    let serve = |expect: &str| {
        let out = bin()
            .args(["--config", cfg.to_str().unwrap(), "serve"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "serve should fail: {err}");
        assert!(err.contains(expect), "expected {expect:?} in: {err}");
        assert_eq!(
            before,
            all_bytes_under(&dir.path().join("data")),
            "disk changed after: {err}"
        );
    };
    // Readable by others.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    serve("chmod 600");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Missing.
    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let before_missing = all_bytes_under(&dir.path().join("data"));
    let out = bin()
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
    assert_eq!(before_missing, all_bytes_under(&dir.path().join("data")));
    // Wrong key.
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key)
            .unwrap();
        f.write_all(format!("{}\n", "ab".repeat(32)).as_bytes())
            .unwrap();
    }
    let mut expected = before.clone();
    for (p, b) in expected.iter_mut() {
        if p == &key {
            *b = format!("{}\n", "ab".repeat(32)).into_bytes();
        }
    }
    let out = bin()
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("root key does not open"), "{err}");
    assert_eq!(expected, all_bytes_under(&dir.path().join("data")));
    std::fs::write(&key, saved).unwrap();
}

#[tokio::test]
async fn key_rotation_keeps_every_version_readable_and_retires_the_old_root() {
    let mut app = spawn_app().await;
    let s = app.login(&app.admin.clone()).await;
    assert_eq!(wechat_account(&app, &s, "wx", "secret-v1").await.0, 201);
    let code = app.code(&app.admin);
    let r = app
        .post(&s, "/api/v1/accounts/wx/rotate", json!({"credential": {"app_id": "wx0123456789abcdef", "app_secret": "secret-v2"}, "reason": "r", "totp": code}))
        .await;
    assert_eq!(r.0, 200, "{}", r.1);
    app.stop().await;

    let cfg = app.dir.path().join("cli.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\npolicies_dir = \"{}\"\n{}",
            app.config.data_dir.display(),
            app.config.policies_dir.display(),
            database_table(&app.config)
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = bin().arg("--config").arg(&cfg).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run(&["keys", "rotate"]).contains("term 2"));
    let old_root = std::fs::read(app.config.root_key_path()).unwrap();
    assert!(run(&["keys", "rotate-root"]).contains("rotated"));
    assert_ne!(old_root, std::fs::read(app.config.root_key_path()).unwrap());
    assert!(run(&["keys", "rotate", "--rewrap"]).contains("re-sealed"));

    app.restart().await;
    let s = app.login(&app.admin.clone()).await; // the TOTP seed was re-sealed and still opens
    // Each CLI change left its own entry, by the operating-system user, in a chain that verifies.
    for action in ["keys.rotate", "keys.rewrap", "keys.rotate_root"] {
        let (st, v) = app.get(&s, &format!("/api/v1/audit?action={action}")).await;
        assert_eq!(st, 200, "{v}");
        let e = &v["entries"][0];
        assert_eq!(e["actor"]["kind"], "system", "{action}: {v}");
        assert!(
            e["actor"]["id"].as_str().unwrap().starts_with("cli:"),
            "{action}: {v}"
        );
    }
    let (st, v) = app.get(&s, "/api/v1/audit/verify").await;
    assert_eq!((st, &v["ok"]), (200, &json!(true)), "{v}");
    let versions = app.get(&s, "/api/v1/accounts/wx/versions").await.1;
    assert_eq!(versions.as_array().unwrap().len(), 2);
    let vault = app.vault();
    for v in 1..=2 {
        // What the store holds: the vault's own read (system only; no front door opens one).
        let c = vault
            .accounts()
            .open_version(&Actor::system(), "wx", Some(v))
            .await
            .unwrap();
        assert_eq!(c.app_secret.unwrap().expose(), format!("secret-v{v}"));
    }
    // A secret stored now is sealed under the newest term.
    assert_eq!(vault.active_key_term(), 3);
    app.stop().await;
    // The old root key no longer opens the store.
    let old_key = app.dir.path().join("old-root.key");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&old_key)
            .unwrap();
        f.write_all(&old_root).unwrap();
    }
    let mut cfg2 = (*app.config).clone();
    cfg2.root_key_file = Some(old_key);
    let err = mediavault::Vault::open(std::sync::Arc::new(cfg2), app.clock.clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("root key does not open"), "{err}");
}

#[tokio::test]
async fn rotation_keeps_history_rollback_restores_and_needs_totp() {
    let app = spawn_app().await;
    let s = app.login(&app.admin.clone()).await;
    assert_eq!(wechat_account(&app, &s, "wx", "s1").await.0, 201);
    for secret in ["s2", "s3"] {
        let code = app.code(&app.admin);
        let r = app
            .post(&s, "/api/v1/accounts/wx/rotate", json!({"credential": {"app_id": "wx0123456789abcdef", "app_secret": secret}, "reason": format!("rotate to {secret}"), "totp": code}))
            .await;
        assert_eq!(r.0, 200, "{}", r.1);
    }
    // Without a valid code: 401, nothing stored.
    let r = app
        .post(&s, "/api/v1/accounts/wx/rotate", json!({"credential": {"app_id": "wx0123456789abcdef", "app_secret": "s4"}, "reason": "r", "totp": "000000"}))
        .await;
    assert_eq!(r.0, 401, "{}", r.1);
    assert_eq!(r.1["code"], "totp_invalid");
    // The same code twice: the second is a replay.
    let code = app.code(&app.admin);
    let body = json!({"credential": {"app_id": "wx0123456789abcdef", "app_secret": "s4"}, "reason": "r", "totp": code});
    assert_eq!(
        app.post(&s, "/api/v1/accounts/wx/rotate", body.clone())
            .await
            .0,
        200
    );
    let replay = app.post(&s, "/api/v1/accounts/wx/rotate", body).await;
    assert_eq!(replay.0, 401);
    assert!(
        replay.1["detail"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{}",
        replay.1
    );

    let versions = app.get(&s, "/api/v1/accounts/wx/versions").await.1;
    let list = versions.as_array().unwrap();
    assert_eq!(list.len(), 4, "{versions}");
    assert_eq!(list[3]["current"], true);
    assert_eq!(list[1]["reason"], "rotate to s2");
    assert_eq!(list[0]["created_by"], "admin");

    let code = app.code(&app.admin);
    let r = app
        .post(
            &s,
            "/api/v1/accounts/wx/rollback",
            json!({"version": 2, "reason": "v3 was wrong", "totp": code}),
        )
        .await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["credential_version"], 5);
    // What the store holds: the vault's own read (system only; no front door opens one).
    let cred = app
        .vault()
        .accounts()
        .open_version(&Actor::system(), "wx", None)
        .await
        .unwrap();
    assert_eq!(cred.app_secret.unwrap().expose(), "s2");
    let acct = app.get(&s, "/api/v1/accounts/wx").await.1;
    assert_eq!(acct["credential_version"], 5);
    // Rollback without a code stores nothing.
    let r = app
        .post(
            &s,
            "/api/v1/accounts/wx/rollback",
            json!({"version": 1, "reason": "x", "totp": "123"}),
        )
        .await;
    assert_eq!(r.0, 401);
    assert_eq!(
        app.get(&s, "/api/v1/accounts/wx/versions")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        5
    );
}

#[tokio::test]
async fn bad_input_gets_clear_problems_and_changes_nothing() {
    let app = spawn_app().await;
    let s = app.login(&app.admin.clone()).await;
    assert_eq!(wechat_account(&app, &s, "wx", "keep-me").await.0, 201);
    let before = app.get(&s, "/api/v1/accounts").await.1;
    let send_raw = |body: Vec<u8>, ctype: &'static str| {
        let req = app
            .client
            .post(app.url("/api/v1/accounts"))
            .bearer_auth(&s)
            .header("content-type", ctype)
            .body(body);
        async move { into_pair(req.send().await.unwrap()).await }
    };
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (b"{\"id\": \"x\",".to_vec(), "application/json", 400, "malformed JSON"),
        (json!({"id": "x2", "platform": "wechat", "display_name": "x", "credential": {"app_id": "a", "app_secret": "b"}, "extra": 1}).to_string().into_bytes(), "application/json", 400, "unknown field"),
        (json!({"id": "x3", "platform": "myspace", "display_name": "x", "credential": {"app_id": "a", "app_secret": "b"}}).to_string().into_bytes(), "application/json", 400, "unknown platform"),
        (json!({"id": "x4", "platform": "wechat", "display_name": "x", "credential": {"app_id": "a", "app_secret": ""}}).to_string().into_bytes(), "application/json", 400, "must not be empty"),
        (json!({"id": "../etc", "platform": "wechat", "display_name": "x", "credential": {"app_id": "a", "app_secret": "b"}}).to_string().into_bytes(), "application/json", 400, "id must be"),
        (json!({"id": "wx", "platform": "wechat", "display_name": "x", "credential": {"app_id": "a", "app_secret": "b"}}).to_string().into_bytes(), "application/json", 409, "already exists"),
        (b"id=x".to_vec(), "application/x-www-form-urlencoded", 415, "JSON"),
        (vec![b' '; 10 * 1024 * 1024], "application/json", 413, "larger"),
    ];
    for (body, ctype, status, needle) in cases {
        let (st, v) = send_raw(body, ctype).await;
        assert_eq!(st, status, "{needle}: {v}");
        assert!(
            v["detail"].as_str().unwrap_or_default().contains(needle),
            "{needle}: {v}"
        );
        assert!(
            v["request_id"].as_str().is_some_and(|r| !r.is_empty()),
            "{v}"
        );
        assert_eq!(v["status"], status);
    }
    // Rotation with an empty secret is refused before anything is stored.
    let code = app.code(&app.admin);
    let r = app.post(&s, "/api/v1/accounts/wx/rotate", json!({"credential": {"app_id": "wx1", "app_secret": " "}, "reason": "r", "totp": code})).await;
    assert_eq!(r.0, 400);
    assert_eq!(r.1["field"], "app_secret");
    // Unknown endpoints and ids are 404 problems; no session is 401.
    assert_eq!(app.get(&s, "/api/v1/accounts/nope").await.0, 404);
    assert_eq!(
        app.get(&s, "/api/v1/nothing-here").await.1["code"],
        "not_found"
    );
    assert_eq!(app.get("garbage", "/api/v1/accounts").await.0, 401);
    assert_eq!(app.get(&s, "/api/v1/accounts").await.1, before);
    // What the store holds: the vault's own read (system only; no front door opens one).
    let cred = app
        .vault()
        .accounts()
        .open_version(&Actor::system(), "wx", None)
        .await
        .unwrap();
    assert_eq!(cred.app_secret.unwrap().expose(), "keep-me");
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let (st, ready) = into_pair(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(st, 200, "{ready}");
    // The vault says which crypto suite it runs.
    let suite = test_suite().unwrap_or_default();
    assert_eq!(ready["crypto"]["suite"], suite.as_str(), "{ready}");
    assert_eq!(ready["crypto"]["primitives"], suite.describe(), "{ready}");
}

/// A vault before its first policy starts (with a warning that says what follows), and what is
/// created there that no policy covers is said so at once rather than failing later.
#[tokio::test]
async fn without_policies_the_vault_starts_and_says_what_cannot_be_checked_out() {
    let mut app = spawn_with(Options {
        tweak: Some(Box::new(|c| {
            c.policies_dir = c.policies_dir.with_file_name("no-such-policies");
        })),
        ..Default::default()
    })
    .await;
    app.restart().await;
    assert!(
        captured_logs().contains("no policy directory"),
        "the start warns about the missing policy directory"
    );
    let s = app.login(&app.admin.clone()).await;
    let (st, v) = wechat_account(&app, &s, "wx", "secret-1").await;
    assert_eq!(st, 201, "{v}");
    assert!(
        v["warning"].as_str().unwrap().contains("no access policy"),
        "{v}"
    );
    let (st, v) = app.create_client(&s, "cms", &["wx"]).await;
    assert_eq!(st, 201, "{v}");
    assert!(v["warning"].as_str().unwrap().contains("wx"), "{v}");
    // Listing shows no warning: it belongs to the answer of the creation.
    let (_, v) = app.get(&s, "/api/v1/accounts/wx").await;
    assert!(v.get("warning").is_none(), "{v}");
}

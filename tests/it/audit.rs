//! Issue: tamper-evident audit log. Every request leaves one chained entry before its response
//! leaves; tampering with the SQLite file is found by verify, naming the first bad entry.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use mediavault::crypto::Suite;
use serde_json::{Value, json};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mediavault"))
}

/// A config file for the CLI pointing at the test's data dir.
fn cli_config(app: &TestApp) -> PathBuf {
    let dir = app.dir.path();
    let p = dir.join("cli.toml");
    std::fs::write(
        &p,
        format!(
            "data_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\npolicies_dir = \"{}\"\n[tls]\nplain_http = true\n{}",
            app.config.data_dir.display(),
            app.config.policies_dir.display(),
            database_table(&app.config)
        ),
    )
    .unwrap();
    p
}

/// Runs `mediavault audit <args>`: (success, stdout, stderr).
fn audit_cli(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let out = bin()
        .arg("--config")
        .arg(cli_config(app))
        .arg("audit")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cli_verify(app: &TestApp, args: &[&str]) -> (bool, Value) {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    let (ok, out, err) = audit_cli(app, &all);
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("{out} / {err}"));
    assert_eq!(
        ok,
        v["ok"].as_bool().unwrap(),
        "exit status follows the report: {err}"
    );
    (ok, v)
}

async fn all_entries(app: &TestApp, s: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let (st, v) = app
            .get(s, &format!("/api/v1/audit?limit=1000&after_seq={after}"))
            .await;
        assert_eq!(st, 200, "{v}");
        out.extend(v["entries"].as_array().unwrap().iter().cloned());
        match v["next_after_seq"].as_i64() {
            Some(n) => after = n,
            None => return out,
        }
    }
}

async fn wechat_account(app: &TestApp, s: &str, id: &str) -> (u16, Value) {
    app.post(
        s,
        "/api/v1/accounts",
        json!({"id": id, "platform": "wechat", "display_name": "官方公众号", "credential": {"app_id": "wx0123456789abcdef", "app_secret": "s3cret-value-1"}}),
    )
    .await
}

/// An app with a session and a few entries (seq 1 is the harness creating the admin, seq 2 the
/// login).
async fn app_with_entries() -> (TestApp, String) {
    let app = spawn_app().await;
    let s = app.login(&app.admin.clone()).await;
    assert_eq!(wechat_account(&app, &s, "acct-1").await.0, 201);
    for _ in 0..6 {
        assert_eq!(app.get(&s, "/api/v1/accounts").await.0, 200);
    }
    (app, s)
}

async fn api_verify(app: &TestApp, s: &str) -> Value {
    let (st, v) = app.get(s, "/api/v1/audit/verify").await;
    assert_eq!(st, 200, "{v}");
    v
}

fn assert_broken_at(v: &Value, seq: i64) {
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["first_bad_seq"], seq, "{v}");
}

#[tokio::test]
async fn clean_chain_verifies_through_api_and_cli() {
    let (app, s) = app_with_entries().await;
    let v = api_verify(&app, &s).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["entries_checked"], 9);
    assert_eq!(v["head_seq"], 9);
    assert_eq!(v["first_bad_seq"], Value::Null);
    let (ok, v) = cli_verify(&app, &[]);
    assert!(ok, "{v}");
    assert_eq!(v["head_seq"], 10, "the verify request itself was audited");
}

#[tokio::test]
async fn changed_field_is_named() {
    let (app, s) = app_with_entries().await;
    let db = raw_db(&app.config).await;
    sqlx::query("UPDATE audit_log SET actor_id = 'mallory' WHERE seq = 3")
        .execute(db.pool())
        .await
        .unwrap();
    assert_broken_at(&cli_verify(&app, &[]).1, 3);
    assert_broken_at(&api_verify(&app, &s).await, 3);
    // A changed timestamp or detail is caught too.
    sqlx::query("UPDATE audit_log SET actor_id = 'admin' WHERE seq = 3")
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(api_verify(&app, &s).await["ok"], true);
    sqlx::query("UPDATE audit_log SET ts = ts + 1 WHERE seq = 5")
        .execute(db.pool())
        .await
        .unwrap();
    assert_broken_at(&api_verify(&app, &s).await, 5);
}

#[tokio::test]
async fn deleted_entry_is_named() {
    let (app, s) = app_with_entries().await;
    let db = raw_db(&app.config).await;
    sqlx::query("DELETE FROM audit_log WHERE seq = 4")
        .execute(db.pool())
        .await
        .unwrap();
    assert_broken_at(&cli_verify(&app, &[]).1, 4);
    assert_broken_at(&api_verify(&app, &s).await, 4);
    // Renumbering the rest to close the gap does not help.
    sqlx::query("UPDATE audit_log SET seq = seq + 1000 WHERE seq > 4")
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET seq = seq - 1001 WHERE seq > 1000")
        .execute(db.pool())
        .await
        .unwrap();
    assert_broken_at(&cli_verify(&app, &[]).1, 4);
}

/// The console's audit page, as an auditor's browser gets it (the session cookie).
async fn console_audit(app: &TestApp, s: &str, query: &str) -> String {
    let r = app
        .client
        .get(app.url(&format!("/console/audit{query}")))
        .header("cookie", format!("__Host-mv_session={s}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

async fn max_seq(db: &RawDb) -> i64 {
    sqlx::query_scalar("SELECT MAX(seq) FROM audit_log")
        .fetch_one(db.pool())
        .await
        .unwrap()
}

/// The console's page walks the whole chain on its first view and then, on each view, the entries
/// after the head it verified (six months of entries would otherwise be walked per page view):
/// a change after that head is named at once, one before it when the whole chain is walked again
/// (a link on the page), which every API verification does.
#[tokio::test]
async fn the_console_names_a_change_after_its_verified_head_at_once_and_before_it_on_a_whole_walk()
{
    let (app, s) = app_with_entries().await;
    let db = raw_db(&app.config).await;
    let page = console_audit(&app, &s, "").await;
    assert!(page.contains("id=\"chain-ok\""), "{page}");
    assert!(page.contains("id=\"verify-all\""), "{page}");
    // New entries after the verified head verify on the next view, counted with the rest.
    for _ in 0..3 {
        assert_eq!(app.get(&s, "/api/v1/accounts").await.0, 200);
    }
    let count = |page: &str| -> i64 {
        let from = page.find("id=\"chain-ok\"").unwrap();
        let digits: String = page[from..]
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    };
    // Every entry so far is in the last 24 hours and the last 30 days: the charts' bars add up
    // to the head the page verified, on the first view (counted from scratch) and on the next
    // (only the new entries counted).
    let charted = |page: &str, id: &str| -> i64 {
        let from = page.find(&format!("id=\"{id}\"")).unwrap();
        let svg = &page[from..from + page[from..].find("</svg>").unwrap()];
        svg.split("<title>")
            .skip(1)
            .map(|t| {
                let t = &t[..t.find("</title>").unwrap()];
                t.rsplit(": ").next().unwrap().parse::<i64>().unwrap()
            })
            .sum()
    };
    let before = count(&page);
    assert_eq!(charted(&page, "chart-24h"), before, "{page}");
    assert_eq!(charted(&page, "chart-30d"), before, "{page}");
    let page = console_audit(&app, &s, "").await;
    assert!(page.contains("id=\"chain-ok\""), "{page}");
    assert_eq!(count(&page), before + 4, "{page}");
    assert_eq!(charted(&page, "chart-24h"), before + 4, "{page}");
    assert_eq!(charted(&page, "chart-30d"), before + 4, "{page}");
    // More entries; the newest is changed.
    for _ in 0..3 {
        assert_eq!(app.get(&s, "/api/v1/accounts").await.0, 200);
    }
    let last = max_seq(&db).await;
    // Only a number is formatted into these statements.
    let tamper = |sql: String| {
        let pool = db.pool().clone();
        async move {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    tamper(format!(
        "UPDATE audit_log SET actor_id = actor_id || 'x' WHERE seq = {last}"
    ))
    .await;
    let page = console_audit(&app, &s, "").await;
    assert!(page.contains("id=\"chain-broken\""), "{page}");
    assert!(page.contains(&format!("#{last}。")), "{page}");
    // Put back, the next view walks the whole chain again and it verifies.
    tamper(format!(
        "UPDATE audit_log SET actor_id = substr(actor_id, 1, length(actor_id) - 1) WHERE seq = {last}"
    ))
    .await;
    let page = console_audit(&app, &s, "").await;
    assert!(page.contains("id=\"chain-ok\""), "{page}");
    // An old entry changed: the whole walk the page links to names it.
    sqlx::query("UPDATE audit_log SET actor_id = 'mallory' WHERE seq = 3")
        .execute(db.pool())
        .await
        .unwrap();
    let page = console_audit(&app, &s, "?verify=all").await;
    assert!(page.contains("id=\"chain-broken\""), "{page}");
    assert!(page.contains("#3。"), "{page}");
    // Each view's entry says what was walked and what it found.
    let (_, v) = app
        .get(&s, "/api/v1/audit?action=audit.query&order=desc&limit=1")
        .await;
    let view = &v["entries"][0];
    assert_eq!(view["http"]["path"], "/console/audit", "{v}");
    assert_eq!(view["detail"]["whole"], true, "{v}");
    assert_eq!(view["detail"]["ok"], false, "{v}");
}

#[tokio::test]
async fn inserted_forged_entry_is_named() {
    let (app, s) = app_with_entries().await;
    let db = raw_db(&app.config).await;
    // Make room at seq 3 and insert a plausible entry that links to entry 2.
    sqlx::query("UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 3")
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1003")
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO audit_log (seq, ts, actor_kind, actor_id, action, target, outcome, source_ip, request_id, http_method, http_path, http_status, detail, prev_hash, hash) \
         SELECT 3, ts, actor_kind, 'admin', 'account.list', '/api/v1/accounts', 'success', source_ip, 'forged', 'GET', '/api/v1/accounts', 200, '{{}}', hash, {} FROM audit_log WHERE seq = 2",
        db.random_blob()
    )))
    .execute(db.pool())
    .await
    .unwrap();
    assert_broken_at(&cli_verify(&app, &[]).1, 3);
    assert_broken_at(&api_verify(&app, &s).await, 3);
}

#[tokio::test]
async fn swapped_entries_are_named() {
    let (app, s) = app_with_entries().await;
    let db = raw_db(&app.config).await;
    for sql in [
        "UPDATE audit_log SET seq = -1 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = 6",
        "UPDATE audit_log SET seq = 6 WHERE seq = -1",
    ] {
        sqlx::query(sql).execute(db.pool()).await.unwrap();
    }
    assert_broken_at(&cli_verify(&app, &[]).1, 3);
    assert_broken_at(&api_verify(&app, &s).await, 3);
}

#[tokio::test]
async fn truncated_tail_is_caught_by_a_checkpoint() {
    let (mut app, _s) = app_with_entries().await;
    app.stop().await;
    let (ok, line, err) = audit_cli(&app, &["checkpoint"]);
    assert!(ok, "{err}");
    let line = line.trim().to_owned();
    let suite = test_suite().unwrap_or_default();
    assert!(line.starts_with(&format!("mvcp2:{suite}:9:")), "{line}");
    if suite == Suite::Sm {
        // Signed with SM2: anyone holding the printed public key checks it with OpenSSL.
        let public = err
            .split("public key that verifies it: ")
            .nth(1)
            .map(str::trim)
            .unwrap_or_else(|| panic!("no SM2 public key on stderr: {err}"));
        assert!(sm2_verifies_with_openssl(&line, public), "{line}");
        let forged = line.replacen(":sm:9:", ":sm:8:", 1);
        assert!(!sm2_verifies_with_openssl(&forged, public), "{forged}");
    } else {
        assert!(err.trim().is_empty(), "{err}");
    }
    assert_eq!(cli_verify(&app, &["--checkpoint", &line]).1["ok"], true);
    let db = raw_db(&app.config).await;
    sqlx::query("DELETE FROM audit_log WHERE seq > 5")
        .execute(db.pool())
        .await
        .unwrap();
    // The chain alone still looks whole...
    assert_eq!(cli_verify(&app, &[]).1["ok"], true);
    // ...the checkpoint shows what is gone.
    let (_, v) = cli_verify(&app, &["--checkpoint", &line]);
    assert_broken_at(&v, 6);
    // A checkpoint line that was edited is refused outright.
    let forged = line.replacen(":9:", ":5:", 1);
    let (ok, _, err) = audit_cli(&app, &["verify", "--checkpoint", &forged]);
    assert!(!ok && err.contains("signature"), "{err}");
}

fn summary(e: &Value) -> (String, String, String, String, String, i64) {
    (
        e["action"].as_str().unwrap().to_owned(),
        e["actor"]["kind"].as_str().unwrap().to_owned(),
        e["actor"]["id"].as_str().unwrap().to_owned(),
        e["target"].as_str().unwrap().to_owned(),
        e["outcome"].as_str().unwrap().to_owned(),
        // Null for a change committed with its entry, before the response existed.
        e["http"]["status"].as_i64().unwrap_or(0),
    )
}

#[tokio::test]
async fn happy_path_and_denials_leave_exactly_the_expected_entries() {
    let app = spawn_app().await;
    let admin = app.admin.clone();
    let s = app.login(&admin).await;
    assert_eq!(wechat_account(&app, &s, "acct-1").await.0, 201);
    let code = app.code(&admin);
    let r = app
        .post(&s, "/api/v1/accounts/acct-1/rotate", json!({"credential": {"app_id": "wx0123456789abcdef", "app_secret": "s3cret-value-2"}, "reason": "季度轮换", "totp": code}))
        .await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(app.get(&s, "/api/v1/accounts").await.0, 200);
    assert_eq!(app.get(&s, "/api/v1/accounts/acct-1/versions").await.0, 200);
    assert_eq!(
        app.get("mvs_not-a-session", "/api/v1/accounts").await.0,
        401
    );
    let publisher = app.create_user(&s, "pub1", &["publisher"]).await;
    let ps = app.login(&publisher).await;
    assert_eq!(wechat_account(&app, &ps, "acct-2").await.0, 403);
    assert_eq!(app.get(&s, "/api/v1/accounts/acct-missing").await.0, 404);
    // The audit endpoints are for auditors and admins only.
    assert_eq!(app.get(&ps, "/api/v1/audit").await.0, 403);

    let entries = all_entries(&app, &s).await;
    let got: Vec<_> = entries.iter().map(summary).collect();
    let e = |a: &str, k: &str, id: &str, t: &str, o: &str, st: i64| {
        (a.into(), k.into(), id.into(), t.into(), o.into(), st)
    };
    let expected = vec![
        e(
            "user.create",
            "system",
            "cli:operator",
            "admin",
            "success",
            0,
        ),
        e("auth.login", "user", "admin", "admin", "success", 0),
        e("account.create", "user", "admin", "acct-1", "success", 0),
        e("account.rotate", "user", "admin", "acct-1", "success", 0),
        e(
            "account.list",
            "user",
            "admin",
            "/api/v1/accounts",
            "success",
            200,
        ),
        e(
            "account.versions",
            "user",
            "admin",
            "acct-1",
            "success",
            200,
        ),
        e(
            "http.request",
            "anonymous",
            "",
            "/api/v1/accounts",
            "denied",
            401,
        ),
        e("user.create", "user", "admin", "pub1", "success", 0),
        e("auth.login", "user", "pub1", "pub1", "success", 0),
        e("account.create", "user", "pub1", "acct-2", "denied", 403),
        e("account.get", "user", "admin", "acct-missing", "error", 404),
        e("audit.query", "user", "pub1", "audit_log", "denied", 403),
    ];
    assert_eq!(got, expected);
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=12).collect::<Vec<_>>());
    assert_eq!(entries[3]["detail"]["credential_version"], 2);
    assert_eq!(entries[3]["http"]["method"], "POST");
    assert_eq!(entries[3]["http"]["path"], "/api/v1/accounts/acct-1/rotate");
    assert_eq!(entries[6]["detail"]["code"], "unauthenticated");
    assert_eq!(entries[9]["detail"]["code"], "not_permitted");
    assert_eq!(entries[10]["detail"]["code"], "not_found");
    // The first admin came from `mediavault init` on the server, run by the OS user `operator`;
    // every other entry came with a request.
    assert_eq!(entries[0]["source_ip"], "");
    for e in &entries[1..] {
        assert_eq!(e["source_ip"], "127.0.0.1");
        assert_eq!(e["request_id"].as_str().unwrap().len(), 32);
        let ts = e["ts"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
    }
    // No secret, password or TOTP code went into the log.
    let text = serde_json::to_string(&entries).unwrap();
    for needle in ["s3cret-value", PASSWORD, &code, "mvs_"] {
        assert!(!text.contains(needle), "{needle} in the audit log");
    }
    // Filters.
    let (st, v) = app.get(&s, "/api/v1/audit?actor=pub1&outcome=denied").await;
    assert_eq!(st, 200);
    let got: Vec<_> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(summary)
        .collect();
    assert_eq!(got, vec![expected[9].clone(), expected[11].clone()]);
    let (_, v) = app.get(&s, "/api/v1/audit?account=acct-1&limit=2").await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 2);
    assert_eq!(v["next_after_seq"], 4);
    let (_, v) = app
        .get(&s, "/api/v1/audit?account=acct-1&after_seq=4")
        .await;
    assert_eq!(v["entries"][0]["seq"], 6);
    assert_eq!(v["next_after_seq"], Value::Null);
    let (_, v) = app
        .get(
            &s,
            "/api/v1/audit?action=auth.login&since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z",
        )
        .await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 2);
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "after_seq=-1",
        "since=yesterday",
        "outcome=maybe",
        "colour=blue",
    ] {
        let (st, v) = app.get(&s, &format!("/api/v1/audit?{bad}")).await;
        assert_eq!(st, 400, "{bad}: {v}");
        assert_eq!(v["code"], "invalid_request");
    }
    // Health probes are not audited; everything else, including unknown paths, is.
    let before = all_entries(&app, &s).await.len();
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (st, _) = app.get(&s, "/api/v1/no-such-thing").await;
    assert_eq!(st, 404);
    let after = all_entries(&app, &s).await;
    assert_eq!(after.len(), before + 2, "the listing and the 404, no probe");
    assert_eq!(after[before]["action"], "audit.query");
    assert_eq!(after[before + 1]["http"]["path"], "/api/v1/no-such-thing");
    assert_eq!(after[before + 1]["outcome"], "error");
    assert_eq!(api_verify(&app, &s).await["ok"], true);
}

#[tokio::test]
async fn unwritable_audit_log_fails_closed_and_recovers() {
    let app = spawn_app().await;
    let admin = app.admin.clone();
    let s = app.login(&admin).await;
    assert_eq!(wechat_account(&app, &s, "acct-1").await.0, 201);
    let db = raw_db(&app.config).await;
    db.block_audit("blocked").await;
    let code = app.code(&admin);
    let r = app
        .post(&s, "/api/v1/accounts/acct-1/rotate", json!({"credential": {"app_id": "wx0123456789abcdef", "app_secret": "s3cret-value-2"}, "reason": "test", "totp": code}))
        .await;
    assert_eq!(r.0, 503, "{}", r.1);
    assert_eq!(r.1["code"], "audit_unavailable");
    assert!(r.1.get("credential_version").is_none());
    // A login would release a session token: it is withheld too.
    let code = app.code(&admin);
    let r = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": admin.username, "password": admin.password, "totp": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("x-request-id").is_some());
    let text = r.text().await.unwrap();
    assert!(!text.contains("mvs_"), "{text}");
    assert_eq!(app.get(&s, "/api/v1/accounts").await.0, 503);

    db.unblock_audit().await;
    assert_eq!(app.get(&s, "/api/v1/accounts").await.0, 200);
    let code = app.code(&admin);
    let r = app
        .post(&s, "/api/v1/accounts/acct-1/rotate", json!({"credential": {"app_id": "wx0123456789abcdef", "app_secret": "s3cret-value-3"}, "reason": "test", "totp": code}))
        .await;
    assert_eq!(r.0, 200, "{}", r.1);
    let v = api_verify(&app, &s).await;
    assert_eq!(v["ok"], true, "{v}");
    // Only the requests that were answered are in the log, contiguously.
    let entries = all_entries(&app, &s).await;
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "user.create",
            "auth.login",
            "account.create",
            "account.list",
            "account.rotate",
            "audit.verify"
        ]
    );
}

#[tokio::test]
async fn concurrent_clients_lose_and_duplicate_nothing() {
    let app = std::sync::Arc::new(spawn_app().await);
    let s = app.login(&app.admin.clone()).await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let app = std::sync::Arc::clone(&app);
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for j in 0..3 {
                let path = if (i + j) % 3 == 0 {
                    "/api/v1/accounts/missing".to_owned()
                } else {
                    "/api/v1/accounts".to_owned()
                };
                let r = app
                    .client
                    .get(app.url(&path))
                    .bearer_auth(&s)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status() == 200 || r.status() == 404, "{}", r.status());
                ids.push(r.headers()["x-request-id"].to_str().unwrap().to_owned());
            }
            ids
        }));
    }
    let mut sent = Vec::new();
    for t in tasks {
        sent.extend(t.await.unwrap());
    }
    assert_eq!(sent.len(), 192);
    let entries = all_entries(&app, &s).await;
    assert_eq!(entries.len(), 2 + 192, "admin, login, and every request");
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=194).collect::<Vec<_>>());
    let logged: Vec<&str> = entries[2..]
        .iter()
        .map(|e| e["request_id"].as_str().unwrap())
        .collect();
    let unique: HashSet<&str> = logged.iter().copied().collect();
    assert_eq!(unique.len(), 192, "each request once");
    assert_eq!(
        unique,
        sent.iter().map(String::as_str).collect::<HashSet<_>>()
    );
    let v = api_verify(&app, &s).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["entries_checked"], 2 + 192 + 1);
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[tokio::test]
async fn exports_reverify_offline_and_a_changed_line_is_named() {
    let (app, s) = app_with_entries().await;
    let r = app
        .client
        .get(app.url("/api/v1/audit/export?format=jsonl"))
        .bearer_auth(&s)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.unwrap();
    assert_eq!(text.lines().count(), 9);
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["seq"], 1);
    assert_eq!(first["prev_hash"], "0".repeat(64));
    assert_eq!(first["hash"].as_str().unwrap().len(), 64);

    let good = write(app.dir.path(), "export.jsonl", &text);
    let (ok, v) = cli_verify(&app, &["--file", &good]);
    assert!(ok, "{v}");
    assert_eq!(v["entries_checked"], 9);

    let tampered: Vec<String> = text
        .lines()
        .map(|l| {
            if l.contains("\"seq\":4,") {
                l.replace("\"outcome\":\"success\"", "\"outcome\":\"denied\"")
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert_ne!(tampered.join("\n") + "\n", text);
    let bad = write(
        app.dir.path(),
        "tampered.jsonl",
        &(tampered.join("\n") + "\n"),
    );
    let (ok, v) = cli_verify(&app, &["--file", &bad]);
    assert!(!ok);
    assert_broken_at(&v, 4);

    // The CLI's own export and the CSV form carry the same chain.
    let (ok, cli_text, err) = audit_cli(&app, &["export", "--format", "jsonl"]);
    assert!(ok, "{err}");
    assert_eq!(cli_text.lines().next(), text.lines().next());
    let (st, csv) = {
        let r = app
            .client
            .get(app.url("/api/v1/audit/export?format=csv"))
            .bearer_auth(&s)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(st, 200);
    assert!(csv.starts_with("seq,ts,ts_ms,"));
    assert!(csv.contains(first["hash"].as_str().unwrap()));
    assert_eq!(app.get(&s, "/api/v1/audit/export?format=xml").await.0, 400);
}

#[tokio::test]
async fn prune_keeps_the_retention_floor_exports_first_and_verify_still_passes() {
    let app = spawn_app().await;
    // Entries from 400 days ago, chained under the vault's real key, before any request.
    seed_old_entries(&app, 5).await;
    let db = raw_db(&app.config).await;
    let s = app.login(&app.admin.clone()).await;
    assert_eq!(app.get(&s, "/api/v1/accounts").await.0, 200);
    assert_eq!(api_verify(&app, &s).await["ok"], true);

    let export = app.dir.path().join("pruned.jsonl");
    let export_s = export.to_string_lossy().into_owned();
    // Inside the retention period: refused, nothing written.
    let recent = mediavault::audit::rfc3339_ms((app.clock.unix() - 10 * 86_400) * 1000);
    let (ok, _, err) = audit_cli(
        &app,
        &["prune", "--before", &recent, "--export-file", &export_s],
    );
    assert!(!ok && err.contains("retention"), "{err}");
    assert!(!export.exists());

    let cutoff = mediavault::audit::rfc3339_ms((app.clock.unix() - 300 * 86_400) * 1000);
    let (ok, out, err) = audit_cli(
        &app,
        &["prune", "--before", &cutoff, "--export-file", &export_s],
    );
    assert!(ok, "{out} {err}");
    let exported = std::fs::read_to_string(&export).unwrap();
    assert_eq!(exported.lines().count(), 5);
    let (ok, v) = cli_verify(&app, &["--file", &export_s]);
    assert!(ok, "{v}");

    let (ok, v) = cli_verify(&app, &[]);
    assert!(ok, "{v}");
    let v = api_verify(&app, &s).await;
    assert_eq!(v["ok"], true, "{v}");
    let entries = all_entries(&app, &s).await;
    assert_eq!(entries[0]["seq"], 6, "the old entries are gone");
    let prune = entries
        .iter()
        .find(|e| e["action"] == "audit.prune")
        .expect("the prune is itself audited");
    assert_eq!(prune["actor"]["kind"], "system");
    assert_eq!(prune["detail"]["pruned_to_seq"], 5);
    assert_eq!(prune["http"], Value::Null);

    // Deleting the entry after the anchor is still found.
    sqlx::query("DELETE FROM audit_log WHERE seq = 6")
        .execute(db.pool())
        .await
        .unwrap();
    assert_broken_at(&cli_verify(&app, &[]).1, 6);
}

/// The figure the issue asks of `audit verify` (at least 1 M entries/s on either backend), on the
/// backend the suite runs on: seeds `MV_AUDIT_ENTRIES` (default 1 000 000) chained entries through
/// the vault, then times `mediavault audit verify` as a command, process start included. Not a
/// check (the machine is shared); run it by name and read what it prints:
/// `cargo test --release --test it -- --ignored audit_verify_speed --nocapture`.
#[cfg(feature = "demo")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn audit_verify_speed() {
    use mediavault::audit::{NewEntry, Outcome};
    let mut app = spawn_app().await;
    let n: usize = std::env::var("MV_AUDIT_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let entry = NewEntry::system("bench.seed", "wechat-main", Outcome::Success)
        .detail("note", "synthetic entry for the benchmark");
    let mut left = n;
    let now_ms = app.clock.unix() * 1000;
    while left > 0 {
        let k = left.min(20_000);
        app.vault()
            .seed_audit(now_ms, vec![entry.clone(); k])
            .await
            .unwrap();
        left -= k;
    }
    app.stop().await;
    let started = std::time::Instant::now();
    let (ok, v) = cli_verify(&app, &[]);
    let took = started.elapsed().as_secs_f64();
    assert!(ok, "{v}");
    let checked = v["entries_checked"].as_u64().unwrap();
    println!(
        "audit verify on {}: {checked} entries in {took:.2} s = {:.2} M entries/s",
        if on_postgres() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        checked as f64 / took / 1e6
    );
}

//! Issue 13: operating a running vault. Keys rotated by the CLI binary while the server is under
//! load, and backups with a verified restore.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};

pub const WX_SECRET: &str = "live-ops-secret-v1";

fn policy() -> String {
    "account = \"wx\"\nexclusive = false\nallow_reveal = true\ndefault_ttl_minutes = 60\nallowed_calls = [\"GET cgi-bin/getcallbackip\"]\n[who]\nroles = [\"publisher\"]\nclients = [\"cms\"]\n[levels.general]\napprovals = 0\n[levels.major]\napprovals = 1\n".to_owned()
}

/// A vault with an account, a publishing tool, an operator (alice), a second person who only logs
/// in (carol) and a major checkout whose post is sealed in the store.
pub struct Loaded {
    pub app: TestApp,
    pub admin_s: String,
    pub alice: TestUser,
    pub carol: TestUser,
    pub key: String,
    pub major: String,
    /// Serialises "compute a TOTP code, send it": each code moves the shared test clock one
    /// step, and a code two steps old is refused.
    pub totp: tokio::sync::Mutex<()>,
}

pub async fn loaded() -> Loaded {
    let app = spawn_with(Options {
        policies: Some(vec![("wx.toml", policy())]),
        tweak: Some(Box::new(|c| {
            c.rate_limits.login_per_minute = 100_000;
            c.rate_limits.login_burst = 10_000;
            c.rate_limits.checkout_per_minute = 100_000;
            c.rate_limits.checkout_burst = 10_000;
            c.rate_limits.general_per_second = 100_000;
            c.rate_limits.general_burst = 100_000;
            c.rate_limits.token_per_second = 100_000;
            c.rate_limits.token_burst = 100_000;
            c.session.idle_timeout_minutes = 24 * 60;
        })),
        ..Default::default()
    })
    .await;
    let admin_s = app.login(&app.admin.clone()).await;
    let alice = app.create_user(&admin_s, "alice", &["publisher"]).await;
    let carol = app.create_user(&admin_s, "carol", &["approver"]).await;
    let r = app
        .post(&admin_s, "/api/v1/accounts", json!({"id": "wx", "platform": "wechat", "display_name": "公众号", "credential": {"app_id": "wx0123456789abcdef", "app_secret": WX_SECRET}}))
        .await;
    assert_eq!(r.0, 201, "{}", r.1);
    let r = app.create_client(&admin_s, "cms", &["wx"]).await;
    assert_eq!(r.0, 201, "{}", r.1);
    let key = r.1["client_key"].as_str().unwrap().to_owned();
    let code = app.code(&alice);
    let (st, v) = app
        .post(&key, "/api/v1/checkouts", json!({"account": "wx", "operator": "alice", "totp": code, "purpose": "重大信息发布", "level": "major", "content": {"title": "年度报告", "body": "<p>正文 LIVE-OPS-POST</p>"}}))
        .await;
    assert_eq!(st, 202, "{v}");
    let major = v["checkout_id"].as_str().unwrap().to_owned();
    Loaded {
        app,
        admin_s,
        alice,
        carol,
        key,
        major,
        totp: tokio::sync::Mutex::new(()),
    }
}

impl Loaded {
    /// carol logs in.
    pub async fn login(&self) -> Result<(), String> {
        let _one = self.totp.lock().await;
        let code = self.app.code(&self.carol);
        let r = self
            .app
            .client
            .post(self.app.url("/api/v1/auth/login"))
            .json(&json!({"username": "carol", "password": PASSWORD, "totp": code}))
            .send()
            .await
            .map_err(|e| format!("login: {e}"))?;
        let (st, v) = into_pair(r).await;
        expect("login", st, 200, &v)
    }

    /// alice checks wx out (general), the tool uses the token (introspection, the credential
    /// hand-out), and checks in.
    pub async fn checkout_cycle(&self) -> Result<(), String> {
        let (st, v) = {
            let _one = self.totp.lock().await;
            let code = self.app.code(&self.alice);
            self.app
                .post(&self.key, "/api/v1/checkouts", json!({"account": "wx", "operator": "alice", "totp": code, "purpose": "日常发布", "level": "general"}))
                .await
        };
        expect("checkout", st, 201, &v)?;
        let token = v["token"].as_str().unwrap_or_default().to_owned();
        let id = v["checkout_id"].as_str().unwrap_or_default().to_owned();
        let (st, v) = self.app.get(&token, "/api/v1/token").await;
        expect("token introspection", st, 200, &v)?;
        let (st, v) = self.app.get(&token, "/api/v1/credential").await;
        expect("credential hand-out", st, 200, &v)?;
        if !v.to_string().contains(WX_SECRET) {
            return Err(format!("credential hand-out without the secret: {v}"));
        }
        let (st, v) = self
            .app
            .post(
                &token,
                &format!("/api/v1/checkouts/{id}/checkin"),
                json!({}),
            )
            .await;
        expect("checkin", st, 200, &v)
    }

    /// The admin reads the account, the major checkout with its sealed post, and readiness.
    pub async fn reads(&self) -> Result<(), String> {
        let (st, v) = self.app.get(&self.admin_s, "/api/v1/accounts/wx").await;
        expect("account read", st, 200, &v)?;
        let (st, v) = self
            .app
            .get(&self.admin_s, &format!("/api/v1/checkouts/{}", self.major))
            .await;
        expect("checkout read", st, 200, &v)?;
        if !v.to_string().contains("LIVE-OPS-POST") {
            return Err(format!("checkout read without its post: {v}"));
        }
        let r = self
            .app
            .client
            .get(self.app.url("/readyz"))
            .send()
            .await
            .map_err(|e| format!("readyz: {e}"))?;
        let (st, v) = into_pair(r).await;
        expect("readyz", st, 200, &v)
    }

    /// Runs logins, checkout cycles and reads from several tasks until `until` says stop; returns
    /// every failure and how many requests of each kind went through.
    pub async fn under_load<F, Fut>(self: &Arc<Self>, work: F) -> (Vec<String>, [usize; 3])
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
        let mut tasks = Vec::new();
        for kind in [0usize, 1, 2, 2, 2] {
            let (me, stop, counts) = (Arc::clone(self), Arc::clone(&stop), Arc::clone(&counts));
            tasks.push(tokio::spawn(async move {
                let mut failures = Vec::new();
                while !stop.load(Ordering::Acquire) {
                    let r = match kind {
                        0 => me.login().await,
                        1 => me.checkout_cycle().await,
                        _ => me.reads().await,
                    };
                    match r {
                        Ok(()) => {
                            counts[kind].fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => failures.push(e),
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                failures
            }));
        }
        work().await;
        // A little more load after the work, then stop.
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Release);
        let mut failures = Vec::new();
        for t in tasks {
            failures.extend(t.await.unwrap());
        }
        let counts = [0, 1, 2].map(|i| counts[i].load(Ordering::Relaxed));
        (failures, counts)
    }
}

fn expect(what: &str, got: u16, want: u16, body: &Value) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: {got} {body}"))
    }
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mediavault"))
}

/// A configuration file for the CLI binary that points at the test vault's store.
pub fn cli_config(app: &TestApp) -> PathBuf {
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
    cfg
}

/// Runs the CLI binary off the async runtime; panics with its stderr on failure.
pub async fn run_cli(cfg: &Path, args: &[&str]) -> String {
    let cfg = cfg.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = bin()
            .arg("--config")
            .arg(&cfg)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_rotate_rewrap_and_rotate_root_under_load_fail_no_request() {
    let w = Arc::new(loaded().await);
    let cfg = cli_config(&w.app);
    let outputs = tokio::sync::Mutex::new(Vec::new());
    let (failures, counts) = w
        .under_load(|| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            for args in [
                &["keys", "rotate", "--rewrap"][..],
                &["keys", "rotate-root"][..],
                &["keys", "rotate", "--rewrap"][..],
            ] {
                outputs.lock().await.push(run_cli(&cfg, args).await);
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
        .await;
    let outputs = outputs.into_inner();
    assert!(outputs[0].contains("re-sealed"), "{outputs:?}");
    assert!(
        outputs[0].contains("1 checkout posts"),
        "the sealed post is re-sealed too: {outputs:?}"
    );
    eprintln!("load: {counts:?} (logins, checkout cycles, read rounds)");
    assert!(failures.is_empty(), "failed requests: {failures:#?}");
    assert!(
        counts.iter().all(|&n| n >= 2),
        "too little load to mean anything: {counts:?}"
    );
    // The server picked up both new terms (the second with the new root key) and seals under the
    // newest; everything still opens, and the chain holds the CLI's entries.
    assert_eq!(w.app.vault().active_key_term(), 3);
    w.login().await.unwrap();
    w.checkout_cycle().await.unwrap();
    w.reads().await.unwrap();
    let (st, v) = w.app.get(&w.admin_s, "/api/v1/audit/verify").await;
    assert_eq!((st, &v["ok"]), (200, &json!(true)), "{v}");
    let (st, v) = w
        .app
        .get(&w.admin_s, "/api/v1/audit?action=keys.rewrap")
        .await;
    assert_eq!(st, 200, "{v}");
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{v}");
    assert_eq!(entries[0]["detail"]["contents"], 1, "{v}");
}

#[tokio::test]
async fn readyz_says_not_ready_when_the_keys_cannot_open_what_is_stored() {
    let w = loaded().await;
    w.reads().await.unwrap();
    // Someone rotates the root key and the new key file goes missing: the next term cannot be
    // unwrapped, so records re-sealed under it cannot be opened.
    let cfg = cli_config(&w.app);
    let key_file = w.app.config.root_key_path();
    let saved = std::fs::read(&key_file).unwrap();
    run_cli(&cfg, &["keys", "rotate-root"]).await;
    run_cli(&cfg, &["keys", "rotate", "--rewrap"]).await;
    let new_key = std::fs::read(&key_file).unwrap();
    std::fs::write(&key_file, &saved).unwrap();
    let r = w.app.client.get(w.app.url("/readyz")).send().await.unwrap();
    let (st, v) = into_pair(r).await;
    assert_eq!((st, &v["keys"]), (503, &json!(false)), "{v}");
    // The rest still stands: only the keys are named.
    assert_eq!(
        (&v["store"], &v["audit"]),
        (&json!(true), &json!(true)),
        "{v}"
    );
    let logs = captured_logs();
    assert!(logs.contains("cannot open what is stored"), "{logs}");
    // With the right key file back, it is ready again without a restart.
    std::fs::write(&key_file, &new_key).unwrap();
    let r = w.app.client.get(w.app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    w.login().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_under_load_restores_into_a_new_dir_with_the_chain_and_every_secret() {
    use std::os::unix::fs::PermissionsExt;
    let w = Arc::new(loaded().await);
    let cfg = cli_config(&w.app);
    let file = w.app.dir.path().join("vault.backup");
    if on_postgres() {
        // A PostgreSQL store is backed up with pg_dump or PITR (docs/deployment.md): both
        // commands refuse, say so, and leave nothing behind.
        for args in [
            vec!["backup", file.to_str().unwrap()],
            vec![
                "restore",
                file.to_str().unwrap(),
                "--data-dir",
                "/nonexistent",
            ],
        ] {
            let out = bin()
                .arg("--config")
                .arg(&cfg)
                .args(&args)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?}");
            assert!(
                err.contains("pg_dump") && err.contains("audit verify"),
                "{args:?}: {err}"
            );
            assert!(!err.contains("password"), "{err}");
        }
        assert!(!file.exists());
        return;
    }
    let (failures, counts) = w
        .under_load(|| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let out = run_cli(&cfg, &["backup", file.to_str().unwrap()]).await;
            assert!(out.contains("chain head"), "{out}");
        })
        .await;
    assert!(failures.is_empty(), "failed requests: {failures:#?}");
    assert!(counts.iter().all(|&n| n >= 2), "{counts:?}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let bytes = std::fs::read(&file).unwrap();
    for plain in ["carol", "alice", "SQLite format", "LIVE-OPS-POST"] {
        assert!(!contains(&bytes, plain.as_bytes()), "{plain} in the backup");
    }
    let header: Value =
        serde_json::from_slice(bytes.split(|&b| b == b'\n').nth(1).unwrap()).unwrap();
    // The header names the suite the body is sealed in.
    assert_eq!(
        header["crypto_suite"],
        test_suite().unwrap_or_default().as_str(),
        "{header}"
    );
    // The backup is in the live chain, naming the head it holds.
    let (st, v) = w
        .app
        .get(&w.admin_s, "/api/v1/audit?action=backup.create")
        .await;
    assert_eq!(st, 200, "{v}");
    let entry = &v["entries"][0];
    assert_eq!(
        entry["detail"]["chain_head_seq"], header["chain_head"]["seq"],
        "{v}"
    );
    assert_eq!(
        entry["detail"]["chain_head_hash"],
        header["chain_head"]["hash"]
    );
    let mut w = Arc::try_unwrap(w).ok().unwrap();

    // Restore refuses a directory that holds anything, and a backup that was altered.
    let busy = w.app.dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("x"), b"x").unwrap();
    let out = bin()
        .arg("--config")
        .arg(&cfg)
        .args(["restore", file.to_str().unwrap(), "--data-dir"])
        .arg(&busy)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not empty"), "{err}");
    let mut altered = bytes.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    let bad = w.app.dir.path().join("altered.backup");
    std::fs::write(&bad, &altered).unwrap();
    let fresh = w.app.dir.path().join("never");
    let out = bin()
        .arg("--config")
        .arg(&cfg)
        .args(["restore", bad.to_str().unwrap(), "--data-dir"])
        .arg(&fresh)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not open"), "{err}");
    assert!(!fresh.exists());

    // Restore into a new directory: the chain verifies and every secret opens.
    let restored = w.app.dir.path().join("restored");
    let out = run_cli(
        &cfg,
        &[
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            restored.to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.contains("chain verified"), "{out}");
    assert!(out.contains("1 checkout posts"), "{out}");

    // A fresh server on the restored dir serves the old login, the credential and the post.
    w.app.stop().await;
    let mut config = (*w.app.config).clone();
    config.data_dir = restored.clone();
    let config = Arc::new(config);
    let running = mediavault::start(Arc::clone(&config), w.app.clock.clone())
        .await
        .unwrap();
    w.app.base = running.base_url();
    w.app.running = Some(running);
    w.app.config = config;
    w.login().await.unwrap();
    w.checkout_cycle().await.unwrap();
    w.reads().await.unwrap();
    let (st, v) = w.app.get(&w.admin_s, "/api/v1/audit/verify").await;
    assert_eq!((st, &v["ok"]), (200, &json!(true)), "{v}");
    let (st, v) = w
        .app
        .get(&w.admin_s, "/api/v1/audit?action=backup.restore")
        .await;
    assert_eq!(
        (st, v["entries"].as_array().unwrap().len()),
        (200, 1),
        "{v}"
    );
}

#[tokio::test]
async fn audit_lists_newest_first_on_request() {
    let app = spawn_app().await;
    let s = app.login(&app.admin.clone()).await;
    for _ in 0..3 {
        assert_eq!(app.get(&s, "/api/v1/accounts").await.0, 200);
    }
    let (st, asc) = app.get(&s, "/api/v1/audit?limit=3").await;
    assert_eq!(st, 200, "{asc}");
    let seqs = |v: &Value| -> Vec<i64> {
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(seqs(&asc), vec![1, 2, 3]);
    let (st, desc) = app.get(&s, "/api/v1/audit?order=desc&limit=2").await;
    assert_eq!(st, 200, "{desc}");
    let page1 = seqs(&desc);
    assert!(page1[0] > page1[1] && page1[0] > 3, "{desc}");
    let before = desc["next_before_seq"].as_i64().unwrap();
    assert_eq!(before, page1[1]);
    let (_, older) = app
        .get(
            &s,
            &format!("/api/v1/audit?order=desc&limit=2&before_seq={before}"),
        )
        .await;
    assert_eq!(seqs(&older), vec![before - 1, before - 2], "{older}");
    let (st, v) = app.get(&s, "/api/v1/audit?order=newest").await;
    assert_eq!(st, 400, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("desc"), "{v}");
}

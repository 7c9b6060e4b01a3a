//! Sealed mode (issue 25): `init --key-shares N --key-threshold T` splits the root key among named
//! custodians; the server starts sealed and answers only health and unseal until T of them
//! submit their shares (API, CLI, console); a wrong or tampered share is refused and named; a
//! restart comes up sealed again; the submissions are audited (who, never the share).

use std::path::Path;
use std::sync::Arc;

use mediavault::config::Config;
use mediavault::identity::totp;
use mediavault::{Clock, SealedRunning, Started};
use serde_json::{Value, json};

use crate::common::{
    PASSWORD, base_config, client_for, contains, into_pair, run_cli, stored_bytes, write_cli_config,
};

struct Sealed {
    dir: tempfile::TempDir,
    config: Arc<Config>,
    cli_config: std::path::PathBuf,
    client: reqwest::Client,
    totp_secret: String,
    /// (custodian, share) as `init` dealt them.
    shares: Vec<(String, String)>,
    /// The PostgreSQL database of this vault, when the suite runs on PostgreSQL.
    _db: Option<crate::common::TestDb>,
}

/// A sealed-mode vault made as an operator makes one: `init` with the split flags.
async fn init_sealed(n: u8, t: u8, names: &[&str]) -> Sealed {
    mediavault::http::serve::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config(dir.path(), false);
    let db = crate::common::TestDb::new();
    if let Some(db) = &db {
        config.database.url = Some(mediavault::config::DatabaseUrl::new(db.url.clone()));
    }
    std::fs::create_dir_all(&config.policies_dir).unwrap();
    mediavault::certs::write_dev_certs(&dir.path().join("certs"), &[], false).unwrap();
    let cli_config = write_cli_config(dir.path(), &config);
    let (n, t) = (n.to_string(), t.to_string());
    let mut args = vec![
        "init",
        "--admin",
        "admin",
        "--password-stdin",
        "--json",
        "--key-shares",
        &n,
        "--key-threshold",
        &t,
    ];
    for name in names {
        args.extend(["--custodian", name]);
    }
    let out = run_cli(&cli_config, &args, Some(PASSWORD)).await;
    assert!(out.ok, "init: {}", out.stderr);
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert!(v.get("root_key_file").is_none(), "{v}");
    let shares: Vec<(String, String)> = v["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["custodian"].as_str().unwrap().to_owned(),
                s["share"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(shares.len(), names.len());
    let config = Arc::new(config);
    Sealed {
        client: client_for(dir.path()),
        totp_secret: v["totp_secret"].as_str().unwrap().to_owned(),
        dir,
        config,
        cli_config,
        shares,
        _db: db,
    }
}

async fn start(s: &Sealed, clock: &Clock) -> SealedRunning {
    match mediavault::start_any(Arc::clone(&s.config), clock.clone())
        .await
        .unwrap()
    {
        Started::Sealed(r) => r,
        Started::Open(_) => panic!("a sealed-mode vault started unsealed"),
    }
}

async fn submit(s: &Sealed, base: &str, custodian: &str, share: &str) -> (u16, Value) {
    into_pair(
        s.client
            .post(format!("{base}/api/v1/unseal"))
            .json(&json!({"custodian": custodian, "share": share}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn get(s: &Sealed, base: &str, path: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut r = s.client.get(format!("{base}{path}"));
    if let Some(b) = bearer {
        r = r.bearer_auth(b);
    }
    into_pair(r.send().await.unwrap()).await
}

/// Changes one hex digit of a share's `y`, keeping its form valid.
fn tamper(share: &str) -> String {
    let mut chars: Vec<char> = share.chars().collect();
    let i = chars.len() - 5;
    chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
    chars.into_iter().collect()
}

fn ca(dir: &Path) -> String {
    dir.join("certs/ca.pem").to_str().unwrap().to_owned()
}

#[tokio::test]
async fn unseal_with_t_of_n_refuses_fewer_and_tampered_and_restarts_sealed() {
    // Starts capturing the process log (searched for shares below).
    let _ = crate::common::captured_logs();
    let s = init_sealed(3, 2, &["alice", "bob", "carol"]).await;
    // Nothing on disk holds the root key or any share.
    assert!(!s.config.root_key_path().exists());
    let on_disk = stored_bytes(&s.config).await;
    for (_, share) in &s.shares {
        let y = share.rsplit('-').next().unwrap();
        assert!(
            !on_disk.iter().any(|(_, b)| contains(b, y.as_bytes())),
            "a share is on disk"
        );
    }
    let clock = Clock::system();
    let running = start(&s, &clock).await;
    let base = running.base_url();

    // Sealed: health says so, readiness is not ready, everything else is a 503 `sealed`.
    let (st, v) = get(&s, &base, "/healthz", None).await;
    assert_eq!((st, v["sealed"].clone()), (200, json!(true)), "{v}");
    let (st, v) = get(&s, &base, "/readyz", None).await;
    assert_eq!((st, v["status"].clone()), (503, json!("sealed")), "{v}");
    for path in ["/api/v1/accounts", "/api/v1/audit", "/metrics", "/nowhere"] {
        let (st, v) = get(&s, &base, path, None).await;
        assert_eq!(
            (st, v["code"].clone()),
            (503, json!("sealed")),
            "{path}: {v}"
        );
    }
    let login = s
        .client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": PASSWORD, "totp": "000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 503);
    let (st, v) = get(&s, &base, "/api/v1/unseal", None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (
            v["sealed"].clone(),
            v["threshold"].clone(),
            v["shares"].clone()
        ),
        (json!(true), json!(2), json!(3))
    );
    // The console leads a person to its unseal page; its actions are sealed like the API.
    let page = s
        .client
        .get(format!("{base}/console/accounts"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (page.status().as_u16(), page.url().path()),
        (200, "/console/unseal")
    );
    let (st, v) = into_pair(
        s.client
            .post(format!("{base}/console/login"))
            .form(&[("username", "admin")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((st, v["code"].clone()), (503, json!("sealed")), "{v}");
    assert!(page.text().await.unwrap().contains("id=\"sealed\""));

    let (alice, bob, carol) = (&s.shares[0].1, &s.shares[1].1, &s.shares[2].1);
    // A tampered share, another custodian's share, an unknown custodian, garbage: each refused
    // and said why, nothing kept.
    let (st, v) = submit(&s, &base, "alice", &tamper(alice)).await;
    assert_eq!((st, v["field"].clone()), (400, json!("share")), "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("alice's share"),
        "{v}"
    );
    let (st, v) = submit(&s, &base, "alice", carol).await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = submit(&s, &base, "mallory", alice).await;
    assert_eq!((st, v["field"].clone()), (400, json!("custodian")), "{v}");
    let (st, v) = submit(&s, &base, "alice", "not a share").await;
    assert_eq!(st, 400, "{v}");
    let (_, v) = get(&s, &base, "/api/v1/unseal", None).await;
    assert_eq!(v["submitted"], json!([]), "{v}");

    // T−1 shares: still sealed.
    let (st, v) = submit(&s, &base, "alice", alice).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["sealed"].clone(), v["submitted"].clone()),
        (json!(true), json!(["alice"]))
    );
    let (st, _) = submit(&s, &base, "alice", alice).await;
    assert_eq!(st, 409, "a second submission by the same custodian");
    let (st, _) = get(&s, &base, "/api/v1/accounts", None).await;
    assert_eq!(st, 503);
    // A reset discards it; T−1 again after it.
    let (st, v) = into_pair(
        s.client
            .delete(format!("{base}/api/v1/unseal"))
            .json(&json!({"custodian": "alice"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((st, v["submitted"].clone()), (200, json!([])), "{v}");
    // Carol's share through the console's form; a tampered one there is refused and said so.
    let form = |share: String| {
        s.client
            .post(format!("{base}/console/unseal"))
            .form(&[("custodian", "carol".to_owned()), ("share", share)])
            .send()
    };
    let r = form(tamper(carol)).await.unwrap();
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("id=\"error\"") && html.contains("carol"),
        "{html}"
    );
    let r = form(carol.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("id=\"accepted\"") && !html.contains(carol.as_str()),
        "{html}"
    );

    // The T-th share, from the CLI (the share on stdin, never on the command line).
    let out = run_cli(
        &s.cli_config,
        &[
            "unseal",
            "--url",
            &base,
            "--ca",
            &ca(s.dir.path()),
            "--custodian",
            "bob",
        ],
        Some(bob),
    )
    .await;
    assert!(out.ok, "unseal: {}", out.stderr);
    assert!(out.stdout.contains("unsealed"), "{}", out.stdout);
    let (st, v) = get(&s, &base, "/readyz", None).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = submit(&s, &base, "alice", alice).await;
    assert_eq!((st, v["code"].clone()), (409, json!("not_sealed")), "{v}");

    // Open for business: the admin signs in; the audit has every submission, by custodian,
    // with its outcome, and never a share.
    let seed = totp::seed_from_base32(&s.totp_secret).unwrap();
    clock.advance(std::time::Duration::from_secs(30));
    let code = totp::code_at(&seed, clock.unix()).unwrap();
    let (st, v) = into_pair(
        s.client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": "admin", "password": PASSWORD, "totp": code}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let session = v["session_token"].as_str().unwrap().to_owned();
    let (st, v) = get(
        &s,
        &base,
        "/api/v1/audit?action=unseal.submit&limit=100",
        Some(&session),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let entries = v["entries"].as_array().unwrap();
    let seen: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["actor"]["id"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let denied = |who: &str| (format!("custodian:{who}"), "denied".to_owned());
    let ok = |who: &str| (format!("custodian:{who}"), "success".to_owned());
    assert_eq!(
        seen,
        vec![
            denied("alice"),
            denied("alice"),
            denied("mallory"),
            denied("alice"),
            ok("alice"),
            denied("carol"),
            ok("carol"),
            ok("bob"),
        ],
        "{v}"
    );
    let text = v.to_string();
    for (_, share) in &s.shares {
        assert!(!text.contains(share.rsplit('-').next().unwrap()));
    }
    // A keyring term added meanwhile by the CLI (with a quorum), every secret re-sealed under
    // it: the unsealed server picks it up with the key it rebuilt, and the admin's TOTP seed
    // (re-sealed) still opens at the next login.
    let quorum = format!("alice {alice}\ncarol {carol}");
    let out = run_cli(
        &s.cli_config,
        &["keys", "rotate", "--rewrap"],
        Some(&quorum),
    )
    .await;
    assert!(out.ok, "keys rotate: {}", out.stderr);
    clock.advance(std::time::Duration::from_secs(30));
    let code = totp::code_at(&seed, clock.unix()).unwrap();
    let (st, v) = into_pair(
        s.client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": "admin", "password": PASSWORD, "totp": code}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "login after keys rotate --rewrap: {v}");
    let (_, v) = get(
        &s,
        &base,
        "/api/v1/audit?action=vault.unseal",
        Some(&session),
    )
    .await;
    assert_eq!(
        v["entries"][0]["detail"]["custodians"],
        json!(["alice", "carol", "bob"]),
        "{v}"
    );
    // The process log never saw a share either.
    let logs = crate::common::captured_logs();
    assert!(
        logs.contains("unseal share refused"),
        "the log was not captured"
    );
    for (_, share) in &s.shares {
        assert!(!logs.contains(share.rsplit('-').next().unwrap()));
    }

    // A restart comes up sealed again, and the old shares open it again.
    running.shutdown().await.unwrap();
    let running = start(&s, &clock).await;
    let base = running.base_url();
    let (st, v) = get(&s, &base, "/api/v1/accounts", Some(&session)).await;
    assert_eq!((st, v["code"].clone()), (503, json!("sealed")), "{v}");
    submit(&s, &base, "bob", bob).await;
    let (st, v) = submit(&s, &base, "carol", carol).await;
    assert_eq!((st, v["sealed"].clone()), (200, json!(false)), "{v}");
    let (st, _) = get(&s, &base, "/api/v1/accounts", Some(&session)).await;
    assert_eq!(st, 200);
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn unseal_with_another_vaults_seal_file_and_shares_fails_closed() {
    // An attacker who can write the data dir swaps in another vault's seal file and brings that
    // vault's shares: each share matches its check value, the root check matches, and still the
    // store's keyring refuses the key: the vault stays sealed and says so.
    let a = init_sealed(2, 2, &["alice", "bob"]).await;
    let b = init_sealed(2, 2, &["alice", "bob"]).await;
    std::fs::copy(
        b.config.data_dir.join("seal.json"),
        a.config.data_dir.join("seal.json"),
    )
    .unwrap();
    let clock = Clock::system();
    let running = start(&a, &clock).await;
    let base = running.base_url();
    submit(&a, &base, "alice", &b.shares[0].1).await;
    let (st, v) = submit(&a, &base, "bob", &b.shares[1].1).await;
    assert_eq!(
        (st, v["code"].clone()),
        (409, json!("unseal_failed")),
        "{v}"
    );
    let (st, v) = get(&a, &base, "/api/v1/accounts", None).await;
    assert_eq!((st, v["code"].clone()), (503, json!("sealed")), "{v}");
    let (_, v) = get(&a, &base, "/api/v1/unseal", None).await;
    assert_eq!(
        (v["sealed"].clone(), v["submitted"].clone()),
        (json!(true), json!([])),
        "{v}"
    );
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn unseal_init_refuses_bad_splits_and_file_mode_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let config = base_config(dir.path(), false);
    let cli = write_cli_config(dir.path(), &config);
    for args in [
        &["--key-shares", "3", "--key-threshold", "1"][..],
        &["--key-shares", "2", "--key-threshold", "3"][..],
        &[
            "--key-shares",
            "2",
            "--key-threshold",
            "2",
            "--custodian",
            "a1",
        ][..],
        &[
            "--key-shares",
            "2",
            "--key-threshold",
            "2",
            "--custodian",
            "a1",
            "--custodian",
            "a1",
        ][..],
    ] {
        let mut all = vec!["init", "--admin", "admin", "--password-stdin"];
        all.extend_from_slice(args);
        let out = run_cli(&cli, &all, Some(PASSWORD)).await;
        assert!(!out.ok, "{args:?} was accepted");
        assert!(!config.data_dir.join("seal.json").exists());
    }
    // The file-mode server answers the unseal status as not sealed and refuses a share.
    let app = crate::common::spawn_app().await;
    let (st, v) = into_pair(
        app.client
            .get(app.url("/api/v1/unseal"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (st, v["sealed"].clone(), v["sealed_mode"].clone()),
        (200, json!(false), json!(false))
    );
    let (st, v) = into_pair(
        app.client
            .post(app.url("/api/v1/unseal"))
            .json(&json!({"custodian": "alice", "share": "mvshare1-01-00"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((st, v["code"].clone()), (409, json!("not_sealed")), "{v}");
}

#[tokio::test]
async fn unseal_rekey_needs_a_quorum_and_switches_only_after_every_new_holder_verifies() {
    let s = init_sealed(3, 2, &["alice", "bob", "carol"]).await;
    let (alice, bob) = (&s.shares[0].1, &s.shares[1].1);
    let rekey = |stdin: String, args: &'static [&'static str]| {
        let cli = s.cli_config.clone();
        async move { run_cli(&cli, args, Some(&stdin)).await }
    };
    const START: &[&str] = &[
        "rekey",
        "start",
        "--key-shares",
        "2",
        "--key-threshold",
        "2",
        "--custodian",
        "dave",
        "--custodian",
        "erin",
        "--json",
    ];
    // Fewer than the quorum, or a tampered share: refused, nothing dealt.
    let out = rekey(format!("alice {alice}"), START).await;
    assert!(!out.ok && out.stderr.contains("give 2"), "{}", out.stderr);
    let out = rekey(format!("alice {alice}\nbob {}", tamper(bob)), START).await;
    assert!(
        !out.ok && out.stderr.contains("not bob's share"),
        "{}",
        out.stderr
    );
    assert!(!s.config.data_dir.join("seal.pending.json").exists());

    let out = rekey(format!("alice {alice}\nbob {bob}"), START).await;
    assert!(out.ok, "rekey: {}", out.stderr);
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let dave = v["shares"][0]["share"].as_str().unwrap().to_owned();
    let erin = v["shares"][1]["share"].as_str().unwrap().to_owned();
    assert_eq!(v["shares"][1]["custodian"], "erin");

    // Not verified yet: the old shares still unseal, the new ones are not known.
    let clock = Clock::system();
    let running = start(&s, &clock).await;
    let base = running.base_url();
    let (st, v) = submit(&s, &base, "dave", &dave).await;
    assert_eq!((st, v["field"].clone()), (400, json!("custodian")), "{v}");
    submit(&s, &base, "alice", alice).await;
    let (st, v) = submit(&s, &base, "bob", bob).await;
    assert_eq!((st, v["sealed"].clone()), (200, json!(false)), "{v}");
    running.shutdown().await.unwrap();

    // A wrong new share in the verification switches nothing; all of them right switches.
    let out = rekey(
        format!("dave {dave}\nerin {}", tamper(&erin)),
        &["rekey", "verify"],
    )
    .await;
    assert!(
        !out.ok && out.stderr.contains("not erin's share"),
        "{}",
        out.stderr
    );
    let out = rekey(format!("dave {dave}\nerin {erin}"), &["rekey", "verify"]).await;
    assert!(out.ok, "verify: {}", out.stderr);
    assert!(!s.config.data_dir.join("seal.pending.json").exists());

    // After the switch, and a restart: sealed; the old shares are refused, the new open it.
    let running = start(&s, &clock).await;
    let base = running.base_url();
    let (st, v) = submit(&s, &base, "alice", alice).await;
    assert_eq!((st, v["field"].clone()), (400, json!("custodian")), "{v}");
    let (_, v) = get(&s, &base, "/api/v1/unseal", None).await;
    assert_eq!(
        (v["threshold"].clone(), v["shares"].clone()),
        (json!(2), json!(2)),
        "{v}"
    );
    submit(&s, &base, "dave", &dave).await;
    let (st, v) = submit(&s, &base, "erin", &erin).await;
    assert_eq!((st, v["sealed"].clone()), (200, json!(false)), "{v}");

    // Both steps are in the audit chain, with who.
    let seed = totp::seed_from_base32(&s.totp_secret).unwrap();
    clock.advance(std::time::Duration::from_secs(30));
    let code = totp::code_at(&seed, clock.unix()).unwrap();
    let (_, v) = into_pair(
        s.client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": "admin", "password": PASSWORD, "totp": code}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let session = v["session_token"].as_str().unwrap().to_owned();
    let (_, v) = get(
        &s,
        &base,
        "/api/v1/audit?action=unseal.rekey_start",
        Some(&session),
    )
    .await;
    assert_eq!(
        v["entries"][0]["detail"]["by_custodians"],
        json!(["alice", "bob"]),
        "{v}"
    );
    let (_, v) = get(
        &s,
        &base,
        "/api/v1/audit?action=unseal.rekey",
        Some(&session),
    )
    .await;
    assert_eq!(
        v["entries"][0]["detail"]["verified_by"],
        json!(["dave", "erin"]),
        "{v}"
    );
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn unseal_backup_restore_and_key_rotation_take_a_quorum_of_shares() {
    // `backup` and `restore` are SQLite's (PostgreSQL is backed up with pg_dump or PITR).
    if crate::common::on_postgres() {
        return;
    }
    let s = init_sealed(3, 2, &["alice", "bob", "carol"]).await;
    let quorum = format!("carol {}\nalice {}", s.shares[2].1, s.shares[0].1);
    let backup = s.dir.path().join("vault.backup");
    let backup_s = backup.to_str().unwrap();
    // Without a quorum, or with one wrong share, nothing is written.
    let out = run_cli(
        &s.cli_config,
        &["backup", backup_s],
        Some(&format!("alice {}", s.shares[0].1)),
    )
    .await;
    assert!(!out.ok && !backup.exists(), "{}", out.stderr);
    let out = run_cli(&s.cli_config, &["backup", backup_s], Some(&quorum)).await;
    assert!(out.ok, "backup: {}", out.stderr);
    assert!(out.stdout.contains("quorum"), "{}", out.stdout);

    // A keyring term is added with a quorum; the root key cannot be rotated (yet) and says so.
    let out = run_cli(&s.cli_config, &["keys", "rotate"], Some(&quorum)).await;
    assert!(out.ok, "keys rotate: {}", out.stderr);
    let out = run_cli(&s.cli_config, &["keys", "rotate-root"], Some(&quorum)).await;
    assert!(
        !out.ok && out.stderr.contains("sealed-mode"),
        "{}",
        out.stderr
    );

    // Restore: the shares open the backup; the restored vault is sealed-mode under the same split.
    let into = s.dir.path().join("restored");
    let out = run_cli(
        &s.cli_config,
        &["restore", backup_s, "--data-dir", into.to_str().unwrap()],
        Some(&quorum),
    )
    .await;
    assert!(out.ok, "restore: {}", out.stderr);
    assert!(into.join("seal.json").exists() && !into.join("root.key").exists());
    let mut restored = (*s.config).clone();
    restored.data_dir = into;
    let r = Sealed {
        config: Arc::new(restored),
        dir: tempfile::tempdir().unwrap(),
        cli_config: s.cli_config.clone(),
        client: s.client.clone(),
        totp_secret: s.totp_secret.clone(),
        shares: s.shares.clone(),
        _db: None,
    };
    let clock = Clock::system();
    let running = start(&r, &clock).await;
    let base = running.base_url();
    let (st, _) = get(&r, &base, "/api/v1/accounts", None).await;
    assert_eq!(st, 503);
    submit(&r, &base, "bob", &s.shares[1].1).await;
    let (st, v) = submit(&r, &base, "alice", &s.shares[0].1).await;
    assert_eq!((st, v["sealed"].clone()), (200, json!(false)), "{v}");
    let (st, v) = get(&r, &base, "/readyz", None).await;
    assert_eq!(st, 200, "{v}");
    running.shutdown().await.unwrap();
}

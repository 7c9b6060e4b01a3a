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
    /// (custodian, share) as `init` dealt them (the share empty for one encrypted to an age key).
    shares: Vec<(String, String)>,
    /// What `init --json` printed.
    init_output: String,
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
                s["share"].as_str().unwrap_or_default().to_owned(),
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
        init_output: out.stdout,
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
    let session = admin_session(&s, &base, &clock).await;
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
    // The TOTP seed re-sealed under the new term still opens: the admin signs in again.
    admin_session(&s, &base, &clock).await;
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
    let session = admin_session(&s, &base, &clock).await;
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

    // A keyring term is added with a quorum (rotating the root key has its own test below).
    let out = run_cli(&s.cli_config, &["keys", "rotate"], Some(&quorum)).await;
    assert!(out.ok, "keys rotate: {}", out.stderr);

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
        init_output: String::new(),
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

/// A program the age interop tests need, from `PATH`; the test fails saying how to install it.
fn age_program(name: &str) -> std::path::PathBuf {
    const HOW: &str = "install it with `apt-get install -y age` (Debian; .ci/run does this)";
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("the age interop test needs the `{name}` program: {HOW}"))
}

/// A custodian's own age key, made as they would make it (`age-keygen -o FILE`): the key file
/// and the public key (`age1…`) it records.
fn age_keygen(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let file = dir.join(format!("{name}.key"));
    let out = std::process::Command::new(age_program("age-keygen"))
        .arg("-o")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let public = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_owned();
    (file, public)
}

/// What `age -d -i KEY FILE` prints for an armored age file, exactly.
fn age_decrypt(dir: &Path, key: &Path, armored: &str) -> String {
    let file = dir.join("share.age");
    std::fs::write(&file, armored).unwrap();
    let out = std::process::Command::new(age_program("age"))
        .arg("-d")
        .arg("-i")
        .arg(key)
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(
        out.status.success(),
        "age -d: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Signs the admin in with a fresh code (the clock moves to the next step first).
async fn admin_session(s: &Sealed, base: &str, clock: &Clock) -> String {
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
    assert_eq!(st, 200, "login: {v}");
    v["session_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn unseal_shares_encrypted_to_custodians_age_keys_open_with_the_age_tool() {
    let keys = tempfile::tempdir().unwrap();
    let (zhang_key, zhang_pub) = age_keygen(keys.path(), "zhang");
    let (li_key, li_pub) = age_keygen(keys.path(), "li");

    // A malformed age key is refused before anything is made, and says what is wrong.
    let dir = tempfile::tempdir().unwrap();
    let config = base_config(dir.path(), false);
    let cli = write_cli_config(dir.path(), &config);
    let mut typo = zhang_pub.clone().into_bytes();
    typo[20] = if typo[20] == b'q' { b'p' } else { b'q' };
    let typo = String::from_utf8(typo).unwrap();
    for (bad, says) in [
        (format!("zhang={typo}"), "checksum"),
        ("zhang=age1".to_owned(), "cut short"),
        ("zhang=ssh-ed25519 AAAA".to_owned(), "age1"),
    ] {
        let out = run_cli(
            &cli,
            &[
                "init",
                "--admin",
                "admin",
                "--password-stdin",
                "--key-shares",
                "2",
                "--key-threshold",
                "2",
                "--custodian",
                &bad,
                "--custodian",
                "li",
            ],
            Some(PASSWORD),
        )
        .await;
        assert!(
            !out.ok && out.stderr.contains("zhang") && out.stderr.contains(says),
            "{bad}: {}",
            out.stderr
        );
        assert!(!config.data_dir.exists(), "{bad}: something was created");
    }

    // zhang and li gave their age keys, wang did not.
    let zhang = format!("zhang={zhang_pub}");
    let li = format!("li={li_pub}");
    let s = init_sealed(3, 2, &[&zhang, &li, "wang"]).await;
    let shown = &s.init_output;
    let v: Value = serde_json::from_str(shown.trim()).unwrap();
    let zhang_age = v["shares"][0]["age"].as_str().unwrap().to_owned();
    assert_eq!(v["shares"][0]["recipient"], json!(zhang_pub), "{v}");
    assert!(v["shares"][0].get("share").is_none(), "{v}");
    assert!(zhang_age.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"));
    assert!(v["shares"][1].get("share").is_none(), "{v}");
    let wang = v["shares"][2]["share"].as_str().unwrap().to_owned();
    // The custodian opens theirs with the standard tool; what it prints was never shown.
    let zhang_plain = age_decrypt(keys.path(), &zhang_key, &zhang_age);
    assert!(zhang_plain.starts_with("mvshare1-"), "{zhang_plain}");
    assert!(
        !shown.contains(zhang_plain.trim()),
        "zhang's share was printed in plain text"
    );
    // The seal file names each custodian's age key (public), never a share.
    let seal = std::fs::read_to_string(s.config.data_dir.join("seal.json")).unwrap();
    assert!(seal.contains(&zhang_pub) && !seal.contains(zhang_plain.trim()));
    // li's file is not for zhang's key.
    let li_age = v["shares"][1]["age"].as_str().unwrap();
    let file = keys.path().join("li.age");
    std::fs::write(&file, li_age).unwrap();
    let wrong = std::process::Command::new(age_program("age"))
        .args(["-d", "-i"])
        .arg(&zhang_key)
        .arg(&file)
        .output()
        .unwrap();
    assert!(!wrong.status.success());

    let clock = Clock::system();
    let running = start(&s, &clock).await;
    let base = running.base_url();
    // The armored file itself, given as the share: refused, saying to decrypt it first.
    let (st, v) = submit(&s, &base, "zhang", &zhang_age).await;
    assert_eq!(st, 400, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("age -d"), "{v}");
    // What `age -d` prints goes straight into `mediavault unseal`.
    let out = run_cli(
        &s.cli_config,
        &[
            "unseal",
            "--url",
            &base,
            "--ca",
            &ca(s.dir.path()),
            "--custodian",
            "zhang",
        ],
        Some(zhang_plain.trim_end_matches('\n')),
    )
    .await;
    assert!(out.ok, "unseal: {}", out.stderr);
    let (st, v) = submit(&s, &base, "wang", &wang).await;
    assert_eq!((st, v["sealed"].clone()), (200, json!(false)), "{v}");
    running.shutdown().await.unwrap();

    // A rekey deals to the same age keys again (li named without one keeps hers), shown as age
    // files in the terminal too, and the new share opens with li's key.
    let li_plain = age_decrypt(keys.path(), &li_key, li_age);
    let out = run_cli(
        &s.cli_config,
        &[
            "rekey",
            "start",
            "--key-shares",
            "2",
            "--key-threshold",
            "2",
            "--custodian",
            "li",
            "--custodian",
            "wang",
        ],
        Some(&format!("li {}\nwang {wang}", li_plain.trim())),
    )
    .await;
    assert!(out.ok, "rekey: {}", out.stderr);
    let armored: String = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN AGE"))
        .take_while(|l| !l.starts_with("  wang:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        armored.contains("-----END AGE ENCRYPTED FILE-----"),
        "{}",
        out.stdout
    );
    let li_new = age_decrypt(keys.path(), &li_key, &armored);
    assert!(li_new.starts_with("mvshare1-") && !out.stdout.contains(li_new.trim()));
    let wang_new = out
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("wang: "))
        .unwrap()
        .to_owned();
    let out = run_cli(
        &s.cli_config,
        &["rekey", "verify"],
        Some(&format!("li {}\nwang {wang_new}", li_new.trim())),
    )
    .await;
    assert!(out.ok, "verify: {}", out.stderr);
}

/// `(custodian, share)` of a `--json` answer's plain shares.
fn json_shares(stdout: &str) -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    v["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["custodian"].as_str().unwrap().to_owned(),
                s["share"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn lines(shares: &[(String, String)], which: &[usize]) -> String {
    which
        .iter()
        .map(|&i| format!("{} {}", shares[i].0, shares[i].1))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn unseal_rotate_root_with_a_quorum_then_only_the_new_shares_open_and_secrets_stay() {
    // Starts capturing the process log (the running server's pick-up is read from it below).
    let _ = crate::common::captured_logs();
    let s = init_sealed(3, 2, &["alice", "bob", "carol"]).await;
    let old = s.shares.clone();
    let clock = Clock::system();
    let running = start(&s, &clock).await;
    let base = running.base_url();
    submit(&s, &base, "alice", &old[0].1).await;
    let (st, v) = submit(&s, &base, "bob", &old[1].1).await;
    assert_eq!((st, v["sealed"].clone()), (200, json!(false)), "{v}");
    let session = admin_session(&s, &base, &clock).await;
    // A platform credential, sealed under the keyring, that must open after everything below.
    let (st, v) = into_pair(
        s.client
            .post(format!("{base}/api/v1/accounts"))
            .bearer_auth(&session)
            .json(&json!({"id": "wx", "platform": "wechat", "display_name": "wx", "credential": {"app_id": "wx1", "app_secret": "rotate-root-secret"}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    // A backup made under the old key (SQLite's; PostgreSQL is backed up with pg_dump).
    let backup = s.dir.path().join("before.backup");
    if !crate::common::on_postgres() {
        let out = run_cli(
            &s.cli_config,
            &["backup", backup.to_str().unwrap()],
            Some(&lines(&old, &[0, 2])),
        )
        .await;
        assert!(out.ok, "backup: {}", out.stderr);
    }

    // Without a quorum, or with a tampered share: refused, nothing dealt.
    let out = run_cli(
        &s.cli_config,
        &["keys", "rotate-root", "--json"],
        Some(&lines(&old, &[0])),
    )
    .await;
    assert!(!out.ok && out.stderr.contains("give 2"), "{}", out.stderr);
    let out = run_cli(
        &s.cli_config,
        &["keys", "rotate-root", "--json"],
        Some(&format!("alice {}\ncarol {}", old[0].1, tamper(&old[2].1))),
    )
    .await;
    assert!(
        !out.ok && out.stderr.contains("not carol's share"),
        "{}",
        out.stderr
    );
    assert!(!s.config.data_dir.join("seal.pending.json").exists());

    // A quorum: new shares for the same custodians, nothing switched yet.
    let out = run_cli(
        &s.cli_config,
        &["keys", "rotate-root", "--json"],
        Some(&lines(&old, &[0, 2])),
    )
    .await;
    assert!(out.ok, "rotate-root: {}", out.stderr);
    let new = json_shares(&out.stdout);
    assert_eq!(
        new.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
        ["alice", "bob", "carol"]
    );
    assert!(new.iter().zip(&old).all(|(n, o)| n.1 != o.1));
    // Until verified the old shares are in force (a sealed start would take them) and the
    // running server goes on.
    let out = run_cli(
        &s.cli_config,
        &["keys", "rotate"],
        Some(&lines(&new, &[0, 1])),
    )
    .await;
    assert!(
        !out.ok && out.stderr.contains("not alice's share"),
        "{}",
        out.stderr
    );
    // Verification needs every new holder, each share right.
    let out = run_cli(
        &s.cli_config,
        &["rekey", "verify"],
        Some(&lines(&new, &[0, 1])),
    )
    .await;
    assert!(!out.ok && out.stderr.contains("give 3"), "{}", out.stderr);
    let out = run_cli(
        &s.cli_config,
        &["rekey", "verify"],
        Some(&format!(
            "{}\ncarol {}",
            lines(&new, &[0, 1]),
            tamper(&new[2].1)
        )),
    )
    .await;
    assert!(
        !out.ok && out.stderr.contains("not carol's share"),
        "{}",
        out.stderr
    );
    // Someone who can write the data dir but holds no shares puts their own age key where the
    // running server's recipient is: the rotation will not hand the new root key to it, and
    // nothing changes (the recipient carries a MAC under the root key in force).
    let recipient_file = s.config.data_dir.join("seal.handover.recipient");
    let genuine = std::fs::read(&recipient_file).unwrap();
    let (_, attacker) = age_keygen(s.dir.path(), "attacker");
    for (forged, says) in [
        (
            format!("{attacker}\n{}\n", "00".repeat(32)),
            "not vouched for",
        ),
        (format!("{attacker}\n"), "no MAC"),
    ] {
        std::fs::write(&recipient_file, forged).unwrap();
        let out = run_cli(
            &s.cli_config,
            &["rekey", "verify"],
            Some(&lines(&new, &[2, 0, 1])),
        )
        .await;
        assert!(!out.ok && out.stderr.contains(says), "{}", out.stderr);
        assert!(!s.config.data_dir.join("seal.handover.json").exists());
    }
    std::fs::write(&recipient_file, genuine).unwrap();
    let out = run_cli(
        &s.cli_config,
        &["rekey", "verify"],
        Some(&lines(&new, &[2, 0, 1])),
    )
    .await;
    assert!(out.ok, "verify: {}", out.stderr);
    assert!(out.stdout.contains("root key rotated"), "{}", out.stdout);
    assert!(out.stdout.contains("handed the new key"), "{}", out.stdout);
    assert!(out.stdout.contains("OLD shares"), "{}", out.stdout);
    let retired = std::fs::read_dir(&s.config.data_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("seal.retired-")
        })
        .expect("the split in force before is kept");

    // The running server keeps serving, and picks up a keyring term added under the new key
    // (every secret re-sealed under it): the old shares no longer rotate anything.
    let (st, v) = get(&s, &base, "/readyz", None).await;
    assert_eq!(st, 200, "{v}");
    let out = run_cli(
        &s.cli_config,
        &["keys", "rotate", "--rewrap"],
        Some(&lines(&old, &[0, 1])),
    )
    .await;
    assert!(
        !out.ok && out.stderr.contains("not alice's share"),
        "{}",
        out.stderr
    );
    let out = run_cli(
        &s.cli_config,
        &["keys", "rotate", "--rewrap"],
        Some(&lines(&new, &[1, 2])),
    )
    .await;
    assert!(out.ok, "keys rotate: {}", out.stderr);
    let (st, v) = get(&s, &base, "/readyz", None).await;
    assert_eq!((st, v["keys"].clone()), (200, json!(true)), "{v}");
    admin_session(&s, &base, &clock).await;
    assert!(
        crate::common::captured_logs().contains("this server now holds the new one"),
        "the running server did not take the handed-over key"
    );
    // What was handed over is for that process alone, and gone once taken.
    assert!(!s.config.data_dir.join("seal.handover.json").exists());
    // Both halves are in the audit chain, with who.
    let (_, v) = get(
        &s,
        &base,
        "/api/v1/audit?action=unseal.rekey_start",
        Some(&session),
    )
    .await;
    let start_entry = v["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(start_entry["detail"]["new_root_key"], json!(true), "{v}");
    assert_eq!(
        start_entry["detail"]["by_custodians"],
        json!(["alice", "carol"]),
        "{v}"
    );
    let (_, v) = get(
        &s,
        &base,
        "/api/v1/audit?action=keys.rotate_root",
        Some(&session),
    )
    .await;
    let detail = &v["entries"][0]["detail"];
    assert_eq!(detail["sealed"], json!(true), "{v}");
    assert_eq!(
        detail["verified_by"],
        json!(["carol", "alice", "bob"]),
        "{v}"
    );
    assert_eq!(detail["running_server_told"], json!(true), "{v}");
    running.shutdown().await.unwrap();

    // Restarted: sealed; the old shares are refused, the new ones open it, and every secret opens.
    let running = start(&s, &clock).await;
    let base = running.base_url();
    let (st, v) = submit(&s, &base, "alice", &old[0].1).await;
    assert_eq!((st, v["field"].clone()), (400, json!("share")), "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("alice's share"),
        "{v}"
    );
    submit(&s, &base, "alice", &new[0].1).await;
    let (st, v) = submit(&s, &base, "carol", &new[2].1).await;
    assert_eq!((st, v["sealed"].clone()), (200, json!(false)), "{v}");
    let (st, v) = get(&s, &base, "/readyz", None).await;
    assert_eq!((st, v["keys"].clone()), (200, json!(true)), "{v}");
    let session = admin_session(&s, &base, &clock).await;
    let (st, v) = get(&s, &base, "/api/v1/accounts", Some(&session)).await;
    assert_eq!(st, 200, "{v}");
    running.shutdown().await.unwrap();

    // The backup made before opens only with the OLD shares and the split they belong to.
    if !crate::common::on_postgres() {
        let into = s.dir.path().join("restored");
        let args = |seal: Option<&Path>| {
            let mut a = vec![
                "restore".to_owned(),
                backup.to_str().unwrap().to_owned(),
                "--data-dir".to_owned(),
                into.to_str().unwrap().to_owned(),
            ];
            if let Some(p) = seal {
                a.extend(["--seal-file".to_owned(), p.to_str().unwrap().to_owned()]);
            }
            a
        };
        let run = |a: Vec<String>, stdin: String| {
            let cli = s.cli_config.clone();
            async move {
                let a: Vec<&str> = a.iter().map(String::as_str).collect();
                run_cli(&cli, &a, Some(&stdin)).await
            }
        };
        let out = run(args(None), lines(&new, &[0, 1])).await;
        assert!(!out.ok && out.stderr.contains("root key"), "{}", out.stderr);
        let out = run(args(Some(&retired)), lines(&new, &[0, 1])).await;
        assert!(
            !out.ok && out.stderr.contains("not alice's share"),
            "{}",
            out.stderr
        );
        let out = run(args(Some(&retired)), lines(&old, &[1, 2])).await;
        assert!(out.ok, "restore: {}", out.stderr);
        assert!(into.join("seal.json").exists());
    }
}

/// A sealed-mode office gets its second admin as any office does: the first admin asks through
/// the API and the root key's holders confirm it with `bootstrap confirm-admin` beside the
/// running server; here the holders are the custodians, so it takes a quorum of their shares.
#[tokio::test]
async fn unseal_a_sealed_vault_gets_its_second_admin_from_a_quorum_of_custodians() {
    let s = init_sealed(3, 2, &["alice", "bob", "carol"]).await;
    let clock = Clock::system();
    let running = start(&s, &clock).await;
    let base = running.base_url();
    // A sealed server's answers carry the same transport headers as an open one's.
    let r = s
        .client
        .get(format!("{base}/api/v1/unseal"))
        .send()
        .await
        .unwrap();
    for (name, want) in [
        ("strict-transport-security", "max-age=31536000"),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(r.headers()[name], want, "{name}");
    }
    submit(&s, &base, "alice", &s.shares[0].1).await;
    let (st, v) = submit(&s, &base, "bob", &s.shares[1].1).await;
    assert_eq!((st, v["sealed"].clone()), (200, json!(false)), "{v}");
    let session = admin_session(&s, &base, &clock).await;
    let seed = totp::seed_from_base32(&s.totp_secret).unwrap();
    clock.advance(std::time::Duration::from_secs(30));
    let code = totp::code_at(&seed, clock.unix()).unwrap();
    let (st, v) = into_pair(
        s.client
            .post(format!("{base}/api/v1/users"))
            .bearer_auth(&session)
            .json(&json!({"username": "admin2", "display_name": "安全管理员", "roles": ["admin"], "password": PASSWORD, "totp": code}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["pending_roles"], json!(["admin"]), "{v}");

    // One custodian alone cannot: nothing changes.
    let confirm = ["bootstrap", "confirm-admin", "admin2"];
    let one = format!("alice {}", s.shares[0].1);
    let out = run_cli(&s.cli_config, &confirm, Some(&one)).await;
    assert!(!out.ok, "{}", out.stdout);
    let (_, v) = get(&s, &base, "/api/v1/users/admin2", Some(&session)).await;
    assert_eq!(v["pending_roles"], json!(["admin"]), "{v}");

    // A quorum confirms it, beside the running server, and it is recorded.
    let quorum = format!("carol {}\nbob {}", s.shares[2].1, s.shares[1].1);
    let out = run_cli(&s.cli_config, &confirm, Some(&quorum)).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("admin2 is now an admin"),
        "{}",
        out.stdout
    );
    let (st, v) = get(&s, &base, "/api/v1/users/admin2", Some(&session)).await;
    assert_eq!(st, 200, "{v}");
    assert!(
        v["roles"].as_array().unwrap().contains(&json!("admin")),
        "{v}"
    );
    let (_, v) = get(
        &s,
        &base,
        "/api/v1/audit?action=user.confirm_role",
        Some(&session),
    )
    .await;
    let entries = v["entries"].as_array().cloned().unwrap_or_default();
    assert!(
        entries.iter().any(|e| e["actor"]["id"]
            .as_str()
            .is_some_and(|a| a.starts_with("cli:"))),
        "{v}"
    );
    running.shutdown().await.unwrap();
}

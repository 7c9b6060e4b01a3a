//! The national (SM) crypto suite as an operator meets it: chosen once at `init` with
//! `crypto.suite = "sm"`, named by `/readyz`, in every checkpoint and in every backup, and never
//! silently swapped. (The whole behaviour suite also runs in it: `MV_TEST_CRYPTO_SUITE=sm`, in
//! `.ci/run`.)

use mediavault::crypto::Suite;
use serde_json::{Value, json};

use crate::common::*;

fn sm_vault() -> Options {
    Options {
        tweak: Some(Box::new(|c| c.crypto.suite = Some(Suite::Sm))),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_sm_vault_names_its_suite_signs_checkpoints_with_sm2_and_refuses_another_suite() {
    let mut app = spawn_with(sm_vault()).await;
    // /readyz names the suite and its primitives.
    let (st, ready) = into_pair(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(st, 200, "{ready}");
    assert_eq!(ready["crypto"]["suite"], "sm", "{ready}");
    assert!(
        ready["crypto"]["primitives"]
            .as_str()
            .is_some_and(|p| p.contains("SM4") && p.contains("SM3") && p.contains("SM2")),
        "{ready}"
    );
    // Everything works as in the standard suite: an account's secret is stored and used, the
    // audit log verifies.
    let s = app.login(&app.admin.clone()).await;
    let (st, v) = app
        .post(
            &s,
            "/api/v1/accounts",
            json!({"id": "wx", "platform": "wechat", "display_name": "WX", "credential": {"app_id": "wx0123456789abcdef", "app_secret": "sm-secret-1"}}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = app.get(&s, "/api/v1/audit/verify").await;
    assert_eq!((st, &v["ok"]), (200, &json!(true)), "{v}");
    // The auditor's console page says what the chain is computed with.
    let auditor = app.create_user(&s, "shenji", &["auditor"]).await;
    let auditor_s = app.login(&auditor).await;
    let page = app.console_page(&auditor_s, "/console/audit").await;
    assert!(
        page.contains("id=\"crypto-suite\"") && page.contains("HMAC-SM3") && page.contains("SM2"),
        "{page}"
    );
    // The store records its suite, and the secret is nowhere in plaintext.
    let db = raw_db(&app.config).await;
    let row: (Vec<u8>,) = sqlx::query_as(db.sql("SELECT value FROM meta WHERE key = ?"))
        .bind("crypto_suite")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(row.0, b"sm");
    for (path, bytes) in all_bytes_under(&app.config.data_dir) {
        assert!(!contains(&bytes, b"sm-secret-1"), "{}", path.display());
    }
    app.stop().await;

    // A checkpoint names the suite and carries an SM2 signature that OpenSSL verifies with the
    // public key the CLI printed; the vault verifies the chain against it.
    let out = app.cli(&["audit", "checkpoint"]).await;
    assert!(out.ok, "{}", out.stderr);
    let line = out.stdout.trim().to_owned();
    assert!(line.starts_with("mvcp2:sm:"), "{line}");
    let public = out
        .stderr
        .split("public key that verifies it: ")
        .nth(1)
        .map(str::trim)
        .unwrap_or_else(|| panic!("no public key: {}", out.stderr));
    assert!(sm2_verifies_with_openssl(&line, public));
    let out = app.cli(&["audit", "verify", "--checkpoint", &line]).await;
    assert!(out.ok, "{}", out.stderr);
    let report: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    // A standard-suite line presented to this vault is named as another vault's.
    let standard_line = format!(
        "mvcp2:standard:{}",
        line.split_once(":sm:").unwrap().1.replacen(
            line.rsplit(':').next().unwrap(),
            &"00".repeat(32),
            1
        )
    );
    let out = app
        .cli(&["audit", "verify", "--checkpoint", &standard_line])
        .await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("standard suite") && out.stderr.contains("sm suite"),
        "{}",
        out.stderr
    );

    // The configuration cannot claim another suite than the store's: the CLI and the server
    // both refuse, naming both, and nothing is written.
    let cfg = app.dir.path().join("standard.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{}\"\npolicies_dir = \"{}\"\n[crypto]\nsuite = \"standard\"\n{}",
            app.config.data_dir.display(),
            app.config.policies_dir.display(),
            database_table(&app.config)
        ),
    )
    .unwrap();
    let out = run_cli(&cfg, &["audit", "verify"], None).await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("\"sm\" suite") && out.stderr.contains("crypto.suite"),
        "{}",
        out.stderr
    );
    let mut wrong = (*app.config).clone();
    wrong.crypto.suite = Some(Suite::Standard);
    let err = mediavault::start(std::sync::Arc::new(wrong), app.clock.clone())
        .await
        .err()
        .expect("a server configured for the other suite must not start");
    assert!(err.to_string().contains("\"sm\" suite"), "{err}");

    // Without crypto.suite the store's own suite is used.
    app.restart().await;
    let s = app.login(&app.admin.clone()).await;
    let (st, v) = app.get(&s, "/api/v1/audit/verify").await;
    assert_eq!((st, &v["ok"]), (200, &json!(true)), "{v}");
}

#[tokio::test]
async fn init_says_the_suite_it_created_and_refuses_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let write = |suite: &str| {
        let cfg = dir.path().join(format!("{suite}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "data_dir = \"{}\"\npolicies_dir = \"{}\"\n[crypto]\nsuite = \"{suite}\"\n",
                dir.path().join(format!("data-{suite}")).display(),
                dir.path().join("policies").display(),
            ),
        )
        .unwrap();
        cfg
    };
    if on_postgres() {
        // The PostgreSQL run creates its vaults through the harness; this one is about `init`'s
        // own words, the same on either store.
        return;
    }
    let out = run_cli(
        &write("aes"),
        &["init", "--admin", "admin", "--password-stdin"],
        Some(PASSWORD),
    )
    .await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("suite = \"aes\"") && out.stderr.contains("`standard` or `sm`"),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("data-aes").exists());
    let out = run_cli(
        &write("sm"),
        &["init", "--admin", "admin", "--password-stdin"],
        Some(PASSWORD),
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("Crypto suite: sm (SM4-GCM, HMAC-SM3, HKDF-SM3, SM2 signatures)"),
        "{}",
        out.stdout
    );
}

/// Behind a TLCP gateway (docs/deployment.md §13) every connection is the gateway's: with its
/// address in `[gateway] addresses`, the audit log and the rate limits see each client's own
/// address, the one the gateway appended; a client elsewhere cannot claim one with the header.
#[tokio::test]
async fn behind_a_gateway_the_log_names_each_client_and_no_one_else_can_claim_an_address() {
    let failed_login_from = |app: &TestApp, forwarded: &'static str| {
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"username": "nobody", "password": "wrong-password", "totp": "000000"}))
            .send()
    };
    let last_login_source = |v: &Value| {
        v["entries"][0]["source_ip"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };

    // Without a configured gateway the header is the client's own claim, and ignored.
    let app = spawn_app().await;
    assert_eq!(
        failed_login_from(&app, "203.0.113.9")
            .await
            .unwrap()
            .status(),
        401
    );
    let s = app.login(&app.admin.clone()).await;
    let (_, v) = app
        .get(&s, "/api/v1/audit?action=auth.login&outcome=denied")
        .await;
    assert_eq!(last_login_source(&v), "127.0.0.1", "{v}");

    // The gateway on this host: the last entry it appended is the client; what the client put
    // before it proves nothing.
    let app = spawn_with(Options {
        tweak: Some(Box::new(|c| {
            c.gateway.addresses = vec!["127.0.0.1/32".parse().unwrap()];
        })),
        ..Default::default()
    })
    .await;
    assert_eq!(
        failed_login_from(&app, "198.51.100.1, 203.0.113.7")
            .await
            .unwrap()
            .status(),
        401
    );
    let s = app.login(&app.admin.clone()).await;
    let (_, v) = app
        .get(&s, "/api/v1/audit?action=auth.login&outcome=denied")
        .await;
    assert_eq!(last_login_source(&v), "203.0.113.7", "{v}");
}

//! Issue 19: docs/deployment.md, end to end. From an empty directory to a major post published on
//! WeChat and on Weibo with one approval, driving the binary under test only with the commands the
//! guide shows, in its order. Every step here names the guide's section; the guide's last section
//! lists how this rehearsal differs from a real server (paths in a temporary directory instead of
//! /etc and /var/lib, a free port, the fake platforms, answers piped to standard input).
//!
//! The binary under test is `MV_RELEASE_BIN_UNDER_TEST` when set (CI sets it to the production
//! build that `cargo deb` packages, without the `demo` feature), else this build's own binary.
//! The fake WeChat and Weibo APIs always come from this build (`mediavault fake-platforms`, which
//! needs the `demo` feature: without it this file is empty). The helpers that drive processes
//! are in `tests/support`, shared with the crash test (`tests/crash.rs`).
//!
//! The vault runs as a process of its own on the real clock, and it never accepts a TOTP time step
//! twice, nor an older one after a newer: each person's codes come from [`Codes`], which takes the
//! next step (one step ahead is within the accepted skew) instead of waiting 30 seconds. Nobody
//! here needs more than two codes: a login opens a five-minute step-up window in which the admin
//! CLI asks for no further code.
#![cfg(feature = "demo")]
// Tests unwrap and panic on purpose: a failure is the message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{
    Codes, Daemon, WECHAT_APP_ID, WECHAT_APP_SECRET, WEIBO_APP_KEY, WEIBO_APP_SECRET, WEIBO_TOKEN,
    WEIBO_UID, copy_tomls, edit, fake_platforms, json_of, repo, run, vault_bin,
};

const ADMIN_PASSWORD: &str = "e2e-admin-password-0001";

// The office's roster (docs/deployment.md shows the same file): 安全管理员 (the second admin),
// a publisher in 办公室, the principal leader who approves major items, 审计管理员.
const ROSTER: &str = "\
username,display_name,department,roles
anquan,赵安全,信息中心,admin
zhangsan,张三,办公室,publisher
lisi,李四,委领导,approver
wangwu,王五,信息中心,auditor
";

const TITLE: &str = "2025年全省重大项目清单发布";
const WEIBO_TEXT: &str = "【重大项目】省发改委发布2025年全省重大项目清单，详见微信公众号。";

/// On PostgreSQL (`MV_TEST_DATABASE_URL` names a server, as `.ci/run` sets it): a database of the
/// rehearsal's own on it, made once, which every command is pointed at the way the guide says to
/// give it a password, through `MEDIAVAULT_DATABASE__URL`.
fn pg_database() -> Option<&'static str> {
    static URL: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        let server = std::env::var("MV_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        let name = format!("mv_e2e_{}", std::process::id());
        let (base, _) = server
            .rsplit_once('/')
            .expect("a URL that names a database");
        let url = format!("{base}/{name}");
        let sql = format!("CREATE DATABASE {name}");
        // A thread with a runtime of its own: this is called from inside the test's runtime.
        std::thread::spawn(move || {
            use sqlx::Connection;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            });
        })
        .join()
        .unwrap();
        Some(url)
    })
    .as_deref()
}

/// A command of the binary under test (`support::command`), pointed on PostgreSQL at the
/// rehearsal's database the way the guide says to give a password ([`pg_database`]).
fn command(bin: &Path, dir: &Path, home: &Path) -> tokio::process::Command {
    let mut c = support::command(bin, dir, home);
    if let Some(url) = pg_database() {
        c.env("MEDIAVAULT_DATABASE__URL", url);
    }
    c
}

/// The value after `label` on the first line of `text` that has it, trimmed.
fn after<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"))
        .trim()
}

/// One person of `admin users import`'s output: (initial password, TOTP secret).
fn imported(out: &str, username: &str) -> (String, String) {
    let mut lines = out
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{username} (")));
    assert!(lines.next().is_some(), "{username} not in:\n{out}");
    let block: String = lines
        .take_while(|l| l.starts_with(' '))
        .collect::<Vec<_>>()
        .join("\n");
    (
        after(&block, "initial password:").to_owned(),
        after(&block, "secret:").to_owned(),
    )
}

#[tokio::test]
async fn deployment_guide_from_an_empty_directory_to_a_major_post_on_wechat_and_weibo() {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let started = Instant::now();
    let bin = vault_bin();
    let tmp = tempfile::Builder::new()
        .prefix("mv-e2e-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().to_path_buf();
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "an empty directory"
    );
    // The server's root and each person's home (their admin CLI profile).
    let root = dir.join("root");
    let home = |who: &str| {
        let h = dir.join("home").join(who);
        std::fs::create_dir_all(&h).unwrap();
        h
    };
    let etc = dir.join("etc/mediavault");
    let config = etc.join("mediavault.toml");
    let config_arg = config.to_str().unwrap().to_owned();
    let server = |args: &[&str]| {
        let mut c = command(&bin, &dir, &root);
        c.arg("--config").arg(&config_arg).args(args);
        c
    };
    std::fs::create_dir_all(&root).unwrap();

    // The platforms. In this rehearsal, the fake WeChat and Weibo APIs (README, "The fake
    // platforms alone"), which know the office's two apps.
    let (fakes, fake_url) = fake_platforms(&dir, &root).await;
    let mut fakes = fakes;

    // 1. Install: the package's files. /etc/mediavault/mediavault.toml is packaging/mediavault.toml
    // and /etc/mediavault/policies/ the shipped policies and playbooks; the data dir is 0700.
    copy_tomls(&repo().join("policies"), &etc.join("policies"));
    copy_tomls(
        &repo().join("policies/playbooks"),
        &etc.join("policies/playbooks"),
    );
    let var_lib = dir.join("var/lib/mediavault");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&var_lib)
        .unwrap();
    // Then the configuration, as the guide says: `listen` on the server's own address (here a
    // free port on loopback); for the rehearsal, the platforms' base URLs at the fakes.
    let packaged = std::fs::read_to_string(repo().join("packaging/mediavault.toml")).unwrap();
    let f = "packaging/mediavault.toml";
    let mut text = edit(
        &packaged,
        "listen = \"127.0.0.1:8443\"",
        "listen = \"127.0.0.1:0\"",
        f,
    );
    text = edit(
        &text,
        "\"/etc/mediavault/",
        &format!("\"{}/", etc.display()),
        f,
    );
    text = edit(
        &text,
        "\"/var/lib/mediavault\"",
        &format!("\"{}\"", var_lib.display()),
        f,
    );
    text.push_str(&format!(
        "\n[platforms]\nwechat_base_url = \"{fake_url}\"\nweibo_base_url = \"{fake_url}\"\n"
    ));
    std::fs::write(&config, text).unwrap();

    // 2. Certificates: the trial CA and server certificate; the CA key leaves the server's files.
    let tls = etc.join("tls");
    run(
        {
            let mut c = command(&bin, &dir, &root);
            c.args(["certs", "dev", "--dir", tls.to_str().unwrap()]);
            c
        },
        "",
    )
    .await;
    std::fs::rename(tls.join("ca-key.pem"), root.join("ca-key.pem")).unwrap();
    let ca = tls.join("ca.pem");
    let ca_arg = ca.to_str().unwrap().to_owned();

    // 3. Init: the store, the root key and the first admin (系统管理员).
    let out = run(
        server(&[
            "init",
            "--admin",
            "admin",
            "--display-name",
            "信息中心 管理员",
            "--password-stdin",
            "--json",
        ]),
        &format!("{ADMIN_PASSWORD}\n"),
    )
    .await;
    let init: Value = serde_json::from_str(&out).unwrap();
    let mut codes = Codes::default();
    codes.enrol("admin", init["totp_secret"].as_str().unwrap());
    let key_mode = std::fs::metadata(var_lib.join("root.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600, "the root key");

    // 4. Access policies: the shipped ones name `wechat-main`, `weibo-main` and `cms`, which are
    // the names used below. Their allowed hours (07:00-23:00 Asia/Shanghai) are left out here, so
    // the rehearsal runs at any hour; then `policy check`.
    for name in ["wechat-main.toml", "weibo-main.toml"] {
        let p = etc.join("policies").join(name);
        let text = std::fs::read_to_string(&p).unwrap();
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("allowed_hours"))
            .collect();
        assert_eq!(
            kept.len() + 1,
            text.lines().count(),
            "{name}: allowed_hours"
        );
        std::fs::write(&p, kept.join("\n") + "\n").unwrap();
    }
    let policies = etc.join("policies");
    run(
        {
            let mut c = command(&bin, &dir, &root);
            c.args(["policy", "check", policies.to_str().unwrap()]);
            c
        },
        "",
    )
    .await;

    // 5. Start: `serve` says where it serves once the port is bound; then /readyz.
    let (vault, url) = Daemon::start(
        server(&["serve"]),
        "vault",
        dir.join("vault.log"),
        "mediavault serving on ",
    )
    .await;
    let mut vault = vault;
    assert!(url.starts_with("https://"), "{url}");
    mediavault::http::serve::install_crypto_provider();
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let r = https.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);

    // 6. People, tools and accounts, with the admin CLI. Every person at their own workstation:
    // their own home, so their own profile.
    let admin_cli = |who: &str, args: &[&str]| {
        let mut c = command(&bin, &dir, &home(who));
        c.arg("admin").args(args);
        c
    };
    let login = |who: &str| {
        admin_cli(
            who,
            &["login", "--url", &url, "--ca", &ca_arg, "--username", who],
        )
    };
    let code = codes.code("admin").await;
    let out = run(login("admin"), &format!("{ADMIN_PASSWORD}\n{code}\n")).await;
    assert!(out.contains("signed in as admin"), "{out}");

    // The roster in one go. Signing in opened the step-up window: no code is asked for (standard
    // input is empty, so a prompt would fail the command).
    let roster = dir.join("roster.csv");
    std::fs::write(&roster, ROSTER).unwrap();
    let out = run(
        admin_cli("admin", &["users", "import", roster.to_str().unwrap()]),
        "",
    )
    .await;
    assert!(out.contains("added 4 people"), "{out}");
    let mut passwords = HashMap::new();
    for who in ["anquan", "zhangsan", "lisi", "wangwu"] {
        let (password, secret) = imported(&out, who);
        codes.enrol(who, &secret);
        passwords.insert(who, password);
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("anquan (") && l.contains("waiting for a second admin: admin")),
        "{out}"
    );

    // The second admin (安全管理员): confirmed on the server by the root key holder, while the
    // vault has fewer than two admins.
    let out = run(server(&["bootstrap", "confirm-admin", "anquan"]), "").await;
    assert!(out.contains("anquan is now an admin"), "{out}");
    // From now on privileged grants need a second admin: anquan confirms the approver.
    let code = codes.code("anquan").await;
    let out = run(
        login("anquan"),
        &format!("{}\n{code}\n", passwords["anquan"]),
    )
    .await;
    assert!(out.contains("signed in as anquan (admin)"), "{out}");
    let out = run(
        admin_cli("anquan", &["users", "confirm", "lisi", "approver"]),
        "",
    )
    .await;
    assert!(out.contains("confirmed approver for lisi"), "{out}");
    let out = run(admin_cli("anquan", &["users", "list"]), "").await;
    let lisi = out.lines().find(|l| l.starts_with("lisi ")).unwrap();
    assert!(
        lisi.contains(" approver ") && lisi.contains("委领导"),
        "{out}"
    );

    // The accounts: their credential fields on standard input, in prompt order.
    let out = run(
        admin_cli(
            "admin",
            &[
                "accounts",
                "add",
                "wechat-main",
                "--platform",
                "wechat",
                "--display-name",
                "吉林省发展和改革委员会",
            ],
        ),
        &format!("{WECHAT_APP_ID}\n{WECHAT_APP_SECRET}\n"),
    )
    .await;
    assert!(out.contains("added wechat-main (wechat)"), "{out}");
    let out = run(
        admin_cli(
            "admin",
            &[
                "accounts",
                "add",
                "weibo-main",
                "--platform",
                "weibo",
                "--display-name",
                "吉林发改",
            ],
        ),
        &format!("{WEIBO_APP_KEY}\n{WEIBO_APP_SECRET}\n{WEIBO_TOKEN}\n"),
    )
    .await;
    assert!(out.contains("added weibo-main (weibo)"), "{out}");
    // The publishing tool, for both accounts (which must exist first): its client key is shown
    // once.
    let out = run(
        admin_cli(
            "admin",
            &[
                "clients",
                "add",
                "cms",
                "--account",
                "wechat-main",
                "--account",
                "weibo-main",
            ],
        ),
        "",
    )
    .await;
    let client_key = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("mvc_"))
        .unwrap_or_else(|| panic!("no client key in:\n{out}"))
        .to_owned();

    let out = run(admin_cli("admin", &["policies"]), "").await;
    for account in [
        "wechat-main [wechat-main.toml]",
        "weibo-main [weibo-main.toml]",
    ] {
        assert!(out.contains(account), "{out}");
    }
    assert_eq!(out.matches("tools: cms (").count(), 2, "{out}");
    assert_eq!(out.matches("major: 1 approval(s)").count(), 2, "{out}");
    assert!(!out.contains("no such account"), "{out}");

    // 7. A major post: the tool (cms) sends it for review for both accounts at once, with the
    // publisher's code.
    let content = json!({
        "title": TITLE,
        "author": "办公室",
        "digest": "经委主要领导签审",
        "body": "<p>省发改委发布2025年全省重大项目清单。</p>",
        "text": WEIBO_TEXT,
        "images": [{"name": "cover.png", "role": "cover", "content_type": "image/png",
                    "data_base64": "iVBORw0KGgo="}],
        "targets": ["wechat-main", "weibo-main"],
    });
    let code = codes.code("zhangsan").await;
    let (st, v) = json_of(
        https
            .post(format!("{url}/api/v1/checkouts"))
            .bearer_auth(&client_key)
            .json(
                &json!({"account": "wechat-main", "operator": "zhangsan", "totp": code,
                          "purpose": "重大信息发布", "level": "major", "content": content}),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["status"], "pending_approval", "{v}");
    let checkout = v["checkout_id"].as_str().unwrap().to_owned();

    // The approver (委主要领导) signs in, finds it and approves it once, with a fresh code.
    let code = codes.code("lisi").await;
    let out = run(login("lisi"), &format!("{}\n{code}\n", passwords["lisi"])).await;
    assert!(out.contains("signed in as lisi (approver)"), "{out}");
    let out = run(
        admin_cli(
            "lisi",
            &["checkouts", "list", "--status", "pending_approval"],
        ),
        "",
    )
    .await;
    let row = out.lines().find(|l| l.starts_with(&checkout)).unwrap();
    assert!(
        row.contains("wechat-main") && row.contains("zhangsan"),
        "{out}"
    );
    let code = codes.code("lisi").await;
    let out = run(
        admin_cli(
            "lisi",
            &["checkouts", "approve", &checkout, "--comment", "同意发布"],
        ),
        &format!("{code}\n"),
    )
    .await;
    assert!(out.contains(&format!("approved {checkout}")), "{out}");

    // The tool claims the token with the publisher's next code, and the vault publishes the
    // approved post on every target; then the token is checked in.
    let code = codes.code("zhangsan").await;
    let (st, v) = json_of(
        https
            .post(format!("{url}/api/v1/checkouts/{checkout}/claim"))
            .bearer_auth(&client_key)
            .json(&json!({"operator": "zhangsan", "totp": code}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    let (st, v) = json_of(
        https
            .post(format!("{url}/api/v1/checkouts/{checkout}/publish"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let posts = v.as_array().unwrap();
    assert_eq!(posts.len(), 2, "{v}");
    for (account, platform) in [("wechat-main", "wechat"), ("weibo-main", "weibo")] {
        let p = posts.iter().find(|p| p["account"] == account).unwrap();
        assert_eq!(p["platform"], platform, "{p}");
        assert_eq!(p["status"], "published", "{p}");
        assert_eq!(p["operator"], "zhangsan", "{p}");
        assert_eq!(p["department"], "办公室", "{p}");
        assert_eq!(p["approvals"][0]["approver"], "lisi", "{p}");
    }
    assert_eq!(
        posts[0]["content_sha256"], posts[1]["content_sha256"],
        "one approval, the same post on both platforms"
    );
    let (st, v) = json_of(
        https
            .post(format!("{url}/api/v1/checkouts/{checkout}/checkin"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{v}");

    // The post is live on both platforms, once each.
    let (st, live) = json_of(
        reqwest::get(format!("{fake_url}/_fake/published"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{live}");
    let wechat = live["wechat"].as_array().unwrap();
    assert_eq!(wechat.len(), 1, "{live}");
    assert_eq!(wechat[0]["app_id"], WECHAT_APP_ID, "{live}");
    assert_eq!(wechat[0]["articles"][0]["title"], TITLE, "{live}");
    let wx = posts
        .iter()
        .find(|p| p["account"] == "wechat-main")
        .unwrap();
    assert_eq!(wx["article_id"], wechat[0]["article_id"], "{live}");
    let weibo = live["weibo"].as_array().unwrap();
    assert_eq!(weibo.len(), 1, "{live}");
    assert_eq!(weibo[0]["text"], WEIBO_TEXT, "{live}");
    assert_eq!(weibo[0]["uid"].to_string(), WEIBO_UID, "{live}");
    let wb = posts.iter().find(|p| p["account"] == "weibo-main").unwrap();
    assert_eq!(wb["status_id"], weibo[0]["idstr"], "{live}");

    // The auditor (审计管理员) reads the log and verifies its chain through the API; the root key
    // holder verifies it offline on the server too.
    let code = codes.code("wangwu").await;
    let out = run(
        login("wangwu"),
        &format!("{}\n{code}\n", passwords["wangwu"]),
    )
    .await;
    assert!(out.contains("signed in as wangwu (auditor)"), "{out}");
    let out = run(admin_cli("wangwu", &["audit", "verify"]), "").await;
    assert!(out.contains("the audit chain verifies"), "{out}");
    let out = run(admin_cli("wangwu", &["audit", "tail", "-n", "200"]), "").await;
    for (action, target) in [
        ("user.import", "4 people"),
        ("user.confirm_role", "anquan"),
        ("user.confirm_role", "lisi"),
        ("account.create", "wechat-main"),
        ("account.create", "weibo-main"),
        ("client.create", "cms"),
        ("checkout.create", "wechat-main"),
        ("checkout.approve", checkout.as_str()),
        ("checkout.claim", checkout.as_str()),
        ("platform.send", "wechat-main"),
        ("platform.send", "weibo-main"),
        ("checkout.checkin", checkout.as_str()),
    ] {
        assert!(
            out.lines()
                .any(|l| l.contains(&format!("  {action}  {target}  success"))),
            "no {action} of {target} in the audit log:\n{out}"
        );
    }
    let out = run(server(&["audit", "verify"]), "").await;
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["ok"], true, "{report}");

    vault.assert_running();
    fakes.assert_running();
    drop(vault);
    drop(fakes);
    eprintln!(
        "the deployment guide, end to end with {}: {:.1} s",
        bin.display(),
        started.elapsed().as_secs_f64()
    );
}

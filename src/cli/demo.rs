//! `mediavault demo`: the vault on plain HTTP at 127.0.0.1 with temporary data, the fake WeChat and
//! Weibo APIs beside it, seeded people, a publishing tool and two accounts, and a walkthrough that
//! works as printed. Nothing here is fit for production: passwords are printed on purpose.

use std::path::Path;
use std::sync::Arc;

use crate::actor::{Actor, Principal};
use crate::config::Config;
use crate::crypto::SecretString;
use crate::identity::users::{NewUserInput, Person};
use crate::platforms::fake::{FakeConfig, FakePlatforms};
use crate::{Clock, Vault};

const WECHAT_APP_ID: &str = "wxd0e1m2o3d4e5m6o7";
const WEIBO_APP_KEY: &str = "3141592653";

fn demo_policy(account: &str, calls: &[&str]) -> String {
    let calls: Vec<String> = calls.iter().map(|c| format!("\"{c}\"")).collect();
    format!(
        "# Demo policy for {account}: loopback only, any hour.\naccount = \"{account}\"\nexclusive = true\nallowed_networks = [\"127.0.0.0/8\", \"::1/128\"]\nallowed_calls = [{}]\n\n[who]\nroles = [\"publisher\"]\nclients = [\"demo-tool\"]\n\n[levels.general]\napprovals = 0\n\n[levels.major]\napprovals = 1\n",
        calls.join(", ")
    )
}

fn random_word(bytes: usize) -> anyhow::Result<String> {
    let mut b = vec![0u8; bytes];
    crate::crypto::random_bytes(&mut b)?;
    Ok(hex::encode(b))
}

pub struct Seeded {
    pub users: Vec<(String, String, SecretString)>,
    pub client_key: SecretString,
}

/// Seeds people, accounts, the tool and policies into a fresh vault.
pub async fn seed(vault: &Vault, fake: &FakePlatforms) -> anyhow::Result<Seeded> {
    let mut users = Vec::new();
    for (name, roles, display) in [
        ("admin", vec!["admin"], "系统管理员"),
        ("publisher", vec!["publisher"], "编辑 (publisher)"),
        ("editor", vec!["publisher"], "综合处编辑 (publisher)"),
        ("approver", vec!["approver"], "分管领导 (approver)"),
        ("auditor", vec!["auditor"], "安全审计员 (auditor)"),
    ] {
        let password = format!("demo-{}", random_word(6)?);
        let e = vault
            .people()
            .create_in(
                &Actor::system(),
                NewUserInput {
                    username: name.into(),
                    display_name: display.into(),
                    roles: roles.iter().map(|r| r.to_string()).collect(),
                    password: SecretString::new(password.clone()),
                },
                roles.contains(&"publisher").then(|| "综合处".to_owned()),
                None,
            )
            .await?;
        users.push((name.to_owned(), password, e.totp_secret));
    }
    // The seeding acts as the demo's admin, so the records name a person, as they would for real.
    let admin = Actor::new(
        Principal::Person(Person {
            id: 1,
            username: "admin".into(),
            roles: crate::identity::Roles::parse(&["admin"])?,
            session: None,
        }),
        None,
    );
    let wechat_secret = random_word(16)?;
    let weibo_secret = random_word(16)?;
    let weibo_token = format!("2.00{}", random_word(14)?);
    fake.add_wechat_app(WECHAT_APP_ID, &wechat_secret);
    fake.add_weibo_app(WEIBO_APP_KEY, &weibo_secret, &weibo_token, 7_000_000_001);
    let accounts = [
        serde_json::json!({"id": "wechat-demo", "platform": "wechat", "display_name": "演示公众号", "credential": {"app_id": WECHAT_APP_ID, "app_secret": wechat_secret}}),
        serde_json::json!({"id": "weibo-demo", "platform": "weibo", "display_name": "演示微博", "credential": {"app_key": WEIBO_APP_KEY, "app_secret": weibo_secret, "access_token": weibo_token}}),
    ];
    for a in accounts {
        let input = serde_json::from_value(a)?;
        vault.accounts().create(&admin, input).await?;
    }
    let (_, client_key) = vault
        .clients()
        .create(
            &Actor::system(),
            "demo-tool",
            &["wechat-demo".into(), "weibo-demo".into()],
            None,
            None,
        )
        .await?;
    Ok(Seeded { users, client_key })
}

fn write_policies(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("wechat-demo.toml"),
        demo_policy(
            "wechat-demo",
            &[
                "POST cgi-bin/draft/add",
                "POST cgi-bin/freepublish/submit",
                "POST cgi-bin/freepublish/get",
                "POST cgi-bin/media/uploadimg",
                "POST cgi-bin/material/add_material?type",
                "GET cgi-bin/getcallbackip",
            ],
        ),
    )?;
    std::fs::write(
        dir.join("weibo-demo.toml"),
        demo_policy("weibo-demo", &["POST 2/statuses/share.json"]),
    )?;
    Ok(())
}

/// The walkthrough, as a bash script between two marker lines (tests run it exactly as printed).
pub fn walkthrough(base: &str, exe: &str, seeded: &Seeded) -> String {
    let secret = |name: &str| {
        seeded
            .users
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, p, s)| (p.clone(), s.expose().to_owned()))
            .unwrap_or_default()
    };
    let (_, pub_secret) = secret("publisher");
    let (aud_pw, aud_secret) = secret("auditor");
    let (_, ed_secret) = secret("editor");
    let (appr_pw, appr_secret) = secret("approver");
    let key = seeded.client_key.expose();
    format!(
        r#"# --- walkthrough: copy and paste into bash (needs curl) ---
set -euo pipefail
V={base}
KEY={key}
field() {{ sed -E "s/.*\"$1\":\"([^\"]*)\".*/\1/"; }}
# 1. The publishing tool checks the WeChat account out for the publisher, who proves presence with TOTP.
CODE=$({exe} totp-code --secret {pub_secret})
OUT=$(curl -sS --fail-with-body $V/api/v1/checkouts -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
  -d "{{\"account\":\"wechat-demo\",\"operator\":\"publisher\",\"totp\":\"$CODE\",\"purpose\":\"发布演示稿件\",\"level\":\"general\"}}")
echo "$OUT"
TOKEN=$(echo "$OUT" | field token); CHECKOUT=$(echo "$OUT" | field checkout_id)
# 2. Publish through the vault: it injects the platform credential; the AppSecret never leaves it.
curl -sS --fail-with-body -X POST "$V/api/v1/platform/wechat-demo/cgi-bin/draft/add" -H "Authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d '{{"articles":[{{"title":"演示","content":"<p>你好</p>"}}]}}'; echo
# 3. Check in: the token dies at once.
curl -sS --fail-with-body -X POST "$V/api/v1/checkouts/$CHECKOUT/checkin" -H "Authorization: Bearer $TOKEN"; echo
test "$(curl -s -o /dev/null -w '%{{http_code}}' $V/api/v1/token -H "Authorization: Bearer $TOKEN")" = 401
# 4. The auditor reviews the log and verifies its chain.
ACODE=$({exe} totp-code --secret {aud_secret})
SESSION=$(curl -sS --fail-with-body $V/api/v1/auth/login -H 'content-type: application/json' \
  -d "{{\"username\":\"auditor\",\"password\":\"{aud_pw}\",\"totp\":\"$ACODE\"}}" | field session_token)
curl -sS --fail-with-body "$V/api/v1/audit?limit=5" -H "Authorization: Bearer $SESSION"; echo
curl -sS --fail-with-body "$V/api/v1/audit/verify" -H "Authorization: Bearer $SESSION"; echo
# 5. A major item: the editor's tool sends the post itself for review, for both accounts at once.
POST='{{"title":"演示重大稿件","author":"综合处","digest":"经主要领导审核","body":"<p>经主要领导审核的正文</p>","text":"经主要领导审核的微博正文","images":[{{"name":"cover.png","role":"cover","content_type":"image/png","data_base64":"iVBORw0KGgo="}}],"targets":["wechat-demo","weibo-demo"]}}'
ECODE=$({exe} totp-code --secret {ed_secret})
MAJOR=$(curl -sS --fail-with-body $V/api/v1/checkouts -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
  -d "$(printf '{{"account":"wechat-demo","operator":"editor","totp":"%s","purpose":"重大信息发布","level":"major","content":%s}}' "$ECODE" "$POST")" | field checkout_id)
# 6. The approver (never the requester) reads the post itself, not only digests ...
PCODE=$({exe} totp-code --secret {appr_secret})
PSESSION=$(curl -sS --fail-with-body $V/api/v1/auth/login -H 'content-type: application/json' \
  -d "{{\"username\":\"approver\",\"password\":\"{appr_pw}\",\"totp\":\"$PCODE\"}}" | field session_token)
curl -sS --fail-with-body "$V/api/v1/checkouts/$MAJOR" -H "Authorization: Bearer $PSESSION"; echo
# ... and approves with a fresh code of their own (a TOTP code is never accepted twice: wait for the next one).
sleep $(( 31 - $(date +%s) % 30 ))
PCODE=$({exe} totp-code --secret {appr_secret})
curl -sS --fail-with-body -X POST "$V/api/v1/checkouts/$MAJOR/approve" -H "Authorization: Bearer $PSESSION" \
  -H 'content-type: application/json' -d "{{\"totp\":\"$PCODE\",\"comment\":\"同意发布\"}}" > /dev/null
# 7. The editor claims the token and the vault publishes the approved post on WeChat and Weibo.
ECODE=$({exe} totp-code --secret {ed_secret})
TOKEN2=$(curl -sS --fail-with-body -X POST "$V/api/v1/checkouts/$MAJOR/claim" -H "Authorization: Bearer $KEY" \
  -H 'content-type: application/json' -d "{{\"operator\":\"editor\",\"totp\":\"$ECODE\"}}" | field token)
curl -sS --fail-with-body -X POST "$V/api/v1/checkouts/$MAJOR/publish" -H "Authorization: Bearer $TOKEN2"; echo
# 8. The auditor lists the evidence: operator and department, approver, the platforms' ids.
curl -sS --fail-with-body "$V/api/v1/posts" -H "Authorization: Bearer $SESSION"; echo
echo "walkthrough done"
# --- end of walkthrough ---"#
    )
}

/// Runs the demo until ctrl-c or SIGTERM.
pub async fn run(listen_port: u16) -> anyhow::Result<()> {
    let tmp = std::env::temp_dir().join(format!("mediavault-demo-{}", random_word(4)?));
    // The data dir holds a root key: it goes on every way out of here, errors included.
    let _cleanup = RemoveOnDrop(tmp.clone());
    let fake = FakePlatforms::new(FakeConfig::default());
    let fake_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let fake_addr = fake_listener.local_addr()?;
    tokio::spawn(fake.clone().serve(fake_listener));

    let mut config = Config {
        data_dir: tmp.join("data"),
        policies_dir: tmp.join("policies"),
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], listen_port)),
        ..Config::default()
    };
    config.tls.plain_http = true;
    config.platforms.wechat_base_url = format!("http://{fake_addr}");
    config.platforms.weibo_base_url = format!("http://{fake_addr}");
    write_policies(&config.policies_dir)?;
    let config = Arc::new(config);
    let vault = Vault::create(Arc::clone(&config), Clock::system()).await?;
    let seeded = seed(&vault, &fake).await?;
    vault.reload_policies(&Actor::system()).await?;
    let running = crate::start_with(Arc::new(vault)).await?;
    let base = format!("http://127.0.0.1:{}", running.addr.port());
    let exe = std::env::current_exe()?.display().to_string();

    println!(
        "mediavault demo serving on {base} (data in {}, deleted on exit)",
        tmp.display()
    );
    println!("fake WeChat and Weibo APIs on http://{fake_addr}\n");
    println!(
        "{:<10} {:<22} TOTP secret (add to an authenticator app, or: {exe} totp-code --secret S)",
        "user", "password"
    );
    for (name, pw, secret) in &seeded.users {
        println!("{name:<10} {pw:<22} {}", secret.expose());
    }
    println!(
        "\npublishing tool demo-tool, client key: {}\n",
        seeded.client_key.expose()
    );
    println!("{}", walkthrough(&base, &exe, &seeded));
    println!("\nPress ctrl-c to stop.");
    let handle = running.handle();
    tokio::spawn(async move {
        crate::http::serve::shutdown_signal().await;
        handle.graceful_shutdown(Some(crate::http::serve::GRACE));
    });
    running.wait().await
}

/// Removes a directory when dropped (end of the demo, an error, a panic unwinding).
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

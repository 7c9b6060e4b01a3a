//! `mediavault fake-platforms`: the fake WeChat and Weibo APIs alone, for tests and local
//! development. Only in builds with the `demo` feature. Apps come from flags or a small TOML file;
//! more can be registered while it runs through the control endpoints (`/_fake/…`, listed in
//! [`CONTROL_HELP`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// The control endpoints, for `--help` and the README.
pub const CONTROL_HELP: &str = "\
Control endpoints (plain HTTP, no authentication: for local use only):
  POST /_fake/wechat/apps              {\"app_id\", \"app_secret\"}: register a WeChat app
  POST /_fake/weibo/apps               {\"app_key\", \"app_secret\", \"access_token\", \"uid\"}: register a Weibo app
  POST /_fake/wechat/whitelist         {\"app_id\", \"ips\": [..] | null}: WeChat's IP whitelist (null: none)
  POST /_fake/inject                   {\"path\", \"errcode\", \"times\"}: the next `times` calls of `path` fail with `errcode`
  POST /_fake/advance                  {\"seconds\"}: move the fake platforms' clock (token expiry)
  GET  /_fake/calls, DELETE /_fake/calls   every platform request received (query and body), or clear them
  GET  /_fake/published                what was published on either platform
  GET  /_fake/wechat/token_fetches/{app_id}   how often a WeChat access token was fetched
  GET  /_fake/wechat/pool_refreshes/{app_id}  forced stable_token refreshes and classic fetches
  POST /_fake/wechat/outsider_post     {\"app_id\", \"app_secret\", \"title\", \"content\"}: someone outside the vault publishes
  POST /_fake/weibo/outsider_post      {\"access_token\", \"text\"}: the same on Weibo

Apps file (--apps FILE):
  [[wechat]]
  app_id = \"wx0123456789abcdef\"
  app_secret = \"...\"
  [[weibo]]
  app_key = \"1234567890\"
  app_secret = \"...\"
  access_token = \"...\"
  uid = 7000000001

Point the vault at it with platforms.wechat_base_url and platforms.weibo_base_url
(e.g. MEDIAVAULT_PLATFORMS__WECHAT_BASE_URL=http://127.0.0.1:9090).";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppsFile {
    #[serde(default)]
    wechat: Vec<WechatApp>,
    #[serde(default)]
    weibo: Vec<WeiboApp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WechatApp {
    app_id: String,
    app_secret: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WeiboApp {
    app_key: String,
    app_secret: String,
    access_token: String,
    uid: u64,
}

fn parse_wechat(s: &str) -> anyhow::Result<WechatApp> {
    match s.split_once(':') {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok(WechatApp {
            app_id: id.to_owned(),
            app_secret: secret.to_owned(),
        }),
        _ => bail!("--wechat-app wants APP_ID:APP_SECRET"),
    }
}

fn parse_weibo(s: &str) -> anyhow::Result<WeiboApp> {
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        [key, secret, token, uid] if ![key, secret, token].iter().any(|p| p.is_empty()) => {
            Ok(WeiboApp {
                app_key: (*key).to_owned(),
                app_secret: (*secret).to_owned(),
                access_token: (*token).to_owned(),
                uid: uid.parse().context("--weibo-app: UID must be a number")?,
            })
        }
        _ => bail!("--weibo-app wants APP_KEY:APP_SECRET:ACCESS_TOKEN:UID"),
    }
}

fn read_apps(path: &Path) -> anyhow::Result<AppsFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e))
}

pub async fn run(
    listen: SocketAddr,
    wechat_apps: Vec<String>,
    weibo_apps: Vec<String>,
    apps_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let mut apps = match &apps_file {
        Some(p) => read_apps(p)?,
        None => AppsFile::default(),
    };
    for a in &wechat_apps {
        apps.wechat.push(parse_wechat(a)?);
    }
    for a in &weibo_apps {
        apps.weibo.push(parse_weibo(a)?);
    }
    let fake = crate::platforms::fake::FakePlatforms::new(Default::default());
    for a in &apps.wechat {
        fake.add_wechat_app(&a.app_id, &a.app_secret);
    }
    for a in &apps.weibo {
        fake.add_weibo_app(&a.app_key, &a.app_secret, &a.access_token, a.uid);
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (another port: --listen)"))?;
    let addr = listener.local_addr()?;
    println!("fake WeChat and Weibo APIs on http://{addr}");
    for a in &apps.wechat {
        println!("  WeChat app {}", a.app_id);
    }
    for a in &apps.weibo {
        println!("  Weibo app {} (uid {})", a.app_key, a.uid);
    }
    if apps.wechat.is_empty() && apps.weibo.is_empty() {
        println!(
            "  no app yet: give --wechat-app / --weibo-app / --apps, or POST /_fake/wechat/apps"
        );
    }
    Ok(fake.serve(listener).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_flags_parse() {
        let w = parse_wechat("wx1:sec:ret").unwrap();
        assert_eq!(
            (w.app_id.as_str(), w.app_secret.as_str()),
            ("wx1", "sec:ret")
        );
        assert!(parse_wechat("wx1").is_err());
        let b = parse_weibo("k:s:t:42").unwrap();
        assert_eq!(b.uid, 42);
        assert!(parse_weibo("k:s:t:x").is_err());
        assert!(parse_weibo("k:s:42").is_err());
        let f: AppsFile = toml::from_str(
            "[[wechat]]\napp_id = \"a\"\napp_secret = \"b\"\n[[weibo]]\napp_key = \"k\"\napp_secret = \"s\"\naccess_token = \"t\"\nuid = 1\n",
        )
        .unwrap();
        assert_eq!((f.wechat.len(), f.weibo.len()), (1, 1));
    }
}

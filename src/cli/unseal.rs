//! `mediavault unseal`: a key custodian submits their share to a running sealed-mode server over
//! its API (`POST /api/v1/unseal`), like any other client of it. The share is never taken from
//! the command line (where `ps` and shell history keep it): it is asked for without echo, or
//! read from standard input when that is not a terminal.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::crypto::SecretString;

#[derive(Debug, clap::Args)]
pub struct UnsealArgs {
    /// The vault's address.
    #[arg(long, default_value = "https://127.0.0.1:8443")]
    pub url: String,
    /// The CA that signed the vault's certificate (default: the system's roots).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Your name as a custodian (`init --custodian`). Not needed with --status.
    #[arg(long)]
    pub custodian: Option<String>,
    /// Only show whether the vault is sealed and which shares are held.
    #[arg(long, conflicts_with = "reset")]
    pub status: bool,
    /// Discard every share held so far (as the named custodian).
    #[arg(long)]
    pub reset: bool,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

fn client(url: &str, ca: Option<&Path>) -> anyhow::Result<(String, reqwest::Client)> {
    crate::http::serve::install_crypto_provider();
    let url = url.trim_end_matches('/');
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        bail!("the URL {url:?} must start with https:// (or http:// for a loopback demo)");
    }
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("mediavault-unseal/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = ca {
        let pem =
            std::fs::read(ca).with_context(|| format!("cannot read the CA {}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .with_context(|| format!("{} is not a PEM certificate", ca.display()))?;
        builder = builder.add_root_certificate(cert);
    }
    Ok((format!("{url}/api/v1/unseal"), builder.build()?))
}

fn read_share() -> anyhow::Result<SecretString> {
    if std::io::stdin().is_terminal() {
        return Ok(SecretString::new(rpassword::prompt_password(
            "key share: ",
        )?));
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let share = SecretString::new(line.trim().to_owned());
    zeroize::Zeroize::zeroize(&mut line);
    Ok(share)
}

pub async fn run(args: UnsealArgs) -> anyhow::Result<()> {
    let (url, http) = client(&args.url, args.ca.as_deref())?;
    let request = if args.status {
        http.get(&url)
    } else {
        let Some(custodian) = args.custodian.clone() else {
            bail!("--custodian NAME: whose share this is");
        };
        if args.reset {
            http.delete(&url).json(&json!({ "custodian": custodian }))
        } else {
            let share = read_share()?;
            http.post(&url)
                .json(&json!({ "custodian": custodian, "share": share.expose() }))
        }
    };
    let resp = request
        .send()
        .await
        .with_context(|| format!("cannot reach the vault at {}", args.url))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let detail = body["detail"].as_str().unwrap_or("no detail");
        let code = body["code"].as_str().unwrap_or("error");
        bail!("the vault refused ({status}, {code}): {detail}");
    }
    if args.json {
        println!("{body}");
        return Ok(());
    }
    let held = body["submitted"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    if body["sealed"] == Value::Bool(false) {
        println!("the vault is unsealed");
    } else {
        println!(
            "sealed: {} of {} shares held ({held})",
            body["submitted"].as_array().map_or(0, Vec::len),
            body["threshold"]
        );
    }
    Ok(())
}

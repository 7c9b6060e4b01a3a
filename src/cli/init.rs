//! `mediavault init`: creates the data dir, database, root key, keyring and the first admin, and
//! prints the admin's TOTP enrolment once.

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use anyhow::bail;

use crate::config::Config;
use crate::crypto::SecretString;
use crate::identity::users::NewUserInput;
use crate::{Clock, Vault};

fn read_password(from_stdin: bool) -> anyhow::Result<SecretString> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let pw = SecretString::new(line.trim_end_matches(['\r', '\n']).to_owned());
        zeroize::Zeroize::zeroize(&mut line);
        return Ok(pw);
    }
    let first = SecretString::new(rpassword::prompt_password("admin password: ")?);
    let second = SecretString::new(rpassword::prompt_password("again: ")?);
    if first != second {
        bail!("the passwords differ; nothing was created");
    }
    Ok(first)
}

pub async fn run(
    config: Arc<Config>,
    admin: String,
    display_name: String,
    password_stdin: bool,
    json: bool,
    split: Option<crate::vault::seal::Split>,
) -> anyhow::Result<()> {
    // Everything the user typed is checked before anything is created on disk.
    crate::identity::Username::parse(&admin).map_err(|e| anyhow::anyhow!("--admin: {e}"))?;
    if Vault::store_exists(&config).await? {
        bail!(
            "a store already exists at {}; init changes nothing",
            config.store_location().describe()
        );
    }
    let password = read_password(password_stdin)?;
    crate::identity::passwords::check_policy(&password)?;
    let (vault, shares) = Vault::create_with(Arc::clone(&config), Clock::system(), split).await?;
    // The first admin is created by the operating-system user running init, and recorded so.
    let enrolment = vault
        .people()
        .create(
            &crate::actor::Actor::cli_from_env(),
            NewUserInput {
                username: admin.clone(),
                display_name,
                roles: vec!["admin".into()],
                password,
            },
            None,
        )
        .await?;
    vault.close().await;
    let sealed = !shares.is_empty();
    let suite = config.crypto.suite.unwrap_or_default();
    if json {
        let mut out = serde_json::json!({
            "username": admin,
            "totp_uri": enrolment.totp_uri.expose(),
            "totp_secret": enrolment.totp_secret.expose(),
            "database": config.store_location().describe(),
            "crypto_suite": suite,
        });
        if sealed {
            out["seal_file"] = serde_json::json!(crate::vault::seal::seal_path(&config));
            out["shares"] = super::rekey::shares_json(&shares);
        } else {
            out["root_key_file"] = serde_json::json!(config.root_key_path());
        }
        println!("{out}");
        return Ok(());
    }
    println!(
        "Created the store at {}",
        config.store_location().describe()
    );
    println!("Crypto suite: {suite} ({})", suite.describe());
    if sealed {
        println!(
            "Sealed mode: no root key file; the server starts sealed until enough custodians run `mediavault unseal`."
        );
        println!("Key shares (shown once; give each only to its custodian, to keep offline):");
        super::rekey::print_shares(&shares);
    } else {
        println!(
            "Root key: {} (mode 0600; back it up offline, it opens everything)",
            config.root_key_path().display()
        );
    }
    println!();
    println!("TOTP enrolment for {admin} (shown once; scan it with an authenticator app):");
    if let Some(qr) = crate::identity::totp::qr_terminal(enrolment.totp_uri.expose()) {
        println!("{qr}");
    }
    println!("  {}", enrolment.totp_uri.expose());
    println!("  secret: {}", enrolment.totp_secret.expose());
    Ok(())
}

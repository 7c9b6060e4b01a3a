//! `mediavault keys rotate|rotate-root`: keyring and root key rotation, safe to run against the
//! store while the server is up: it picks a new term up the moment it meets a record sealed under
//! it (reading the keyring again with the root key file), and on SIGHUP.
//!
//! In sealed mode `rotate-root` is a rekey with a new root key: a quorum of the current
//! custodians' shares on standard input, the new shares shown once, and `rekey verify` (every new
//! holder's share back) re-wraps the store under the new key and puts the new split in force.

use clap::Subcommand;

use crate::config::Config;
use crate::vault::seal::{self, Split};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Add a keyring term; new secrets are sealed under it. Old terms keep opening old records.
    Rotate {
        /// Also re-seal every stored secret (credential versions, TOTP seeds, checkout posts)
        /// under the new term.
        #[arg(long)]
        rewrap: bool,
    },
    /// Re-wrap the keyring under a new root key; the old key file stops opening the store. In
    /// sealed mode: a new root key split among the custodians (by default those in force, with
    /// their age keys and threshold), switched to by `rekey verify`.
    RotateRoot {
        /// Sealed mode: split the new key into this many shares (default: as now).
        #[arg(long, requires = "key_threshold")]
        key_shares: Option<u8>,
        /// Sealed mode: how many shares unseal (default: as now).
        #[arg(long, requires = "key_shares")]
        key_threshold: Option<u8>,
        /// Sealed mode: a new custodian, once per share, in order: `NAME` or `NAME=age1…`
        /// (default: the custodians in force). One named again keeps their age key.
        #[arg(long = "custodian", requires = "key_shares")]
        custodians: Vec<String>,
        /// Sealed mode: print the new shares as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: &Config, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Rotate { rewrap } => crate::vault::keys::rotate(config, rewrap).await,
        KeysCommand::RotateRoot {
            key_shares,
            key_threshold,
            custodians,
            json,
        } => {
            if !seal::is_sealed_mode(config) {
                if key_shares.is_some() || json {
                    anyhow::bail!(
                        "--key-shares, --key-threshold, --custodian and --json are for a sealed-mode vault; this one has a root key file"
                    );
                }
                return crate::vault::keys::rotate_root(config).await;
            }
            rotate_root_sealed(config, key_shares.zip(key_threshold), custodians, json).await
        }
    }
}

async fn rotate_root_sealed(
    config: &Config,
    numbers: Option<(u8, u8)>,
    custodians: Vec<String>,
    json: bool,
) -> anyhow::Result<()> {
    let current = Split::current(config)?;
    let split = match numbers {
        Some((n, t)) => Split::new(n, t, custodians)
            .map_err(|e| anyhow::anyhow!(e))?
            .keeping_recipients_of(&current),
        None => current,
    };
    let dealt = crate::vault::keys::rotate_root_sealed(config, &split).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "shares": super::rekey::shares_json(&dealt), "new_root_key": true })
        );
        return Ok(());
    }
    println!(
        "New root key, {} of {} shares (shown once; give each only to its custodian):",
        split.threshold,
        split.custodians.len()
    );
    super::rekey::print_shares(&dealt);
    println!(
        "Nothing has changed yet: the old shares stay in force until every new holder runs `mediavault rekey verify`, which re-wraps the store under the new key."
    );
    Ok(())
}

//! `mediavault keys rotate|rotate-root`: keyring and root key rotation, safe to run against the
//! store while the server is up: it picks a new term up the moment it meets a record sealed under
//! it (reading the keyring again with the root key file), and on SIGHUP.

use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Add a keyring term; new secrets are sealed under it. Old terms keep opening old records.
    Rotate {
        /// Also re-seal every stored secret (credential versions, TOTP seeds, checkout posts)
        /// under the new term.
        #[arg(long)]
        rewrap: bool,
    },
    /// Re-wrap the keyring under a new root key; the old key file stops opening the store.
    RotateRoot,
}

pub async fn run(config: &Config, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Rotate { rewrap } => crate::vault::keys::rotate(config, rewrap).await,
        KeysCommand::RotateRoot => crate::vault::keys::rotate_root(config).await,
    }
}

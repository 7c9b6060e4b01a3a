//! `mediavault bootstrap confirm-admin NAME`: the root key holder, on the server, confirms the
//! pending `admin` grant that gives a new vault its second admin. Valid only while the vault has
//! fewer than two enabled admins; after that the two-admin rule holds (see SECURITY.md). In
//! sealed mode the root key is held by its custodians: a quorum of them give their shares on
//! standard input (`NAME SHARE` a line), so no one person makes the second admin there either.

use std::sync::Arc;

use clap::Subcommand;

use crate::actor::Actor;
use crate::config::Config;
use crate::{Clock, Vault};

#[derive(Subcommand)]
pub enum BootstrapCommand {
    /// Confirm a pending `admin` grant while the vault has fewer than two admins (run on the
    /// server as the vault's user; safe while serving; recorded as `cli:<os user>`).
    ConfirmAdmin {
        /// The user whose `admin` role waits for confirmation.
        username: String,
        /// Print the user as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: Arc<Config>, command: BootstrapCommand) -> anyhow::Result<()> {
    match command {
        BootstrapCommand::ConfirmAdmin { username, json } => {
            let vault = Vault::open_cli(config, Clock::system()).await?;
            let done = vault
                .people()
                .bootstrap_confirm(&Actor::cli_from_env(), &username)
                .await;
            vault.close().await;
            let user = done?;
            if json {
                println!("{}", serde_json::to_string(&user)?);
            } else {
                println!(
                    "{} is now an admin (confirmed by the root key's holder or custodians; recorded in the audit log).",
                    user.username
                );
                println!(
                    "From now on a second admin confirms `admin` and `approver` grants: \
                     `mediavault admin users confirm NAME ROLE`."
                );
            }
            Ok(())
        }
    }
}

//! `admin clients …`: publishing tools and their client keys.

use reqwest::Method;
use serde_json::json;

use super::{Session, cell, done, seg, show, table};

#[derive(Debug, clap::Subcommand)]
pub enum ClientsCommand {
    /// Register a publishing tool (asks for your TOTP code); its client key is shown once.
    Add {
        name: String,
        /// An account the tool may use (repeatable).
        #[arg(long = "account", required = true)]
        accounts: Vec<String>,
    },
    List,
    /// Revoke a tool's key at once (and every checkout it holds).
    Revoke {
        client_id: String,
    },
}

/// Runs one `admin clients` subcommand.
pub(super) async fn run(session: &Session, command: ClientsCommand) -> anyhow::Result<()> {
    let (api, json_out) = (&session.api, session.json_out);
    let totp = async || session.step_up_code().await;
    match command {
        ClientsCommand::Add { name, accounts } => {
            let code = totp().await?;
            let v = api
                .post(
                    "/clients",
                    json!({"name": name, "accounts": accounts, "totp": code}),
                )
                .await?;
            if json_out {
                return show(&v);
            }
            println!(
                "registered {} as {} for {}",
                name,
                cell(&v["client_id"]),
                cell(&v["accounts"])
            );
            println!("client key (shown once; give it to the tool's operator):");
            println!("  {}", cell(&v["client_key"]));
            Ok(())
        }
        ClientsCommand::List => {
            let v = api.get("/clients").await?;
            if json_out {
                return show(&v);
            }
            table(
                &v,
                &[
                    "client_id",
                    "name",
                    "accounts",
                    "created_at",
                    "created_by",
                    "revoked",
                ],
            );
            Ok(())
        }
        ClientsCommand::Revoke { client_id } => {
            let v = api
                .call(
                    Method::DELETE,
                    &format!("/clients/{}", seg(&client_id)?),
                    None,
                )
                .await?;
            done(json_out, &v, &format!("revoked {client_id}"))
        }
    }
}

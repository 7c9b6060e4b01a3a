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
        /// Bind the tool to this client certificate (PEM file; the certificate only, never its
        /// key): its key then works only over mutual TLS with that certificate.
        #[arg(long = "cert", value_name = "CERT.pem")]
        cert: Option<std::path::PathBuf>,
    },
    List,
    /// Bind a tool to a client certificate (PEM file), replacing any earlier binding (asks for
    /// your TOTP code).
    Bind {
        client_id: String,
        #[arg(long = "cert", value_name = "CERT.pem")]
        cert: std::path::PathBuf,
    },
    /// Remove a tool's certificate binding: its key alone works again (asks for your TOTP code).
    Unbind {
        client_id: String,
    },
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
        ClientsCommand::Add {
            name,
            accounts,
            cert,
        } => {
            let certificate = cert.as_deref().map(read_cert).transpose()?;
            let code = totp().await?;
            let v = api
                .post(
                    "/clients",
                    json!({"name": name, "accounts": accounts, "totp": code, "certificate": certificate}),
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
            if let Some(w) = v["warning"].as_str() {
                eprintln!("warning: {w}");
            }
            if v["certificate"].is_object() {
                println!(
                    "bound to the client certificate {} (SHA-256 {})",
                    cell(&v["certificate"]["subject"]),
                    cell(&v["certificate"]["sha256"])
                );
            }
            Ok(())
        }
        ClientsCommand::Bind { client_id, cert } => {
            let certificate = read_cert(&cert)?;
            let code = totp().await?;
            let v = set_cert(
                session,
                &client_id,
                json!({"certificate": certificate, "totp": code}),
            )
            .await?;
            if let Some(w) = v["warning"].as_str().filter(|_| !json_out) {
                eprintln!("warning: {w}");
            }
            done(
                json_out,
                &v,
                &format!(
                    "{client_id} is bound to {} (SHA-256 {})",
                    cell(&v["certificate"]["subject"]),
                    cell(&v["certificate"]["sha256"])
                ),
            )
        }
        ClientsCommand::Unbind { client_id } => {
            let code = totp().await?;
            let v = set_cert(
                session,
                &client_id,
                json!({"certificate": null, "totp": code}),
            )
            .await?;
            done(
                json_out,
                &v,
                &format!("{client_id} is no longer bound to a certificate"),
            )
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
                    "certificate",
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

async fn set_cert(
    session: &Session,
    client_id: &str,
    body: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    session
        .api
        .call(
            Method::PUT,
            &format!("/clients/{}/certificate", seg(client_id)?),
            Some(body),
        )
        .await
}

/// A certificate file, as text; the server checks what it holds (and refuses a private key).
fn read_cert(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the certificate {}: {e}", path.display()))
}

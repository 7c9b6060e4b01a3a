//! `admin accounts …`: platform accounts, and their credentials asked for field by field.

use anyhow::bail;
use serde_json::{Value, json};

use super::{Input, Session, cell, done, seg, show, table};

#[derive(Debug, clap::Subcommand)]
pub enum AccountsCommand {
    /// Add an account; its credential fields are asked for (secrets without echo).
    Add {
        id: String,
        /// wechat (app_id, app_secret), weibo (app_key, app_secret, access_token) or generic
        /// (username, password).
        #[arg(long)]
        platform: String,
        #[arg(long)]
        display_name: Option<String>,
        /// Read the credential fields from standard input, one per line, in that order.
        #[arg(long)]
        secret_stdin: bool,
    },
    List,
    /// Store a new credential version (asks for the fields, then your TOTP code).
    Rotate {
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        secret_stdin: bool,
    },
    /// Freeze an account: every live token of it is revoked (asks for your TOTP code).
    Freeze {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Unfreeze an account (asks for your TOTP code).
    Unfreeze {
        id: String,
        #[arg(long)]
        reason: String,
    },
}

/// Runs one `admin accounts` subcommand.
pub(super) async fn run(session: &Session, command: AccountsCommand) -> anyhow::Result<()> {
    let (api, input, json_out) = (&session.api, &session.input, session.json_out);
    let totp = async || session.step_up_code().await;
    match command {
        AccountsCommand::Add {
            id,
            platform,
            display_name,
            secret_stdin,
        } => {
            seg(&id)?;
            let credential = read_credential(input, &platform, secret_stdin)?;
            let v = api
                .post(
                    "/accounts",
                    json!({
                        "display_name": display_name.unwrap_or_else(|| id.clone()),
                        "id": id,
                        "platform": platform,
                        "credential": credential,
                    }),
                )
                .await?;
            done(
                json_out,
                &v,
                &format!("added {} ({}), credential version 1", id, platform),
            )
        }
        AccountsCommand::List => {
            let v = api.get("/accounts").await?;
            if json_out {
                return show(&v);
            }
            table(
                &v,
                &[
                    "id",
                    "platform",
                    "display_name",
                    "status",
                    "credential_version",
                    "rotated_at",
                    "active_checkouts",
                ],
            );
            Ok(())
        }
        AccountsCommand::Rotate {
            id,
            reason,
            secret_stdin,
        } => {
            let path = format!("/accounts/{}", seg(&id)?);
            let account = api.get(&path).await?;
            let platform = account["platform"].as_str().unwrap_or_default().to_owned();
            let credential = read_credential(input, &platform, secret_stdin)?;
            let code = totp().await?;
            let v = api
                .post(
                    &format!("{path}/rotate"),
                    json!({"credential": credential, "reason": reason, "totp": code}),
                )
                .await?;
            done(
                json_out,
                &v,
                &format!(
                    "rotated {id}: credential version {}",
                    cell(&v["credential_version"])
                ),
            )
        }
        AccountsCommand::Freeze { id, reason } => {
            let path = format!("/accounts/{}/freeze", seg(&id)?);
            let v = api
                .post(&path, json!({"reason": reason, "totp": totp().await?}))
                .await?;
            done(
                json_out,
                &v,
                &format!("froze {id}; every live token of it is revoked"),
            )
        }
        AccountsCommand::Unfreeze { id, reason } => {
            let path = format!("/accounts/{}/unfreeze", seg(&id)?);
            let v = api
                .post(&path, json!({"reason": reason, "totp": totp().await?}))
                .await?;
            done(json_out, &v, &format!("unfroze {id}"))
        }
    }
}

/// The credential fields of a platform, in prompt order, and whether each is secret.
fn credential_fields(platform: &str) -> anyhow::Result<&'static [(&'static str, bool)]> {
    Ok(match platform {
        "wechat" => &[("app_id", false), ("app_secret", true)],
        "weibo" => &[
            ("app_key", false),
            ("app_secret", true),
            ("access_token", true),
        ],
        "generic" => &[("username", false), ("password", true)],
        other => bail!("unknown platform {other:?}: wechat, weibo or generic"),
    })
}

fn read_credential(input: &Input, platform: &str, from_stdin: bool) -> anyhow::Result<Value> {
    let mut cred = serde_json::Map::new();
    for (name, secret) in credential_fields(platform)? {
        let value = if *secret {
            input.secret(name, name, from_stdin)?.expose().to_owned()
        } else if from_stdin {
            input.read_line(name)?.trim().to_owned()
        } else {
            input.line(name, name)?
        };
        cred.insert((*name).to_owned(), Value::String(value));
    }
    Ok(Value::Object(cred))
}

//! `admin checkouts …`: listing checkouts and deciding the ones waiting for approval.

use serde_json::json;

use super::{Api, Input, Session, cell, done, seg, show, table};

#[derive(Debug, clap::Subcommand)]
pub enum CheckoutsCommand {
    List {
        /// pending_approval, approved, denied, active, checked_in, expired, revoked
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        account: Option<String>,
    },
    /// Approve a checkout waiting for you (asks for your TOTP code).
    Approve {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Deny a checkout (asks for your TOTP code).
    Deny {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
}

/// Runs one `admin checkouts` subcommand.
pub(super) async fn run(session: &Session, command: CheckoutsCommand) -> anyhow::Result<()> {
    let (api, input, me, json_out) = (
        &session.api,
        &session.input,
        session.me.as_str(),
        session.json_out,
    );
    match command {
        CheckoutsCommand::List { status, account } => {
            let mut q = Vec::new();
            if let Some(s) = status {
                q.push(format!("status={}", seg(&s)?));
            }
            if let Some(a) = account {
                q.push(format!("account={}", seg(&a)?));
            }
            let path = if q.is_empty() {
                "/checkouts".to_owned()
            } else {
                format!("/checkouts?{}", q.join("&"))
            };
            let v = api.get(&path).await?;
            if json_out {
                return show(&v);
            }
            table(
                &v,
                &[
                    "checkout_id",
                    "account",
                    "operator",
                    "client",
                    "level",
                    "status",
                    "requested_at",
                    "purpose",
                ],
            );
            Ok(())
        }
        CheckoutsCommand::Approve { id, comment } => {
            decide(api, input, me, "approve", &id, comment, json_out).await
        }
        CheckoutsCommand::Deny { id, comment } => {
            decide(api, input, me, "deny", &id, comment, json_out).await
        }
    }
}

async fn decide(
    api: &Api,
    input: &Input,
    me: &str,
    verb: &str,
    id: &str,
    comment: Option<String>,
    json_out: bool,
) -> anyhow::Result<()> {
    let path = format!("/checkouts/{}", seg(id)?);
    // Show what is being signed before the code is asked for.
    let c = api.get(&path).await?;
    if !json_out && input.tty {
        eprintln!(
            "checkout {id}: {} on {} by {} through {} ({}): {}",
            cell(&c["level"]),
            cell(&c["account"]),
            cell(&c["operator"]),
            cell(&c["client"]),
            cell(&c["status"]),
            cell(&c["purpose"])
        );
        if let Some(title) = c["content"]["title"].as_str() {
            eprintln!("post: {title}");
        }
    }
    let code = input.totp(me)?;
    let v = api
        .post(
            &format!("{path}/{verb}"),
            json!({"totp": code, "comment": comment}),
        )
        .await?;
    let past = if verb == "approve" {
        "approved"
    } else {
        "denied"
    };
    done(
        json_out,
        &v,
        &format!("{past} {id}; status now {}", cell(&v["status"])),
    )
}

//! `admin users …`: people, their roles, and the one-time TOTP enrolments and initial passwords
//! the vault hands out for them.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::{Value, json};

use super::{Session, cell, done, seg, show, table};

#[derive(Debug, clap::Subcommand)]
pub enum UsersCommand {
    /// Create a user (asks for the password and your TOTP code); shows the TOTP enrolment once.
    Add {
        username: String,
        #[arg(long)]
        display_name: Option<String>,
        /// A role: publisher, approver, auditor, admin (repeatable). approver and admin wait for a
        /// second admin's `users confirm`.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// The department (处室) the person works for.
        #[arg(long)]
        department: Option<String>,
        /// Read the new user's password from standard input (then your TOTP code).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Add the people of a roster in one go (one TOTP code): a CSV file with the header
    /// `username,display_name,department,roles` (roles separated by `;`). Each person's initial
    /// password and TOTP enrolment is printed once.
    Import {
        /// The roster (UTF-8 CSV; Excel's "CSV UTF-8" works).
        file: PathBuf,
        /// Also print each person's TOTP enrolment as a QR code in the terminal.
        #[arg(long)]
        qr: bool,
    },
    List,
    /// Disable a user: their sessions end and their checkouts are revoked.
    Disable {
        username: String,
    },
    /// Enable a disabled user again (asks for your TOTP code).
    Enable {
        username: String,
    },
    /// Clear a user's lockout (asks for your TOTP code).
    Unlock {
        username: String,
    },
    /// A new TOTP seed for a user, shown once as a QR code (asks for your TOTP code).
    ResetTotp {
        username: String,
    },
    /// Set a new password for a user (asks for it, then your TOTP code).
    ResetPassword {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Grant a role (asks for your TOTP code); approver and admin wait for a second admin.
    Grant {
        username: String,
        role: String,
    },
    /// Confirm another admin's pending grant of approver or admin (asks for your TOTP code).
    Confirm {
        username: String,
        role: String,
    },
}

/// Runs one `admin users` subcommand.
pub(super) async fn run(session: &Session, command: UsersCommand) -> anyhow::Result<()> {
    let (api, input, json_out) = (&session.api, &session.input, session.json_out);
    let totp = async || session.step_up_code().await;
    match command {
        UsersCommand::Import { file, qr } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read the roster {}", file.display()))?;
            // Checked here first, so a mistake names its line before anything is sent.
            let roster = crate::identity::roster::parse_csv(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let code = totp().await?;
            let v = api
                .post("/users/import", json!({"users": roster, "totp": code}))
                .await?;
            if json_out {
                return show(&v);
            }
            let created = v["created"].as_array().cloned().unwrap_or_default();
            println!(
                "added {} people; each enrolment below is shown once: hand it over in person",
                created.len()
            );
            for p in &created {
                println!();
                println!(
                    "{} ({}), {}{}",
                    cell(&p["username"]),
                    cell(&p["display_name"]),
                    cell(&p["roles"]),
                    if p["pending_roles"].as_array().is_some_and(|a| !a.is_empty()) {
                        format!(
                            "; waiting for a second admin: {}",
                            cell(&p["pending_roles"])
                        )
                    } else {
                        String::new()
                    }
                );
                println!("  initial password: {}", cell(&p["password"]));
                if qr {
                    print_enrolment(p);
                } else {
                    println!("  {}", cell(&p["totp_uri"]));
                    println!("  secret: {}", cell(&p["totp_secret"]));
                }
            }
            Ok(())
        }
        UsersCommand::Add {
            username,
            display_name,
            roles,
            department,
            password_stdin,
        } => {
            seg(&username)?;
            let password =
                input.new_password(&format!("password for {username}"), password_stdin)?;
            let code = totp().await?;
            let v = api
                .post(
                    "/users",
                    json!({
                        "display_name": display_name.unwrap_or_else(|| username.clone()),
                        "username": username,
                        "roles": roles,
                        "department": department,
                        "password": password.expose(),
                        "totp": code,
                    }),
                )
                .await?;
            if json_out {
                return show(&v);
            }
            println!("created {} ({})", cell(&v["username"]), cell(&v["roles"]));
            print_enrolment(&v);
            Ok(())
        }
        UsersCommand::List => {
            let v = api.get("/users").await?;
            if json_out {
                return show(&v);
            }
            table(
                &v,
                &[
                    "username",
                    "display_name",
                    "roles",
                    "pending_roles",
                    "department",
                    "disabled",
                    "locked_until",
                ],
            );
            Ok(())
        }
        UsersCommand::Disable { username } => {
            let v = api
                .post(&format!("/users/{}/disable", seg(&username)?), json!({}))
                .await?;
            done(json_out, &v, &format!("disabled {username}"))
        }
        UsersCommand::Enable { username } => {
            let path = format!("/users/{}/enable", seg(&username)?);
            let v = api.post(&path, json!({"totp": totp().await?})).await?;
            done(json_out, &v, &format!("enabled {username}"))
        }
        UsersCommand::Unlock { username } => {
            let path = format!("/users/{}/unlock", seg(&username)?);
            let v = api.post(&path, json!({"totp": totp().await?})).await?;
            done(json_out, &v, &format!("unlocked {username}"))
        }
        UsersCommand::ResetTotp { username } => {
            let path = format!("/users/{}/reset-totp", seg(&username)?);
            let v = api.post(&path, json!({"totp": totp().await?})).await?;
            if json_out {
                return show(&v);
            }
            println!("new TOTP seed for {username}; their sessions have ended");
            print_enrolment(&v);
            Ok(())
        }
        UsersCommand::ResetPassword {
            username,
            password_stdin,
        } => {
            let path = format!("/users/{}/reset-password", seg(&username)?);
            let password =
                input.new_password(&format!("new password for {username}"), password_stdin)?;
            let code = totp().await?;
            let v = api
                .post(&path, json!({"password": password.expose(), "totp": code}))
                .await?;
            let mut msg = format!("new password set for {username}; their sessions have ended");
            if v["pending_roles"].as_array().is_some_and(|a| !a.is_empty()) {
                msg.push_str(&format!(
                    "\nwaiting for a second admin's `users confirm`: {}",
                    cell(&v["pending_roles"])
                ));
            }
            done(json_out, &v, &msg)
        }
        UsersCommand::Grant { username, role } => {
            let path = format!("/users/{}/roles", seg(&username)?);
            let v = api
                .post(&path, json!({"role": role, "totp": totp().await?}))
                .await?;
            let pending = v["pending_roles"]
                .as_array()
                .is_some_and(|a| a.iter().any(|r| r == role.as_str()));
            let msg = if pending {
                format!(
                    "{role} for {username} waits for a second admin's `users confirm {username} {role}`"
                )
            } else {
                format!("granted {role} to {username}")
            };
            done(json_out, &v, &msg)
        }
        UsersCommand::Confirm { username, role } => {
            let path = format!("/users/{}/roles/{}/confirm", seg(&username)?, seg(&role)?);
            let v = api.post(&path, json!({"totp": totp().await?})).await?;
            done(json_out, &v, &format!("confirmed {role} for {username}"))
        }
    }
}

fn print_enrolment(v: &Value) {
    let uri = v["totp_uri"].as_str().unwrap_or_default();
    println!(
        "TOTP enrolment for {} (shown once; scan it with an authenticator app):",
        cell(&v["username"])
    );
    if let Some(qr) = crate::identity::totp::qr_terminal(uri) {
        println!("{qr}");
    }
    println!("  {uri}");
    println!("  secret: {}", cell(&v["totp_secret"]));
    if v["pending_roles"].as_array().is_some_and(|a| !a.is_empty()) {
        println!(
            "waiting for a second admin's `users confirm`: {}",
            cell(&v["pending_roles"])
        );
    }
}

//! `mediavault admin …`: the administration CLI, a client of the HTTPS API like any other. It holds
//! no key and opens no store: it signs in as a person (password + TOTP), keeps the session in a
//! profile file (mode 0600), and every change it asks for goes through the same service methods,
//! rules, step-up codes and audit entries as the console's.
//!
//! Secrets (passwords, TOTP codes, platform credentials) are never taken from the command line,
//! where `ps` and shell history would keep them: they are asked for on the terminal without echo,
//! or read one per line from standard input when it is not a terminal (`--password-stdin`,
//! `--secret-stdin` say so explicitly), in the order the prompts would ask.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::crypto::SecretString;

#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// The profile file: URL, CA file and session token. Default:
    /// `$XDG_CONFIG_HOME/mediavault/admin.toml` (or `~/.config/mediavault/admin.toml`).
    #[arg(long, global = true, env = "MEDIAVAULT_ADMIN_PROFILE")]
    pub profile: Option<PathBuf>,
    /// Print the API's JSON answers instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Sign in (username, password and TOTP code are asked for) and keep the session in the profile.
    Login {
        /// The vault's base URL, e.g. https://vault.example.gov.cn:8443 (kept in the profile).
        #[arg(long)]
        url: Option<String>,
        /// CA certificate (PEM) that signed the vault's certificate, e.g. certs/dev/ca.pem.
        #[arg(long)]
        ca: Option<PathBuf>,
        #[arg(long)]
        username: Option<String>,
        /// Read the password (then the TOTP code) from standard input, one per line.
        #[arg(long)]
        password_stdin: bool,
    },
    /// End the session and forget it.
    Logout,
    /// Step up (asks your TOTP code): for `session.step_up_minutes` (default 5) this session's
    /// changes need no further code. Approving or denying a checkout still asks each time.
    StepUp,
    /// People: create, list, disable, enable, unlock, reset TOTP or password, roles.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Publishing tools and their client keys.
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Platform accounts and their credentials.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Checkouts: list, approve, deny.
    Checkouts {
        #[command(subcommand)]
        command: CheckoutsCommand,
    },
    /// The audit log through the API: the newest entries, verification, export.
    Audit {
        #[command(subcommand)]
        command: AuditApiCommand,
    },
    /// Which accounts, people and tools each loaded access policy covers.
    Policies,
}

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

#[derive(Debug, clap::Subcommand)]
pub enum AuditApiCommand {
    /// The newest entries, oldest of them first.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u32,
    },
    /// Verify the chain on the server; exits non-zero when it is broken.
    Verify,
    /// Export entries with their chain fields (JSONL re-verifies offline with `audit verify --file`).
    Export {
        #[arg(long, default_value = "jsonl")]
        format: String,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// Write here (created with mode 0600) instead of standard output.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
}

/// What the profile file holds. The session token is a secret: it never appears in `Debug`.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_token: Option<String>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("url", &self.url)
            .field("ca_file", &self.ca_file)
            .field("username", &self.username)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        if let Some(t) = &mut self.session_token {
            zeroize::Zeroize::zeroize(t);
        }
    }
}

fn default_profile_path() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(
            std::env::var_os("HOME").context("HOME is not set; name the profile with --profile")?,
        )
        .join(".config"),
    };
    Ok(base.join("mediavault").join("admin.toml"))
}

fn load_profile(path: &Path) -> anyhow::Result<Option<Profile>> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    // It holds a session token: like ssh with a private key, refuse one others can read.
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "{} is readable by others; run `chmod 600 {}` (it holds your session)",
            path.display(),
            path.display()
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let profile = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?;
    Ok(Some(profile))
}

/// Writes the profile through a temporary file created with mode 0600 and renamed over the old.
fn save_profile(path: &Path, profile: &Profile) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("toml.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut text = toml::to_string(profile)?;
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    zeroize::Zeroize::zeroize(&mut text);
    written.with_context(|| format!("cannot write {}", path.display()))
}

/// Answers to prompts: the terminal (secrets without echo) or, when standard input is not a
/// terminal or a `--…-stdin` flag says so, one line of standard input per prompt.
struct Input {
    tty: bool,
}

impl Input {
    fn new() -> Self {
        Self {
            tty: std::io::stdin().is_terminal(),
        }
    }

    fn read_line(&self, what: &str) -> anyhow::Result<String> {
        let mut line = String::new();
        let n = std::io::stdin().lock().read_line(&mut line)?;
        if n == 0 {
            bail!("standard input ended before the {what}");
        }
        let out = line.trim_end_matches(['\r', '\n']).to_owned();
        zeroize::Zeroize::zeroize(&mut line);
        Ok(out)
    }

    fn line(&self, prompt: &str, what: &str) -> anyhow::Result<String> {
        if self.tty {
            eprint!("{prompt}: ");
            std::io::stderr().flush()?;
        }
        let s = self.read_line(what)?;
        if s.trim().is_empty() {
            bail!("no {what} given");
        }
        Ok(s.trim().to_owned())
    }

    fn secret(&self, prompt: &str, what: &str, from_stdin: bool) -> anyhow::Result<SecretString> {
        let s = if self.tty && !from_stdin {
            rpassword::prompt_password(format!("{prompt}: "))?
        } else {
            self.read_line(what)?
        };
        if s.is_empty() {
            bail!("no {what} given");
        }
        Ok(SecretString::new(s))
    }

    /// A new password: asked twice on a terminal.
    fn new_password(&self, prompt: &str, from_stdin: bool) -> anyhow::Result<SecretString> {
        let first = self.secret(prompt, "password", from_stdin)?;
        if self.tty && !from_stdin {
            let again = self.secret("again", "password", false)?;
            if again != first {
                bail!("the passwords differ; nothing was changed");
            }
        }
        Ok(first)
    }

    /// The signed-in person's current code, for a step-up.
    fn totp(&self, who: &str) -> anyhow::Result<String> {
        let code = self.secret(&format!("TOTP code of {who}"), "TOTP code", false)?;
        Ok(code.expose().trim().to_owned())
    }
}

/// The API over HTTPS, with the session as bearer.
struct Api {
    base: String,
    http: reqwest::Client,
    session: Option<SecretString>,
}

/// Refuses a path segment with characters that would change the URL (ids and names are plain).
fn seg(s: &str) -> anyhow::Result<&str> {
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        bail!("{s:?} is not a valid name or id");
    }
    Ok(s)
}

impl Api {
    fn new(url: &str, ca: Option<&Path>, session: Option<SecretString>) -> anyhow::Result<Self> {
        crate::http::serve::install_crypto_provider();
        let url = url.trim_end_matches('/');
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            bail!("the URL {url:?} must start with https:// (or http:// for a loopback demo)");
        }
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("mediavault-admin/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = ca {
            let pem = std::fs::read(ca)
                .with_context(|| format!("cannot read the CA {}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", ca.display()))?;
            builder = builder.add_root_certificate(cert);
        }
        Ok(Self {
            base: format!("{url}/api/v1"),
            http: builder.build()?,
            session,
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(s) = &self.session {
            req = req.bearer_auth(s.expose());
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the vault at {}: {e} (check the URL, that it is running, and --ca)",
                self.base
            )
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let problem: Value = resp.json().await.unwrap_or(Value::Null);
        let text = |k: &str| problem[k].as_str().unwrap_or_default().to_owned();
        let mut msg = format!("{} {}", status.as_u16(), text("title"));
        if !text("detail").is_empty() {
            msg = format!("{msg}: {}", text("detail"));
        }
        if !text("code").is_empty() {
            msg = format!("{msg} ({})", text("code"));
        }
        if status == reqwest::StatusCode::UNAUTHORIZED && text("code") == "unauthenticated" {
            msg.push_str("; sign in again with `mediavault admin login`");
        }
        if !text("request_id").is_empty() {
            msg = format!("{msg} [request {}]", text("request_id"));
        }
        bail!(msg)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let resp = self.send(method, path, body.as_ref()).await?;
        if resp.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        Ok(resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(body)).await
    }
}

/// Renders a JSON value as a table cell.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Prints the rows of a JSON array as an aligned table of the named columns.
fn table(rows: &Value, cols: &[&str]) {
    let rows: Vec<Vec<String>> = rows
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| cols.iter().map(|c| cell(&r[*c])).collect())
                .collect()
        })
        .unwrap_or_default();
    let mut width: Vec<usize> = cols.iter().map(|c| c.chars().count()).collect();
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&width)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(cols.iter().map(|c| c.to_uppercase()).collect());
    for r in rows {
        line(r);
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

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let path = match args.profile {
        Some(p) => p,
        None => default_profile_path()?,
    };
    let input = Input::new();
    let json_out = args.json;
    let show = |v: &Value| -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(v)?);
        Ok(())
    };
    if let AdminCommand::Login {
        url,
        ca,
        username,
        password_stdin,
    } = args.command
    {
        return login(&path, &input, url, ca, username, password_stdin, json_out).await;
    }
    let profile = load_profile(&path)?.with_context(|| {
        format!(
            "no profile at {}; sign in first: mediavault admin login --url https://HOST:8443 --ca CA.pem",
            path.display()
        )
    })?;
    let token = profile
        .session_token
        .clone()
        .context("not signed in; run `mediavault admin login`")?;
    let me = profile.username.clone().unwrap_or_else(|| "you".into());
    let api = Api::new(
        &profile.url,
        profile.ca_file.as_deref(),
        Some(SecretString::new(token)),
    )?;
    let totp = async || step_up_code(&api, &input, &me).await;
    match args.command {
        AdminCommand::Login { .. } => Ok(()),
        AdminCommand::Logout => {
            let ended = api.call(Method::POST, "/auth/logout", None).await;
            let mut p = profile;
            p.session_token = None;
            save_profile(&path, &p)?;
            ended?;
            println!("signed out");
            Ok(())
        }
        AdminCommand::StepUp => {
            let code = input.totp(&me)?;
            let v = api.post("/auth/step-up", json!({"totp": code})).await?;
            done(
                json_out,
                &v,
                &format!(
                    "stepped up until {}: changes from this session need no code until then \
                     (approvals still do)",
                    cell(&v["step_up_until"])
                ),
            )
        }
        AdminCommand::Users { command } => match command {
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
        },
        AdminCommand::Clients { command } => match command {
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
        },
        AdminCommand::Accounts { command } => match command {
            AccountsCommand::Add {
                id,
                platform,
                display_name,
                secret_stdin,
            } => {
                seg(&id)?;
                let credential = read_credential(&input, &platform, secret_stdin)?;
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
                let credential = read_credential(&input, &platform, secret_stdin)?;
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
        },
        AdminCommand::Checkouts { command } => match command {
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
                decide(&api, &input, &me, "approve", &id, comment, json_out).await
            }
            CheckoutsCommand::Deny { id, comment } => {
                decide(&api, &input, &me, "deny", &id, comment, json_out).await
            }
        },
        AdminCommand::Audit { command } => audit(&api, command, json_out).await,
        AdminCommand::Policies => {
            let v = api.get("/policies").await?;
            if json_out {
                return show(&v);
            }
            print_policies(&v);
            Ok(())
        }
    }
}

/// Your code for a sensitive change, unless this session's step-up window is open for a few
/// seconds more: then none is asked for (the server checks the window again).
async fn step_up_code(api: &Api, input: &Input, me: &str) -> anyhow::Result<Option<String>> {
    let session = api.get("/auth/session").await?;
    if session["step_up_seconds_left"].as_i64().unwrap_or(0) > 5 {
        return Ok(None);
    }
    Ok(Some(input.totp(me)?))
}

fn done(json_out: bool, v: &Value, msg: &str) -> anyhow::Result<()> {
    if json_out {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else {
        println!("{msg}");
    }
    Ok(())
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

async fn login(
    path: &Path,
    input: &Input,
    url: Option<String>,
    ca: Option<PathBuf>,
    username: Option<String>,
    password_stdin: bool,
    json_out: bool,
) -> anyhow::Result<()> {
    let old = load_profile(path)?;
    let url = url
        .or_else(|| old.as_ref().map(|p| p.url.clone()))
        .unwrap_or_else(|| "https://127.0.0.1:8443".into());
    let ca = match ca {
        Some(ca) => Some(
            std::fs::canonicalize(&ca)
                .with_context(|| format!("cannot find the CA {}", ca.display()))?,
        ),
        None => old.as_ref().and_then(|p| p.ca_file.clone()),
    };
    let username = match username {
        Some(u) => u,
        None if password_stdin || !input.tty => input.read_line("username")?.trim().to_owned(),
        None => input.line("username", "username")?,
    };
    let api = Api::new(&url, ca.as_deref(), None)?;
    let password = input.secret("password", "password", password_stdin)?;
    let code = input.totp(&username)?;
    let v = api
        .post(
            "/auth/login",
            json!({"username": username, "password": password.expose(), "totp": code}),
        )
        .await?;
    let token = v["session_token"]
        .as_str()
        .context("the vault answered without a session")?
        .to_owned();
    save_profile(
        path,
        &Profile {
            url,
            ca_file: ca,
            username: Some(username.clone()),
            session_token: Some(token),
        },
    )?;
    let user = &v["user"];
    let summary = json!({"user": user, "expires_at": v["expires_at"], "profile": path});
    done(
        json_out,
        &summary,
        &format!(
            "signed in as {} ({}); session until {} kept in {}",
            cell(&user["username"]),
            cell(&user["roles"]),
            cell(&v["expires_at"]),
            path.display()
        ),
    )
}

async fn audit(api: &Api, cmd: AuditApiCommand, json_out: bool) -> anyhow::Result<()> {
    match cmd {
        AuditApiCommand::Tail { lines } => {
            let lines = lines.clamp(1, 1000);
            let head = api.get("/audit/verify").await?["head_seq"]
                .as_i64()
                .unwrap_or(0);
            let after = (head - i64::from(lines)).max(0);
            let v = api
                .get(&format!("/audit?after_seq={after}&limit={lines}"))
                .await?;
            if json_out {
                return done(true, &v, "");
            }
            for e in v["entries"].as_array().into_iter().flatten() {
                println!(
                    "{:>7}  {}  {}:{}  {}  {}  {}",
                    cell(&e["seq"]),
                    cell(&e["ts"]),
                    cell(&e["actor"]["kind"]),
                    cell(&e["actor"]["id"]),
                    cell(&e["action"]),
                    cell(&e["target"]),
                    cell(&e["outcome"])
                );
            }
            Ok(())
        }
        AuditApiCommand::Verify => {
            let v = api.get("/audit/verify").await?;
            if json_out {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if v["ok"] == true {
                println!(
                    "the audit chain verifies: {} entries, head {} {}",
                    cell(&v["entries_checked"]),
                    cell(&v["head_seq"]),
                    cell(&v["head_hash"])
                );
            }
            if v["ok"] != true {
                bail!(
                    "the audit chain is broken at entry {}",
                    cell(&v["first_bad_seq"])
                );
            }
            Ok(())
        }
        AuditApiCommand::Export {
            format,
            since,
            until,
            output,
        } => {
            let mut q = vec![format!("format={}", seg(&format)?)];
            for (k, v) in [("since", since), ("until", until)] {
                if let Some(v) = v {
                    // RFC 3339 carries `+` and `:`; encode what a query cannot hold as is.
                    let enc: String = v
                        .chars()
                        .map(|c| match c {
                            '+' => "%2B".to_owned(),
                            ':' => "%3A".to_owned(),
                            c if c.is_ascii_alphanumeric()
                                || matches!(c, '-' | '.' | 'T' | 'Z') =>
                            {
                                c.to_string()
                            }
                            _ => String::new(),
                        })
                        .collect();
                    q.push(format!("{k}={enc}"));
                }
            }
            let mut resp = api
                .send(Method::GET, &format!("/audit/export?{}", q.join("&")), None)
                .await?;
            let mut out: Box<dyn Write> = match &output {
                Some(p) => {
                    use std::os::unix::fs::OpenOptionsExt;
                    Box::new(
                        std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .mode(0o600)
                            .open(p)
                            .with_context(|| {
                                format!("cannot create {} (it must not exist yet)", p.display())
                            })?,
                    )
                }
                None => Box::new(std::io::stdout().lock()),
            };
            let mut bytes = 0usize;
            while let Some(chunk) = resp.chunk().await? {
                bytes += chunk.len();
                out.write_all(&chunk)?;
            }
            out.flush()?;
            if let Some(p) = output {
                eprintln!("wrote {bytes} bytes to {}", p.display());
            }
            Ok(())
        }
    }
}

fn print_policies(v: &Value) {
    for p in v["policies"].as_array().into_iter().flatten() {
        let exists = if p["account_exists"] == true {
            ""
        } else {
            " (no such account yet)"
        };
        println!("{} [{}]{exists}", cell(&p["account"]), cell(&p["file"]));
        println!(
            "  who: roles {}; users {}",
            cell(&p["roles"]),
            cell(&p["users"])
        );
        let admitted: Vec<String> = p["admitted_clients"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| format!("{} ({})", cell(&c["name"]), cell(&c["client_id"])))
            .collect();
        println!(
            "  tools: {}",
            if admitted.is_empty() {
                "none registered".to_owned()
            } else {
                admitted.join(", ")
            }
        );
        if p["unmatched_clients"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            println!(
                "  listed but no live tool bound to this account: {}",
                cell(&p["unmatched_clients"])
            );
        }
        let level = |v: &Value| match v {
            Value::Null => "not allowed".to_owned(),
            n => format!("{n} approval(s)"),
        };
        println!(
            "  general: {}; major: {}; {}",
            level(&p["approvals_general"]),
            level(&p["approvals_major"]),
            if p["exclusive"] == true {
                "one checkout at a time"
            } else {
                "shared"
            }
        );
    }
    if v["policies"].as_array().is_none_or(|a| a.is_empty()) {
        println!("no policy is loaded: no account can be checked out");
    }
    for (key, what) in [
        (
            "accounts_without_policy",
            "accounts no policy covers (no checkout possible)",
        ),
        ("clients_without_policy", "tools no policy admits"),
    ] {
        if v[key].as_array().is_some_and(|a| !a.is_empty()) {
            println!("{what}: {}", cell(&v[key]));
        }
    }
}

//! `mediavault admin …`: the administration CLI, a client of the HTTPS API like any other. It holds
//! no key and opens no store: it signs in as a person (password + TOTP), keeps the session in a
//! profile file (mode 0600), and every change it asks for goes through the same service methods,
//! rules, step-up codes and audit entries as the console's.
//!
//! Secrets (passwords, TOTP codes, platform credentials) are never taken from the command line,
//! where `ps` and shell history would keep them: they are asked for on the terminal without echo,
//! or read one per line from standard input when it is not a terminal (`--password-stdin`,
//! `--secret-stdin` say so explicitly), in the order the prompts would ask.

mod accounts;
mod audit;
mod checkouts;
mod clients;
mod policies;
mod users;

pub use accounts::AccountsCommand;
pub use audit::AuditApiCommand;
pub use checkouts::CheckoutsCommand;
pub use clients::ClientsCommand;
pub use users::UsersCommand;

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

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let path = match args.profile {
        Some(p) => p,
        None => default_profile_path()?,
    };
    let input = Input::new();
    let json_out = args.json;
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
    let session = Session {
        api,
        input,
        me,
        json_out,
    };
    match args.command {
        AdminCommand::Login { .. } => Ok(()),
        AdminCommand::Logout => {
            let ended = session.api.call(Method::POST, "/auth/logout", None).await;
            let mut p = profile;
            p.session_token = None;
            save_profile(&path, &p)?;
            ended?;
            println!("signed out");
            Ok(())
        }
        AdminCommand::StepUp => {
            let code = session.input.totp(&session.me)?;
            let v = session
                .api
                .post("/auth/step-up", json!({"totp": code}))
                .await?;
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
        AdminCommand::Users { command } => users::run(&session, command).await,
        AdminCommand::Clients { command } => clients::run(&session, command).await,
        AdminCommand::Accounts { command } => accounts::run(&session, command).await,
        AdminCommand::Checkouts { command } => checkouts::run(&session, command).await,
        AdminCommand::Audit { command } => audit::run(&session, command).await,
        AdminCommand::Policies => policies::run(&session).await,
    }
}

/// A signed-in session as the command groups use it: the API with the session as bearer, the
/// prompts, who is signed in (named in the TOTP prompt) and whether to print JSON.
struct Session {
    api: Api,
    input: Input,
    me: String,
    json_out: bool,
}

impl Session {
    /// Your code for a sensitive change, unless this session's step-up window is open for a few
    /// seconds more: then none is asked for (the server checks the window again).
    async fn step_up_code(&self) -> anyhow::Result<Option<String>> {
        let session = self.api.get("/auth/session").await?;
        if session["step_up_seconds_left"].as_i64().unwrap_or(0) > 5 {
            return Ok(None);
        }
        Ok(Some(self.input.totp(&self.me)?))
    }
}

fn done(json_out: bool, v: &Value, msg: &str) -> anyhow::Result<()> {
    if json_out {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else {
        println!("{msg}");
    }
    Ok(())
}

/// Prints an API answer as pretty JSON (`--json`).
fn show(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
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

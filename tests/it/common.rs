//! Test harness: a real vault on 127.0.0.1:0 over real TLS, with a temporary data dir, a real
//! SQLite file, and a clock the test moves.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mediavault::config::Config;
use mediavault::crypto::SecretBytes;
use mediavault::identity::totp;
use mediavault::{Clock, Running, Vault};
use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery staple";

/// Everything the process logged, so tests can search it for secrets.
pub fn captured_logs() -> String {
    let buf = log_buffer();
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

fn log_buffer() -> Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = LogWriter(Arc::clone(&buf));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                "debug,sqlx=info,hyper=info,h2=info,rustls=info,reqwest=info,hyper_util=info",
            )
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .try_init();
        buf
    })
    .clone()
}

#[derive(Clone)]
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Clone)]
pub struct TestUser {
    pub username: String,
    pub password: String,
    pub seed: Arc<SecretBytes>,
}

pub struct TestApp {
    pub dir: tempfile::TempDir,
    pub config: Arc<Config>,
    /// The configuration file for the `mediavault` binary (see [`write_cli_config`]).
    pub cli_config: PathBuf,
    pub clock: Clock,
    pub running: Option<Running>,
    pub base: String,
    pub client: reqwest::Client,
    pub admin: TestUser,
    /// A second admin with a session, made on first need: privileged roles need two admins.
    second_admin: tokio::sync::Mutex<Option<(TestUser, String)>>,
}

pub type Tweak = Box<dyn FnOnce(&mut Config)>;

#[derive(Default)]
pub struct Options {
    pub policies: Option<Vec<(&'static str, String)>>,
    pub plain_http: bool,
    pub tweak: Option<Tweak>,
}

pub fn base_config(dir: &Path, plain_http: bool) -> Config {
    let mut config = Config {
        data_dir: dir.join("data"),
        listen: "127.0.0.1:0".parse().unwrap(),
        policies_dir: dir.join("policies"),
        ..Default::default()
    };
    config.tls.plain_http = plain_http;
    // Tests that wait for an expiry wait for this sweep.
    config.checkout.expiry_sweep_seconds = 1;
    config.tls.cert_file = dir.join("certs/server.pem");
    config.tls.key_file = dir.join("certs/server-key.pem");
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

pub async fn spawn_with(opts: Options) -> TestApp {
    let _ = log_buffer();
    mediavault::http::serve::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config(dir.path(), opts.plain_http);
    std::fs::create_dir_all(&config.policies_dir).unwrap();
    for (name, text) in opts.policies.unwrap_or_default() {
        std::fs::write(config.policies_dir.join(name), text).unwrap();
    }
    mediavault::certs::write_dev_certs(&dir.path().join("certs"), &[], false).unwrap();
    if let Some(t) = opts.tweak {
        t(&mut config);
    }
    let config = Arc::new(config);
    let cli_config = write_cli_config(dir.path(), &config);
    // The first admin comes from `mediavault init`, as an operator sets up a vault; init runs on
    // the real clock, the server below on the test's clock (which starts at the same time).
    let out = run_cli(
        &cli_config,
        &["init", "--admin", "admin", "--password-stdin", "--json"],
        Some(PASSWORD),
    )
    .await;
    assert!(out.ok, "mediavault init: {}", out.stderr);
    let enrolment: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("init --json printed {:?}: {e}", out.stdout));
    assert_eq!(enrolment["username"], "admin", "{enrolment}");
    let secret = enrolment["totp_secret"].as_str().unwrap();
    // The enrolment is printed once, on stdout; the log keeps neither it nor the password.
    assert!(
        !out.stderr.contains(secret) && !out.stderr.contains(PASSWORD),
        "init logged a secret: {}",
        out.stderr
    );
    let admin = TestUser {
        username: "admin".into(),
        password: PASSWORD.into(),
        seed: Arc::new(totp::seed_from_base32(secret).unwrap()),
    };
    let clock = Clock::system();
    let running = mediavault::start(Arc::clone(&config), clock.clone())
        .await
        .unwrap();
    let base = running.base_url();
    let client = client_for(dir.path());
    TestApp {
        dir,
        config,
        cli_config,
        clock,
        running: Some(running),
        base,
        client,
        admin,
        second_admin: tokio::sync::Mutex::new(None),
    }
}

/// The configuration file the `mediavault` binary reads for the test's vault: where the store,
/// the root key, the policies and the playbooks are, and how it listens. Only these keys: the
/// CLI commands the tests run (`init`, `bootstrap`, `audit`, `serve` of a stopped vault) read no
/// others that matter, and the rest keep their defaults.
pub fn write_cli_config(dir: &Path, config: &Config) -> PathBuf {
    let path_value = |p: &Path| toml::Value::String(p.to_str().unwrap().to_owned());
    let mut table = toml::Table::new();
    table.insert("data_dir".into(), path_value(&config.data_dir));
    table.insert(
        "listen".into(),
        toml::Value::String(config.listen.to_string()),
    );
    table.insert("policies_dir".into(), path_value(&config.policies_dir));
    if let Some(p) = &config.root_key_file {
        table.insert("root_key_file".into(), path_value(p));
    }
    if let Some(p) = &config.playbooks_dir {
        table.insert("playbooks_dir".into(), path_value(p));
    }
    let mut tls = toml::Table::new();
    tls.insert("cert_file".into(), path_value(&config.tls.cert_file));
    tls.insert("key_file".into(), path_value(&config.tls.key_file));
    tls.insert(
        "plain_http".into(),
        toml::Value::Boolean(config.tls.plain_http),
    );
    table.insert("tls".into(), toml::Value::Table(tls));
    let file = dir.join("mediavault-cli.toml");
    std::fs::write(&file, toml::to_string(&table).unwrap()).unwrap();
    file
}

/// What a run of the `mediavault` binary left.
#[derive(Debug)]
pub struct CliOutput {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// The operating-system user the CLI runs as in the tests: its actor is `cli:operator`.
pub const OS_USER: &str = "operator";

/// Runs the real `mediavault` binary with `--config` as the OS user [`OS_USER`], feeding `stdin`
/// if given. Without waiting on the test's runtime: the server in it keeps answering meanwhile.
pub async fn run_cli(config: &Path, args: &[&str], stdin: Option<&str>) -> CliOutput {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mediavault"));
    cmd.arg("--config").arg(config).args(args);
    // Only the file configures the child, whatever the test process was started with.
    for (name, _) in std::env::vars() {
        if name.starts_with("MEDIAVAULT_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("USER", OS_USER)
        .env_remove("LOGNAME")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input
            .write_all(format!("{text}\n").as_bytes())
            .await
            .unwrap();
    }
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    CliOutput {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn client_for(dir: &Path) -> reqwest::Client {
    let ca = std::fs::read(dir.join("certs/ca.pem")).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

impl TestApp {
    pub fn vault(&self) -> &Arc<Vault> {
        &self.running.as_ref().unwrap().vault
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A fresh TOTP code for `user`: moves the clock to the next 30 s step first, because the
    /// vault never accepts a step twice.
    pub fn code(&self, user: &TestUser) -> String {
        self.clock.advance(Duration::from_secs(30));
        totp::code_at(&user.seed, self.clock.unix()).unwrap()
    }

    pub async fn login(&self, user: &TestUser) -> String {
        let code = self.code(user);
        let r = self
            .client
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"username": user.username, "password": user.password, "totp": code}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login of {}", user.username);
        let v: Value = r.json().await.unwrap();
        v["session_token"].as_str().unwrap().to_owned()
    }

    /// Creates a user through the API (the admin's step-up code included) and returns its TOTP
    /// seed from the enrolment URI. Roles that need a second admin are confirmed by one.
    pub async fn create_user(&self, session: &str, username: &str, roles: &[&str]) -> TestUser {
        let (user, pending) = self.post_user(session, username, roles).await;
        for role in pending {
            self.confirm_role(username, &role).await;
        }
        user
    }

    /// POST /api/v1/users as the admin of `session`: the new user and the roles left pending.
    async fn post_user(
        &self,
        session: &str,
        username: &str,
        roles: &[&str],
    ) -> (TestUser, Vec<String>) {
        let code = self.code(&self.admin);
        let r = self
            .post(session, "/api/v1/users", json!({"username": username, "display_name": username, "roles": roles, "password": PASSWORD, "totp": code}))
            .await;
        assert_eq!(r.0, 201, "{}", r.1);
        let uri = r.1["totp_uri"].as_str().unwrap();
        let secret = uri
            .split("secret=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        let pending = r.1["pending_roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let user = TestUser {
            username: username.into(),
            password: PASSWORD.into(),
            seed: Arc::new(totp::seed_from_base32(secret).unwrap()),
        };
        (user, pending)
    }

    /// Runs the `mediavault` binary on this vault's configuration as the OS user [`OS_USER`].
    pub async fn cli(&self, args: &[&str]) -> CliOutput {
        run_cli(&self.cli_config, args, None).await
    }

    /// The second admin ("admin2") and a session of theirs, made on first need the way a new
    /// office gets one: the first admin creates them through the API (the `admin` role waits as
    /// a pending grant), and the root key holder confirms it on the server with
    /// `mediavault bootstrap confirm-admin`, beside the running server.
    pub async fn second_admin(&self) -> (TestUser, String) {
        let mut second = self.second_admin.lock().await;
        if let Some(made) = second.as_ref() {
            return made.clone();
        }
        let admin_s = self.login(&self.admin).await;
        let (admin2, pending) = self.post_user(&admin_s, "admin2", &["admin"]).await;
        assert_eq!(pending, ["admin"]);
        let out = self
            .cli(&["bootstrap", "confirm-admin", "admin2", "--json"])
            .await;
        assert!(out.ok, "bootstrap confirm-admin admin2: {}", out.stderr);
        let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
        assert_eq!(v["roles"], json!(["admin"]), "{v}");
        let s = self.login(&admin2).await;
        *second = Some((admin2, s));
        second.clone().unwrap()
    }

    /// The second admin confirms a pending grant.
    pub async fn confirm_role(&self, username: &str, role: &str) {
        let (admin2, s) = self.second_admin().await;
        let code = self.code(&admin2);
        let r = self
            .post(
                &s,
                &format!("/api/v1/users/{username}/roles/{role}/confirm"),
                json!({"totp": code}),
            )
            .await;
        assert_eq!(r.0, 200, "{}", r.1);
    }

    /// Registers a publishing tool through the API with the admin's step-up code.
    pub async fn create_client(
        &self,
        session: &str,
        name: &str,
        accounts: &[&str],
    ) -> (u16, Value) {
        let code = self.code(&self.admin);
        self.post(
            session,
            "/api/v1/clients",
            json!({"name": name, "accounts": accounts, "totp": code}),
        )
        .await
    }

    /// Polls GET `path` as `bearer` until it answers 200 with a body `done` accepts, and returns
    /// that body: for what the server does by itself on a timer of real time (the expiry sweep,
    /// every second in tests), which moving the test's clock does not hurry.
    pub async fn wait_for(&self, bearer: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (st, v) = self.get(bearer, path).await;
            if st == 200 && done(&v) {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "GET {path} still answers {st} {v}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn post(&self, bearer: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .bearer_auth(bearer)
            .json(&body)
            .send()
            .await
            .unwrap();
        into_pair(r).await
    }

    pub async fn get(&self, bearer: &str, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        into_pair(r).await
    }

    pub fn db_path(&self) -> PathBuf {
        self.config.database_path()
    }

    /// Stops the server, keeping the data dir.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.unwrap();
        }
    }

    /// Starts the server again on the same data dir (a new port), with the same clock.
    pub async fn restart(&mut self) {
        self.stop().await;
        let running = mediavault::start(Arc::clone(&self.config), self.clock.clone())
            .await
            .unwrap();
        self.base = running.base_url();
        self.running = Some(running);
    }
}

pub async fn into_pair(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

/// All bytes of every file under `dir` (the database, its WAL, anything else).
pub fn all_bytes_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push((p, b));
            }
        }
    }
    out.sort();
    out
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A separate raw connection to the SQLite file, as an attacker with file access would use.
pub async fn raw_db(path: &Path) -> sqlx::SqlitePool {
    use std::str::FromStr;
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite://")
        .unwrap()
        .filename(path)
        .busy_timeout(Duration::from_secs(10));
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .unwrap()
}

/// Replaces the log with `n` entries from 400 days ago (old enough to prune), chained under the
/// vault's real audit key the way a second process would read it. The harness's own first entry
/// (`init` creating the admin) would sit where they go, so the log is emptied first.
pub async fn seed_old_entries(app: &TestApp, n: i64) {
    use mediavault::audit::chain::entry_hash;
    use mediavault::store::audit::AuditRow;
    let (_, store, keys) = mediavault::vault::open_store(&app.config).await.unwrap();
    store.close().await;
    let key = keys.mac().audit.clone();
    let db = raw_db(&app.db_path()).await;
    sqlx::query("DELETE FROM audit_log")
        .execute(&db)
        .await
        .unwrap();
    let old_ms = (app.clock.unix() - 400 * 86_400) * 1000;
    let mut prev = vec![0u8; 32];
    for seq in 1..=n {
        let mut row = AuditRow {
            seq,
            ts: old_ms + seq,
            actor_kind: "system".into(),
            actor_id: "mediavault".into(),
            action: "test.old".into(),
            target: "t".into(),
            outcome: "success".into(),
            source_ip: String::new(),
            request_id: String::new(),
            http_method: None,
            http_path: None,
            http_status: None,
            detail: "{}".into(),
            prev_hash: prev.clone(),
            hash: Vec::new(),
        };
        row.hash = entry_hash(&key, row.fields()).to_vec();
        sqlx::query("INSERT INTO audit_log (seq, ts, actor_kind, actor_id, action, target, outcome, source_ip, request_id, detail, prev_hash, hash) VALUES (?, ?, 'system', 'mediavault', 'test.old', 't', 'success', '', '', '{}', ?, ?)")
            .bind(row.seq)
            .bind(row.ts)
            .bind(&row.prev_hash)
            .bind(&row.hash)
            .execute(&db)
            .await
            .unwrap();
        prev = row.hash;
    }
    db.close().await;
}

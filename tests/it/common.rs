//! Test harness: a real vault on 127.0.0.1:0 over real TLS, with a temporary data dir, a real
//! store, and a clock the test moves. The store is a SQLite file in the data dir, or, when
//! `MV_TEST_DATABASE_URL` names a PostgreSQL server (`.ci/run` starts a throwaway one), a fresh
//! database of the test's own on it ([`TestDb`]), configured through `database.url` in the
//! vault's config file as an operator would. `MV_TEST_CRYPTO_SUITE=sm` creates every test vault
//! in the SM suite (`crypto.suite` in that file, read by `init`), so the same behaviour tests run
//! in either suite.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mediavault::config::{Config, DatabaseUrl};
use mediavault::crypto::{SecretBytes, Suite};
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
    /// The PostgreSQL database of this vault, dropped after everything above (None on SQLite).
    _db: Option<TestDb>,
}

/// The PostgreSQL server the suite runs on, if `MV_TEST_DATABASE_URL` names one (a URL to a
/// database the test may create others from, e.g. `postgres://postgres@127.0.0.1:PORT/postgres`).
pub fn pg_server() -> Option<String> {
    std::env::var("MV_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// The crypto suite test vaults are created in: `MV_TEST_CRYPTO_SUITE` (`standard` or `sm`), or
/// the default. An unknown name fails loudly rather than testing the default by mistake.
pub fn test_suite() -> Option<Suite> {
    let name = std::env::var("MV_TEST_CRYPTO_SUITE").ok()?;
    if name.is_empty() {
        return None;
    }
    Some(Suite::parse(&name).unwrap_or_else(|| {
        panic!("MV_TEST_CRYPTO_SUITE={name:?}: expected \"standard\" or \"sm\"")
    }))
}

/// Whether the suite runs on PostgreSQL (see [`pg_server`]).
pub fn on_postgres() -> bool {
    pg_server().is_some()
}

/// A fresh, empty PostgreSQL database of one test vault, dropped when this is (without waiting:
/// the server is thrown away at the end of the run anyway).
pub struct TestDb {
    pub url: String,
    name: String,
    server: String,
}

impl TestDb {
    /// A new database on the suite's server, or None when the suite runs on SQLite. Made on a
    /// thread of its own, so sync tests and any runtime can call it.
    pub fn new() -> Option<TestDb> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let server = pg_server()?;
        // Unique in this run (pid, counter) and across runs on one server (random).
        let nonce: [u8; 4] = ring::rand::generate(&ring::rand::SystemRandom::new())
            .unwrap()
            .expose();
        let nonce = u32::from_le_bytes(nonce);
        let name = format!(
            "mv_{}_{}_{nonce}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let (base, _) = server
            .rsplit_once('/')
            .expect("a URL that names a database");
        let url = format!("{base}/{name}");
        pg_admin(&server, format!("CREATE DATABASE {name}"), true);
        Some(TestDb { url, name, server })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        pg_admin(
            &self.server,
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            false,
        );
    }
}

/// Runs one statement on the server's maintenance database, on a thread with a runtime of its
/// own; waits for it (and panics on failure) only if `wait`.
fn pg_admin(server: &str, sql: String, wait: bool) {
    use sqlx::Connection;
    let server = server.to_owned();
    let job = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&server).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await?;
            conn.close().await
        })
    });
    if wait {
        job.join().unwrap().unwrap();
    }
}

/// The `[database]` table of a config file for `config`'s store (empty on SQLite, the default),
/// for tests that write a config file of their own. At the end of the file: it opens a table.
pub fn database_table(config: &Config) -> String {
    match &config.database.url {
        Some(url) => format!("\n[database]\nurl = \"{}\"\n", url.expose()),
        None => String::new(),
    }
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
    config.crypto.suite = test_suite();
    // Tests that wait for an expiry wait for this sweep.
    config.checkout.expiry_sweep_seconds = 1;
    config.tls.cert_file = dir.join("certs/server.pem");
    config.tls.key_file = dir.join("certs/server-key.pem");
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

/// A vault whose login tier lets `burst` attempts through from one address, then one a minute:
/// what the rate-limit tests count their attempts against.
pub async fn spawn_with_login_burst(burst: u32) -> TestApp {
    spawn_with(Options {
        tweak: Some(Box::new(move |c| {
            c.rate_limits.login_burst = burst;
            c.rate_limits.login_per_minute = 1;
        })),
        ..Default::default()
    })
    .await
}

pub async fn spawn_with(opts: Options) -> TestApp {
    let _ = log_buffer();
    mediavault::http::serve::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config(dir.path(), opts.plain_http);
    let db = TestDb::new();
    if let Some(db) = &db {
        config.database.url = Some(DatabaseUrl::new(db.url.clone()));
    }
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
        _db: db,
    }
}

/// The configuration file the `mediavault` binary reads for the test's vault: where the store,
/// the root key, the policies and the playbooks are (and the database), and how it listens. Only these keys: the
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
    if let Some(url) = &config.database.url {
        let mut database = toml::Table::new();
        database.insert("url".into(), toml::Value::String(url.expose().to_owned()));
        table.insert("database".into(), toml::Value::Table(database));
    }
    if let Some(suite) = config.crypto.suite {
        let mut crypto = toml::Table::new();
        crypto.insert("suite".into(), toml::Value::String(suite.as_str().into()));
        table.insert("crypto".into(), toml::Value::Table(crypto));
    }
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
        feed(&mut input, format!("{text}\n").as_bytes()).await;
    }
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    CliOutput {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub use crate::support::feed;

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

/// Every byte the vault's store has put on disk, with the data dir's files: on SQLite the data dir
/// holds the database and its WAL; on PostgreSQL also this database's files in the throwaway
/// server's data directory (after a CHECKPOINT, so what is committed is in them) and the two
/// newest WAL segments, where every committed change went first (`PG_THROWAWAY_DIR`, set by
/// `.ci/pg-throwaway`; without it only the data dir can be read).
pub async fn stored_bytes(config: &Config) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = all_bytes_under(&config.data_dir);
    let Some(pg_dir) = std::env::var_os("PG_THROWAWAY_DIR") else {
        return out;
    };
    if config.database.url.is_none() {
        return out;
    }
    let pgdata = PathBuf::from(pg_dir).join("data");
    let db = raw_db(config).await;
    sqlx::raw_sql("CHECKPOINT")
        .execute(db.pool())
        .await
        .unwrap();
    let oid: i64 = sqlx::query_scalar(
        "SELECT CAST(oid AS BIGINT) FROM pg_database WHERE datname = current_database()",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    let wal: String = sqlx::query_scalar("SELECT pg_walfile_name(pg_current_wal_lsn())")
        .fetch_one(db.pool())
        .await
        .unwrap();
    db.close().await;
    out.extend(all_bytes_under(&pgdata.join("base").join(oid.to_string())));
    let mut segments: Vec<PathBuf> = std::fs::read_dir(pgdata.join("pg_wal"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| *n.to_string_lossy() <= *wal))
        .collect();
    segments.sort();
    for p in segments.iter().rev().take(2) {
        out.push((p.clone(), std::fs::read(p).unwrap()));
    }
    out
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A separate raw connection to the vault's database (the SQLite file, or the test's PostgreSQL
/// database), as an attacker with access to it would use. Through sqlx's `Any` driver, so a test
/// writes its statements once; [`RawDb::sql`] turns `?` placeholders into PostgreSQL's `$n`.
pub struct RawDb {
    pool: sqlx::AnyPool,
    pg: bool,
}

pub async fn raw_db(config: &Config) -> RawDb {
    sqlx::any::install_default_drivers();
    let (url, pg) = match &config.database.url {
        Some(url) => (url.expose().to_owned(), true),
        None => (
            format!("sqlite://{}", config.database_path().display()),
            false,
        ),
    };
    // Without sqlx's reaper task, as the vault's own pools (`mediavault_store::pool_options`).
    let pool = mediavault_store::pool_options::<sqlx::Any>()
        .max_connections(1)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                // SQLite: wait for the vault's write lock rather than fail at once.
                if !pg {
                    sqlx::query("PRAGMA busy_timeout = 10000")
                        .execute(conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await
        .unwrap();
    RawDb { pool, pg }
}

impl RawDb {
    pub fn pool(&self) -> &sqlx::AnyPool {
        &self.pool
    }

    /// `sql` for this database: on PostgreSQL each `?` becomes `$1`, `$2`, ... in order.
    pub fn sql(&self, sql: &str) -> sqlx::AssertSqlSafe<String> {
        if !self.pg {
            return sqlx::AssertSqlSafe(sql.to_owned());
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(c);
            }
        }
        sqlx::AssertSqlSafe(out)
    }

    /// Makes every insert into the audit log fail, as a full disk or a broken database would.
    pub async fn block_audit(&self, why: &str) {
        let sql = if self.pg {
            format!(
                "CREATE FUNCTION audit_block() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION '{why}'; END $$; \
                 CREATE TRIGGER audit_block BEFORE INSERT ON audit_log \
                 FOR EACH ROW EXECUTE FUNCTION audit_block();"
            )
        } else {
            format!(
                "CREATE TRIGGER audit_block BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, '{why}'); END;"
            )
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&self.pool)
            .await
            .unwrap();
    }

    /// Undoes [`Self::block_audit`].
    pub async fn unblock_audit(&self) {
        let sql = if self.pg {
            "DROP TRIGGER audit_block ON audit_log; DROP FUNCTION audit_block();"
        } else {
            "DROP TRIGGER audit_block"
        };
        sqlx::raw_sql(sql).execute(&self.pool).await.unwrap();
    }

    /// An SQL expression for 32 random bytes.
    pub fn random_blob(&self) -> &'static str {
        if self.pg {
            "sha256(random()::text::bytea)"
        } else {
            "randomblob(32)"
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
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
    let db = raw_db(&app.config).await;
    sqlx::query("DELETE FROM audit_log")
        .execute(db.pool())
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
        sqlx::query(db.sql("INSERT INTO audit_log (seq, ts, actor_kind, actor_id, action, target, outcome, source_ip, request_id, detail, prev_hash, hash) VALUES (?, ?, 'system', 'mediavault', 'test.old', 't', 'success', '', '', '{}', ?, ?)"))
            .bind(row.seq)
            .bind(row.ts)
            .bind(&row.prev_hash)
            .bind(&row.hash)
            .execute(db.pool())
            .await
            .unwrap();
        prev = row.hash;
    }
    db.close().await;
}

/// A webhook on loopback that keeps every JSON notice it receives (a robot or a generic channel
/// standing in for the office's): its URL and what arrived.
pub async fn webhook_inbox() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = Arc::clone(&got);
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let sink = Arc::clone(&sink);
            async move {
                sink.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    (url, got)
}

impl TestApp {
    /// A console page as the person of `session` sees it (the console takes the API's session
    /// in its cookie). Only the tests that need the fake platforms use it so far.
    #[cfg_attr(not(feature = "demo"), allow(dead_code))]
    pub async fn console_page(&self, session: &str, path: &str) -> String {
        self.client
            .get(self.url(path))
            .header("cookie", format!("__Host-mv_session={session}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Waits (at most 20 s) until `done` says so; `what` names it in the failure.
pub async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks an SM2-signed checkpoint line the way someone outside the vault would: OpenSSL, the
/// public key `audit checkpoint` printed, and the documented message (SECURITY.md, "Audit
/// checkpoints"): every part length-prefixed, `mvcp2`, the suite, seq, hash, unix time.
pub fn sm2_verifies_with_openssl(line: &str, public_hex: &str) -> bool {
    let parts: Vec<&str> = line.split(':').collect();
    let [version, suite, seq, hash, unix, sig] = parts.as_slice() else {
        panic!("{line}");
    };
    let mut msg = Vec::new();
    for part in [
        version.as_bytes().to_vec(),
        suite.as_bytes().to_vec(),
        seq.parse::<i64>().unwrap().to_be_bytes().to_vec(),
        hex::decode(hash).unwrap(),
        unix.parse::<i64>().unwrap().to_be_bytes().to_vec(),
    ] {
        msg.extend_from_slice(&(part.len() as u64).to_be_bytes());
        msg.extend_from_slice(&part);
    }
    // SubjectPublicKeyInfo of an uncompressed SM2 point: id-ecPublicKey, the SM2 curve's OID.
    let mut spki = hex::decode("3059301306072a8648ce3d020106082a811ccf5501822d034200").unwrap();
    spki.extend(hex::decode(public_hex).unwrap());
    // The signature as DER: SEQUENCE { INTEGER r, INTEGER s }.
    let rs = hex::decode(sig).unwrap();
    let int = |x: &[u8]| {
        let mut v: Vec<u8> = x.iter().copied().skip_while(|b| *b == 0).collect();
        if v.first().is_none_or(|b| b & 0x80 != 0) {
            v.insert(0, 0);
        }
        [vec![2, v.len() as u8], v].concat()
    };
    let body = [int(&rs[..32]), int(&rs[32..])].concat();
    let der = [vec![0x30, body.len() as u8], body].concat();
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n);
    std::fs::write(path("pub.der"), spki).unwrap();
    std::fs::write(path("sig.der"), der).unwrap();
    std::fs::write(path("msg"), msg).unwrap();
    let openssl = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl must be installed (apt-get install openssl)")
    };
    let pem = openssl(&[
        "pkey".as_ref(),
        "-pubin".as_ref(),
        "-inform".as_ref(),
        "DER".as_ref(),
        "-in".as_ref(),
        path("pub.der").as_os_str(),
        "-out".as_ref(),
        path("pub.pem").as_os_str(),
    ]);
    assert!(
        pem.status.success(),
        "{}",
        String::from_utf8_lossy(&pem.stderr)
    );
    openssl(&[
        "dgst".as_ref(),
        "-sm3".as_ref(),
        "-verify".as_ref(),
        path("pub.pem").as_os_str(),
        "-sigopt".as_ref(),
        "distid:1234567812345678".as_ref(),
        "-signature".as_ref(),
        path("sig.der").as_os_str(),
        path("msg").as_os_str(),
    ])
    .status
    .success()
}
